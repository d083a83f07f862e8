"""BoCount: each invoice goes into the client's company in BoCount, through the web service
of the firm's BoCount, with that client's own web-service user.

What is known of BoCount's side is only what a firm is given to connect: the address of
its BoCount web service (different for each accounting firm), and per client a
web-service user name and password and the company number, which is the client's VAT
number. BoCount publishes no API documentation, so the requests below follow a contract
written down in ``docs/connectors/bocount.md`` (every point marked confirmed or assumed);
every HTTP detail lives in :class:`BocountApi`, to be corrected there in one place.

* **Per client.** The credentials are the client's, so ``connection_scope`` is
  ``"integration"``: one client's refused password stops that client only (*Reconnect
  needed* on its Integrations tab) and the other clients' documents go on.
* **Bound to the address.** A client's password was typed for the firm's web service at
  that moment: the client form records that address beside it (``entered_for``), and when
  the firm's address changes the password is asked again and never sent to the new one.
* **Once only.** Before an upload, the documents of the company are looked up by our
  idempotency key; the upload also carries it as ``Idempotency-Key``. A retry after a lost
  answer finds the first upload and does not send a second one.
"""

from __future__ import annotations

import base64
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.api import ApiClient, Response
from extensions.connectors.base import (
    PURCHASE,
    SALES,
    ClientReauthorizationRequired,
    ClientRefused,
    Connector,
    ConnectorForm,
    DestinationRefused,
    ExportFile,
    PermanentError,
    Receipt,
    secret,
)
from partnerspace.enterprise import clean_enterprise_number

ENTERED_FOR = "entered_for"  # the client setting naming the address its password was typed for
DOCUMENT_TYPES = {PURCHASE: "purchase", SALES: "sales"}
REFUSED_DOCUMENT = frozenset({400, 409, 413, 415, 422})


def service_address(url) -> str:
    """The web service's address as compared: scheme and host lower-case, no trailing /."""
    parts = urlsplit(str(url or "").strip())
    if not parts.scheme or not parts.hostname:
        return ""
    netloc = parts.hostname.lower() + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


# --- forms --------------------------------------------------------------------------


class BocountSettingsForm(ConnectorForm):
    base_url = forms.URLField(
        label=gettext_lazy("BoCount web service address"),
        max_length=500,
        assume_scheme="https",
        help_text=gettext_lazy(
            "The address of your firm's BoCount web service, as BoCount gave it to your firm "
            "with its web-service access, e.g. https://…/webservice/. Each client's "
            "web-service user is entered on that client's Integrations tab."
        ),
    )

    def clean_base_url(self):
        url = self.cleaned_data["base_url"]
        parts = urlsplit(url)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and getattr(settings, "EXPORT_ALLOW_PRIVATE_HOSTS", False)
        ):
            raise ValidationError(
                _("Use an https:// address: documents must be encrypted on their way."),
                code="https",
            )
        if parts.username is not None or parts.password is not None:
            raise ValidationError(
                _("Remove the user name and password from the address."), code="credentials"
            )
        if parts.query or parts.fragment:
            raise ValidationError(
                _("Remove the part after ? or # from the address."), code="query"
            )
        return service_address(url) + "/"


class BocountClientForm(ConnectorForm):
    rebind_message = gettext_lazy(
        "Your firm's BoCount web service address changed since this client's password was "
        "entered: enter the web-service password again."
    )

    username = forms.CharField(
        label=gettext_lazy("Web-service user name"),
        max_length=150,
        help_text=gettext_lazy(
            "The web-service user BoCount created for this client (not your own BoCount login)."
        ),
    )
    password = secret(
        forms.CharField(
            label=gettext_lazy("Web-service password"),
            max_length=200,
            help_text=gettext_lazy(
                "The password of this client's web-service user. Leave it empty to keep the "
                "one stored."
            ),
        ),
        needed=gettext_lazy("Enter this client's web-service password."),
    )
    company_number = forms.CharField(
        label=gettext_lazy("Company number"),
        max_length=20,
        help_text=gettext_lazy(
            "The client's VAT number, by which its company is known in BoCount, e.g. "
            "BE 0123.456.749."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.client is not None and not self.initial.get("company_number"):
            self.initial = {**self.initial, "company_number": self.client.vat_number}
        typed_for = self.initial.get(ENTERED_FOR)
        self._rebound = lambda cleaned: bool(typed_for) and typed_for != self.address()

    def address(self) -> str:
        settings_ = self.installation.settings if self.installation is not None else {}
        return service_address(settings_.get("base_url"))

    def clean_company_number(self):
        return "BE" + clean_enterprise_number(self.cleaned_data["company_number"])

    def clean(self):
        cleaned = super().clean()
        cleaned[ENTERED_FOR] = self.address()
        return cleaned


# --- the web service ----------------------------------------------------------------


def _said(response: Response) -> str:
    """The ``error.message`` of BoCount's assumed error body, or "" without one."""
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return ""


def _code(response: Response) -> str:
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code") or "") if isinstance(error, dict) else ""


class BocountApi(ApiClient):
    """Every request to a BoCount web service, and what its answers mean."""

    def __init__(self, base_url: str, username: str = "", password: str = ""):
        super().__init__(base_url, secrets=[password] if password else [], user=username)
        self.username, self.password = username, password

    def reason(self, response: Response) -> str:
        said = _said(response)
        if said:
            return f"{self.redactor.one_line(said)} (HTTP {response.status})"
        return self.describe(response)

    def classify(self, response: Response):
        reason = self.reason(response)
        if response.status == 401:
            return ClientReauthorizationRequired(
                _(
                    "BoCount refused this client's web-service user name or password "
                    "(%(reason)s): enter them again on the client's Integrations tab."
                )
                % {"reason": reason}
            )
        if response.status == 403:
            return ClientRefused(
                _(
                    "BoCount does not let this client's web-service user reach the company "
                    "(%(reason)s): check its rights in BoCount."
                )
                % {"reason": reason}
            )
        if response.status == 404 and _code(response) == "company_not_found":
            return ClientRefused(
                _(
                    "BoCount has no company with this client's company number (%(reason)s): "
                    "check the company number on the client's Integrations tab."
                )
                % {"reason": reason}
            )
        if response.status in REFUSED_DOCUMENT:
            return PermanentError(
                _("BoCount refused the document: %(reason)s") % {"reason": reason}
            )
        return None

    def service(self) -> dict:
        """The unauthenticated status of the web service: is this a BoCount web service?"""
        response = self.request("GET", "status", headers={"Accept": "application/json"})
        answer = response.json()
        if not isinstance(answer, dict) or "version" not in answer:
            raise DestinationRefused(
                _("No BoCount web service answers at %(host)s: check the address.")
                % {"host": self.host}
            )
        return answer

    def company(self, number: str) -> dict:
        path = f"companies/{quote(number, safe='')}"
        return self.request("GET", path, headers=self._auth()).json() or {}

    def find(self, number: str, key: str) -> str:
        """The id of the company's document uploaded with this idempotency key, or ""."""
        path = f"companies/{quote(number, safe='')}/documents"
        answer = self.request(
            "GET", path, headers=self._auth(), params={"idempotencyKey": key}
        ).json()
        for document in (answer or {}).get("documents") or []:
            if isinstance(document, dict) and document.get("idempotencyKey") == key:
                return str(document.get("id") or "")
        return ""

    def upload(self, number: str, kind: str, export_file: ExportFile) -> str:
        path = f"companies/{quote(number, safe='')}/documents"
        headers = {
            **self._auth(),
            "Content-Type": export_file.content_type or "application/xml",
            "X-File-Name": quote(export_file.filename, safe=""),
        }
        if export_file.idempotency_key:
            headers["Idempotency-Key"] = export_file.idempotency_key
        response = self.request(
            "POST", path, headers=headers, params={"type": kind}, data=export_file.content
        )
        return str((response.json() or {}).get("id") or "")

    def _auth(self) -> dict:
        pair = f"{self.username}:{self.password}".encode()
        return {
            "Authorization": "Basic " + base64.b64encode(pair).decode(),
            "Accept": "application/json",
        }


# --- the connector ------------------------------------------------------------------


class BocountSession:
    def __init__(self, api: BocountApi, company_number: str):
        self.api, self.company_number = api, company_number

    def send(self, export_file: ExportFile) -> Receipt:
        kind = DOCUMENT_TYPES.get(export_file.metadata.get("category", ""))
        if kind is None:
            raise PermanentError(_("BoCount takes purchase and sales invoices only."))
        number = export_file.client_settings.get("company_number") or self.company_number
        key = export_file.idempotency_key
        found = self.api.find(number, key) if key else ""
        if found:
            return Receipt(reference=found, detail=_("Already in BoCount."))
        reference = self.api.upload(number, kind, export_file)
        return Receipt(reference=reference or key or export_file.filename)


class BocountConnector(Connector):
    key = "bocount"
    logo = "extensions/logos/bocount.svg"
    name = "BoCount"
    description = gettext_lazy(
        "Adds approved purchase invoices and sent sales invoices to each client's company "
        "in BoCount, through your firm's BoCount web service and the client's own "
        "web-service user. Built on an interface BoCount has not published: check the first "
        "documents in BoCount."
    )
    category = "accounting"
    accepts = frozenset({PURCHASE, SALES})
    settings_form = BocountSettingsForm
    client_form = BocountClientForm
    connection_scope = "integration"
    # The installation stores no secret: each client's password is bound to the address
    # by the client form (``entered_for``), checked again before any request.
    binding_fields = ()
    writes = gettext_lazy(
        "Adds each approved purchase invoice and sent sales invoice (the Peppol UBL file) to "
        "the client's company in BoCount, with that client's web-service user. It never "
        "changes or removes what is there."
    )

    @property
    def address(self) -> str:
        return service_address(self.destination.settings.get("base_url"))

    def api(self, destination=None) -> BocountApi:
        destination = destination or self.destination
        secrets = destination.secrets or {}
        return BocountApi(
            self.address + "/",
            username=destination.settings.get("username") or "",
            password=secrets.get("password") or "",
        )

    @staticmethod
    def has_client_credentials(destination) -> bool:
        return bool(destination.settings.get("username") or (destination.secrets or {}))

    def client_ready(self, destination) -> str:
        """The client's company number, once its password may be sent to this address."""
        typed_for = destination.settings.get(ENTERED_FOR)
        if typed_for != self.address or not (destination.secrets or {}).get("password"):
            raise ClientReauthorizationRequired(
                _(
                    "Enter this client's BoCount web-service password on its Integrations "
                    "tab (the firm's BoCount address changed, or none was entered)."
                )
            )
        number = destination.settings.get("company_number") or ""
        if not number:
            raise ClientRefused(_("Enter this client's company number on its Integrations tab."))
        return number

    @contextmanager
    def open(self):
        number = self.client_ready(self.destination)
        with self.api() as api:
            yield BocountSession(api, number)

    def check(self) -> str:
        """The service itself; and when a client's connection, its credentials too."""
        if self.has_client_credentials(self.destination):
            return self.check_integration(self.destination)
        with self.api() as api:
            version = api.service().get("version")
        return _(
            "Reached the BoCount web service at %(host)s (version %(version)s); each client's "
            "web-service user is checked when its integration is saved."
        ) % {"host": api.host, "version": version}

    def check_integration(self, destination) -> str:
        number = self.client_ready(destination)
        with self.api(destination) as api:
            company = api.company(number)
        return _(
            "Signed in to BoCount at %(host)s as %(user)s; company %(number)s (%(name)s)."
        ) % {
            "host": api.host,
            "user": api.username,
            "number": number,
            "name": api.redactor.one_line(str(company.get("name") or "?")),
        }
