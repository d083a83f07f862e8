"""manage.py import_documents PATH... --client NUMBER [--category ...] [--release]"""

import os
import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from clients.errors import IntakeError
from clients.intake import ingest_file
from clients.models import Client, Document
from clients.progress import Progress
from clients.release import release
from partnerspace.enterprise import clean_enterprise_number

# Hidden files and editor leftovers in a folder are not documents.
SKIPPED_PREFIXES = (".", "~")


class Command(BaseCommand):
    help = (
        "Import UBL invoices and CODA statements for one client. Prints one line per file "
        "(imported, duplicate or rejected with the reason); exits 1 when any file was "
        "rejected. A rejected file leaves nothing behind."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="Files or folders (searched recursively).")
        parser.add_argument(
            "--client", required=True, help="The client's enterprise number (any spelling)."
        )
        parser.add_argument(
            "--partner",
            help="The firm's enterprise number, when several firms have this client.",
        )
        parser.add_argument(
            "--category",
            choices=Document.Category.values,
            help="Force the category; inferred from each file when omitted.",
        )
        parser.add_argument(
            "--release",
            action="store_true",
            help="Approve, send or publish each imported document at once.",
        )

    def handle(self, *args, **options):
        client = self._client(options["client"], options.get("partner"))
        files = list(self._files(options["paths"]))
        counts = {"imported": 0, "duplicate": 0, "rejected": 0}
        progress = Progress(len(files), stream=sys.stderr, enabled=len(files) >= 50)
        for path in files:
            outcome, detail = self._import(client, path, options["category"], options["release"])
            counts[outcome] += 1
            line = f"{outcome}: {path}" + (f": {detail}" if detail else "")
            if outcome == "rejected":
                self.stderr.write(self.style.ERROR(line))
            else:
                self.stdout.write(line)
            progress.step()
        progress.done()
        summary = ", ".join(f"{n} {label}" for label, n in counts.items())
        self.stdout.write(f"{len(files)} files: {summary}")
        if counts["rejected"]:
            sys.exit(1)

    def _client(self, number, partner_number):
        try:
            number = clean_enterprise_number(number)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        clients = Client.objects.filter(enterprise_number=number).select_related("partner")
        if partner_number:
            clients = clients.filter(partner__enterprise_number=partner_number)
        found = list(clients[:2])
        if not found:
            raise CommandError(f"No client with enterprise number {number}.")
        if len(found) > 1:
            raise CommandError(
                f"Several firms have a client {number}: add --partner with the firm's number."
            )
        return found[0]

    def _files(self, paths):
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                for child in sorted(path.rglob("*")):
                    if child.is_file() and not child.name.startswith(SKIPPED_PREFIXES):
                        yield child
            elif path.is_file():
                yield path
            else:
                raise CommandError(f"{raw}: no such file or folder.")

    def _import(self, client, path, category, do_release):
        try:
            fileobj = path.open("rb")
        except OSError as exc:
            return "rejected", exc.strerror or str(exc)
        # The size on disk is checked before reading: a huge file is refused unread.
        with fileobj:
            size = os.fstat(fileobj.fileno()).st_size
            try:
                result = ingest_file(client, path.name, fileobj, size=size, category=category)
            except IntakeError as exc:
                return "rejected", "; ".join(exc.problems)
        if do_release:
            release(result.document)
        document = result.document
        detail = f"{document.get_category_display()} {document.number}".strip()
        return ("imported" if result.created else "duplicate"), detail
