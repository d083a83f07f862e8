"""A strict local Zenvoices: its confirmed login and the contract of
``docs/connectors/zenvoices.md`` for the rest, in the ASP.NET Boilerplate envelope.

``zenvoices_peer`` (which points ``ZENVOICES_BASE_URL`` at itself) serves:

* ``POST /api/TokenAuth/TokenLogin``: JSON ``{"userNameOrEmailAddress", "password",
  "tenancyName"}``; the user of ``peer.users`` in its organisation (``tenancyName``) gets
  the envelope with ``accessToken`` and ``expireInSeconds`` 86400, anyone else HTTP 500
  "Login failed!" as the framework answers a refused login.
* ``GET /public-api/v1/companies``, ``GET /public-api/v1/inbox?companyCode=&externalId=``,
  ``POST /public-api/v1/inbox``: ``Authorization: Bearer <live token>`` (401 with
  ``unAuthorizedRequest`` otherwise; ``peer.expire_tokens()`` ends them all); the user
  needs the permissions *API > Companies > List access* and *API > Inbox access* (403
  otherwise); an unknown company code is 404. An upload is JSON with exactly
  ``companyCode``, ``documentType`` (purchase or sales), ``fileName``, ``contentType``,
  ``content`` (base64) and ``externalId``, and an ``Idempotency-Key`` header; anything
  else is 400 with ``validationErrors``. ``peer.reject_next`` refuses the next upload with
  that reason (400). Uploads are not de-duplicated: only the look-up by ``externalId``
  keeps a retry from adding a second document.

``peer.fail(status, retry_after)`` and ``peer.lose_next_answer`` come from
``tests.peers.accounting``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass

import pytest

from tests.peers.accounting import AccountingHandler, AccountingPeer, Refused

LOGIN = "/api/TokenAuth/TokenLogin"
API = "/public-api/v1"
UPLOAD_FIELDS = frozenset(
    {"companyCode", "documentType", "fileName", "contentType", "content", "externalId"}
)
INBOX, COMPANIES = "API > Inbox access", "API > Companies > List access"


def envelope(result=None, error=None, unauthorized=False) -> dict:
    return {
        "result": result,
        "targetUrl": None,
        "success": error is None,
        "error": error,
        "unAuthorizedRequest": unauthorized,
        "__abp": True,
    }


def abp_error(status, message, details=None, validation=None, unauthorized=False) -> Refused:
    error = {"code": 0, "message": message, "details": details, "validationErrors": validation}
    return Refused(status, envelope(error=error, unauthorized=unauthorized))


@dataclass
class Upload:
    id: int
    company: str
    type: str
    filename: str
    content_type: str
    external_id: str
    idempotency_key: str
    content: bytes


class ZenvoicesPeer(AccountingPeer):
    def __init__(self):
        super().__init__()
        self.username, self.password = "api@lambert.be", "Zen pass/wörd 1"
        self.organisation = "lambert"
        self.permissions = {INBOX, COMPANIES}
        self.companies = {
            "PEETERS": "Bakkerij Peeters BV",
            "DUBOIS": "Menuiserie Dubois SRL",
        }
        self.tokens: set[str] = set()
        self.logins = 0
        self.uploads: list[Upload] = []
        self.reject_next = ""
        self.serve(AccountingHandler)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def error(self, status: int, code: str, message: str) -> Refused:
        return abp_error(status, message)

    def routes(self) -> dict:
        return {
            ("POST", LOGIN): self.login,
            ("GET", API + "/companies"): self.list,
            ("GET", API + "/inbox"): self.find,
            ("POST", API + "/inbox"): self.upload,
        }

    def _allowed(self, request, permission: str) -> None:
        header = request.headers.get("authorization", "")
        with self.lock:
            live = header.startswith("Bearer ") and header[7:] in self.tokens
        if not live:
            raise abp_error(
                401, "Current user did not login to the application!", unauthorized=True
            )
        if permission not in self.permissions:
            raise abp_error(
                403,
                "Required permissions are not granted. At least one of these permissions "
                f"must be granted: {permission}",
                unauthorized=True,
            )

    def _company(self, code) -> str:
        if code not in self.companies:
            raise abp_error(404, f"There is no company with code {code}")
        return code

    def login(self, request):
        body = request.json()
        if not {"userNameOrEmailAddress", "password"} <= set(body):
            raise abp_error(
                400,
                "Your request is not valid!",
                validation=[
                    {
                        "message": "The userNameOrEmailAddress and password fields are required.",
                        "members": ["userNameOrEmailAddress", "password"],
                    }
                ],
            )
        if (body["userNameOrEmailAddress"], body["password"], body.get("tenancyName")) != (
            self.username,
            self.password,
            self.organisation,
        ):
            raise abp_error(500, "Login failed!", "Invalid user name or password")
        token = "eyJzen." + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
            self.logins += 1
        result = {
            "accessToken": token,
            "encryptedAccessToken": "enc" + secrets.token_urlsafe(8),
            "expireInSeconds": 86400,
            "shouldResetPassword": False,
            "userId": 7,
            "requiresTwoFactorVerification": False,
            "refreshToken": "ref" + secrets.token_urlsafe(16),
            "refreshTokenExpireInSeconds": 31536000,
            "loginVerificationCode": None,
        }
        return 200, envelope(result)

    def list(self, request):
        self._allowed(request, COMPANIES)
        items = [
            {"id": number, "code": code, "name": name}
            for number, (code, name) in enumerate(self.companies.items(), 1)
        ]
        return 200, envelope({"totalCount": len(items), "items": items})

    def find(self, request):
        self._allowed(request, INBOX)
        code, key = request.query.get("companyCode"), request.query.get("externalId")
        if not code or not key:
            raise abp_error(400, "Your request is not valid!", "companyCode and externalId")
        self._company(code)
        with self.lock:
            items = [
                {"id": u.id, "externalId": u.external_id, "fileName": u.filename}
                for u in self.uploads
                if u.company == code and u.external_id == key
            ]
        return 200, envelope({"totalCount": len(items), "items": items})

    def upload(self, request):
        self._allowed(request, INBOX)
        body = request.json()
        key = request.headers.get("idempotency-key", "")
        problems = [
            {"message": f"The {name} field is required.", "members": [name]}
            for name in sorted(UPLOAD_FIELDS - set(body))
        ] + [
            {"message": f"{name} is not a known field.", "members": [name]}
            for name in sorted(set(body) - UPLOAD_FIELDS)
        ]
        if not key:
            problems.append({"message": "The Idempotency-Key header is required."})
        if body.get("documentType") not in ("purchase", "sales"):
            problems.append({"message": "documentType must be purchase or sales."})
        try:
            content = base64.b64decode(body.get("content") or "", validate=True)
        except (binascii.Error, TypeError):
            problems.append({"message": "content must be base64.", "members": ["content"]})
            content = b""
        if problems:
            raise abp_error(400, "Your request is not valid!", validation=problems)
        self._company(body["companyCode"])
        with self.lock:
            reason, self.reject_next = self.reject_next, ""
        if reason:
            raise abp_error(400, "The document was not accepted.", reason)
        with self.lock:
            upload = Upload(
                1000 + len(self.uploads),
                body["companyCode"],
                body["documentType"],
                body["fileName"],
                body["contentType"],
                body["externalId"],
                key,
                content,
            )
            self.uploads.append(upload)
        self.answer_lost()
        return 200, envelope({"id": upload.id})


@pytest.fixture
def zenvoices_peer(settings):
    peer = ZenvoicesPeer().start()
    settings.ZENVOICES_BASE_URL = peer.url
    yield peer
    peer.stop()
