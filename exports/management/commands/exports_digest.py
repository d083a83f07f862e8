"""manage.py exports_digest: e-mail each firm's owners the exports that failed since the
last digest (the daily django-q2 schedule runs it)."""

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from exports import digest


class Command(BaseCommand):
    help = "E-mail each firm's owners the exports that failed since the last digest."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Say which firms would get a digest; send and record nothing.",
        )

    def handle(self, *args, dry_run=False, **options):
        digests = digest.collect()
        if not digests:
            self.stdout.write(_("No failed exports since the last digest."))
            return
        for firm in digests:
            line = digest.describe(firm)
            if dry_run:
                self.stdout.write(_("Would send: %(line)s") % {"line": line})
                continue
            sent = digest.send(firm)
            emails = ngettext("%(count)d e-mail", "%(count)d e-mails", sent) % {"count": sent}
            self.stdout.write(_("Sent: %(line)s (%(emails)s)") % {"line": line, "emails": emails})
