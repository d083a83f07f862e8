"""E-mail: one message per document, the original attached, to addresses set per client.

The SMTP server is the operator's configuration (``EMAIL_URL`` → ``settings.EMAIL_*``,
often a local relay), never a firm's input, so it does not go through the private-host
guard in ``extensions/outbound.py``: a firm only chooses recipient addresses. Sending
goes through Django's ``get_connection()``, so ``EMAIL_BACKEND`` is respected (the demo
prints to the console; tests talk SMTP to a real aiosmtpd).

Delivery is at-least-once: a retried document gets the same ``Message-ID``
(``<export-{idempotency key}@{sender's domain}>``), so mail clients and archives can
recognise the second copy as the same message.
"""

from __future__ import annotations

import re
import smtplib
from contextlib import contextmanager, suppress
from email import encoders
from email.message import Message
from email.mime.base import MIMEBase
from email.utils import make_msgid, parseaddr

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.connectors.base import (
    REPORT,
    ClientRefused,
    Connector,
    ConnectorError,
    ConnectorForm,
    ExportFile,
    PermanentError,
    ReauthorizationRequired,
    Receipt,
    TransientError,
)
from extensions.redaction import Redactor

MAX_RECIPIENTS = 10
_SEPARATORS = re.compile(r"[,;\s]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MIME_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")


def timeout() -> float:
    """Every SMTP connection has one, so a silent server cannot hold a worker."""
    return getattr(settings, "EMAIL_TIMEOUT", None) or 30


def split_addresses(value: str) -> list[str]:
    return [address for address in _SEPARATORS.split(value or "") if address]


class MultipleEmailField(forms.CharField):
    """One or more addresses separated by commas; cleaned to ``"a@x.be, b@y.be"``."""

    def clean(self, value):
        value = super().clean(value)
        addresses = split_addresses(value)
        bad = []
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            raise ValidationError(
                gettext_lazy("Not a valid e-mail address: %(addresses)s."),
                code="invalid",
                params={"addresses": ", ".join(bad)},
            )
        if len(addresses) > MAX_RECIPIENTS:
            raise ValidationError(
                gettext_lazy("At most %(limit)d addresses."),
                code="too_many",
                params={"limit": MAX_RECIPIENTS},
            )
        return ", ".join(dict.fromkeys(addresses))


class EmailSettingsForm(ConnectorForm):
    """Install-level: the SMTP server is the operator's, so no secrets here."""

    subject_prefix = forms.CharField(
        label=gettext_lazy("Subject prefix"),
        required=False,
        max_length=50,
        help_text=gettext_lazy("Put in front of every subject, e.g. “[Fiduciaire Lambert]”."),
    )
    reply_to = forms.EmailField(
        label=gettext_lazy("Reply-to address"),
        required=False,
        help_text=gettext_lazy("Where replies to the exported messages should go."),
    )

    def clean_subject_prefix(self):
        return _CONTROL.sub(" ", self.cleaned_data["subject_prefix"]).strip()


class EmailClientForm(ConnectorForm):
    recipients = MultipleEmailField(
        label=gettext_lazy("Send to"),
        max_length=1000,
        help_text=gettext_lazy("One or more e-mail addresses, separated by commas."),
    )
    report_recipients = MultipleEmailField(
        label=gettext_lazy("Send transaction reports to"),
        required=False,
        max_length=1000,
        help_text=gettext_lazy("Leave empty to send transaction reports to the same addresses."),
    )


def _describe(metadata) -> str:
    """“Purchase invoice”, “Sales credit note”, “Transaction report”."""
    category, kind = metadata.get("category", ""), metadata.get("kind", "")
    if category == REPORT:
        return _("Transaction report")
    credit = kind == "credit_note"
    if category == "sales":
        return _("Sales credit note") if credit else _("Sales invoice")
    if category == "purchase":
        return _("Purchase credit note") if credit else _("Purchase invoice")
    return _("Document")


def _server_text(message, redactor: Redactor) -> str:
    """A server's reply as one line, without the SMTP password in any form."""
    if isinstance(message, BaseException):
        message = str(message)
    return redactor.one_line(message)


def _sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    return domain or "localhost"


def _smtp_error(exc: BaseException, redactor: Redactor) -> ConnectorError:
    """Translate smtplib/socket failures into the contract's errors; never a password."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ReauthorizationRequired(
            _(
                "The mail server refused the portal's SMTP user name or password "
                "(%(code)s); the operator must correct EMAIL_URL."
            )
            % {"code": exc.smtp_code}
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ReauthorizationRequired(
            _("The mail server does not support what EMAIL_URL asks for: %(reason)s.")
            % {"reason": _server_text(exc, redactor)}
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = exc.recipients or {}
        addresses = ", ".join(refused)
        codes = [code for code, _message in refused.values()]
        detail = "; ".join(
            f"{code} {_server_text(text, redactor)}" for code, text in refused.values()
        )
        if codes and all(400 <= code < 500 for code in codes):
            return TransientError(
                _("The mail server temporarily refused %(addresses)s (%(detail)s).")
                % {"addresses": addresses, "detail": detail}
            )
        # The addresses are one client's settings (its integration), not the installation's:
        # that client waits for a person to correct them, the other clients' mail goes on.
        return ClientRefused(
            _("The mail server refused the address %(addresses)s (%(detail)s).")
            % {"addresses": addresses, "detail": detail}
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        detail = f"{exc.smtp_code} {_server_text(exc.smtp_error, redactor)}"
        if 400 <= exc.smtp_code < 500:
            return TransientError(
                _("The mail server temporarily refused the sender (%(detail)s).")
                % {"detail": detail}
            )
        # The portal's own sender address: every document would fail the same way.
        return ReauthorizationRequired(
            _(
                "The mail server does not accept the sender address %(sender)s "
                "(%(detail)s); the operator must correct DEFAULT_FROM_EMAIL."
            )
            % {"sender": exc.sender, "detail": detail}
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = f"{exc.smtp_code} {_server_text(exc.smtp_error, redactor)}"
        if 500 <= exc.smtp_code < 600:
            return PermanentError(
                _("The mail server refused the message (%(detail)s).") % {"detail": detail}
            )
        return TransientError(
            _("The mail server could not take the message now (%(detail)s).") % {"detail": detail}
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected) and not isinstance(
        exc.__context__, TimeoutError
    ):
        return TransientError(_("The mail server closed the connection."))
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return TransientError(
            _("The mail server did not answer within %(seconds)s seconds.")
            % {"seconds": timeout()}
        )
    if isinstance(exc, ConnectionRefusedError):
        return TransientError(
            _("The mail server %(host)s:%(port)s refused the connection.")
            % {"host": settings.EMAIL_HOST, "port": settings.EMAIL_PORT}
        )
    return TransientError(
        _("Could not talk to the mail server: %(reason)s.")
        % {"reason": _server_text(exc, redactor) or type(exc).__name__}
    )


def smtp_connection(redactor: Redactor):
    """An open connection to the operator's mail server (``EMAIL_URL``), failures typed;
    shared by every connector that delivers by e-mail."""
    connection = get_connection(fail_silently=False, timeout=timeout())
    try:
        connection.open()
    except OSError as exc:
        raise _smtp_error(exc, redactor) from None
    except UnicodeEncodeError:
        # smtplib logs in in ASCII only, so no server can take this login; the error's
        # own text would quote a character of the password.
        raise ReauthorizationRequired(
            _("The mail server does not support what EMAIL_URL asks for: %(reason)s.")
            % {"reason": "a user name or password that is not ASCII"}
        ) from None
    return connection


@contextmanager
def smtp_session(connector, session_class):
    """``session_class(connector, connection)`` over one mail connection, closed after;
    ``connector`` has a ``redactor`` and the ``destination`` whose settings the messages
    read (``subject_prefix``, ``reply_to``)."""
    connection = smtp_connection(connector.redactor)
    try:
        yield session_class(connector, connection)
    finally:
        with suppress(OSError):
            connection.close()


class EmailSession:
    """One open mail connection; ``send`` makes and sends one message per document.
    Another connector delivering by e-mail subclasses it and overrides ``recipients``."""

    def __init__(self, connector: EmailConnector, connection):
        self.connector = connector
        self.connection = connection
        self.sender = settings.DEFAULT_FROM_EMAIL

    def recipients(self, export_file: ExportFile) -> list[str]:
        client = export_file.client_settings
        if export_file.metadata.get("category") == REPORT and client.get("report_recipients"):
            addresses = split_addresses(client["report_recipients"])
        else:
            addresses = split_addresses(client.get("recipients", ""))
        if not addresses:
            raise ClientRefused(_("No recipient address is set for this client."))
        return addresses

    def message_id(self, export_file: ExportFile) -> str:
        domain = _sender_domain(self.sender)
        if not export_file.idempotency_key:
            return make_msgid(domain=domain)
        key = re.sub(r"[^A-Za-z0-9._-]", "-", export_file.idempotency_key)
        return f"<export-{key}@{domain}>"

    def build(self, export_file: ExportFile) -> EmailMessage:
        metadata = export_file.metadata
        names = {
            "type": _describe(metadata),
            "number": metadata.get("number", ""),
            "client": metadata.get("client_name", ""),
        }
        subject = _("%(type)s %(number)s — %(client)s") % names
        prefix = self.connector.destination.settings.get("subject_prefix", "")
        subject = _CONTROL.sub(" ", f"{prefix} {subject}").strip()
        body = (
            _(
                "Attached: %(type)s %(number)s of %(client)s, sent automatically by Partner "
                "Space.\n\nThe attachment is the original document; this message has no other "
                "content.\n"
            )
            % names
        )
        reply_to = self.connector.destination.settings.get("reply_to")
        message = EmailMessage(
            subject=subject,
            body=body,
            from_email=self.sender,
            to=self.recipients(export_file),
            reply_to=[reply_to] if reply_to else None,
            headers={"Message-ID": self.message_id(export_file)},
        )
        message.attach(_attachment(export_file))
        return message

    def send(self, export_file: ExportFile) -> Receipt:
        message = self.build(export_file)
        try:
            # Django's backend accepts a message when at least one recipient did.
            self.connection.send_messages([message])
        except OSError as exc:  # smtplib.SMTPException is an OSError too
            raise _smtp_error(exc, self.connector.redactor) from None
        except ValueError as exc:  # an address or header Django refuses to put in a message
            raise PermanentError(
                _("The message could not be made: %(reason)s.")
                % {"reason": _server_text(exc, self.connector.redactor)}
            ) from None
        return Receipt(
            reference=message.extra_headers["Message-ID"],
            detail=", ".join(message.to),
        )


def _attachment(export_file: ExportFile) -> MIMEBase:
    """Base64 whatever the type, so the bytes arrive unchanged (no text line-end rewriting)."""
    content_type = export_file.content_type or ""
    if not _MIME_TYPE.fullmatch(content_type.split(";")[0].strip()):
        content_type = "application/octet-stream"
    declared = Message()
    declared["Content-Type"] = content_type  # parsed, so parameters such as charset stay
    part = MIMEBase(
        declared.get_content_maintype(),
        declared.get_content_subtype(),
        **dict(declared.get_params()[1:]),
    )
    part.set_payload(export_file.content)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=export_file.filename)
    return part


class EmailConnector(Connector):
    key = "email"
    logo = "extensions/logos/email.svg"
    name = gettext_lazy("E-mail")
    description = gettext_lazy(
        "Sends every document as an e-mail attachment to the addresses you set per client."
    )
    category = "email"
    settings_form = EmailSettingsForm
    client_form = EmailClientForm
    writes = gettext_lazy(
        "Sends one e-mail per document, with the original attached, to each client's addresses."
    )

    @property
    def redactor(self) -> Redactor:
        """The operator's SMTP password is never shown to a firm, nor any stored secret."""
        secrets = [settings.EMAIL_HOST_PASSWORD, *(self.destination.secrets or {}).values()]
        return Redactor(secrets, user=settings.EMAIL_HOST_USER)

    def _connection(self):
        return smtp_connection(self.redactor)

    @contextmanager
    def open(self):
        with smtp_session(self, EmailSession) as session:
            yield session

    def check(self) -> str:
        connection = self._connection()
        try:
            smtp = getattr(connection, "connection", None)
            if not isinstance(smtp, smtplib.SMTP):
                return _("Messages are handed to %(backend)s; no mail server is used.") % {
                    "backend": type(connection).__module__
                }
            try:
                smtp.ehlo_or_helo_if_needed()
                code, _message = smtp.noop()
            except OSError as exc:
                raise _smtp_error(exc, self.redactor) from None
            if code != 250:
                raise TransientError(
                    _("The mail server answered %(code)s to a NOOP.") % {"code": code}
                )
        finally:
            with suppress(OSError):
                connection.close()
        return _("Connected to the mail server %(host)s:%(port)s; it is ready to send.") % {
            "host": settings.EMAIL_HOST,
            "port": settings.EMAIL_PORT,
        }
