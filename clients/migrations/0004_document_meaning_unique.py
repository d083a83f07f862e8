from django.db import migrations, models


class Migration(migrations.Migration):
    """Apart from 0003, so the keys are filled in a transaction of their own first."""

    dependencies = [
        ("clients", "0003_document_meaning"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="document",
            constraint=models.UniqueConstraint(
                condition=models.Q(("meaning", ""), _negated=True),
                fields=("client", "meaning"),
                name="unique_document_meaning_per_client",
            ),
        ),
    ]
