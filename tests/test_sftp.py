"""The SFTP connector against real servers: the embedded asyncssh one and OpenSSH's sshd.

The installation is a plain stand-in (``pk``, ``settings``, ``secrets``): the connector
contract needs nothing more, and these tests need no database.
"""

import base64
import os
import socket
import stat
import threading
import time
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from extensions.connectors import sftp as sftp_module
from extensions.connectors.base import (
    DestinationRefused,
    ExportFile,
    HostKeyChanged,
    HostKeyUnknown,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
)
from extensions.connectors.sftp import SftpClientForm, SftpConnector, SftpSettingsForm
from tests.peers import free_port
from tests.peers.sftp import client_key

PEERS = ["sftp_server", "openssh_server"]


@pytest.fixture(params=PEERS)
def peer(request):
    """Each test using this runs once against asyncssh and once against OpenSSH."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def asyncssh_peer(request):
    return request.getfixturevalue("sftp_server")


@pytest.fixture
def openssh_peer(request):
    return request.getfixturevalue("openssh_server")


def installation(peer, *, pinned=True, secrets=None, **settings):
    values = {
        "host": peer.host,
        "port": peer.port,
        "username": peer.username,
        "upload_path": "Invoice_import/",
        **settings,
    }
    if pinned:
        values.update(peer.pin())
    return SimpleNamespace(
        pk=1, settings=values, secrets={"password": peer.password} if secrets is None else secrets
    )


def export(name="20250101_INV-1_0123abcd.xml", content=b"<Invoice/>", folder=("Invoice_import",)):
    return ExportFile(
        content=content,
        filename=name,
        folder=tuple(folder),
        content_type="application/xml",
        metadata={},
    )


def remote(peer, *parts):
    return "/".join([peer.home.rstrip("/"), *parts])


def listing(path):
    return sorted(os.listdir(path))


# --- host keys -----------------------------------------------------------------------


def test_first_connection_asks_to_accept_the_host_key_then_check_succeeds(peer):
    destination = installation(peer, pinned=False)
    with pytest.raises(HostKeyUnknown) as caught:
        SftpConnector(destination).check()
    assert caught.type is HostKeyUnknown
    assert caught.value.fingerprint == peer.fingerprint
    assert caught.value.key_type == peer.host_key_type == "ssh-ed25519"
    assert caught.value.key == peer.host_key_base64
    assert peer.fingerprint in str(caught.value)
    assert not (peer.root / "Invoice_import").exists()  # nothing happened before the pin

    destination.settings.update(caught.value.pin())
    result = SftpConnector(destination).check()

    assert result == (
        f"Connected to 127.0.0.1:{peer.port} as {peer.username}; "
        "wrote and removed a test file in Invoice_import/."
    )
    assert listing(peer.root / "Invoice_import") == []


def test_check_creates_the_static_part_of_a_template_only(peer):
    destination = installation(peer, upload_path="Exports/[uen_number]/[year]/")
    assert "in Exports/." in SftpConnector(destination).check()
    assert listing(peer.root / "Exports") == []


def test_changed_host_key_stops_until_accepted(asyncssh_peer, tmp_path):
    server = asyncssh_peer.server
    destination = installation(asyncssh_peer)
    SftpConnector(destination).check()

    server.stop()
    server.host_key_path = tmp_path / "another-host-key"
    server.start()
    assert server.fingerprint != asyncssh_peer.fingerprint

    with pytest.raises(HostKeyChanged) as caught:
        SftpConnector(destination).check()
    message = str(caught.value)
    assert caught.value.fingerprint == server.fingerprint
    assert caught.value.key == server.host_key_base64
    assert "changed" in message
    assert "stopped until someone" in message
    assert server.fingerprint in message and asyncssh_peer.fingerprint in message
    with pytest.raises(HostKeyChanged), SftpConnector(destination).open():
        pass

    destination.settings.update(caught.value.pin())
    assert SftpConnector(destination).check().startswith("Connected")


# --- connecting and signing in -------------------------------------------------------


def test_wrong_password_asks_for_new_credentials(peer):
    destination = installation(peer, secrets={"password": "not-" + peer.password})
    with pytest.raises(ReauthorizationRequired) as caught:
        SftpConnector(destination).check()
    assert caught.type is ReauthorizationRequired
    assert str(caught.value) == (
        f"authentication failed for user {peer.username} on 127.0.0.1:{peer.port}"
    )
    assert peer.password not in str(caught.value)


def test_nothing_listening_is_transient():
    port = free_port()
    destination = SimpleNamespace(
        pk=1,
        settings={"host": "127.0.0.1", "port": port, "username": "exporter"},
        secrets={"password": "secret"},
    )
    with pytest.raises(TransientError, match=f"connection refused by 127.0.0.1:{port}"):
        SftpConnector(destination).check()


def test_private_hosts_are_refused_unless_allowed(asyncssh_peer, settings):
    settings.EXPORT_ALLOW_PRIVATE_HOSTS = False
    with pytest.raises(PermanentError, match="loopback"):
        SftpConnector(installation(asyncssh_peer)).check()
    assert asyncssh_peer.server.connections == 0


@pytest.mark.parametrize("auth", ["password", "key", "both"])
def test_password_and_key_authentication(peer, auth):
    secrets = {"password": peer.password, "private_key": peer.private_key}
    if auth == "password":
        del secrets["private_key"]
    elif auth == "key":
        del secrets["password"]
    with SftpConnector(installation(peer, secrets=secrets)).open() as session:
        receipt = session.send(export(content=auth.encode()))
    assert receipt.reference == remote(peer, "Invoice_import", "20250101_INV-1_0123abcd.xml")
    landed = peer.root / "Invoice_import" / "20250101_INV-1_0123abcd.xml"
    assert landed.read_bytes() == auth.encode()


def test_a_passphrase_protected_key_authenticates(asyncssh_peer):
    private, public = client_key(passphrase="correct horse")
    asyncssh_peer.server.authorized_keys[asyncssh_peer.username] = [public]
    secrets = {"private_key": private, "passphrase": "correct horse"}
    assert (
        SftpConnector(installation(asyncssh_peer, secrets=secrets)).check().startswith("Connected")
    )
    secrets["passphrase"] = "wrong"
    with pytest.raises(ReauthorizationRequired, match="passphrase does not unlock"):
        SftpConnector(installation(asyncssh_peer, secrets=secrets)).check()


def test_a_key_the_server_does_not_know_fails_authentication(peer):
    unknown, _public = client_key()
    with pytest.raises(ReauthorizationRequired, match="authentication failed for user"):
        SftpConnector(installation(peer, secrets={"private_key": unknown})).check()


# --- sending -------------------------------------------------------------------------


def test_files_land_whole_with_mode_664_and_no_part_file(peer):
    contents = {
        "empty.xml": b"",
        "one.xml": b"x",
        "invoice.xml": b"<Invoice>\xc3\xa9</Invoice>\n",
        "large.xml": os.urandom(3 * 1024 * 1024 + 17),  # many pipelined writes
    }
    with SftpConnector(installation(peer)).open() as session:
        receipts = {name: session.send(export(name, data)) for name, data in contents.items()}

    folder = peer.root / "Invoice_import"
    assert listing(folder) == sorted(contents)
    for name, data in contents.items():
        assert (folder / name).read_bytes() == data
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o664
        assert receipts[name].reference == remote(peer, "Invoice_import", name)


def test_a_batch_of_fifty_files_uses_one_connection(asyncssh_peer):
    connector = SftpConnector(installation(asyncssh_peer))
    before = asyncssh_peer.server.connections
    with connector.open() as session:
        for number in range(50):
            session.send(export(f"doc-{number:02d}.xml", f"<n>{number}</n>".encode()))
    assert asyncssh_peer.server.connections - before == 1
    assert len(listing(asyncssh_peer.root / "Invoice_import")) == 50


def test_sending_again_replaces_the_file(peer):
    connector = SftpConnector(installation(peer))
    with connector.open() as session:
        session.send(export("same.xml", b"first version, longer than the second"))
    with connector.open() as session:
        session.send(export("same.xml", b"second"))
        session.send(export("same.xml", b"third"))  # same session: overwrite again
    folder = peer.root / "Invoice_import"
    assert listing(folder) == ["same.xml"]
    assert (folder / "same.xml").read_bytes() == b"third"


def test_without_posix_rename_the_file_is_still_replaced(asyncssh_peer):
    asyncssh_peer.server.posix_rename = False
    with SftpConnector(installation(asyncssh_peer)).open() as session:
        session.send(export("same.xml", b"one"))
        session.send(export("same.xml", b"two"))
    folder = asyncssh_peer.root / "Invoice_import"
    assert listing(folder) == ["same.xml"]
    assert (folder / "same.xml").read_bytes() == b"two"


def test_missing_nested_folders_are_created(peer):
    folder = ("Invoice_import", "0123456749", "purchases", "2025")
    with SftpConnector(installation(peer)).open() as session:
        first = session.send(export("a.xml", b"a", folder))
        session.send(export("b.xml", b"b", folder))
        session.send(export("c.xml", b"c", folder[:2]))
    assert first.reference == remote(peer, *folder, "a.xml")
    target = peer.root.joinpath(*folder)
    assert listing(target) == ["a.xml", "b.xml"]
    assert listing(target.parent.parent) == ["c.xml", "purchases"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_folders_made_by_someone_else_are_used(peer):
    connector = SftpConnector(installation(peer))
    with connector.open() as session:
        session.send(export("a.xml", b"a", ("Shared",)))
        (peer.root / "Shared" / "Later").mkdir()
        if peer.uid is not None:
            os.chown(peer.root / "Shared" / "Later", peer.uid, -1)
        session.send(export("b.xml", b"b", ("Shared", "Later")))
    assert (peer.root / "Shared" / "Later" / "b.xml").read_bytes() == b"b"


def test_no_write_permission_is_the_destinations_to_fix_and_names_the_folder(openssh_peer):
    """The folder's rights refuse every document alike: the destination's configuration,
    for a person to fix there, not a refusal of one document."""
    locked = openssh_peer.root / "locked"
    locked.mkdir()
    os.chown(locked, openssh_peer.uid, -1)
    locked.chmod(0o555)
    with SftpConnector(installation(openssh_peer)).open() as session:
        with pytest.raises(DestinationRefused) as caught:
            session.send(export("a.xml", b"a", ("locked",)))
        assert str(caught.value) == f"no write permission in {remote(openssh_peer, 'locked')}"
        with pytest.raises(DestinationRefused, match=r"no write permission in .*/locked$"):
            session.send(export("b.xml", b"b", ("locked", "sub")))
    assert listing(locked) == []


def test_a_refusal_in_a_pipelined_batch_lets_the_files_in_flight_land_first(openssh_peer):
    locked = openssh_peer.root / "locked"
    locked.mkdir()
    os.chown(locked, openssh_peer.uid, -1)
    locked.chmod(0o555)
    files = [("a", ("open",)), ("b", ("locked",)), ("c", ("open",))]
    with SftpConnector(installation(openssh_peer)).open() as session:
        outcomes = list(
            session.send_many((key, export(f"{key}.xml", b"x", folder)) for key, folder in files)
        )
    *landed, (refused, error) = outcomes
    assert sorted(key for key, _receipt in landed) == ["a", "c"]
    assert refused == "b" and isinstance(error, DestinationRefused)
    assert listing(openssh_peer.root / "open") == ["a.xml", "c.xml"]
    assert listing(locked) == []


def test_check_reports_a_read_only_upload_folder(openssh_peer):
    locked = openssh_peer.root / "Invoice_import"
    locked.mkdir()
    os.chown(locked, openssh_peer.uid, -1)
    locked.chmod(0o555)
    with pytest.raises(DestinationRefused, match=r"no write permission in .*/Invoice_import$"):
        SftpConnector(installation(openssh_peer)).check()


def test_a_connection_lost_mid_batch_is_transient_and_the_server_can_come_back(
    asyncssh_peer,
):
    server = asyncssh_peer.server
    connector = SftpConnector(installation(asyncssh_peer))
    with connector.open() as session:
        session.send(export("before.xml", b"before"))
        server.stop()
        with pytest.raises(TransientError, match=r"connection to 127\.0\.0\.1:\d+ was lost"):
            session.send(export("during.xml", os.urandom(256 * 1024)))
        with pytest.raises(TransientError, match="was lost"):
            session.send(export("after.xml", b"after"))

    with pytest.raises(TransientError, match="connection refused"):
        connector.check()
    server.start()
    with connector.open() as session:
        session.send(export("during.xml", b"again"))
    assert listing(asyncssh_peer.root / "Invoice_import") == ["before.xml", "during.xml"]


def test_unsafe_names_are_refused_before_anything_is_written(asyncssh_peer):
    with SftpConnector(installation(asyncssh_peer)).open() as session:
        with pytest.raises(PermanentError, match="unsafe folder name"):
            session.send(export("a.xml", b"a", ("..", "Invoice_import")))
        with pytest.raises(PermanentError, match="unsafe file name"):
            session.send(export("../a.xml", b"a"))
    assert not (asyncssh_peer.root / "Invoice_import").exists()


# --- where files go ------------------------------------------------------------------


def test_folder_template_prefers_the_client_then_the_report_path():
    connector = SftpConnector(
        SimpleNamespace(
            pk=1, settings={"upload_path": "In/[year]/", "report_path": "Bank/"}, secrets={}
        )
    )
    assert connector.folder_template({}, "purchase") == "In/[year]/"
    assert connector.folder_template({}, "report") == "Bank/"
    assert connector.folder_template({"path": "Mine/"}, "report") == "Mine/"
    assert connector.folder_template({"path": ""}, "sales") == "In/[year]/"
    connector.destination.settings["report_path"] = ""
    assert connector.folder_template({}, "report") == "In/[year]/"


# --- forms ---------------------------------------------------------------------------


def form_data(**values):
    return {
        "host": "sftp.example.be",
        "port": "22",
        "username": "exporter",
        "password": "",
        "private_key": "",
        "passphrase": "",
        "upload_path": "Invoice_import/[year]/",
        "report_path": "",
        **values,
    }


def test_form_accepts_a_password_and_normalizes_the_paths():
    form = SftpSettingsForm(form_data(password="s3cret", report_path="Bank"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["upload_path"] == "Invoice_import/[year]/"
    assert form.cleaned_data["report_path"] == "Bank/"
    assert SftpConnector.secret_fields(SftpSettingsForm) == (
        "password",
        "private_key",
        "passphrase",
    )


def test_form_needs_a_password_or_a_key_on_first_install():
    form = SftpSettingsForm(form_data())
    assert not form.is_valid()
    assert "Enter a password, a private key, or both." in form.non_field_errors()


def test_form_keeps_stored_secrets_when_left_blank_on_edit():
    form = SftpSettingsForm(form_data(), has_stored_secrets={"password"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["password"] == ""


def test_form_rejects_a_malformed_private_key():
    form = SftpSettingsForm(
        form_data(private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n")
    )
    assert not form.is_valid()
    assert "not a private key this connector can read" in form.errors["private_key"][0]


def test_form_accepts_ed25519_and_rsa_pem_keys_pasted_with_crlf():
    private, _public = client_key()
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    for key in (private, rsa_pem):
        form = SftpSettingsForm(form_data(private_key="  " + key.replace("\n", "\r\n")))
        assert form.is_valid(), form.errors
        assert form.cleaned_data["private_key"].startswith("-----BEGIN ")
        assert "\r" not in form.cleaned_data["private_key"]


def test_form_checks_the_passphrase_of_a_protected_key():
    private, _public = client_key(passphrase="right")
    missing = SftpSettingsForm(form_data(private_key=private))
    wrong = SftpSettingsForm(form_data(private_key=private, passphrase="wrong"))
    right = SftpSettingsForm(form_data(private_key=private, passphrase="right"))
    assert "enter its passphrase" in missing.errors["passphrase"][0]
    assert "does not unlock" in wrong.errors["passphrase"][0]
    assert right.is_valid(), right.errors


def test_form_lists_the_known_variables_for_an_unknown_one():
    form = SftpSettingsForm(form_data(password="s3cret", upload_path="In/[customer]/"))
    assert not form.is_valid()
    error = form.errors["upload_path"][0]
    assert "[customer]" in error
    assert "[external_id]" in error and "[uen_number]" in error and "[invoice_type]" in error


def test_form_never_renders_secrets_back():
    private, _public = client_key()
    form = SftpSettingsForm(form_data(password="s3cret", private_key=private, host="bad host"))
    assert not form.is_valid()
    html = str(form)
    assert "s3cret" not in html
    assert "OPENSSH PRIVATE KEY" not in html


def test_form_notes_show_the_folder_rights():
    # The addresses to whitelist are on the pages (tests/test_egress_addresses.py).
    notes = " ".join(SftpSettingsForm().notes)
    assert "755" in notes


def test_form_refuses_a_url_as_host():
    form = SftpSettingsForm(form_data(password="s3cret", host="sftp://files.example.be/in"))
    assert not form.is_valid()
    assert "host" in form.errors


def test_client_form_validates_the_override():
    assert SftpClientForm({"path": ""}).is_valid()
    good = SftpClientForm({"path": "Clients/[external_id]"})
    assert good.is_valid() and good.cleaned_data["path"] == "Clients/[external_id]/"
    assert SftpClientForm({"path": ""}, has_stored_secrets=set()).is_valid()  # as views call it
    bad = SftpClientForm({"path": "[nope]/"})
    assert not bad.is_valid()
    assert "[external_id]" in bad.errors["path"][0]


def test_a_server_that_never_greets_times_out(monkeypatch):
    monkeypatch.setattr(sftp_module, "CONNECT_TIMEOUT", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the TCP connection, never says a word
        port = silent.getsockname()[1]
        destination = SimpleNamespace(
            pk=1,
            settings={"host": "127.0.0.1", "port": port, "username": "exporter"},
            secrets={"password": "secret"},
        )
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            SftpConnector(destination).check()
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        f"127.0.0.1:{port} did not complete the SSH handshake within 0.5 seconds"
    )


def test_what_a_server_says_reaches_the_error_without_the_secrets():
    """A port that answers with text instead of SSH is reported in its own words, which
    here repeat the password in three forms: none of them may reach the Integrations tab."""
    user, password = "exporter", "Sftp pass/word-1"
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    line = f"denied {password} {quote(password, safe='')} {pair}\r\n".encode()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer_with_text():
            connection, _address = listener.accept()
            with connection:
                connection.settimeout(10)
                connection.sendall(line * 100)  # paramiko gives up on the 100th line
                while connection.recv(4096):  # until the client hangs up
                    pass

        server = threading.Thread(target=answer_with_text, daemon=True)
        server.start()
        destination = SimpleNamespace(
            pk=1,
            settings={"host": "127.0.0.1", "port": port, "username": user},
            secrets={"password": password},
        )
        with pytest.raises(TransientError) as caught:
            SftpConnector(destination).check()
        server.join(10)
    message = str(caught.value)
    assert message.startswith(f"could not open an SSH session with 127.0.0.1:{port}: ")
    assert "denied *** *** ***" in message
    for leak in (password, quote(password, safe=""), pair):
        assert leak not in message
