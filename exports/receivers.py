"""Planning hooks: a released document gets its jobs in the release transaction."""

from django.db import transaction
from django.dispatch import receiver

from clients.signals import document_released
from exports import engine, tasks
from extensions.signals import installation_ready


@receiver(document_released)
def plan_exports(sender, document, **kwargs):
    destinations = engine.plan(document)
    if destinations:
        transaction.on_commit(lambda: tasks.enqueue(destinations))


@receiver(installation_ready)
def send_what_waited(sender, installation, **kwargs):
    tasks.enqueue(engine.due_destinations(installation.pk))
