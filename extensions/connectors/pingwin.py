"""PingWin: each approved purchase invoice and sent sales invoice goes to one PingWin file
(dossier) through PingWin's API.

PingWin publishes no API documentation we could find: only the set-up (an API key and a
file ID in the file's parameters, a CLID given by PingWin's support) is confirmed. The
contract spoken here is written down in ``docs/connectors/pingwin.md``, its address
(``PINGWIN_BASE_URL``) included; every HTTP detail is in :class:`PingWinApi`, to be
corrected there. Booking stays with PingWin: we only deliver the document to its API.
"""

from __future__ import annotations

from urllib.parse import quote

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.connectors.base import ConnectorForm, ExportFile, secret
from extensions.connectors.document_api import DocumentApi, DocumentApiConnector, encoded

DEFAULT_BASE_URL = "https://api.pingwin.be"  # assumed: see docs/connectors/pingwin.md

no_spaces = RegexValidator(
    r"^[A-Za-z0-9._-]+$",
    gettext_lazy("Use letters, digits, dots and dashes only, without spaces."),
    code="invalid",
)


def base_url() -> str:
    return getattr(settings, "PINGWIN_BASE_URL", "") or DEFAULT_BASE_URL


class PingWinSettingsForm(ConnectorForm):
    rebind_message = gettext_lazy(
        "You changed the CLID or the file ID: enter the API key of that PingWin file again."
    )

    api_key = secret(
        forms.CharField(
            label=gettext_lazy("API key"),
            max_length=500,
            help_text=gettext_lazy("In PingWin: File settings, then File parameters."),
        ),
        needed=gettext_lazy("Enter the API key."),
    )
    clid = forms.CharField(
        label=gettext_lazy("CLID"),
        max_length=100,
        validators=[no_spaces],
        help_text=gettext_lazy(
            "Your client ID at PingWin: ask PingWin's support for it by e-mail."
        ),
    )
    file_id = forms.CharField(
        label=gettext_lazy("File ID"),
        max_length=100,
        validators=[no_spaces],
        help_text=gettext_lazy(
            "In PingWin: File settings, File parameters, File information, at the top right."
        ),
    )

    def clean_api_key(self):
        value = self.cleaned_data["api_key"]
        if any(char.isspace() for char in value):
            raise forms.ValidationError(
                _("An API key has no spaces: copy it again from PingWin."), code="spaces"
            )
        return value


class PingWinApi(DocumentApi):
    """PingWin's API as assumed in docs/connectors/pingwin.md: ``X-Api-Key`` and ``X-Clid``,
    JSON, one file's documents under ``/v1/files/<file ID>``; no lookup, so the
    ``Idempotency-Key`` alone keeps a retry from making a second document."""

    vendor = "PingWin"
    setting_codes = frozenset({"unknown_file"})

    def base(self) -> str:
        return base_url().rstrip("/") + "/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {
            "X-Api-Key": str(self.secrets.get("api_key") or ""),
            "X-Clid": str(self.settings.get("clid") or ""),
            "Accept": "application/json",
        }

    @property
    def file_path(self) -> str:
        return "files/" + quote(str(self.settings.get("file_id") or ""), safe="")

    def whoami(self) -> str:
        name = self.answered(self.request("GET", self.file_path, headers=self.headers), "name")
        return _("Connected to PingWin (%(host)s): file %(file)s, %(name)s.") % {
            "host": self.host,
            "file": self.settings.get("file_id"),
            "name": self.redactor.one_line(str(name or "?"), limit=200),
        }

    def upload(self, export_file: ExportFile) -> str:
        body = {
            "type": self.direction(export_file),
            "fileName": export_file.filename,
            "content": encoded(export_file.content),
        }
        response = self.request(
            "POST",
            self.file_path + "/documents",
            headers={**self.headers, **self.idempotency(export_file)},
            json=body,
        )
        return self.reference(response)


class PingWinConnector(DocumentApiConnector):
    key = "pingwin"
    logo = "extensions/logos/pingwin.svg"
    name = "PingWin"
    description = gettext_lazy(
        "Delivers approved purchase invoices and sent sales invoices (Peppol BIS 3.0 UBL) to "
        "one PingWin file through PingWin's API. Booking them stays with PingWin."
    )
    settings_form = PingWinSettingsForm
    binding_fields = ("clid", "file_id")
    api_class = PingWinApi
    writes = gettext_lazy(
        "Sends each approved purchase invoice and sent sales invoice to the PingWin file you name."
    )
