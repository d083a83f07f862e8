"""manage.py release_documents: approve purchases, send sales, publish reports."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from clients.models import Document
from clients.release import release
from partnerspace.enterprise import clean_enterprise_number


class Command(BaseCommand):
    help = (
        "Release documents that are still waiting: approve purchase invoices, mark sales "
        "invoices as sent, publish transaction reports. Select by client, category or ids."
    )

    def add_arguments(self, parser):
        parser.add_argument("--client", help="The client's enterprise number.")
        parser.add_argument("--category", choices=Document.Category.values)
        parser.add_argument("--ids", nargs="+", type=int, metavar="ID", help="Document ids.")
        parser.add_argument(
            "--all", action="store_true", help="Release every waiting document selected."
        )
        parser.add_argument("--dry-run", action="store_true", help="Only list what would go.")

    def handle(self, *args, **options):
        if not (options["client"] or options["category"] or options["ids"] or options["all"]):
            raise CommandError("Select documents with --client, --category, --ids or --all.")
        documents = Document.objects.filter(released_at__isnull=True).select_related("client")
        if options["client"]:
            try:
                number = clean_enterprise_number(options["client"])
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            documents = documents.filter(client__enterprise_number=number)
        if options["category"]:
            documents = documents.filter(category=options["category"])
        if options["ids"]:
            documents = documents.filter(pk__in=options["ids"])
        released = 0
        for document in documents.order_by("pk").iterator(chunk_size=500):
            if options["dry_run"] or release(document):
                released += 1
                self.stdout.write(f"{document.pk}\t{document.client}\t{document}")
        verb = "would be released" if options["dry_run"] else "released"
        self.stdout.write(f"{released} documents {verb}.")
