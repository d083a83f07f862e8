"""Wings Online: each approved purchase invoice and sent sales invoice goes to the client's
Wings dossier, in the journal chosen for its kind, through Wings Online's API.

Wings publishes no API documentation we could find: only the set-up (an API user whose
name starts with ``Wings8``, its password; per client the internal number and the
purchase and sales journals) is confirmed. The contract spoken here is written down in
``docs/connectors/wings.md``, its address (``WINGS_BASE_URL``) included; every HTTP
detail is in :class:`WingsApi`, to be corrected there. Booking stays with Wings: we only
deliver the document to the journal's inbox of its API.
"""

from __future__ import annotations

from urllib.parse import quote

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.connectors.base import (
    PURCHASE,
    SALES,
    ClientRefused,
    ConnectorForm,
    ExportFile,
    secret,
)
from extensions.connectors.document_api import (
    DocumentApi,
    DocumentApiConnector,
    basic,
    digits_only,
    encoded,
)

DEFAULT_BASE_URL = "https://api.wings.be"  # assumed: see docs/connectors/wings.md
USER_PREFIX = "Wings8"  # every Wings Online API user name starts so, e.g. Wings8123

journal_code = RegexValidator(
    r"^[A-Za-z0-9_-]{1,10}$",
    gettext_lazy("Enter the journal's code as Wings shows it: letters and digits, no spaces."),
    code="journal",
)


def base_url() -> str:
    return getattr(settings, "WINGS_BASE_URL", "") or DEFAULT_BASE_URL


class WingsSettingsForm(ConnectorForm):
    rebind_message = gettext_lazy("You changed the user name: enter its password again.")

    username = forms.CharField(
        label=gettext_lazy("User name"),
        max_length=100,
        help_text=gettext_lazy(
            "The API user Wings set up for you; it starts with Wings8, e.g. Wings8123."
        ),
    )
    password = secret(
        forms.CharField(label=gettext_lazy("Password"), max_length=500, strip=False),
        needed=gettext_lazy("Enter the password."),
    )

    def clean_username(self):
        value = self.cleaned_data["username"]
        if not value.startswith(USER_PREFIX) or len(value) == len(USER_PREFIX):
            raise ValidationError(
                _("A Wings Online user name starts with Wings8, e.g. Wings8123."),
                code="prefix",
            )
        if ":" in value or any(char.isspace() for char in value):
            raise ValidationError(_("A user name has no spaces or colons."), code="invalid")
        return value


class WingsClientForm(ConnectorForm):
    internal_number = forms.CharField(
        label=gettext_lazy("Internal number"),
        max_length=20,
        validators=[digits_only],
        help_text=gettext_lazy(
            "In Wings: Beheer, then Instellingen: this client's internal number."
        ),
    )
    purchase_journal = forms.CharField(
        label=gettext_lazy("Purchase journal"),
        max_length=10,
        validators=[journal_code],
        help_text=gettext_lazy("The code of the journal for purchase invoices (AP) in Wings."),
    )
    sales_journal = forms.CharField(
        label=gettext_lazy("Sales journal"),
        max_length=10,
        validators=[journal_code],
        help_text=gettext_lazy("The code of the journal for sales invoices (AR) in Wings."),
    )


class WingsApi(DocumentApi):
    """Wings Online's API as assumed in docs/connectors/wings.md: HTTP Basic, JSON, one
    dossier's journals and documents under ``/api/v1/dossiers/<internal number>``."""

    vendor = "Wings"
    client_codes = frozenset({"unknown_dossier", "unknown_journal"})

    def base(self) -> str:
        return base_url().rstrip("/") + "/api/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": basic(
                str(self.settings.get("username") or ""), str(self.secrets.get("password") or "")
            ),
            "Accept": "application/json",
        }

    def dossier(self, settings) -> str:
        return "dossiers/" + quote(str(settings.get("internal_number") or ""), safe="")

    def whoami(self) -> str:
        self.request("GET", "me", headers=self.headers)
        return _("Connected to Wings Online (%(host)s) as %(user)s.") % {
            "host": self.host,
            "user": self.settings.get("username"),
        }

    def check_client(self) -> str:
        answer = self.request(
            "GET", self.dossier(self.settings) + "/journals", headers=self.headers
        )
        journals = {
            str(journal.get("code")): journal.get("type")
            for journal in self.answered(answer, "journals") or []
            if isinstance(journal, dict)
        }
        for kind, name in ((PURCHASE, "purchase_journal"), (SALES, "sales_journal")):
            code = str(self.settings.get(name) or "")
            if journals.get(code) != kind:
                raise ClientRefused(
                    _(
                        "Wings has no %(kind)s journal %(code)s in dossier %(number)s; its "
                        "%(kind)s journals are: %(known)s."
                    )
                    % {
                        "kind": _("purchase") if kind == PURCHASE else _("sales"),
                        "code": code,
                        "number": self.settings.get("internal_number"),
                        "known": ", ".join(sorted(c for c, t in journals.items() if t == kind))
                        or _("none"),
                    }
                )
        return _("Wings dossier %(number)s has journals %(purchase)s and %(sales)s.") % {
            "number": self.settings.get("internal_number"),
            "purchase": self.settings.get("purchase_journal"),
            "sales": self.settings.get("sales_journal"),
        }

    def find(self, export_file: ExportFile) -> str | None:
        response = self.request(
            "GET",
            self.dossier(export_file.client_settings) + "/documents",
            headers=self.headers,
            params={"reference": export_file.idempotency_key},
        )
        documents = self.answered(response, "documents")
        return self.carrying(documents, export_file.idempotency_key)

    def upload(self, export_file: ExportFile) -> str:
        kind = self.direction(export_file)
        journal = export_file.client_settings.get(
            "purchase_journal" if kind == PURCHASE else "sales_journal"
        )
        body = {
            "journal": str(journal or ""),
            "type": kind,
            "reference": export_file.idempotency_key,
            "fileName": export_file.filename,
            "content": encoded(export_file.content),
        }
        response = self.request(
            "POST",
            self.dossier(export_file.client_settings) + "/documents",
            headers={**self.headers, **self.idempotency(export_file)},
            json=body,
        )
        return self.reference(response)


class WingsConnector(DocumentApiConnector):
    key = "wings"
    logo = "extensions/logos/wings.svg"
    name = "Wings Online"
    description = gettext_lazy(
        "Delivers approved purchase invoices and sent sales invoices (Peppol BIS 3.0 UBL) to "
        "Wings Online's API, in each client's dossier and the journal you choose for each "
        "kind. Booking them stays with Wings."
    )
    settings_form = WingsSettingsForm
    client_form = WingsClientForm
    binding_fields = ("username",)
    api_class = WingsApi
    writes = gettext_lazy(
        "Sends each approved purchase invoice and sent sales invoice to Wings Online, with "
        "the client's internal number and the purchase or sales journal you set."
    )
