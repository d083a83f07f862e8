"""``manage.py seed_demo``: a demo firm with users, clients and documents, idempotently.

It lives in ``exports``, the app at the top of the import chain, so that it can also set
up demo extensions and integrations without ``clients`` importing them.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from clients import demo
from clients.models import Client
from exports.demo_sftp import DEMO_INSTALLATION, install_demo_extension
from partnerspace.models import Partner


class Command(BaseCommand):
    help = (
        "Create or refresh the demo accounting firm, its users (demo, member; operator for "
        "the admin), clients, invoices and bank statements. Safe to run again: nothing is "
        "duplicated. The password comes from DEMO_PASSWORD (with DEBUG on and none set: "
        f"'{demo.DEFAULT_PASSWORD}')."
    )

    def handle(self, *args, **options):
        with transaction.atomic():
            demo.seed(stdout=self.stdout)
            partner = Partner.objects.get(enterprise_number=demo.partner_enterprise_number())
            clients = Client.objects.for_partner(partner).order_by("external_id")[:2]
            install_demo_extension(partner, clients)
        self.stdout.write(
            f"{DEMO_INSTALLATION}: exports of {', '.join(c.name for c in clients)} land in "
            "var/demo-sftp/ once a document is approved, sent or published."
        )
