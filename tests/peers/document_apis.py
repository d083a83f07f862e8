"""Strict local servers for the packages without published API documentation: Onea,
PingWin, Count-e and Wings Online, each speaking exactly the contract written down in
``docs/connectors/<key>.md``.

What they share (:class:`DocumentApiPeer`): JSON error bodies ``{"error": {"code",
"message"}}``; an upload is refused without ``Content-Type: application/json``, without
``Idempotency-Key``, with a missing or unknown field, a type other than ``purchase`` or
``sales``, content that is not base64 or not XML; an upload with a key already taken
answers the first document again (200); ``GET …/documents?reference=`` finds documents by
our reference. ``peer.fail(status, code, message, retry_after=)`` queues an error answer
for the next upload; ``peer.lose_next_answer`` stores the next upload and closes the
connection without answering. Each peer refuses wrong credentials and unknown identifiers
with its contract's codes. ``peer.documents`` is what the package holds.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from defusedxml import ElementTree

from tests.peers.local import JsonHandler, LocalPeer

TYPES = frozenset({"purchase", "sales"})


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, headers=None):
        super().__init__(status)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class Lost(Exception):
    """Carried out; the answer never arrives."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Document:
    id: str
    fields: dict  # the upload's fields but its content
    content: bytes
    idempotency_key: str
    where: str = ""  # the file or dossier it was sent to, when the path names one
    answers: list = field(default_factory=list)


class _Handler(JsonHandler):
    def _handle(self):
        peer = self.server.peer
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Request(
            self.command,
            parts.path,
            {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            {name.lower(): value for name, value in self.headers.items()},
            body,
        )
        with peer.lock:
            peer.requests.append(request)
        try:
            status, answer = peer.dispatch(request)
        except Refused as refused:
            return self._answer(refused.status, refused.body(), refused.headers)
        except Lost:
            self.close_connection = True
            return None
        return self._answer(status, answer)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class DocumentApiPeer(LocalPeer):
    """A package's API: routes under ``prefix``, authentication, documents."""

    prefix = ""
    fields: frozenset[str] = frozenset()  # exactly these in an upload

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.documents: list[Document] = []
        self.failures: list[Refused] = []
        self.lose_next_answer = False
        self._ids = itertools.count(1001)
        self.serve(_Handler)

    # --- what tests program ---

    def fail(self, status: int, code: str = "", message: str = "", retry_after=None):
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self.lock:
            self.failures.append(Refused(status, code, message, headers))

    def uploads(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]

    # --- serving ---

    def routes(self) -> list[tuple[str, str, object]]:
        """(method, path pattern after the prefix, function(request, *groups))."""
        raise NotImplementedError

    def authenticate(self, request: Request) -> None:
        raise NotImplementedError

    def dispatch(self, request: Request):
        if not request.path.startswith(self.prefix + "/"):
            raise Refused(404, "not_found", "No such endpoint.")
        path = request.path[len(self.prefix) :]
        for method, pattern, function in self.routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                self.authenticate(request)
                return function(request, *(unquote(group) for group in match.groups()))
        raise Refused(404, "not_found", "No such endpoint.")

    # --- what every contract shares ---

    def find(self, request: Request, where: str = ""):
        reference = request.query.get("reference")
        if not reference:
            raise Refused(400, "missing_parameter", "The reference parameter is required.")
        with self.lock:
            found = [
                {"id": d.id, "reference": d.fields.get("reference")}
                for d in self.documents
                if d.fields.get("reference") == reference and d.where == where
            ]
        return 200, {"documents": found}

    def upload(self, request: Request, where: str = "", check=lambda fields: None):
        """The shared checks of an upload, then ``check(fields)`` (the package's own), then
        the document stored, once per idempotency key."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise Refused(415, "unsupported_media_type", "Send JSON.")
        key = request.headers.get("idempotency-key", "")
        if not key:
            raise Refused(
                400, "missing_idempotency_key", "The Idempotency-Key header is required."
            )
        try:
            fields = json.loads(request.body)
        except ValueError:
            raise Refused(400, "invalid_json", "The body is not JSON.") from None
        if not isinstance(fields, dict):
            raise Refused(400, "invalid_json", "The body is not a JSON object.")
        missing = sorted(self.fields - set(fields))
        unknown = sorted(set(fields) - self.fields)
        if missing or unknown:
            raise Refused(
                400, "invalid_request", f"Missing fields {missing}, unknown fields {unknown}."
            )
        if not all(isinstance(value, str) for value in fields.values()):
            raise Refused(400, "invalid_request", "Every field is a string.")
        kind = fields.get("type", fields.get("direction"))
        if kind not in TYPES:
            raise Refused(422, "invalid_type", f"Unknown document type {kind!r}.")
        try:
            content = base64.b64decode(fields.pop("content"), validate=True)
        except (binascii.Error, ValueError):
            raise Refused(400, "invalid_content", "The content is not base64.") from None
        try:
            ElementTree.fromstring(content)
        except ElementTree.ParseError:
            raise Refused(422, "invalid_document", "The document is not a UBL invoice.") from None
        check(fields)
        with self.lock:
            failure = self.failures.pop(0) if self.failures else None
            if failure is not None:
                raise failure
            for document in self.documents:
                if document.idempotency_key == key and document.where == where:
                    return 200, {"id": document.id}
            document = Document(f"doc-{next(self._ids)}", fields, content, key, where)
            self.documents.append(document)
            lose, self.lose_next_answer = self.lose_next_answer, False
        if lose:
            raise Lost()
        return 201, {"id": document.id}


def basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _space, value = request.headers.get("authorization", "").partition(" ")
    if scheme != "Basic":
        return None
    try:
        user, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        return None
    return (user, password) if colon else None


# --- Onea -----------------------------------------------------------------------------


class OneaPeer(DocumentApiPeer):
    """``X-API-Key``; ``companies`` None: the key reaches every dossier."""

    prefix = "/api/v1"
    fields = frozenset({"reference", "direction", "companyNumber", "fileName", "content"})

    def __init__(self):
        self.api_key = "onea-key-3f9a+/=Z"
        self.name = "Fiduciaire Lambert"
        self.companies: set[str] | None = None
        super().__init__()

    def routes(self):
        return [
            ("GET", r"/me", lambda request: (200, {"name": self.name})),
            ("GET", r"/documents", self.find),
            ("POST", r"/documents", lambda request: self.upload(request, check=self.company)),
        ]

    def authenticate(self, request):
        key = request.headers.get("x-api-key")
        if not key:
            raise Refused(401, "missing_api_key", "The X-API-Key header is required.")
        if key != self.api_key:
            raise Refused(401, "invalid_api_key", f"The API key {key} is not valid.")

    def company(self, fields):
        number = fields["companyNumber"]
        if not re.fullmatch(r"[0-9]{10}", number):
            raise Refused(400, "invalid_request", "companyNumber is an enterprise number.")
        if self.companies is not None and number not in self.companies:
            raise Refused(
                422, "unknown_company", f"No dossier with company number {number} for this key."
            )


# --- PingWin --------------------------------------------------------------------------


class PingWinPeer(DocumentApiPeer):
    """``X-Api-Key`` and ``X-Clid``; the files (dossiers) by their ID."""

    prefix = "/v1"
    fields = frozenset({"type", "fileName", "content"})

    def __init__(self):
        self.api_key = "pw-key-7c1e+/=Q"
        self.clid = "CL-4711"
        self.files = {"2025": "Bakkerij Peeters BV"}
        super().__init__()

    def routes(self):
        return [
            ("GET", r"/files/([^/]+)", self.file),
            ("POST", r"/files/([^/]+)/documents", self.file_upload),
        ]

    def authenticate(self, request):
        key, clid = request.headers.get("x-api-key"), request.headers.get("x-clid")
        if not key or not clid:
            raise Refused(401, "missing_credentials", "X-Api-Key and X-Clid are required.")
        if key != self.api_key:
            raise Refused(401, "invalid_api_key", f"The API key {key} is not valid.")
        if clid != self.clid:
            raise Refused(401, "unknown_clid", f"Unknown CLID {clid}.")

    def _known(self, file_id):
        if file_id not in self.files:
            raise Refused(404, "unknown_file", f"No file {file_id} for this CLID.")

    def file(self, request, file_id):
        self._known(file_id)
        return 200, {"id": file_id, "name": self.files[file_id]}

    def file_upload(self, request, file_id):
        self._known(file_id)
        return self.upload(request, where=file_id)


# --- Count-e --------------------------------------------------------------------------


class CountePeer(DocumentApiPeer):
    """HTTP Basic and ``X-Database``, under ``/api`` (the firm's API URL is ``url + /api``)."""

    prefix = "/api"
    fields = frozenset({"customerNumber", "type", "reference", "fileName", "content"})

    def __init__(self):
        self.username = "lambert.api"
        self.password = "Count-e pass/wörd 1"
        self.database = "LAMBERT"
        self.customers = {"40012": "Menuiserie Dubois SRL", "40013": "Bakkerij Peeters BV"}
        super().__init__()

    @property
    def api_url(self) -> str:
        return self.url + self.prefix

    def routes(self):
        return [
            ("GET", r"/me", lambda request: (200, {"user": self.username})),
            ("GET", r"/customers/([^/]+)", self.customer),
            ("GET", r"/documents", self.find),
            ("POST", r"/documents", lambda request: self.upload(request, check=self.known)),
        ]

    def authenticate(self, request):
        if basic_credentials(request) != (self.username, self.password):
            raise Refused(401, "invalid_credentials", "User name or password is not valid.")
        database = request.headers.get("x-database")
        if not database:
            raise Refused(400, "missing_database", "The X-Database header is required.")
        if database != self.database:
            raise Refused(403, "unknown_database", f"Unknown database {database}.")

    def _customer(self, number):
        if number not in self.customers:
            raise Refused(404, "unknown_customer", f"Unknown customer number {number}.")

    def customer(self, request, number):
        self._customer(number)
        return 200, {"number": number, "name": self.customers[number]}

    def known(self, fields):
        if fields["customerNumber"] not in self.customers:
            raise Refused(
                422, "unknown_customer", f"Unknown customer number {fields['customerNumber']}."
            )


# --- Wings Online ---------------------------------------------------------------------


class WingsPeer(DocumentApiPeer):
    """HTTP Basic; each dossier (internal number) with its journals."""

    prefix = "/api/v1"
    fields = frozenset({"journal", "type", "reference", "fileName", "content"})

    def __init__(self):
        self.username = "Wings8123"
        self.password = "Wings pass/wörd 2"
        self.dossiers = {"17": {"AK": "purchase", "VK": "sales", "FIN": "financial"}}
        super().__init__()

    def routes(self):
        return [
            ("GET", r"/me", lambda request: (200, {"user": self.username})),
            ("GET", r"/dossiers/([^/]+)/journals", self.journals),
            ("GET", r"/dossiers/([^/]+)/documents", self.dossier_find),
            ("POST", r"/dossiers/([^/]+)/documents", self.dossier_upload),
        ]

    def authenticate(self, request):
        if basic_credentials(request) != (self.username, self.password):
            raise Refused(401, "invalid_credentials", "User name or password is not valid.")

    def _dossier(self, number) -> dict:
        if number not in self.dossiers:
            raise Refused(404, "unknown_dossier", f"Unknown internal number {number}.")
        return self.dossiers[number]

    def journals(self, request, number):
        journals = self._dossier(number)
        return 200, {"journals": [{"code": c, "type": t} for c, t in journals.items()]}

    def dossier_find(self, request, number):
        self._dossier(number)
        return self.find(request, where=number)

    def dossier_upload(self, request, number):
        journals = self._dossier(number)

        def journal(fields):
            if journals.get(fields["journal"]) != fields["type"]:
                raise Refused(
                    422,
                    "unknown_journal",
                    f"No {fields['type']} journal {fields['journal']} in dossier {number}.",
                )

        return self.upload(request, where=number, check=journal)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def onea_peer(settings):
    peer = OneaPeer().start()
    settings.ONEA_BASE_URL = peer.url
    yield peer
    peer.stop()


@pytest.fixture
def pingwin_peer(settings):
    peer = PingWinPeer().start()
    settings.PINGWIN_BASE_URL = peer.url
    yield peer
    peer.stop()


@pytest.fixture
def counte_peer():
    peer = CountePeer().start()
    yield peer
    peer.stop()


@pytest.fixture
def wings_peer(settings):
    peer = WingsPeer().start()
    settings.WINGS_BASE_URL = peer.url
    yield peer
    peer.stop()
