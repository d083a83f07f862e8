"""Stored secrets never leave for a destination they were not entered for.

The two attacks as they were found: someone edits an installed extension to point at a
server of their own and leaves the password blank ("keep the stored one"); a user of two
firms carries firm A's pending configuration, secrets included, into firm B through the
host-key confirmation. A tripwire (a real listening socket, or a real HTTP server) proves
that nothing reaches the new destination, by no path: Save, Test connection or a worker.
"""

import socket

import pytest
from django.urls import reverse

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions.models import Installation, Integration
from extensions.pending import SESSION_KEY
from partnerspace.tenancy import PENDING_PREFIX
from tests.peers.sftp import sftp_installation

pytestmark = pytest.mark.django_db

TOKEN = "tok-stored-4b1d2c9e"


class Tripwire:
    """A TCP port that answers nothing: a connection attempt waits in its backlog."""

    def __init__(self, listener):
        self.listener = listener
        self.port = listener.getsockname()[1]

    def connected(self) -> bool:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True


@pytest.fixture
def tripwire():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield Tripwire(listener)


def sftp_edit(peer, **overrides):
    data = {
        "name": "Lambert SFTP",
        "connections": 4,
        "settings-host": peer.host,
        "settings-port": peer.port,
        "settings-username": peer.username,
        "settings-password": "",
        "settings-private_key": "",
        "settings-passphrase": "",
        "settings-upload_path": "in/",
        "settings-report_path": "",
    }
    data.update(overrides)
    return data


def http_installation(partner, url):
    return Installation.objects.create(
        partner=partner,
        connector="http",
        name="Lambert webhook",
        settings={"url": url, "method": "POST", "auth": "bearer", "path_template": ""},
        secrets={"token": TOKEN},
    )


def http_edit(url, **overrides):
    data = {
        "name": "Lambert webhook",
        "connections": 4,
        "settings-url": url,
        "settings-path_template": "",
        "settings-method": "POST",
        "settings-auth": "bearer",
        "settings-username": "",
        "settings-password": "",
        "settings-token": "",
        "settings-signing_secret": "",
    }
    data.update(overrides)
    return data


def sent_token(peer) -> bool:
    return any(TOKEN in str(r.headers) or TOKEN.encode() in r.body for r in peer.requests)


# --- the first attack: point the installation elsewhere, keep the secret -------------


def test_member_cannot_point_the_owners_http_extension_elsewhere(client, firm, http_peer):
    receiver = http_peer
    installation = http_installation(firm["partner"], receiver.url + "/in")
    from tests.peers.http import HttpPeer

    attacker = HttpPeer().start()
    try:
        client.force_login(firm["member"])
        url = reverse("store:manage", args=[installation.pk])
        for response in (
            client.post(url, http_edit(attacker.url + "/steal")),
            client.post(reverse("store:test", args=[installation.pk])),
        ):
            assert response.status_code == 403
        assert attacker.connections == 0 and not attacker.requests
    finally:
        attacker.stop()
    installation.refresh_from_db()
    assert installation.settings["url"] == receiver.url + "/in"
    assert installation.secrets == {"token": TOKEN}


def test_owner_pointing_http_elsewhere_with_a_blank_token_is_asked_for_it(client, firm, http_peer):
    installation = http_installation(firm["partner"], http_peer.url + "/in")
    from tests.peers.http import HttpPeer

    attacker = HttpPeer().start()
    try:
        client.force_login(firm["owner"])
        response = client.post(
            reverse("store:manage", args=[installation.pk]), http_edit(attacker.url + "/in")
        )
        body = response.content.decode()
        assert "You changed the receiver&#x27;s address or its authentication" in body
        assert "Token authentication needs a token." in body
        assert attacker.connections == 0 and not attacker.requests
    finally:
        attacker.stop()
    assert not sent_token(http_peer)
    installation.refresh_from_db()
    assert installation.settings["url"] == http_peer.url + "/in"
    assert installation.secrets == {"token": TOKEN}


def test_a_new_token_typed_for_the_new_receiver_goes_there(client, firm, http_peer):
    installation = http_installation(firm["partner"], "http://127.0.0.1:9/old")
    client.force_login(firm["owner"])
    response = client.post(
        reverse("store:manage", args=[installation.pk]),
        http_edit(http_peer.url + "/in", **{"settings-token": "tok-new"}),
    )
    assert response.status_code == 302, response.content.decode()
    assert http_peer.requests[-1].headers["authorization"] == "Bearer tok-new"
    installation.refresh_from_db()
    assert installation.secrets == {"token": "tok-new"}
    assert installation.secrets_binding["port"] == int(http_peer.url.rsplit(":", 1)[1])


def test_another_path_on_the_same_receiver_keeps_the_token(client, firm, http_peer):
    installation = http_installation(firm["partner"], http_peer.url + "/in")
    client.force_login(firm["owner"])
    response = client.post(
        reverse("store:manage", args=[installation.pk]), http_edit(http_peer.url + "/other")
    )
    assert response.status_code == 302, response.content.decode()
    assert http_peer.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    installation.refresh_from_db()
    assert installation.settings["url"] == http_peer.url + "/other"
    assert installation.secrets == {"token": TOKEN}


def test_switching_http_authentication_kind_drops_the_stored_token(client, firm, http_peer):
    installation = http_installation(firm["partner"], http_peer.url + "/in")
    client.force_login(firm["owner"])
    response = client.post(
        reverse("store:manage", args=[installation.pk]),
        http_edit(http_peer.url + "/in", **{"settings-auth": "basic", "settings-username": "u"}),
    )
    assert "Basic authentication needs a password." in response.content.decode()
    assert not http_peer.requests
    response = client.post(
        reverse("store:manage", args=[installation.pk]),
        http_edit(http_peer.url + "/in", **{"settings-auth": "none"}),
    )
    assert response.status_code == 302
    installation.refresh_from_db()
    assert installation.secrets == {}  # nothing kept that no longer has a use
    assert not sent_token(http_peer)


@pytest.mark.parametrize("field", ["port", "host", "username"])
def test_owner_pointing_sftp_elsewhere_with_a_blank_password_is_asked_for_it(
    client, firm, sftp_server, tripwire, field
):
    installation = sftp_installation(firm["partner"], sftp_server)
    tripwire_port = tripwire.port
    change = {
        "port": {"settings-port": tripwire_port},
        "host": {"settings-host": "localhost", "settings-port": tripwire_port},
        "username": {"settings-username": "someone-else"},
    }[field]
    client.force_login(firm["owner"])
    response = client.post(
        reverse("store:manage", args=[installation.pk]), sftp_edit(sftp_server, **change)
    )
    body = response.content.decode()
    assert "You changed the server, port or user name" in body
    assert "Enter a password, a private key, or both." in body
    assert not tripwire.connected()
    installation.refresh_from_db()
    assert installation.settings["port"] == sftp_server.port
    assert installation.secrets == {"password": sftp_server.password}


def test_member_cannot_point_the_owners_sftp_extension_elsewhere(
    client, firm, sftp_server, tripwire
):
    installation = sftp_installation(firm["partner"], sftp_server)
    client.force_login(firm["member"])
    response = client.post(
        reverse("store:manage", args=[installation.pk]),
        sftp_edit(sftp_server, **{"settings-port": tripwire.port}),
    )
    assert response.status_code == 403
    assert not tripwire.connected()


def test_settings_changed_behind_the_forms_back_reach_no_one(
    client, firm, sftp_server, tripwire, make_document
):
    """Settings edited in a shell or a database: Test connection and the worker refuse."""
    installation = sftp_installation(firm["partner"], sftp_server)
    company = firm["clients"][1]
    Integration.objects.create(client=company, installation=installation, categories=["sales"])
    Installation.objects.filter(pk=installation.pk).update(
        settings={**installation.settings, "port": tripwire.port}
    )
    client.force_login(firm["owner"])
    response = client.post(reverse("store:test", args=[installation.pk]), follow=True)
    assert "The destination changed since its credentials were entered" in (
        response.content.decode()
    )
    assert not tripwire.connected()

    document = make_document(company, Document.Category.SALES)
    release(document)
    engine.deliver(engine.Destination(installation.pk))
    assert not tripwire.connected()
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "credentials were entered" in installation.last_error
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.PENDING  # waits for a person, nothing lost


# --- the second attack: a pending confirmation carried into another firm -------------


def _key_changed(sftp_server, tmp_path):
    sftp_server.server.stop()
    sftp_server.server.host_key_path = tmp_path / "another-key"
    sftp_server.server.start()


def _pending_confirmation(client, installation):
    """Test connection on a server whose key changed: the key is shown, set-up kept."""
    client.post(reverse("switch_firm"), {"partner": installation.partner_id})
    response = client.post(reverse("store:test", args=[installation.pk]))
    body = response.content.decode()
    assert 'name="confirmation"' in body
    assert SESSION_KEY in client.session
    return body.split('name="confirmation" value="', 1)[1].split('"', 1)[0]


@pytest.fixture
def two_firms(firm, make_partner, sftp_server, tmp_path):
    second = make_partner("Cabinet Second", owner=firm["owner"])
    installation = sftp_installation(firm["partner"], sftp_server)
    _key_changed(sftp_server, tmp_path)
    return firm["partner"], second, installation


def test_pending_confirmation_cannot_become_a_new_installation(client, firm, two_firms):
    _first, _second, installation = two_firms
    client.force_login(firm["owner"])
    pin = _pending_confirmation(client, installation)
    before = Installation.objects.count()
    response = client.post(
        reverse("store:configure", args=["sftp"]),
        {"confirmation": pin, "confirm": "1"},
        follow=True,
    )
    assert "This confirmation expired" in response.content.decode()
    assert Installation.objects.count() == before
    assert SESSION_KEY not in client.session  # discarded, not left for another try


def test_pending_confirmation_does_not_cross_into_another_firm(client, firm, two_firms):
    _first, second, installation = two_firms
    client.force_login(firm["owner"])
    pin = _pending_confirmation(client, installation)

    client.post(reverse("switch_firm"), {"partner": second.pk})
    assert not [key for key, _ in client.session.items() if key.startswith(PENDING_PREFIX)]
    response = client.post(
        reverse("store:configure", args=["sftp"]),
        {"confirmation": pin, "confirm": "1"},
        follow=True,
    )
    assert "This confirmation expired" in response.content.decode()
    assert not Installation.objects.filter(partner=second).exists()
    # Nor through firm B's own installation of the same connector.
    own = Installation.objects.create(
        partner=second, connector="sftp", name="B", settings={"host": "b.example"}
    )
    client.post(reverse("store:manage", args=[own.pk]), {"confirmation": pin, "confirm": "1"})
    own.refresh_from_db()
    assert own.secrets == {} and own.settings == {"host": "b.example"}


def test_pending_confirmation_of_one_installation_does_not_apply_to_another(
    client, firm, two_firms, sftp_server
):
    first, _second, installation = two_firms
    other = Installation.objects.create(
        partner=first, connector="sftp", name="Other", settings={"host": "other.example"}
    )
    client.force_login(firm["owner"])
    pin = _pending_confirmation(client, installation)
    client.post(reverse("store:manage", args=[other.pk]), {"confirmation": pin, "confirm": "1"})
    other.refresh_from_db()
    assert other.secrets == {} and other.settings == {"host": "other.example"}
    assert SESSION_KEY not in client.session


def test_the_confirmation_still_works_where_it_was_begun(client, firm, two_firms, sftp_server):
    _first, _second, installation = two_firms
    client.force_login(firm["owner"])
    pin = _pending_confirmation(client, installation)
    response = client.post(
        reverse("store:manage", args=[installation.pk]), {"confirmation": pin, "confirm": "1"}
    )
    assert response.status_code == 302
    installation.refresh_from_db()
    assert installation.settings["known_host_key"]["fingerprint"] == (
        sftp_server.server.fingerprint
    )
    assert installation.secrets == {"password": sftp_server.password}
