"""A strict local BoCount web service, as written down in ``docs/connectors/bocount.md``.

``bocount_peer`` serves the web service under ``/webservice/`` on 127.0.0.1:

* ``GET status``: no authentication; the service's name and version.
* ``GET companies/{number}``, ``GET companies/{number}/documents?idempotencyKey=``,
  ``POST companies/{number}/documents?type=purchase|sales``: HTTP Basic with a web-service
  user of ``peer.users`` (401 otherwise), who reaches only its own companies (404
  ``company_not_found`` for any other number). An upload needs ``Content-Type:
  application/xml``, ``X-File-Name`` and ``Idempotency-Key`` and a body that is XML
  (400 ``invalid_request`` / ``invalid_document`` otherwise); ``peer.reject_next`` refuses
  the next upload with that reason (422). Uploads are not de-duplicated by the service:
  only the connector's look-up keeps a retry from adding a second document.

Errors are ``{"error": {"code", "message"}}``. ``peer.fail(status, retry_after)`` and
``peer.lose_next_answer`` come from ``tests.peers.accounting``.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
from defusedxml import ElementTree

from tests.peers.accounting import AccountingHandler, AccountingPeer, Refused

ROOT = "/webservice"
COMPANY = ROOT + r"/companies/([^/]+)"


@dataclass
class Upload:
    id: str
    company: str
    type: str
    filename: str
    idempotency_key: str
    content: bytes


class BocountPeer(AccountingPeer):
    def __init__(self):
        super().__init__()
        self.companies = {
            "BE0403019261": "Bakkerij Peeters BV",
            "BE0417497106": "Menuiserie Dubois SRL",
        }
        # user name → (password, company numbers it reaches)
        self.users = {
            "ws-peeters": ("Peeters ws/pass 1", {"BE0403019261"}),
            "ws-dubois": ("Dubois ws/pass 2", {"BE0417497106"}),
        }
        self.uploads: list[Upload] = []
        self.reject_next = ""
        self.serve(AccountingHandler)

    @property
    def base_url(self) -> str:
        return self.url + ROOT + "/"

    def add_client(self, number: str, name: str, user: str, password: str) -> None:
        self.companies[number] = name
        self.users[user] = (password, {number})

    def error(self, status: int, code: str, message: str) -> Refused:
        return Refused(status, {"error": {"code": code, "message": message}})

    def routes(self) -> dict:
        return {
            ("GET", ROOT + "/status"): self.status,
            ("GET", COMPANY): self.company,
            ("GET", COMPANY + "/documents"): self.documents,
            ("POST", COMPANY + "/documents"): self.upload,
        }

    # --- checks ---

    def _user(self, request) -> str:
        scheme, _space, value = request.headers.get("authorization", "").partition(" ")
        try:
            user, _colon, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            user, password = "", None
        known = self.users.get(user)
        if scheme != "Basic" or known is None or known[0] != password:
            raise self.error(401, "unauthorized", "Invalid web-service user name or password")
        return user

    def _company(self, request, number: str) -> str:
        user = self._user(request)
        number = unquote(number)
        if number not in self.companies or number not in self.users[user][1]:
            raise self.error(404, "company_not_found", f"Company {number} not found")
        return number

    # --- routes ---

    def status(self, request):
        return 200, {"service": "BoCount web service", "version": "3.1"}

    def company(self, request, number):
        number = self._company(request, number)
        return 200, {"companyNumber": number, "name": self.companies[number]}

    def documents(self, request, number):
        number = self._company(request, number)
        key = request.query.get("idempotencyKey")
        if not key:
            raise self.error(400, "invalid_request", "idempotencyKey is required")
        with self.lock:
            found = [u for u in self.uploads if u.company == number and u.idempotency_key == key]
        return 200, {
            "documents": [{"id": u.id, "idempotencyKey": u.idempotency_key} for u in found]
        }

    def upload(self, request, number):
        number = self._company(request, number)
        kind = request.query.get("type")
        if kind not in ("purchase", "sales"):
            raise self.error(400, "invalid_request", "type must be purchase or sales")
        if request.headers.get("content-type", "").split(";")[0] != "application/xml":
            raise self.error(415, "invalid_request", "Content-Type must be application/xml")
        filename = unquote(request.headers.get("x-file-name", ""))
        key = request.headers.get("idempotency-key", "")
        if not filename or not key:
            raise self.error(400, "invalid_request", "X-File-Name and Idempotency-Key needed")
        try:
            ElementTree.fromstring(request.body)
        except ElementTree.ParseError:
            raise self.error(400, "invalid_document", "The document is not XML") from None
        with self.lock:
            reason, self.reject_next = self.reject_next, ""
        if reason:
            raise self.error(422, "invalid_document", reason)
        upload = Upload("doc-" + secrets.token_hex(6), number, kind, filename, key, request.body)
        with self.lock:
            self.uploads.append(upload)
        self.answer_lost()
        return 201, {"id": upload.id}


@pytest.fixture
def bocount_peer():
    peer = BocountPeer().start()
    yield peer
    peer.stop()
