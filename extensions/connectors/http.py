"""HTTP (webhook): every document is one request whose body is the original file.

The address is typed in by a firm; requests go through :class:`extensions.api.ApiClient`
(the outbound guard, bounded answers, redirects, typed errors, redaction: see there), one
client, so one kept-alive connection, per batch.

Choices, so a receiver knows what to expect:

* **Where.** ``POST`` goes to the URL plus the rendered folder (``…/in/purchases/2025``):
  the folder names a collection and the file name travels in ``X-File-Name`` and
  ``Content-Disposition``. ``PUT`` goes to URL + folder + file name: the document's own
  resource, so a retried upload overwrites the first one. Each part is percent-encoded.
  Without a folder, ``POST`` uses the URL exactly as typed.
* **Once only.** ``Idempotency-Key`` (and ``webhook-id`` when signing) is the export job's
  key, the same on every attempt, so a receiver can drop a repeated delivery.
* **Signing** follows Standard Webhooks (https://www.standardwebhooks.com/): the firm
  pastes a ``whsec_<base64>`` secret it shares with its receiver. We do not generate one:
  secrets are never shown back, so a generated one could not be copied into
  the receiver.
* **Outcomes** (the API client's default mapping). 2xx → delivered. 408, 429 and 5xx →
  try again (``Retry-After`` honoured). 401/403 → ``ReauthorizationRequired``: a rotated
  token or password fails every document the same way, so the installation waits for a
  person and nothing is lost. Other 4xx → this document is refused for good. 307/308 are
  followed (at most 3, method and body kept); 301/302/303 would turn the upload into a
  body-less GET, so they also wait for a person to enter the new address, as does a
  redirect loop.
* **Which event.** ``X-Partnerspace-Event`` says ``export`` on a document and ``test`` on
  the test event, so a receiver can tell them apart without reading the body.
* **Test connection** (and Save) sends what a receiver really gets, marked as a test: the
  export's method, URL, authentication and signature, with a small JSON body
  (``{"type": "test", …}``) named ``partnerspace-connection-test.json`` (PUT overwrites
  that one resource on every test rather than leaving one per test). No ``OPTIONS``, which
  many receivers do not implement: only 2xx passes, anything else fails as an export
  would, and the receiver's answer is shown as one line of text.
* **What a receiver says** reaches the Integrations tab only through
  :class:`extensions.redaction.Redactor`: one line of plain text (HTML reduced to its
  first sentence), with the password, token and signing secret removed in every form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit, urlunsplit

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions import paths
from extensions.api import ApiClient, Response
from extensions.connectors.base import (
    Connector,
    ConnectorForm,
    ExportFile,
    ReauthorizationRequired,
    Receipt,
    secret,
)
from extensions.redaction import Redactor

NONE, BASIC, BEARER, SIGNING = "none", "basic", "bearer", "signing"
SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
MAX_JSON_BODY = 4096  # a response small enough to look for an ``id`` in
EVENT_HEADER = "X-Partnerspace-Event"
EXPORT_EVENT, TEST_EVENT = "export", "test"
TEST_FILENAME = "partnerspace-connection-test.json"
_VISIBLE_ASCII = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) != "%")
_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


# --- forms --------------------------------------------------------------------------


def _decode_signing_secret(value: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret (Standard Webhooks: 24 to 64 bytes)."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError("missing prefix")
    key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    if not 24 <= len(key) <= 64:
        raise ValueError("wrong length")
    return key


class HttpSettingsForm(ConnectorForm):
    rebind_message = gettext_lazy(
        "You changed the receiver's address or its authentication: enter the password, "
        "token or signing secret again."
    )

    url = forms.URLField(
        label=gettext_lazy("URL"),
        max_length=2000,
        assume_scheme="https",
        help_text=gettext_lazy("The address that receives the documents, e.g. https://…/in."),
    )
    path_template = forms.CharField(
        label=gettext_lazy("Path"),
        required=False,
        max_length=500,
        widget=paths.PathTemplateInput("purchase"),
        help_text=gettext_lazy(
            "Appended to the URL's path, e.g. [invoice_type]/[year]/. Leave empty to use "
            "the URL as it is."
        ),
    )
    method = forms.ChoiceField(
        label=gettext_lazy("Method"),
        choices=[("POST", "POST"), ("PUT", "PUT")],
        initial="POST",
        help_text=gettext_lazy(
            "POST sends to the URL and path; PUT sends to the URL, path and file name."
        ),
    )
    auth = forms.ChoiceField(
        label=gettext_lazy("Authentication"),
        choices=[
            (NONE, gettext_lazy("None")),
            (BASIC, gettext_lazy("User name and password (Basic)")),
            (BEARER, gettext_lazy("Token (Bearer)")),
            (SIGNING, gettext_lazy("Signed requests (Standard Webhooks)")),
        ],
        initial=NONE,
    )
    username = forms.CharField(label=gettext_lazy("User name"), required=False, max_length=200)
    password = secret(forms.CharField(label=gettext_lazy("Password"), max_length=500))
    token = secret(forms.CharField(label=gettext_lazy("Token"), max_length=4000))
    signing_secret = secret(
        forms.CharField(
            label=gettext_lazy("Signing secret"),
            max_length=200,
            help_text=gettext_lazy(
                "The secret your receiver checks signatures with, written whsec_ followed "
                "by 24 to 64 bytes in base64 (for one: openssl rand -base64 32)."
            ),
        )
    )

    def clean_url(self):
        url = self.cleaned_data["url"]
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http"):
            raise ValidationError(_("Use an https:// address."), code="scheme")
        if parts.scheme == "http" and not getattr(settings, "EXPORT_ALLOW_PRIVATE_HOSTS", False):
            raise ValidationError(
                _("Use an https:// address: documents must be encrypted on their way."),
                code="https",
            )
        if parts.username is not None or parts.password is not None:
            raise ValidationError(
                _("Remove the user name and password from the URL; use Authentication."),
                code="credentials",
            )
        if parts.fragment:
            raise ValidationError(_("Remove the part after # from the URL."), code="fragment")
        return url

    def clean_path_template(self):
        return paths.validate_template(self.cleaned_data["path_template"])

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        if ":" in username or _CONTROL_RUN.search(username):
            raise ValidationError(
                _("A user name cannot contain a colon or control characters."), code="invalid"
            )
        return username

    def clean_token(self):
        token = self.cleaned_data["token"].strip()
        if token and any(char not in _VISIBLE_ASCII or char == " " for char in token):
            raise ValidationError(
                _("A token holds letters, digits and punctuation only, without spaces."),
                code="invalid",
            )
        return token

    def clean_signing_secret(self):
        value = self.cleaned_data["signing_secret"].strip()
        if value:
            try:
                _decode_signing_secret(value)
            except (ValueError, binascii.Error):
                raise ValidationError(
                    _("Write the secret as whsec_ followed by 24 to 64 bytes in base64."),
                    code="invalid",
                ) from None
        return value

    def clean(self):
        cleaned = super().clean()
        auth = cleaned.get("auth")
        if auth == BASIC and not cleaned.get("username") and "username" not in self.errors:
            self.add_error("username", _("Basic authentication needs a user name."))
        needed = {
            BASIC: ("password", _("Basic authentication needs a password.")),
            BEARER: ("token", _("Token authentication needs a token.")),
            SIGNING: ("signing_secret", _("Signed requests need a signing secret.")),
        }.get(auth)
        if needed:
            name, message = needed
            if (
                not cleaned.get(name)
                and name not in self.has_stored_secrets
                and name not in self.errors
            ):
                self.add_error(name, message)
        return cleaned


class HttpClientForm(ConnectorForm):
    path = forms.CharField(
        label=gettext_lazy("Path"),
        required=False,
        max_length=500,
        widget=paths.PathTemplateInput("purchase"),
        help_text=gettext_lazy(
            "For this client only, instead of the extension's path, e.g. [external_id]/."
        ),
    )

    def __init__(self, *args, has_stored_secrets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.has_stored_secrets = frozenset(has_stored_secrets)

    def clean_path(self):
        path = self.cleaned_data["path"]
        return paths.validate_template(path) if path.strip() else ""


# --- requests -----------------------------------------------------------------------


def header_value(text) -> str:
    """Visible ASCII as is; anything else (and ``%``) percent-encoded UTF-8, never a CR/LF."""
    return quote(str(text or ""), safe=_VISIBLE_ASCII)


def content_disposition(filename: str) -> str:
    """``attachment; filename="…"`` plus RFC 6266 ``filename*`` when it is not plain ASCII."""
    fallback = "".join(
        char if char in _VISIBLE_ASCII and char not in '"\\' else "_" for char in filename
    )
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def sign(secret_value: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks ``webhook-signature``: HMAC-SHA256 over ``id.timestamp.body``."""
    key = _decode_signing_secret(secret_value)
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class HttpSession:
    """One API client, so one kept-alive connection, for a whole batch."""

    def __init__(self, connector: HttpConnector, client: ApiClient):
        self.connector = connector
        self.client = client

    def send(self, export_file: ExportFile) -> Receipt:
        response = self.connector.deliver(self.client, export_file, EXPORT_EVENT)
        return Receipt(reference=_reference(response, self.client.redactor))


def _reference(response: Response, redactor: Redactor) -> str:
    """Location, else a small JSON body's ``id``, else ``HTTP <status>``."""
    location = redactor.one_line(response.headers.get("Location", ""), limit=500)
    if location:
        return location
    if len(response.body) <= MAX_JSON_BODY:
        answer = response.json()
        if isinstance(answer, dict) and isinstance(answer.get("id"), str | int):
            return redactor.one_line(str(answer["id"]), limit=500) or f"HTTP {response.status}"
    return f"HTTP {response.status}"


class HttpConnector(Connector):
    key = "http"
    logo = "extensions/logos/http.svg"
    name = gettext_lazy("HTTP (webhook)")
    connects_to_firm_server = True
    description = gettext_lazy(
        "Sends every document to a web address of yours, one HTTP request per document."
    )
    category = "http"
    settings_form = HttpSettingsForm
    client_form = HttpClientForm
    binding_fields = ("url", "auth")
    writes = gettext_lazy(
        "Sends each document's original file to the URL you configure, with its type, "
        "number and client number in the request headers."
    )

    # --- configuration ---

    @classmethod
    def binding(cls, settings) -> dict:
        """The URL's origin and the authentication kind; its path may change freely."""
        parts = urlsplit(str(settings.get("url") or ""))
        try:
            port = parts.port
        except ValueError:
            port = None
        default_port = {"https": 443, "http": 80}.get(parts.scheme)
        return {
            "scheme": parts.scheme.lower(),
            "host": (parts.hostname or "").lower(),
            "port": port or default_port,
            "auth": settings.get("auth") or NONE,
        }

    @property
    def url(self) -> str:
        return self.destination.settings["url"]

    @property
    def method(self) -> str:
        return self.destination.settings.get("method") or "POST"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def folder_template(self, client_settings, category):
        return (client_settings or {}).get("path") or self.destination.settings.get(
            "path_template", ""
        )

    def target_url(self, export_file: ExportFile) -> str:
        parts = [quote(part, safe="") for part in export_file.folder]
        if self.method == "PUT":
            parts.append(quote(export_file.filename, safe=""))
        if not parts:
            return self.url
        scheme, netloc, path, query, _fragment = urlsplit(self.url)
        return urlunsplit((scheme, netloc, path.rstrip("/") + "/" + "/".join(parts), query, ""))

    def _secret(self, name: str) -> str:
        return (self.destination.secrets or {}).get(name) or ""

    def client(self) -> ApiClient:
        """Hides every stored secret, and the signing key also without its ``whsec_``."""
        secrets = list((self.destination.secrets or {}).values())
        signing = self._secret("signing_secret")
        if signing.startswith(SECRET_PREFIX):
            secrets.append(signing[len(SECRET_PREFIX) :])
        return ApiClient(
            self.url, secrets=secrets, user=self.destination.settings.get("username") or ""
        )

    def auth_headers(self, body: bytes, message_id: str) -> dict[str, str]:
        auth = self.destination.settings.get("auth") or NONE
        if auth == BASIC:
            pair = f"{self.destination.settings.get('username', '')}:{self._secret('password')}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        if auth == BEARER:
            return {"Authorization": "Bearer " + self._secret("token")}
        if auth == SIGNING:
            # Signed as sent: the receiver verifies the header value it reads.
            message_id = header_value(message_id or f"msg_{uuid.uuid4().hex}")
            timestamp = int(time.time())
            try:
                signature = sign(self._secret("signing_secret"), message_id, timestamp, body)
            except (ValueError, binascii.Error):
                raise ReauthorizationRequired(
                    _("The signing secret is missing or invalid; enter it again.")
                ) from None
            return {
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature,
            }
        return {}

    # --- talking ---

    def deliver(self, client: ApiClient, export_file: ExportFile, event: str) -> Response:
        """One request as a receiver gets it, for a document or the test event alike;
        anything but 2xx is raised as the contract's error."""
        body = export_file.content
        headers = {
            "Content-Type": header_value(export_file.content_type) or "application/octet-stream",
            "Content-Disposition": content_disposition(export_file.filename),
            "X-File-Name": header_value(export_file.filename),
            EVENT_HEADER: event,
        }
        for header, key in (
            ("X-Document-Id", "document_id"),
            ("X-Document-Category", "category"),
            ("X-Document-Kind", "kind"),
            ("X-Document-Number", "number"),
            ("X-Client-Number", "client_number"),
        ):
            if export_file.metadata.get(key):
                headers[header] = header_value(export_file.metadata[key])
        if export_file.idempotency_key:
            headers["Idempotency-Key"] = header_value(export_file.idempotency_key)
        headers.update(self.auth_headers(body, export_file.idempotency_key))
        return client.request(
            self.method, self.target_url(export_file), data=body, headers=headers
        )

    # --- the contract ---

    @contextmanager
    def open(self):
        with self.client() as client:
            yield HttpSession(self, client)

    def test_event(self) -> ExportFile:
        """A small JSON document marked as a test; a fresh key, so no receiver drops it."""
        key = f"test_{uuid.uuid4().hex}"
        content = {
            "type": TEST_EVENT,
            "id": key,
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "description": "Partner Space connection test; it carries no document.",
        }
        return ExportFile(
            content=json.dumps(content).encode(),
            filename=TEST_FILENAME,
            folder=(),
            content_type="application/json",
            metadata={},
            idempotency_key=key,
        )

    def check(self) -> str:
        """Passes only if the receiver takes what an export would send it (2xx)."""
        with self.client() as client:
            response = self.deliver(client, self.test_event(), TEST_EVENT)
        return _(
            "%(host)s answered the test event (%(answer)s); documents will be sent with "
            "%(method)s."
        ) % {
            "host": self.host,
            "answer": client.describe(response),
            "method": self.method,
        }
