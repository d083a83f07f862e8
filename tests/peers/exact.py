"""A strict local Exact Online for tests: OAuth 2, current/Me, divisions, documents.

``exact_peer`` runs one ``ThreadingHTTPServer`` on 127.0.0.1 answering Exact's paths (the
tests point ``EXACT_BASE_URL`` at it, so every region is this one server):

* ``GET /api/oauth2/auth``: checks the client id, redirect URI, ``response_type=code`` and
  state, then redirects back with a one-time code, or ``error=access_denied`` when
  ``peer.consent`` is False.
* ``POST /api/oauth2/token``: form-encoded only, client id and secret in the form. A code
  works once (then 400). Each answer's ``expires_in`` is a digit string ("600"). Every
  refresh returns a new refresh token and retires the one used: used again, it is refused
  with 401 ``unauthorized_client`` "Old refresh token used.". A new sign-in retires the
  whole previous chain (only the latest connection stays valid). ``peer.refreshes``
  counts refreshes.
* ``GET /api/v1/current/Me`` (no division), ``GET /api/v1/{div}/system/Divisions`` (paged
  by ``peer.page_size``, ``__next`` with a ``$skiptoken``), ``documents/DocumentTypes``,
  ``documents/Documents`` and ``documents/DocumentAttachments`` (``GET`` with ``$filter``
  on ``Subject`` / ``Document`` only, ``POST`` of JSON with known fields only; an
  ``Attachment`` that is not base64 gets Exact's 400). Answers are OData v2 envelopes
  (``{"d": {"results": [...]}}``, ``{"d": {...}}``), errors
  ``{"error": {"code": "", "message": {"lang": "", "value": "…"}}}``.

Every API call needs ``Authorization: Bearer <live token>`` (tokens expire after
``peer.token_lifetime``) and ``Accept: application/json``; a division the user has no
access to is 403. Each call counts against its division's limits: ``X-RateLimit-*``
headers on every answer, resets in epoch milliseconds, 429 once ``minutely_limit`` (or
``daily_limit``) is used up. ``peer.fail(status, message)`` queues an error answer for the
next API call; ``peer.lose_answer_to = "<entity>"`` makes the next POST of that entity do
its work and close the connection without answering.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.peers.local import JsonHandler, LocalPeer

API = re.compile(r"^/api/v1/(?P<division>\d+)/(?P<service>\w+)/(?P<entity>\w+)$")
SUBJECT_FILTER = re.compile(r"^Subject eq '((?:[^']|'')*)'$")
DOCUMENT_FILTER = re.compile(r"^Document eq guid'([0-9a-f-]{36})'$")
FIELDS = {
    "Me": {"UserID", "FullName", "Email", "CurrentDivision", "DivisionCustomer", "Legislation"},
    "Divisions": {"Code", "Description", "HID", "VATNumber", "Status", "Current", "Country"},
    "DocumentTypes": {"ID", "Description", "DocumentIsCreatable", "TypeCategory"},
    "Documents": {"ID", "Subject", "Type", "DocumentDate", "Account", "Category", "HID"},
    "DocumentAttachments": {"ID", "Document", "FileName", "FileSize", "Url", "Attachment"},
}
CREATABLE = {
    "Documents": {"Subject", "Type", "DocumentDate", "Account", "Category"},
    "DocumentAttachments": {"Document", "FileName", "Attachment"},
}
NOT_BASE64 = (
    "Error processing request stream. Error encountered in converting the value from "
    "request payload for property 'Attachment' to type 'Byte[]'"
)
DOCUMENT_TYPES = [
    {"ID": 10, "Description": "Sales invoice", "DocumentIsCreatable": True, "TypeCategory": 1},
    {"ID": 20, "Description": "Purchase invoice", "DocumentIsCreatable": True, "TypeCategory": 2},
    {"ID": 55, "Description": "Miscellaneous", "DocumentIsCreatable": True, "TypeCategory": 9},
]


def odata_error(status: int, value: str, headers=None) -> Refused:
    return Refused(
        status, {"error": {"code": "", "message": {"lang": "", "value": value}}}, headers
    )


class Refused(Exception):
    def __init__(self, status: int, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class _Handler(JsonHandler):
    def _handle(self):
        peer = self.server.peer
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with peer.lock:
            peer.requests.append((self.command, parts.path, query, dict(self.headers), body))
        limits: dict[str, str] = {}
        try:
            if parts.path == "/api/oauth2/auth" and self.command == "GET":
                answer = self.authorize(query)
            elif parts.path == "/api/oauth2/token" and self.command == "POST":
                answer = self.token(body)
            else:
                answer = self.api(parts.path, query, body, limits)
        except Refused as refused:
            return self._answer(refused.status, refused.body, {**limits, **refused.headers})
        if answer is None:  # the work is done; the answer is lost
            self.close_connection = True
            return None
        status, payload, *more = answer
        return self._answer(status, payload, {**limits, **(more[0] if more else {})})

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    # --- OAuth ---

    def authorize(self, query):
        peer = self.server.peer
        problems = []
        if query.get("client_id") != peer.client_id:
            problems.append("invalid client_id")
        if query.get("response_type") != "code":
            problems.append("unsupported response_type")
        if not query.get("redirect_uri", "").startswith(("http://", "https://")):
            problems.append("invalid redirect_uri")
        if not query.get("state"):
            problems.append("no state")
        if problems:
            return 400, ", ".join(problems)
        back = {"state": query["state"]}
        if peer.consent:
            code = secrets.token_urlsafe(24)
            with peer.lock:
                peer.codes[code] = query["redirect_uri"]
            back["code"] = code
        else:
            back["error"] = "access_denied"
        separator = "&" if "?" in query["redirect_uri"] else "?"
        return 302, b"", {"Location": query["redirect_uri"] + separator + urlencode(back)}

    def token(self, body):
        peer = self.server.peer
        if self.headers.get("Content-Type", "").split(";")[0] != (
            "application/x-www-form-urlencoded"
        ):
            raise Refused(400, {"error": "invalid_request"})
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        if form.get("client_id") != peer.client_id or form.get("client_secret") != (
            peer.client_secret
        ):
            raise Refused(400, {"error": "invalid_client"})
        grant = form.get("grant_type")
        with peer.lock:
            if grant == "authorization_code":
                redirect_uri = peer.codes.pop(form.get("code", ""), None)
                if redirect_uri is None or redirect_uri != form.get("redirect_uri"):
                    raise Refused(400, {"error": "invalid_grant"})
                peer.retired |= peer.refresh_tokens  # only the latest connection stays valid
                peer.refresh_tokens.clear()
                peer.access_tokens.clear()
                peer.grants += 1
            elif grant == "refresh_token":
                used = form.get("refresh_token", "")
                if used in peer.spent:
                    raise Refused(
                        401,
                        {
                            "error": "unauthorized_client",
                            "error_description": "Old refresh token used.",
                        },
                    )
                if used not in peer.refresh_tokens:
                    raise Refused(400, {"error": "invalid_grant"})
                peer.refresh_tokens.discard(used)
                peer.spent.add(used)
                peer.refreshes += 1
            else:
                raise Refused(400, {"error": "unsupported_grant_type"})
            refresh = "Rx" + secrets.token_urlsafe(24)
            access = "gAAA" + secrets.token_urlsafe(32)
            peer.refresh_tokens.add(refresh)
            peer.access_tokens[access] = time.time() + peer.token_lifetime
        return 200, {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": str(peer.token_lifetime),
            "refresh_token": refresh,
        }

    # --- the REST API ---

    def api(self, path, query, body, limits):
        peer = self.server.peer
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        with peer.lock:
            expires = peer.access_tokens.get(token)
        if expires is None or expires < time.time():
            raise odata_error(401, "Access token is invalid or has expired.")
        if self.headers.get("Accept", "").split(";")[0].strip() != "application/json":
            # Exact answers Atom XML without it, which a JSON client cannot read.
            raise Refused(406, "Accept: application/json expected")
        if path == "/api/v1/current/Me":
            division, service, entity = peer.current_division, "current", "Me"
        else:
            match = API.match(path)
            if match is None:
                raise odata_error(404, "Resource not found")
            division, service, entity = (
                int(match["division"]),
                match["service"],
                match["entity"],
            )
            if division not in peer.divisions:
                raise odata_error(403, "Forbidden")
        self._count(division, limits)
        with peer.lock:
            failure = peer.failures.pop(0) if peer.failures else None
        if failure is not None:
            status, message = failure
            raise odata_error(status, message)
        route = {
            ("GET", "current", "Me"): self.me,
            ("GET", "system", "Divisions"): self.divisions,
            ("GET", "documents", "DocumentTypes"): self.document_types,
            ("GET", "documents", "Documents"): self.list_documents,
            ("POST", "documents", "Documents"): self.create_document,
            ("GET", "documents", "DocumentAttachments"): self.list_attachments,
            ("POST", "documents", "DocumentAttachments"): self.create_attachment,
        }.get((self.command, service, entity))
        if route is None:
            raise odata_error(405, "Method not allowed")
        return route(division, query, body)

    def _count(self, division: int, limits: dict) -> None:
        """One call against the division's minute and day; headers as Exact sends them."""
        peer = self.server.peer
        now = time.time()
        with peer.lock:
            window = peer.windows.get(division)
            if window is None or now * 1000 >= window["minute_reset"]:
                window = peer.windows[division] = {
                    "minute_reset": _ms(now + peer.minutely_reset_in),
                    "minute_used": 0,
                    "day_reset": window["day_reset"] if window else _ms(now + 86400),
                    "day_used": window["day_used"] if window else 0,
                }
            refused = (
                window["minute_used"] >= peer.minutely_limit
                or window["day_used"] >= peer.daily_limit
            )
            if not refused:
                window["minute_used"] += 1
                window["day_used"] += 1
            else:
                peer.refused_calls += 1
            limits.update(
                {
                    "X-RateLimit-Limit": str(peer.daily_limit),
                    "X-RateLimit-Remaining": str(max(0, peer.daily_limit - window["day_used"])),
                    "X-RateLimit-Reset": str(window["day_reset"]),
                    "X-RateLimit-Minutely-Limit": str(peer.minutely_limit),
                    "X-RateLimit-Minutely-Remaining": str(
                        max(0, peer.minutely_limit - window["minute_used"])
                    ),
                    "X-RateLimit-Minutely-Reset": str(window["minute_reset"]),
                }
            )
        if refused:
            raise odata_error(429, "API rate limit exceeded.")

    def _selected(self, entity: str, rows: list[dict], query) -> list[dict]:
        wanted = [name for name in query.get("$select", "").split(",") if name]
        unknown = [name for name in wanted if name not in FIELDS[entity]]
        if unknown:
            raise odata_error(400, f"No property '{unknown[0]}' exists in type '{entity}'.")
        if not wanted:
            return rows
        return [{name: row.get(name) for name in wanted} for row in rows]

    def _json(self, entity: str, body: bytes) -> dict:
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise odata_error(415, "Unsupported media type")
        try:
            value = json.loads(body)
        except ValueError:
            raise odata_error(400, "Error processing request stream.") from None
        if not isinstance(value, dict):
            raise odata_error(400, "Error processing request stream.")
        unknown = set(value) - CREATABLE[entity]
        if unknown:
            raise odata_error(
                400,
                f"Error processing request stream. The property '{sorted(unknown)[0]}' does "
                f"not exist on type '{entity}'.",
            )
        return value

    def _top(self, rows, query):
        top = query.get("$top")
        if top is None:
            return rows
        if not top.isdigit():
            raise odata_error(400, "Invalid $top")
        return rows[: int(top)]

    def me(self, division, query, body):
        peer = self.server.peer
        row = {
            "UserID": peer.user_id,
            "FullName": peer.full_name,
            "Email": peer.email,
            "CurrentDivision": peer.current_division,
            "DivisionCustomer": str(uuid.uuid5(uuid.NAMESPACE_DNS, "customer")),
            "Legislation": 32,
        }
        return 200, {"d": {"results": self._selected("Me", [row], query)}}

    def divisions(self, division, query, body):
        peer = self.server.peer
        with peer.lock:
            rows = [dict(row) for _code, row in sorted(peer.divisions.items())]
        after = query.get("$skiptoken")
        if after is not None:
            rows = [row for row in rows if row["Code"] > int(after)]
        page, rest = rows[: peer.page_size], rows[peer.page_size :]
        answer = {"results": self._selected("Divisions", page, query)}
        if rest:
            following = {k: v for k, v in query.items() if k != "$skiptoken"}
            following["$skiptoken"] = str(page[-1]["Code"])
            answer["__next"] = f"{peer.url}/api/v1/{division}/system/Divisions?" + urlencode(
                following
            )
        return 200, {"d": answer}

    def document_types(self, division, query, body):
        return 200, {"d": {"results": self._selected("DocumentTypes", DOCUMENT_TYPES, query)}}

    def list_documents(self, division, query, body):
        peer = self.server.peer
        match = SUBJECT_FILTER.match(query.get("$filter", ""))
        if match is None:
            raise odata_error(400, "The $filter is not supported.")
        subject = match[1].replace("''", "'")
        with peer.lock:
            rows = [
                peer.entity(doc)
                for doc in peer.documents.get(division, {}).values()
                if doc["Subject"] == subject
            ]
        rows = self._top(rows, query)
        return 200, {"d": {"results": self._selected("Documents", rows, query)}}

    def create_document(self, division, query, body):
        peer = self.server.peer
        value = self._json("Documents", body)
        if not isinstance(value.get("Subject"), str) or not value["Subject"].strip():
            raise odata_error(400, "Mandatory: Subject")
        creatable = {row["ID"] for row in DOCUMENT_TYPES if row["DocumentIsCreatable"]}
        if value.get("Type") not in creatable:
            raise odata_error(400, "Type: Invalid value")
        document = {
            "ID": str(uuid.uuid4()),
            "Subject": value["Subject"],
            "Type": value["Type"],
            "DocumentDate": value.get("DocumentDate"),
            "attachments": [],
        }
        with peer.lock:
            peer.documents.setdefault(division, {})[document["ID"]] = document
            lose = peer.lose_answer_to == "Documents"
            peer.lose_answer_to = "" if lose else peer.lose_answer_to
        return None if lose else (201, {"d": peer.entity(document)})

    def list_attachments(self, division, query, body):
        peer = self.server.peer
        match = DOCUMENT_FILTER.match(query.get("$filter", ""))
        if match is None:
            raise odata_error(400, "The $filter is not supported.")
        with peer.lock:
            document = peer.documents.get(division, {}).get(match[1])
            rows = [dict(a, Attachment=None) for a in (document or {}).get("attachments", [])]
        rows = self._top(rows, query)
        return 200, {"d": {"results": self._selected("DocumentAttachments", rows, query)}}

    def create_attachment(self, division, query, body):
        peer = self.server.peer
        value = self._json("DocumentAttachments", body)
        try:
            content = base64.b64decode(str(value.get("Attachment", "")), validate=True)
        except (binascii.Error, ValueError):
            raise odata_error(400, NOT_BASE64) from None
        if not value.get("FileName"):
            raise odata_error(400, "Mandatory: FileName")
        with peer.lock:
            document = peer.documents.get(division, {}).get(str(value.get("Document")))
            if document is None:
                raise odata_error(400, "Document: Invalid reference")
            attachment = {
                "ID": str(uuid.uuid4()),
                "Document": document["ID"],
                "FileName": value["FileName"],
                "FileSize": len(content),
                "Url": f"{peer.url}/docs/SysAttachment.aspx?ID={document['ID']}",
                "Attachment": content,
            }
            document["attachments"].append(attachment)
            lose = peer.lose_answer_to == "DocumentAttachments"
            peer.lose_answer_to = "" if lose else peer.lose_answer_to
        shown = {k: v for k, v in attachment.items() if k != "Attachment"}
        return None if lose else (201, {"d": shown})


class ExactPeer(LocalPeer):
    def __init__(self):
        self.lock = threading.Lock()
        self.client_id = str(uuid.uuid4())
        self.client_secret = "exact-app-secret-" + secrets.token_hex(4)
        self.consent = True
        self.user_id = str(uuid.uuid4())
        self.full_name = "Hélène Lambert"
        self.email = "helene@lambert-boekhouding.be"
        self.current_division = 101
        self.divisions = {
            code: {
                "Code": code,
                "Description": description,
                "HID": hid,
                "VATNumber": vat,
                "Status": 1,
                "Current": code == 101,
                "Country": "BE",
            }
            for code, description, hid, vat in [
                (101, "Fiduciaire Lambert", "1", "BE0400000101"),
                (202, "Bakkerij Peeters BV", "2", "BE0400000202"),
                (303, "Menuiserie Dubois SRL", "3", "BE0400000303"),
            ]
        }
        self.page_size = 60
        self.token_lifetime = 600
        self.minutely_limit = 60
        self.minutely_reset_in = 60.0  # seconds from a window's first call to its reset
        self.daily_limit = 5000
        self.windows: dict[int, dict] = {}
        self.codes: dict[str, str] = {}
        self.refresh_tokens: set[str] = set()
        self.spent: set[str] = set()  # rotated away: "Old refresh token used."
        self.retired: set[str] = set()  # of an earlier sign-in
        self.access_tokens: dict[str, float] = {}
        self.documents: dict[int, dict[str, dict]] = {}
        self.failures: list[tuple[int, str]] = []
        self.lose_answer_to = ""  # "Documents" or "DocumentAttachments": its next POST
        self.requests: list[tuple] = []
        self.grants = self.refreshes = self.refused_calls = 0
        self.serve(_Handler)

    @staticmethod
    def entity(document: dict) -> dict:
        return {k: v for k, v in document.items() if k != "attachments"}

    def fail(self, status: int, message: str = "Internal server error"):
        """The next API call answers ``status`` with this OData error message."""
        with self.lock:
            self.failures.append((status, message))

    def expire_access_tokens(self):
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0

    def signed_in(self) -> str:
        """A refresh token as a past sign-in left it."""
        token = "Rx-past-" + secrets.token_hex(8)
        with self.lock:
            self.refresh_tokens.add(token)
        return token

    def held(self, division: int) -> list[tuple[str, int, list[tuple[str, bytes]]]]:
        """Each document of ``division``: (subject, type, [(file name, bytes)])."""
        with self.lock:
            return [
                (
                    d["Subject"],
                    d["Type"],
                    [(a["FileName"], a["Attachment"]) for a in d["attachments"]],
                )
                for d in self.documents.get(division, {}).values()
            ]

    def api_requests(self, method: str, entity: str) -> list[tuple]:
        return [r for r in self.requests if r[0] == method and r[1].endswith("/" + entity)]


@pytest.fixture
def exact_peer(settings):
    peer = ExactPeer().start()
    settings.EXACT_BASE_URL = peer.url
    settings.EXACT_CLIENT_ID = peer.client_id
    settings.EXACT_CLIENT_SECRET = peer.client_secret
    yield peer
    peer.stop()
