"""Google Drive: each document becomes one file in the firm's Drive, after a Google sign-in.

The firm signs in with Google once per installation (``extensions.signin``); nothing is
typed per client. Files land in ``Invoice_import/<company name>_<VAT number>/`` under
``AP`` (approved purchase invoices), ``AR`` (sent sales invoices) and, when the
installation enables them, ``CODA`` (transaction reports), named
``<release date>_<number>_<sha256[:8]>.<ext>`` (``extensions.paths.file_name``: the date
the document was released for syncing, its number, a unique id).

Choices, from Google's public documentation of Drive API v3
(https://developers.google.com/drive/api/reference/rest/v3 and the guides under
https://developers.google.com/drive/api/guides):

* **Scope** ``drive.file``: the app sees only the files and folders it created, so every
  folder and file we look for is one we made; ``email`` to show the signed-in account.
  ``access_type=offline`` and ``prompt=consent`` so Google hands out a refresh token on
  every sign-in, a Reconnect included. While the operator's Google app is not verified,
  Google shows a warning first ("Google hasn't verified this app"): *Continue* goes on.
* **Folders** are found by name, parent, folder type and ``trashed = false`` (string
  values quoted, ``'`` and ``\\`` escaped), created when missing, their ids kept in the
  cache every worker shares (Django's, for a day) so a month-end backlog looks each up
  once, not once per connection. Creating one happens under the installation row's lock,
  looking again inside it: Drive allows two folders of one name, and two workers must not
  make them. A kept id the Drive no longer knows (a folder deleted by hand) is forgotten
  and the folders found or made again, once per file.
* **Once only.** Drive also allows two files of one name, so each file carries our key
  (the export job's, the same for every send of the document to this integration) and the
  send's idempotency key in ``appProperties``, and is looked up by the first before an
  upload: a retry after a lost answer finds the file with the same send key and stops
  there; a person's *Re-send* (a new send key) writes the content again into that same
  file (``files.update``), never a second copy.
* **Uploads**: multipart (metadata and content in one request) up to 5 MB; above it a
  resumable session, sent in chunks of a multiple of 256 KiB. Both thresholds are
  settings (``GOOGLE_DRIVE_MULTIPART_MAX_BYTES``, ``GOOGLE_DRIVE_CHUNK_BYTES``).
* **Errors** (``error.errors[].reason`` in the JSON answer): 403 with a rate-limit reason,
  429 and 5xx are transient (``Retry-After`` honoured when sent). A rate limit is first
  waited out on the connection, as Google's guide asks (exponential backoff from about a
  second when no ``Retry-After`` is sent; ``extensions.api``, within
  ``cloud.RATE_LIMIT_WAIT_SECONDS``): the batch goes on instead of waiting for the
  engine's retry a minute later; a longer wait is left to the engine. 401 renews the access
  token once and repeats the request, a second 401 needs a new sign-in; a refused or
  revoked refresh token (``invalid_grant``) is *Reconnect needed*, the documents wait;
  ``storageQuotaExceeded`` waits for the firm to free space (*Needs attention*).
* **Where Google is**: ``GOOGLE_BASE_URL``, when set, replaces every Google origin (sign-in,
  token, user info, API, upload) with one base followed by Google's own paths, for a test
  server or an operator's proxy. Every call goes through ``extensions.api.ApiClient``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from contextlib import contextmanager
from typing import ClassVar

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from social_core.backends.google import GoogleOAuth2

from extensions import signin
from extensions.api import ApiClient, RateLimited, Response, retry_after
from extensions.connectors.base import (
    DestinationRefused,
    ExportFile,
    ReauthorizationRequired,
    Receipt,
    TransientError,
)
from extensions.connectors.cloud import RATE_LIMIT_WAIT_SECONDS, ROOT_FOLDER, CloudDrive

FOLDER_TYPE = "application/vnd.google-apps.folder"
KEY_PROPERTY = "partnerspaceKey"  # the export job's: one file per document and integration
SEND_PROPERTY = "partnerspaceSend"  # the send's idempotency key: new after a Re-send
DOCUMENT_PROPERTY = "partnerspaceDocument"
SCOPE = ("https://www.googleapis.com/auth/drive.file", "email")
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})
QUOTA_REASONS = frozenset({"storageQuotaExceeded", "quotaExceeded"})
MULTIPART_MAX_BYTES = 5 * 1024 * 1024
CHUNK_BYTES = 8 * 1024 * 1024  # a multiple of 256 KiB, as resumable uploads require
CHUNK_UNIT = 256 * 1024

GOOGLE_ORIGINS = {
    "accounts": "https://accounts.google.com",
    "oauth2": "https://oauth2.googleapis.com",
    "apis": "https://www.googleapis.com",
}


def google_url(origin: str, path: str) -> str:
    """Google's address for ``path``, or ``GOOGLE_BASE_URL`` followed by the same path."""
    base = getattr(settings, "GOOGLE_BASE_URL", "") or GOOGLE_ORIGINS[origin]
    return base.rstrip("/") + path


def quoted(value: str) -> str:
    """A string value in a Drive query: single quotes, ``\\`` and ``'`` escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class GoogleDriveOAuth2(signin.GuardedBackend, GoogleOAuth2):
    """social-core's Google backend on the current endpoints, wherever Google is."""

    name = "google-drive"
    provider_name = "Google"

    def authorization_url(self) -> str:
        return google_url("accounts", "/o/oauth2/v2/auth")

    def access_token_url(self) -> str:
        return google_url("oauth2", "/token")

    def user_data(self, access_token, *args, **kwargs):
        """Only to show which account was connected: nobody is signed in with it."""
        return self.get_json(
            google_url("apis", "/oauth2/v3/userinfo"),
            headers={"Authorization": f"Bearer {access_token}"},
        )


class DriveApi(ApiClient):
    """Drive's own meaning of its answers: which 403s are rate limits or a full Drive."""

    def classify(self, response: Response):
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        reasons = set()
        if isinstance(error, dict):
            reasons = {
                str(item.get("reason"))
                for item in error.get("errors") or ()
                if isinstance(item, dict)
            }
        if response.status == 429 or (response.status == 403 and reasons & RATE_LIMIT_REASONS):
            return RateLimited(
                _("Google Drive asks to slow down (%(message)s).")
                % {"message": self.describe(response)},
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        if response.status == 403 and reasons & QUOTA_REASONS:
            return DestinationRefused(
                _("The Google Drive is full (%(message)s): free some space, then retry.")
                % {"message": self.describe(response)}
            )
        return None


FOLDER_IDS_SECONDS = 24 * 3600  # how long a folder's id is kept in the shared cache


class _ParentGone(Exception):
    """The Drive answered 404 for the folder a new file was to go into."""


class DriveSession:
    """One API client (one kept-alive connection) and the folder ids found on it."""

    def __init__(self, connector: GoogleDriveConnector, api: DriveApi):
        self.connector = connector
        self.api = api
        self.token = ""
        self.folders: dict[tuple[str, ...], str] = {}

    # --- requests with the access token ---

    def call(self, method: str, url: str, *, headers=None, accept=(), **kwargs) -> Response:
        """One request with a fresh token; a 401 renews the token once and repeats it."""
        for attempt in (1, 2):
            if not self.token or attempt == 2:
                self.token = signin.access_token(
                    self.connector.destination, self.connector.oauth, stale=self.token
                )
                self.api.hide(self.token)
            response = self.api.request(
                method,
                url,
                headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
                accept=(401, *accept),
                **kwargs,
            )
            if response.status != 401:
                return response
        raise ReauthorizationRequired(
            _("Google refused the access token (%(message)s): click Reconnect.")
            % {"message": self.api.describe(response)}
        )

    def find(self, query: str) -> str | None:
        found = self.find_file(query)
        return found["id"] if found else None

    def find_file(self, query: str) -> dict | None:
        """The first file matching ``query``: its id, name and our ``appProperties``."""
        answer = self.call(
            "GET",
            google_url("apis", "/drive/v3/files"),
            params={
                "q": query,
                "fields": "files(id,name,appProperties)",
                "pageSize": "10",
                "spaces": "drive",
            },
        ).json()
        files = (answer or {}).get("files") or []
        return files[0] if files else None

    # --- folders ---

    def folder(self, parts: tuple[str, ...]) -> str:
        """The id of the folder ``parts`` (from the Drive's root), created where missing."""
        parent = "root"
        for depth in range(1, len(parts) + 1):
            path = parts[:depth]
            if path not in self.folders:
                key = self._folder_key(parent, parts[depth - 1])
                self.folders[path] = cache.get(key) or self._folder(parts[depth - 1], parent)
                cache.set(key, self.folders[path], FOLDER_IDS_SECONDS)
            parent = self.folders[path]
        return parent

    def forget(self, parts: tuple[str, ...]) -> None:
        """Drop the kept ids of ``parts`` and the folders above it, here and for every worker."""
        parent = "root"
        for depth in range(1, len(parts) + 1):
            cache.delete(self._folder_key(parent, parts[depth - 1]))
            parent = self.folders.pop(parts[:depth], None) or "root"

    def _folder_key(self, parent: str, name: str) -> str:
        """The shared cache's key of folder ``name`` in ``parent``: ids are the account's."""
        destination = self.connector.destination
        account = destination.settings.get("account", "")
        digest = hashlib.sha256(f"{account}\n{parent}\n{name}".encode()).hexdigest()[:32]
        return f"gdrive-folder:{destination.pk}:{digest}"

    def _folder(self, name: str, parent: str) -> str:
        query = (
            f"name = {quoted(name)} and mimeType = {quoted(FOLDER_TYPE)} and "
            f"{quoted(parent)} in parents and trashed = false"
        )
        found = self.find(query)
        if found:
            return found
        # Another worker may be creating it: look again under the installation's lock.
        with self.connector.destination.credentials.locked():
            found = self.find(query)
            if found:
                return found
            answer = self.call(
                "POST",
                google_url("apis", "/drive/v3/files"),
                params={"fields": "id"},
                json={"name": name, "mimeType": FOLDER_TYPE, "parents": [parent]},
            ).json()
        return answer["id"]

    # --- files ---

    def send(self, export_file: ExportFile) -> Receipt:
        try:
            return self._send(export_file)
        except _ParentGone:
            self.forget(export_file.folder)  # deleted by hand: find or make it again
        try:
            return self._send(export_file)
        except _ParentGone:
            raise TransientError(
                _("Google Drive lost the folder %(folder)s while the file was sent.")
                % {"folder": "/".join(export_file.folder)}
            ) from None

    def _send(self, export_file: ExportFile) -> Receipt:
        parent = self.folder(export_file.folder)
        metadata = export_file.metadata
        key = metadata.get("job_id") or metadata.get("document_id", "")
        send_key = export_file.idempotency_key or key
        found = None
        if key:
            found = self.find_file(
                f"{quoted(parent)} in parents and trashed = false and appProperties has "
                f"{{ key={quoted(KEY_PROPERTY)} and value={quoted(key)} }}"
            )
        if found and (found.get("appProperties") or {}).get(SEND_PROPERTY, key) == send_key:
            return Receipt(reference=found["id"], detail=_("Already in the Drive."))
        properties = {SEND_PROPERTY: send_key}
        if found:  # a Re-send: the same file, written again
            target = ("PATCH", f"/upload/drive/v3/files/{found['id']}")
            described = {"mimeType": export_file.content_type, "appProperties": properties}
        else:
            target = ("POST", "/upload/drive/v3/files")
            properties.update(
                {KEY_PROPERTY: key, DOCUMENT_PROPERTY: metadata.get("document_id", "")}
            )
            described = {
                "name": export_file.filename,
                "mimeType": export_file.content_type,
                "parents": [parent],
                "appProperties": properties,
            }
        if len(export_file.content) <= self.connector.multipart_max_bytes():
            answer = self._multipart(target, described, export_file)
        else:
            answer = self._resumable(target, described, export_file)
        return Receipt(reference=str(answer.get("id", "")))

    def _multipart(self, target, metadata: dict, export_file: ExportFile) -> dict:
        boundary = f"partnerspace-{uuid.uuid4().hex}"
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps(metadata).encode(),
                f"\r\n--{boundary}\r\nContent-Type: {export_file.content_type}\r\n\r\n".encode(),
                export_file.content,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        return (
            self._upload(
                target,
                params={"uploadType": "multipart", "fields": "id,name"},
                headers={"Content-Type": f"multipart/related; boundary={boundary}"},
                data=body,
            ).json()
            or {}
        )

    def _upload(self, target, **kwargs) -> Response:
        """The request that creates (POST) or rewrites (PATCH) a file; a 404 when creating
        means the folder it goes into is gone."""
        method, path = target
        creating = method == "POST"
        response = self.call(
            method, google_url("apis", path), accept=(404,) if creating else (), **kwargs
        )
        if response.status == 404:
            raise _ParentGone
        return response

    def _resumable(self, target, metadata: dict, export_file: ExportFile) -> dict:
        content = export_file.content
        total = len(content)
        started = self._upload(
            target,
            params={"uploadType": "resumable", "fields": "id,name"},
            headers={
                "Content-Type": "application/json; charset=UTF-8",
                "X-Upload-Content-Type": export_file.content_type,
                "X-Upload-Content-Length": str(total),
            },
            data=json.dumps(metadata).encode(),
        )
        session = started.headers.get("Location", "")
        if not session:
            raise TransientError(_("Google Drive did not open an upload session."))
        chunk = self.connector.chunk_bytes()
        offset = 0
        while True:
            end = min(offset + chunk, total)
            response = self.call(
                "PUT",
                session,
                headers={
                    "Content-Type": export_file.content_type,
                    "Content-Range": f"bytes {offset}-{end - 1}/{total}",
                },
                data=content[offset:end],
                accept=(308,),
            )
            if response.status != 308:
                return response.json() or {}
            # "Resume Incomplete": Range says what Google holds (bytes=0-N).
            received = response.headers.get("Range", "")
            offset = int(received.rsplit("-", 1)[1]) + 1 if "-" in received else 0
            if offset >= total:
                raise TransientError(_("Google Drive did not finish the upload."))


class GoogleDriveConnector(CloudDrive):
    key = "gdrive"
    logo = "extensions/logos/gdrive.svg"
    name = gettext_lazy("Google Drive")
    description = gettext_lazy(
        "Puts every document in your Google Drive, one folder per client, after you sign in "
        "with Google."
    )
    binding_fields = ("account",)
    writes = gettext_lazy(
        "Creates the folder Invoice_import in your Google Drive, one folder per client in it, "
        "and the documents' files there. It sees only the files it created."
    )
    oauth: ClassVar = signin.OAuthSpec(
        backend=GoogleDriveOAuth2,
        scope=SCOPE,
        extra_arguments={"access_type": "offline", "prompt": "consent"},
        client_id_setting="GOOGLE_DRIVE_CLIENT_ID",
        client_secret_setting="GOOGLE_DRIVE_CLIENT_SECRET",  # noqa: S106 (a setting's name)
        provider="Google",
        button=gettext_lazy("Sign in with Google Drive"),
        advice=gettext_lazy(
            "Google asks you to choose an account, then to allow this portal to see, edit "
            "and create the Google Drive files it makes. While the portal's Google app "
            "awaits Google's verification, Google first warns that it has not verified "
            "this app: choose Continue."
        ),
        unavailable=gettext_lazy("The operator has not configured Google sign-in."),
    )

    @staticmethod
    def multipart_max_bytes() -> int:
        return getattr(settings, "GOOGLE_DRIVE_MULTIPART_MAX_BYTES", None) or MULTIPART_MAX_BYTES

    @staticmethod
    def chunk_bytes() -> int:
        size = getattr(settings, "GOOGLE_DRIVE_CHUNK_BYTES", None) or CHUNK_BYTES
        return max(CHUNK_UNIT, size - size % CHUNK_UNIT)

    def api(self) -> DriveApi:
        return DriveApi(
            google_url("apis", "/drive/v3/files"),
            secrets=signin.secret_values(self.destination.secrets or {}),
            rate_limit_wait=RATE_LIMIT_WAIT_SECONDS,
        )

    @contextmanager
    def open(self):
        with self.api() as api:
            yield DriveSession(self, api)

    def check(self) -> str:
        """Finds (or makes) the Invoice_import folder: the sign-in works and may write."""
        with self.open() as session:
            session.folder((ROOT_FOLDER,))
        return _("Connected to Google Drive as %(account)s; the folder %(folder)s is ready.") % {
            "account": self.destination.settings.get("account") or "?",
            "folder": ROOT_FOLDER,
        }
