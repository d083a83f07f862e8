"""SFTP: documents written as files into the firm's own server, one SSH connection a batch.

Choices, and why:

* The server's host key is pinned (``settings["known_host_key"]``): an unknown key raises
  :class:`HostKeyUnknown` before any credential is sent, a different key raises
  :class:`HostKeyChanged` and stops exports until a person accepts it. Nothing is ever
  trusted automatically; neither the SSH agent nor ``~/.ssh`` keys of the worker are used.
* The TCP socket comes from :func:`extensions.outbound.connect`, so a firm cannot point
  the portal at its own network, and every step has a timeout.
* A file is written as ``.<name>.part``, set to mode 664, then renamed over the final name
  (posix-rename, atomic; remove + rename where the server lacks it). A retried document
  has the same name, so it replaces the first copy instead of adding a second, and the
  firm's import tool never reads half a file.
* The engine sends a batch through :meth:`SftpSession.send_many`: up to
  ``PIPELINE_FILES`` files in flight on the one SFTP channel, each still taking those
  steps in order (rename only once every write was acknowledged), and the requests of a
  round sent together. A distant server then costs about three round trips per window of
  files rather than four or five per file.
* Errors are typed for the engine and worded for the Integrations tab: the password or
  key never appears in them, and what the server itself says is kept to one line with
  every stored secret removed (:class:`extensions.redaction.Redactor`).
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import logging
import posixpath
import re
import socket
import stat
import struct
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from secrets import token_hex

import paramiko
from django import forms
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_EXTENDED,
    CMD_HANDLE,
    CMD_MKDIR,
    CMD_OPEN,
    CMD_REMOVE,
    CMD_SETSTAT,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_FAILURE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_PERMISSION_DENIED,
    int64,
)

from extensions import outbound, paths
from extensions.connectors.base import (
    REPORT,
    Connector,
    ConnectorError,
    ConnectorForm,
    DestinationRefused,
    ExportFile,
    HostKeyChanged,
    HostKeyUnknown,
    PermanentError,
    ReauthorizationRequired,
    Receipt,
    TransientError,
    secret,
)
from extensions.redaction import Redactor

logger = logging.getLogger(__name__)

DEFAULT_PORT = 22
CONNECT_TIMEOUT = 15.0  # TCP connect and the SSH handshake
AUTH_TIMEOUT = 30.0
IO_TIMEOUT = 60.0  # any single SFTP request (open, write acknowledgements, rename)
FILE_MODE = 0o664
FOLDER_MODE = 0o755
_KEY_TYPES = (paramiko.Ed25519Key, paramiko.RSAKey, paramiko.ECDSAKey)
_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,253}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _timeout(name: str, default: float) -> float:
    """``settings.EXPORT_SFTP_<name>_TIMEOUT`` where the operator set it, else ``default``."""
    configured = getattr(django_settings, f"EXPORT_SFTP_{name}_TIMEOUT", None)
    return default if configured is None else float(configured)


# --- keys ----------------------------------------------------------------------------


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form, ``SHA256:<base64 without padding>``, as ``ssh-keygen -l`` shows it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


class PrivateKeyError(ValueError):
    """A private key that cannot be used; ``code`` says why (invalid, encrypted, passphrase)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def normalize_private_key(text: str) -> str:
    """Pasted keys come with CRLF, trailing blanks or no final newline; paramiko minds."""
    lines = [line.strip() for line in (text or "").strip().splitlines()]
    return "\n".join(lines) + "\n" if lines else ""


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """An Ed25519, RSA or ECDSA key from OpenSSH or PEM text, or :class:`PrivateKeyError`."""
    text = normalize_private_key(text)
    encrypted = False
    for key_type in _KEY_TYPES:
        try:
            return key_type.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            encrypted = True
            break
        except Exception:  # noqa: S112 - any parse failure means "not this key type"
            continue
    if not encrypted:
        raise PrivateKeyError("invalid")
    if not passphrase:
        raise PrivateKeyError("encrypted")
    for key_type in _KEY_TYPES:
        try:
            return key_type.from_private_key(io.StringIO(text), password=passphrase)
        except Exception:  # noqa: S112 - a wrong passphrase fails as garbage of every type
            continue
    raise PrivateKeyError("passphrase")


def _pinned_key(pin) -> paramiko.PKey | None:
    """The accepted host key from settings, or None when there is none (or it is unreadable)."""
    if not isinstance(pin, dict):
        return None
    try:
        return paramiko.PKey.from_type_string(pin["type"], base64.b64decode(pin["key"]))
    except (KeyError, TypeError, ValueError, binascii.Error, paramiko.SSHException):
        logger.warning("ignoring an unreadable pinned host key")
        return None


class _UnknownHostKey(Exception):
    def __init__(self, key: paramiko.PKey):
        super().__init__("unknown host key")
        self.key = key


class _RecordAndReject(paramiko.MissingHostKeyPolicy):
    """RejectPolicy that keeps the key it rejected, so the user can be shown it."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHostKey(key)


# --- forms ---------------------------------------------------------------------------


class _SecretTextarea(forms.Textarea):
    """A textarea that, like a password field, never renders a value back."""

    def format_value(self, value):
        return None


def _variables() -> str:
    return ", ".join(f"[{name}]" for name in paths.KNOWN_VARIABLES)


def _clean_template(value: str) -> str:
    value = (value or "").strip()
    return paths.validate_template(value, rooted=True) if value else ""


class SftpSettingsForm(ConnectorForm):
    """The install-level configuration; blank secrets on an edit keep the stored ones."""

    rebind_message = gettext_lazy(
        "You changed the server, port or user name: enter the password or private key again."
    )

    host = forms.CharField(label=gettext_lazy("Server"), max_length=253)
    port = forms.IntegerField(
        label=gettext_lazy("Port"), initial=DEFAULT_PORT, min_value=1, max_value=65535
    )
    username = forms.CharField(label=gettext_lazy("User name"), max_length=100)
    password = secret(forms.CharField(label=gettext_lazy("Password"), max_length=500, strip=False))
    private_key = secret(
        forms.CharField(
            label=gettext_lazy("Private key"),
            max_length=20000,
            help_text=gettext_lazy(
                "Instead of or next to the password: an ed25519 or RSA private key in "
                "OpenSSH or PEM format (the text starting with “-----BEGIN”)."
            ),
        )
    )
    passphrase = secret(
        forms.CharField(
            label=gettext_lazy("Key passphrase"),
            max_length=500,
            strip=False,
            help_text=gettext_lazy("Only if the private key is protected by one."),
        )
    )
    upload_path = forms.CharField(
        label=gettext_lazy("Upload folder"),
        max_length=500,
        required=False,
        initial=paths.DEFAULT_TEMPLATE,
        widget=paths.PathTemplateInput("purchase", rooted=True),
    )
    report_path = forms.CharField(
        label=gettext_lazy("Folder for transaction reports"),
        max_length=500,
        required=False,
        widget=paths.PathTemplateInput("report", rooted=True),
        help_text=gettext_lazy("Leave empty to use the upload folder."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["private_key"].widget = _SecretTextarea(
            attrs={"rows": 6, "spellcheck": "false", "autocomplete": "off"}
        )
        # Built here, not at import, so they are in the language of the request.
        self.fields["upload_path"].help_text = _(
            "Starts in the SFTP user's login folder; begin with / to start from the "
            "server's root instead. Folders are created as needed. Variables: "
            "%(variables)s. Empty: the login folder itself."
        ) % {"variables": _variables()}
        for name in ("password", "private_key", "passphrase"):
            if name in self.has_stored_secrets:
                self.fields[name].help_text = _("Stored. Leave empty to keep it.")

    @property
    def notes(self) -> list[str]:
        """Advice shown with the form: which folder rights to give."""
        # The addresses to whitelist are the page's (``connects_to_firm_server``).
        return [
            _(
                "The SFTP user must own the upload folder (mode 755), so it can create "
                "subfolders and write files; files arrive with mode 664."
            )
        ]

    def clean_host(self):
        host = self.cleaned_data["host"].strip()
        if "://" in host or "/" in host or "@" in host:
            raise ValidationError(
                _("Enter only the server name or IP address, without sftp://, user or path."),
                code="host",
            )
        if not _HOST.match(host):
            raise ValidationError(_("This is not a valid server name."), code="host")
        return host

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        if _CONTROL.search(username):
            raise ValidationError(_("The user name contains a control character."))
        return username

    def clean_private_key(self):
        return normalize_private_key(self.cleaned_data.get("private_key", ""))

    def clean_upload_path(self):
        return _clean_template(self.cleaned_data.get("upload_path"))

    def clean_report_path(self):
        return _clean_template(self.cleaned_data.get("report_path"))

    def clean(self):
        cleaned = super().clean()
        has = {
            name
            for name in ("password", "private_key", "passphrase")
            if cleaned.get(name) or name in self.has_stored_secrets
        }
        if not has & {"password", "private_key"}:
            raise ValidationError(
                _("Enter a password, a private key, or both."), code="credentials"
            )
        key = cleaned.get("private_key")
        if key:
            try:
                load_private_key(key, cleaned.get("passphrase") or None)
            except PrivateKeyError as exc:
                if exc.code == "invalid":
                    self.add_error(
                        "private_key",
                        _(
                            "This is not a private key this connector can read. Paste an "
                            "ed25519 or RSA private key in OpenSSH or PEM format."
                        ),
                    )
                elif exc.code == "encrypted" and "passphrase" not in self.has_stored_secrets:
                    self.add_error(
                        "passphrase", _("This private key is protected: enter its passphrase.")
                    )
                elif exc.code == "passphrase" and cleaned.get("passphrase"):
                    self.add_error("passphrase", _("This passphrase does not unlock the key."))
                # Otherwise the stored passphrase will be used; "Test connection" checks it.
        return cleaned


class SftpClientForm(ConnectorForm):
    """Per client: an optional folder that replaces the installation's."""

    path = forms.CharField(
        label=gettext_lazy("Folder"),
        max_length=500,
        required=False,
        widget=paths.PathTemplateInput("purchase", rooted=True),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.installation is not None:  # an empty field previews the inherited folder
            inherited = self.installation.settings.get("upload_path", paths.DEFAULT_TEMPLATE)
            self.fields["path"].widget.attrs["data-path-inherit"] = inherited or ""
        self.fields["path"].help_text = _(
            "Leave empty to use the installation's upload folder. Variables: %(variables)s."
        ) % {"variables": _variables()}

    def clean_path(self):
        return _clean_template(self.cleaned_data.get("path"))


# --- the connector -------------------------------------------------------------------


class SftpConnector(Connector):
    key = "sftp"
    logo = "extensions/logos/sftp.svg"
    name = "SFTP"
    category = "storage"
    rooted_paths = True
    connects_to_firm_server = True
    description = gettext_lazy(
        "Writes each approved purchase invoice, sent sales invoice and transaction report "
        "as a file on your own SFTP server, in the folders you choose."
    )
    writes = gettext_lazy(
        "Creates folders and writes files (mode 664) in the upload folder of the SFTP "
        "account you configure. It never reads, changes or deletes your other files."
    )
    settings_form = SftpSettingsForm
    client_form = SftpClientForm
    binding_fields = ("host", "port", "username")

    # -- where files go ---------------------------------------------------------------

    def facts(self) -> list[tuple[str, str]]:
        pinned = self.destination.settings.get("known_host_key")
        return [(_("Server key"), pinned["fingerprint"])] if pinned else []

    @classmethod
    def binding(cls, settings) -> dict:
        return {
            "host": str(settings.get("host") or "").strip().lower(),
            "port": int(settings.get("port") or DEFAULT_PORT),
            "username": settings.get("username") or "",
        }

    @classmethod
    def merge_settings(cls, stored, edited) -> dict:
        """Another server is another key: a pin only holds for the host and port it came from."""
        merged = super().merge_settings(stored, edited)
        if (stored.get("host"), stored.get("port")) != (edited.get("host"), edited.get("port")):
            merged.pop("known_host_key", None)
        return merged

    def folder_template(self, client_settings, category: str) -> str:
        override = (client_settings or {}).get("path") or ""
        if override.strip():
            return override
        settings = self.destination.settings
        if category == REPORT and (settings.get("report_path") or "").strip():
            return settings["report_path"]
        return settings.get("upload_path", paths.DEFAULT_TEMPLATE) or ""

    # -- connecting -------------------------------------------------------------------

    @property
    def _host(self) -> str:
        return str(self.destination.settings.get("host") or "").strip()

    @property
    def _port(self) -> int:
        return int(self.destination.settings.get("port") or DEFAULT_PORT)

    @property
    def _username(self) -> str:
        return str(self.destination.settings.get("username") or "")

    @cached_property
    def redactor(self) -> Redactor:
        return Redactor((self.destination.secrets or {}).values(), user=self._username)

    @property
    def _server(self) -> str:
        return f"{self._host}:{self._port}"

    @property
    def _connect_timeout(self) -> float:
        return _timeout("CONNECT", CONNECT_TIMEOUT)

    @property
    def _io_timeout(self) -> float:
        return _timeout("IO", IO_TIMEOUT)

    def _credentials(self) -> tuple[str | None, paramiko.PKey | None]:
        secrets = self.destination.secrets or {}
        password = secrets.get("password") or None
        pkey = None
        if secrets.get("private_key"):
            try:
                pkey = load_private_key(secrets["private_key"], secrets.get("passphrase") or None)
            except PrivateKeyError as exc:
                reason = {
                    "encrypted": _("it needs a passphrase"),
                    "passphrase": _("the passphrase does not unlock it"),
                }.get(exc.code, _("it is not a supported key"))
                raise ReauthorizationRequired(
                    _("The stored private key cannot be used: %(reason)s.") % {"reason": reason}
                ) from None
        if password is None and pkey is None:
            raise ReauthorizationRequired(
                _("No password or private key is set for user %(user)s on %(server)s.")
                % {"user": self._username, "server": self._server}
            )
        return password, pkey

    def _socket(self) -> socket.socket:
        server = {"server": self._server, "host": self._host}
        try:
            return outbound.connect(self._host, self._port, timeout=self._connect_timeout)
        except outbound.BlockedHost as exc:
            raise PermanentError(str(exc)) from None
        except socket.gaierror:
            raise TransientError(_("cannot resolve the server name %(host)s") % server) from None
        except ConnectionRefusedError:
            raise TransientError(_("connection refused by %(server)s") % server) from None
        except TimeoutError:
            raise TransientError(_("connection to %(server)s timed out") % server) from None
        except ConnectionResetError:
            raise TransientError(_("connection reset by %(server)s") % server) from None
        except OSError as exc:
            raise TransientError(
                _("cannot connect to %(server)s: %(reason)s")
                % {**server, "reason": exc.strerror or exc}
            ) from None

    def _connect(self) -> paramiko.SSHClient:
        """One authenticated SSH connection to a server whose key is the pinned one."""
        host, port = self._host, self._port
        password, pkey = self._credentials()
        sock = self._socket()
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_RecordAndReject())
        pinned = _pinned_key(self.destination.settings.get("known_host_key"))
        if pinned is not None:
            name = host if port == DEFAULT_PORT else f"[{host}]:{port}"
            client.get_host_keys().add(name, pinned.get_name(), pinned)
        started = time.monotonic()
        try:
            client.connect(
                hostname=host,
                port=port,
                username=self._username,
                password=password,
                pkey=pkey,
                sock=sock,
                timeout=self._connect_timeout,
                banner_timeout=self._connect_timeout,
                auth_timeout=AUTH_TIMEOUT,
                channel_timeout=self._io_timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except BaseException as exc:
            client.close()
            sock.close()
            timed_out = time.monotonic() - started >= self._connect_timeout
            raise self._connect_error(exc, timed_out=timed_out) from None
        return client

    def _connect_error(self, exc: BaseException, *, timed_out: bool) -> BaseException:
        server = self._server
        if isinstance(exc, _UnknownHostKey):
            key = exc.key
            return HostKeyUnknown(
                _(
                    "First connection to %(server)s: check that the server's key "
                    "fingerprint is %(fingerprint)s, then accept it."
                )
                % {"server": server, "fingerprint": fingerprint(key)},
                fingerprint=fingerprint(key),
                key_type=key.get_name(),
                key=key.get_base64(),
            )
        if isinstance(exc, paramiko.BadHostKeyException):
            key = exc.key
            return HostKeyChanged(
                _(
                    "The host key of %(server)s changed: it is now %(fingerprint)s instead "
                    "of the accepted %(pinned)s. Exports are stopped until someone checks "
                    "and accepts the new key."
                )
                % {
                    "server": server,
                    "fingerprint": fingerprint(key),
                    "pinned": fingerprint(exc.expected_key),
                },
                fingerprint=fingerprint(key),
                key_type=key.get_name(),
                key=key.get_base64(),
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return ReauthorizationRequired(
                _("authentication failed for user %(user)s on %(server)s")
                % {"user": self._username, "server": server}
            )
        if isinstance(exc, TimeoutError) or (
            timed_out and isinstance(exc, paramiko.SSHException | EOFError)
        ):
            # paramiko reports a stalled handshake as "No existing session" or a banner error.
            return TransientError(
                _("%(server)s did not complete the SSH handshake within %(seconds)s seconds")
                % {"server": server, "seconds": f"{self._connect_timeout:g}"}
            )
        if isinstance(exc, ConnectionResetError):
            return TransientError(_("connection reset by %(server)s") % {"server": server})
        if isinstance(exc, paramiko.SSHException | EOFError | OSError):
            return TransientError(
                _("could not open an SSH session with %(server)s: %(reason)s")
                % {"server": server, "reason": _reason(exc, self.redactor)}
            )
        return exc

    @contextmanager
    def open(self):
        """One SSH connection and SFTP channel for the whole batch; closed on the way out."""
        client = self._connect()
        try:
            try:
                sftp = client.open_sftp()
                sftp.get_channel().settimeout(self._io_timeout)
                session = SftpSession(client, sftp, self._server, self.redactor)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise TransientError(
                    _("connected to %(server)s, but it did not start SFTP: %(reason)s")
                    % {"server": self._server, "reason": _reason(exc, self.redactor)}
                ) from None
            yield session
        finally:
            client.close()

    def check(self) -> str:
        """Connect, then write and remove a file where documents will go (static part)."""
        settings = self.destination.settings
        templates = [settings.get("upload_path", paths.DEFAULT_TEMPLATE) or ""]
        if (settings.get("report_path") or "").strip():
            templates.append(settings["report_path"])
        folders = []
        for template in templates:
            parts = static_parts(template)
            if parts not in folders:
                folders.append(parts)
        with self.open() as session:
            for parts in folders:
                session.probe(parts)
        return _(
            "Connected to %(server)s as %(user)s; wrote and removed a test file in %(folders)s."
        ) % {
            "server": self._server,
            "user": self._username,
            "folders": ", ".join(paths.join(parts) or _("the home folder") for parts in folders),
        }


def static_parts(template: str) -> tuple[str, ...]:
    """The folders before the first ``[variable]``: the part "Test connection" can check."""
    segments = []
    for segment in paths.validate_template(template, rooted=True).split("/"):
        if "[" in segment:
            break
        segments.append(segment)
    return paths.render(
        "/".join(segments),
        client=paths.SAMPLE_CLIENT,
        category="purchase",
        today=timezone.localdate(),  # unused: no variable is left in a static prefix
        rooted=True,
    )


# --- the session ---------------------------------------------------------------------


class SftpSession:
    """Sends files over one open SFTP channel; remembers which folders exist."""

    def __init__(
        self,
        client: paramiko.SSHClient,
        sftp: paramiko.SFTPClient,
        server: str,
        redactor: Redactor | None = None,
    ):
        self._client, self._sftp, self._server = client, sftp, server
        self._redactor = redactor or Redactor(())
        self.home = sftp.normalize(".")
        self._folders = {self.home, paths.ROOT}
        self._folders_asked: set[str] = set()  # mkdir sent in the pipeline, not yet confirmed
        self._posix_rename = True
        self._lost: TransientError | None = None
        self._answers = _Answers()
        self._owners: dict[int, tuple[_Flight | None, str]] = {}
        self._outgoing: list[bytes] = []

    def send(self, export_file: ExportFile) -> Receipt:
        if self._lost is not None:
            raise TransientError(str(self._lost))
        _check_name(export_file.filename)
        name = export_file.filename
        folder = self._ensure_folder(export_file.folder)
        final = posixpath.join(folder, name)
        part = posixpath.join(folder, f".{name}.part")
        try:
            with self._errors(folder, writing=True):
                self._write(part, export_file.content)
            with self._errors(folder):
                self._sftp.chmod(part, FILE_MODE)
                self._rename(part, final)
        except ConnectorError:
            self._discard(part)
            raise
        return Receipt(reference=final, detail=f"{len(export_file.content)} bytes")

    def probe(self, parts: tuple[str, ...]) -> str:
        """Write and remove a small file in ``parts``: what "Test connection" promises."""
        receipt = self.send(
            ExportFile(
                content=b"Partner Space connection test; safe to delete.\n",
                filename=f".partnerspace-test-{token_hex(6)}",
                folder=parts,
                content_type="text/plain",
                metadata={},
            )
        )
        try:
            self._sftp.remove(receipt.reference)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise PermanentError(
                _("Wrote the test file %(path)s but could not remove it: %(reason)s")
                % {"path": receipt.reference, "reason": _reason(exc, self._redactor)}
            ) from None
        return posixpath.dirname(receipt.reference)

    # -- many files in flight ---------------------------------------------------------

    def send_many(self, items):
        """Send ``(key, export_file)`` pairs with several files in flight on this channel.

        Yields ``(key, Receipt)`` once a file is in place under its final name, or
        ``(key, error)`` for a file refused (``PermanentError``) or not stored
        (``TransientError`` or ``DestinationRefused``: nothing new is started after one,
        the files already on their way are finished and reported first). A lost
        connection raises TransientError.

        Each file takes the steps of :meth:`send` (``.part``, mode 664, rename), but its
        requests do not wait for the previous file's answers: the open; then the writes,
        the close and the mode together; then the rename once they all succeeded. Up to
        ``PIPELINE_FILES`` files are in flight, so a round trip to a distant server is paid
        about three times per window instead of four or five times per file. Folders not
        yet seen are asked for with ``mkdir`` ahead of the open, without waiting (an
        existing folder just answers "failure"); only when the open then finds no folder
        are they made one level at a time, as :meth:`send` does.
        """
        if self._lost is not None:
            raise TransientError(str(self._lost))
        try:
            yield from self._pipeline(iter(items))
        finally:
            self._flush()  # e.g. the removal of a failed file's .part

    def _pipeline(self, items):
        active: list[_Flight] = []
        held = None  # a file's transient error, reported after the files in flight
        stopped: BaseException | None = None  # the iterator of files failed
        while True:
            while held is None and stopped is None and self._lost is None and self._room(active):
                try:
                    key, export_file = next(items)
                except StopIteration:
                    stopped = _DONE
                    break
                except Exception as exc:  # building a file failed: finish the others first
                    stopped = exc
                    break
                flight = _Flight(key, export_file)
                try:
                    _check_name(export_file.filename)
                    flight.folder = self._folder_path(export_file.folder)
                except PermanentError as exc:
                    yield key, exc
                    continue
                self._start(flight)
                active.append(flight)
            if not active:
                break
            # Once the connection is gone, the answers that reached us still count: a
            # file whose rename was answered is in place. Then the loss is raised.
            gone = self._receive()
            for flight in self._advance():
                active.remove(flight)
                stops = isinstance(flight.outcome, TransientError | DestinationRefused)
                if stops and held is None:
                    held = (flight.key, flight.outcome)
                else:
                    yield flight.key, flight.outcome
            if gone:
                break
        if self._lost is not None:
            raise TransientError(str(self._lost))
        if held is not None:
            yield held
        if stopped is not None and stopped is not _DONE:
            raise stopped

    def _room(self, active) -> bool:
        if len(active) >= PIPELINE_FILES:
            return False
        return sum(len(f.export_file.content) for f in active) < PIPELINE_BYTES

    def _request(self, flight, step: str, command: int, *args) -> None:
        """Queue one request (sent with the others by :meth:`_flush`); after a lost
        connection nothing more is sent, and the file it was for never finishes."""
        if self._lost is not None:
            return
        sftp = self._sftp
        with sftp._lock:  # paramiko's own numbering, so its reader hands us the answer
            number = sftp.request_number
            sftp.request_number += 1
            sftp._expecting[number] = self._answers
        message = paramiko.Message()
        message.add_int(number)
        for item in args:
            if isinstance(item, int64):
                message.add_int64(item)
            elif isinstance(item, int):
                message.add_int(item)
            elif isinstance(item, paramiko.SFTPAttributes):
                item._pack(message)
            else:
                message.add_string(item)
        packet = message.asbytes()
        self._outgoing.append(struct.pack(">IB", len(packet) + 1, command) + packet)
        self._owners[number] = (flight, step)
        if flight is not None:
            flight.waiting.add(number)

    def _flush(self) -> None:
        """Send what is queued in one go: a few SSH packets rather than one per request."""
        if not self._outgoing:
            return
        data, self._outgoing = b"".join(self._outgoing), []
        if self._lost is None:
            try:
                self._sftp.sock.sendall(data)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                self._lose(exc)

    def _receive(self) -> bool:
        """Wait for at least one answer (the channel's timeout bounds the wait); True
        when the connection is gone and no answer is left to read."""
        if self._answers.arrived:
            return False
        self._flush()
        try:
            self._sftp._read_response()
            while self._sftp.sock.recv_ready():  # take what else is here: fewer, fuller sends
                self._sftp._read_response()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._lose(exc)
            return not self._answers.arrived
        return False

    def _lose(self, exc: BaseException) -> None:
        if self._lost is None:
            self._translate(
                exc if self._connection_lost(exc) else EOFError(str(exc)), "", writing=False
            )

    def _start(self, flight) -> None:
        """Ask for the folders not known yet, then open the ``.part`` file."""
        for level in flight.folder.levels:
            if level not in self._folders and level not in self._folders_asked:
                self._folders_asked.add(level)
                self._request(None, "mkdir", CMD_MKDIR, level, _FOLDER_ATTRS)
        flight.step = "open"
        self._request(flight, "open", CMD_OPEN, flight.part, _OPEN_FLAGS, _NO_ATTRS)

    def _advance(self) -> list:
        """Take every answer that arrived; return the flights that are finished."""
        finished, later = [], []
        arrived, self._answers.arrived = self._answers.arrived, {}
        for number in sorted(arrived):
            kind, message = arrived[number]
            flight, step = self._owners.pop(number, (None, ""))
            if flight is None:
                continue  # a folder asked for ahead, or a .part removed after a failure
            flight.waiting.discard(number)
            code, text = _status(kind, message, expect_handle=step == "open")
            if step == "open":
                self._opened(flight, code, text, message, later)
            else:
                if code != SFTP_OK:
                    flight.failures.setdefault(step, (code, text))
                if flight.waiting:
                    continue  # more answers to come for this step
                if step == "rename":
                    self._renamed(flight, later)
                else:
                    self._stored(flight, later)
            if flight.outcome is not None and not flight.waiting:
                finished.append(flight)
        for flight, action in later:  # steps that wait for each answer, one at a time
            if self._lost is not None:
                break
            self._flush()  # a step that waits for answers goes after what is queued
            try:
                action(flight)
            except ConnectorError as exc:
                if self._lost is None:
                    flight.outcome = exc
            if flight.outcome is not None:
                finished.append(flight)
        return finished

    def _opened(self, flight, code, text, message, later) -> None:
        if code == SFTP_OK:
            handle = message.get_binary()
            for level in flight.folder.levels:
                self._folders.add(level)
                self._folders_asked.discard(level)
            flight.step = "store"
            content = flight.export_file.content
            for offset in range(0, len(content), WRITE_CHUNK):
                chunk = content[offset : offset + WRITE_CHUNK]
                self._request(flight, "write", CMD_WRITE, handle, int64(offset), chunk)
            self._request(flight, "close", CMD_CLOSE, handle)
            # By path, as send() does with chmod: every server that takes that takes this.
            self._request(flight, "mode", CMD_SETSTAT, flight.part, _FILE_ATTRS)
        elif code == SFTP_NO_SUCH_FILE and not flight.folder_made:
            later.append((flight, self._make_folders_and_reopen))
        else:
            flight.outcome = self._failure(flight, code, text, writing=True)

    def _make_folders_and_reopen(self, flight) -> None:
        """The open found no folder: make it one level at a time, then open again."""
        flight.folder_made = True
        for level in flight.folder.levels:
            self._folders.discard(level)
            self._folders_asked.discard(level)
        self._ensure_folder(flight.export_file.folder)
        self._request(flight, "open", CMD_OPEN, flight.part, _OPEN_FLAGS, _NO_ATTRS)

    def _stored(self, flight, later) -> None:
        """Mode, writes and close all answered: rename into place, or report the failure."""
        failures = flight.failures
        if failures:
            step = next(s for s in ("write", "close", "mode") if s in failures)
            code, text = failures[step]
            flight.outcome = self._failure(flight, code, text, writing=step != "mode")
            self._request(None, "discard", CMD_REMOVE, flight.part)
            return
        flight.step = "rename"
        if self._posix_rename:
            self._request(flight, "rename", CMD_EXTENDED, POSIX_RENAME, flight.part, flight.final)
        else:
            later.append((flight, self._rename_one))

    def _renamed(self, flight, later) -> None:
        code, text = flight.failures.get("rename", (SFTP_OK, ""))
        if code == SFTP_OK:
            flight.outcome = flight.receipt()
        elif code in (SFTP_NO_SUCH_FILE, SFTP_PERMISSION_DENIED):
            flight.outcome = self._failure(flight, code, text, writing=False)
            self._request(None, "discard", CMD_REMOVE, flight.part)
        else:  # a bare failure: most likely the server lacks the posix-rename extension
            self._posix_rename = False
            later.append((flight, self._rename_one))

    def _rename_one(self, flight) -> None:
        try:
            with self._errors(flight.folder.path):
                self._rename(flight.part, flight.final)
        except ConnectorError:
            self._discard(flight.part)
            raise
        flight.outcome = flight.receipt()

    def _failure(self, flight, code: int, text: str, *, writing: bool) -> ConnectorError | None:
        if code == SFTP_NO_SUCH_FILE:
            error: OSError = FileNotFoundError(errno.ENOENT, text)
        elif code == SFTP_PERMISSION_DENIED:
            error = PermissionError(errno.EACCES, text)
        else:
            error = _SftpFailure(text or f"SFTP status {code}")
        translated = self._translate(error, flight.folder.path, writing=writing)
        return None if self._lost is not None else translated  # lost: the file is undecided

    def _origin(self, parts) -> tuple[str, tuple]:
        """Where the parts start: the server's root for rooted ones, else the login folder."""
        if parts and parts[0] == paths.ROOT:
            return paths.ROOT, tuple(parts[1:])
        return self.home, tuple(parts)

    def _folder_path(self, parts) -> _Folder:
        """The folder's path and the path of each level under its start; unsafe names
        refused."""
        path, parts = self._origin(parts)
        levels = []
        for part in parts:
            if part in ("", "."):
                continue
            if part == ".." or "/" in part or _CONTROL.search(part):
                raise PermanentError(
                    _("Refused an unsafe folder name: %(name)r.") % {"name": part}
                )
            path = posixpath.join(path, part)
            levels.append(path)
        return _Folder(path, tuple(levels))

    # -- steps ------------------------------------------------------------------------

    def _write(self, part: str, content: bytes) -> None:
        handle = self._sftp.open(part, "wb")
        try:
            handle.set_pipelined(True)
            handle.write(content)
            handle.flush()  # send the tail now, so close() waits for every acknowledgement
        except BaseException:
            with suppress(OSError, EOFError, paramiko.SSHException):
                handle.close()
            raise
        handle.close()
        # paramiko drops the answers to pipelined writes: a full disk would otherwise pass
        # as an empty file. The size the server kept is the proof (as putfo(confirm=True)).
        kept = self._sftp.stat(part).st_size
        if kept != len(content):
            raise OSError(
                _("the server kept %(kept)s of %(size)s bytes (is its disk full?)")
                % {"kept": kept, "size": len(content)}
            )

    def _rename(self, part: str, final: str) -> None:
        if self._posix_rename:
            try:
                self._sftp.posix_rename(part, final)
                return
            except OSError as exc:
                if exc.errno is not None or self._connection_lost(exc):
                    raise
                # A bare failure: most likely the server lacks the posix-rename extension.
                self._posix_rename = False
        with suppress(FileNotFoundError):
            self._sftp.remove(final)
        self._sftp.rename(part, final)

    def _ensure_folder(self, parts) -> str:
        """Create missing folders one level at a time; tolerate another worker's mkdir."""
        path, parts = self._origin(parts)
        for part in parts:
            if part in ("", "."):
                continue
            if part == ".." or "/" in part or _CONTROL.search(part):
                raise PermanentError(
                    _("Refused an unsafe folder name: %(name)r.") % {"name": part}
                )
            parent, path = path, posixpath.join(path, part)
            if path in self._folders:
                continue
            with self._errors(parent):
                self._make_folder(path)
            self._folders.add(path)
        return path

    def _make_folder(self, path: str) -> None:
        try:
            if stat.S_ISDIR(self._sftp.stat(path).st_mode or 0):
                return
            raise PermanentError(
                _("%(path)s exists on the server but is not a folder.") % {"path": path}
            )
        except FileNotFoundError:
            pass
        try:
            self._sftp.mkdir(path, FOLDER_MODE)
        except OSError as exc:
            if self._connection_lost(exc):
                raise
            try:  # made by someone else since our stat?
                if stat.S_ISDIR(self._sftp.stat(path).st_mode or 0):
                    return
            except FileNotFoundError:
                pass
            raise

    def _discard(self, part: str) -> None:
        """Best effort: no ``.part`` left behind, unless the connection is gone."""
        if self._lost is None:
            with suppress(OSError, EOFError, paramiko.SSHException):
                self._sftp.remove(part)

    # -- errors -----------------------------------------------------------------------

    def _connection_lost(self, exc: BaseException) -> bool:
        if isinstance(exc, EOFError | paramiko.SSHException | TimeoutError | ConnectionError):
            return True
        transport = self._client.get_transport()
        return transport is None or not transport.is_active() or self._sftp.sock.closed

    @contextmanager
    def _errors(self, folder: str, *, writing: bool = False):
        """Turn SFTP and socket failures into the engine's typed errors, worded for people."""
        try:
            yield
        except ConnectorError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._translate(exc, folder, writing=writing) from None

    def _translate(self, exc: BaseException, folder: str, *, writing: bool) -> ConnectorError:
        reason = _reason(exc, self._redactor)
        if self._connection_lost(exc):
            self._lost = TransientError(
                _("the connection to %(server)s was lost: %(reason)s")
                % {"server": self._server, "reason": reason}
            )
            return self._lost
        if isinstance(exc, PermissionError):
            # The folder's rights, not the document: every file would be refused alike.
            return DestinationRefused(_("no write permission in %(path)s") % {"path": folder})
        if isinstance(exc, FileNotFoundError):
            self._folders = {known for known in self._folders if known == self.home}
            self._folders_asked = set()
            return TransientError(
                _(
                    "the folder %(path)s disappeared on the server; it is created again on "
                    "the next attempt"
                )
                % {"path": folder}
            )
        if writing:
            return TransientError(
                _(
                    "the server could not store the file in %(path)s; its disk may be "
                    "full (%(reason)s)"
                )
                % {"path": folder, "reason": reason}
            )
        return TransientError(
            _("the server refused an operation in %(path)s: %(reason)s")
            % {"path": folder, "reason": reason}
        )


# --- the pipeline's pieces -------------------------------------------------------------

PIPELINE_FILES = 16  # files in flight on one channel
PIPELINE_BYTES = 8 * 1024 * 1024  # and their bytes (a file alone may be larger)
WRITE_CHUNK = 32 * 1024  # the write size every SFTP server accepts
POSIX_RENAME = "posix-rename@openssh.com"
_OPEN_FLAGS = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC
_NO_ATTRS = paramiko.SFTPAttributes()
_FILE_ATTRS = paramiko.SFTPAttributes()
_FILE_ATTRS.st_mode = FILE_MODE
_FOLDER_ATTRS = paramiko.SFTPAttributes()
_FOLDER_ATTRS.st_mode = FOLDER_MODE
_DONE = StopIteration()


def _reason(exc: BaseException, redactor: Redactor) -> str:
    """What an exception says, which may be the server's own words: one line, redacted."""
    return redactor.one_line(str(exc)) or type(exc).__name__


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or _CONTROL.search(name):
        raise PermanentError(_("Refused an unsafe file name: %(name)r.") % {"name": name})


class _SftpFailure(OSError):
    """A status without an errno (SFTP's generic "failure"), as paramiko raises it."""


@dataclass(frozen=True)
class _Folder:
    path: str
    levels: tuple[str, ...]


class _Answers:
    """Where paramiko puts the answers to our requests as it reads them."""

    def __init__(self):
        self.arrived: dict = {}

    def _async_response(self, kind, message, number) -> None:
        self.arrived[number] = (kind, message)


class _Flight:
    """One file on its way through the pipeline."""

    def __init__(self, key, export_file: ExportFile):
        self.key, self.export_file = key, export_file
        self.folder = _Folder("", ())
        self.step = ""
        self.waiting: set[int] = set()
        self.failures: dict[str, tuple[int, str]] = {}
        self.folder_made = False
        self.outcome = None

    @property
    def part(self) -> str:
        return posixpath.join(self.folder.path, f".{self.export_file.filename}.part")

    @property
    def final(self) -> str:
        return posixpath.join(self.folder.path, self.export_file.filename)

    def receipt(self) -> Receipt:
        return Receipt(reference=self.final, detail=f"{len(self.export_file.content)} bytes")


def _status(kind, message, *, expect_handle: bool) -> tuple[int, str]:
    """(code, text) of an answer; an open's handle counts as OK and is left to read."""
    if expect_handle and kind == CMD_HANDLE:
        return SFTP_OK, ""
    if kind == CMD_STATUS:
        code, text = message.get_int(), message.get_text()
        if code != SFTP_OK or not expect_handle:
            return code, text
    return SFTP_FAILURE, f"unexpected answer {kind}"
