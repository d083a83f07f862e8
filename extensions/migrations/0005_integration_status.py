import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("extensions", "0004_installation_needs_attention"),
    ]

    operations = [
        migrations.AddField(
            model_name="integration",
            name="status",
            field=models.CharField(
                choices=[
                    ("ok", "Working"),
                    ("reconnect", "Reconnect needed"),
                    ("attention", "Needs attention"),
                ],
                default="ok",
                max_length=10,
                verbose_name="status",
            ),
        ),
        migrations.AddField(
            model_name="integration",
            name="status_since",
            field=models.DateTimeField(
                default=django.utils.timezone.now, verbose_name="status since"
            ),
        ),
    ]
