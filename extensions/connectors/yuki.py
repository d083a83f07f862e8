"""Yuki: each invoice goes into the client's Yuki administration, in its archive's purchase
or sales folder, through Yuki's SOAP web services (``yuki_soap``).

* **Sign-in**: the firm types a web-service access key of type *Domain*; it opens one
  session per connection (``Authenticate``), never one per document, since Yuki allows
  about 1,000 calls a day per domain. A session Yuki ended is opened again once.
* **Per client**: the administration, picked from the list Yuki returns for the key
  (``Administrations``), fetched again when the client's form is saved.
* **Once only**: before an upload, the archive is searched for the file's name
  (deterministic: ``extensions.paths.file_name``) in that folder and administration, so a
  retry after a lost answer, or a *Re-send* of a document still there, leaves one document.
* **Where Yuki is**: ``YUKI_BASE_URL`` (the Belgian host by default). The address the key
  was entered for is kept as the ``service_url`` setting, the secrets' binding: a key is
  never sent to another address than the one it was typed for.
"""

from __future__ import annotations

import base64
from contextlib import contextmanager

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.connectors import yuki_soap
from extensions.connectors.base import (
    PURCHASE,
    SALES,
    ClientRefused,
    Connector,
    ConnectorForm,
    ExportFile,
    PermanentError,
    ReauthorizationRequired,
    Receipt,
    secret,
)
from extensions.connectors.yuki_soap import SessionExpired, YukiApi

# Yuki's archive folders, by number. UNCONFIRMED: no public source names them; see
# docs/connectors/yuki.md. Correct them here only.
FOLDERS = {PURCHASE: 1, SALES: 2}


def administration_label(administration: dict[str, str]) -> str:
    name = administration["name"] or administration["id"]
    return f"{name} ({administration['vat']})" if administration["vat"] else name


class YukiSettingsForm(ConnectorForm):
    access_key = secret(
        forms.CharField(
            label=gettext_lazy("Web-service access key"),
            max_length=100,
            help_text=gettext_lazy(
                "In Yuki, go to Settings → Integrations → Web services and create a key of "
                "type Domain; paste it here."
            ),
        ),
        needed=gettext_lazy("Enter the web-service access key."),
    )
    rebind_message = gettext_lazy(
        "Yuki's address changed since the access key was entered: enter the key again."
    )

    def clean(self):
        cleaned = super().clean()
        cleaned["service_url"] = yuki_soap.base_url()
        return cleaned


class YukiClientForm(ConnectorForm):
    administration = forms.ChoiceField(
        label=gettext_lazy("Yuki administration"),
        help_text=gettext_lazy(
            "The administration in Yuki that keeps this client's books, as Yuki lists it "
            "for your access key."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer_choices("administration", self._administrations)

    def _administrations(self):
        connector = self.installation.connector_instance()
        return [(each["id"], administration_label(each)) for each in connector.administrations()]


class YukiSession:
    """One Yuki session (one connection, one session id) for a whole batch."""

    def __init__(self, api: YukiApi):
        self.api = api
        self.session_id = api.authenticate()

    def call(self, method, *args):
        """``method(session_id, *args)``; a session Yuki ended is opened again, once."""
        try:
            return method(self.session_id, *args)
        except SessionExpired:
            self.session_id = self.api.authenticate()
            return method(self.session_id, *args)

    def administrations(self) -> list[dict[str, str]]:
        return self.call(self.api.administrations)

    def send(self, export_file: ExportFile) -> Receipt:
        administration = export_file.client_settings.get("administration")
        if not administration:
            raise ClientRefused(_("No Yuki administration is chosen for this client."))
        category = export_file.metadata.get("category", "")
        if category not in FOLDERS:
            raise PermanentError(
                _("Yuki takes purchase and sales invoices only, not this document.")
            )
        folder, name = FOLDERS[category], export_file.filename
        found = self.call(self.api.find_document, name, folder, administration)
        if found:
            return Receipt(reference=found, detail=_("Already in Yuki."))
        data = base64.b64encode(export_file.content).decode("ascii")
        document_id = self.call(self.api.upload, name, data, folder, administration)
        return Receipt(reference=document_id, detail=name)


class YukiConnector(Connector):
    key = "yuki"
    logo = "extensions/logos/yuki.svg"
    name = "Yuki"
    description = gettext_lazy(
        "Puts every purchase and sales invoice in the client's Yuki administration, in the "
        "archive's purchase or sales folder, with a Yuki web-service access key."
    )
    category = "accounting"
    accepts = frozenset({PURCHASE, SALES})
    settings_form = YukiSettingsForm
    client_form = YukiClientForm
    binding_fields = ("service_url",)
    submit_label = gettext_lazy("Sign in with Yuki")
    writes = gettext_lazy(
        "Adds each invoice to the archive of the client's Yuki administration (purchase or "
        "sales folder). It never changes or removes a document in Yuki."
    )

    def _api(self) -> YukiApi:
        stored = self.destination.settings.get("service_url") or yuki_soap.base_url()
        if stored != yuki_soap.base_url():
            raise ReauthorizationRequired(
                _(
                    "Yuki's address changed since the access key was entered: enter the key "
                    "again on the extension's Manage page."
                )
            )
        key = (self.destination.secrets or {}).get("access_key") or ""
        if not key:
            raise ReauthorizationRequired(_("Enter the Yuki web-service access key."))
        return YukiApi(key)

    @contextmanager
    def open(self):
        with self._api() as api:
            yield YukiSession(api)

    def administrations(self) -> list[dict[str, str]]:
        with self.open() as session:
            return session.administrations()

    def check(self) -> str:
        count = len(self.administrations())
        return _(
            "Signed in to Yuki; the access key's domain holds %(count)d administration(s)."
        ) % {"count": count}

    def check_integration(self, destination) -> str:
        chosen = (destination.settings or {}).get("administration")
        for each in self.administrations():
            if each["id"] == chosen:
                return _("Invoices go to the Yuki administration %(name)s.") % {
                    "name": administration_label(each)
                }
        raise ClientRefused(
            _("Yuki no longer lists the administration chosen for this client: choose it again.")
        )
