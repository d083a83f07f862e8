"""A real HTTP server for tests: records every request, answers what the test programs.

``http_peer`` runs ``ThreadingHTTPServer`` on 127.0.0.1 (HTTP/1.1, keep-alive) in a
thread. ``peer.respond(status, headers, body)`` queues answers, used in order; when the
queue is empty ``peer.default`` answers. An answer's body may be a function of the
request, for a receiver that echoes what it got. ``peer.connections`` counts accepted TCP
connections. Strict mode behaves like a real receiver: 400 when an upload has no
Content-Type, 401 when ``Authorization`` is not ``peer.expected_authorization``.
``peer.methods``, when set, are the only methods the receiver implements: any other gets
405 with an ``Allow`` header, as from a framework that routes POST only.

``silent_url`` is an address that accepts connections and never answers.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    connection: tuple  # the client's (host, port): one per TCP connection


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Callable[[Recorded], bytes] = b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be seen
    timeout = 10  # an idle keep-alive connection does not hold its thread forever
    disable_nagle_algorithm = True  # else each answer waits for the client's delayed ACK
    server: _Server

    def log_message(self, format, *args):
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if not size:
                    return b"".join(chunks)
                chunks.append(chunk)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self):
        peer = self.server.peer
        body = self._body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        recorded = Recorded(self.command, self.path, headers, body, self.client_address)
        with peer.lock:
            peer.requests.append(recorded)
        answer = peer.next_answer(self.command, headers)
        content = answer.body(recorded) if callable(answer.body) else answer.body
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_OPTIONS = do_HEAD = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, peer):
        self.peer = peer
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self):
        accepted = super().get_request()
        with self.peer.lock:
            self.peer.connections += 1
        return accepted


class HttpPeer:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.answers: list[Answer] = []
        self.default = Answer(200, {}, b"")
        self.connections = 0
        self.strict = False
        self.expected_authorization: str | None = None
        self.methods: set[str] | None = None
        self.server = _Server(self)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def respond(self, status=200, headers=None, body: bytes | Callable = b""):
        with self.lock:
            self.answers.append(Answer(status, dict(headers or {}), body))

    def next_answer(self, method: str, headers: dict[str, str]) -> Answer:
        if self.methods is not None and method not in self.methods:
            allowed = ", ".join(sorted(self.methods))
            return Answer(405, {"Allow": allowed, "Content-Type": "text/plain"}, b"Not allowed")
        if self.strict:
            if method in ("POST", "PUT") and not headers.get("content-type"):
                return Answer(400, {"Content-Type": "text/plain"}, b"Content-Type is required")
            if (
                self.expected_authorization is not None
                and headers.get("authorization") != self.expected_authorization
            ):
                return Answer(
                    401,
                    {"WWW-Authenticate": 'Basic realm="in"', "Content-Type": "text/plain"},
                    b"Unauthorized",
                )
        with self.lock:
            return self.answers.pop(0) if self.answers else self.default

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_peer():
    peer = HttpPeer().start()
    yield peer
    peer.stop()


@pytest.fixture
def silent_url():
    """Accepts TCP connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        host, port = silent.getsockname()
        yield f"http://{host}:{port}"
