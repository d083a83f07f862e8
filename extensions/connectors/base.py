"""The contract between the portal and a destination.

A connector knows everything about its destination and nothing about the engine: it is
handed :class:`ExportFile` objects and returns a :class:`Receipt` or raises one of the
typed errors below, which tell the engine what to do next.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from django import forms
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

PURCHASE, SALES, REPORT = "purchase", "sales", "report"
ALL_CATEGORIES = frozenset({PURCHASE, SALES, REPORT})

PEPPOL_BIS3 = "peppol-bis-3"

ACCESS_LABELS = {
    PURCHASE: _("approved purchase invoices"),
    SALES: _("sent sales invoices"),
    REPORT: _("published transaction reports (CODA)"),
}
CATEGORY_LABELS = {
    "storage": _("Storage"),
    "email": _("E-mail"),
    "http": _("HTTP"),
    "accounting": _("Accounting"),
}


class ConnectorError(Exception):
    """A failure worded for the person reading the Integrations tab; never holds a secret."""


class TransientError(ConnectorError):
    """Network down, timeout, 5xx, 429: try again later (``retry_after`` seconds if known)."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """The destination refused this document for good; retrying would fail the same way."""


class ReauthorizationRequired(ConnectorError):
    """A person must act on the installation (sign in again, accept a new key); jobs wait."""


class DestinationRefused(ConnectorError):
    """The destination refuses because of its own configuration (a folder's rights, a
    quota): a person must fix it there, every document would fail alike, so jobs wait."""


class ClientRefused(DestinationRefused):
    """Refused because of one client's settings (its recipient address, its folder): only
    that client's documents wait for a person, the other clients' go on."""


class ClientReauthorizationRequired(ReauthorizationRequired):
    """One client's own credentials were refused: only that client's documents wait until
    a person enters them again."""


class ConfirmationNeeded(ReauthorizationRequired):
    """The destination showed something a person must accept before anything is sent (a
    server's key). The generic confirmation step shows ``title``, the message, ``facts``
    and ``advice``; accepting stores ``update`` in the installation's settings and checks
    again. Until then jobs wait, as for any reauthorization."""

    title = _("Confirm")
    accept_label = _("Accept and save")
    advice = ""

    def __init__(self, message: str, *, update: dict, facts=()):
        super().__init__(message)
        self.update = update
        self.facts = list(facts)  # (label, value) pairs, values shown as written


class HostKeyUnknown(ConfirmationNeeded):
    """First contact with a server: its key must be accepted before anything is sent."""

    title = _("Check the server's key")
    accept_label = _("Accept this key and save")
    advice = _(
        "Compare it with the fingerprint your server administrator gives you. Accept it only "
        "if they match: from then on, exports go only to a server that shows this key."
    )

    def __init__(self, message: str, *, fingerprint: str, key_type: str, key: str):
        super().__init__(
            message,
            update=host_key_pin(key_type, key, fingerprint),
            facts=[(_("Fingerprint (%(type)s)") % {"type": key_type}, fingerprint)],
        )
        self.fingerprint, self.key_type, self.key = fingerprint, key_type, key

    def pin(self) -> dict:
        """The settings update that trusts this key from now on."""
        return self.update


def host_key_pin(key_type: str, key: str, fingerprint: str) -> dict:
    """How a trusted server key is kept in an installation's settings."""
    return {"known_host_key": {"type": key_type, "key": key, "fingerprint": fingerprint}}


class HostKeyChanged(HostKeyUnknown):
    """The server shows another key than the pinned one: stop until a person accepts it."""

    title = _("The server's key has changed")


@dataclass(frozen=True)
class ExportFile:
    """One document on its way out, with everything its integration decided for it."""

    content: bytes
    filename: str
    folder: tuple[str, ...]
    content_type: str
    metadata: Mapping[str, str]
    client_settings: Mapping[str, Any] = field(default_factory=dict)
    client_secrets: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""


@dataclass(frozen=True)
class Receipt:
    """Where the document landed: a remote path, a message id, a response id."""

    reference: str
    detail: str = ""


class Destination(Protocol):
    """What a connector sees of an installation: its settings and decrypted secrets, and
    ``credentials`` (``extensions.credentials.Credentials``) to refresh and save them."""

    pk: int
    settings: dict
    secrets: dict
    credentials: Any


class Session(Protocol):
    def send(self, export_file: ExportFile) -> Receipt: ...


class Connector(ABC):
    """Base class: subclasses fill in the declarations and ``open``/``check``."""

    key: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]
    category: ClassVar[str]  # storage, email, http, accounting
    logo: ClassVar[str] = ""  # a static path: an SVG made for the portal, shown in the Store
    accepts: ClassVar[frozenset[str]] = ALL_CATEGORIES
    # Keys of ``extensions.formats.FORMATS`` it can send; the first is the default.
    formats: ClassVar[tuple[str, ...]] = (PEPPOL_BIS3,)
    settings_form: ClassVar[type[forms.Form] | None] = None
    client_form: ClassVar[type[forms.Form] | None] = None
    # A sign-in at the destination's provider instead of typed secrets
    # (``extensions.signin.OAuthSpec``); None: the settings form holds the credentials.
    oauth: ClassVar[Any] = None
    connection_scope: ClassVar[str] = "installation"
    terms_url: ClassVar[str] = ""
    # The settings naming the destination the secrets were entered for: changing one drops
    # the stored secrets, so that none is ever sent somewhere it was not typed in for.
    binding_fields: ClassVar[tuple[str, ...]] = ()
    # What the access-rights confirmation says the extension writes, and where.
    writes: ClassVar[str] = ""
    # One installation per firm, reused by every client: a second Install offers the
    # existing one instead (a destination where only the latest sign-in stays valid).
    one_per_firm: ClassVar[bool] = False
    # The configure form's button when saving signs in at the destination with typed
    # credentials ("Sign in with Yuki"); "" keeps "Save configuration". An ``oauth``
    # connector's button is its spec's.
    submit_label: ClassVar[str] = ""
    # Path templates may start with "/" for the server's root (``extensions.paths``).
    rooted_paths: ClassVar[bool] = False
    # It connects to a server of the firm's own: its pages show the addresses exports
    # connect from (``EXPORT_EGRESS_IPS``), for the firm's firewall.
    connects_to_firm_server: ClassVar[bool] = False

    do_not_call_in_templates = True

    def __init__(self, destination: Destination):
        self.destination = destination

    @classmethod
    def unavailable_reason(cls) -> str:
        """Why the operator's configuration does not allow installing it yet ("" when it
        does): the Store shows it as not available and ``manage.py check`` warns. By
        default, a sign-in whose app credentials the operator has not set."""
        spec = cls.oauth
        return spec.unavailable if spec is not None and not spec.available else ""

    @classmethod
    def operator_settings(cls) -> tuple[str, ...]:
        """The Django settings the operator sets for it to be available (the check's hint)."""
        spec = cls.oauth
        return (spec.client_id_setting, spec.client_secret_setting) if spec else ()

    @classmethod
    def get_category_display(cls) -> str:
        return CATEGORY_LABELS.get(cls.category, cls.category)

    @classmethod
    def accepts_labels(cls) -> list[str]:
        return [label for key, label in ACCESS_LABELS.items() if key in cls.accepts]

    @classmethod
    def accepted(cls, settings: Mapping[str, Any]) -> frozenset[str]:
        """The categories an installation with these settings exports: ``accepts`` unless a
        setting switches one off (a drive that sends transaction reports only when asked)."""
        return cls.accepts

    @abstractmethod
    def open(self) -> AbstractContextManager[Session]:
        """Connect once; the context yields a session whose ``send`` serves a whole batch."""

    @abstractmethod
    def check(self) -> str:
        """The "Test connection" probe: a sentence saying what worked, or raise."""

    def check_integration(self, destination: Destination) -> str:
        """The probe of one client's own settings and credentials (``destination``: the
        installation's overlaid with the integration's), run when the integration is saved
        and by its *Test connection*: a sentence saying what worked, "" when there is
        nothing of the client's to check, or raise."""
        return ""

    def facts(self) -> list[tuple[str, str]]:
        """What the Manage page shows of this installation besides the shared facts (a
        pinned server key): (label, value) pairs."""
        return []

    @classmethod
    def binding(cls, settings: Mapping[str, Any]) -> dict:
        """Who the secrets belong to; override when a setting must be normalised first."""
        return {name: settings.get(name) for name in cls.binding_fields}

    @classmethod
    def merge_settings(cls, stored: Mapping[str, Any], edited: Mapping[str, Any]) -> dict:
        """Stored settings the form does not show (a pinned host key) survive an edit."""
        return {**stored, **edited}

    # Path templates: connectors that write into folders say which setting holds them.
    def folder_template(self, client_settings: Mapping[str, Any], category: str) -> str | None:
        return None

    @classmethod
    def secret_fields(cls, form_class: type[forms.Form] | None) -> tuple[str, ...]:
        """Form fields marked ``secret`` are stored encrypted and never shown back."""
        if form_class is None:
            return ()
        return tuple(
            name
            for name, form_field in form_class.base_fields.items()
            if getattr(form_field, "secret", False)
        )


class ConnectorForm(forms.Form):
    """Base of connectors' forms; ``has_stored_secrets`` names the secrets already stored,
    so that an edit may leave them blank.

    ``rebound(cleaned_data)`` tells whether the edit points the secrets at another
    destination. If it does, the stored secrets no longer count: the form's own rules then
    ask for them as on a first install, and ``rebind_message`` says why.
    """

    rebind_message = _("You changed the destination: enter its credentials again.")

    def __init__(
        self,
        *args,
        has_stored_secrets=frozenset(),
        rebound=None,
        connector=None,
        installation=None,
        client=None,
        **kwargs,
    ):
        self.has_stored_secrets = set(has_stored_secrets)
        self.stored_secrets_dropped = False
        self._rebound = rebound
        # The context a field may need: the connector, the installation (None while
        # installing), and for a client's form the client.
        self.connector, self.installation, self.client = connector, installation, client
        self._fetch_errors: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def offer_choices(self, name: str, fetch) -> None:
        """Make field ``name`` offer what ``fetch()`` (a connector's call to the
        destination: Exact divisions, Yuki administrations) returns as (value, label)
        pairs. Fetched on every request, so a saved choice is checked against the
        destination's current list; a failed fetch becomes that field's error."""
        try:
            self.fields[name].choices = list(fetch())
        except ConnectorError as exc:
            self.fields[name].choices = []
            self._fetch_errors[name] = str(exc)

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(name for name, f in self.fields.items() if getattr(f, "secret", False))

    def _clean_form(self):
        for name, reason in self._fetch_errors.items():
            self.add_error(
                name,
                _("The list could not be fetched from the destination: %(reason)s")
                % {"reason": reason},
            )
        if self.has_stored_secrets and self._rebound and self._rebound(self.cleaned_data):
            self.has_stored_secrets = set()
            self.stored_secrets_dropped = True
        super()._clean_form()
        for name in self.secret_names:
            needed = getattr(self.fields[name], "needed", "")
            if (
                needed
                and not self.cleaned_data.get(name)
                and name not in self.has_stored_secrets
                and name not in self.errors
            ):
                self.add_error(name, needed)
        if self.stored_secrets_dropped and (
            self.non_field_errors() or any(name in self.errors for name in self.secret_names)
        ):
            self.add_error(None, self.rebind_message)
            errors = self._errors[forms.forms.NON_FIELD_ERRORS]
            errors.insert(0, errors.pop())  # the reason before what it causes

    def split(self, stored_secrets=None) -> tuple[dict, dict]:
        """Settings in clear and secrets apart; a blank secret keeps the stored one, unless
        the edit pointed the secrets at another destination."""
        names = set(self.secret_names)
        values = {k: v for k, v in self.cleaned_data.items() if k not in names}
        secrets = {} if self.stored_secrets_dropped else dict(stored_secrets or {})
        for name in names:
            if self.cleaned_data.get(name):
                secrets[name] = self.cleaned_data[name]
        return values, secrets


def secret(form_field: forms.Field, needed: str | Promise = "") -> forms.Field:
    """Mark a form field as a secret: encrypted at rest, blank in forms, kept when blank.

    ``needed``, when given, is the error shown when it is neither typed nor stored (nor
    kept, after an edit that points the secrets elsewhere).
    """
    form_field.secret = True
    form_field.needed = needed
    form_field.required = False
    form_field.widget = forms.PasswordInput(render_value=False)
    return form_field
