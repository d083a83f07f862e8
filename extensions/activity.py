"""Deliveries per day of a client's integrations: the sparkline on its Integrations tab.

The jobs live in ``exports``, which this app does not import: they are reached through
the integrations' ``jobs`` relation, all integrations of the tab in one query.
"""

from django.db.models import Count
from django.utils import timezone

from extensions.models import Integration
from partnerspace import charts

SPARKLINE_DAYS = 30


def attach_sparklines(integrations: list) -> None:
    """Give each integration ``delivered_per_day`` (oldest first), ``delivered_recently``
    and ``sparkline`` (its polyline points) for the last :data:`SPARKLINE_DAYS` days."""
    days = charts.last_days(SPARKLINE_DAYS, timezone.localdate())
    bounds = charts.day_bounds(days)
    per_integration = {integration.pk: [0] * len(days) for integration in integrations}
    if integrations:
        rows = (
            Integration.objects.filter(
                pk__in=list(per_integration),
                jobs__status="delivered",
                jobs__delivered_at__gte=bounds[0][0],
                jobs__delivered_at__lt=bounds[-1][1],
            )
            .order_by()
            .annotate(day=charts.day_number("jobs__delivered_at", bounds))
            .values("pk", "day")
            .annotate(n=Count("jobs"))
            .values_list("pk", "day", "n")
        )
        for pk, day, n in rows:
            per_integration[pk][day] = n
    for integration in integrations:
        values = per_integration[integration.pk]
        integration.delivered_per_day = values
        integration.delivered_recently = sum(values)
        integration.sparkline = charts.sparkline(values)
