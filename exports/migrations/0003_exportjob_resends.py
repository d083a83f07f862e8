from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0002_deliveryslot_deliverywake"),
    ]

    operations = [
        migrations.AddField(
            model_name="exportjob",
            name="resends",
            field=models.PositiveIntegerField(default=0, verbose_name="re-sends"),
        ),
    ]
