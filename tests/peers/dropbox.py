"""A strict local Dropbox for tests: sign-in, token endpoint, account and files API v2.

``dropbox_peer`` runs one ``ThreadingHTTPServer`` on 127.0.0.1 answering Dropbox's paths
(the tests point ``DROPBOX_BASE_URL`` at it, so the www, api and content hosts are one):

* ``GET /oauth2/authorize``: checks the app key, redirect URI, ``response_type=code``,
  the scopes, state and ``token_access_type=offline``, then redirects back with a one-time
  code, or with ``error=access_denied`` when ``peer.consent`` is False.
* ``POST /oauth2/token``: form-encoded only, the app key and secret in HTTP Basic or in
  the form; the ``authorization_code`` grant (the code once, for its redirect URI) and
  the ``refresh_token`` grant, which issues no new refresh token. Access tokens expire
  after ``peer.token_lifetime``; ``peer.revoke()`` makes every refresh token
  ``invalid_grant`` and every access token invalid.
* ``POST /2/users/get_current_account``: no body (or ``null``), as Dropbox wants.
* ``POST /2/files/get_metadata`` (JSON), ``/2/files/upload`` and
  ``/2/files/upload_session/start|append_v2|finish``: ``Content-Type:
  application/octet-stream``, the arguments in an ASCII-only ``Dropbox-API-Arg`` JSON with
  only the fields Dropbox knows, paths checked, offsets checked, ``content_hash`` checked;
  write modes ``add`` (identical content is no conflict unless ``strict_conflict``) and
  ``overwrite`` (the same file id), ``autorename`` as Dropbox does it; folders are implied.

Every API call needs ``Authorization: Bearer <live token>`` (401 ``invalid_access_token``
or ``expired_access_token`` otherwise). ``peer.fail(status, summary, retry_after=)``
queues an error answer for the next files call; ``peer.lose_next_answer`` makes the next
upload (or session finish) write its file and close the connection without answering.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.peers.local import JsonHandler, LocalPeer

SCOPES = frozenset({"account_info.read", "files.content.write", "files.metadata.read"})
UPLOAD_LIMIT = 150 * 1024 * 1024
BLOCK = 4 * 1024 * 1024
COMMIT_FIELDS = frozenset(
    {"path", "mode", "autorename", "client_modified", "mute", "property_groups", "strict_conflict"}
)


def dropbox_hash(content: bytes) -> str:
    digests = b"".join(
        hashlib.sha256(content[i : i + BLOCK]).digest() for i in range(0, len(content), BLOCK)
    )
    return hashlib.sha256(digests).hexdigest()


@dataclass
class DropboxFile:
    id: str
    path: str  # as first written (path_display)
    content: bytes
    rev: str
    client_modified: str
    server_modified: str

    def metadata(self) -> dict:
        return {
            ".tag": "file",
            "name": self.path.rsplit("/", 1)[1],
            "id": self.id,
            "path_lower": self.path.lower(),
            "path_display": self.path,
            "rev": self.rev,
            "size": len(self.content),
            "client_modified": self.client_modified,
            "server_modified": self.server_modified,
            "content_hash": dropbox_hash(self.content),
            "is_downloadable": True,
        }


class Refused(Exception):
    """An error answer: (status, JSON body or text)."""

    def __init__(self, status: int, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def route_error(summary: str, error: dict) -> Refused:
    return Refused(409, {"error_summary": summary, "error": error})


def write_error(reason: str, detail: dict | None = None, prefix="path") -> Refused:
    tag = {".tag": reason, **({reason: detail} if detail else {})}
    summary = f"{prefix}/{reason}/" + (f"{detail['.tag']}/" if detail else "") + "."
    return route_error(summary, {".tag": prefix, "reason": tag} if prefix == "path" else tag)


def bad_request(function: str, text: str) -> Refused:
    return Refused(400, f'Error in call to API function "{function}": {text}')


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _Handler(JsonHandler):
    def _handle(self):
        peer = self.server.peer
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with peer.lock:
            peer.requests.append((self.command, parts.path, dict(self.headers), body))
        routes = {
            ("GET", "/oauth2/authorize"): self.authorize,
            ("POST", "/oauth2/token"): self.token,
            ("POST", "/2/users/get_current_account"): self.account,
            ("POST", "/2/files/get_metadata"): self.get_metadata,
            ("POST", "/2/files/upload"): self.upload,
            ("POST", "/2/files/upload_session/start"): self.session_start,
            ("POST", "/2/files/upload_session/append_v2"): self.session_append,
            ("POST", "/2/files/upload_session/finish"): self.session_finish,
        }
        route = routes.get((self.command, parts.path))
        if route is None:
            return self._answer(404, "Unknown API function")
        try:
            if parts.path.startswith("/2/"):
                self._bearer()
            if parts.path.startswith("/2/files/"):
                self._injected()
            answer = route(query, body)
        except Refused as refused:
            return self._answer(refused.status, refused.body, refused.headers)
        if answer is not None:
            self._answer(*answer)
        return None

    do_GET = do_POST = do_PUT = _handle

    # --- checks ---

    def _bearer(self):
        peer = self.server.peer
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        with peer.lock:
            expires = peer.access_tokens.get(token)
        if peer.refuse_access_tokens:
            expires = None
        if expires is None or expires < time.time():
            tag = "invalid_access_token" if expires is None else "expired_access_token"
            raise Refused(401, {"error_summary": f"{tag}/..", "error": {".tag": tag}})

    def _injected(self):
        peer = self.server.peer
        with peer.lock:
            failure = peer.failures.pop(0) if peer.failures else None
        if failure is None:
            return
        status, summary, retry_after = failure
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if status == 429:
            reason = summary or "too_many_requests"
            body = {
                "error_summary": f"{reason}/..",
                "error": {"reason": {".tag": reason}, "retry_after": retry_after or 1},
            }
        elif summary:
            tags = [tag for tag in summary.split("/") if tag.strip(".")]
            body = {"error_summary": summary, "error": {".tag": tags[0]}}
        else:
            body = "Internal Server Error"
        raise Refused(status, body, headers)

    def _rpc(self, function: str, body: bytes) -> dict:
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise bad_request(function, 'Bad HTTP "Content-Type" header.')
        try:
            value = json.loads(body)
        except ValueError:
            raise bad_request(function, "request body: could not decode input as JSON") from None
        if not isinstance(value, dict):
            raise bad_request(function, "request body: expected an object")
        return value

    def _arg(self, function: str, allowed: frozenset[str]) -> dict:
        """The ``Dropbox-API-Arg`` header: ASCII JSON with only the fields Dropbox knows."""
        if self.headers.get("Content-Type", "") != "application/octet-stream":
            raise bad_request(
                function,
                'Bad HTTP "Content-Type" header. Expecting one of "application/octet-stream", '
                '"text/plain; charset=dropbox-cors-hack".',
            )
        raw = self.headers.get("Dropbox-API-Arg")
        if raw is None:
            raise bad_request(function, 'Missing HTTP header "Dropbox-API-Arg".')
        if any(ord(char) > 126 for char in raw):
            raise bad_request(function, 'HTTP header "Dropbox-API-Arg": not ASCII-safe JSON')
        try:
            arg = json.loads(raw)
        except ValueError:
            raise bad_request(
                function, 'HTTP header "Dropbox-API-Arg": could not decode input as JSON'
            ) from None
        if not isinstance(arg, dict) or set(arg) - allowed:
            raise bad_request(function, f'HTTP header "Dropbox-API-Arg": unknown field in {raw}')
        with self.server.peer.lock:
            self.server.peer.args.append(raw)
        return arg

    @staticmethod
    def _path(function: str, path) -> str:
        if not isinstance(path, str) or not path.startswith("/") or path.endswith("/"):
            raise bad_request(function, f"path: {path!r} did not match pattern")
        names = path[1:].split("/")
        if any(name in ("", ".", "..") or name != name.strip() for name in names):
            raise write_error("malformed_path")
        return path

    def _commit(self, function: str, commit: dict, content: bytes):
        """Write ``content`` at the commit's path as Dropbox's write modes say."""
        peer = self.server.peer
        path = self._path(function, commit.get("path"))
        mode = commit.get("mode", "add")
        mode = mode.get(".tag") if isinstance(mode, dict) else mode
        if mode not in ("add", "overwrite"):
            raise bad_request(function, f"mode: unknown tag {mode!r}")
        if not isinstance(commit.get("autorename", False), bool):
            raise bad_request(function, "autorename: expected a boolean")
        if len(content) > peer.upload_limit:
            raise route_error("payload_too_large/..", {".tag": "payload_too_large"})
        with peer.lock:
            ancestors = ["/".join(path.split("/")[:i]) for i in range(2, path.count("/") + 1)]
            if any(a.lower() in peer.files for a in ancestors):
                raise write_error("conflict", {".tag": "file_ancestor"})
            if path.lower() in peer.folders:
                raise write_error("conflict", {".tag": "folder"})
            if peer.full:
                raise write_error("insufficient_space")
            existing = peer.files.get(path.lower())
            if existing is not None and mode == "add":
                identical = existing.content == content and not commit.get("strict_conflict")
                if identical:
                    return existing.metadata()
                if not commit.get("autorename"):
                    raise write_error("conflict", {".tag": "file"})
                stem, dot, extension = path.rpartition(".")
                number = 1
                while f"{stem} ({number}){dot}{extension}".lower() in peer.files:
                    number += 1
                path = f"{stem} ({number}){dot}{extension}"
                existing = None
            if existing is not None:  # overwrite: same file, new revision
                existing.content = content
                existing.rev = secrets.token_hex(8)
                existing.client_modified = commit.get("client_modified") or _now()
                peer.overwrites += 1
                written = existing
            else:
                written = DropboxFile(
                    id="id:" + secrets.token_urlsafe(12),
                    path=path,
                    content=content,
                    rev=secrets.token_hex(8),
                    client_modified=commit.get("client_modified") or _now(),
                    server_modified=_now(),
                )
                peer.files[path.lower()] = written
                peer.folders.update(a.lower() for a in ancestors)
                peer.folder_names.update({a.lower(): a for a in ancestors})
            lose, peer.lose_next_answer = peer.lose_next_answer, False
        if lose:  # written; the answer never arrives
            self.close_connection = True
            return None
        return written.metadata()

    # --- OAuth ---

    def authorize(self, query, body):
        peer = self.server.peer
        problems = []
        if query.get("client_id") != peer.app_key:
            problems.append("invalid client_id")
        if query.get("response_type") != "code":
            problems.append("unsupported response_type")
        if not query.get("redirect_uri", "").startswith(("http://", "https://")):
            problems.append("invalid redirect_uri")
        if not set(query.get("scope", "").split(" ")) >= SCOPES:
            problems.append("missing scope")
        if query.get("token_access_type") != "offline":
            problems.append("no offline access")
        if not query.get("state"):
            problems.append("no state")
        if problems:  # Dropbox shows an error page and does not redirect
            return 400, ", ".join(problems)
        back = {"state": query["state"]}
        if peer.consent:
            code = secrets.token_urlsafe(24)
            with peer.lock:
                peer.codes[code] = query["redirect_uri"]
            back["code"] = code
        else:
            back.update(error="access_denied", error_description="The user chose not to give")
        separator = "&" if "?" in query["redirect_uri"] else "?"
        return 302, b"", {"Location": query["redirect_uri"] + separator + urlencode(back)}

    def token(self, query, body):
        peer = self.server.peer
        if self.headers.get("Content-Type", "").split(";")[0] != (
            "application/x-www-form-urlencoded"
        ):
            return 400, {"error": "invalid_request", "error_description": "bad content type"}
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        key, secret = form.get("client_id"), form.get("client_secret")
        authorization = self.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            pair = base64.b64decode(authorization[6:]).decode()
            key, _colon, secret = pair.partition(":")
        if key != peer.app_key or secret != peer.app_secret:
            return 400, {"error": "invalid_client", "error_description": "invalid client"}
        grant = form.get("grant_type")
        answer = {"token_type": "bearer", "expires_in": peer.token_lifetime}
        with peer.lock:
            if grant == "authorization_code":
                redirect_uri = peer.codes.pop(form.get("code", ""), None)
                if redirect_uri is None or redirect_uri != form.get("redirect_uri"):
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "code doesn't exist",
                    }
                refresh = secrets.token_urlsafe(32)
                peer.refresh_tokens.add(refresh)
                peer.grants += 1
                answer.update(
                    refresh_token=refresh,
                    scope=" ".join(sorted(SCOPES)),
                    uid="12345",
                    account_id=peer.account_id,
                )
            elif grant == "refresh_token":
                if form.get("refresh_token", "") not in peer.refresh_tokens:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "refresh token is invalid or revoked",
                    }
                peer.refreshes += 1
            else:
                return 400, {"error": "unsupported_grant_type"}
            access = "sl." + secrets.token_urlsafe(32)
            peer.access_tokens[access] = time.time() + peer.token_lifetime
        return 200, {"access_token": access, **answer}

    # --- API ---

    def account(self, query, body):
        peer = self.server.peer
        if body not in (b"", b"null"):
            raise bad_request("users/get_current_account", "request body: expected no body")
        if body == b"" and self.headers.get("Content-Type"):
            raise bad_request(
                "users/get_current_account", "request body: could not decode input as JSON"
            )
        return 200, {
            "account_id": peer.account_id,
            "name": {"display_name": "Hélène Lambert", "given_name": "Hélène"},
            "email": peer.account,
            "email_verified": True,
            "disabled": False,
        }

    def get_metadata(self, query, body):
        peer = self.server.peer
        path = self._path("files/get_metadata", self._rpc("files/get_metadata", body).get("path"))
        with peer.lock:
            found = peer.files.get(path.lower())
            if found is not None:
                metadata = found.metadata()
                if peer.hashless:  # a file Dropbox has not hashed (yet): no content_hash
                    del metadata["content_hash"]
                return 200, metadata
            if path.lower() in peer.folders:
                display = peer.folder_names[path.lower()]
                return 200, {".tag": "folder", "path_display": display, "id": "id:folder"}
        raise write_error("not_found")

    def upload(self, query, body):
        allowed = COMMIT_FIELDS | {"content_hash"}
        arg = self._arg("files/upload", allowed)
        if "content_hash" in arg and arg["content_hash"] != dropbox_hash(body):
            raise route_error("content_hash_mismatch/..", {".tag": "content_hash_mismatch"})
        metadata = self._commit("files/upload", arg, body)
        return None if metadata is None else (200, metadata)

    def _cursor(self, function: str, cursor) -> dict:
        peer = self.server.peer
        if not isinstance(cursor, dict):
            raise bad_request(function, "cursor: expected an object")
        with peer.lock:
            session = peer.sessions.get(cursor.get("session_id"))
        if session is None:
            raise route_error("lookup_failed/not_found/..", {".tag": "not_found"})
        if cursor.get("offset") != len(session["data"]):
            raise route_error(
                "lookup_failed/incorrect_offset/..",
                {".tag": "incorrect_offset", "correct_offset": len(session["data"])},
            )
        if session["closed"]:
            raise route_error("lookup_failed/closed/..", {".tag": "closed"})
        return session

    def session_start(self, query, body):
        peer = self.server.peer
        arg = self._arg(
            "files/upload_session/start", frozenset({"close", "session_type", "content_hash"})
        )
        session_id = "AAA" + secrets.token_urlsafe(16)
        with peer.lock:
            peer.sessions[session_id] = {"data": body, "closed": bool(arg.get("close"))}
            peer.chunks += 1
        return 200, {"session_id": session_id}

    def session_append(self, query, body):
        peer = self.server.peer
        arg = self._arg(
            "files/upload_session/append_v2", frozenset({"cursor", "close", "content_hash"})
        )
        session = self._cursor("files/upload_session/append_v2", arg.get("cursor"))
        with peer.lock:
            session["data"] += body
            session["closed"] = bool(arg.get("close"))
            peer.chunks += 1
        return 200, b""

    def session_finish(self, query, body):
        peer = self.server.peer
        function = "files/upload_session/finish"
        arg = self._arg(function, frozenset({"cursor", "commit", "content_hash"}))
        commit = arg.get("commit")
        if not isinstance(commit, dict) or set(commit) - COMMIT_FIELDS:
            raise bad_request(function, "commit: unknown field")
        session = self._cursor(function, arg.get("cursor"))
        content = session["data"] + body
        if "content_hash" in arg and arg["content_hash"] != dropbox_hash(content):
            raise route_error("content_hash_mismatch/..", {".tag": "content_hash_mismatch"})
        with peer.lock:
            peer.sessions.pop(arg["cursor"]["session_id"], None)
            peer.chunks += 1
        metadata = self._commit(function, commit, content)
        return None if metadata is None else (200, metadata)


class DropboxPeer(LocalPeer):
    def __init__(self):
        self.lock = threading.Lock()
        self.app_key = "test-app-key"
        self.app_secret = "test-app-secret-" + secrets.token_hex(4)
        self.account = "lambert@example.com"
        self.account_id = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
        self.consent = True
        self.full = False
        self.hashless = False  # get_metadata answers without content_hash
        self.refuse_access_tokens = False  # every access token, even a new one, is refused
        self.token_lifetime = 14400
        self.upload_limit = UPLOAD_LIMIT
        self.codes: dict[str, str] = {}
        self.refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, float] = {}
        self.files: dict[str, DropboxFile] = {}
        self.folders: set[str] = set()
        self.folder_names: dict[str, str] = {}
        self.sessions: dict[str, dict] = {}
        self.failures: list[tuple[int, str, int | None]] = []
        self.lose_next_answer = False
        self.requests: list[tuple] = []
        self.args: list[str] = []  # every Dropbox-API-Arg header, as received
        self.grants = self.refreshes = self.chunks = self.overwrites = 0
        self.serve(_Handler)

    def fail(self, status: int, summary: str = "", retry_after: int | None = None):
        """The next files call answers ``status`` with this ``error_summary``."""
        with self.lock:
            self.failures.append((status, summary, retry_after))

    def expire_access_tokens(self):
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0

    def revoke(self):
        with self.lock:
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def put(self, path: str, content: bytes, client_modified: str = "2020-01-01T00:00:00Z"):
        """A file someone put there themselves."""
        with self.lock:
            self.files[path.lower()] = DropboxFile(
                "id:" + secrets.token_urlsafe(12), path, content, "1", client_modified, _now()
            )

    def tree(self) -> dict[str, bytes]:
        """Every file by its path without the leading slash: its bytes."""
        with self.lock:
            return {f.path[1:]: f.content for f in self.files.values()}


@pytest.fixture
def dropbox_peer(settings):
    peer = DropboxPeer().start()
    settings.DROPBOX_BASE_URL = peer.url
    settings.DROPBOX_APP_KEY = peer.app_key
    settings.DROPBOX_APP_SECRET = peer.app_secret
    yield peer
    peer.stop()
