"""How many workers deliver to one installation, and whether one is already on its way
to a destination.

Both live in the database, so they hold across every worker process and machine, with
either broker. Slots are the installation's *Parallel connections*, shared by all its
clients even when each client has a connection of its own (per-client credentials);
wake markers are per destination. A slot is leased like a job: a worker that dies frees
it when the lease runs out. A wake marker older than ``STALE_WAKE`` is ignored, so a task
lost by the broker never silences a destination (the sweeper wakes it again within a
minute).
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from exports.models import DeliverySlot, DeliveryWake

STALE_WAKE = timedelta(minutes=2)


@dataclass(frozen=True)
class Slot:
    pk: int
    holder: uuid.UUID


def _lease() -> timedelta:
    return timedelta(seconds=settings.EXPORT_LEASE_SECONDS)


def _scope(destination) -> dict:
    """A destination's wake marker."""
    return {
        "installation_id": destination.installation_id,
        "scope": destination.integration_id or 0,
    }


def _slots_of(destination) -> dict:
    """Every destination of one installation draws on the same slots."""
    return {"installation_id": destination.installation_id, "scope": 0}


def acquire(destination, limit: int) -> Slot | None:
    """A free slot of the installation among the first ``limit``, or None when all are
    taken."""
    scope = _slots_of(destination)
    DeliverySlot.objects.bulk_create(
        [DeliverySlot(number=n, **scope) for n in range(max(1, limit))],
        ignore_conflicts=True,
    )
    holder, now = uuid.uuid4(), timezone.now()
    free = Q(holder__isnull=True) | Q(lease_until__lt=now)
    candidates = DeliverySlot.objects.filter(free, number__lt=max(1, limit), **scope)
    for pk in candidates.order_by("number").values_list("pk", flat=True):
        taken = DeliverySlot.objects.filter(free, pk=pk).update(
            holder=holder, lease_until=now + _lease()
        )
        if taken:
            return Slot(pk, holder)
    return None


def renew(slot: Slot) -> None:
    DeliverySlot.objects.filter(pk=slot.pk, holder=slot.holder).update(
        lease_until=timezone.now() + _lease()
    )


def release(slot: Slot) -> None:
    DeliverySlot.objects.filter(pk=slot.pk, holder=slot.holder).update(
        holder=None, lease_until=None
    )


def wake(destination) -> bool:
    """True when the caller should queue a delivery task: none is queued yet.

    Most releases find a task already queued (a month end releases thousands for one
    destination): that is answered by one read, without a write that would wait for the
    workers' transactions on SQLite. Only a missing or stale marker is written, with a
    conditional UPDATE, so two releases at once still queue a single task.
    """
    scope = _scope(destination)
    now = timezone.now()
    queued = DeliveryWake.objects.filter(**scope).values_list("queued_at", flat=True).first()
    if queued is not None and queued >= now - STALE_WAKE:
        return False
    DeliveryWake.objects.get_or_create(**scope)
    return bool(
        DeliveryWake.objects.filter(
            Q(queued_at__isnull=True) | Q(queued_at__lt=now - STALE_WAKE), **scope
        ).update(queued_at=now)
    )


def clear_wake(destination) -> None:
    """A delivery task started: later releases must queue a new one."""
    DeliveryWake.objects.filter(**_scope(destination)).update(queued_at=None)
