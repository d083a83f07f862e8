"""A strict local Yuki for tests: its SOAP 1.1 web services on 127.0.0.1.

``yuki_peer`` answers ``POST /ws/<Service>.asmx`` (the tests point ``YUKI_BASE_URL`` at
``<peer>/ws/``), keyed on ``SOAPAction``, as ASMX does:

* refused, as ASMX refuses them: a ``Content-Type`` other than ``text/xml`` (HTTP 415), a
  missing or unknown ``SOAPAction`` or one that does not name the body's operation, a body
  that is not a SOAP envelope or an operation outside ``http://www.theyukicompany.com/``
  (HTTP 500 with a ``soap:Client`` fault), a session parameter spelt as another service
  spells it (``sessionID`` on Archive and AccountingInfo, ``sessionId`` on Sales and
  Purchase: the parameter is simply missing for ASMX, so the session is invalid);
* ``Authenticate(accessKey)``: a session GUID for a known key, else the fault
  "Authentication failed.";
* ``Administrations(sessionID)`` on AccountingInfo: the domain's administrations;
* ``SearchDocuments`` and ``UploadDocument`` on Archive: ``data`` must be base64, the
  folder a number and the administration one of the domain's;
* every call counts against ``daily_limit``; beyond it the fault Yuki's clients quote,
  "Daily limit exceeded".

``expire_sessions()`` ends every session (the fault "Session is invalid or expired.");
``lose_next_answer`` makes the next upload store its document and close the connection
without answering.
"""

from __future__ import annotations

import base64
import binascii
import threading
import uuid
from dataclasses import dataclass

import pytest
from lxml import etree

from tests.peers.local import JsonHandler, LocalPeer

NS = "http://www.theyukicompany.com/"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SESSION_NAMES = {"Sales": "sessionId", "Purchase": "sessionId"}
OPERATIONS = {
    "Archive": {"Authenticate", "SearchDocuments", "UploadDocument"},
    "AccountingInfo": {"Authenticate", "Administrations"},
    "Accounting": {"Authenticate"},
    "Sales": {"Authenticate"},
    "Purchase": {"Authenticate"},
    "Contact": {"Authenticate"},
}
SEARCH_FIELDS = {
    "searchText",
    "searchOption",
    "folderID",
    "startRecord",
    "numberOfRecords",
    "sortOrder",
    "startDate",
    "endDate",
}
UPLOAD_FIELDS = {"fileName", "data", "folder", "administrationID"}


@dataclass
class YukiDocument:
    id: str
    administration: str
    folder: int
    file_name: str
    content: bytes


class Fault(Exception):
    def __init__(self, reason: str, detail: str = "", code: str = "soap:Client"):
        super().__init__(reason)
        self.reason, self.detail, self.code = reason, detail, code


def fault_body(fault: Fault) -> bytes:
    detail = f"<detail>{fault.detail}</detail>" if fault.detail else "<detail />"
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body><soap:Fault>'
        f"<faultcode>{fault.code}</faultcode><faultstring>{fault.reason}</faultstring>"
        f"{detail}</soap:Fault></soap:Body></soap:Envelope>"
    ).encode()


def answer_body(operation: str, result: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body>'
        f'<{operation}Response xmlns="{NS}"><{operation}Result>{result}</{operation}Result>'
        f"</{operation}Response></soap:Body></soap:Envelope>"
    ).encode()


class _Handler(JsonHandler):
    def do_POST(self):
        peer = self.server.peer
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        service = self.path.removeprefix("/ws/").removesuffix(".asmx")
        with peer.lock:
            peer.requests.append((service, dict(self.headers), body))
        if not self.path.startswith("/ws/") or service not in OPERATIONS:
            return self._answer(404, "The resource cannot be found.")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "text/xml":
            return self._answer(415, "Unsupported Media Type")
        with peer.lock:
            status, peer.fail_next_with = peer.fail_next_with, 0
        if status:  # a failure in front of the service: no SOAP answer at all
            page = "<html><body><h1>Service Unavailable</h1></body></html>"
            return self._answer(status, page, content_type="text/html")
        try:
            operation, parameters = self._operation(service, body)
            with peer.lock:
                peer.calls += 1
                if peer.calls > peer.daily_limit:
                    raise Fault(
                        "Daily limit exceeded",
                        "Every domain has 1000 free webservice calls a day.",
                    )
            result = getattr(self, operation.lower())(service, parameters)
        except Fault as fault:
            return self._answer(500, fault_body(fault), content_type=CONTENT_TYPE)
        if result is None:
            self.close_connection = True  # stored; the answer never arrives
            return None
        with peer.lock:
            peer.operations.append((service, operation))
        return self._answer(200, answer_body(operation, result), content_type=CONTENT_TYPE)

    def do_GET(self):
        return self._answer(405, "Method Not Allowed")

    def _operation(self, service: str, body: bytes) -> tuple[str, dict[str, str]]:
        action = self.headers.get("SOAPAction")
        if action is None:
            raise Fault("Unable to handle request without a valid action parameter.")
        action = action.strip('"')
        if not action.startswith(NS) or action[len(NS) :] not in OPERATIONS[service]:
            raise Fault(f"Server did not recognize the value of HTTP Header SOAPAction: {action}.")
        try:
            root = etree.fromstring(body, etree.XMLParser(resolve_entities=False))
        except etree.XMLSyntaxError:
            raise Fault("Server was unable to read request.") from None
        if root.tag != f"{{{SOAP}}}Envelope" or root.find(f"{{{SOAP}}}Body") is None:
            raise Fault("Server was unable to read request: not a SOAP envelope.")
        calls = list(root.find(f"{{{SOAP}}}Body"))
        operation = action[len(NS) :]
        if len(calls) != 1 or calls[0].tag != f"{{{NS}}}{operation}":
            raise Fault(
                "Server was unable to read request: the body's operation is not "
                f"{{{NS}}}{operation}."
            )
        parameters = {}
        for child in calls[0]:
            if not isinstance(child.tag, str) or not child.tag.startswith(f"{{{NS}}}"):
                continue  # ASMX ignores what is not in its namespace: the value is missing
            parameters[etree.QName(child).localname] = child.text or ""
        return operation, parameters

    # --- operations ---

    def _session(self, service: str, parameters: dict[str, str]) -> None:
        name = SESSION_NAMES.get(service, "sessionID")
        with self.server.peer.lock:
            known = parameters.get(name) in self.server.peer.sessions
        if not known:
            raise Fault("Session is invalid or expired.")

    def authenticate(self, service, parameters):
        peer = self.server.peer
        if parameters.get("accessKey") not in peer.access_keys:
            raise Fault("Authentication failed.")
        session = str(uuid.uuid4())
        with peer.lock:
            peer.sessions.add(session)
            peer.authentications += 1
        return session

    def administrations(self, service, parameters):
        self._session(service, parameters)
        items = "".join(
            f'<Administration ID="{admin_id}"><Name>{name}</Name><AddressLine /><Postcode />'
            f"<City /><Country>BE</Country><CoCNumber /><VATNumber>{vat}</VATNumber>"
            f"<StartDate /><DomainID>{self.server.peer.domain_id}</DomainID>"
            "<Active>true</Active></Administration>"
            for admin_id, (name, vat) in self.server.peer.administrations.items()
        )
        return f"<Administrations>{items}</Administrations>"

    def searchdocuments(self, service, parameters):
        self._session(service, parameters)
        peer = self.server.peer
        if set(parameters) - {"sessionID"} != SEARCH_FIELDS:
            raise Fault("Server was unable to read request: missing search parameters.")
        if parameters["searchOption"] not in {"All", "Creator", "Contact", "Subject", "Tag"}:
            raise Fault("Server was unable to read request: bad searchOption.")
        folder = int(parameters["folderID"])
        text = parameters["searchText"].lower()
        with peer.lock:
            found = [
                d
                for d in peer.documents.values()
                if text in d.file_name.lower() and folder in (-1, d.folder)
            ]
        items = "".join(
            f'<Document ID="{d.id}"><Subject>{d.file_name}</Subject>'
            f"<FileName>{d.file_name}</FileName><Folder>{d.folder}</Folder>"
            f"<AdministrationID>{d.administration}</AdministrationID></Document>"
            for d in found
        )
        return f"<Documents>{items}</Documents>"

    def uploaddocument(self, service, parameters):
        self._session(service, parameters)
        peer = self.server.peer
        if set(parameters) - {"sessionID"} != UPLOAD_FIELDS:
            raise Fault("Server was unable to read request: missing upload parameters.")
        try:
            content = base64.b64decode(parameters["data"], validate=True)
        except (binascii.Error, ValueError):
            raise Fault("Server was unable to read request: data is not base64.") from None
        if not parameters["folder"].lstrip("-").isdigit():
            raise Fault("Server was unable to read request: folder is not a number.")
        if parameters["administrationID"] not in peer.administrations:
            raise Fault("Administration not found.")
        if peer.refuse_next_upload:
            peer.refuse_next_upload = ""
            raise Fault(peer.refuse_next_upload_reason)
        document = YukiDocument(
            id=str(uuid.uuid4()),
            administration=parameters["administrationID"],
            folder=int(parameters["folder"]),
            file_name=parameters["fileName"],
            content=content,
        )
        with peer.lock:
            peer.documents[document.id] = document
            lose, peer.lose_next_answer = peer.lose_next_answer, False
        return None if lose else document.id


CONTENT_TYPE = "text/xml; charset=utf-8"


class YukiPeer(LocalPeer):
    def __init__(self):
        self.lock = threading.Lock()
        self.access_keys = {"a3f0c9d2-7b1e-4c55-9e0a-yuki-test-key"}
        self.domain_id = str(uuid.uuid4())
        self.administrations = {
            str(uuid.uuid4()): ("Bakkerij Peeters BV", "BE0403.019.261"),
            str(uuid.uuid4()): ("Menuiserie Dubois SRL", "BE0477.472.701"),
        }
        self.sessions: set[str] = set()
        self.documents: dict[str, YukiDocument] = {}
        self.requests: list[tuple] = []
        self.operations: list[tuple[str, str]] = []
        self.calls = self.authentications = 0
        self.daily_limit = 1000
        self.lose_next_answer = False
        self.fail_next_with = 0  # an HTTP status for the next request
        self.refuse_next_upload = ""
        self.refuse_next_upload_reason = ""
        self.serve(_Handler)

    @property
    def access_key(self) -> str:
        return next(iter(self.access_keys))

    def administration(self, name: str) -> str:
        return next(a for a, (n, _vat) in self.administrations.items() if n == name)

    def expire_sessions(self):
        with self.lock:
            self.sessions.clear()

    def refuse_upload(self, reason: str):
        self.refuse_next_upload, self.refuse_next_upload_reason = "yes", reason


@pytest.fixture
def yuki_peer(settings):
    peer = YukiPeer().start()
    settings.YUKI_BASE_URL = peer.url + "/ws/"
    yield peer
    peer.stop()
