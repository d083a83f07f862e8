"""manage.py exports_backfill: export documents released before an integration existed."""

import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from clients.progress import Progress
from exports import backfill
from extensions.models import Installation, Integration
from partnerspace.enterprise import clean_enterprise_number

LARGE = 1000  # documents: below this no progress bar


class Command(BaseCommand):
    help = (
        "Plan the export of documents released since a date to an installed extension, "
        "for one client or every client it serves; documents already exported are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--installation", type=int, required=True, help="Installed extension id."
        )
        parser.add_argument("--client", help="Client enterprise number (default: every client).")
        parser.add_argument(
            "--since", required=True, help="First release date (YYYY-MM-DD or DD/MM/YYYY)."
        )
        parser.add_argument("--until", help="Last release date, included.")
        parser.add_argument("--dry-run", action="store_true", help="Count, plan nothing.")

    def handle(self, *args, **options):
        since = self._date(options["since"], "--since")
        until = self._date(options["until"], "--until") if options["until"] else None
        if until is not None and until < since:
            raise CommandError(f"--until {until} is before --since {since}.")
        installation = Installation.objects.filter(
            pk=options["installation"], removed_at__isnull=True
        ).first()
        if installation is None:
            raise CommandError(f"No installed extension with id {options['installation']}.")
        integrations = (
            Integration.objects.current()
            .filter(installation=installation)
            .select_related("installation", "client")
            .order_by("client__name", "pk")
        )
        if options["client"]:
            try:
                number = clean_enterprise_number(options["client"])
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            integrations = integrations.filter(client__enterprise_number=number)
            if not integrations:
                raise CommandError(
                    f"Client {number} has no integration with {installation.name} "
                    "(or is not a client of its firm)."
                )
        surveys = [(i, backfill.survey(i, since, until)) for i in integrations]
        missing = sum(c.missing for _i, counts in surveys for c in counts)
        results = surveys
        if not options["dry_run"]:
            progress = Progress(missing, stream=sys.stderr, enabled=missing >= LARGE)
            results = [(i, backfill.plan(i, since, until, progress=progress)) for i, _c in surveys]
            progress.done()
        self._summary(results, dry_run=options["dry_run"])

    def _date(self, value, option):
        try:
            return backfill.parse_date(value)
        except ValueError:
            raise CommandError(f"{option} {value}: expected YYYY-MM-DD or DD/MM/YYYY.") from None

    def _summary(self, results, *, dry_run):
        planned_word = "would plan" if dry_run else "planned"
        self.stdout.write(f"{'client':<40} {'category':<10} found  exported  {planned_word}")
        total = 0
        for integration, counts in results:
            for count in counts:
                planned = count.missing if dry_run else count.planned
                total += planned
                name = f"{integration.client.name} ({integration.client.enterprise_number})"
                self.stdout.write(
                    f"{name[:40]:<40} {count.category:<10} {count.found:>5}  "
                    f"{count.exported:>8}  {planned:>7}"
                )
        verb = "would be planned" if dry_run else "planned"
        self.stdout.write(f"{total} jobs {verb} for {len(results)} clients.")
