"""Signing in at a destination's provider (OAuth 2) instead of typing a password.

A connector declares ``oauth = OAuthSpec(...)``: the social-core backend class (subclassed
in the connector's module where its URLs or its user info differ), the scopes and the extra
authorization parameters, and the Django settings holding the operator's app credentials.
The shared views (``extensions/views.py``) start the sign-in for a new installation or for
*Reconnect*, and finish it at one callback URL.

Why social-core's backends and not its strategy and pipeline: the pipeline exists to sign
a person in, or to attach an account to a user (``UserSocialAuth``); here an account is
connected to an installation, nobody signs in and no user is created. Since social-core 5
the state is also claimed through a storage's nonce table, i.e. social_django's models.
So we use the backend for what it gets right (authorization URL and parameters, scope, the
code exchange and the refresh request, provider error payloads) and keep the state
ourselves: in the pending set-up (``extensions.pending``), bound to the firm, the user and
the target installation, popped once by the callback. Every call the backend makes goes
through ``extensions.api.ApiClient`` (the outbound guard, typed errors, redaction).

Tokens are the installation's secrets (encrypted): ``access_token``, ``expires_at`` (epoch
seconds) and ``refresh_token``. :func:`access_token` renews them through
``destination.credentials.refresh`` (row locked, renewed once however many workers ask).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from social_core.exceptions import SocialAuthBaseException
from social_core.strategy import BaseStrategy

from extensions import pending, registry
from extensions.api import ApiClient
from extensions.connectors.base import (
    ConnectorError,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
)
from extensions.models import Installation
from extensions.redaction import Redactor
from partnerspace.tenancy import owner_required, partner_required

ACCESS_TOKEN, REFRESH_TOKEN, EXPIRES_AT = "access_token", "refresh_token", "expires_at"
RENEW_MARGIN = 120  # seconds before expiry an access token is renewed
# Errors of the token endpoint (RFC 6749 §5.2) that only a new sign-in cures.
SIGN_IN_AGAIN = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
SIGN_IN = gettext_lazy("Sign in")
UNAVAILABLE = gettext_lazy("The operator has not configured this sign-in.")


def email_of(info: Mapping) -> str:
    """The account's name in an OpenID Connect user info: its e-mail address."""
    return str(info.get("email") or "")


@dataclass(frozen=True)
class OAuthSpec:
    """What a connector asks of its provider; the shared views read nothing else."""

    backend: type  # a social_core.backends.oauth.BaseOAuth2 subclass
    scope: tuple[str, ...]
    client_id_setting: str
    client_secret_setting: str
    extra_arguments: Mapping[str, str] = field(default_factory=dict)
    provider: str | Promise = ""  # "Google", in messages
    button: str | Promise = SIGN_IN
    advice: str | Promise = ""  # what the person will see at the provider
    unavailable: str | Promise = UNAVAILABLE
    account_setting: str = "account"  # where the signed-in account's name is kept
    account: Callable[[Mapping], str] = email_of  # the account's name from the user info
    # Seconds before expiry an access token is renewed (a provider may forbid renewing a
    # token that still has minutes left).
    renew_margin: float = RENEW_MARGIN

    def app_credentials(self) -> tuple[str, str]:
        return (
            getattr(settings, self.client_id_setting, "") or "",
            getattr(settings, self.client_secret_setting, "") or "",
        )

    @property
    def available(self) -> bool:
        """False until the operator has set the app's client id and secret."""
        return all(self.app_credentials())

    def client(
        self, redirect_uri: str = "", data: Mapping | None = None, settings: Mapping | None = None
    ):
        """The backend, configured from this spec only (never from SOCIAL_AUTH_* settings);
        ``settings`` are the installation's, for a provider whose address depends on one
        (Exact Online's region), read by the backend as ``DESTINATION_SETTINGS``."""
        client_id, client_secret = self.app_credentials()
        values = {
            "KEY": client_id,
            "SECRET": client_secret,
            "SCOPE": list(self.scope),
            "IGNORE_DEFAULT_SCOPE": True,
            "AUTH_EXTRA_ARGUMENTS": dict(self.extra_arguments),
            "DESTINATION_SETTINGS": dict(settings or {}),
        }
        return self.backend(_Strategy(values, data or {}), redirect_uri=redirect_uri)

    def authorization_origin(self) -> str:
        """Scheme and host of the provider's sign-in page (forms are allowed to go there)."""
        parts = urlsplit(self.client().authorization_url())
        return f"{parts.scheme}://{parts.netloc}"

    def authorization_origins(self) -> list[str]:
        """Every origin a sign-in may start at: a backend with ``authorization_urls()``
        (one per region of the provider) names them all, any other its one."""
        backend = self.client()
        urls = getattr(backend, "authorization_urls", None)
        if urls is None:
            return [self.authorization_origin()]
        parts = [urlsplit(url) for url in urls()]
        return sorted({f"{part.scheme}://{part.netloc}" for part in parts})


class _Strategy(BaseStrategy):
    """The least a backend needs: its settings, the callback's data, the redirect URI. No
    storage, no session, no user: the views keep the state (see the module docstring)."""

    def __init__(self, values: Mapping[str, Any], data: Mapping[str, Any]):
        super().__init__(storage=None)
        self.values = dict(values)
        self.data = dict(data)

    def get_setting(self, name):
        return self.values[name]  # KeyError: the backend's default

    def get_request_data(self, merge=True):
        return dict(self.data)

    def build_absolute_uri(self, path=None):
        return path or ""


class _Answer:
    """What social-core reads of an HTTP answer (``json()``, ``status_code``, ``headers``)."""

    def __init__(self, response):
        self.response = response
        self.status_code = response.status
        self.headers = response.headers
        self.text = response.body.decode("utf-8", "replace")

    def json(self):
        value = self.response.json()
        if value is None:
            raise ValueError("not JSON")
        return value

    def raise_for_status(self):
        return None


class GuardedBackend:
    """Mixin for a social-core backend: its requests go through the API client, and a
    token endpoint's refusal becomes the contract's error (a new sign-in is needed)."""

    provider_name = ""

    def request(
        self,
        url,
        *,
        method="GET",
        headers=None,
        data=None,
        json=None,
        auth=None,
        params=None,
        timeout=None,
        stage="user_info",
    ):
        headers = dict(headers or {})
        if isinstance(auth, tuple):
            pair = f"{auth[0]}:{auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        client_secret = self.get_key_and_secret()[1]
        hidden = [client_secret, *(v for k, v in (data or {}).items() if k in _SECRET_PARAMS)]
        with ApiClient(url, secrets=[value for value in hidden if value]) as client:
            response = client.request(
                method,
                url,
                headers=headers,
                data=data,
                json=json,
                params=params,
                accept=(400, 401),
            )
            if response.status in (400, 401):
                raise _token_refusal(client, response, self.provider_name)
        return _Answer(response)


_SECRET_PARAMS = frozenset({"code", "refresh_token", "client_secret"})


def _token_refusal(client: ApiClient, response, provider: str) -> ConnectorError:
    answer = response.json() if isinstance(response.json(), dict) else {}
    error = str(answer.get("error") or "")
    message = client.describe(response)
    if response.status == 401 or error in SIGN_IN_AGAIN:
        return ReauthorizationRequired(
            _(
                "%(provider)s no longer accepts this sign-in (%(message)s): click Reconnect "
                "on the extension's page and sign in again."
            )
            % {"provider": provider or client.host, "message": message}
        )
    return PermanentError(message)


def _provider_failure(exc: SocialAuthBaseException, provider: str) -> ConnectorError:
    """A social-core error (a malformed or refused answer) in the contract's terms."""
    return TransientError(
        _("%(provider)s gave an answer that could not be used (%(kind)s).")
        % {"provider": provider, "kind": type(exc).__name__}
    )


# --- the sign-in --------------------------------------------------------------------


def authorization_url(spec: OAuthSpec, redirect_uri: str, state: str, settings=None) -> str:
    """Where the person signs in: the provider's page with our client id, scope, state."""
    backend = spec.client(redirect_uri, settings=settings)
    params = backend.auth_params(state)
    params.update(backend.get_scope_argument())
    params.update(backend.auth_extra_arguments())
    return backend.authorization_url() + "?" + urlencode(params)


def complete(spec: OAuthSpec, redirect_uri: str, code: str, settings=None) -> tuple[dict, str]:
    """Exchange the code for tokens and read the account's name: (secrets, account)."""
    backend = spec.client(redirect_uri, {"code": code}, settings=settings)
    provider = str(spec.provider)
    try:
        answer = backend.request_access_token(
            backend.access_token_url(),
            data=backend.auth_complete_params(None),
            headers=backend.auth_headers(),
            method="POST",
        )
        tokens = _tokens(answer)
        info = backend.user_data(tokens[ACCESS_TOKEN]) or {}
    except SocialAuthBaseException as exc:
        raise _provider_failure(exc, provider) from None
    if not tokens.get(REFRESH_TOKEN):
        raise ReauthorizationRequired(
            _(
                "%(provider)s did not grant lasting access (no refresh token); sign in again "
                "and allow access."
            )
            % {"provider": provider}
        )
    return tokens, spec.account(info)


def _tokens(answer: Mapping) -> dict:
    """The secrets to keep from a token answer; no refresh token in it keeps the stored one."""
    token = answer.get(ACCESS_TOKEN)
    if not isinstance(token, str) or not token:
        raise PermanentError(_("The token answer holds no access token."))
    try:
        lifetime = float(answer.get("expires_in") or 3600)
    except (TypeError, ValueError):
        lifetime = 3600.0
    kept = {ACCESS_TOKEN: token, EXPIRES_AT: time.time() + lifetime}
    if answer.get(REFRESH_TOKEN):
        kept[REFRESH_TOKEN] = answer[REFRESH_TOKEN]
    return kept


# --- at run time --------------------------------------------------------------------


def access_token(destination, spec: OAuthSpec, *, stale: str = "") -> str:
    """A usable access token, renewed first when it expires within the spec's
    ``renew_margin``, or when it is ``stale`` (the API refused it) and no one has renewed
    it since."""

    def needed(secrets) -> bool:
        if stale:
            return secrets.get(ACCESS_TOKEN) == stale
        expires_at = secrets.get(EXPIRES_AT) or 0
        return not secrets.get(ACCESS_TOKEN) or expires_at - time.time() < spec.renew_margin

    def renew(secrets) -> dict:
        refresh = secrets.get(REFRESH_TOKEN)
        if not refresh:
            raise ReauthorizationRequired(
                _("Sign in again: click Reconnect on the extension's page.")
            )
        backend = spec.client(settings=destination.settings)
        try:
            return _tokens(backend.refresh_token(refresh))
        except SocialAuthBaseException as exc:
            raise _provider_failure(exc, str(spec.provider)) from None

    known = destination.secrets or {}
    if not needed(known):  # usable as read: no lock (and a set-up not yet saved works)
        return known[ACCESS_TOKEN]
    return destination.credentials.refresh(needed, renew)[ACCESS_TOKEN]


def secret_values(secrets: Mapping) -> list[str]:
    """The token values a connector hides from every message."""
    return [str(secrets[name]) for name in (ACCESS_TOKEN, REFRESH_TOKEN) if secrets.get(name)]


# --- the views: start, reconnect, callback ------------------------------------------
# Shared by every connector with ``oauth``; they name no connector and no setting of one.


def callback_uri(request) -> str:
    """The one address the provider sends the person back to (registered with the app)."""
    return request.build_absolute_uri(reverse("store:signin_callback"))


def begin(request, installation) -> HttpResponse:
    """Keep the set-up (firm, user, target, what was typed) with a new state, and send the
    person to the provider's sign-in page."""
    state = secrets.token_urlsafe(32)
    pending.remember(request, installation, state=state)
    spec = installation.connector_class.oauth
    return HttpResponseRedirect(
        authorization_url(spec, callback_uri(request), state, installation.settings)
    )


def unavailable(request, connector) -> HttpResponse | None:
    """The page saying the operator has not configured the extension (``Connector.
    unavailable_reason``: a sign-in's app credentials, another setting), or None."""
    reason = connector.unavailable_reason()
    if not reason:
        return None
    return render(
        request,
        "extensions/install_confirm.html",
        {"connector": connector, "unavailable": reason},
    )


@partner_required
def reconnect(request, installation_pk):
    """Sign in again for an installed extension; its settings and integrations stay."""
    from extensions.views import _installation

    installation = _installation(request, installation_pk, owners_only=True)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    connector = installation.connector_class
    if connector is None or connector.oauth is None:
        raise Http404
    if not connector.oauth.available:
        messages.error(request, str(connector.oauth.unavailable))
        return redirect(installation)
    return begin(request, installation)


@owner_required
def signin_callback(request):
    """Where the provider sends the person back: the state is checked against the pending
    set-up (popped, so a callback counts once), then the code becomes tokens, stored
    encrypted in the installation's secrets. Nobody is signed in, no user is created."""
    from extensions.views import _check_and_save, _installation

    kept = pending.take_own(request)
    if kept is None or not kept.get("state"):
        messages.error(request, _("This sign-in expired; please try again."))
        return redirect("store:index")
    if not constant_time_compare(str(request.GET.get("state", "")), kept["state"]):
        raise PermissionDenied(_("The sign-in could not be verified; nothing was saved."))
    kind, _sep, value = str(kept.get("target", "")).partition(":")
    if kind == "installation" and value.isdigit():
        installation = _installation(request, int(value), owners_only=True)
        back = installation.get_absolute_url()
    else:
        connector = registry.get(value)
        if kind != "new" or connector is None or connector.oauth is None:
            raise Http404
        installation = Installation(
            partner=request.partner,
            connector=connector.key,
            name=kept["name"],
            connections=kept["connections"],
            settings=kept["settings"],
            installed_by=request.user,
        )
        back = reverse("store:extension", kwargs={"connector_key": connector.key})
    spec = installation.connector_class.oauth
    error = str(request.GET.get("error", ""))
    if error == "access_denied":
        messages.warning(request, _("Sign-in was cancelled; nothing was changed."))
        return redirect(back)
    code = str(request.GET.get("code", ""))
    if error or not code:
        said = Redactor([code]).one_line(error, limit=200) or _("no code")
        messages.error(request, _("The sign-in failed (%(error)s).") % {"error": said})
        return redirect(back)
    try:
        tokens, account = complete(spec, callback_uri(request), code, installation.settings)
    except ConnectorError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    installation.settings = {**installation.settings, spec.account_setting: account}
    installation.set_secrets({**installation.secrets, **tokens})
    return _check_and_save(request, installation, None, None, created=installation.pk is None)


def check_app_credentials(app_configs=None, **kwargs):
    """``manage.py check``: an extension the operator has not configured (a sign-in's app
    credentials, another setting: ``Connector.unavailable_reason``)."""
    warnings = []
    for connector in registry.connectors().values():
        reason = connector.unavailable_reason()
        if reason:
            warnings.append(
                checks.Warning(
                    f"{connector.key}: {reason}",
                    hint=f"Set {' and '.join(connector.operator_settings())}.",
                    id="extensions.W001",
                )
            )
    return warnings
