"""Dropbox: each document becomes one file in the firm's Dropbox, after a Dropbox sign-in.

The firm signs in with Dropbox once per installation (``extensions.signin``); nothing is
typed per client. Files land in ``Invoice_import/<company name>_<VAT number>/`` under
``AP`` (approved purchase invoices), ``AR`` (sent sales invoices) and, when the
installation enables them, ``CODA`` (transaction reports), named by
``extensions.paths.file_name`` (release date, number, a unique id): the same path on every
attempt.

Choices, from Dropbox's public documentation of API v2
(https://www.dropbox.com/developers/documentation/http/documentation) and of its OAuth
guide (https://developers.dropbox.com/oauth-guide):

* **Sign-in**: social-core's Dropbox backend, with ``token_access_type=offline`` so Dropbox
  hands out a refresh token beside its short-lived (a few hours) access token; a refresh
  answer carries no new refresh token, so the stored one is kept. Scopes: write files,
  read their metadata (to recognise our own file) and the account's name, shown as
  "Connected as".
* **Two hosts**: RPC calls (JSON body) go to ``api.dropboxapi.com``, uploads to
  ``content.dropboxapi.com`` with the bytes as body (``application/octet-stream``) and the
  arguments as JSON in the ``Dropbox-API-Arg`` header. Dropbox wants that header plain
  ASCII: every other character travels as ``\\uXXXX``. Paths start with ``/``; folders
  are made by the upload itself.
* **Once only.** The path is deterministic and a first send uses ``mode=add`` without
  autorename and with ``strict_conflict``, so a file already at the path is never copied
  beside it nor silently accepted: Dropbox answers 409 ``path/conflict/file``, and we read
  the file's metadata. It is ours (a retry after a lost answer) when its ``content_hash``
  (Dropbox's: SHA-256 of the SHA-256 of each 4 MiB block) is the content's, or, without a
  hash, when size and our ``client_modified`` (the release date) match: the send succeeds.
  Another file there is refused for this document alone. A person's *Re-send* (an
  idempotency key other than the job's) uses ``mode=overwrite``: the same file again.
* **Large files**: one ``files/upload`` request takes at most 150 MiB; above
  ``DROPBOX_UPLOAD_MAX_BYTES`` an upload session (``start``, ``append_v2``, ``finish``)
  sends the content in chunks of ``DROPBOX_CHUNK_BYTES``.
* **Errors**: a 409 carries an ``error_summary`` (``path/insufficient_space/..``, matched
  by its parts, never as a whole): a full Dropbox or a folder we may not write is
  *Needs attention*; ``too_many_write_operations`` (on an upload too) and 429 are rate
  limits, waited out on the connection (``Retry-After`` honoured), and 5xx transient; a
  401 (``expired_access_token``) renews the access token once and repeats the request, a
  second one or a revoked refresh token (``invalid_grant``) is *Reconnect
  needed* and the documents wait.
* **Where Dropbox is**: ``DROPBOX_BASE_URL``, when set, replaces every Dropbox origin
  (sign-in, token, API, content) with one base followed by Dropbox's own paths, for a test
  server or an operator's proxy. Every call goes through ``extensions.api.ApiClient``.
"""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import contextmanager
from typing import ClassVar

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from social_core.backends.dropbox import DropboxOAuth2V2

from extensions import signin
from extensions.api import ApiClient, RateLimited, Response, retry_after
from extensions.connectors.base import (
    DestinationRefused,
    ExportFile,
    PermanentError,
    ReauthorizationRequired,
    Receipt,
    TransientError,
)
from extensions.connectors.cloud import RATE_LIMIT_WAIT_SECONDS, ROOT_FOLDER, CloudDrive

SCOPE = ("account_info.read", "files.content.write", "files.metadata.read")
UPLOAD_MAX_BYTES = 150 * 1024 * 1024  # Dropbox's limit for one upload request
CHUNK_BYTES = 8 * 1024 * 1024  # a multiple of 4 MiB, as Dropbox advises for sessions
HASH_BLOCK = 4 * 1024 * 1024
OCTET_STREAM = "application/octet-stream"
SESSION_LOST = frozenset({"incorrect_offset", "not_found", "closed"})

DROPBOX_ORIGINS = {
    "www": "https://www.dropbox.com",
    "api": "https://api.dropboxapi.com",
    "content": "https://content.dropboxapi.com",
}


def dropbox_url(origin: str, path: str) -> str:
    """Dropbox's address for ``path``, or ``DROPBOX_BASE_URL`` followed by the same path."""
    base = getattr(settings, "DROPBOX_BASE_URL", "") or DROPBOX_ORIGINS[origin]
    return base.rstrip("/") + path


def header_arg(value: dict) -> str:
    """JSON for ``Dropbox-API-Arg``: ASCII only, as HTTP headers must be (``\\uXXXX``)."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("\x7f", "\\u007f")


def content_hash(content: bytes) -> str:
    """Dropbox's content hash: SHA-256 over the SHA-256 digests of each 4 MiB block."""
    blocks = b"".join(
        hashlib.sha256(content[start : start + HASH_BLOCK]).digest()
        for start in range(0, len(content), HASH_BLOCK)
    )
    return hashlib.sha256(blocks).hexdigest()


def client_modified(filename: str) -> str:
    """The release date the file name starts with, as Dropbox's ``client_modified``."""
    match = re.match(r"(\d{4})(\d{2})(\d{2})_", filename)
    return f"{match[1]}-{match[2]}-{match[3]}T00:00:00Z" if match else ""


def summary_parts(response: Response) -> list[str]:
    """The tags of a 409's ``error_summary`` (``path/conflict/file/..`` → path, conflict,
    file): Dropbox appends dots that say nothing, so it is read part by part."""
    body = response.json()
    summary = body.get("error_summary") if isinstance(body, dict) else ""
    return [part for part in str(summary or "").split("/") if part.strip(".")]


class DropboxOAuth2(signin.GuardedBackend, DropboxOAuth2V2):
    """social-core's Dropbox backend, wherever Dropbox is."""

    name = "dropbox-export"
    provider_name = "Dropbox"

    def authorization_url(self) -> str:
        return dropbox_url("www", "/oauth2/authorize")

    def access_token_url(self) -> str:
        return dropbox_url("api", "/oauth2/token")

    def user_data(self, access_token, *args, **kwargs):
        """Only to show which account was connected: nobody is signed in with it."""
        return self.get_json(
            dropbox_url("api", "/2/users/get_current_account"),
            headers={"Authorization": f"Bearer {access_token}"},
            method="POST",
        )


class DropboxApi(ApiClient):
    """Dropbox's own meaning of its answers: the ``error_summary`` of a 409, rate limits."""

    def classify(self, response: Response):
        message = self.describe(response)
        if response.status == 429:
            return RateLimited(
                _("Dropbox asks to slow down (%(message)s).") % {"message": message},
                retry_after=retry_after(response.headers.get("Retry-After")) or 1,
            )
        if response.status != 409:
            return None
        parts = summary_parts(response)
        if "insufficient_space" in parts:
            return DestinationRefused(
                _("Dropbox is full (%(message)s): free some space, then retry.")
                % {"message": message}
            )
        if "no_write_permission" in parts:
            return DestinationRefused(
                _(
                    "Dropbox does not allow this account to write in %(folder)s (%(message)s): "
                    "check its permissions, then retry."
                )
                % {"folder": ROOT_FOLDER, "message": message}
            )
        if "too_many_write_operations" in parts:
            return RateLimited(
                _("Dropbox is busy with other changes in this account (%(message)s).")
                % {"message": message},
                retry_after=retry_after(response.headers.get("Retry-After")) or 1,
            )
        if parts[:1] == ["lookup_failed"] and set(parts[1:2]) & SESSION_LOST:
            return TransientError(
                _("Dropbox lost track of the upload (%(message)s).") % {"message": message}
            )
        return None


class DropboxSession:
    """One API client (one kept-alive connection per host) and the access token."""

    def __init__(self, connector: DropboxConnector, api: DropboxApi):
        self.connector = connector
        self.api = api
        self.token = ""

    def call(self, url: str, *, arg=None, body=None, data=b"", accept=()) -> Response:
        """One POST with a fresh token; a 401 renews the token once and repeats it.

        ``arg`` makes it an upload (``data`` the bytes), ``body`` an RPC call with JSON;
        neither, an RPC call without arguments (no body at all, as Dropbox wants).
        """
        headers = {}
        if arg is not None:
            headers = {"Content-Type": OCTET_STREAM, "Dropbox-API-Arg": header_arg(arg)}
        elif body is not None:
            headers = {"Content-Type": "application/json"}
            data = json.dumps(body).encode()
        for attempt in (1, 2):
            if not self.token or attempt == 2:
                self.token = signin.access_token(
                    self.connector.destination, self.connector.oauth, stale=self.token
                )
                self.api.hide(self.token)
            response = self.api.request(
                "POST",
                url,
                headers={"Authorization": f"Bearer {self.token}", **headers},
                data=data or None,
                accept=(401, *accept),
            )
            if response.status != 401:
                return response
        raise ReauthorizationRequired(
            _("Dropbox refused the access token (%(message)s): click Reconnect.")
            % {"message": self.api.describe(response)}
        )

    def account(self) -> dict:
        return self.call(dropbox_url("api", "/2/users/get_current_account")).json() or {}

    def metadata(self, path: str) -> dict:
        answer = self.call(dropbox_url("api", "/2/files/get_metadata"), body={"path": path})
        return answer.json() or {}

    # --- files ---

    def send(self, export_file: ExportFile) -> Receipt:
        path = "/" + "/".join((*export_file.folder, export_file.filename))
        key = export_file.metadata.get("job_id") or ""
        again = bool(key) and (export_file.idempotency_key or key) != key  # a Re-send
        commit = {
            "path": path,
            "mode": "overwrite" if again else "add",
            "autorename": False,
            "strict_conflict": not again,
        }
        modified = client_modified(export_file.filename)
        if modified:
            commit["client_modified"] = modified
        content = export_file.content
        if len(content) <= self.connector.upload_max_bytes():
            arg = {**commit, "content_hash": content_hash(content)}
            response = self.call(
                dropbox_url("content", "/2/files/upload"), arg=arg, data=content, accept=(409,)
            )
        else:
            response = self._session(commit, content)
        if response.status == 409:
            return self._conflict(response, path, content, modified)
        answer = response.json() or {}
        return Receipt(reference=str(answer.get("id") or path))

    def _session(self, commit: dict, content: bytes) -> Response:
        chunk = self.connector.chunk_bytes()
        pieces = [content[start : start + chunk] for start in range(0, len(content), chunk)]
        started = self.call(
            dropbox_url("content", "/2/files/upload_session/start"),
            arg={"close": False},
            data=pieces[0],
        ).json()
        session_id = (started or {}).get("session_id")
        if not session_id:
            raise TransientError(_("Dropbox did not open an upload session."))
        offset = len(pieces[0])
        for piece in pieces[1:-1]:
            self.call(
                dropbox_url("content", "/2/files/upload_session/append_v2"),
                arg={"cursor": {"session_id": session_id, "offset": offset}, "close": False},
                data=piece,
            )
            offset += len(piece)
        last = pieces[-1] if len(pieces) > 1 else b""
        return self.call(
            dropbox_url("content", "/2/files/upload_session/finish"),
            arg={
                "cursor": {"session_id": session_id, "offset": offset},
                "commit": commit,
                "content_hash": content_hash(content),
            },
            data=last,
            accept=(409,),
        )

    def _conflict(self, response: Response, path: str, content: bytes, modified: str):
        """A file is already at ``path``: ours (a retry after a lost answer) or not."""
        parts = summary_parts(response)
        if parts[:1] == ["lookup_failed"]:
            parts = parts[1:]
        if parts[:3] != ["path", "conflict", "file"]:
            raise self.api.failure(response)
        found = self.metadata(path)
        if found.get("content_hash"):
            same = found["content_hash"] == content_hash(content)
        else:
            same = bool(modified) and (found.get("size"), found.get("client_modified")) == (
                len(content),
                modified,
            )
        if found.get(".tag") == "file" and same:
            return Receipt(reference=str(found.get("id") or path), detail=_("Already in Dropbox."))
        raise PermanentError(
            _(
                "Another file already has the name %(path)s in Dropbox; Re-send replaces it "
                "with this document."
            )
            % {"path": path}
        )


class DropboxConnector(CloudDrive):
    key = "dropbox"
    logo = "extensions/logos/dropbox.svg"
    name = "Dropbox"
    description = gettext_lazy(
        "Puts every document in your Dropbox, one folder per client, after you sign in with "
        "Dropbox."
    )
    binding_fields = ("account",)
    terms_url = "https://www.dropbox.com/terms"
    writes = gettext_lazy(
        "Creates the folder Invoice_import in your Dropbox, one folder per client in it, and "
        "the documents' files there. It never removes a file."
    )
    oauth: ClassVar = signin.OAuthSpec(
        backend=DropboxOAuth2,
        scope=SCOPE,
        extra_arguments={"token_access_type": "offline"},
        client_id_setting="DROPBOX_APP_KEY",
        client_secret_setting="DROPBOX_APP_SECRET",  # noqa: S106 (a setting's name)
        provider="Dropbox",
        button=gettext_lazy("Sign in with Dropbox"),
        advice=gettext_lazy(
            "Dropbox asks you to sign in, then to allow this portal to write files in your "
            "Dropbox and to read their names and your account's name."
        ),
        unavailable=gettext_lazy("The operator has not configured Dropbox sign-in."),
    )

    @staticmethod
    def upload_max_bytes() -> int:
        """Above it, an upload session; never above what one request may carry."""
        size = getattr(settings, "DROPBOX_UPLOAD_MAX_BYTES", None) or UPLOAD_MAX_BYTES
        return min(size, UPLOAD_MAX_BYTES)

    @staticmethod
    def chunk_bytes() -> int:
        size = getattr(settings, "DROPBOX_CHUNK_BYTES", None) or CHUNK_BYTES
        return max(1, min(size, UPLOAD_MAX_BYTES))

    def api(self) -> DropboxApi:
        return DropboxApi(
            dropbox_url("api", "/2/"),
            secrets=signin.secret_values(self.destination.secrets or {}),
            rate_limit_wait=RATE_LIMIT_WAIT_SECONDS,
        )

    @contextmanager
    def open(self):
        with self.api() as api:
            yield DropboxSession(self, api)

    def check(self) -> str:
        """Reads the signed-in account: the sign-in works (folders come with the files)."""
        with self.open() as session:
            account = session.account()
        name = account.get("email") or self.destination.settings.get("account") or "?"
        return _("Connected to Dropbox as %(account)s; files go to %(folder)s/.") % {
            "account": name,
            "folder": ROOT_FOLDER,
        }
