"""Onea: each approved purchase invoice and sent sales invoice goes to the firm's Onea
platform (for Exact Online, Unit4 Venice or Octopus) through its API.

Onea publishes no API documentation we could find: only the set-up (an API key in a
dossier's company settings, one platform per accounting package) is confirmed. The
contract spoken here is written down in ``docs/connectors/onea.md``; every HTTP detail is
in :class:`OneaApi`, to be corrected there. Booking stays with Onea and the package: we
only deliver the document to Onea's API.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.connectors.base import ConnectorForm, ExportFile, secret
from extensions.connectors.document_api import DocumentApi, DocumentApiConnector, encoded

# The platform's sub-domain for each accounting package (https://<platform>.onea.be).
PLATFORMS = {
    "eis": "Exact Online",
    "vis": "Unit4 Venice",
    "ois": "Octopus",
}


def platform_url(platform: str) -> str:
    """Onea's address for this platform, unless ``ONEA_BASE_URL`` replaces it."""
    return getattr(settings, "ONEA_BASE_URL", "") or f"https://{platform}.onea.be"


class OneaSettingsForm(ConnectorForm):
    rebind_message = gettext_lazy(
        "You changed the platform: enter the API key of the Onea platform you chose."
    )

    platform = forms.ChoiceField(
        label=gettext_lazy("Accounting package"),
        choices=[(key, label) for key, label in PLATFORMS.items()],
        help_text=gettext_lazy(
            "The Onea platform you use: eis.onea.be for Exact Online, vis.onea.be for "
            "Unit4 Venice, ois.onea.be for Octopus."
        ),
    )
    api_key = secret(
        forms.CharField(
            label=gettext_lazy("API key"),
            max_length=500,
            help_text=gettext_lazy(
                "On the Onea platform, choose the dossier at the top right, then the wrench "
                "icon, Company settings: the API key is shown there."
            ),
        ),
        needed=gettext_lazy("Enter the API key."),
    )

    def clean_api_key(self):
        value = self.cleaned_data["api_key"]
        if any(char.isspace() for char in value):
            raise forms.ValidationError(
                _("An API key has no spaces: copy it again from Onea."), code="spaces"
            )
        return value


class OneaApi(DocumentApi):
    """Onea's API as assumed in docs/connectors/onea.md: ``X-API-Key``, JSON, ``/api/v1``."""

    vendor = "Onea"
    client_codes = frozenset({"unknown_company"})
    client_advice = gettext_lazy(
        "give the API key access to this client's dossier in Onea, then test the client's "
        "connection"
    )

    def base(self) -> str:
        return platform_url(str(self.settings.get("platform") or "eis")).rstrip("/") + "/api/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": str(self.secrets.get("api_key") or ""), "Accept": "application/json"}

    def whoami(self) -> str:
        name = self.answered(self.request("GET", "me", headers=self.headers), "name")
        platform = str(self.settings.get("platform") or "")
        return _("Connected to Onea for %(package)s (%(host)s) as %(name)s.") % {
            "package": PLATFORMS.get(platform, platform),
            "host": urlsplit(platform_url(platform)).hostname,
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
            "reference": export_file.idempotency_key,
            "direction": self.direction(export_file),
            "companyNumber": export_file.metadata.get("client_number", ""),
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


class OneaConnector(DocumentApiConnector):
    key = "onea"
    logo = "extensions/logos/onea.svg"
    name = "Onea"
    description = gettext_lazy(
        "Delivers approved purchase invoices and sent sales invoices (Peppol BIS 3.0 UBL) to "
        "your Onea platform for Exact Online, Unit4 Venice or Octopus, through Onea's API. "
        "Booking them stays with Onea."
    )
    settings_form = OneaSettingsForm
    binding_fields = ("platform",)
    api_class = OneaApi
    writes = gettext_lazy(
        "Sends each approved purchase invoice and sent sales invoice to your Onea platform, "
        "with the client's enterprise number."
    )
