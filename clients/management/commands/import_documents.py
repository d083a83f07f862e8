"""manage.py import_documents PATH... (--client NUMBER | --partner NUMBER) [--category ...]
[--release]"""

import os
import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from clients.errors import IntakeError
from clients.intake import ingest_file
from clients.models import Client, Document
from clients.progress import Progress
from clients.release import release
from partnerspace.enterprise import clean_enterprise_number
from partnerspace.models import Partner

# Hidden files and editor leftovers in a folder are not documents.
SKIPPED_PREFIXES = (".", "~")


class Command(BaseCommand):
    help = (
        "Import UBL invoices and CODA statements for one client, or for the clients of a "
        "firm (--partner alone: each document goes to the client whose enterprise number "
        "it names). Prints one line per document (imported, duplicate) or per file "
        "(rejected, with the reason); a file of several statements is taken whole or not "
        "at all. Exits 1 when any file was rejected."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="Files or folders (searched recursively).")
        parser.add_argument("--client", help="The client's enterprise number (any spelling).")
        parser.add_argument(
            "--partner",
            help=(
                "The firm's enterprise number: with --client, when several firms have this "
                "client; alone, to import a multi-client export for the firm's clients."
            ),
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
        if options["client"]:
            target = self._client(options["client"], options.get("partner"))
        elif options.get("partner"):
            target = self._partner(options["partner"])
        else:
            raise CommandError("Give --client, or --partner to import for the firm's clients.")
        self.for_firm = not options["client"]
        files = list(self._files(options["paths"]))
        counts = {"imported": 0, "duplicate": 0, "rejected": 0}
        progress = Progress(len(files), stream=sys.stderr, enabled=len(files) >= 50)
        for path in files:
            for outcome, where, detail in self._import(
                target, path, options["category"], options["release"]
            ):
                counts[outcome] += 1
                line = f"{outcome}: {path}{where}" + (f": {detail}" if detail else "")
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

    def _partner(self, number):
        try:
            number = clean_enterprise_number(number)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        partner = Partner.objects.filter(enterprise_number=number).first()
        if partner is None:
            raise CommandError(f"No firm with enterprise number {number}.")
        return partner

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

    def _import(self, target, path, category, do_release):
        """(outcome, where in the file, detail) per document; one line for a refused file."""
        try:
            fileobj = path.open("rb")
        except OSError as exc:
            return [("rejected", "", exc.strerror or str(exc))]
        # The size on disk is checked before reading: a huge file is refused unread.
        with fileobj:
            size = os.fstat(fileobj.fileno()).st_size
            try:
                results = ingest_file(target, path.name, fileobj, size=size, category=category)
            except IntakeError as exc:
                return [("rejected", "", "; ".join(exc.problems))]
        lines = []
        for position, result in enumerate(results, start=1):
            if do_release:
                release(result.document)
            where = f" [{position}/{len(results)}]" if len(results) > 1 else ""
            detail = self._describe(result.document)
            if result.created:
                lines.append(("imported", where, detail))
            else:
                lines.append(("duplicate", where, self._duplicate(result)))
        return lines

    def _describe(self, document) -> str:
        """ "Credit note CN-7", "Statement 012 of BE68…", with the client for a firm."""
        text = f"{document.get_kind_display()} {document.number}".strip()
        if document.category == Document.Category.REPORT and document.details.get("account"):
            text += f" of {document.details['account']}"
        if self.for_firm:
            text += f" for {document.client.name}"
        return text

    def _duplicate(self, result) -> str:
        first = result.document
        received = timezone.localtime(first.received_at).strftime("%d/%m/%Y")
        same = "the same file as" if result.same_bytes else "the same document as"
        return (
            f"{self._describe(first)}: {same} the one imported from {first.original_name} "
            f"on {received} (document {first.pk})"
        )
