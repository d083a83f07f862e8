from django.db import migrations, models


def fill_meanings(apps, schema_editor):
    """The first document stored of each meaning gets its key; a later copy imported
    before duplicates were found by meaning keeps none, so nothing stored is lost."""
    from clients.models import meaning_of

    Document = apps.get_model("clients", "Document")
    seen = set()
    for document in Document.objects.order_by("client_id", "pk").iterator():
        key = meaning_of(document)
        if key and (document.client_id, key) not in seen:
            seen.add((document.client_id, key))
            Document.objects.filter(pk=document.pk).update(meaning=key)


class Migration(migrations.Migration):
    dependencies = [
        ("clients", "0002_document_clients_doc_client__cc65a6_idx_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="meaning",
            field=models.CharField(blank=True, max_length=64, verbose_name="same-document key"),
        ),
        migrations.RunPython(fill_meanings, migrations.RunPython.noop),
    ]
