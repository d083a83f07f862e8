"""OneDrive for Business: each document becomes one file in the firm's OneDrive, after a
Microsoft sign-in.

The firm signs in with its work account once per installation (``extensions.signin``);
nothing is typed per client. Files land in ``Invoice_import/<company name>_<VAT number>/``
under ``AP`` (approved purchase invoices), ``AR`` (sent sales invoices) and, when the
installation enables them, ``CODA`` (transaction reports), named as
``extensions.paths.file_name`` makes them.

Choices, from Microsoft's public documentation of the identity platform
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow,
https://learn.microsoft.com/entra/identity-platform/refresh-tokens) and of Microsoft Graph
(https://learn.microsoft.com/graph/api/driveitem-put-content,
https://learn.microsoft.com/graph/api/driveitem-createuploadsession,
https://learn.microsoft.com/graph/errors, https://learn.microsoft.com/graph/throttling):

* **Sign-in**: the identity platform v2 endpoints of the operator's tenant setting
  (``organizations`` by default: work and school accounts, which OneDrive for Business is).
  Scopes ``Files.ReadWrite`` (the signed-in person's files), ``offline_access`` (without it
  there is no refresh token) and ``User.Read`` (``/me``, to show the account), separated by
  spaces: a comma-separated scope fails on refresh for work accounts. The refresh request
  names the scopes again, which social-core's Microsoft backend leaves out.
* **Refresh tokens rotate**: Microsoft answers every refresh with a new refresh token; the
  newest is kept through ``destination.credentials`` under the row's lock, so two workers
  never spend one and lose the other. ``invalid_grant`` (revoked, or unused for 90 days) is
  *Reconnect needed*.
* **Once only by path**: a file is written to its path with
  ``@microsoft.graph.conflictBehavior=replace``, so a retry after a lost answer and a
  person's *Re-send* both write the same item again, never a second copy (Graph keeps the
  item and adds a version). Missing folders on the path are created by the upload itself.
* **Uploads**: one ``PUT …/root:/<path>:/content`` up to 4 MB (the limit older pages of the
  documentation give; newer ones allow more); above it an upload session whose fragments
  are multiples of 320 KiB, sent to the session's ``uploadUrl`` *without* the
  ``Authorization`` header (that address carries its own authorization and may refuse one).
  Path segments are percent-encoded one by one, so ``:``, ``#``, ``&`` or accents in a
  client's name stay inside their segment.
* **Errors** are read from Graph's ``error.code``: 429, 503 and a throttling 403 wait for
  ``Retry-After``; ``quotaLimitReached`` or 507 is *Needs attention* ("OneDrive is full");
  ``accessDenied`` is *Needs attention* too (the account may not write there); a 401
  renews the token once, then *Reconnect needed*; other 4xx refuse that document.
* **Where Microsoft is**: ``MICROSOFT_BASE_URL``, when set, replaces both origins (sign-in
  and Graph) with one base followed by Microsoft's own paths, for a test server or a proxy.
  Every call goes through ``extensions.api.ApiClient``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import ClassVar
from urllib.parse import quote

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from social_core.backends.microsoft import MicrosoftOAuth2

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

SCOPE = ("Files.ReadWrite", "offline_access", "User.Read")
REPLACE = "@microsoft.graph.conflictBehavior=replace"
SIMPLE_UPLOAD_MAX_BYTES = 4 * 1024 * 1024
FRAGMENT_UNIT = 320 * 1024  # upload session fragments are multiples of this, but the last
FRAGMENT_BYTES = 32 * FRAGMENT_UNIT  # 10 MiB
THROTTLED = frozenset({"activitylimitreached", "throttledrequest", "toomanyrequests"})
FULL = frozenset({"quotalimitreached", "insufficientstorage"})
ORIGINS = {"login": "https://login.microsoftonline.com", "graph": "https://graph.microsoft.com"}
TERMS_URL = "https://www.microsoft.com/licensing/terms/"


def microsoft_url(origin: str, path: str) -> str:
    """Microsoft's address for ``path``, or ``MICROSOFT_BASE_URL`` followed by it."""
    base = getattr(settings, "MICROSOFT_BASE_URL", "") or ORIGINS[origin]
    return base.rstrip("/") + path


def login_url(endpoint: str) -> str:
    """``/<tenant>/oauth2/v2.0/<endpoint>`` of the identity platform."""
    tenant = getattr(settings, "ONEDRIVE_TENANT", "") or "organizations"
    return microsoft_url("login", f"/{quote(tenant, safe='')}/oauth2/v2.0/{endpoint}")


def item_path(parts) -> str:
    """A drive path for Graph's ``root:/<path>:`` addressing, each segment encoded."""
    return "/".join(quote(part, safe="") for part in parts)


def account_of(info) -> str:
    """The signed-in work account: its user principal name, else its mail address."""
    return str(info.get("userPrincipalName") or info.get("mail") or "")


class OneDriveOAuth2(signin.GuardedBackend, MicrosoftOAuth2):
    """social-core's Microsoft Graph backend on the configured tenant, wherever Microsoft
    is, naming the scopes on refresh too."""

    name = "onedrive"
    provider_name = "Microsoft"

    def authorization_url(self) -> str:
        return login_url("authorize")

    def access_token_url(self) -> str:
        return login_url("token")

    def refresh_token_params(self, token, *args, **kwargs):
        params = super().refresh_token_params(token, *args, **kwargs)
        return {**params, "scope": self.SCOPE_SEPARATOR.join(self.get_scope())}

    def user_data(self, access_token, *args, **kwargs):
        """Only to show which account was connected: nobody is signed in with it."""
        return self.get_json(
            microsoft_url("graph", "/v1.0/me"),
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )


def _codes(response: Response) -> set[str]:
    """Graph's error code and its nested inner codes, lower-cased."""
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    codes = set()
    while isinstance(error, dict):
        if error.get("code"):
            codes.add(str(error["code"]).lower())
        error = error.get("innerError") or error.get("innererror")
    return codes


class GraphApi(ApiClient):
    """Graph's own meaning of its answers: throttling, a full drive, a refused folder."""

    def classify(self, response: Response):
        codes = _codes(response)
        message = self.describe(response)
        if response.status == 507 or codes & FULL:
            return DestinationRefused(
                _("OneDrive is full (%(message)s): free some space, then retry.")
                % {"message": message}
            )
        if response.status == 429 or (response.status == 403 and codes & THROTTLED):
            return RateLimited(
                _("OneDrive asks to slow down (%(message)s).") % {"message": message},
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        if response.status == 403 and "accessdenied" in codes:
            return DestinationRefused(
                _(
                    "OneDrive refused to let the signed-in account write there (%(message)s): "
                    "check its access to the folder %(folder)s, then retry."
                )
                % {"message": message, "folder": ROOT_FOLDER}
            )
        if response.status == 423:  # the file is open or checked out somewhere
            return TransientError(
                _("The file is locked in OneDrive (%(message)s).") % {"message": message},
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        return None


class OneDriveSession:
    """One API client (one kept-alive connection) and the access token used on it."""

    def __init__(self, connector: OneDriveConnector, api: GraphApi):
        self.connector = connector
        self.api = api
        self.token = ""

    def call(self, method: str, path: str, *, headers=None, accept=(), **kwargs) -> Response:
        """One Graph request with a fresh token; a 401 renews the token once and repeats."""
        for attempt in (1, 2):
            if not self.token or attempt == 2:
                self.token = signin.access_token(
                    self.connector.destination, self.connector.oauth, stale=self.token
                )
                self.api.hide(self.token)
            response = self.api.request(
                method,
                microsoft_url("graph", path),
                headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
                accept=(401, *accept),
                **kwargs,
            )
            if response.status != 401:
                return response
        raise ReauthorizationRequired(
            _("Microsoft refused the access token (%(message)s): click Reconnect.")
            % {"message": self.api.describe(response)}
        )

    def ensure_folder(self, name: str) -> None:
        """The folder ``name`` at the drive's root, created when missing."""
        found = self.call("GET", f"/v1.0/me/drive/root:/{item_path([name])}", accept=(404,))
        if found.status != 404:
            return
        self.call(
            "POST",
            "/v1.0/me/drive/root/children",
            json={"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"},
            accept=(409,),  # made meanwhile by another worker: there it is
        )

    def send(self, export_file: ExportFile) -> Receipt:
        path = item_path([*export_file.folder, export_file.filename])
        if len(export_file.content) <= self.connector.simple_upload_max_bytes():
            answer = self.call(
                "PUT",
                f"/v1.0/me/drive/root:/{path}:/content?{REPLACE}",
                headers={"Content-Type": export_file.content_type},
                data=export_file.content,
            ).json()
        else:
            answer = self._session(path, export_file)
        return Receipt(reference=str((answer if isinstance(answer, dict) else {}).get("id", "")))

    def _session(self, path: str, export_file: ExportFile):
        content = export_file.content
        total = len(content)
        started = self.call(
            "POST",
            f"/v1.0/me/drive/root:/{path}:/createUploadSession",
            json={"item": {"@microsoft.graph.conflictBehavior": "replace"}},
        ).json()
        upload_url = str((started if isinstance(started, dict) else {}).get("uploadUrl") or "")
        if not upload_url:
            raise TransientError(_("OneDrive did not open an upload session."))
        self.api.hide(upload_url)  # it authorizes the upload by itself
        fragment = self.connector.fragment_bytes()
        offset = 0
        while offset < total:
            end = min(offset + fragment, total)
            response = self.api.request(  # no Authorization header: see the docstring
                "PUT",
                upload_url,
                headers={
                    "Content-Range": f"bytes {offset}-{end - 1}/{total}",
                    "Content-Length": str(end - offset),
                },
                data=content[offset:end],
                accept=(404,),
            )
            if response.status == 404:  # the session expired: the next attempt starts anew
                raise TransientError(_("The OneDrive upload session expired."))
            if response.status in (200, 201):
                return response.json()
            offset = _next_offset(response, offset, end)
        raise TransientError(_("OneDrive did not finish the upload."))


def _next_offset(response: Response, offset: int, end: int) -> int:
    """Where the next fragment starts: the first of ``nextExpectedRanges`` ("26-"), or the
    end of the one sent; one that does not move forward stops the upload (transient)."""
    answer = response.json()
    ranges = answer.get("nextExpectedRanges") if isinstance(answer, dict) else None
    try:
        following = int(str(ranges[0]).split("-", 1)[0]) if ranges else end
    except (TypeError, ValueError, IndexError, KeyError):
        following = end
    if following <= offset:
        raise TransientError(_("OneDrive did not finish the upload."))
    return following


class OneDriveConnector(CloudDrive):
    key = "onedrive"
    logo = "extensions/logos/onedrive.svg"
    name = gettext_lazy("OneDrive for Business")
    description = gettext_lazy(
        "Puts every document in your OneDrive for Business, one folder per client, after you "
        "sign in with Microsoft."
    )
    binding_fields = ("account",)
    terms_url = TERMS_URL
    writes = gettext_lazy(
        "Creates the folder Invoice_import in your OneDrive, one folder per client in it, and "
        "the documents' files there; a document sent again replaces its file."
    )
    oauth: ClassVar = signin.OAuthSpec(
        backend=OneDriveOAuth2,
        scope=SCOPE,
        client_id_setting="ONEDRIVE_CLIENT_ID",
        client_secret_setting="ONEDRIVE_CLIENT_SECRET",  # noqa: S106 (a setting's name)
        provider="Microsoft",
        button=gettext_lazy("Sign in with Microsoft"),
        advice=gettext_lazy(
            "Microsoft asks you to sign in with your work or school account, then to allow "
            "this portal to read and write your files and to keep that access. If your "
            "organisation requires it, an administrator must approve the app first."
        ),
        unavailable=gettext_lazy("The operator has not configured Microsoft sign-in."),
        account=account_of,
    )

    @staticmethod
    def simple_upload_max_bytes() -> int:
        configured = getattr(settings, "ONEDRIVE_SIMPLE_UPLOAD_MAX_BYTES", None)
        return configured or SIMPLE_UPLOAD_MAX_BYTES

    @staticmethod
    def fragment_bytes() -> int:
        size = getattr(settings, "ONEDRIVE_FRAGMENT_BYTES", None) or FRAGMENT_BYTES
        return max(FRAGMENT_UNIT, size - size % FRAGMENT_UNIT)

    @contextmanager
    def open(self):
        secrets = signin.secret_values(self.destination.secrets or {})
        with GraphApi(
            microsoft_url("graph", "/v1.0/me/drive"),
            secrets=secrets,
            rate_limit_wait=RATE_LIMIT_WAIT_SECONDS,
        ) as api:
            yield OneDriveSession(self, api)

    def check(self) -> str:
        """Finds (or makes) the Invoice_import folder: the sign-in works and may write."""
        with self.open() as session:
            session.ensure_folder(ROOT_FOLDER)
        return _("Connected to OneDrive as %(account)s; the folder %(folder)s is ready.") % {
            "account": self.destination.settings.get("account") or "?",
            "folder": ROOT_FOLDER,
        }
