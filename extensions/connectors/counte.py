"""Count-e: each approved purchase invoice and sent sales invoice goes to the firm's Count-e
environment, for the client's customer number, through its API.

Count-e publishes no API documentation we could find: only the set-up (user name,
password, the API URL of the firm's environment and its database; per client the customer
number) is confirmed. The contract spoken here is written down in
``docs/connectors/counte.md``; every HTTP detail is in :class:`CounteApi`, to be corrected
there. The API URL is the firm's own, so it is reached through the outbound guard like any
address a firm types in. Booking stays with Count-e: we only deliver the document.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.connectors.base import ConnectorForm, ExportFile, secret
from extensions.connectors.document_api import (
    DocumentApi,
    DocumentApiConnector,
    basic,
    digits_only,
    encoded,
)


class CounteSettingsForm(ConnectorForm):
    rebind_message = gettext_lazy(
        "You changed the API URL, the database or the user name: enter the password again."
    )

    api_url = forms.URLField(
        label=gettext_lazy("API URL"),
        max_length=500,
        assume_scheme="https",
        help_text=gettext_lazy(
            "The address of your firm's Count-e environment's API, starting with https://, "
            "as Count-e gave it to you."
        ),
    )
    database = forms.CharField(
        label=gettext_lazy("Database"),
        max_length=200,
        help_text=gettext_lazy("The name of your database in that Count-e environment."),
    )
    username = forms.CharField(
        label=gettext_lazy("User name"),
        max_length=200,
        help_text=gettext_lazy("The user name you sign in to Count-e with."),
    )
    password = secret(
        forms.CharField(label=gettext_lazy("Password"), max_length=500, strip=False),
        needed=gettext_lazy("Enter the password."),
    )

    def clean_api_url(self):
        url = self.cleaned_data["api_url"].strip()
        parts = urlsplit(url)
        allowed = ("https", "http") if settings.EXPORT_ALLOW_PRIVATE_HOSTS else ("https",)
        if parts.scheme not in allowed:
            raise ValidationError(_("Use an https:// address."), code="https")
        if parts.username is not None or parts.password is not None:
            raise ValidationError(
                _("Remove the user name and password from the URL."), code="credentials"
            )
        if parts.query or parts.fragment:
            raise ValidationError(_("Remove the part after ? or # from the URL."), code="query")
        return url.rstrip("/")

    def clean_username(self):
        value = self.cleaned_data["username"]
        if ":" in value:
            raise ValidationError(_("A user name cannot contain a colon."), code="colon")
        return value


class CounteClientForm(ConnectorForm):
    customer_number = forms.CharField(
        label=gettext_lazy("Customer number"),
        max_length=20,
        validators=[digits_only],
        help_text=gettext_lazy("This client's customer number (klantnummer) in Count-e."),
    )


class CounteApi(DocumentApi):
    """Count-e's API as assumed in docs/connectors/counte.md: HTTP Basic, the database in
    ``X-Database``, JSON, under the firm's API URL."""

    vendor = "Count-e"
    client_codes = frozenset({"unknown_customer"})
    setting_codes = frozenset({"unknown_database"})

    def base(self) -> str:
        return str(self.settings.get("api_url") or "").rstrip("/")

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": basic(
                str(self.settings.get("username") or ""), str(self.secrets.get("password") or "")
            ),
            "X-Database": str(self.settings.get("database") or ""),
            "Accept": "application/json",
        }

    def whoami(self) -> str:
        self.request("GET", "me", headers=self.headers)
        return _("Connected to Count-e at %(host)s, database %(database)s, as %(user)s.") % {
            "host": self.host,
            "database": self.settings.get("database"),
            "user": self.settings.get("username"),
        }

    def check_client(self) -> str:
        number = str(self.settings.get("customer_number") or "")
        path = "customers/" + quote(number, safe="")
        name = self.answered(self.request("GET", path, headers=self.headers), "name")
        return _("Count-e knows customer %(number)s: %(name)s.") % {
            "number": number,
            "name": self.redactor.one_line(str(name or "?"), limit=200),
        }

    def find(self, export_file: ExportFile) -> str | None:
        response = self.request(
            "GET",
            "documents",
            headers=self.headers,
            params={"reference": export_file.idempotency_key},
        )
        documents = self.answered(response, "documents")
        return self.carrying(documents, export_file.idempotency_key)

    def upload(self, export_file: ExportFile) -> str:
        body = {
            "customerNumber": str(export_file.client_settings.get("customer_number") or ""),
            "type": self.direction(export_file),
            "reference": export_file.idempotency_key,
            "fileName": export_file.filename,
            "content": encoded(export_file.content),
        }
        response = self.request(
            "POST",
            "documents",
            headers={**self.headers, **self.idempotency(export_file)},
            json=body,
        )
        return self.reference(response)


class CounteConnector(DocumentApiConnector):
    key = "counte"
    logo = "extensions/logos/counte.svg"
    name = "Count-e"
    description = gettext_lazy(
        "Delivers approved purchase invoices and sent sales invoices (Peppol BIS 3.0 UBL) to "
        "your Count-e environment's API, for each client's customer number. Booking them "
        "stays with Count-e."
    )
    settings_form = CounteSettingsForm
    client_form = CounteClientForm
    binding_fields = ("api_url", "database", "username")
    api_class = CounteApi
    writes = gettext_lazy(
        "Sends each approved purchase invoice and sent sales invoice to the Count-e API URL "
        "you configure, with the client's customer number."
    )

    @classmethod
    def binding(cls, settings) -> dict:
        """The API URL without case or a trailing slash that would change nothing."""
        parts = urlsplit(str(settings.get("api_url") or ""))
        return {
            "api_url": f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}",
            "database": settings.get("database"),
            "username": settings.get("username"),
        }
