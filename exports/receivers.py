"""Planning hooks: a released document gets its jobs in the release transaction."""

from django.db import transaction
from django.dispatch import receiver

from clients.signals import document_released
from exports import engine, tasks
from extensions.signals import installation_ready


class _WakeOnCommit:
    """The destinations one transaction released documents for, woken once at commit.

    Releasing a thousand documents in one transaction then queues one callback, not a
    thousand; a rolled-back transaction drops it with the rest of its callbacks.
    """

    def __init__(self):
        self.destinations = set()

    def __call__(self):
        tasks.enqueue(self.destinations)

    @classmethod
    def add(cls, destinations):
        connection = transaction.get_connection()
        pending = next(
            (f for *_, f, _robust in connection.run_on_commit if isinstance(f, cls)), None
        )
        if pending is None or not connection.in_atomic_block:
            pending = cls()
            pending.destinations.update(destinations)
            transaction.on_commit(pending)
        else:
            pending.destinations.update(destinations)


@receiver(document_released)
def plan_exports(sender, document, **kwargs):
    destinations = engine.plan(document)
    if destinations:
        _WakeOnCommit.add(destinations)


@receiver(installation_ready)
def send_what_waited(sender, installation, **kwargs):
    tasks.enqueue(engine.due_destinations(installation.pk))
