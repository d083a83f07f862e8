"""Octopus: each invoice is e-mailed to the mailbox of the client's Octopus dossier, where
Octopus takes in its attachments.

* **Sign-in**: the firm's Octopus user name and password, checked against Octopus's REST
  API (``OctopusApi``) when saved and when a connection opens, so documents go only to the
  dossiers of an account Octopus still accepts. The API wants the ``softwareHouseUuid``
  Octopus issues to the operator (``OCTOPUS_SOFTWARE_HOUSE_UUID``); without it the Store
  shows the extension as not available.
* **Per client**: the dossier's mailbox address (in Octopus: Manage → Dossiers → Mail box).
* **Delivery**: the e-mail connector's sending code and the operator's mail server
  (``EMAIL_URL``), one message per document with the original attached and a
  ``Message-ID`` made from the idempotency key, so a repeat is recognisable. A mail server
  that refuses the mailbox (5xx) stops that client only.
"""

from __future__ import annotations

from contextlib import contextmanager

from django import forms
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.api import ApiClient, Response
from extensions.connectors import email as mail
from extensions.connectors.base import (
    PURCHASE,
    SALES,
    ClientRefused,
    Connector,
    ConnectorError,
    ConnectorForm,
    ExportFile,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
    secret,
)
from extensions.redaction import Redactor

DEFAULT_BASE_URL = "https://service.inaras.be/octopus-rest-api/v1"


def base_url() -> str:
    return getattr(settings, "OCTOPUS_BASE_URL", "") or DEFAULT_BASE_URL


def software_house_uuid() -> str:
    return getattr(settings, "OCTOPUS_SOFTWARE_HOUSE_UUID", "") or ""


class OctopusApi(ApiClient):
    """Octopus's REST API: the ``softwareHouseUuid`` header on every request, a ``Token``
    after ``POST /authentication``, and its error body read as one line."""

    def headers(self, token: str = "") -> dict[str, str]:
        headers = {"softwareHouseUuid": software_house_uuid(), "Accept": "application/json"}
        if token:
            headers["Token"] = token
        return headers

    def said(self, response: Response) -> str:
        """``errorMessage (technicalInfo)`` from Octopus's error body, else the answer."""
        body = response.json()
        if isinstance(body, dict) and body.get("errorMessage"):
            text = str(body["errorMessage"])
            if body.get("technicalInfo") and body["technicalInfo"] != body["errorMessage"]:
                text += f" ({body['technicalInfo']})"
            return self.redactor.one_line(f"HTTP {response.status}: {text}")
        return self.describe(response)

    def classify(self, response: Response) -> ConnectorError | None:
        said = self.said(response)
        if response.status in (401, 403):
            return ReauthorizationRequired(
                _(
                    "Octopus refused the sign-in (%(said)s): check the user name and password "
                    "on the extension's Manage page."
                )
                % {"said": said}
            )
        if response.status == 429 or response.status >= 500:
            return TransientError(_("Octopus could not answer now (%(said)s).") % {"said": said})
        return PermanentError(_("Octopus refused the request (%(said)s).") % {"said": said})

    def sign_in(self, user: str, password: str) -> str:
        answer = self.request(
            "POST",
            "authentication",
            headers=self.headers(),
            json={"user": user, "password": password},
        ).json()
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise ReauthorizationRequired(_("Octopus did not accept the sign-in (no token)."))
        self.hide(token)
        return token

    def dossiers(self, token: str) -> list[dict]:
        answer = self.request("GET", "dossiers", headers=self.headers(token)).json()
        return answer if isinstance(answer, list) else []


class OctopusSettingsForm(ConnectorForm):
    user = forms.CharField(
        label=gettext_lazy("Octopus user name"),
        max_length=200,
        help_text=gettext_lazy("The user name you sign in to Octopus with."),
    )
    password = secret(
        forms.CharField(
            label=gettext_lazy("Octopus password"),
            max_length=200,
            help_text=gettext_lazy("The password of that Octopus user."),
        ),
        needed=gettext_lazy("Enter the Octopus password."),
    )
    rebind_message = gettext_lazy("You changed the Octopus user: enter its password again.")


class OctopusClientForm(ConnectorForm):
    mailbox = forms.EmailField(
        label=gettext_lazy("Dossier mailbox"),
        max_length=254,
        help_text=gettext_lazy(
            "In Octopus, go to Manage → Dossiers → Mail box and copy the dossier's address. "
            "If the dossier structure changes in Octopus, update the address here."
        ),
    )


class MailboxSession(mail.EmailSession):
    """The e-mail connector's session, addressed to the client's dossier mailbox."""

    def recipients(self, export_file: ExportFile) -> list[str]:
        mailbox = export_file.client_settings.get("mailbox")
        if not mailbox:
            raise ClientRefused(_("No Octopus dossier mailbox is set for this client."))
        return [mailbox]


class OctopusConnector(Connector):
    key = "octopus"
    logo = "extensions/logos/octopus.svg"
    name = "Octopus"
    description = gettext_lazy(
        "E-mails every purchase and sales invoice to the mailbox of the client's Octopus "
        "dossier, after you sign in with your Octopus account."
    )
    category = "accounting"
    accepts = frozenset({PURCHASE, SALES})
    settings_form = OctopusSettingsForm
    client_form = OctopusClientForm
    binding_fields = ("user",)
    submit_label = gettext_lazy("Sign in with Octopus")
    writes = gettext_lazy(
        "Sends one e-mail per invoice, with the original attached, to each client's Octopus "
        "dossier mailbox. It changes nothing else in Octopus."
    )

    @classmethod
    def unavailable_reason(cls) -> str:
        if software_house_uuid():
            return ""
        return gettext_lazy("The operator has not configured Octopus.")

    @classmethod
    def operator_settings(cls) -> tuple[str, ...]:
        return ("OCTOPUS_SOFTWARE_HOUSE_UUID",)

    @property
    def redactor(self) -> Redactor:
        """The operator's SMTP password and the firm's Octopus password, never shown."""
        secrets = [settings.EMAIL_HOST_PASSWORD, *(self.destination.secrets or {}).values()]
        return Redactor(secrets, user=settings.EMAIL_HOST_USER)

    @contextmanager
    def signed_in(self):
        """(an API client, a token) for the stored user, while the block runs."""
        if not software_house_uuid():
            raise ReauthorizationRequired(str(self.unavailable_reason()))
        user = self.destination.settings.get("user") or ""
        password = (self.destination.secrets or {}).get("password") or ""
        with OctopusApi(base_url(), secrets=[password, software_house_uuid()], user=user) as api:
            yield api, api.sign_in(user, password)

    @contextmanager
    def open(self):
        with self.signed_in():
            pass  # documents go only to the dossiers of an account Octopus still accepts
        with mail.smtp_session(self, MailboxSession) as session:
            yield session

    def check(self) -> str:
        with self.signed_in() as (api, token):
            count = len(api.dossiers(token))
        return _("Connected as %(user)s; %(count)d dossiers.") % {
            "user": self.destination.settings.get("user", ""),
            "count": count,
        }
