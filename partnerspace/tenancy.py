"""Which firm a request acts for, and the one way views reach its data.

The current firm lives in the session; it is re-checked against the user's memberships on
every request, so a removed membership takes effect at once. Views take ``request.partner``
through :func:`partner_required` and query with ``Model.objects.for_partner(partner)``;
an object of another firm is then simply not found (404).
"""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.db import models
from django.shortcuts import render
from django.utils.functional import SimpleLazyObject

SESSION_KEY = "partner_id"
# Session keys of set-ups in progress (a host key to accept, a sign-in under way) start
# with this: they belong to the firm they were begun in and go when the user switches.
PENDING_PREFIX = "pending:"


def memberships_of(user):
    from partnerspace.models import Membership

    if not user.is_authenticated:
        return Membership.objects.none()
    return Membership.objects.filter(user=user).select_related("partner")


def _memberships(request):
    """The user's memberships, read once per request."""
    if not hasattr(request, "_memberships"):
        request._memberships = list(memberships_of(request.user))
    return request._memberships


def _current_membership(request):
    memberships = _memberships(request)
    wanted = request.session.get(SESSION_KEY)
    for membership in memberships:
        if membership.partner_id == wanted:
            return membership
    return memberships[0] if memberships else None


def switch_partner(request, partner_id) -> bool:
    """Make another of the user's firms current; False when the user is not a member."""
    if memberships_of(request.user).filter(partner_id=partner_id).exists():
        for key in [k for k, _ in request.session.items() if k.startswith(PENDING_PREFIX)]:
            del request.session[key]
        request.session[SESSION_KEY] = partner_id
        return True
    return False


class CurrentPartnerMiddleware:
    """Sets ``request.membership`` and ``request.partner`` lazily (None when there is none)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = SimpleLazyObject(lambda: _current_membership(request))
        request.partner = SimpleLazyObject(
            lambda: request.membership.partner if request.membership else None
        )
        return self.get_response(request)


def partner_required(view):
    """Views of the Partner Space: a signed-in member of a firm, else a clear 403 page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.membership:
            return render(request, "partnerspace/no_partner.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


class OwnersOnly(PermissionDenied):
    """What only the firm's owners may do; the 403 page names them."""


def require_owner(request) -> None:
    """Raise :class:`OwnersOnly` unless the user is an owner of the current firm.

    Views look their object up first, so another firm's object stays a 404.
    """
    if not request.membership or not request.membership.is_owner:
        raise OwnersOnly


def owner_required(view):
    """For views without an object of the firm: a member of the firm, and an owner."""

    @wraps(view)
    @partner_required
    def wrapper(request, *args, **kwargs):
        require_owner(request)
        return view(request, *args, **kwargs)

    return wrapper


def partner_context(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = request.membership
    return {
        "current_partner": membership.partner if membership else None,
        "current_membership": membership or None,
        "other_memberships": [
            m for m in _memberships(request) if not membership or m.pk != membership.pk
        ],
    }


class TenantQuerySet(models.QuerySet):
    """Rows that belong to one firm; ``partner_path`` names the route from the row to it."""

    partner_path = "partner"

    def for_partner(self, partner):
        return self.filter(**{self.partner_path: partner})
