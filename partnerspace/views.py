"""The firm's own pages: dashboard, firm switch, health."""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from partnerspace.models import Membership
from partnerspace.tenancy import OwnersOnly, partner_required, switch_partner

logger = logging.getLogger(__name__)


@partner_required
def dashboard(request):
    from clients.models import Client, Document
    from exports import health

    partner = request.partner
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    documents = Document.objects.for_partner(partner)
    problems, more_problems = health.problems(partner)
    context = {
        "client_count": Client.objects.for_partner(partner).count(),
        "documents_this_month": documents.filter(received_at__gte=month_start).count(),
        "awaiting_release": documents.filter(released_at__isnull=True).count(),
        "month_start": month_start,
        "active_integrations": health.active_integration_count(partner),
        "problems": problems,
        "more_problems": more_problems,
        "jobs": health.job_counts(partner),
        "chart": health.chart(partner),
    }
    return render(request, "partnerspace/dashboard.html", context)


@require_POST
def switch_firm(request):
    try:
        partner_id = int(request.POST.get("partner", ""))
    except ValueError:
        raise Http404 from None
    if not switch_partner(request, partner_id):
        raise Http404
    messages.success(request, _("You are now working in %(firm)s.") % {"firm": request.partner})
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "dashboard"
    return redirect(target)


@login_not_required
@never_cache
def healthz(request):
    """For load balancers and monitors: is the database reachable, is the broker."""
    status = {"database": "ok", "broker": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("healthz: database check failed: %s", type(exc).__name__)
        status["database"] = "error"
    try:
        from django_q.brokers import get_broker

        broker = get_broker()
        broker.ping()
        status["broker_type"] = "redis" if "Redis" in type(broker).__name__ else "orm"
    except Exception as exc:
        logger.warning("healthz: broker check failed: %s", type(exc).__name__)
        status["broker"] = "error"
    healthy = status["database"] == "ok" and status["broker"] == "ok"
    status["status"] = "ok" if healthy else "error"
    return JsonResponse(status, status=200 if healthy else 503)


def page_not_found(request, exception=None):
    return render(request, "404.html", status=404)


def forbidden(request, exception=None):
    """The 403 page; for :class:`OwnersOnly`, it names the owners to ask."""
    owners = []
    if isinstance(exception, OwnersOnly) and getattr(request, "membership", None):
        owners = [
            m.user
            for m in Membership.objects.filter(
                partner=request.partner, role=Membership.Role.OWNER
            ).select_related("user")
        ]
    return render(
        request,
        "403.html",
        {"owners_only": isinstance(exception, OwnersOnly), "owners": owners},
        status=403,
    )
