from django.db import migrations, models


def bind_stored_secrets(apps, schema_editor):
    """Secrets stored so far were entered for the settings they sit beside."""
    from extensions import registry

    Installation = apps.get_model("extensions", "Installation")
    for installation in Installation.objects.only("pk", "connector", "settings").iterator():
        connector = registry.get(installation.connector)
        if connector is not None:
            Installation.objects.filter(pk=installation.pk).update(
                secrets_binding=connector.binding(installation.settings)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("extensions", "0002_installation_connections"),
    ]

    operations = [
        migrations.AddField(
            model_name="installation",
            name="secrets_binding",
            field=models.JSONField(blank=True, default=dict, verbose_name="secrets entered for"),
        ),
        migrations.RunPython(bind_stored_secrets, migrations.RunPython.noop),
    ]
