"""What the accounting packages' fakes (BoCount, Lyanthe, Zenvoices) share, on top of
``tests.peers.local``: routing by method and path pattern, a log of every request, error
answers raised as :class:`Refused`, errors queued by a test (``peer.fail``) and an upload
that is stored but whose answer is lost (``peer.lose_next_answer``)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from tests.peers.local import JsonHandler, LocalPeer


class Refused(Exception):
    """An error answer: its status, body (a dict goes as JSON) and headers."""

    def __init__(self, status: int, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self):
        """The body as a JSON object, or a 400 as a JSON API answers a body it cannot read."""
        if self.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise Refused(415, {"error": {"code": "unsupported_media_type"}})
        try:
            value = json.loads(self.body)
        except ValueError:
            raise Refused(400, {"error": {"code": "invalid_json"}}) from None
        if not isinstance(value, dict):
            raise Refused(400, {"error": {"code": "invalid_json"}})
        return value


class LostAnswer(Exception):
    """The request was carried out; the connection closes before the answer."""


class AccountingHandler(JsonHandler):
    """Dispatches to the peer's ``routes``: (method, regex of the path) → function(request,
    *groups) returning (status, body) or raising ``Refused`` / ``LostAnswer``."""

    def _handle(self):
        peer = self.server.peer
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Request(
            self.command,
            parts.path,
            {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        with peer.lock:
            peer.requests.append(request)
        try:
            for (method, pattern), route in peer.routes().items():
                match = re.fullmatch(pattern, parts.path)
                if match and method == self.command:
                    peer.injected(request)
                    status, answer = route(request, *match.groups())
                    return self._answer(status, answer)
            raise Refused(404, {"error": {"code": "not_found", "message": "No such resource"}})
        except Refused as refused:
            return self._answer(refused.status, refused.body, refused.headers)
        except LostAnswer:
            self.close_connection = True
            return None

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class AccountingPeer(LocalPeer):
    """State every fake keeps; a subclass sets its own, defines ``routes()`` and
    ``error(status, code, message)``, then calls ``serve(AccountingHandler)``."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.failures: list[tuple[int, int | None]] = []
        self.lose_next_answer = False

    def routes(self) -> dict:
        raise NotImplementedError

    def error(self, status: int, code: str, message: str) -> Refused:
        raise NotImplementedError

    def fail(self, status: int, retry_after: int | None = None) -> None:
        """The next request answers ``status`` (429, 5xx), with ``Retry-After`` if given."""
        with self.lock:
            self.failures.append((status, retry_after))

    def injected(self, request: Request) -> None:
        with self.lock:
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            status, retry_after = failure
            refused = self.error(status, "busy", "Too many requests, try again later")
            if retry_after is not None:
                refused.headers["Retry-After"] = str(retry_after)
            raise refused

    def answer_lost(self) -> None:
        """Called once an upload is stored: its answer never arrives if a test asked so."""
        with self.lock:
            lose, self.lose_next_answer = self.lose_next_answer, False
        if lose:
            raise LostAnswer

    def calls(self, method: str, pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]
