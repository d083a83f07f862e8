from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("extensions", "0003_secrets_binding"),
    ]

    operations = [
        migrations.AlterField(
            model_name="installation",
            name="status",
            field=models.CharField(
                choices=[
                    ("ok", "Working"),
                    ("failing", "Failing"),
                    ("reconnect", "Reconnect needed"),
                    ("attention", "Needs attention"),
                ],
                default="ok",
                max_length=10,
                verbose_name="status",
            ),
        ),
    ]
