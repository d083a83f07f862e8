"""A strict local Microsoft for tests: identity platform v2 and Graph's OneDrive uploads.

``microsoft_peer`` runs one ``ThreadingHTTPServer`` on 127.0.0.1 answering Microsoft's
paths (the tests point ``MICROSOFT_BASE_URL`` at it):

* ``GET /<tenant>/oauth2/v2.0/authorize``: checks the tenant, client id, redirect URI,
  ``response_type=code``, the space-separated scope (``Files.ReadWrite`` and
  ``offline_access``) and the state, then redirects back with a one-time code, or with
  ``error=access_denied`` and an ``error_description`` when ``peer.consent`` is False.
* ``POST /<tenant>/oauth2/v2.0/token``: form-encoded only, client id and secret checked;
  the ``authorization_code`` grant (the code once, for its redirect URI) and the
  ``refresh_token`` grant, which must name the scope again (spaces, not commas). Access
  tokens expire after ``peer.token_lifetime`` seconds. Every refresh hands out a new
  refresh token and the one spent is refused afterwards (rotation); ``peer.revoke()``
  makes every token ``invalid_grant`` / invalid.
* ``GET /v1.0/me``: the account of the bearer token.
* ``GET /v1.0/me/drive/root:/<path>``, ``POST /v1.0/me/drive/root/children``: an item by
  path (404 ``itemNotFound``) and a folder made at the root.
* ``PUT /v1.0/me/drive/root:/<path>:/content``: at most 4 MB; an existing item is
  replaced (same id) only with ``@microsoft.graph.conflictBehavior=replace`` in the query,
  else 409 ``nameAlreadyExists``; missing folders on the path are made.
* ``POST /v1.0/me/drive/root:/<path>:/createUploadSession``: the conflict behaviour inside
  ``item`` (a bare one is a 400), answered with an ``uploadUrl`` on this server; ``PUT``
  fragments to it are refused with an ``Authorization`` header, must follow each other,
  carry one total in ``Content-Range`` and be multiples of 320 KiB but the last; 202 with
  ``nextExpectedRanges`` until the last, then the item.

Graph calls need ``Authorization: Bearer <live token>`` (401 ``InvalidAuthenticationToken``
otherwise). ``peer.fail(status, code, retry_after=)`` queues an error answer for the next
Graph call; ``peer.lose_next_answer`` makes the next upload write its item, then close the
connection without answering.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest

from tests.peers.local import JsonHandler, LocalPeer

SIMPLE_LIMIT = 4 * 1024 * 1024
FRAGMENT_UNIT = 320 * 1024
REQUIRED_SCOPES = {"Files.ReadWrite", "offline_access"}
CONFLICT = "@microsoft.graph.conflictBehavior"


@dataclass
class Item:
    id: str
    folder: bool
    content: bytes = b""
    versions: int = 1


def graph_error(code: str, message: str, inner: str = "") -> dict:
    error = {
        "code": code,
        "message": message,
        "innerError": {"request-id": secrets.token_hex(8), "date": "2026-12-01T12:00:00"},
    }
    if inner:
        error["innerError"]["code"] = inner
    return {"error": error}


def _segments(raw: str) -> tuple[str, ...] | None:
    """A ``root:/a/b`` path's names, each decoded on its own; None when one is empty."""
    names = tuple(unquote(part) for part in raw.strip("/").split("/"))
    if not raw.strip("/") or any(not name or "/" in name for name in names):
        return None
    return names


_ITEM = re.compile(r"^/v1\.0/me/drive/root:/(?P<path>[^:]+?)(?::/(?P<action>[A-Za-z]+))?:?$")


class _Handler(JsonHandler):
    def _handle(self):
        peer = self.server.peer
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with peer.lock:
            peer.requests.append((self.command, parts.path, query, dict(self.headers), body))
        path = parts.path
        tenant = f"/{peer.tenant}/oauth2/v2.0/"
        if self.command == "GET" and path == tenant + "authorize":
            return self.authorize(query)
        if self.command == "POST" and path == tenant + "token":
            return self.token(body)
        if path.startswith("/upload/session/") and self.command == "PUT":
            return self.fragment(path.rsplit("/", 1)[1], body)
        if path.startswith("/v1.0/"):
            return self.graph(path, query, body)
        return self._answer(404, {"error": "not_found"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    # --- the identity platform ---

    def _token_error(self, status, error, description, code):
        return self._answer(
            status,
            {
                "error": error,
                "error_description": f"AADSTS{code}: {description}",
                "error_codes": [code],
                "timestamp": "2026-12-01 12:00:00Z",
                "trace_id": secrets.token_hex(8),
                "correlation_id": secrets.token_hex(8),
            },
        )

    def authorize(self, query):
        peer = self.server.peer
        problems = []
        if query.get("client_id") != peer.client_id:
            problems.append("AADSTS700016 unknown application")
        if query.get("response_type") != "code":
            problems.append("unsupported_response_type")
        if not query.get("redirect_uri", "").startswith(("http://", "https://")):
            problems.append("AADSTS50011 redirect URI mismatch")
        scope = query.get("scope", "")
        if "," in scope or not set(scope.split(" ")) >= REQUIRED_SCOPES:
            problems.append("AADSTS70011 invalid scope")
        if not query.get("state"):
            problems.append("no state")
        if problems:  # Microsoft shows an error page and does not redirect
            return self._answer(400, ", ".join(problems).encode(), content_type="text/plain")
        back = {"state": query["state"]}
        if peer.consent:
            code = "M." + secrets.token_urlsafe(24)
            with peer.lock:
                peer.codes[code] = (query["redirect_uri"], scope)
            back["code"] = code
        else:
            back["error"] = "access_denied"
            back["error_description"] = "AADSTS65004: User declined to consent to access the app."
        separator = "&" if "?" in query["redirect_uri"] else "?"
        return self._answer(
            302, headers={"Location": query["redirect_uri"] + separator + urlencode(back)}
        )

    def token(self, body):
        peer = self.server.peer
        if self.headers.get("Content-Type", "").split(";")[0] != (
            "application/x-www-form-urlencoded"
        ):
            return self._token_error(400, "invalid_request", "Invalid content type.", 900144)
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        if form.get("client_id") != peer.client_id:
            return self._token_error(400, "unauthorized_client", "Unknown app.", 700016)
        if form.get("client_secret") != peer.client_secret:
            return self._token_error(401, "invalid_client", "Invalid client secret.", 7000215)
        grant = form.get("grant_type")
        with peer.lock:
            if grant == "authorization_code":
                issued = peer.codes.pop(form.get("code", ""), None)
                if issued is None or issued[0] != form.get("redirect_uri"):
                    return self._token_error(
                        400, "invalid_grant", "The code has expired or was used.", 70008
                    )
                scope = issued[1]
                peer.grants += 1
            elif grant == "refresh_token":
                scope = form.get("scope", "")
                if not scope or "," in scope or not {"Files.ReadWrite"} <= set(scope.split(" ")):
                    return self._token_error(
                        400, "invalid_request", "The scope parameter is missing.", 90023
                    )
                spent = form.get("refresh_token", "")
                if spent not in peer.refresh_tokens:
                    return self._token_error(
                        400,
                        "invalid_grant",
                        "The refresh token has expired or was revoked.",
                        700082,
                    )
                peer.refresh_tokens.discard(spent)  # rotated: the old one is refused now
                peer.refreshes += 1
            else:
                return self._token_error(400, "unsupported_grant_type", "No such grant.", 70003)
            refresh = "R." + secrets.token_urlsafe(24)
            peer.refresh_tokens.add(refresh)
            access = "eyJ0." + secrets.token_urlsafe(24)
            peer.access_tokens[access] = time.time() + peer.token_lifetime
        granted = " ".join(s for s in scope.split(" ") if s != "offline_access")
        return self._answer(
            200,
            {
                "token_type": "Bearer",
                "scope": granted,
                "expires_in": peer.token_lifetime,
                "ext_expires_in": peer.token_lifetime,
                "access_token": access,
                "refresh_token": refresh,
            },
        )

    # --- Graph ---

    def _bearer(self) -> bool:
        peer = self.server.peer
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        with peer.lock:
            expires = peer.access_tokens.get(token)
        if expires is None or expires < time.time():
            self._answer(
                401,
                graph_error(
                    "InvalidAuthenticationToken", "Access token has expired or is not valid."
                ),
                {"WWW-Authenticate": 'Bearer realm=""'},
            )
            return False
        return True

    def _injected(self) -> bool:
        peer = self.server.peer
        with peer.lock:
            failure = peer.failures.pop(0) if peer.failures else None
        if failure is None:
            return False
        status, code, retry_after = failure
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._answer(status, graph_error(code, code), headers)
        return True

    def graph(self, path, query, body):
        peer = self.server.peer
        if not self._bearer() or self._injected():
            return None
        if self.command == "GET" and path == "/v1.0/me":
            return self._answer(
                200,
                {
                    "id": "48d31887-5fad-4d73-a9f5-3c356e68a038",
                    "displayName": "Lambert Boekhouding",
                    "userPrincipalName": peer.account,
                    "mail": peer.account,
                },
            )
        if self.command == "POST" and path == "/v1.0/me/drive/root/children":
            return self.make_folder(body)
        match = _ITEM.match(self.path.split("?", 1)[0])  # raw: segments decoded one by one
        names = _segments(match["path"]) if match else None
        if names is None:
            return self._answer(400, graph_error("invalidRequest", "Invalid request"))
        action = match["action"]
        if self.command == "GET" and action is None:
            with peer.lock:
                item = peer.items.get(names)
            if item is None:
                return self._answer(
                    404, graph_error("itemNotFound", "The resource could not be found.")
                )
            return self._answer(200, self._item(names, item))
        if self.command == "PUT" and action == "content":
            return self.simple_upload(names, query, body)
        if self.command == "POST" and action == "createUploadSession":
            return self.start_session(names, body)
        return self._answer(400, graph_error("invalidRequest", "Invalid request"))

    def _item(self, names, item) -> dict:
        described = {"id": item.id, "name": names[-1]}
        if item.folder:
            described["folder"] = {"childCount": 0}
        else:
            described.update(size=len(item.content), file={"mimeType": "application/xml"})
        return described

    def make_folder(self, body):
        peer = self.server.peer
        try:
            asked = json.loads(body)
        except ValueError:
            asked = None
        if not isinstance(asked, dict) or not asked.get("name") or "folder" not in asked:
            return self._answer(400, graph_error("invalidRequest", "Invalid request"))
        names = (asked["name"],)
        with peer.lock:
            if names in peer.items:
                return self._answer(
                    409,
                    graph_error("nameAlreadyExists", "The specified item name already exists."),
                )
            peer.items[names] = Item(id=secrets.token_hex(8).upper(), folder=True)
            item = peer.items[names]
        return self._answer(201, self._item(names, item))

    def _write(self, names, content, behaviour):
        """The item written at ``names`` (folders made on the way): (status, answer)."""
        peer = self.server.peer
        with peer.lock:
            for depth in range(1, len(names)):
                folder = peer.items.setdefault(
                    names[:depth], Item(id=secrets.token_hex(8).upper(), folder=True)
                )
                if not folder.folder:
                    return 409, graph_error("nameAlreadyExists", "A file is in the way.")
            existing = peer.items.get(names)
            if existing is not None:
                if existing.folder or behaviour != "replace":
                    return 409, graph_error(
                        "nameAlreadyExists", "The specified item name already exists."
                    )
                existing.content = content
                existing.versions += 1
                peer.replaced += 1
                return 200, self._item(names, existing)
            peer.items[names] = Item(
                id=secrets.token_hex(8).upper(), folder=False, content=content
            )
            return 201, self._item(names, peer.items[names])

    def _written(self, status, answer):
        peer = self.server.peer
        with peer.lock:
            lose = status < 300 and peer.lose_next_answer
            if lose:
                peer.lose_next_answer = False
        if lose:  # the item is there, the answer never arrives
            self.close_connection = True
            return None
        return self._answer(status, answer)

    def simple_upload(self, names, query, body):
        if len(body) > SIMPLE_LIMIT:
            return self._answer(
                413, graph_error("invalidRequest", "Use an upload session above 4 MB.")
            )
        return self._written(*self._write(names, body, query.get(CONFLICT, "fail")))

    def start_session(self, names, body):
        peer = self.server.peer
        try:
            asked = json.loads(body or b"{}")
        except ValueError:
            asked = None
        if (
            not isinstance(asked, dict)
            or CONFLICT in asked
            or not isinstance(asked.get("item", {}), dict)
        ):
            return self._answer(400, graph_error("invalidRequest", "Invalid request body."))
        behaviour = asked.get("item", {}).get(CONFLICT, "fail")
        session = secrets.token_urlsafe(16)
        with peer.lock:
            peer.sessions[session] = {
                "names": names,
                "behaviour": behaviour,
                "data": b"",
                "total": None,
            }
        return self._answer(
            200,
            {
                "uploadUrl": f"{peer.url}/upload/session/{session}",
                "expirationDateTime": "2026-12-02T12:00:00Z",
            },
        )

    def fragment(self, session_id, body):
        peer = self.server.peer
        with peer.lock:
            peer.fragments.append(dict(self.headers))
            session = peer.sessions.get(session_id)
        if "Authorization" in self.headers:
            return self._answer(
                401, graph_error("unauthenticated", "Do not authenticate to the upload URL.")
            )
        if session is None:
            return self._answer(
                404, graph_error("itemNotFound", "Not found", inner="uploadSessionNotFound")
            )
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", self.headers.get("Content-Range", ""))
        if not match:
            return self._answer(400, graph_error("invalidRange", "Bad Content-Range"))
        first, last, total = (int(g) for g in match.groups())
        if (
            first != len(session["data"])
            or last - first + 1 != len(body)
            or session["total"] not in (None, total)
        ):
            return self._answer(
                416, graph_error("invalidRange", "Range mismatch", inner="fragmentOutOfOrder")
            )
        if last + 1 < total and len(body) % FRAGMENT_UNIT:
            return self._answer(
                400, graph_error("invalidRange", "Fragments must be multiples of 320 KiB.")
            )
        with peer.lock:
            session["data"] += body
            session["total"] = total
        if last + 1 < total:
            return self._answer(
                202,
                {
                    "expirationDateTime": "2026-12-02T12:00:00Z",
                    "nextExpectedRanges": [f"{last + 1}-"],
                },
            )
        with peer.lock:
            del peer.sessions[session_id]
        return self._written(*self._write(session["names"], session["data"], session["behaviour"]))


class MicrosoftPeer(LocalPeer):
    def __init__(self):
        self.lock = threading.Lock()
        self.tenant = "organizations"
        self.client_id = "6731de76-14a6-49ae-97bc-6eba6914391e"
        self.client_secret = "Mq~8Q~test-secret-" + secrets.token_hex(4)
        self.account = "lambert@lambert-boekhouding.be"
        self.consent = True
        self.token_lifetime = 3599
        self.codes: dict[str, tuple[str, str]] = {}
        self.refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, float] = {}
        self.items: dict[tuple[str, ...], Item] = {}
        self.sessions: dict[str, dict] = {}
        self.failures: list[tuple[int, str, int | None]] = []
        self.fragments: list[dict] = []
        self.lose_next_answer = False
        self.requests: list[tuple] = []
        self.grants = self.refreshes = self.replaced = 0
        self.serve(_Handler)

    def fail(self, status: int, code: str = "generalException", retry_after: int | None = None):
        with self.lock:
            self.failures.append((status, code, retry_after))

    def expire_access_tokens(self):
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0

    def revoke(self):
        with self.lock:
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def tree(self) -> dict[str, bytes | None]:
        """Every item by path: a file's bytes, None for a folder."""
        with self.lock:
            return {
                "/".join(names): (None if item.folder else item.content)
                for names, item in self.items.items()
            }


@pytest.fixture
def microsoft_peer(settings):
    peer = MicrosoftPeer().start()
    settings.MICROSOFT_BASE_URL = peer.url
    settings.ONEDRIVE_TENANT = peer.tenant
    settings.ONEDRIVE_CLIENT_ID = peer.client_id
    settings.ONEDRIVE_CLIENT_SECRET = peer.client_secret
    yield peer
    peer.stop()
