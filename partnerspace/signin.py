"""Sign-in protection: throttled failures (django-axes) and sign-out on every device."""

import ipaddress
from importlib import import_module

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render
from django.utils.translation import ngettext


class ThrottledSignInBackend(AxesStandaloneBackend):
    """Refuses sign-ins while the account or the address is locked out.

    ``authenticate()`` without a request (the test client, scripts) is no web sign-in: there
    is no address to throttle, so it is left to the next backend instead of failing.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_ip(request):
    """The address a sign-in comes from, as the outermost trusted proxy saw it.

    Behind ``TRUSTED_PROXY_COUNT`` proxies that each append to X-Forwarded-For, the client
    is that many entries from the right; anything further left is the client's own claim.
    Without trusted proxies (or a shorter chain) it is the connection's address.
    """
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= count:
            try:
                return str(ipaddress.ip_address(hops[-count]))
            except ValueError:
                pass
    return request.META.get("REMOTE_ADDR")


def lockout_response(request, original_response=None, credentials=None):
    """The sign-in page with the lock-out message, for the portal's and the admin's sign-in."""
    minutes = settings.LOGIN_LOCKOUT_MINUTES
    message = ngettext(
        "Too many failed sign-ins for this account or address. Try again in %(minutes)d "
        "minute, or ask an administrator to unlock it.",
        "Too many failed sign-ins for this account or address. Try again in %(minutes)d "
        "minutes, or ask an administrator to unlock it.",
        minutes,
    ) % {"minutes": minutes}
    context = {
        "form": AuthenticationForm(request),
        "lockout_message": message,
        "next": request.POST.get("next", request.GET.get("next", "")),
    }
    return render(request, "registration/login.html", context, status=429)


def remember_session(sender, request, user, **kwargs):
    """Records the session a user signs in with, so that signing out can end all of them."""
    from partnerspace.models import SignedInSession

    session = getattr(request, "session", None)
    if session is None or not session.session_key:
        return
    store = import_module(settings.SESSION_ENGINE).SessionStore
    stale = [
        s.pk
        for s in SignedInSession.objects.filter(user=user)
        if not store().exists(s.session_key)
    ]
    SignedInSession.objects.filter(pk__in=stale).delete()
    SignedInSession.objects.update_or_create(
        session_key=session.session_key, defaults={"user": user}
    )


def end_all_sessions(sender, request, user, **kwargs):
    """Signing out on one device signs the user out on every device."""
    from partnerspace.models import SignedInSession

    if user is None:
        return
    store = import_module(settings.SESSION_ENGINE).SessionStore
    records = SignedInSession.objects.filter(user=user)
    for key in records.values_list("session_key", flat=True):
        store(session_key=key).delete()
    records.delete()
