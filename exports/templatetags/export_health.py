"""The admin index's export health: what the operators look at first."""

from django import template
from django.db.models import Count, Q

from exports.models import ExportJob
from extensions.models import Installation, Integration

register = template.Library()

FAILING = [Installation.Status.FAILING, Installation.Status.ATTENTION]


@register.inclusion_tag("admin/_export_health.html")
def export_health(limit=10):
    """Jobs by status, failing installations and reconnects needed, across every firm."""
    counts = dict(
        ExportJob.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    installed = Installation.objects.installed().select_related("partner")
    needing_a_person = installed.filter(
        status__in=[*FAILING, Installation.Status.RECONNECT]
    ).order_by("-updated_at")
    return {
        "jobs": [
            {"status": value, "label": label, "count": counts.get(value, 0)}
            for value, label in ExportJob.Status.choices
        ],
        "failing": installed.filter(status__in=FAILING).count(),
        "reconnect_installations": installed.filter(status=Installation.Status.RECONNECT).count(),
        "reconnect_integrations": Integration.objects.current()
        .filter(status=Integration.Status.RECONNECT)
        .count(),
        "failing_integrations": Integration.objects.current()
        .filter(~Q(status=Integration.Status.RECONNECT), consecutive_failures__gt=0)
        .count(),
        "needing_a_person": needing_a_person[:limit],
    }
