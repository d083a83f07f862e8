"""A strict local Lyanthe, as the contract in ``docs/connectors/lyanthe.md`` assumes it.

``lyanthe_peer`` (which points ``LYANTHE_BASE_URL`` at itself) serves under ``/v1/``:

* ``POST auth/login``: JSON ``{"username", "password"}`` only; a user of ``peer.users``
  gets ``{"accessToken", "expiresIn"}``, anyone else 401 ``invalid_credentials``.
* ``GET administrations``, ``GET administrations/{id}/documents?idempotencyKey=``,
  ``POST administrations/{id}/documents``: ``Authorization: Bearer <live token>`` (401
  ``invalid_token`` otherwise; ``peer.expire_tokens()`` ends them all); an administration
  the user does not reach is 404 ``administration_not_found``. An upload is JSON with
  exactly ``type`` (purchase or sales), ``fileName``, ``contentType`` and ``content``
  (base64) and an ``Idempotency-Key`` header, else 400 ``invalid_request``;
  ``peer.reject_next`` refuses the next one (422 ``invalid_document``). Uploads are not
  de-duplicated by the service: only the connector's look-up keeps a retry from adding a
  second document.

Errors are ``{"error": {"code", "message"}}``. ``peer.fail(status, retry_after)`` and
``peer.lose_next_answer`` come from ``tests.peers.accounting``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from urllib.parse import unquote

import pytest

from tests.peers.accounting import AccountingHandler, AccountingPeer, Refused

ROOT = "/v1"
ADMINISTRATION = ROOT + r"/administrations/([^/]+)"
UPLOAD_FIELDS = frozenset({"type", "fileName", "contentType", "content"})


@dataclass
class Upload:
    id: str
    administration: str
    type: str
    filename: str
    content_type: str
    idempotency_key: str
    content: bytes


class LyanthePeer(AccountingPeer):
    def __init__(self):
        super().__init__()
        self.username, self.password = "lambert-api", "Lyanthe pass/wörd 1"
        self.users = {self.username: self.password}
        self.administrations = {
            "ADM-101": {"name": "Bakkerij Peeters BV", "vatNumber": ""},
            "ADM-102": {"name": "Menuiserie Dubois SRL", "vatNumber": ""},
        }
        self.tokens: set[str] = set()
        self.logins = 0
        self.uploads: list[Upload] = []
        self.reject_next = ""
        self.serve(AccountingHandler)

    @property
    def base_url(self) -> str:
        return self.url + ROOT + "/"

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def error(self, status: int, code: str, message: str) -> Refused:
        return Refused(status, {"error": {"code": code, "message": message}})

    def routes(self) -> dict:
        return {
            ("POST", ROOT + "/auth/login"): self.login,
            ("GET", ROOT + "/administrations"): self.list,
            ("GET", ADMINISTRATION + "/documents"): self.documents,
            ("POST", ADMINISTRATION + "/documents"): self.upload,
        }

    def _bearer(self, request) -> None:
        header = request.headers.get("authorization", "")
        with self.lock:
            live = header.startswith("Bearer ") and header[7:] in self.tokens
        if not live:
            raise self.error(401, "invalid_token", "The access token is missing or expired")

    def _administration(self, request, identifier: str) -> str:
        self._bearer(request)
        identifier = unquote(identifier)
        if identifier not in self.administrations:
            raise self.error(
                404, "administration_not_found", f"Administration {identifier} not found"
            )
        return identifier

    def login(self, request):
        body = request.json()
        if set(body) != {"username", "password"}:
            raise self.error(400, "invalid_request", "username and password expected")
        if self.users.get(body["username"]) != body["password"]:
            raise self.error(401, "invalid_credentials", "Unknown user name or wrong password")
        token = "lyt_" + secrets.token_urlsafe(16)
        with self.lock:
            self.tokens.add(token)
            self.logins += 1
        return 200, {"accessToken": token, "expiresIn": 3600}

    def list(self, request):
        self._bearer(request)
        return 200, {
            "administrations": [
                {"id": identifier, **values} for identifier, values in self.administrations.items()
            ]
        }

    def documents(self, request, identifier):
        identifier = self._administration(request, identifier)
        key = request.query.get("idempotencyKey")
        if not key:
            raise self.error(400, "invalid_request", "idempotencyKey is required")
        with self.lock:
            found = [
                u
                for u in self.uploads
                if u.administration == identifier and u.idempotency_key == key
            ]
        return 200, {"documents": [{"id": u.id, "idempotencyKey": key} for u in found]}

    def upload(self, request, identifier):
        identifier = self._administration(request, identifier)
        body = request.json()
        key = request.headers.get("idempotency-key", "")
        if set(body) != UPLOAD_FIELDS or not key:
            raise self.error(400, "invalid_request", f"Expected {sorted(UPLOAD_FIELDS)}")
        if body["type"] not in ("purchase", "sales") or not body["fileName"]:
            raise self.error(400, "invalid_request", "type must be purchase or sales")
        try:
            content = base64.b64decode(body["content"], validate=True)
        except (binascii.Error, TypeError):
            raise self.error(400, "invalid_request", "content must be base64") from None
        with self.lock:
            reason, self.reject_next = self.reject_next, ""
        if reason:
            raise self.error(422, "invalid_document", reason)
        upload = Upload(
            "LY-" + secrets.token_hex(5),
            identifier,
            body["type"],
            body["fileName"],
            body["contentType"],
            key,
            content,
        )
        with self.lock:
            self.uploads.append(upload)
        self.answer_lost()
        return 201, {"id": upload.id}


@pytest.fixture
def lyanthe_peer(settings):
    peer = LyanthePeer().start()
    settings.LYANTHE_BASE_URL = peer.base_url
    yield peer
    peer.stop()
