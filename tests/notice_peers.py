"""What the notice tests share: a destination the test switches between failing, refusing
the sign-in and working, and running the notice tasks queued in django-q2's broker the
way a worker does."""

from contextlib import contextmanager
from datetime import timedelta
from pydoc import locate

from django.conf import settings
from django.utils import timezone

from extensions.connectors.base import (
    ClientRefused,
    Connector,
    ReauthorizationRequired,
    Receipt,
    TransientError,
)
from extensions.models import Installation, Integration
from extensions.notices import TASK


class Switchable(Connector):
    """``mode``: "working", "failing" (the server is down), "reconnect" (sign-in refused)
    or "client refused" (no write permission in the client's folder)."""

    key = "test-switchable"
    name = "Test archive"
    description = "A destination the test switches, for the notice tests."
    category = "storage"
    mode = "working"
    received: list

    @contextmanager
    def open(self):
        if type(self).mode == "reconnect":
            raise ReauthorizationRequired("The archive refused the stored sign-in.")
        yield self

    def send(self, export_file) -> Receipt:
        if type(self).mode == "failing":
            raise TransientError("The archive did not answer within 60 seconds.")
        if type(self).mode == "client refused":
            raise ClientRefused("No write permission in this client's folder.")
        type(self).received.append(export_file)
        return Receipt(reference=export_file.filename)

    def check(self) -> str:
        if type(self).mode not in ("working", "client refused"):
            raise ReauthorizationRequired("The archive refused the stored sign-in.")
        return "Ready."


def install(connector, partner, clients):
    installation = Installation.objects.create(
        partner=partner, connector=connector.key, name="Archief Lambert"
    )
    integrations = [
        Integration.objects.create(
            client=client,
            installation=installation,
            categories=["purchase", "sales", "report"],
            activated_at=timezone.now() - timedelta(minutes=5),
        )
        for client in clients
    ]
    return installation, integrations


def queued_notices() -> list[dict]:
    """The notice tasks waiting in the broker the settings name, without taking them."""
    from django_q.brokers import get_broker
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    broker = get_broker()
    if settings.REDIS_URL:
        packages = broker.connection.lrange(broker.list_key, 0, -1)
    else:
        packages = OrmQ.objects.filter(key=broker.list_key).values_list("payload", flat=True)
    tasks = [SignedPackage.loads(package) for package in packages]
    return [task for task in tasks if task["func"] == TASK]


def run_notices() -> int:
    """Run every queued notice task as a worker would, then empty the queue."""
    from django_q.brokers import get_broker

    tasks = queued_notices()
    for task in tasks:
        locate(task["func"])(*task["args"], **task["kwargs"])
    get_broker().purge_queue()
    return len(tasks)
