"""django-q2 tasks: deliver one destination, sweep every minute."""

import logging

from django_q.models import Schedule
from django_q.tasks import async_task

from exports import engine, slots

logger = logging.getLogger(__name__)

SWEEP_SCHEDULE = "exports: sweep"


def deliver(installation_id: int, integration_id: int | None = None) -> dict:
    report = engine.deliver(
        engine.Destination(installation_id, integration_id),
        help_with=lambda d: enqueue([d]),
        requeue=lambda d: enqueue([d]),  # the budget ran out: the next task goes on
    )
    return {
        "delivered": report.delivered,
        "retrying": report.retrying,
        "dead": report.dead,
        "waiting": report.waiting,
        "batches": report.batches,
        "stopped": report.stopped,
    }


def enqueue(destinations) -> None:
    """Queue a delivery for each destination that has none queued yet."""
    for destination in destinations:
        if slots.wake(destination):
            enqueue_task(destination)


def enqueue_task(destination) -> None:
    async_task(
        "exports.tasks.deliver",
        destination.installation_id,
        destination.integration_id,
        task_name=f"deliver {destination.installation_id}/{destination.integration_id or '-'}",
        group="exports",
    )


def sweep() -> dict:
    """Hand expired leases out again and wake every destination with due jobs."""
    reclaimed = engine.reclaim_expired_leases()
    destinations = engine.due_destinations()
    enqueue(destinations)
    if reclaimed:
        logger.warning("reclaimed %d export jobs whose worker stopped", reclaimed)
    return {"reclaimed": reclaimed, "destinations": len(destinations)}


def ensure_schedule(**kwargs) -> None:
    """Created on migrate, so every deployment has exactly one sweeper."""
    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE,
        defaults={
            "func": "exports.tasks.sweep",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
