"""``manage.py seed_demo``: a demo firm with users, clients and documents, idempotently.

It lives in ``exports``, the app at the top of the import chain, so that it can also set
up demo extensions and integrations without ``clients`` importing them.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from clients import demo


class Command(BaseCommand):
    help = (
        "Create or refresh the demo accounting firm, its users (demo, member), clients, "
        "invoices and bank statements. Safe to run again: nothing is duplicated. The "
        "password comes from DEMO_PASSWORD (with DEBUG on and none set: "
        f"'{demo.DEFAULT_PASSWORD}')."
    )

    def handle(self, *args, **options):
        with transaction.atomic():
            demo.seed(stdout=self.stdout)
