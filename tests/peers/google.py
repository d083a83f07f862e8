"""A strict local Google for tests: sign-in, token endpoint, user info and Drive v3 files.

``google_peer`` runs one ``ThreadingHTTPServer`` on 127.0.0.1 answering Google's paths
(the tests point ``GOOGLE_BASE_URL`` at it):

* ``GET /o/oauth2/v2/auth``: checks the client id, redirect URI, ``response_type=code``,
  scope, state, ``access_type=offline`` and ``prompt=consent``, then redirects back with a
  one-time code, or with ``error=access_denied`` when ``peer.consent`` is False.
* ``POST /token``: form-encoded only; the ``authorization_code`` grant (the code once, for
  the redirect URI it was issued for) and the ``refresh_token`` grant, the client id and
  secret checked. Access tokens expire after ``peer.token_lifetime`` seconds;
  ``peer.rotate_refresh_tokens`` answers a refresh with a new refresh token (the old one
  then refused); ``peer.revoke()`` makes every refresh token ``invalid_grant`` and every
  access token invalid, as when a person removes the app's access in their Google account.
* ``GET /oauth2/v3/userinfo``: the account of the bearer token.
* ``GET|POST /drive/v3/files``: files.list with the query grammar we use (``name =``,
  ``mimeType =``, ``'id' in parents``, ``trashed = false``, ``appProperties has {…}``;
  quotes and backslashes escaped, anything else a 400) and metadata-only create.
* ``POST /upload/drive/v3/files?uploadType=multipart|resumable`` and ``PUT`` on the
  resumable session: the multipart/related body parsed and checked (JSON metadata first,
  then the content, at most 5 MB); resumable chunks contiguous and multiples of 256 KiB
  but the last, answered 308 with ``Range`` until complete.

Every API call needs ``Authorization: Bearer <live token>`` (401 with Google's error body
otherwise). ``peer.fail(status, reason=, retry_after=)`` queues an error answer for the
next API call; ``peer.lose_next_answer`` makes the next upload create its file and close
the connection without answering; ``peer.delay`` slows every request down.
``peer.rate_limit`` (requests per second, 0 = off, the default) answers Drive API calls
above it within any one second with 429 ``rateLimitExceeded`` and ``Retry-After`` (whole
seconds, until the window has room again), as Google's usage limits do; ``peer.limited``
counts those answers. Sign-in and token calls are not limited.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.peers.local import JsonHandler, LocalPeer

FOLDER = "application/vnd.google-apps.folder"
DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"
MULTIPART_LIMIT = 5 * 1024 * 1024
CHUNK_UNIT = 256 * 1024


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    app_properties: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    trashed: bool = False


class QueryError(ValueError):
    pass


_STRING = r"'((?:[^'\\]|\\.)*)'"
_TERMS = [
    ("name", re.compile(r"name\s*=\s*" + _STRING)),
    ("mimeType", re.compile(r"mimeType\s*=\s*" + _STRING)),
    ("parent", re.compile(_STRING + r"\s+in\s+parents")),
    ("trashed", re.compile(r"trashed\s*=\s*(true|false)")),
    (
        "appProperty",
        re.compile(
            r"appProperties\s+has\s*\{\s*key\s*=\s*" + _STRING + r"\s+and\s+value\s*=\s*"
            r"" + _STRING + r"\s*\}"
        ),
    ),
]
_AND = re.compile(r"\s+and\s+")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_query(query: str) -> list[tuple[str, tuple[str, ...]]]:
    """The terms of a files.list ``q`` joined by ``and``; anything else is refused."""
    terms, position, query = [], 0, query.strip()
    while True:
        for kind, pattern in _TERMS:
            match = pattern.match(query, position)
            if match:
                terms.append((kind, tuple(_unescape(group) for group in match.groups())))
                position = match.end()
                break
        else:
            raise QueryError(query[position:])
        if position == len(query):
            return terms
        joined = _AND.match(query, position)
        if not joined:
            raise QueryError(query[position:])
        position = joined.end()


def _matches(item: DriveFile, terms) -> bool:
    for kind, values in terms:
        if kind == "name" and item.name != values[0]:
            return False
        if kind == "mimeType" and item.mime_type != values[0]:
            return False
        if kind == "parent" and values[0] not in item.parents:
            return False
        if kind == "trashed" and item.trashed != (values[0] == "true"):
            return False
        if kind == "appProperty" and item.app_properties.get(values[0]) != values[1]:
            return False
    return True


def google_error(status: int, reason: str, message: str, **extra) -> dict:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [
                {
                    "domain": extra.pop("domain", "global"),
                    "reason": reason,
                    "message": message,
                    **extra,
                }
            ],
        }
    }


def _multipart_parts(boundary: str, body: bytes):
    """[(headers, bytes)] of a multipart/related body (RFC 2046), None when malformed."""
    delimiter = b"--" + boundary.encode()
    if not body.startswith(delimiter + b"\r\n"):
        return None
    pieces = body[len(delimiter) :].split(b"\r\n" + delimiter)
    if pieces[-1] not in (b"--", b"--\r\n"):
        return None
    parts = []
    for piece in pieces[:-1]:
        head, separator, content = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            return None
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon:
                return None
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


class _Handler(JsonHandler):
    def _read(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self):
        peer = self.server.peer
        if peer.delay:
            time.sleep(peer.delay)
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self._read()
        with peer.lock:
            peer.requests.append((self.command, parts.path, query, dict(self.headers), body))
        if peer.rate_limit and parts.path.startswith(("/drive/", "/upload/")):
            wait = peer.over_limit()
            if wait is not None:
                headers = {"Retry-After": str(max(1, math.ceil(wait)))}
                error = google_error(
                    429, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits"
                )
                return self._answer(429, error, headers)
        route = {
            ("GET", "/o/oauth2/v2/auth"): self.authorize,
            ("POST", "/token"): self.token,
            ("GET", "/oauth2/v3/userinfo"): self.userinfo,
            ("GET", "/drive/v3/files"): self.files_list,
            ("POST", "/drive/v3/files"): self.files_create,
            ("POST", "/upload/drive/v3/files"): self.upload,
            ("PUT", "/upload/drive/v3/files"): self.upload_chunk,
        }.get((self.command, parts.path))
        prefix = "/upload/drive/v3/files/"
        if route is None and self.command == "PATCH" and parts.path.startswith(prefix):
            file_id = parts.path[len(prefix) :]
            return self.update(file_id, query, body)
        if route is None:
            return self._answer(404, google_error(404, "notFound", "Not Found"))
        return route(query, body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def _bearer(self) -> str | None:
        """The account of a live bearer token, else None (the 401 is already sent)."""
        peer = self.server.peer
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        with peer.lock:
            expires = peer.access_tokens.get(token)
        if expires is None or expires < time.time():
            self._answer(
                401,
                google_error(
                    401,
                    "authError",
                    "Request had invalid authentication credentials.",
                    location="Authorization",
                    locationType="header",
                ),
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
            return None
        return peer.account

    def _injected(self) -> bool:
        peer = self.server.peer
        with peer.lock:
            failure = peer.failures.pop(0) if peer.failures else None
        if failure is None:
            return False
        status, reason, retry_after = failure
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        domain = "usageLimits" if "Rate" in reason else "global"
        self._answer(status, google_error(status, reason, reason, domain=domain), headers)
        return True

    # --- OAuth ---

    def authorize(self, query, body):
        peer = self.server.peer
        problems = []
        if query.get("client_id") != peer.client_id:
            problems.append("invalid_client")
        if query.get("response_type") != "code":
            problems.append("unsupported_response_type")
        if not query.get("redirect_uri", "").startswith(("http://", "https://")):
            problems.append("redirect_uri_mismatch")
        if DRIVE_FILE not in query.get("scope", "").split(" "):
            problems.append("invalid_scope")
        if query.get("access_type") != "offline" or query.get("prompt") != "consent":
            problems.append("no offline access with consent")
        if not query.get("state"):
            problems.append("no state")
        if problems:  # Google shows an error page and does not redirect
            return self._answer(400, ", ".join(problems).encode(), content_type="text/plain")
        back = {"state": query["state"]}
        if peer.consent:
            code = "4/" + secrets.token_urlsafe(24)
            with peer.lock:
                peer.codes[code] = query["redirect_uri"]
            back.update(code=code, scope=query["scope"])
        else:
            back["error"] = "access_denied"
        separator = "&" if "?" in query["redirect_uri"] else "?"
        location = query["redirect_uri"] + separator + urlencode(back)
        return self._answer(302, headers={"Location": location})

    def token(self, query, body):
        peer = self.server.peer
        if self.headers.get("Content-Type", "").split(";")[0] != (
            "application/x-www-form-urlencoded"
        ):
            return self._answer(
                400, {"error": "invalid_request", "error_description": "Invalid content type"}
            )
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        if form.get("client_id") != peer.client_id or (
            form.get("client_secret") != peer.client_secret
        ):
            return self._answer(
                401, {"error": "invalid_client", "error_description": "Unauthorized"}
            )
        grant = form.get("grant_type")
        with peer.lock:
            if grant == "authorization_code":
                redirect_uri = peer.codes.pop(form.get("code", ""), None)
                if redirect_uri is None or redirect_uri != form.get("redirect_uri"):
                    return self._answer(
                        400, {"error": "invalid_grant", "error_description": "Bad Request"}
                    )
                refresh = "1//" + secrets.token_urlsafe(24)
                peer.refresh_tokens.add(refresh)
                peer.grants += 1
            elif grant == "refresh_token":
                refresh = form.get("refresh_token", "")
                if refresh not in peer.refresh_tokens:
                    return self._answer(
                        400,
                        {
                            "error": "invalid_grant",
                            "error_description": "Token has been expired or revoked.",
                        },
                    )
                peer.refreshes += 1
                if peer.rotate_refresh_tokens:  # Google may hand out a new one
                    peer.refresh_tokens.discard(refresh)
                    refresh = "1//" + secrets.token_urlsafe(24)
                    peer.refresh_tokens.add(refresh)
            else:
                return self._answer(400, {"error": "unsupported_grant_type"})
            access = "ya29." + secrets.token_urlsafe(24)
            peer.access_tokens[access] = time.time() + peer.token_lifetime
        answer = {
            "access_token": access,
            "expires_in": peer.token_lifetime,
            "token_type": "Bearer",
            "scope": f"{DRIVE_FILE} openid https://www.googleapis.com/auth/userinfo.email",
        }
        if grant == "authorization_code" or peer.rotate_refresh_tokens:
            answer["refresh_token"] = refresh
        return self._answer(200, answer)

    def userinfo(self, query, body):
        account = self._bearer()
        if account is None:
            return None
        return self._answer(200, {"sub": "1098", "email": account, "email_verified": True})

    # --- Drive ---

    def files_list(self, query, body):
        peer = self.server.peer
        if self._bearer() is None or self._injected():
            return None
        try:
            terms = parse_query(query.get("q", ""))
        except QueryError:
            return self._answer(
                400,
                google_error(
                    400, "invalid", "Invalid Value", location="q", locationType="parameter"
                ),
            )
        with peer.lock:
            found = [f for f in peer.files.values() if _matches(f, terms)]
        # Only the fields asked for, as Drive answers (files(id,name,appProperties)).
        with_properties = "appProperties" in query.get("fields", "")
        return self._answer(
            200,
            {
                "files": [
                    {"id": f.id, "name": f.name}
                    | ({"appProperties": dict(f.app_properties)} if with_properties else {})
                    for f in found[: int(query.get("pageSize") or 100)]
                ]
            },
        )

    def _metadata(self, raw: bytes) -> dict | None:
        try:
            metadata = json.loads(raw)
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict) or not metadata.get("name"):
            self._answer(400, google_error(400, "badRequest", "Invalid metadata"))
            return None
        parents = metadata.get("parents") or ["root"]
        peer = self.server.peer
        with peer.lock:
            known = {"root", *peer.files}
        if len(parents) != 1 or parents[0] not in known:
            self._answer(404, google_error(404, "notFound", f"File not found: {parents[0]}."))
            return None
        return metadata

    def _create(self, metadata: dict, content: bytes) -> DriveFile:
        peer = self.server.peer
        created = DriveFile(
            id=secrets.token_urlsafe(12),
            name=metadata["name"],
            mime_type=metadata.get("mimeType") or "application/octet-stream",
            parents=list(metadata.get("parents") or ["root"]),
            app_properties=dict(metadata.get("appProperties") or {}),
            content=content,
        )
        with peer.lock:
            peer.files[created.id] = created
        return created

    def _created(self, created: DriveFile):
        peer = self.server.peer
        with peer.lock:
            lose, peer.lose_next_answer = peer.lose_next_answer, False
        if lose:  # the file is there, the answer never arrives
            self.close_connection = True
            return None
        return self._answer(200, {"id": created.id, "name": created.name})

    def files_create(self, query, body):
        if self._bearer() is None or self._injected():
            return None
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self._answer(400, google_error(400, "badContent", "Unsupported content"))
        metadata = self._metadata(body)
        if metadata is None:
            return None
        return self._answer(200, {"id": self._create(metadata, b"").id})

    def upload(self, query, body):
        if self._bearer() is None or self._injected():
            return None
        kind = query.get("uploadType")
        if kind == "multipart":
            return self._multipart(body)
        if kind == "resumable":
            return self._start_session(body)
        return self._answer(
            400, google_error(400, "invalid", "Invalid uploadType", location="uploadType")
        )

    def update(self, file_id, query, body):
        """files.update on the upload URI: new content (and metadata) for an existing file.
        ``parents`` cannot be written here (Drive wants addParents/removeParents)."""
        peer = self.server.peer
        if self._bearer() is None or self._injected():
            return None
        with peer.lock:
            existing = peer.files.get(file_id)
        if existing is None:
            return self._answer(404, google_error(404, "notFound", f"File not found: {file_id}."))
        kind = query.get("uploadType")
        if kind == "multipart":
            return self._multipart(body, update=existing)
        if kind == "resumable":
            return self._start_session(body, update=existing)
        return self._answer(
            400, google_error(400, "invalid", "Invalid uploadType", location="uploadType")
        )

    def _update_metadata(self, raw: bytes) -> dict | None:
        try:
            metadata = json.loads(raw)
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict):
            self._answer(400, google_error(400, "badRequest", "Invalid metadata"))
            return None
        if "parents" in metadata:
            self._answer(
                403,
                google_error(
                    403,
                    "fieldNotWritable",
                    "The parents field is not directly writable in update requests. Use the "
                    "addParents and removeParents parameters instead.",
                ),
            )
            return None
        return metadata

    def _updated(self, existing: DriveFile, metadata: dict, content: bytes):
        peer = self.server.peer
        with peer.lock:
            existing.content = content
            existing.mime_type = metadata.get("mimeType") or existing.mime_type
            existing.app_properties.update(metadata.get("appProperties") or {})
            peer.updates += 1
        return self._answer(200, {"id": existing.id, "name": existing.name})

    def _multipart(self, body, update=None):
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/related; boundary="):
            return self._answer(400, google_error(400, "badContent", "Expected multipart"))
        if len(body) > MULTIPART_LIMIT + 64 * 1024:
            return self._answer(413, google_error(413, "uploadTooLarge", "Too large"))
        parts = _multipart_parts(content_type.split("boundary=", 1)[1].strip('"'), body)
        if (
            parts is None
            or len(parts) != 2
            or not parts[0][0].get("content-type", "").startswith("application/json")
        ):
            return self._answer(400, google_error(400, "badContent", "Malformed multipart"))
        read = self._update_metadata if update is not None else self._metadata
        metadata = read(parts[0][1])
        if metadata is None:
            return None
        media_type, content = parts[1][0].get("content-type", ""), parts[1][1]
        if media_type != metadata.get("mimeType", media_type if update else None):
            return self._answer(400, google_error(400, "badContent", "Media type mismatch"))
        if update is not None:
            return self._updated(update, metadata, content)
        return self._created(self._create(metadata, content))

    def _start_session(self, body, update=None):
        peer = self.server.peer
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self._answer(400, google_error(400, "badContent", "Unsupported content"))
        if not self.headers.get("X-Upload-Content-Type"):
            return self._answer(400, google_error(400, "badContent", "No content type"))
        metadata = (self._update_metadata if update is not None else self._metadata)(body)
        if metadata is None:
            return None
        upload_id = secrets.token_urlsafe(12)
        total = int(self.headers.get("X-Upload-Content-Length") or -1)
        with peer.lock:
            peer.sessions[upload_id] = {
                "metadata": metadata,
                "total": total,
                "data": b"",
                "update": update,
            }
        location = f"{peer.url}/upload/drive/v3/files?uploadType=resumable&upload_id={upload_id}"
        return self._answer(200, headers={"Location": location})

    def upload_chunk(self, query, body):
        peer = self.server.peer
        with peer.lock:
            session = peer.sessions.get(query.get("upload_id", ""))
        if session is None:
            return self._answer(404, google_error(404, "notFound", "No such upload"))
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", self.headers.get("Content-Range", ""))
        if not match:
            return self._answer(400, google_error(400, "badContent", "Bad Content-Range"))
        first, last, total = (int(g) for g in match.groups())
        if (
            first != len(session["data"])
            or last - first + 1 != len(body)
            or (session["total"] not in (-1, total))
        ):
            return self._answer(400, google_error(400, "badContent", "Range mismatch"))
        if last + 1 < total and len(body) % CHUNK_UNIT:
            return self._answer(400, google_error(400, "badContent", "Chunk not 256 KiB"))
        with peer.lock:
            session["data"] += body
            peer.chunks += 1
        if last + 1 < total:
            return self._answer(308, headers={"Range": f"bytes=0-{last}"})
        with peer.lock:
            del peer.sessions[query["upload_id"]]
        if session["update"] is not None:
            return self._updated(session["update"], session["metadata"], session["data"])
        return self._created(self._create(session["metadata"], session["data"]))


class GooglePeer(LocalPeer):
    def __init__(self):
        self.lock = threading.Lock()
        self.client_id = "test-client.apps.googleusercontent.com"
        self.client_secret = "GOCSPX-test-secret-" + secrets.token_hex(4)
        self.account = "lambert@example.com"
        self.consent = True
        self.token_lifetime = 3599
        self.delay = 0.0
        self.rate_limit = 0.0  # Drive API requests per second; 0: no limit
        self.limited = 0  # answers 429 for the rate limit
        self.admitted: deque[float] = deque()  # when the requests of the last second came
        self.codes: dict[str, str] = {}
        self.refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, float] = {}
        self.files: dict[str, DriveFile] = {}
        self.sessions: dict[str, dict] = {}
        self.failures: list[tuple[int, str, int | None]] = []
        self.lose_next_answer = False
        self.rotate_refresh_tokens = False
        self.requests: list[tuple] = []
        self.grants = self.refreshes = self.chunks = self.updates = 0
        self.serve(_Handler)

    def over_limit(self) -> float | None:
        """None when one more request fits in the last second (and it is counted), else
        the seconds until it would."""
        now = time.monotonic()
        with self.lock:
            while self.admitted and self.admitted[0] <= now - 1.0:
                self.admitted.popleft()
            if len(self.admitted) < self.rate_limit:
                self.admitted.append(now)
                return None
            self.limited += 1
            return self.admitted[0] + 1.0 - now

    def fail(self, status: int, reason: str = "backendError", retry_after: int | None = None):
        with self.lock:
            self.failures.append((status, reason, retry_after))

    def expire_access_tokens(self):
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0

    def revoke(self):
        with self.lock:
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def tree(self) -> dict[str, bytes | None]:
        """Every live item by path from the root: a file's bytes, None for a folder."""
        with self.lock:
            items = {f.id: f for f in self.files.values() if not f.trashed}

        def path(item):
            parent = item.parents[0]
            return item.name if parent == "root" else f"{path(items[parent])}/{item.name}"

        return {path(f): (None if f.mime_type == FOLDER else f.content) for f in items.values()}


@pytest.fixture
def google_peer(settings):
    peer = GooglePeer().start()
    settings.GOOGLE_BASE_URL = peer.url
    settings.GOOGLE_DRIVE_CLIENT_ID = peer.client_id
    settings.GOOGLE_DRIVE_CLIENT_SECRET = peer.client_secret
    yield peer
    peer.stop()
