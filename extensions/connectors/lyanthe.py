"""Lyanthe: each invoice goes into the client's administration in Lyanthe.

Nothing of Lyanthe's interface is public: no API documentation and no set-up guide were
found. The requests below follow a contract written down, every point of it assumed, in
``docs/connectors/lyanthe.md``: a login with the firm's user name and password that hands
out a bearer token, the list of the administrations that user reaches, and an upload of
the document into one administration. Every HTTP detail lives in :class:`LyantheApi`, so
it can be corrected against Lyanthe's real interface in one place; ``LYANTHE_BASE_URL``
says where it is (its default is assumed too).

* **Per client** the administration is picked from the list Lyanthe returns
  (``offer_choices``), fetched again when the form is saved, so a choice Lyanthe no longer
  has is refused; an administration Lyanthe no longer knows at upload stops that client
  only.
* **Token** obtained once per connection (a batch), renewed by logging in again once when
  Lyanthe refuses it; a refused login waits for a person (*Reconnect needed*).
* **Once only.** Before an upload, the administration's documents are looked up by our
  idempotency key, which the upload also carries as ``Idempotency-Key``.
"""

from __future__ import annotations

import base64
from contextlib import contextmanager
from urllib.parse import quote

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

DEFAULT_BASE_URL = "https://api.lyanthe.be/v1/"  # assumed: no public address was found
DOCUMENT_TYPES = {PURCHASE: "purchase", SALES: "sales"}
REFUSED_DOCUMENT = frozenset({400, 409, 413, 415, 422})


def base_url() -> str:
    return getattr(settings, "LYANTHE_BASE_URL", "") or DEFAULT_BASE_URL


# --- forms --------------------------------------------------------------------------


class LyantheSettingsForm(ConnectorForm):
    rebind_message = gettext_lazy("You changed the Lyanthe user name: enter its password again.")

    username = forms.CharField(
        label=gettext_lazy("User name"),
        max_length=150,
        help_text=gettext_lazy(
            "The Lyanthe user this portal signs in as; it must reach the administrations of "
            "the clients you export."
        ),
    )
    password = secret(
        forms.CharField(
            label=gettext_lazy("Password"),
            max_length=200,
            help_text=gettext_lazy(
                "The password of that Lyanthe user. Leave it empty to keep the one stored."
            ),
        ),
        needed=gettext_lazy("Enter the Lyanthe password."),
    )


class LyantheClientForm(ConnectorForm):
    administration = forms.ChoiceField(
        label=gettext_lazy("Administration"),
        help_text=gettext_lazy(
            "This client's administration in Lyanthe, as listed for the user the extension "
            "signs in as."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer_choices("administration", self.administrations)

    def administrations(self):
        connector = self.installation.connector_instance()
        with connector.open() as session:
            found = session.api.administrations()
        vat = getattr(self.client, "vat_number", "")
        for item in found:
            if vat and item.get("vatNumber") == vat and not self.initial.get("administration"):
                self.initial = {**self.initial, "administration": item["id"]}
        return [(item["id"], label(item)) for item in found]


def label(administration: dict) -> str:
    return f"{administration.get('name') or '?'} ({administration['id']})"


# --- the API ------------------------------------------------------------------------


def _error(response: Response) -> tuple[str, str]:
    """(code, message) of Lyanthe's assumed error body ``{"error": {"code", "message"}}``."""
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


class LyantheApi(ApiClient):
    """Every request to Lyanthe, and what its answers mean; holds the session's token."""

    def __init__(self, url: str, username: str, password: str):
        super().__init__(url, secrets=[password] if password else [], user=username)
        self.username, self.password = username, password
        self.token = ""

    def reason(self, response: Response) -> str:
        _code, message = _error(response)
        if message:
            return f"{self.redactor.one_line(message)} (HTTP {response.status})"
        return self.describe(response)

    def classify(self, response: Response):
        code, _message = _error(response)
        reason = self.reason(response)
        if response.status == 401:
            return ReauthorizationRequired(
                _(
                    "Lyanthe refused the user name or password (%(reason)s): enter them again "
                    "in the extension's settings."
                )
                % {"reason": reason}
            )
        if response.status == 403:
            return DestinationRefused(
                _("Lyanthe does not let this user do this (%(reason)s): check its rights.")
                % {"reason": reason}
            )
        if response.status == 404 and code == "administration_not_found":
            return ClientRefused(
                _(
                    "Lyanthe no longer knows this client's administration (%(reason)s): "
                    "choose it again on the client's Integrations tab."
                )
                % {"reason": reason}
            )
        if response.status in REFUSED_DOCUMENT:
            return PermanentError(
                _("Lyanthe refused the document: %(reason)s") % {"reason": reason}
            )
        return None

    def login(self) -> None:
        answer = self.request(
            "POST",
            "auth/login",
            json={"username": self.username, "password": self.password},
            headers={"Accept": "application/json"},
        ).json()
        token = (answer or {}).get("accessToken")
        if not token:
            raise ReauthorizationRequired(_("Lyanthe answered the login without a token."))
        self.token = str(token)
        self.hide(self.token)

    def call(self, method: str, path: str, *, headers=None, **kwargs) -> Response:
        """A request with the token; a refused token is renewed by one new login."""
        for attempt in (1, 2):
            if not self.token or attempt == 2:
                self.login()
            response = self.request(
                method,
                path,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Accept": "application/json",
                    **(headers or {}),
                },
                accept=(401,),
                **kwargs,
            )
            if response.status != 401:
                return response
        raise ReauthorizationRequired(
            _("Lyanthe refused the access it had just granted (%(reason)s).")
            % {"reason": self.reason(response)}
        )

    def administrations(self) -> list[dict]:
        answer = self.call("GET", "administrations").json() or {}
        return [
            item
            for item in answer.get("administrations") or []
            if isinstance(item, dict) and item.get("id")
        ]

    def find(self, administration: str, key: str) -> str:
        path = f"administrations/{quote(administration, safe='')}/documents"
        answer = self.call("GET", path, params={"idempotencyKey": key}).json() or {}
        for document in answer.get("documents") or []:
            if isinstance(document, dict) and document.get("idempotencyKey") == key:
                return str(document.get("id") or "")
        return ""

    def upload(self, administration: str, kind: str, export_file: ExportFile) -> str:
        path = f"administrations/{quote(administration, safe='')}/documents"
        headers = {}
        if export_file.idempotency_key:
            headers["Idempotency-Key"] = export_file.idempotency_key
        body = {
            "type": kind,
            "fileName": export_file.filename,
            "contentType": export_file.content_type or "application/xml",
            "content": base64.b64encode(export_file.content).decode(),
        }
        answer = self.call("POST", path, json=body, headers=headers).json() or {}
        return str(answer.get("id") or "")


# --- the connector ------------------------------------------------------------------


class LyantheSession:
    def __init__(self, api: LyantheApi):
        self.api = api

    def send(self, export_file: ExportFile) -> Receipt:
        kind = DOCUMENT_TYPES.get(export_file.metadata.get("category", ""))
        if kind is None:
            raise PermanentError(_("Lyanthe takes purchase and sales invoices only."))
        administration = export_file.client_settings.get("administration")
        if not administration:
            raise ClientRefused(
                _("Choose this client's Lyanthe administration on its Integrations tab.")
            )
        key = export_file.idempotency_key
        found = self.api.find(administration, key) if key else ""
        if found:
            return Receipt(reference=found, detail=_("Already in Lyanthe."))
        reference = self.api.upload(administration, kind, export_file)
        return Receipt(reference=reference or key or export_file.filename)


class LyantheConnector(Connector):
    key = "lyanthe"
    logo = "extensions/logos/lyanthe.svg"
    name = "Lyanthe"
    description = gettext_lazy(
        "Adds approved purchase invoices and sent sales invoices to each client's "
        "administration in Lyanthe. Built on an interface Lyanthe has not published: check "
        "the first documents in Lyanthe."
    )
    category = "accounting"
    accepts = frozenset({PURCHASE, SALES})
    settings_form = LyantheSettingsForm
    client_form = LyantheClientForm
    binding_fields = ("username",)
    writes = gettext_lazy(
        "Adds each approved purchase invoice and sent sales invoice (the Peppol UBL file) to "
        "the client's administration in Lyanthe. It never changes or removes what is there."
    )

    def api(self) -> LyantheApi:
        return LyantheApi(
            base_url(),
            username=self.destination.settings.get("username") or "",
            password=(self.destination.secrets or {}).get("password") or "",
        )

    @contextmanager
    def open(self):
        with self.api() as api:
            yield LyantheSession(api)

    def check(self) -> str:
        with self.open() as session:
            found = session.api.administrations()
        return _(
            "Signed in to Lyanthe at %(host)s as %(user)s; %(count)s administrations are visible."
        ) % {"host": session.api.host, "user": session.api.username, "count": len(found)}

    def check_integration(self, destination) -> str:
        chosen = destination.settings.get("administration") or ""
        with self.open() as session:
            found = {item["id"]: item for item in session.api.administrations()}
        if chosen not in found:
            raise ClientRefused(
                _(
                    "Lyanthe does not list the administration %(id)s for this user: choose "
                    "the client's administration again."
                )
                % {"id": chosen or "?"}
            )
        return _("Documents go to the Lyanthe administration %(name)s.") % {
            "name": session.api.redactor.one_line(label(found[chosen]))
        }
