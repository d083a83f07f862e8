"""manage.py exports_retry: send failed or dead export jobs again (the backfill)."""

import datetime
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from clients.progress import Progress
from exports import engine, tasks
from exports.models import ExportJob
from extensions.models import Installation, Integration
from partnerspace.enterprise import clean_enterprise_number

CHUNK = 1000


class Command(BaseCommand):
    help = "Make failed or dead export jobs due again, then wake their destinations."

    def add_arguments(self, parser):
        parser.add_argument(
            "--status",
            choices=[ExportJob.Status.DEAD, ExportJob.Status.FAILED],
            default=ExportJob.Status.DEAD,
            help="Which jobs to revive (default: dead).",
        )
        parser.add_argument("--installation", type=int, help="Installed extension id.")
        parser.add_argument("--client", help="Client enterprise number.")
        parser.add_argument(
            "--since", help="Only jobs whose last change is on or after this date (YYYY-MM-DD)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, **options):
        jobs = ExportJob.objects.all()
        if options["installation"]:
            jobs = jobs.filter(installation_id=options["installation"])
        if options["client"]:
            try:
                number = clean_enterprise_number(options["client"])
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            jobs = jobs.filter(document__client__enterprise_number=number)
        if options["since"]:
            try:
                since = datetime.date.fromisoformat(options["since"])
            except ValueError:
                raise CommandError(f"--since {options['since']}: expected YYYY-MM-DD.") from None
            start = timezone.make_aware(datetime.datetime.combine(since, datetime.time.min))
            jobs = jobs.filter(updated_at__gte=start)
        # Their destinations that waited for a person to fix them are tried again too.
        waiting_on = jobs.filter(installation__status=Installation.Status.ATTENTION).values_list(
            "installation_id", flat=True
        )
        clients_waiting = jobs.filter(
            integration__status=Integration.Status.ATTENTION
        ).values_list("integration_id", flat=True)
        jobs = jobs.filter(status=options["status"])

        total = jobs.count()
        if options["dry_run"]:
            self.stdout.write(f"{total} {options['status']} jobs would be sent again.")
            return
        resumed = engine.resume(set(waiting_on), set(clients_waiting))
        progress = Progress(total, stream=sys.stderr, enabled=total >= CHUNK)
        revived = 0
        ids = jobs.order_by("pk").values_list("pk", flat=True)
        chunk = []
        for pk in ids.iterator(chunk_size=CHUNK):
            chunk.append(pk)
            if len(chunk) == CHUNK:
                revived += self._revive(chunk, options["status"], progress)
                chunk = []
        if chunk:
            revived += self._revive(chunk, options["status"], progress)
        progress.done()
        destinations = engine.due_destinations(options["installation"])
        tasks.enqueue(destinations)
        if resumed:
            self.stdout.write(f"{resumed} destinations that needed attention are tried again.")
        self.stdout.write(
            f"{revived} jobs will be sent again to {len(destinations)} destinations."
        )

    def _revive(self, chunk, status, progress):
        count = engine.revive(ExportJob.objects.filter(pk__in=chunk, status=status))
        progress.step(len(chunk))
        return count
