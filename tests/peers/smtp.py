"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, storing what it receives.

``smtp_peer`` is a plain recording server. ``start_smtp`` starts more, e.g. one whose
handler refuses an address (``Recorder(refuse={"x@y.be": "550 5.1.1 No such user"})``),
one that defers it (``"451 4.3.0 Try again later"``), or one that requires a login
(``start_smtp(accounts={"user": "secret"})``). Servers stop when the test ends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.peers import free_port

REFUSED = "550 5.1.1 No such user here"
DEFERRED = "451 4.3.0 Mailbox busy, try again later"


@dataclass
class Received:
    peer: tuple
    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # the raw message as sent


@dataclass
class Recorder:
    """aiosmtpd handler: stores envelopes, counts greetings, refuses chosen recipients."""

    refuse: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    greetings: list[tuple] = field(default_factory=list)  # one peer per EHLO/HELO
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def connections(self) -> int:
        """SMTP sessions that greeted the server (distinct client sockets)."""
        with self.lock:
            return len(set(self.greetings))

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            self.greetings.append(session.peer)
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        with self.lock:
            self.greetings.append(session.peer)
        return f"250 {server.hostname}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(
                Received(
                    peer=session.peer,
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=envelope.original_content or envelope.content,
                )
            )
        return "250 Message accepted for delivery"


@dataclass
class SmtpPeer:
    host: str
    port: int
    handler: Recorder
    controller: Controller

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages


def _authenticator(accounts: dict[str, str]):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            password = auth_data.password.decode()
            if accounts.get(login) == password:
                return AuthResult(success=True, auth_data=auth_data)
        # handled=False: the server answers 535 itself (True would leave the client waiting).
        return AuthResult(success=False, handled=False)

    return authenticate


@pytest.fixture
def start_smtp():
    """Factory: ``start_smtp(handler=None, accounts=None) -> SmtpPeer``."""
    controllers = []

    def start(handler: Recorder | None = None, *, accounts: dict[str, str] | None = None):
        handler = handler or Recorder()
        options = {}
        if accounts is not None:
            options = {
                "authenticator": _authenticator(accounts),
                "auth_required": True,
                "auth_require_tls": False,
            }
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return SmtpPeer("127.0.0.1", port, handler, controller)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_peer(start_smtp):
    return start_smtp()
