"""A strict local Octopus REST API for tests (the part the connector uses).

``octopus_peer`` answers under ``/octopus-rest-api/v1`` (the tests point
``OCTOPUS_BASE_URL`` at it and set ``OCTOPUS_SOFTWARE_HOUSE_UUID`` to its uuid):

* every request must carry ``softwareHouseUuid`` with the uuid Octopus issued; JSON
  requests must say ``Content-Type: application/json``;
* ``POST /authentication`` with ``{"user": …, "password": …}`` → ``{"token": …}``;
* ``GET /dossiers`` with the header ``Token`` → the user's dossiers.

Refusals carry Octopus's error body ``{"technicalInfo", "errorCode", "errorMessage"}``;
the statuses (400 for a malformed request, 401 for a refused uuid, user or token) are
assumed, as ``docs/connectors/octopus.md`` says.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid

import pytest

from tests.peers.local import JsonHandler, LocalPeer

PREFIX = "/octopus-rest-api/v1"


def error(code: int, message: str, info: str = "") -> dict:
    return {"technicalInfo": info or message, "errorCode": code, "errorMessage": message}


class _Handler(JsonHandler):
    def _handle(self):
        peer = self.server.peer
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with peer.lock:
            peer.requests.append((self.command, self.path, dict(self.headers), body))
        path = self.path.split("?")[0]
        if not path.startswith(PREFIX):
            return self._answer(404, error(404, "Not found"))
        route = {
            ("POST", PREFIX + "/authentication"): self.authentication,
            ("GET", PREFIX + "/dossiers"): self.dossiers,
        }.get((self.command, path))
        if route is None:
            return self._answer(404, error(404, "Not found"))
        if self.headers.get("softwareHouseUuid") != peer.software_house_uuid:
            return self._answer(
                401, error(401, "Unknown software house", "softwareHouseUuid missing or unknown")
            )
        return self._answer(*route(body))

    do_GET = do_POST = _handle

    def authentication(self, body):
        peer = self.server.peer
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return 400, error(400, "Bad request", "Content-Type must be application/json")
        try:
            credentials = json.loads(body)
        except ValueError:
            return 400, error(400, "Bad request", "body is not JSON")
        if not isinstance(credentials, dict) or set(credentials) != {"user", "password"}:
            return 400, error(400, "Bad request", "expected user and password")
        if peer.users.get(credentials["user"]) != credentials["password"]:
            return 401, error(401, "Invalid user or password", "authentication failed")
        token = secrets.token_urlsafe(24)
        with peer.lock:
            peer.tokens[token] = credentials["user"]
        return 200, {"token": token}

    def dossiers(self, body):
        peer = self.server.peer
        with peer.lock:
            user = peer.tokens.get(self.headers.get("Token", ""))
        if user is None:
            return 401, error(401, "Invalid token", "token missing, unknown or expired")
        return 200, [
            {
                "dossierKey": {"id": number},
                "dossierDescription": description,
                "vatNr": vat,
                "email": "",
            }
            for number, (description, vat) in peer.dossiers.items()
        ]


class OctopusPeer(LocalPeer):
    def __init__(self):
        self.lock = threading.Lock()
        self.software_house_uuid = str(uuid.uuid4())
        self.users = {"lambert@fiduciaire.example": "Octopus pass/word 1"}
        self.dossiers = {
            101: ("Bakkerij Peeters BV", "BE0403019261"),
            102: ("Menuiserie Dubois SRL", "BE0477472701"),
        }
        self.tokens: dict[str, str] = {}
        self.requests: list[tuple] = []
        self.serve(_Handler)

    @property
    def user(self) -> str:
        return next(iter(self.users))

    @property
    def password(self) -> str:
        return self.users[self.user]

    @property
    def api_url(self) -> str:
        return self.url + PREFIX


@pytest.fixture
def octopus_peer(settings):
    peer = OctopusPeer().start()
    settings.OCTOPUS_BASE_URL = peer.api_url
    settings.OCTOPUS_SOFTWARE_HOUSE_UUID = peer.software_house_uuid
    yield peer
    peer.stop()
