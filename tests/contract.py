"""The contract test kit: what every connector proves, by being listed here.

``tests/test_contract.py`` walks ``extensions.registry.connectors()`` and runs every check
for every key; a connector without an entry below fails with "add <key> to
tests/contract.py", so a new destination cannot slip through unchecked. An entry is one
function, decorated with ``@entry("<key>")``, returning an :class:`Entry`:

* a *sample configuration* (settings, secrets, a client's settings and secrets) as the
  views would store it: pages, the admin and ``dumpdata`` must never show its secrets,
  and the connector's forms must accept it;
* ``rebind``: for each of the connector's ``binding_fields``, another value naming another
  destination, so each is changed in turn and must drop the stored secrets;
* ``peers``: the fixtures of its real peer (``tests/peers/``), and three configurations
  against them: ``live`` (a working one), ``unreachable`` (nothing listens on the port)
  and ``wrong_credentials`` (the peer refuses them), or ``no_credentials`` saying why
  there is no such case;
* ``copies``: what the destination holds, one :class:`Copy` per copy, to prove that a
  document sent twice with the same idempotency key (a worker died between the
  destination's answer and the record) leaves one. ``receiver_deduplicates`` says what
  "one" means: ``False``, the destination itself holds one copy (a file replaced by its
  retry); ``True``, two copies may arrive but carry one identity, which a receiver
  de-duplicates by (SMTP: one Message-ID; HTTP: one Idempotency-Key to one URL).

It also offers :class:`MemoryConnector`, a destination in memory for tests of the engine.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import pytest
from django import forms
from django.utils.functional import Promise, lazy

from extensions import formats
from extensions.connectors.base import (
    ALL_CATEGORIES,
    CATEGORY_LABELS,
    Connector,
    ConnectorForm,
    ExportFile,
    Receipt,
)
from tests.peers.http import Answer

KEY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SCOPES = ("installation", "integration")
# A field named like this holds a credential: it must be a secret() field.
CREDENTIAL_NAME = re.compile(r"password|passphrase|secret|token|api_?key|private_key", re.I)
# Not every character survives every encoding unchanged: a leak in any form is seen.
WRONG_PASSWORD = "wrong pass/wörd+1&x"


@dataclass(frozen=True)
class Config:
    """A configuration the connector runs with; ``hidden`` are further values no message
    may show (the operator's SMTP password), ``user`` the name paired with a password, and
    ``apply`` sets what lives outside the installation."""

    settings: dict
    secrets: dict
    client_settings: dict = field(default_factory=dict)
    client_secrets: dict = field(default_factory=dict)
    user: str = ""
    hidden: tuple[str, ...] = ()
    # What it sets outside the installation (the operator's EMAIL_* settings), run first.
    apply: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Copy:
    """One copy the destination holds: its identity (a path, a Message-ID, a URL and
    Idempotency-Key) and the bytes of the document in it."""

    identity: Any
    content: bytes


class Peers:
    """The test's fixtures by name, so an entry reaches its peer and Django's settings."""

    def __init__(self, request):
        self.request = request

    def __getitem__(self, name: str):
        return self.request.getfixturevalue(name)


@dataclass(frozen=True)
class Entry:
    sample: Config
    peers: tuple[str, ...]
    live: Callable[[Peers], Config]
    unreachable: Callable[[Peers, int], Config]
    copies: Callable[[Peers], list[Copy]]
    receiver_deduplicates: bool
    one_means: str  # said in a failure, so its reader knows what was expected
    # One configuration the peer refuses, or several (each is tried in turn).
    wrong_credentials: Callable[[Peers], Config | list[Config]] | None = None
    no_credentials: str = ""  # why there is no wrong-credentials case
    rebind: dict[str, Any] = field(default_factory=dict)


ENTRIES: dict[str, Callable[[], Entry]] = {}


def entry(key: str):
    def register(function: Callable[[], Entry]) -> Callable[[], Entry]:
        ENTRIES[key] = function
        return function

    return register


def entry_for(key: str) -> Entry:
    """The kit's entry for ``key``; a connector without one fails, naming what to add."""
    if key not in ENTRIES:
        pytest.fail(
            f"add {key} to tests/contract.py: an @entry({key!r}) function returning its "
            "sample configuration, its peer fixtures and how to reach them; the contract "
            "tests then run for it",
            pytrace=False,
        )
    made = ENTRIES[key]()
    if not made.peers:
        pytest.fail(
            f"{key} has no peer fixture in tests/contract.py: add a real server for it to "
            "tests/peers/ (listed in tests/conftest.py) and name it in the entry's peers",
            pytrace=False,
        )
    if made.wrong_credentials is None and not made.no_credentials:
        pytest.fail(
            f"{key}'s entry in tests/contract.py has neither wrong_credentials nor "
            "no_credentials (why it has none)",
            pytrace=False,
        )
    return made


# --- checks that need no peer ------------------------------------------------------------


def _text(value) -> str:
    return str(value or "").strip()


def declaration_problems(connector: type[Connector]) -> list[str]:
    """What ``connector``'s declarations get wrong, one sentence each; empty when none.

    ``name`` may be a plain string: a product or protocol name ("SFTP", "Exact Online")
    reads the same in every language. What it says of itself must be translatable.
    """
    problems = []
    key = getattr(connector, "key", "")
    if not isinstance(key, str) or not KEY.match(key):
        problems.append(f"key {key!r} is not a slug (lower-case letters, digits, dashes)")
    for name in ("name", "description", "writes"):
        value = getattr(connector, name, "")
        if not _text(value):
            problems.append(f"{name} is empty")
        elif name != "name" and not isinstance(value, Promise):
            problems.append(f"{name} is not translatable: wrap it in gettext_lazy")
        elif not isinstance(value, str | Promise):
            problems.append(f"{name} is not a string")
    if connector.category not in CATEGORY_LABELS:
        problems.append(f"category {connector.category!r} is not one of {sorted(CATEGORY_LABELS)}")
    accepts = set(connector.accepts or ())
    if not accepts or not accepts <= ALL_CATEGORIES:
        problems.append(
            f"accepts {sorted(accepts)} is empty or not within {sorted(ALL_CATEGORIES)}"
        )
    offered = tuple(connector.formats or ())
    unknown = [key for key in offered if key not in formats.FORMATS]
    if not offered or unknown or len(set(offered)) != len(offered):
        problems.append(f"formats {offered} is empty, repeats or names unknown formats {unknown}")
    elif formats.chosen(connector, {}) != offered[0]:
        problems.append("the first of formats is not the default")
    if connector.connection_scope not in SCOPES:
        problems.append(f"connection_scope {connector.connection_scope!r} is not one of {SCOPES}")
    try:
        binding = connector.binding({})
    except Exception as exc:
        problems.append(f"binding({{}}) raised {type(exc).__name__}: {exc}")
    else:
        if not isinstance(binding, dict):
            problems.append(f"binding({{}}) returned {type(binding).__name__}, not a dict")
    for attribute in ("settings_form", "client_form"):
        form_class = getattr(connector, attribute)
        if form_class is None:
            continue
        if not (isinstance(form_class, type) and issubclass(form_class, ConnectorForm)):
            problems.append(f"{attribute} is not a ConnectorForm subclass")
            continue
        problems += [f"{attribute}: {problem}" for problem in secret_field_problems(form_class)]
    return problems


def secret_field_problems(form_class: type[forms.Form]) -> list[str]:
    """Secret fields are marked with ``secret()``; a credential-like field must be one."""
    problems = []
    for name, form_field in form_class.base_fields.items():
        marked = getattr(form_field, "secret", False)
        looks_secret = CREDENTIAL_NAME.search(name) or isinstance(
            form_field.widget, forms.PasswordInput
        )
        if looks_secret and not marked:
            problems.append(f"{name} looks like a credential but is not wrapped in secret()")
        if not marked:
            continue
        widget = form_field.widget
        if not isinstance(widget, forms.PasswordInput) or widget.render_value:
            problems.append(f"{name} is not a PasswordInput(render_value=False)")
        if form_field.required:
            problems.append(f"{name} is required, so a blank edit could not keep it")
    return problems


def form_data(form_class, values: dict, prefix: str) -> dict:
    """``values`` as a browser posts them for ``form_class``'s fields."""
    data = {}
    for name, form_field in form_class.base_fields.items():
        value = values.get(name)
        if isinstance(form_field, forms.BooleanField):
            if value:
                data[f"{prefix}-{name}"] = "on"
            continue
        data[f"{prefix}-{name}"] = "" if value is None else value
    return data


def leaked_forms(values: Iterable[str], users: Iterable[str] = ()) -> dict[str, str]:
    """Each secret in the forms a message could carry it in: as is, URL-encoded, base64,
    and paired with a user name as HTTP Basic and SMTP AUTH PLAIN encode it."""
    found = {}
    for value in (v for v in values if isinstance(v, str) and len(v) >= 4):
        found[value] = "plain"
        found[quote(value, safe="")] = "URL-encoded"
        found[quote_plus(value)] = "URL-encoded (form)"
        found[base64.b64encode(value.encode()).decode()] = "base64"
        for user in users:
            pair = f"{user}:{value}".encode()
            found[base64.b64encode(pair).decode()] = "base64 user:password"
            plain = f"\0{user}\0{value}".encode()
            found[base64.b64encode(plain).decode()] = "base64 AUTH PLAIN"
    return found


def secrets_of(config: Config) -> list[str]:
    values = [*config.secrets.values(), *config.client_secrets.values(), *config.hidden]
    return [value for value in values if isinstance(value, str) and value]


def leaks(text: str, config: Config) -> list[str]:
    """The forms of ``config``'s secrets that ``text`` shows."""
    users = [config.user] if config.user else []
    return [
        f"{kind} {value!r}"
        for value, kind in leaked_forms(secrets_of(config), users).items()
        if value in text
    ]


def around(text: str, config: Config, width: int = 80) -> str:
    """Where the first leak is in ``text`` (a page is too long to read whole)."""
    users = [config.user] if config.user else []
    for value in leaked_forms(secrets_of(config), users):
        at = text.find(value)
        if at >= 0:
            return text[max(0, at - width) : at + len(value) + width]
    return text[: 2 * width]


def send_twice(connector_factory, export_file: ExportFile) -> list[Receipt]:
    """Send ``export_file``, then the very same one through a new connection, as another
    worker does when the first died between the destination's answer and the record."""
    receipts = []
    for _attempt in range(2):
        with connector_factory().open() as session:
            receipts.append(session.send(export_file))
    return receipts


# --- entries: one per connector of the registry -----------------------------------------


def _files(root: Path) -> list[Copy]:
    return [
        Copy(str(path.relative_to(root)), path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    ]


@entry("sftp")
def _sftp() -> Entry:
    def live(peers):
        peer = peers["sftp_server"]
        return Config(
            {
                "host": peer.host,
                "port": peer.port,
                "username": peer.username,
                "upload_path": "Invoice_import/[year]/",
                **peer.pin(),
            },
            {"password": peer.password},
            user=peer.username,
        )

    def unreachable(peers, port):
        return Config(
            {"host": "127.0.0.1", "port": port, "username": "exporter", "upload_path": ""},
            {"password": "Sftp unreachable/pass+1"},
            user="exporter",
        )

    def wrong_credentials(peers):
        config = live(peers)
        return Config(config.settings, {"password": WRONG_PASSWORD}, user=config.user)

    return Entry(
        sample=Config(
            {
                "host": "sftp.lambert.example",
                "port": 22,
                "username": "lambert",
                "upload_path": "Invoice_import/",
                "report_path": "",
            },
            {"password": "Sftp-stored-pass/7 q", "passphrase": "Sftp-stored-phrase 9"},
            {"path": "Clients/[external_id]/"},
            user="lambert",
        ),
        rebind={"host": "sftp.elsewhere.example", "port": 2222, "username": "someone-else"},
        peers=("sftp_server",),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: _files(peers["sftp_server"].root),
        receiver_deduplicates=False,
        one_means="one file, with the document's bytes: the retry replaced the first copy",
    )


def _point_at_smtp(settings, host, port, user="", password=""):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = host, port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = user, password
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "Partner Space <exports@portal.example.be>"


def _messages(peer) -> list[Copy]:
    copies = []
    for received in peer.messages:
        message = message_from_bytes(received.content, policy=policy.default)
        for part in message.iter_attachments():
            copies.append(Copy(message["Message-ID"], part.get_payload(decode=True)))
    return copies


@entry("email")
def _email() -> Entry:
    client_settings = {"recipients": "boekhouding@peeters.be", "report_recipients": ""}

    def server(peers, host, port, password="", user="relay"):
        """The operator's mail server: Django's settings, not the installation's."""
        apply = partial(_point_at_smtp, peers["settings"], host, port, user, password)
        hidden = (password,) if password else ()
        return Config({}, {}, client_settings, user=user, hidden=hidden, apply=apply)

    def live(peers):
        peer = peers["smtp_peer"]
        return server(peers, peer.host, peer.port, user="")

    def unreachable(peers, port):
        return server(peers, "127.0.0.1", port, "Smtp unreachable/pw 3")

    def wrong_credentials(peers):
        """The server refuses an ASCII password; one that is not ASCII cannot even be sent
        (smtplib logs in in ASCII), which is just as much the operator's to correct."""
        peer = peers["start_smtp"](accounts={"relay": "the right password"})
        return [
            server(peers, peer.host, peer.port, password)
            for password in (WRONG_PASSWORD.replace("ö", "o"), WRONG_PASSWORD)
        ]

    return Entry(
        sample=Config(
            {"subject_prefix": "[Lambert]", "reply_to": "help@lambert.example"},
            {},
            client_settings,
        ),
        peers=("smtp_peer", "start_smtp"),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: _messages(peers["smtp_peer"]),
        receiver_deduplicates=True,
        one_means=(
            "messages that all carry one Message-ID: SMTP cannot take a message back, so a "
            "receiver de-duplicates by Message-ID"
        ),
    )


def _requests(peer) -> list[Copy]:
    return [
        Copy((r.method, urlsplit(r.path).path, r.headers.get("idempotency-key")), r.body)
        for r in peer.requests
    ]


def _quoting_receiver(recorded) -> bytes:
    """A receiver that refuses and quotes the credentials it got, in every form."""
    authorization = recorded.headers.get("authorization", "")
    scheme, _space, value = authorization.partition(" ")
    decoded = ""
    if scheme == "Basic":
        decoded = base64.b64decode(value).decode(errors="replace")
    return f"Unauthorized: {authorization} ({decoded}; {quote(decoded, safe='')})".encode()


@entry("http")
def _http() -> Entry:
    def live(peers):
        peer = peers["http_peer"]
        peer.strict = True
        return Config(
            {"url": peer.url + "/in", "method": "POST", "auth": "none", "path_template": ""},
            {},
        )

    def unreachable(peers, port):
        return Config(
            {
                "url": f"http://127.0.0.1:{port}/in",
                "method": "POST",
                "auth": "basic",
                "username": "lambert",
            },
            {"password": "Http unreachable/pw 5"},
            user="lambert",
        )

    def wrong_credentials(peers):
        peer = peers["http_peer"]
        peer.default = Answer(401, {"Content-Type": "text/plain"}, _quoting_receiver)
        return Config(
            {"url": peer.url + "/in", "method": "POST", "auth": "basic", "username": "lambert"},
            {"password": WRONG_PASSWORD},
            user="lambert",
        )

    return Entry(
        sample=Config(
            {
                "url": "https://hooks.lambert.example/in",
                "path_template": "",
                "method": "POST",
                "auth": "basic",
                "username": "lambert",
            },
            {"password": "Http-stored-pass/4 z"},
            {"path": ""},
            user="lambert",
        ),
        rebind={"url": "https://hooks.elsewhere.example/in", "auth": "bearer"},
        peers=("http_peer",),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: _requests(peers["http_peer"]),
        receiver_deduplicates=True,
        one_means=(
            "requests that all carry one Idempotency-Key to one URL, by which a receiver "
            "drops the repeat"
        ),
    )


def _drive_files(peer) -> list[Copy]:
    return [Copy(path, content) for path, content in peer.tree().items() if content is not None]


@entry("gdrive")
def _gdrive() -> Entry:
    """Secrets come from a Google sign-in, not a form: a refresh token the peer issued
    stands for a past sign-in, and the connector renews its access token from it."""

    def google(peers, url, **secrets):
        settings = peers["settings"]
        client_secret = settings.GOOGLE_DRIVE_CLIENT_SECRET or "GOCSPX-operator-app/secret"

        def apply():
            settings.GOOGLE_BASE_URL = url
            settings.GOOGLE_DRIVE_CLIENT_ID = settings.GOOGLE_DRIVE_CLIENT_ID or "app-id"
            settings.GOOGLE_DRIVE_CLIENT_SECRET = client_secret

        return Config(
            {"account": "lambert@example.com", "include_reports": False},
            secrets,
            hidden=(client_secret,),
            apply=apply,
        )

    def live(peers):
        peer = peers["google_peer"]
        refresh = "1//contract-refresh/" + os.urandom(6).hex()
        peer.refresh_tokens.add(refresh)  # as a sign-in on the peer would have left it
        return google(peers, peer.url, refresh_token=refresh)

    def unreachable(peers, port):
        return google(
            peers,
            f"http://127.0.0.1:{port}",
            access_token="ya29.unreachable/access token",
            refresh_token="1//unreachable/refresh token",
            expires_at=time.time() + 3600,
        )

    def wrong_credentials(peers):
        """A refresh token Google revoked, with no access token or with one it refuses."""
        peer = peers["google_peer"]
        revoked = {"refresh_token": "1//revoked/refresh token"}
        return [
            google(peers, peer.url, **revoked),
            google(
                peers,
                peer.url,
                access_token="ya29.refused/access token",
                expires_at=time.time() + 3600,
                **revoked,
            ),
        ]

    return Entry(
        sample=Config(
            {"account": "lambert@example.com", "include_reports": False},
            {
                "access_token": "ya29.stored-access/token 1",
                "refresh_token": "1//stored-refresh/token 2",
                "expires_at": 1_900_000_000.0,
            },
        ),
        rebind={"account": "someone@elsewhere.example"},
        peers=("google_peer",),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: _drive_files(peers["google_peer"]),
        receiver_deduplicates=False,
        one_means="one file: the retry finds the first by the key in its appProperties",
    )


@entry("dropbox")
def _dropbox() -> Entry:
    """Secrets come from a Dropbox sign-in, not a form: a refresh token the peer issued
    stands for a past sign-in, and the connector renews its access token from it."""

    def dropbox(peers, url, **secrets):
        settings = peers["settings"]
        app_secret = settings.DROPBOX_APP_SECRET or "dropbox-operator-app/secret"

        def apply():
            settings.DROPBOX_BASE_URL = url
            settings.DROPBOX_APP_KEY = settings.DROPBOX_APP_KEY or "app-key"
            settings.DROPBOX_APP_SECRET = app_secret

        return Config(
            {"account": "lambert@example.com", "include_reports": False},
            secrets,
            hidden=(app_secret,),
            apply=apply,
        )

    def live(peers):
        peer = peers["dropbox_peer"]
        refresh = "contract-refresh/" + os.urandom(6).hex()
        peer.refresh_tokens.add(refresh)  # as a sign-in on the peer would have left it
        return dropbox(peers, peer.url, refresh_token=refresh)

    def unreachable(peers, port):
        return dropbox(
            peers,
            f"http://127.0.0.1:{port}",
            access_token="sl.unreachable/access token",
            refresh_token="unreachable/refresh token",
            expires_at=time.time() + 3600,
        )

    def wrong_credentials(peers):
        """A refresh token Dropbox revoked, with no access token or with one it refuses."""
        peer = peers["dropbox_peer"]
        revoked = {"refresh_token": "revoked/refresh token"}
        return [
            dropbox(peers, peer.url, **revoked),
            dropbox(
                peers,
                peer.url,
                access_token="sl.refused/access token",
                expires_at=time.time() + 3600,
                **revoked,
            ),
        ]

    return Entry(
        sample=Config(
            {"account": "lambert@example.com", "include_reports": False},
            {
                "access_token": "sl.stored-access/token 1",
                "refresh_token": "stored-refresh/token 2",
                "expires_at": 1_900_000_000.0,
            },
        ),
        rebind={"account": "someone@elsewhere.example"},
        peers=("dropbox_peer",),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: [
            Copy(path, content) for path, content in peers["dropbox_peer"].tree().items()
        ],
        receiver_deduplicates=False,
        one_means="one file: the retry meets the first at its path and finds it is ours",
    )


@entry("onedrive")
def _onedrive() -> Entry:
    """Secrets come from a Microsoft sign-in, not a form: a refresh token the peer issued
    stands for a past sign-in; every renewal rotates it, and the newest must be kept."""

    def microsoft(peers, url, **secrets):
        settings = peers["settings"]
        client_secret = settings.ONEDRIVE_CLIENT_SECRET or "Mq~8Q~operator-app/secret"

        def apply():
            settings.MICROSOFT_BASE_URL = url
            settings.ONEDRIVE_CLIENT_ID = settings.ONEDRIVE_CLIENT_ID or "app-id"
            settings.ONEDRIVE_CLIENT_SECRET = client_secret

        return Config(
            {"account": "lambert@lambert-boekhouding.be", "include_reports": False},
            secrets,
            hidden=(client_secret,),
            apply=apply,
        )

    def live(peers):
        peer = peers["microsoft_peer"]
        refresh = "R.contract-refresh/" + os.urandom(6).hex()
        peer.refresh_tokens.add(refresh)  # as a sign-in on the peer would have left it
        return microsoft(peers, peer.url, refresh_token=refresh)

    def unreachable(peers, port):
        return microsoft(
            peers,
            f"http://127.0.0.1:{port}",
            access_token="eyJ0.unreachable/access token",
            refresh_token="R.unreachable/refresh token",
            expires_at=time.time() + 3600,
        )

    def wrong_credentials(peers):
        """A revoked refresh token, with no access token or with one Graph refuses."""
        peer = peers["microsoft_peer"]
        revoked = {"refresh_token": "R.revoked/refresh token"}
        return [
            microsoft(peers, peer.url, **revoked),
            microsoft(
                peers,
                peer.url,
                access_token="eyJ0.refused/access token",
                expires_at=time.time() + 3600,
                **revoked,
            ),
        ]

    return Entry(
        sample=Config(
            {"account": "lambert@lambert-boekhouding.be", "include_reports": False},
            {
                "access_token": "eyJ0.stored-access/token 1",
                "refresh_token": "R.stored-refresh/token 2",
                "expires_at": 1_900_000_000.0,
            },
        ),
        rebind={"account": "someone@elsewhere.example"},
        peers=("microsoft_peer",),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: [
            Copy(path, content)
            for path, content in peers["microsoft_peer"].tree().items()
            if content is not None
        ],
        receiver_deduplicates=False,
        one_means="one item: the retry writes the same path with conflictBehavior=replace",
    )


@entry("yuki")
def _yuki() -> Entry:
    """The key is typed; the address it was typed for (the operator's YUKI_BASE_URL) is
    the binding, kept as the service_url setting."""
    from extensions.connectors import yuki_soap

    def yuki(peers, url, key, administration="adm-unknown"):
        settings = peers["settings"]

        def apply():
            settings.YUKI_BASE_URL = url

        return Config(
            {"service_url": url}, {"access_key": key}, {"administration": administration},
            apply=apply,
        )  # fmt: skip

    def live(peers):
        peer = peers["yuki_peer"]
        first = next(iter(peer.administrations))
        return yuki(peers, peer.url + "/ws/", peer.access_key, first)

    return Entry(
        sample=Config(
            {"service_url": yuki_soap.base_url()},
            {"access_key": "Yuki-stored-key/7 q+0"},
            {"administration": "7d3c1a52-0000-4000-8000-000000000001"},
        ),
        rebind={"service_url": "https://api.yukiworks.nl/ws/"},
        peers=("yuki_peer",),
        live=live,
        unreachable=lambda peers, port: yuki(
            peers, f"http://127.0.0.1:{port}/ws/", "Yuki unreachable/key 3"
        ),
        wrong_credentials=lambda peers: yuki(
            peers, peers["yuki_peer"].url + "/ws/", WRONG_PASSWORD
        ),
        copies=lambda peers: [
            Copy((d.administration, d.folder, d.file_name), d.content)
            for d in peers["yuki_peer"].documents.values()
        ],
        receiver_deduplicates=False,
        one_means="one document: the retry finds the first by its name before uploading",
    )


@entry("octopus")
def _octopus() -> Entry:
    """Signed in at Octopus's REST API, delivered by e-mail through the operator's server."""
    mailbox = {"mailbox": "peeters.aankoop@mail.octopus.example"}

    def octopus(peers, api_url, uuid, smtp, user, password):
        settings = peers["settings"]

        def apply():
            settings.OCTOPUS_BASE_URL = api_url
            settings.OCTOPUS_SOFTWARE_HOUSE_UUID = uuid
            _point_at_smtp(settings, *smtp)

        return Config({"user": user}, {"password": password}, mailbox, user=user, apply=apply)

    def live(peers):
        peer, smtp = peers["octopus_peer"], peers["smtp_peer"]
        return octopus(
            peers, peer.api_url, peer.software_house_uuid, (smtp.host, smtp.port),
            peer.user, peer.password,
        )  # fmt: skip

    def unreachable(peers, port):
        smtp = peers["smtp_peer"]
        return octopus(
            peers, f"http://127.0.0.1:{port}/octopus-rest-api/v1", "5f0c-uuid",
            (smtp.host, smtp.port), "lambert", "Octopus unreachable/pw 3",
        )  # fmt: skip

    def wrong_credentials(peers):
        config = live(peers)
        return replace(config, secrets={"password": WRONG_PASSWORD})

    return Entry(
        sample=Config(
            {"user": "lambert@fiduciaire.example"},
            {"password": "Octopus-stored-pass/5 k"},
            mailbox,
            user="lambert@fiduciaire.example",
        ),
        rebind={"user": "someone@elsewhere.example"},
        peers=("octopus_peer", "smtp_peer"),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: _messages(peers["smtp_peer"]),
        receiver_deduplicates=True,
        one_means=(
            "messages to the dossier mailbox that all carry one Message-ID, by which a "
            "receiver drops the repeat"
        ),
    )


def _documents(peer) -> list[Copy]:
    """What a package holds: one copy per document, known by where it went and its key."""
    return [Copy((d.where, d.idempotency_key), d.content) for d in peer.documents]


def _package(base_setting: str):
    """A configuration whose package is reached at ``url`` through ``base_setting``."""

    def config(peers, url, settings, secrets, **rest):
        django_settings = peers["settings"]
        return Config(
            settings, secrets, apply=lambda: setattr(django_settings, base_setting, url), **rest
        )

    return config


@entry("onea")
def _onea() -> Entry:
    onea = _package("ONEA_BASE_URL")
    return Entry(
        sample=Config({"platform": "eis"}, {"api_key": "onea-stored-key/1x"}),
        rebind={"platform": "ois"},
        peers=("onea_peer",),
        live=lambda peers: onea(
            peers,
            peers["onea_peer"].url,
            {"platform": "vis"},
            {"api_key": peers["onea_peer"].api_key},
        ),
        unreachable=lambda peers, port: onea(
            peers, f"http://127.0.0.1:{port}", {"platform": "vis"}, {"api_key": "onea-unreach/2y"}
        ),
        wrong_credentials=lambda peers: onea(
            peers, peers["onea_peer"].url, {"platform": "vis"}, {"api_key": WRONG_PASSWORD}
        ),
        copies=lambda peers: _documents(peers["onea_peer"]),
        receiver_deduplicates=False,
        one_means="one document: the retry finds the first by its reference",
    )


@entry("pingwin")
def _pingwin() -> Entry:
    pingwin = _package("PINGWIN_BASE_URL")

    def live(peers, api_key=None):
        peer = peers["pingwin_peer"]
        return pingwin(
            peers,
            peer.url,
            {"clid": peer.clid, "file_id": "2025"},
            {"api_key": api_key or peer.api_key},
        )

    return Entry(
        sample=Config({"clid": "CL-4711", "file_id": "2025"}, {"api_key": "pw-stored-key/3z"}),
        rebind={"clid": "CL-9999", "file_id": "3030"},
        peers=("pingwin_peer",),
        live=live,
        unreachable=lambda peers, port: pingwin(
            peers,
            f"http://127.0.0.1:{port}",
            {"clid": "CL-4711", "file_id": "2025"},
            {"api_key": "pw-unreach/4w"},
        ),
        wrong_credentials=lambda peers: live(peers, api_key=WRONG_PASSWORD),
        copies=lambda peers: _documents(peers["pingwin_peer"]),
        receiver_deduplicates=False,
        one_means="one document: PingWin answers a repeated Idempotency-Key with the first",
    )


@entry("counte")
def _counte() -> Entry:
    def config(api_url, password, username="lambert.api"):
        return Config(
            {"api_url": api_url, "database": "LAMBERT", "username": username},
            {"password": password},
            {"customer_number": "40012"},
            user=username,
        )

    return Entry(
        sample=config("https://lambert.count-e.example/api", "Count-e stored/pass 5"),
        rebind={
            "api_url": "https://elsewhere.count-e.example/api",
            "database": "OTHER",
            "username": "someone.else",
        },
        peers=("counte_peer",),
        live=lambda peers: config(peers["counte_peer"].api_url, peers["counte_peer"].password),
        unreachable=lambda peers, port: config(
            f"http://127.0.0.1:{port}/api", "Count-e unreach/pass 6"
        ),
        wrong_credentials=lambda peers: config(peers["counte_peer"].api_url, WRONG_PASSWORD),
        copies=lambda peers: _documents(peers["counte_peer"]),
        receiver_deduplicates=False,
        one_means="one document: the retry finds the first by its reference",
    )


@entry("wings")
def _wings() -> Entry:
    wings = _package("WINGS_BASE_URL")
    client = {"internal_number": "17", "purchase_journal": "AK", "sales_journal": "VK"}

    def config(peers, url, password):
        return wings(
            peers, url, {"username": "Wings8123"}, {"password": password},
            client_settings=client, user="Wings8123",
        )  # fmt: skip

    return Entry(
        sample=Config(
            {"username": "Wings8123"},
            {"password": "Wings stored/pass 7"},
            client,
            user="Wings8123",
        ),
        rebind={"username": "Wings8999"},
        peers=("wings_peer",),
        live=lambda peers: config(peers, peers["wings_peer"].url, peers["wings_peer"].password),
        unreachable=lambda peers, port: config(
            peers, f"http://127.0.0.1:{port}", "Wings unreach/pass 8"
        ),
        wrong_credentials=lambda peers: config(peers, peers["wings_peer"].url, WRONG_PASSWORD),
        copies=lambda peers: _documents(peers["wings_peer"]),
        receiver_deduplicates=False,
        one_means="one document: the retry finds the first by its reference",
    )


@entry("exact")
def _exact() -> Entry:
    """Secrets come from an Exact Online sign-in, not a form: a refresh token the peer
    issued stands for a past sign-in; every renewal rotates it. The client's
    administration is a division the peer's user may use."""
    client_settings = {"division": "202"}

    def exact(peers, url, **secrets):
        settings = peers["settings"]
        client_secret = settings.EXACT_CLIENT_SECRET or "exact-operator-app/secret"

        def apply():
            settings.EXACT_BASE_URL = url
            settings.EXACT_CLIENT_ID = settings.EXACT_CLIENT_ID or "app-id"
            settings.EXACT_CLIENT_SECRET = client_secret

        return Config(
            {"region": "be", "account": "Hélène Lambert (helene@lambert-boekhouding.be)"},
            secrets,
            client_settings,
            hidden=(client_secret,),
            apply=apply,
        )

    def live(peers):
        peer = peers["exact_peer"]
        return exact(peers, peer.url, refresh_token=peer.signed_in())

    def unreachable(peers, port):
        return exact(
            peers,
            f"http://127.0.0.1:{port}",
            access_token="gAAA.unreachable/access token",
            refresh_token="Rx.unreachable/refresh token",
            expires_at=time.time() + 3600,
        )

    def wrong_credentials(peers):
        """A refresh token Exact never issued, with no access token or one it refuses, and
        one already rotated away ("Old refresh token used.")."""
        peer = peers["exact_peer"]
        spent = peer.signed_in()
        peer.spent.add(spent)
        peer.refresh_tokens.discard(spent)
        unknown = {"refresh_token": "Rx.revoked/refresh token"}
        return [
            exact(peers, peer.url, **unknown),
            exact(
                peers,
                peer.url,
                access_token="gAAA.refused/access token",
                expires_at=time.time() + 3600,
                **unknown,
            ),
            exact(peers, peer.url, refresh_token=spent),
        ]

    return Entry(
        sample=Config(
            {"region": "be", "account": "Hélène Lambert (helene@lambert-boekhouding.be)"},
            {
                "access_token": "gAAA.stored-access/token 1",
                "refresh_token": "Rx.stored-refresh/token 2",
                "expires_at": 1_900_000_000.0,
            },
            client_settings,
        ),
        rebind={"region": "nl", "account": "someone@elsewhere.example"},
        peers=("exact_peer",),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: [
            Copy(subject, content)
            for subject, _type, files in peers["exact_peer"].held(202)
            for _name, content in files
        ],
        receiver_deduplicates=False,
        one_means="one document with one attachment: the retry finds it by its subject",
    )


def _bocount_client(address, user, password, number="BE0417497106", **client):
    """A client's web-service user, its password entered for the firm's ``address``."""
    return Config(
        {"base_url": address + "/"},
        {},
        {"username": user, "company_number": number, "entered_for": address, **client},
        {"password": password},
        user=user,
    )


@entry("bocount")
def _bocount() -> Entry:
    """The credentials are each client's (``connection_scope = "integration"``): the
    installation holds only the firm's web-service address, so nothing there to rebind;
    a client's password is bound to that address by its own form."""

    def live(peers):
        peer = peers["bocount_peer"]
        return _bocount_client(peer.base_url.rstrip("/"), "ws-dubois", peer.users["ws-dubois"][0])

    def unreachable(peers, port):
        address = f"http://127.0.0.1:{port}/webservice"
        return _bocount_client(address, "ws-dubois", "Bocount unreachable/pw 7")

    def wrong_credentials(peers):
        peer = peers["bocount_peer"]
        return _bocount_client(peer.base_url.rstrip("/"), "ws-dubois", WRONG_PASSWORD)

    return Entry(
        sample=_bocount_client(
            "https://bocount.lambert.example/webservice",
            "ws-peeters",
            "Bocount-stored-pass/3 k",
            "BE0403019261",
        ),
        peers=("bocount_peer",),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: [
            Copy((u.company, u.idempotency_key), u.content) for u in peers["bocount_peer"].uploads
        ],
        receiver_deduplicates=False,
        one_means="one document in the company: the retry finds the first by its key",
    )


@entry("lyanthe")
def _lyanthe() -> Entry:
    def lyanthe(peers, url, username, password):
        def apply():
            peers["settings"].LYANTHE_BASE_URL = url

        return Config(
            {"username": username},
            {"password": password},
            {"administration": "ADM-102"},
            user=username,
            apply=apply,
        )

    def live(peers):
        peer = peers["lyanthe_peer"]
        return lyanthe(peers, peer.base_url, peer.username, peer.password)

    def unreachable(peers, port):
        return lyanthe(peers, f"http://127.0.0.1:{port}/v1/", "lambert", "Lyanthe unreachable/7")

    def wrong_credentials(peers):
        peer = peers["lyanthe_peer"]
        return lyanthe(peers, peer.base_url, peer.username, WRONG_PASSWORD)

    return Entry(
        sample=Config(
            {"username": "lambert-api"},
            {"password": "Lyanthe-stored-pass/5 m"},
            {"administration": "ADM-101"},
            user="lambert-api",
        ),
        rebind={"username": "someone-else"},
        peers=("lyanthe_peer",),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: [
            Copy((u.administration, u.idempotency_key), u.content)
            for u in peers["lyanthe_peer"].uploads
        ],
        receiver_deduplicates=False,
        one_means="one document in the administration: the retry finds the first by its key",
    )


@entry("zenvoices")
def _zenvoices() -> Entry:
    """The access token is obtained by logging in and kept with the password; the wrong
    credentials are a refused password, alone or behind a token Zenvoices refuses."""

    def zenvoices(peers, url, password, username="api@lambert.be", **token):
        def apply():
            peers["settings"].ZENVOICES_BASE_URL = url

        return Config(
            {"username": username, "organisation": "lambert"},
            {"password": password, **token},
            {"company": "DUBOIS"},
            user=username,
            apply=apply,
        )

    def live(peers):
        peer = peers["zenvoices_peer"]
        return zenvoices(peers, peer.url, peer.password, peer.username)

    def unreachable(peers, port):
        return zenvoices(peers, f"http://127.0.0.1:{port}", "Zen unreachable/pw 8")

    def wrong_credentials(peers):
        peer = peers["zenvoices_peer"]
        return [
            zenvoices(peers, peer.url, WRONG_PASSWORD, peer.username),
            zenvoices(
                peers,
                peer.url,
                WRONG_PASSWORD,
                peer.username,
                access_token="eyJzen.refused/access token",
                expires_at=time.time() + 3600,
            ),
        ]

    return Entry(
        sample=Config(
            {"username": "api@lambert.be", "organisation": "lambert"},
            {"password": "Zen-stored-pass/6 n"},
            {"company": "PEETERS"},
            user="api@lambert.be",
        ),
        rebind={"username": "someone@elsewhere.example", "organisation": "elsewhere"},
        peers=("zenvoices_peer",),
        live=live,
        unreachable=unreachable,
        wrong_credentials=wrong_credentials,
        copies=lambda peers: [
            Copy((u.company, u.external_id), u.content) for u in peers["zenvoices_peer"].uploads
        ],
        receiver_deduplicates=False,
        one_means="one document in the company's inbox: the retry finds it by its externalId",
    )


# --- a destination in memory, for tests of the engine -----------------------------------


# Lazy as a translated string is, without putting a test's words in the catalogues.
_untranslated = lazy(str, str)


class MemoryConnector(Connector):
    """A destination in memory for tests of the engine, which a test registers with
    ``extensions.registry.registered`` (``memory_connector()`` makes a fresh subclass, so
    tests share nothing).

    It holds one file per idempotency key, as a de-duplicating receiver does, so a retry
    leaves one as the contract asks; ``received`` lists every send in order. ``refusal``,
    when set, is raised by ``check()`` and by every send once ``refuse_from`` files were
    received. ``on_send(export_file)``, when set, runs before a file is taken (a clock to
    advance, a worker to stop).
    """

    key = "memory-test"
    name = "Memory"
    description = _untranslated("Keeps what it is sent in memory, for the tests.")
    writes = _untranslated("Keeps every document in memory.")
    category = "storage"
    held: dict[str, ExportFile]
    received: list[ExportFile]
    refusal: Exception | None = None
    refuse_from = 0
    on_send: Callable[[ExportFile], None] | None = None

    @contextmanager
    def open(self):
        yield self

    def send(self, export_file: ExportFile) -> Receipt:
        cls = type(self)
        if cls.refusal is not None and len(cls.received) >= cls.refuse_from:
            raise cls.refusal
        if cls.on_send is not None:
            cls.on_send(export_file)
        cls.received.append(export_file)
        key = export_file.idempotency_key or f"unkeyed-{len(cls.received)}"
        cls.held[key] = export_file
        return Receipt(reference=f"memory:{key}", detail=f"{len(export_file.content)} bytes")

    def check(self) -> str:
        if type(self).refusal is not None:
            raise type(self).refusal
        return "Ready."


def memory_connector(key: str = MemoryConnector.key, **attributes) -> type[MemoryConnector]:
    """A fresh ``MemoryConnector`` subclass under ``key``, with its own held files."""
    return type(
        "Memory",
        (MemoryConnector,),
        {"key": key, "held": {}, "received": [], **attributes},
    )
