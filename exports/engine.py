"""The export engine: plan jobs on release, claim them per destination, deliver, retry.

Batches follow the connection, not the client: one claim takes the due jobs of one
installation across every client it serves, the connector is opened once (a session that
can keep several files in flight, as SFTP's does, gets the whole batch at once), and
deliveries are recorded in groups, a few statements for up to a hundred jobs, never
before the file is in place. A worker that dies loses at most the deliveries it had not
recorded yet and the files it had in flight: their lease runs out and the sweeper hands
them out again; file names are deterministic, so the destination sees the same file, not
a second one. Refusals and failures are recorded as they happen; a refusal a connector
ties to one client (its settings, its own credentials) stops that client's integration
only, and the other clients' files go on.
"""

import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, DateTimeField, F, Min, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext as _

from clients.models import Document
from exports import slots
from exports.models import ExportAttempt, ExportJob
from extensions import formats, notices, paths, registry
from extensions.connectors.base import (
    ClientReauthorizationRequired,
    ClientRefused,
    ConnectorError,
    DestinationRefused,
    ExportFile,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
)
from extensions.models import Installation, Integration, IntegrationDestination

logger = logging.getLogger(__name__)

Status = ExportJob.Status
Outcome = ExportAttempt.Outcome
DUE = (Status.PENDING, Status.FAILED)
# Refusals a connector ties to one client's settings or credentials: that client waits.
CLIENT_SCOPED = (ClientRefused, ClientReauthorizationRequired)


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
    chosen = [i for i in integrations if i.takes(document.category)]
    _create_jobs((document, integration) for integration in chosen)
    return {destination_of(i) for i in chosen}


def plan_backfill(integration: Integration, documents) -> int:
    """Jobs for documents released before the integration was activated (a person asked
    for them), claimed behind new releases; the category rules apply as on release and a
    document already planned for the integration is skipped. Returns the jobs planned."""
    chosen = [d for d in documents if integration.takes(d.category)]
    _create_jobs(((d, integration) for d in chosen), backfill=True)
    return len(chosen)


def _create_jobs(pairs, *, backfill: bool = False) -> None:
    now = timezone.now()
    ExportJob.objects.bulk_create(
        [
            ExportJob(
                document=document,
                integration=integration,
                installation_id=integration.installation_id,
                next_attempt_at=now,
                backfill=backfill,
            )
            for document, integration in pairs
        ],
        ignore_conflicts=True,
    )


def revive(jobs) -> int:
    """Make jobs due again from a fresh attempt count (re-send, backfill of dead jobs),
    under a new idempotency key: a person asked for it to be taken again."""
    return jobs.exclude(status=Status.RUNNING).update(
        status=Status.PENDING,
        attempts=0,
        resends=F("resends") + 1,
        next_attempt_at=timezone.now(),
        last_error="",
        claim_token=None,
        lease_until=None,
    )


def resume(installation_ids, integration_ids=()) -> int:
    """A person says the destination is fixed: installations and integrations that needed
    attention send again (those that need new credentials wait for them: only a check
    proves those)."""
    installations = Installation.objects.filter(
        pk__in=installation_ids, status=Installation.Status.ATTENTION
    ).update(status=Installation.Status.OK, last_error="")
    integrations = Integration.objects.filter(
        pk__in=integration_ids, status=Integration.Status.ATTENTION
    ).resume()
    for pk in installation_ids:
        notices.installation_changed(pk)
    notices.integrations_changed(integration_ids)
    return installations + integrations


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
    ).exclude(integration__status__in=Integration.WAITING_FOR_A_PERSON)
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
        candidates = _due(destination, now).order_by("backfill", "next_attempt_at", "pk")
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
        .defer(*_NOT_NEEDED_TO_SEND)
        .order_by("pk")
    )
    return token, jobs


# What sending never reads: left in the database (timestamps cost a parse each on SQLite).
_NOT_NEEDED_TO_SEND = (
    "created_at",
    "updated_at",
    "claimed_at",
    "delivered_at",
    "last_error",
    "remote_reference",
    "document__details",
    "document__received_at",
    "document__client__created_at",
    "integration__activated_at",
    "integration__last_success_at",
    "integration__last_failure_at",
    "integration__last_error",
    "integration__created_at",
)


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


def deliver(
    destination: Destination,
    *,
    limit: int | None = None,
    help_with=None,
    requeue=None,
    clock=time.monotonic,
) -> Report:
    """Drain a destination's due jobs over one connection, batch after batch.

    At most ``installation.connections`` workers deliver to one destination at a time,
    each holding a slot; a worker that sees more work than its batch calls ``help_with``
    (which queues another worker) before it starts sending.

    A drain stops starting files once ``EXPORT_DRAIN_SECONDS`` (read on ``clock``) are
    spent, below django-q's task timeout, which would kill the worker mid-file: the files
    in flight are finished and recorded, the rest is given back due, the slot is freed,
    and ``requeue`` (which queues a new delivery unless one is queued) continues later.
    """
    budget = _Budget(settings.EXPORT_DRAIN_SECONDS, clock)
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
            batch = _Batch(token, list(jobs))
            _drain(installation, destination, batch, size, slot, report, budget)
    finally:
        slots.release(slot)
    if report.stopped == "budget" and requeue is not None:
        requeue(destination)
    if destination.integration_id is not None and requeue is not None:
        # The installation's connections serve all its clients: a delivery that found
        # them all taken gave up, so the next clients due are woken now one is free.
        for other in _others_due(destination, installation.connections):
            requeue(other)
    return report


def _others_due(destination: Destination, limit: int) -> list[Destination]:
    """Up to ``limit`` other clients of a per-client installation with jobs due, those
    waiting longest first."""
    rows = (
        _due(Destination(destination.installation_id), timezone.now())
        .exclude(integration_id=destination.integration_id)
        .values("integration_id")
        .annotate(oldest=Min("next_attempt_at"))
        .order_by("oldest", "integration_id")
        .values_list("integration_id", flat=True)[:limit]
    )
    return [Destination(destination.installation_id, pk) for pk in rows]


class _Budget:
    """How long a drain may go on starting files; the first file always goes, so every
    drain makes progress whatever the budget."""

    def __init__(self, seconds: float, clock):
        self.clock = clock
        self.until = clock() + seconds
        self.started = 0  # files this drain started

    def allows_another(self) -> bool:
        if self.started and self.clock() >= self.until:
            return False
        self.started += 1
        return True

    @property
    def spent(self) -> bool:
        return self.clock() >= self.until


@dataclass
class _Batch:
    token: uuid.UUID
    pending: list
    started: dict = field(default_factory=dict)  # job pk → when its sending began
    blame: object = None  # the job a batch-stopping error belongs to, when known
    stopped: set = field(default_factory=set)  # integrations that now wait for a person

    def first_blamed(self) -> list:
        """``pending`` with the job the error belongs to first: it counts the attempt."""
        if self.blame is not None and self.blame in self.pending:
            return [self.blame, *(job for job in self.pending if job is not self.blame)]
        return self.pending

    def started_at(self, job):
        return self.started.get(job.pk) or timezone.now()


def _drain(installation, destination, batch, size, slot, report, budget) -> None:
    """Send claimed jobs over one connection, claiming the next batch on the same one
    until nothing is due or the time budget is spent."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    deliveries = _Deliveries(worker)
    folders: dict = {}  # rendered folders, for every batch of this connection
    # What a refusal stops: the installation, or the client whose own credentials this
    # connection uses.
    owner = installation
    try:
        connector = installation.connector_instance()
        if destination.integration_id is not None:
            owner = batch.pending[0].integration
            connector.destination = IntegrationDestination(installation, owner)
        try:
            with connector.open() as session:
                while batch.pending:
                    report.batches += 1
                    _send_batch(
                        session, connector, batch, deliveries, folders, worker, report, budget
                    )
                    deliveries.record()
                    if budget.spent:
                        if batch.pending or _due(destination, timezone.now()).exists():
                            # Not started: given back due, for the delivery queued next.
                            _release(batch.pending, note="")
                            report.waiting += len(batch.pending)
                            batch.pending = []
                            report.stopped = "budget"
                        break
                    if not Installation.objects.filter(pk=installation.pk).get().can_export:
                        report.stopped = "inactive"  # switched off meanwhile: the rest waits
                        break
                    slots.renew(slot)
                    batch.token, jobs = claim(destination, size)
                    batch.pending, batch.started, batch.blame = list(jobs), {}, None
        finally:
            deliveries.record()  # what reached the server is delivered, whatever came next
    except ReauthorizationRequired as exc:
        _stop_for_a_person(owner, batch.pending, exc, report)
        return
    except DestinationRefused as exc:
        # The destination's own configuration: every document would be refused alike.
        _stop_for_a_person(owner, batch.pending, exc, report, status=Installation.Status.ATTENTION)
        return
    except TransientError as exc:
        _stop_on_transient(installation, batch, exc, worker, report)
        return
    except PermanentError as exc:
        # Refused before any file: the configuration is wrong, not this document.
        _stop_for_a_person(owner, batch.pending, exc, report)
        return
    except ConnectorError as exc:
        _stop_on_transient(installation, batch, TransientError(str(exc)), worker, report)
        return
    except Exception as exc:
        logger.exception("export to installation %s failed unexpectedly", installation.pk)
        error = TransientError(_("Unexpected error: %(kind)s") % {"kind": type(exc).__name__})
        _stop_on_transient(installation, batch, error, worker, report)
        return
    if installation.status != Installation.Status.OK:
        Installation.objects.filter(pk=installation.pk).update(
            status=Installation.Status.OK, last_error=""
        )
        notices.installation_changed(installation.pk)


def _send_batch(session, connector, batch, deliveries, folders, worker, report, budget) -> None:
    """Send every pending job of the batch; a delivered job leaves ``pending`` for the
    buffer of deliveries, a refused one is recorded dead; a transient error is raised.
    Once the budget is spent no file is started: the jobs not started stay ``pending``.

    A session with ``send_many`` (SFTP) keeps several files in flight on its one
    connection and reports each as it lands; any other session sends one after another.
    A refusal tied to one client stops that client's jobs only; the other clients' go
    on, handed again to a session that stopped starting files after the refusal.
    """

    def outgoing():
        for job in list(batch.pending):
            if job.integration_id in batch.stopped or job.pk in batch.started:
                continue  # given back when its client was stopped, or already on its way
            if not budget.allows_another():
                return
            batch.started[job.pk] = timezone.now()
            _renew_lease_if_needed(batch.token, job)
            batch.blame = job  # until its file is built: a broken document stops here
            export_file = build_file(job, connector, folders)
            batch.blame = None
            yield job, export_file

    send_many = getattr(session, "send_many", None) or partial(_one_by_one, session)
    again = True
    while again:
        again = False
        outcomes = send_many(outgoing())
        try:
            for job, outcome in outcomes:
                if isinstance(outcome, CLIENT_SCOPED):
                    _wait_for_client(job, outcome, batch, report)
                    again = True
                elif isinstance(outcome, PermanentError):
                    batch.pending.remove(job)
                    _record_failure(job, outcome, batch.started_at(job), worker, permanent=True)
                    report.dead += 1
                elif isinstance(outcome, Exception):
                    batch.blame = job
                    raise outcome
                else:
                    batch.pending.remove(job)
                    deliveries.add(job, outcome.reference, batch.started_at(job))
                    report.delivered += 1
        finally:
            close = getattr(outcomes, "close", None)
            if close is not None:
                close()
        # Every file started was reported; those not started go in another pass.
        again = again and any(job.pk not in batch.started for job in batch.pending)


def _one_by_one(session, outgoing):
    """``send_many`` for sessions that only have ``send``: one file at a time."""
    for job, export_file in outgoing:
        try:
            receipt = session.send(export_file)
        except (PermanentError, TransientError, *CLIENT_SCOPED) as exc:
            yield job, exc
            if isinstance(exc, TransientError):
                return
            continue
        yield job, receipt


class _Deliveries:
    """Deliveries that reached the destination, recorded together a few times a batch.

    A job is added only once its file is in place, so recording late never marks a job
    delivered too early; a worker that dies before recording leaves the job ``running``
    until its lease runs out, and it is sent again under the same name.
    """

    EVERY = 100  # jobs
    WITHIN = 1.0  # seconds after the oldest unrecorded delivery

    def __init__(self, worker: str):
        self.worker = worker
        self.waiting: list = []
        self.since = 0.0

    def add(self, job, reference: str, started) -> None:
        if not self.waiting:
            self.since = time.monotonic()
        self.waiting.append((job, reference, started, timezone.now()))
        if len(self.waiting) >= self.EVERY or time.monotonic() - self.since >= self.WITHIN:
            self.record()

    def record(self) -> None:
        if self.waiting:
            waiting, self.waiting = self.waiting, []
            _record_deliveries(waiting, self.worker)


def _stop_for_a_person(owner, pending, exc, report, *, status=Installation.Status.RECONNECT):
    """The claimed jobs go back untouched (no attempt counted) until a person acts on
    ``owner``: the installation, or the integration whose own credentials were used."""
    if isinstance(owner, Integration):
        Integration.objects.filter(pk=owner.pk).wait_for_a_person(
            Integration.Status(status), str(exc)
        )
    else:
        # ``updated_at`` moves only on entering the status: the dashboard says since when.
        installation = Installation.objects.filter(pk=owner.pk)
        installation.exclude(status=status).update(updated_at=timezone.now())
        installation.update(status=status, last_error=str(exc))
    if isinstance(owner, Integration):
        notices.integrations_changed([owner.pk])
    else:
        notices.installation_changed(owner.pk)
    _release(pending, note=str(exc))
    report.waiting += len(pending)
    report.stopped = str(status)


def _wait_for_client(job, exc, batch, report) -> None:
    """``job``'s client's own settings or credentials were refused: that integration waits
    for a person, and its jobs not yet started go back untouched (no attempt counted)."""
    refused = isinstance(exc, DestinationRefused)
    status = Integration.Status.ATTENTION if refused else Integration.Status.RECONNECT
    Integration.objects.filter(pk=job.integration_id).wait_for_a_person(status, str(exc))
    notices.integrations_changed([job.integration_id])
    batch.stopped.add(job.integration_id)
    waiting = [
        other
        for other in batch.pending
        if other is job
        or (other.integration_id == job.integration_id and other.pk not in batch.started)
    ]
    for other in waiting:
        batch.pending.remove(other)
    _release(waiting, note=str(exc))
    report.waiting += len(waiting)


def _stop_on_transient(installation, batch, exc, worker, report) -> None:
    """The job being sent counts an attempt; the rest of the batch waits with it."""
    pending = batch.first_blamed()
    if pending:
        first, rest = pending[0], pending[1:]
        started = batch.started_at(first)
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


def build_file(job: ExportJob, connector, folders: dict | None = None) -> ExportFile:
    """The file a job sends; ``folders`` caches rendered folders for one connection."""
    document = job.document
    client = document.client
    integration = job.integration
    template = connector.folder_template(integration.client_settings, document.category)
    if template is None:
        folder = ()
    else:
        today = timezone.localdate()
        key = (template, client.pk, document.category, today)
        folder = folders.get(key) if folders is not None else None
        if folder is None:
            folder = paths.render(
                template,
                client=client,
                category=document.category,
                today=today,
                rooted=connector.rooted_paths,
            )
            if folders is not None:
                folders[key] = folder
    with document.file.open("rb") as stored:
        content = stored.read()
    # The installation's format, applied here only: the stored original is never altered.
    output = formats.export(
        formats.chosen(connector, connector.destination.settings), content, document
    )
    return ExportFile(
        content=output.content,
        filename=output.filename,
        folder=folder,
        content_type=output.content_type,
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
        idempotency_key=job.idempotency_key,
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


def _record_deliveries(delivered, worker) -> None:
    """Jobs whose files are in place: their attempts, their jobs and their integrations,
    in one transaction of three statements however many jobs there are."""
    finished = [done for _job, _reference, _started, done in delivered]
    with transaction.atomic():
        ExportAttempt.objects.bulk_create(
            [
                ExportAttempt(
                    job=job,
                    number=job.attempts + 1,
                    started_at=started,
                    finished_at=done,
                    outcome=Outcome.DELIVERED,
                    remote_reference=reference[:500],
                    worker=worker[:100],
                )
                for job, reference, started, done in delivered
            ]
        )
        adapt = connection.ops.adapt_datetimefield_value
        ExportJob.objects.filter(pk__in=[job.pk for job, *_rest in delivered]).update(
            status=Status.DELIVERED,
            attempts=F("attempts") + 1,
            delivered_at=_per_job(
                ((job.pk, adapt(done)) for job, _ref, _started, done in delivered),
                DateTimeField(),
            ),
            remote_reference=_per_job(
                ((job.pk, reference[:500]) for job, reference, _started, _done in delivered),
                CharField(),
            ),
            last_error="",
            claim_token=None,
            lease_until=None,
            next_attempt_at=None,
        )
        integrations = {job.integration_id for job, *_rest in delivered}
        Integration.objects.filter(pk__in=integrations).update(
            last_success_at=max(finished), consecutive_failures=0
        )
        notices.integrations_changed(integrations)


def _per_job(values, output_field) -> RawSQL:
    """``CASE id WHEN … THEN … END``: one value per job in one UPDATE. Written out because
    the ORM's Case/When resolves a Q per job, which costs more than sending the file."""
    values = list(values)
    column = connection.ops.quote_name(ExportJob._meta.pk.column)
    whens = " ".join(["WHEN %s THEN %s"] * len(values))
    params = [item for pair in values for item in pair]
    sql = f"CASE {column} {whens} END"  # only placeholders and a quoted column name
    return RawSQL(sql, params, output_field=output_field)  # noqa: S611 - values are params


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
        notices.integrations_changed([job.integration_id])
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
            & ~Q(installation__status__in=Installation.WAITING_FOR_A_PERSON)
            & ~Q(integration__status__in=Integration.WAITING_FOR_A_PERSON)
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
