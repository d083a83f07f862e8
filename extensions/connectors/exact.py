"""Exact Online: each approved purchase invoice and sent sales invoice becomes a document in
the client's administration (division), with the invoice file attached.

The firm signs in with Exact Online once (``extensions.signin``); every client's
integration reuses that one installation and names its administration, picked from the
list Exact returns. Exact keeps only the latest sign-in of an app valid, so a second
installation in the same firm is not offered (``one_per_firm``).

Every HTTP detail of Exact's REST API lives in :class:`ExactApi` and :class:`ExactSession`,
so a detail found to differ is corrected here only. What is confirmed by a public source
and what is assumed is listed in ``docs/connectors/exact.md``. In short:

* **Sign-in**: OAuth 2 at ``{base}/api/oauth2/auth`` and ``/api/oauth2/token`` of the
  firm's region (the address it signs in at, e.g. https://start.exactonline.be). Access
  tokens live ten minutes and ``expires_in`` comes as a string. Every renewal returns a
  new refresh token and retires the old one for good ("Old refresh token used."), so a
  renewal happens only through ``signin.access_token`` (row lock, once however many
  workers ask); a refused one is *Reconnect needed*.
* **Delivery**: our document is looked up by its subject, which holds the export's stable
  key (``$filter=Subject eq '…'``), so a retry after a lost answer finds it; otherwise it
  is created (``documents/Documents``, the type read from ``documents/DocumentTypes``)
  and the file attached base64-encoded (``documents/DocumentAttachments``). A document
  found without its attachment gets it.
* **Rate limits**: Exact counts calls per administration per minute and per day and says
  so in ``X-RateLimit-*`` headers, resets in epoch milliseconds. When an answer says the
  minute (or day) is used up, the next request waits for its reset on the connection if it
  is seconds away, else the engine is told to come back then; a 429 says the same.
* **Where Exact is**: ``EXACT_BASE_URL``, when set, replaces every Exact origin, for a
  test server or an operator's proxy.
"""

from __future__ import annotations

import base64
import re
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from social_core.backends.oauth import BaseOAuth2

from extensions import signin
from extensions.api import ApiClient, RateLimited, Response
from extensions.connectors.base import (
    PURCHASE,
    SALES,
    ClientRefused,
    Connector,
    ConnectorForm,
    DestinationRefused,
    ExportFile,
    PermanentError,
    ReauthorizationRequired,
    Receipt,
    TransientError,
)

REGIONS = {
    "be": ("https://start.exactonline.be", gettext_lazy("Belgium (exactonline.be)")),
    "nl": ("https://start.exactonline.nl", gettext_lazy("Netherlands (exactonline.nl)")),
    "de": ("https://start.exactonline.de", gettext_lazy("Germany (exactonline.de)")),
    "fr": ("https://start.exactonline.fr", gettext_lazy("France (exactonline.fr)")),
    "co.uk": (
        "https://start.exactonline.co.uk",
        gettext_lazy("United Kingdom (exactonline.co.uk)"),
    ),
    "es": ("https://start.exactonline.es", gettext_lazy("Spain (exactonline.es)")),
    "com": ("https://start.exactonline.com", gettext_lazy("United States (exactonline.com)")),
}
DEFAULT_REGION = "be"
# The document types an invoice becomes, by their description in documents/DocumentTypes
# (their numbers are not published, so they are read at run time).
TYPE_DESCRIPTIONS = {PURCHASE: "Purchase invoice", SALES: "Sales invoice"}
HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/json",
    "Prefer": "return=representation",
}
SUBJECT_MAX = 200  # characters kept of a subject (the key is at its start)
# A rate limit whose reset is at most this far is waited out on the connection.
RATE_LIMIT_WAIT_SECONDS = 5.0
DIVISION_PAGES_MAX = 50  # of divisions followed through __next
# Exact allows about one renewal per 9.5 minutes of a 10-minute token: renew in its last
# 30 seconds only.
RENEW_MARGIN_SECONDS = 30


def region_of(settings_: dict) -> str:
    region = str(settings_.get("region") or DEFAULT_REGION)
    return region if region in REGIONS else DEFAULT_REGION


def exact_base(region: str = DEFAULT_REGION) -> str:
    """The region's Exact Online address, or ``EXACT_BASE_URL`` when set."""
    configured = getattr(settings, "EXACT_BASE_URL", "") or ""
    return (configured or REGIONS[region][0]).rstrip("/")


def quoted(value: str) -> str:
    """An OData string literal: single quotes, a quote inside doubled."""
    return "'" + value.replace("'", "''") + "'"


def results(answer) -> list[dict]:
    """The rows of an OData v2 list answer (``{"d": {"results": [...]}}`` or ``{"d": [...]}``)."""
    body = answer.get("d") if isinstance(answer, dict) else None
    if isinstance(body, dict):
        body = body.get("results")
    return [row for row in body if isinstance(row, dict)] if isinstance(body, list) else []


def single(answer) -> dict:
    """The entity of an OData v2 answer about one (``{"d": {...}}``)."""
    body = answer.get("d") if isinstance(answer, dict) else None
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        return (results(answer) or [{}])[0]
    return body if isinstance(body, dict) else {}


def reason(response: Response) -> str:
    """What Exact said: the OData error's ``message.value`` ("" when it has none)."""
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, dict):
        message = message.get("value")
    return str(message or "")


def account_of(info) -> str:
    """The signed-in Exact user: name and e-mail address."""
    name, email = str(info.get("FullName") or ""), str(info.get("Email") or "")
    return f"{name} ({email})" if name and email else name or email


def _reset_delay(value: str | None) -> float | None:
    """Seconds until a ``X-RateLimit-*-Reset`` (UTC epoch milliseconds), never negative."""
    try:
        return max(0.0, int(str(value).strip()) / 1000 - time.time())
    except (TypeError, ValueError):
        return None


def rate_limit_delay(headers) -> float | None:
    """How long until the limit that is used up resets: the minute's when it is, else the
    day's; None when neither is (or the headers are absent)."""
    for window in ("X-RateLimit-Minutely", "X-RateLimit"):
        if str(headers.get(f"{window}-Remaining", "")).strip() == "0":
            delay = _reset_delay(headers.get(f"{window}-Reset"))
            if delay is not None:
                return delay
    return None


# --- the sign-in ----------------------------------------------------------------------


class ExactOAuth2(signin.GuardedBackend, BaseOAuth2):
    """Exact Online's OAuth 2 (no backend in social-core), at the installation's region."""

    name = "exact-online"
    provider_name = "Exact Online"
    REDIRECT_STATE = False  # Exact compares the redirect URI with the registered one
    ACCESS_TOKEN_METHOD = "POST"  # noqa: S105 (a method, not a secret)
    REFRESH_TOKEN_METHOD = "POST"  # noqa: S105

    def base(self) -> str:
        return exact_base(region_of(self.setting("DESTINATION_SETTINGS") or {}))

    def authorization_url(self) -> str:
        return self.base() + "/api/oauth2/auth"

    def access_token_url(self) -> str:
        return self.base() + "/api/oauth2/token"

    def authorization_urls(self) -> list[str]:
        """Every region's sign-in page (the configure form may lead to any of them)."""
        return [exact_base(region) + "/api/oauth2/auth" for region in REGIONS]

    def user_data(self, access_token, *args, **kwargs):
        """Only to show which account was connected: nobody is signed in with it."""
        answer = self.get_json(
            self.base() + "/api/v1/current/Me",
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        return single(answer)


# --- the API --------------------------------------------------------------------------


class ExactApi(ApiClient):
    """Exact's own meaning of its answers: OData errors, rate limits in its headers."""

    def said(self, response: Response) -> str:
        said = self.redactor.one_line(reason(response), limit=300)
        return f"HTTP {response.status}: {said}" if said else self.describe(response)

    def classify(self, response: Response):
        message = self.said(response)
        if response.status == 429:
            return RateLimited(
                _("Exact Online asks to slow down (%(message)s).") % {"message": message},
                retry_after=rate_limit_delay(response.headers),
            )
        if response.status >= 500 or response.status == 408:
            return TransientError(
                _("Exact Online did not manage the request (%(message)s).") % {"message": message}
            )
        if response.status in (401, 403):
            return ReauthorizationRequired(
                _(
                    "Exact Online refused the sign-in (%(message)s): click Reconnect on the "
                    "extension's page."
                )
                % {"message": message}
            )
        return PermanentError(
            _("Exact Online refused the request (%(message)s).") % {"message": message}
        )


class ExactSession:
    """One API client (one kept-alive connection), the access token, the rate limit seen
    last and the document types, read once per connection."""

    def __init__(self, connector: ExactConnector, api: ExactApi):
        self.connector = connector
        self.api = api
        self.token = ""
        # Per administration (Exact counts calls per division): epoch seconds before which
        # its limit is used up.
        self.resume_at: dict[str, float] = {}
        self.types: dict[tuple[str, str], int] = {}

    # --- requests ---

    def _pace(self, division: str) -> None:
        """Before a request: wait for a used-up limit's reset if it is seconds away, else
        hand the wait to the engine rather than earn a 429."""
        delay = self.resume_at.get(division, 0.0) - time.time()
        if delay <= 0:
            return
        if delay > RATE_LIMIT_WAIT_SECONDS:
            raise RateLimited(
                _("The Exact Online limit of calls for this administration is used up."),
                retry_after=delay,
            )
        time.sleep(delay)

    def call(self, method: str, url: str, *, division: str = "", **kwargs) -> Response:
        """One request with a fresh token; a 401 renews the token once and repeats it. A
        403 on an administration is that client's (it is no longer shared with us)."""
        for attempt in (1, 2):
            if not self.token or attempt == 2:
                self.token = signin.access_token(
                    self.connector.destination, self.connector.oauth, stale=self.token
                )
                self.api.hide(self.token)
            self._pace(division)
            response = self.api.request(
                method,
                url,
                headers={**HEADERS, "Authorization": f"Bearer {self.token}"},
                accept=(401, 403),
                **kwargs,
            )
            delay = rate_limit_delay(response.headers)
            if delay is not None:
                self.resume_at[division] = time.time() + delay
            if response.status == 403 and division:
                raise ClientRefused(
                    _(
                        "Exact Online refused access to administration %(division)s "
                        "(%(message)s): check that it is shared with the signed-in user, or "
                        "choose another on the client's Integrations tab."
                    )
                    % {"division": division, "message": self.api.said(response)}
                )
            if response.status == 403:
                raise self.api.failure(response)
            if response.status != 401:
                return response
        raise ReauthorizationRequired(
            _("Exact Online refused the access token (%(message)s): click Reconnect.")
            % {"message": self.api.said(response)}
        )

    def rows(self, path: str, params: dict, *, division: str = "") -> list[dict]:
        """Every row of a list, following ``__next`` within Exact's own address."""
        found, url, pages = [], path, 0
        while url and pages < DIVISION_PAGES_MAX:
            answer = self.call("GET", url, params=params, division=division).json()
            found += results(answer)
            following = (answer.get("d") or {}).get("__next") if isinstance(answer, dict) else ""
            url, params, pages = self._same_origin(following), None, pages + 1
        return found

    def _same_origin(self, url) -> str:
        if not isinstance(url, str) or not url:
            return ""
        ours, theirs = urlsplit(self.api.base_url), urlsplit(url)
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
            raise TransientError(_("Exact Online pointed the next page elsewhere."))
        return url

    # --- what the portal asks ---

    def me(self) -> dict:
        return single(self.call("GET", "api/v1/current/Me").json())

    def divisions(self, me: dict | None = None) -> list[dict]:
        current = (me or self.me()).get("CurrentDivision")
        if not current:
            raise DestinationRefused(_("Exact Online names no current administration."))
        return self.rows(
            f"api/v1/{current}/system/Divisions",
            {"$select": "Code,Description,HID,VATNumber,Status"},
        )

    def document_type(self, division: str, category: str) -> int:
        """The type id of an invoice of ``category``, by its description (cached)."""
        if (division, category) not in self.types:
            rows = self.rows(
                f"api/v1/{division}/documents/DocumentTypes",
                {"$select": "ID,Description"},
                division=division,
            )
            for row in rows:
                for each, description in TYPE_DESCRIPTIONS.items():
                    if str(row.get("Description", "")).strip().lower() == description.lower():
                        self.types[(division, each)] = int(row["ID"])
        if (division, category) not in self.types:
            raise DestinationRefused(
                _("Exact Online has no document type “%(type)s”.")
                % {"type": TYPE_DESCRIPTIONS[category]}
            )
        return self.types[(division, category)]

    def find(self, division: str, entity: str, query: str, select: str = "ID") -> str:
        rows = results(
            self.call(
                "GET",
                f"api/v1/{division}/documents/{entity}",
                params={"$filter": query, "$select": select, "$top": "1"},
                division=division,
            ).json()
        )
        return str(rows[0].get("ID") or "") if rows else ""

    def send(self, export_file: ExportFile) -> Receipt:
        division = str(export_file.client_settings.get("division") or "")
        if not division.isdigit():
            raise ClientRefused(
                _("Choose the client's Exact Online administration on its Integrations tab.")
            )
        category = export_file.metadata.get("category", "")
        if category not in TYPE_DESCRIPTIONS:
            raise PermanentError(_("Exact Online takes purchase and sales invoices only."))
        subject = subject_of(export_file)
        document = self.find(division, "Documents", f"Subject eq {quoted(subject)}")
        if document and self.find(
            division, "DocumentAttachments", f"Document eq guid'{document}'"
        ):
            return Receipt(reference=document, detail=_("Already in Exact Online."))
        if not document:
            created = self.call(
                "POST",
                f"api/v1/{division}/documents/Documents",
                json={
                    "Subject": subject,
                    "Type": self.document_type(division, category),
                    "DocumentDate": document_date(export_file.filename),
                },
                division=division,
            )
            document = str(single(created.json()).get("ID") or "")
            if not document:
                raise TransientError(_("Exact Online did not say which document it created."))
        self.call(
            "POST",
            f"api/v1/{division}/documents/DocumentAttachments",
            json={
                "Document": document,
                "FileName": export_file.filename,
                "Attachment": base64.b64encode(export_file.content).decode("ascii"),
            },
            division=division,
        )
        return Receipt(reference=document)


def subject_of(export_file: ExportFile) -> str:
    """A readable subject that starts with the export's stable key (the same on every
    attempt of one send, another after a person's Re-send): how a retry finds it."""
    key = export_file.idempotency_key or export_file.metadata.get("job_id") or ""
    kind = TYPE_DESCRIPTIONS.get(export_file.metadata.get("category", ""), "")
    number = export_file.metadata.get("number", "")
    return f"PS-{key} {kind} {number}".strip()[:SUBJECT_MAX]


def document_date(filename: str) -> str:
    """The release date the file name starts with, else today (UTC)."""
    match = re.match(r"(\d{4})(\d{2})(\d{2})_", filename)
    if match:
        return f"{match[1]}-{match[2]}-{match[3]}T00:00:00"
    return datetime.now(UTC).strftime("%Y-%m-%dT00:00:00")


# --- forms ----------------------------------------------------------------------------


class ExactSettingsForm(ConnectorForm):
    rebind_message = gettext_lazy(
        "You changed the region, but the sign-in belongs to the previous one."
    )

    region = forms.ChoiceField(
        label=gettext_lazy("Exact Online region"),
        choices=[(key, label) for key, (_url, label) in REGIONS.items()],
        initial=DEFAULT_REGION,
        help_text=gettext_lazy(
            "The region in the address where your firm signs in to Exact Online: "
            "start.exactonline.be is Belgium."
        ),
    )

    def clean(self):
        """The sign-in is the region's: another region needs a new installation (a sign-in
        there), not an edit that would leave the tokens with nowhere to go."""
        cleaned = super().clean()
        if self.stored_secrets_dropped:
            self.add_error(
                None,
                _(
                    "To use another region, uninstall Exact Online and install it again "
                    "with that region."
                ),
            )
        return cleaned


class ExactClientForm(ConnectorForm):
    division = forms.ChoiceField(
        label=gettext_lazy("Administration"),
        help_text=gettext_lazy(
            "The client's administration in Exact Online, as listed by Exact (code and "
            "name). Missing? Share it with the signed-in user in Exact Online, then reload."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer_choices("division", self._divisions)

    def _divisions(self):
        connector = self.installation.connector_instance()
        return [
            (str(row.get("Code")), f"{row.get('Code')} \u2013 {row.get('Description') or ''}")
            for row in connector.divisions()
            if row.get("Code") not in (None, "")
        ]


# --- the connector --------------------------------------------------------------------


class ExactConnector(Connector):
    key = "exact"
    logo = "extensions/logos/exact.svg"
    name = "Exact Online"
    description = gettext_lazy(
        "Adds every approved purchase invoice and sent sales invoice to the client's "
        "administration in Exact Online, as a document with the invoice file attached, after "
        "you sign in with Exact Online."
    )
    category = "accounting"
    accepts = frozenset({PURCHASE, SALES})
    settings_form = ExactSettingsForm
    client_form = ExactClientForm
    binding_fields = ("region", "account")
    one_per_firm = True
    writes = gettext_lazy(
        "Creates a document in each client's Exact Online administration for every invoice, "
        "with the invoice file attached. It never changes or removes anything else."
    )
    oauth: ClassVar = signin.OAuthSpec(
        backend=ExactOAuth2,
        scope=(),
        client_id_setting="EXACT_CLIENT_ID",
        client_secret_setting="EXACT_CLIENT_SECRET",  # noqa: S106 (a setting's name)
        provider="Exact Online",
        button=gettext_lazy("Sign in with Exact Online"),
        advice=gettext_lazy(
            "Exact Online asks you to sign in, then which administrations this portal may "
            "use: choose the current AND future administrations, so that clients you add "
            "later can be exported too."
        ),
        unavailable=gettext_lazy("The operator has not configured Exact Online sign-in."),
        account=account_of,
        renew_margin=RENEW_MARGIN_SECONDS,
    )

    @classmethod
    def binding(cls, settings_):
        return {"region": region_of(settings_), "account": settings_.get("account")}

    def base(self) -> str:
        return exact_base(region_of(self.destination.settings or {}))

    @contextmanager
    def open(self):
        with ExactApi(
            self.base(),
            secrets=signin.secret_values(self.destination.secrets or {}),
            rate_limit_wait=RATE_LIMIT_WAIT_SECONDS,
        ) as api:
            yield ExactSession(self, api)

    def divisions(self) -> list[dict]:
        """The administrations the signed-in user may use, for the client form."""
        with self.open() as session:
            return session.divisions()

    def check(self) -> str:
        """Reads the signed-in user and the administrations it may use."""
        with self.open() as session:
            me = session.me()
            count = len(session.divisions(me))
        return ngettext(
            "Connected to Exact Online as %(account)s; %(count)s administration is shared.",
            "Connected to Exact Online as %(account)s; %(count)s administrations are shared.",
            count,
        ) % {"account": account_of(me) or "?", "count": count}

    def facts(self):
        account = (self.destination.settings or {}).get("account")
        shown = [(_("Region"), str(REGIONS[region_of(self.destination.settings or {})][1]))]
        return ([(_("Connected as"), account)] if account else []) + shown
