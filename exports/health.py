"""How a firm's exports are doing, for the dashboard and the banner on every page.

Every function here is a few bounded queries over one firm, whatever its size: counts use
the jobs' ``(installation, status, …)`` and ``(integration, status)`` indexes and days are
grouped in the database.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    IntegerField,
    Min,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from exports.models import ExportAttempt, ExportJob
from extensions.models import Installation, Integration
from partnerspace import charts

# A failure that lasts longer than this is worth interrupting the firm for.
FAILING_FOR = timedelta(hours=1)
CHART_DAYS = 30
WAITING = (ExportJob.Status.PENDING, ExportJob.Status.RUNNING, ExportJob.Status.FAILED)
FAILED_ATTEMPT = (ExportAttempt.Outcome.TRANSIENT, ExportAttempt.Outcome.PERMANENT)
FAILING = _("Failing")


@dataclass(frozen=True)
class Problem:
    """One integration that does not deliver, as the firm reads it: when its installation
    waits for a person, that is the reason given for each of its clients."""

    client: str
    extension: str
    state: str
    reason: str
    since: datetime | None
    url: str


def _failures_since_last_success():
    """Failed attempts of the outer integration after its last delivery: its failing streak."""
    return ExportAttempt.objects.filter(
        job__integration=OuterRef("pk"), outcome__in=FAILED_ATTEMPT
    ).filter(
        Q(job__integration__last_success_at__isnull=True)
        | Q(finished_at__gt=F("job__integration__last_success_at"))
    )


def _troubled_integrations(partner):
    return (
        Integration.objects.for_partner(partner)
        .current()
        .filter(active=True, installation__active=True)
        .filter(
            Q(installation__status__in=Installation.WAITING_FOR_A_PERSON)
            | Q(status__in=Integration.WAITING_FOR_A_PERSON)
            | Q(consecutive_failures__gt=0)
        )
    )


def problems(partner, *, limit: int = 50) -> tuple[list[Problem], bool]:
    """The firm's integrations that need a person or fail, and whether there are more."""
    first_failure = (
        _failures_since_last_success()
        .values("job__integration")
        .annotate(first=Min("finished_at"))
        .values("first")
    )
    rows = list(
        _troubled_integrations(partner)
        .select_related("client", "installation")
        .defer("client_secrets", "installation__secrets")
        .annotate(failing_since=Subquery(first_failure))
        .order_by("client__name", "installation__name", "pk")[: limit + 1]
    )
    found = []
    for integration in rows[:limit]:
        installation = integration.installation
        if installation.needs_a_person:
            state, reason = installation.get_status_display(), installation.last_error
            since = installation.updated_at
        elif integration.needs_a_person:
            state, reason = integration.get_status_display(), integration.last_error
            since = integration.status_since
        else:
            state, reason = str(FAILING), integration.last_error
            since = integration.failing_since or integration.last_failure_at
        found.append(
            Problem(
                client=integration.client.name,
                extension=installation.name,
                state=state,
                reason=reason,
                since=since,
                url=integration.get_absolute_url(),
            )
        )
    return found, len(rows) > limit


def banner_items(partner, *, limit: int = 3) -> list[dict]:
    """What needs a person now, in one query: installations and integrations waiting for
    one (a changed host key is an installation waiting for a reconnect), and integrations
    failing for longer than :data:`FAILING_FOR`. ``limit + 1`` rows say there are more."""
    text = CharField()
    installations = (
        Installation.objects.for_partner(partner)
        .installed()
        .filter(active=True, status__in=Installation.WAITING_FOR_A_PERSON)
        .annotate(
            kind=Value("installation", output_field=text),
            client=Value(0, IntegerField()),
            client_name=Value("", output_field=text),
        )
        .values_list("kind", "pk", "client", "name", "status", "last_error", "client_name")
    )
    long_failing = _failures_since_last_success().filter(
        finished_at__lte=timezone.now() - FAILING_FOR
    )
    integrations = (
        Integration.objects.for_partner(partner)
        .current()
        .filter(active=True, installation__active=True)
        .exclude(installation__status__in=Installation.WAITING_FOR_A_PERSON)
        .annotate(
            failing=Exists(long_failing),
            kind=Value("integration", output_field=text),
            extension=F("installation__name"),
            client_name=F("client__name"),
        )
        .filter(
            Q(status__in=Integration.WAITING_FOR_A_PERSON)
            | Q(consecutive_failures__gt=0, failing=True)
        )
        .values_list("kind", "pk", "client_id", "extension", "status", "last_error", "client_name")
    )
    rows = (
        installations.order_by()
        .union(integrations.order_by(), all=True)
        .order_by("kind", "pk")[: limit + 1]
    )
    items = []
    for kind, pk, client_id, name, status, reason, client_name in rows:
        if kind == "installation":
            state = Installation.Status(status).label
            url = reverse("store:manage", kwargs={"installation_pk": pk})
        else:
            waiting = status in Integration.WAITING_FOR_A_PERSON
            state = Integration.Status(status).label if waiting else FAILING
            url = reverse("integrations:list", kwargs={"client_pk": client_id})
        items.append(
            {"name": name, "client": client_name, "state": state, "reason": reason, "url": url}
        )
    return items


def job_counts(partner) -> dict[str, int]:
    """Jobs waiting to be delivered and jobs that failed for good, in one query."""
    jobs = ExportJob.objects.filter(
        installation__partner=partner, status__in=[*WAITING, ExportJob.Status.DEAD]
    )
    return jobs.aggregate(
        waiting=Count("pk", filter=Q(status__in=WAITING)),
        failed=Count("pk", filter=Q(status=ExportJob.Status.DEAD)),
    )


def active_integration_count(partner) -> int:
    return (
        Integration.objects.for_partner(partner)
        .current()
        .filter(active=True, installation__active=True)
        .count()
    )


def _per_day(queryset, field: str, bounds) -> list[int]:
    counts = dict(
        queryset.annotate(day=charts.day_number(field, bounds))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return [counts.get(i, 0) for i in range(len(bounds))]


def daily_exports(partner, days: list[date]) -> tuple[dict[date, int], dict[date, int]]:
    """Jobs delivered and jobs failed for good per day over ``days``, counted in the
    database in two queries. A failed job counts on the day of its last attempt."""
    bounds = charts.day_bounds(days)
    start, end = bounds[0][0], bounds[-1][1]
    jobs = ExportJob.objects.filter(installation__partner=partner).order_by()
    delivered = jobs.filter(
        status=ExportJob.Status.DELIVERED, delivered_at__gte=start, delivered_at__lt=end
    )
    failed = jobs.filter(
        status=ExportJob.Status.DEAD,
        attempt_log__number=F("attempts"),
        attempt_log__finished_at__gte=start,
        attempt_log__finished_at__lt=end,
    )
    return (
        dict(zip(days, _per_day(delivered, "delivered_at", bounds), strict=True)),
        dict(zip(days, _per_day(failed, "attempt_log__finished_at", bounds), strict=True)),
    )


def chart(partner) -> charts.DailyChart:
    days = charts.last_days(CHART_DAYS, timezone.localdate())
    delivered, failed = daily_exports(partner, days)
    return charts.daily_chart(days, delivered, failed)
