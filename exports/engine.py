"""The export engine: plan jobs on release, claim them per destination, deliver, retry.

Batches follow the connection, not the client: one claim takes the due jobs of one
installation across every client it serves, the connector is opened once, and each
outcome is recorded on its job as it happens, so a worker that dies loses at most the
job it was sending (its lease runs out and the sweeper hands it out again; file names are
deterministic, so the destination sees the same file, not a second one).
"""

import logging
import os
import random
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from clients.models import Document
from exports import slots
from exports.models import ExportAttempt, ExportJob
from extensions import paths, registry
from extensions.connectors.base import (
    ConnectorError,
    ExportFile,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
)
from extensions.models import Installation, Integration

logger = logging.getLogger(__name__)

Status = ExportJob.Status
Outcome = ExportAttempt.Outcome
DUE = (Status.PENDING, Status.FAILED)


def lease() -> timedelta:
    return timedelta(seconds=settings.EXPORT_LEASE_SECONDS)


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """About a minute, doubling per attempt, capped at six hours, with ±20 % jitter."""
    base = settings.EXPORT_RETRY_BASE_SECONDS
    cap = settings.EXPORT_RETRY_CAP_SECONDS
    delay = base * 2 ** min(max(0, attempts - 1), 30)
    delay *= random.uniform(0.8, 1.2)  # noqa: S311 - spreading retries, not security
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=min(cap, delay))


@dataclass(frozen=True)
class Destination:
    """What one batch connects to: an installation, or one integration of it."""

    installation_id: int
    integration_id: int | None = None


def destination_of(integration: Integration) -> Destination:
    connector = integration.installation.connector_class
    if connector is not None and connector.connection_scope == "integration":
        return Destination(integration.installation_id, integration.pk)
    return Destination(integration.installation_id)


# --- planning -----------------------------------------------------------------------


def plan(document: Document) -> set[Destination]:
    """One job per integration that takes this document; safe to run twice."""
    integrations = (
        Integration.objects.current()
        .filter(client_id=document.client_id, active=True, activated_at__lte=document.released_at)
        .select_related("installation")
    )
    now = timezone.now()
    chosen = [i for i in integrations if i.takes(document.category)]
    ExportJob.objects.bulk_create(
        [
            ExportJob(
                document=document,
                integration=integration,
                installation_id=integration.installation_id,
                next_attempt_at=now,
            )
            for integration in chosen
        ],
        ignore_conflicts=True,
    )
    return {destination_of(i) for i in chosen}


def revive(jobs) -> int:
    """Make jobs due again from a fresh attempt count (re-send, backfill of dead jobs)."""
    return jobs.exclude(status=Status.RUNNING).update(
        status=Status.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        last_error="",
        claim_token=None,
        lease_until=None,
    )


def resend(job: ExportJob) -> Destination:
    revive(ExportJob.objects.filter(pk=job.pk))
    return destination_of(job.integration)


# --- claiming -----------------------------------------------------------------------


def _due(destination: Destination, now):
    jobs = ExportJob.objects.filter(
        installation_id=destination.installation_id,
        status__in=DUE,
        next_attempt_at__lte=now,
        integration__active=True,
        integration__removed_at__isnull=True,
    )
    if destination.integration_id is not None:
        jobs = jobs.filter(integration_id=destination.integration_id)
    return jobs


def claim(destination: Destination, limit: int) -> tuple[uuid.UUID, list[ExportJob]]:
    """Mark up to ``limit`` due jobs as ours with a lease; no two workers get the same job.

    PostgreSQL skips rows another worker has locked; SQLite serialises writers (the
    transaction starts IMMEDIATE), so the conditional UPDATE below is enough there.
    """
    token = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        candidates = _due(destination, now).order_by("next_attempt_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        if not ids:
            return token, []
        ExportJob.objects.filter(pk__in=ids, status__in=DUE).update(
            status=Status.RUNNING,
            claim_token=token,
            claimed_at=now,
            lease_until=now + lease(),
        )
    jobs = list(
        ExportJob.objects.filter(claim_token=token, status=Status.RUNNING)
        .select_related("document__client", "integration")
        .order_by("pk")
    )
    return token, jobs


# --- delivering ---------------------------------------------------------------------


@dataclass
class Report:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    waiting: int = 0
    batches: int = 0
    stopped: str = ""
    errors: list[str] = field(default_factory=list)


def deliver(destination: Destination, *, limit: int | None = None, help_with=None) -> Report:
    """Drain a destination's due jobs over one connection, batch after batch.

    At most ``installation.connections`` workers deliver to one destination at a time,
    each holding a slot; a worker that sees more work than its batch calls ``help_with``
    (which queues another worker) before it starts sending.
    """
    report = Report()
    slots.clear_wake(destination)
    installation = Installation.objects.filter(pk=destination.installation_id).first()
    if installation is None or not installation.can_export:
        report.stopped = "inactive"
        return report
    slot = slots.acquire(destination, installation.connections)
    if slot is None:
        report.stopped = "busy"
        return report
    try:
        size = limit or settings.EXPORT_BATCH_SIZE
        token, jobs = claim(destination, size)
        if jobs:
            if help_with and _due(destination, timezone.now()).exists():
                help_with(destination)
            _drain(installation, destination, _Batch(token, list(jobs)), size, slot, report)
    finally:
        slots.release(slot)
    return report


@dataclass
class _Batch:
    token: uuid.UUID
    pending: list


def _drain(installation, destination, batch, size, slot, report) -> None:
    """Send claimed jobs over one connection, claiming the next batch on the same one."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    connector = installation.connector_instance()
    if destination.integration_id is not None:
        connector.destination = _IntegrationDestination(installation, batch.pending[0].integration)
    started = timezone.now()
    try:
        with connector.open() as session:
            while batch.pending:
                report.batches += 1
                while batch.pending:
                    job = batch.pending[0]
                    started = timezone.now()
                    _renew_lease_if_needed(batch.token, job)
                    try:
                        receipt = session.send(build_file(job, connector))
                    except PermanentError as exc:
                        batch.pending.pop(0)
                        _record_failure(job, exc, started, worker, permanent=True)
                        report.dead += 1
                        continue
                    batch.pending.pop(0)
                    _record_delivery(job, receipt.reference, started, worker)
                    report.delivered += 1
                if not Installation.objects.filter(pk=installation.pk).get().can_export:
                    report.stopped = "inactive"  # switched off meanwhile: the rest waits
                    break
                slots.renew(slot)
                batch.token, jobs = claim(destination, size)
                batch.pending = list(jobs)
    except ReauthorizationRequired as exc:
        _stop_for_a_person(installation, batch.pending, exc, report)
        return
    except TransientError as exc:
        _stop_on_transient(installation, batch.pending, exc, started, worker, report)
        return
    except PermanentError as exc:
        # Refused before any file: the configuration is wrong, not this document.
        _stop_for_a_person(installation, batch.pending, exc, report)
        return
    except ConnectorError as exc:
        _stop_on_transient(
            installation, batch.pending, TransientError(str(exc)), started, worker, report
        )
        return
    except Exception as exc:
        logger.exception("export to installation %s failed unexpectedly", installation.pk)
        error = TransientError(_("Unexpected error: %(kind)s") % {"kind": type(exc).__name__})
        _stop_on_transient(installation, batch.pending, error, started, worker, report)
        return
    if installation.status != Installation.Status.OK:
        Installation.objects.filter(pk=installation.pk).update(
            status=Installation.Status.OK, last_error=""
        )


def _stop_for_a_person(installation, pending, exc, report) -> None:
    _needs_a_person(installation, exc)
    _release(pending, note=str(exc))
    report.waiting += len(pending)
    report.stopped = "reconnect"


def _stop_on_transient(installation, pending, exc, started, worker, report) -> None:
    """The job being sent counts an attempt; the rest of the batch waits with it."""
    if pending:
        first, rest = pending[0], pending[1:]
        next_at = _record_failure(first, exc, started, worker, permanent=False)
        report.retrying += 1
        if rest:
            _release(rest, note=str(exc), next_attempt_at=next_at)
            report.waiting += len(rest)
    Installation.objects.filter(pk=installation.pk).update(
        status=Installation.Status.FAILING, last_error=str(exc)
    )
    report.errors.append(str(exc))
    report.stopped = "transient"


def _renew_lease_if_needed(token, job):
    if job.lease_until and job.lease_until - timezone.now() < lease() / 3:
        ExportJob.objects.filter(claim_token=token, status=Status.RUNNING).update(
            lease_until=timezone.now() + lease()
        )


class _IntegrationDestination:
    """For connectors whose credentials are per client: the installation plus the client's."""

    def __init__(self, installation, integration):
        self.pk = installation.pk
        self.settings = {**installation.settings, **integration.client_settings}
        self.secrets = {**installation.secrets, **integration.client_secrets}


def build_file(job: ExportJob, connector) -> ExportFile:
    document = job.document
    client = document.client
    integration = job.integration
    template = connector.folder_template(integration.client_settings, document.category)
    folder = (
        paths.render(
            template, client=client, category=document.category, today=timezone.localdate()
        )
        if template is not None
        else ()
    )
    with document.file.open("rb") as stored:
        content = stored.read()
    return ExportFile(
        content=content,
        filename=paths.file_name(document),
        folder=folder,
        content_type=document.content_type,
        metadata={
            "document_id": str(document.pk),
            "category": document.category,
            "kind": document.kind,
            "number": document.number,
            "client_number": client.enterprise_number,
            "client_name": client.name,
            "external_id": client.external_id,
            "job_id": str(job.pk),
        },
        client_settings=integration.client_settings,
        client_secrets=integration.client_secrets,
        idempotency_key=str(job.pk),
    )


# --- recording outcomes ---------------------------------------------------------------


def _attempt(job, outcome, started, worker, *, error="", reference=""):
    ExportAttempt.objects.create(
        job=job,
        number=job.attempts + 1,
        started_at=started,
        finished_at=timezone.now(),
        outcome=outcome,
        error=error[:2000],
        remote_reference=reference[:500],
        worker=worker[:100],
    )


def _record_delivery(job, reference, started, worker):
    now = timezone.now()
    with transaction.atomic():
        _attempt(job, Outcome.DELIVERED, started, worker, reference=reference)
        ExportJob.objects.filter(pk=job.pk).update(
            status=Status.DELIVERED,
            attempts=F("attempts") + 1,
            delivered_at=now,
            remote_reference=reference[:500],
            last_error="",
            claim_token=None,
            lease_until=None,
            next_attempt_at=None,
        )
        Integration.objects.filter(pk=job.integration_id).update(
            last_success_at=now, consecutive_failures=0
        )


def _record_failure(job, exc, started, worker, *, permanent: bool):
    attempts = job.attempts + 1
    dead = permanent or attempts >= settings.EXPORT_MAX_ATTEMPTS
    next_at = (
        None if dead else timezone.now() + backoff(attempts, getattr(exc, "retry_after", None))
    )
    message = str(exc)
    with transaction.atomic():
        _attempt(
            job,
            Outcome.PERMANENT if permanent else Outcome.TRANSIENT,
            started,
            worker,
            error=message,
        )
        ExportJob.objects.filter(pk=job.pk).update(
            status=Status.DEAD if dead else Status.FAILED,
            attempts=attempts,
            last_error=message[:2000],
            claim_token=None,
            lease_until=None,
            next_attempt_at=next_at,
        )
        Integration.objects.filter(pk=job.integration_id).update(
            last_failure_at=timezone.now(),
            last_error=message[:2000],
            consecutive_failures=F("consecutive_failures") + 1,
        )
    return next_at


def _release(jobs, *, note: str, next_attempt_at=None):
    """Give claimed jobs back untouched: they were not attempted."""
    ExportJob.objects.filter(pk__in=[j.pk for j in jobs], status=Status.RUNNING).update(
        status=Status.PENDING,
        claim_token=None,
        lease_until=None,
        next_attempt_at=next_attempt_at or timezone.now(),
        last_error=note[:2000],
    )


def _needs_a_person(installation, exc):
    Installation.objects.filter(pk=installation.pk).update(
        status=Installation.Status.RECONNECT, last_error=str(exc)
    )


# --- sweeping -----------------------------------------------------------------------


def reclaim_expired_leases() -> int:
    """Jobs whose worker vanished mid-batch: count the attempt and make them due again."""
    now = timezone.now()
    expired = ExportJob.objects.filter(status=Status.RUNNING, lease_until__lt=now)
    message = _("The worker stopped while sending; sending again.")
    dead = expired.filter(attempts__gte=settings.EXPORT_MAX_ATTEMPTS - 1).update(
        status=Status.DEAD,
        attempts=F("attempts") + 1,
        claim_token=None,
        lease_until=None,
        last_error=message,
    )
    retried = expired.update(
        status=Status.FAILED,
        attempts=F("attempts") + 1,
        claim_token=None,
        lease_until=None,
        next_attempt_at=now,
        last_error=message,
    )
    return dead + retried


def due_destinations(installation_id: int | None = None) -> set[Destination]:
    """Every destination with a job due now whose installation may send."""
    now = timezone.now()
    jobs = ExportJob.objects.filter(status__in=DUE, next_attempt_at__lte=now)
    if installation_id is not None:
        jobs = jobs.filter(installation_id=installation_id)
    rows = (
        jobs.filter(
            Q(installation__active=True)
            & Q(installation__removed_at__isnull=True)
            & ~Q(installation__status=Installation.Status.RECONNECT)
        )
        .values_list("installation_id", "installation__connector", "integration_id")
        .distinct()
    )
    destinations = set()
    for installation_id, connector_key, integration_id in rows.iterator():
        connector = registry.get(connector_key)
        per_client = connector is not None and connector.connection_scope == "integration"
        destinations.add(Destination(installation_id, integration_id if per_client else None))
    return destinations
