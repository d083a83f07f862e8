"""What the connectors to accounting packages without published API documentation share
(Onea, PingWin, Count-e, Wings Online): upload one UBL document per request to a JSON API.

Each of them speaks a contract written down in ``docs/connectors/<key>.md``, in which only
the set-up fields are confirmed by a public source. So every HTTP detail (addresses,
headers, bodies, error codes) lives in the connector's one :class:`DocumentApi` subclass,
to be corrected there against the vendor's API; this module holds only what does not
depend on the vendor:

* **Once only.** A retry after a lost answer must not create a second document: the
  session first asks the API for a document carrying our idempotency key (where the
  contract has such a lookup), and every upload also carries it as ``Idempotency-Key``.
  A person's *Re-send* has another key, so the package takes it again.
* **What a refusal means**, from the error's status and code (:meth:`DocumentApi.classify`):
  refused credentials wait for a person (*Reconnect needed*); a code naming one client's
  identifier (its customer number, its journal) stops that client only (``ClientRefused``);
  a busy or unavailable package is tried again after its ``Retry-After``; anything else
  refuses this document for good, with the package's own words.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.api import ApiClient, RateLimited, Response, retry_after
from extensions.connectors.base import (
    PURCHASE,
    SALES,
    ClientRefused,
    Connector,
    ConnectorError,
    ExportFile,
    PermanentError,
    ReauthorizationRequired,
    Receipt,
    TransientError,
)

digits_only = RegexValidator(r"^[0-9]+$", gettext_lazy("Enter digits only."), code="digits")


def basic(user: str, password: str) -> str:
    """An HTTP Basic ``Authorization`` value (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def encoded(content: bytes) -> str:
    """The document's bytes in base64, as a JSON body carries them unchanged."""
    return base64.b64encode(content).decode("ascii")


class DocumentApi(ApiClient):
    """One package's API: its address, authentication, requests and error codes.

    Built from an installation's (or an integration's overlaid) settings and secrets;
    subclasses implement :meth:`whoami`, :meth:`upload` and, where their contract has
    them, :meth:`find` and :meth:`check_client`.
    """

    vendor: ClassVar[str] = ""  # the package's name, in messages
    # Error codes naming one client's identifier: only that client waits.
    client_codes: ClassVar[frozenset[str]] = frozenset()
    # Error codes naming an installation setting that is not a credential (a file ID).
    setting_codes: ClassVar[frozenset[str]] = frozenset()
    client_advice: ClassVar[str] = gettext_lazy(
        "correct it on the client's Integrations tab, then save"
    )

    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, Any]):
        self.settings, self.secrets = settings, secrets
        super().__init__(
            self.base(),
            secrets=[value for value in secrets.values() if isinstance(value, str)],
            user=str(settings.get("username") or ""),
        )

    # --- what each package defines ---

    def base(self) -> str:
        raise NotImplementedError

    def whoami(self) -> str:
        """Authenticate and say in one sentence what was reached."""
        raise NotImplementedError

    def find(self, export_file: ExportFile) -> str | None:
        """The reference of a document already sent with this idempotency key; None when
        there is none, or when the contract has no lookup."""
        return None

    def upload(self, export_file: ExportFile) -> str:
        """Send one document; its reference at the package."""
        raise NotImplementedError

    def check_client(self) -> str:
        """Check the client's own identifiers (the settings are overlaid with them)."""
        return ""

    def error_of(self, response: Response) -> tuple[str, str]:
        """(code, message) of an error answer: ``{"error": {"code", "message"}}``."""
        answer = response.json()
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(error, dict):
            return "", ""
        return str(error.get("code") or ""), str(error.get("message") or "")

    # --- shared meaning of an error answer ---

    def reason(self, response: Response) -> str:
        """The package's own words, one line without secrets; else the answer as is."""
        code, message = self.error_of(response)
        said = self.redactor.one_line(message, limit=300)
        if said:
            return f"{said} ({self.redactor.one_line(code, limit=60)})" if code else said
        return self.describe(response)

    def classify(self, response: Response) -> ConnectorError | None:
        code, _message = self.error_of(response)
        values = {"vendor": self.vendor, "reason": self.reason(response)}
        wait = retry_after(response.headers.get("Retry-After"))
        if response.status == 429:
            return RateLimited(
                _("%(vendor)s asks to slow down (%(reason)s).") % values, retry_after=wait
            )
        if response.status == 408 or response.status >= 500:
            return TransientError(
                _("%(vendor)s is busy or unavailable (%(reason)s); sending again later.") % values,
                retry_after=wait,
            )
        if code in self.client_codes:
            return ClientRefused(
                _("%(vendor)s refused this client's settings (%(reason)s): %(advice)s.")
                % {**values, "advice": self.client_advice}
            )
        if code in self.setting_codes:
            return ReauthorizationRequired(
                _(
                    "%(vendor)s refused a setting (%(reason)s); correct it in the extension's "
                    "settings."
                )
                % values
            )
        if response.status in (401, 403):
            return ReauthorizationRequired(
                _(
                    "%(vendor)s refused the credentials (%(reason)s); correct them in the "
                    "extension's settings."
                )
                % values
            )
        if response.method == "POST":
            return PermanentError(_("%(vendor)s refused the document: %(reason)s") % values)
        return PermanentError(_("%(vendor)s refused the request: %(reason)s") % values)

    # --- shared helpers ---

    @staticmethod
    def direction(export_file: ExportFile) -> str:
        """``purchase`` or ``sales``: the only categories these packages are sent."""
        category = export_file.metadata.get("category")
        if category not in (PURCHASE, SALES):
            raise PermanentError(_("Only purchase and sales invoices can be sent here."))
        return category

    def idempotency(self, export_file: ExportFile) -> dict[str, str]:
        key = export_file.idempotency_key
        return {"Idempotency-Key": key} if key else {}

    @staticmethod
    def answered(response: Response, name: str) -> Any:
        """Field ``name`` of a JSON object answer; None when the answer is something else."""
        answer = response.json()
        return answer.get(name) if isinstance(answer, dict) else None

    def carrying(self, documents, key: str) -> str | None:
        """The id of the document in ``documents`` (a lookup's list) whose ``reference``
        is our idempotency key; None when there is none."""
        for document in documents if isinstance(documents, list) else []:
            if isinstance(document, dict) and document.get("reference") == key:
                return self.redactor.one_line(str(document.get("id")), limit=200)
        return None

    def reference(self, response: Response, field: str = "id") -> str:
        """The package's id of what it answered about, as the job's remote reference."""
        value = self.answered(response, field)
        if not isinstance(value, str | int) or value == "":
            raise TransientError(
                _("%(vendor)s answered without the document's id (%(answer)s).")
                % {"vendor": self.vendor, "answer": self.describe(response)}
            )
        return self.redactor.one_line(str(value), limit=200)


class DocumentApiSession:
    """One API client, so one kept-alive connection, for a whole batch."""

    def __init__(self, api: DocumentApi):
        self.api = api

    def send(self, export_file: ExportFile) -> Receipt:
        reference = self.api.find(export_file) if export_file.idempotency_key else None
        if reference is None:
            reference = self.api.upload(export_file)
        return Receipt(reference=reference)


class DocumentApiConnector(Connector):
    """A package reached through a :class:`DocumentApi`; it takes invoices, not CODA."""

    category = "accounting"
    accepts = frozenset({PURCHASE, SALES})
    api_class: ClassVar[type[DocumentApi]]

    def api(self, destination=None) -> DocumentApi:
        destination = destination or self.destination
        return self.api_class(destination.settings or {}, destination.secrets or {})

    @contextmanager
    def open(self):
        with self.api() as api:
            yield DocumentApiSession(api)

    def check(self) -> str:
        with self.api() as api:
            return api.whoami()

    def check_integration(self, destination) -> str:
        if self.client_form is None:
            return ""  # nothing of the client's to check
        with self.api(destination) as api:
            return api.check_client()
