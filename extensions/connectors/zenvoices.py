"""Zenvoices: each invoice goes into the inbox of the client's company in Zenvoices.

Zenvoices has a public REST API (https://www.zenvoices.com/blog/public-api-docs/): JSON
under ``https://app.zenvoices.com/public-api/v1/``, a bearer token from
``POST /api/TokenAuth/TokenLogin`` with the user name or e-mail, the password and the
organisation code (``tenancyName``), answered in the envelope of the ASP.NET Boilerplate
framework (``{"result": {"accessToken", "expireInSeconds", …}, "success": true, …}``).
A user reaches the API only with the permissions *API > Inbox access* and *API > Companies
> List access*. The paths and bodies of the companies list and of the inbox upload, and
the error envelope, are not in the public pages we could read: they are assumed, as
written down in ``docs/connectors/zenvoices.md``, and every HTTP detail lives in
:class:`ZenvoicesApi`, to be corrected there in one place.

* **Token.** Kept, encrypted, with its expiry in the installation's secrets and renewed by
  logging in again through ``credentials.refresh`` (the row locked, so several workers
  renew it once), before it expires or once when Zenvoices refuses it: one login per
  day, not one per document.
* **Per client** the company is picked from the list Zenvoices returns (``offer_choices``),
  fetched again when the form is saved; a company Zenvoices no longer knows at upload
  stops that client only.
* **Once only.** Before an upload, the company's inbox is looked up by our idempotency key
  (sent as the document's ``externalId`` and as ``Idempotency-Key``).
* **Where.** ``ZENVOICES_BASE_URL`` (default https://app.zenvoices.com), for a test server
  or an operator's proxy.
"""

from __future__ import annotations

import base64
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.api import ApiClient, Response
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
    secret,
)

DEFAULT_BASE_URL = "https://app.zenvoices.com"
LOGIN_PATH = "api/TokenAuth/TokenLogin"
API = "public-api/v1/"
ACCESS_TOKEN, EXPIRES_AT = "access_token", "expires_at"
RENEW_MARGIN = 300  # seconds before expiry a token is renewed
DOCUMENT_TYPES = {PURCHASE: "purchase", SALES: "sales"}
REFUSED_DOCUMENT = frozenset({400, 409, 413, 415, 422})
SERVER_BUSY = frozenset({429, 502, 503, 504})


def base_url() -> str:
    return getattr(settings, "ZENVOICES_BASE_URL", "") or DEFAULT_BASE_URL


# --- forms --------------------------------------------------------------------------


class ZenvoicesSettingsForm(ConnectorForm):
    rebind_message = gettext_lazy(
        "You changed the Zenvoices user or organisation code: enter the password again."
    )

    username = forms.CharField(
        label=gettext_lazy("User name or e-mail"),
        max_length=254,
        help_text=gettext_lazy(
            "A Zenvoices user with the permissions API > Inbox access and API > Companies > "
            "List access (Manage > Organisation > Users). Users have no API access until "
            "it is given there."
        ),
    )
    password = secret(
        forms.CharField(
            label=gettext_lazy("Password"),
            max_length=200,
            help_text=gettext_lazy(
                "The password of that Zenvoices user. Leave it empty to keep the one stored."
            ),
        ),
        needed=gettext_lazy("Enter the Zenvoices password."),
    )
    organisation = forms.CharField(
        label=gettext_lazy("Organisation code"),
        max_length=64,
        required=False,
        help_text=gettext_lazy(
            "Only if your Zenvoices account has one: the organisation code you type when "
            "you sign in to Zenvoices."
        ),
    )

    def clean_organisation(self):
        return self.cleaned_data["organisation"].strip()


class ZenvoicesClientForm(ConnectorForm):
    company = forms.ChoiceField(
        label=gettext_lazy("Company"),
        help_text=gettext_lazy(
            "This client's company in Zenvoices (Manage > Organisation > Companies); its "
            "documents go to that company's inbox."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer_choices("company", self.companies)

    def companies(self):
        connector = self.installation.connector_instance()
        with connector.open() as session:
            return [(item["code"], label(item)) for item in session.companies()]


def label(company: dict) -> str:
    return f"{company.get('name') or '?'} ({company['code']})"


# --- the API ------------------------------------------------------------------------


def _envelope(response: Response) -> dict:
    body = response.json()
    return body if isinstance(body, dict) else {}


def _result(response: Response):
    return _envelope(response).get("result")


class ZenvoicesApi(ApiClient):
    """Every request to Zenvoices, and what its answers mean."""

    def reason(self, response: Response) -> str:
        """The ABP error's message, details and validation errors, else the answer."""
        error = _envelope(response).get("error")
        if not isinstance(error, dict):
            return self.describe(response)
        parts = [str(error.get(name) or "") for name in ("message", "details")]
        for item in error.get("validationErrors") or []:
            if isinstance(item, dict):
                parts.append(str(item.get("message") or ""))
        said = self.redactor.one_line(" ".join(part for part in parts if part))
        return f"{said} (HTTP {response.status})" if said else self.describe(response)

    def classify(self, response: Response):
        status, envelope = response.status, _envelope(response)
        reason = self.reason(response)
        # ABP answers a failed login 500 with its error envelope (a UserFriendlyException).
        login = urlsplit(response.url).path.endswith("/" + LOGIN_PATH)
        if (
            login
            and status not in SERVER_BUSY
            and (status < 500 or isinstance(envelope.get("error"), dict))
        ):
            return ReauthorizationRequired(
                _(
                    "Zenvoices refused the sign-in (%(reason)s): check the user name or "
                    "e-mail, the password and the organisation code in the extension's "
                    "settings."
                )
                % {"reason": reason}
            )
        if status == 403:
            return DestinationRefused(
                _(
                    "Zenvoices does not allow this user to do this (%(reason)s): give it API "
                    "> Inbox access and API > Companies > List access in Manage > "
                    "Organisation > Users."
                )
                % {"reason": reason}
            )
        if status == 401 or envelope.get("unAuthorizedRequest") is True:
            return ReauthorizationRequired(
                _("Zenvoices refused the access (%(reason)s).") % {"reason": reason}
            )
        if status == 404 and isinstance(envelope.get("error"), dict):
            return ClientRefused(
                _(
                    "Zenvoices does not know this client's company (%(reason)s): choose it "
                    "again on the client's Integrations tab."
                )
                % {"reason": reason}
            )
        if status in REFUSED_DOCUMENT:
            return PermanentError(
                _("Zenvoices refused the document: %(reason)s") % {"reason": reason}
            )
        return None

    def login(self, username: str, password: str, organisation: str) -> dict:
        response = self.request(
            "POST",
            LOGIN_PATH,
            json={
                "userNameOrEmailAddress": username,
                "password": password,
                "tenancyName": organisation or None,
            },
            headers={"Accept": "application/json"},
        )
        result = _result(response)
        if not isinstance(result, dict) or not result.get("accessToken"):
            if isinstance(result, dict) and result.get("requiresTwoFactorVerification"):
                raise ReauthorizationRequired(
                    _(
                        "This Zenvoices user signs in with a second factor: use a user "
                        "without it for the API."
                    )
                )
            raise ReauthorizationRequired(
                _("Zenvoices answered the sign-in without a token (%(reason)s).")
                % {"reason": self.describe(response)}
            )
        self.hide(str(result["accessToken"]))
        return result

    def call(self, token: str, method: str, path: str, **kwargs) -> Response:
        """A request of the public API with the token; 401 is the caller's to renew."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        headers.update(kwargs.pop("headers", None) or {})
        return self.request(method, API + path, headers=headers, accept=(401,), **kwargs)

    @staticmethod
    def companies(response: Response) -> list[dict]:
        result = _result(response) or {}
        items = result.get("items") if isinstance(result, dict) else None
        return [item for item in items or [] if isinstance(item, dict) and item.get("code")]

    @staticmethod
    def found(response: Response, key: str) -> str:
        result = _result(response) or {}
        for item in (result.get("items") if isinstance(result, dict) else None) or []:
            if isinstance(item, dict) and item.get("externalId") == key:
                return str(item.get("id") or "")
        return ""

    @staticmethod
    def upload_body(company: str, kind: str, export_file: ExportFile) -> dict:
        return {
            "companyCode": company,
            "documentType": kind,
            "fileName": export_file.filename,
            "contentType": export_file.content_type or "application/xml",
            "content": base64.b64encode(export_file.content).decode(),
            "externalId": export_file.idempotency_key,
        }


# --- the connector ------------------------------------------------------------------


class ZenvoicesSession:
    """One API client and the installation's token, renewed through its credentials."""

    def __init__(self, connector: ZenvoicesConnector, api: ZenvoicesApi):
        self.connector, self.api = connector, api
        self.token = ""

    def access_token(self, stale: str = "") -> str:
        settings_ = self.connector.destination.settings

        def needed(secrets) -> bool:
            token = secrets.get(ACCESS_TOKEN)
            expires = float(secrets.get(EXPIRES_AT) or 0)
            return not token or token == stale or expires <= time.time() + RENEW_MARGIN

        def renew(secrets) -> dict:
            result = self.api.login(
                settings_.get("username") or "",
                secrets.get("password") or "",
                settings_.get("organisation") or "",
            )
            lifetime = float(result.get("expireInSeconds") or 3600)
            return {ACCESS_TOKEN: str(result["accessToken"]), EXPIRES_AT: time.time() + lifetime}

        secrets = self.connector.destination.credentials.refresh(needed, renew)
        self.token = str(secrets[ACCESS_TOKEN])
        self.api.hide(self.token)
        return self.token

    def call(self, method: str, path: str, **kwargs) -> Response:
        """With a fresh token; a refused one is renewed once and the request repeated."""
        for attempt in (1, 2):
            if not self.token or attempt == 2:
                self.access_token(stale=self.token)
            response = self.api.call(self.token, method, path, **kwargs)
            if response.status != 401:
                return response
        raise ReauthorizationRequired(
            _("Zenvoices refused the access it had just granted (%(reason)s).")
            % {"reason": self.api.reason(response)}
        )

    def companies(self) -> list[dict]:
        return self.api.companies(self.call("GET", "companies"))

    def send(self, export_file: ExportFile) -> Receipt:
        kind = DOCUMENT_TYPES.get(export_file.metadata.get("category", ""))
        if kind is None:
            raise PermanentError(_("Zenvoices takes purchase and sales invoices only."))
        company = export_file.client_settings.get("company")
        if not company:
            raise ClientRefused(
                _("Choose this client's Zenvoices company on its Integrations tab.")
            )
        key = export_file.idempotency_key
        if key:
            params = {"companyCode": company, "externalId": key}
            found = self.api.found(self.call("GET", "inbox", params=params), key)
            if found:
                return Receipt(reference=found, detail=_("Already in Zenvoices."))
        headers = {"Idempotency-Key": key} if key else {}
        body = self.api.upload_body(company, kind, export_file)
        result = _result(self.call("POST", "inbox", json=body, headers=headers)) or {}
        reference = result.get("id") if isinstance(result, dict) else None
        return Receipt(reference=str(reference or key or export_file.filename))


class ZenvoicesConnector(Connector):
    key = "zenvoices"
    logo = "extensions/logos/zenvoices.svg"
    name = "Zenvoices"
    description = gettext_lazy(
        "Puts approved purchase invoices and sent sales invoices in the inbox of each "
        "client's company in Zenvoices, through the Zenvoices API."
    )
    category = "accounting"
    accepts = frozenset({PURCHASE, SALES})
    settings_form = ZenvoicesSettingsForm
    client_form = ZenvoicesClientForm
    binding_fields = ("username", "organisation")
    writes = gettext_lazy(
        "Puts each approved purchase invoice and sent sales invoice (the Peppol UBL file) in "
        "the inbox of the client's company in Zenvoices. It never changes or removes what "
        "is there."
    )

    def api(self) -> ZenvoicesApi:
        secrets = [
            value
            for name, value in (self.destination.secrets or {}).items()
            if name != EXPIRES_AT and isinstance(value, str)
        ]
        return ZenvoicesApi(
            base_url(), secrets=secrets, user=self.destination.settings.get("username") or ""
        )

    @contextmanager
    def open(self):
        with self.api() as api:
            yield ZenvoicesSession(self, api)

    def check(self) -> str:
        with self.open() as session:
            companies = session.companies()
        values = {
            "user": self.destination.settings.get("username") or "?",
            "organisation": self.destination.settings.get("organisation") or "",
            "count": len(companies),
        }
        if values["organisation"]:
            return (
                _(
                    "Signed in to Zenvoices as %(user)s (organisation %(organisation)s); "
                    "%(count)s companies are visible."
                )
                % values
            )
        return _("Signed in to Zenvoices as %(user)s; %(count)s companies are visible.") % values

    def check_integration(self, destination) -> str:
        chosen = destination.settings.get("company") or ""
        with self.open() as session:
            companies = {item["code"]: item for item in session.companies()}
        if chosen not in companies:
            raise ClientRefused(
                _(
                    "Zenvoices does not list the company %(code)s for this user: choose the "
                    "client's company again."
                )
                % {"code": chosen or "?"}
            )
        return _("Documents go to the inbox of the Zenvoices company %(name)s.") % {
            "name": session.api.redactor.one_line(label(companies[chosen]))
        }
