"""Two real SFTP servers for the connector's tests.

* ``sftp_server``: the in-process asyncssh server of ``exports.demo_sftp`` (fast, and it
  can be stopped, restarted on the same port, given another host key, and counts its
  connections);
* ``openssh_server``: OpenSSH's own ``sshd`` with ``internal-sftp``, started on a free
  port with its own configuration and host keys, for a throw-away system user. It is
  what firms run, with real Unix permissions (the asyncssh server runs as the test
  process, often root, which no folder mode stops).

Both yield an :class:`SftpPeer` describing how to reach them and where uploads land.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from exports.demo_sftp import SftpServer
from extensions.connectors.base import host_key_pin
from tests.peers import free_port

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
START_TIMEOUT = 10.0


@dataclass
class SftpPeer:
    """How to reach a test SFTP server, and where its uploads land on this machine."""

    kind: str  # "asyncssh" or "openssh"
    host: str
    port: int
    username: str
    password: str
    private_key: str  # ed25519, OpenSSH format, authorized for ``username``
    public_key: str
    root: Path  # the folder the user's SFTP paths are relative to
    home: str  # that folder as the server names it (what SFTP's "." resolves to)
    fingerprint: str
    host_key_type: str
    host_key_base64: str
    server: SftpServer | None = None  # the asyncssh server, to restart or count connections
    uid: int | None = None  # the OpenSSH user's uid, to hand folders to it
    sshd: Sshd | None = None  # the OpenSSH server, to stop and start again

    def pin(self) -> dict:
        """The settings entry of a host key someone accepted."""
        return host_key_pin(self.host_key_type, self.host_key_base64, self.fingerprint)


def client_key(passphrase: str | None = None) -> tuple[str, str]:
    """A fresh ed25519 key pair: (private key in OpenSSH format, public key line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, public


def openssh_fingerprint(key_base64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# --- asyncssh --------------------------------------------------------------------------


@pytest.fixture
def sftp_server(tmp_path):
    """The embedded asyncssh server: user "exporter" with a password and an ed25519 key."""
    private, public = client_key()
    username, password = "exporter", secrets.token_urlsafe(12)
    root = tmp_path / "sftp-root"
    server = SftpServer(
        root,
        {username: password},
        authorized_keys={username: [public]},
        host_key_path=tmp_path / "host-key",
    )
    with server:
        yield SftpPeer(
            kind="asyncssh",
            host=server.host,
            port=server.port,
            username=username,
            password=password,
            private_key=private,
            public_key=public,
            root=root,
            home="/",
            fingerprint=server.fingerprint,
            host_key_type=server.host_key_type,
            host_key_base64=server.host_key_base64,
            server=server,
        )


# --- OpenSSH ---------------------------------------------------------------------------

SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {keys}/ssh_host_ed25519_key
HostKey {keys}/ssh_host_rsa_key
PidFile {etc}/sshd.pid
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {etc}/authorized_keys
PermitRootLogin no
AllowUsers {user}
StrictModes no
Subsystem sftp internal-sftp
ForceCommand internal-sftp
AllowTcpForwarding no
X11Forwarding no
LogLevel VERBOSE
"""


def _run(*command: str, input: str | None = None) -> None:
    result = subprocess.run(command, input=input, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command[:2])} failed: {result.stderr.strip()}")


def _wait_for_banner(port: int, process: subprocess.Popen, log: Path) -> bool:
    """True once sshd greets on ``port``; False if it exited (port taken, bad config)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                if probe.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"sshd did not answer on port {port} in {START_TIMEOUT:.0f}s:\n{log.read_text()}")


def _remove_user(username: str) -> None:
    """userdel refuses while a session process of the user still exits; wait a little."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        result = subprocess.run(
            ["userdel", "-r", username], capture_output=True, text=True, check=False
        )
        if result.returncode in (0, 6, 12):  # done, no such user, home already gone
            return
        if time.monotonic() > deadline:
            subprocess.run(["userdel", "-r", "-f", username], capture_output=True, check=False)
            return
        time.sleep(0.1)


def _require_sshd() -> None:
    if not SSHD.exists():
        pytest.fail(
            f"{SSHD} is missing: install OpenSSH's server (apt-get install -y "
            "openssh-server; .ci/run does this) to run the SFTP tests against it."
        )
    if os.geteuid() != 0:
        pytest.fail("the OpenSSH SFTP tests create a system user: run them as root")


def _host_keys(tmp_path_factory) -> Path:
    """sshd's host keys, made once a test session (an RSA key takes a moment)."""
    keys = tmp_path_factory.getbasetemp() / "sshd-host-keys"
    if not (keys / "ssh_host_rsa_key.pub").exists():
        keys.mkdir(exist_ok=True)
        for key_type in ("ed25519", "rsa"):
            key = keys / f"ssh_host_{key_type}_key"
            key.unlink(missing_ok=True)
            key.with_suffix(".pub").unlink(missing_ok=True)
            _run(SSH_KEYGEN, "-q", "-t", key_type, "-N", "", "-C", "", "-f", str(key))
    return keys


class Sshd:
    """One sshd listener on a fixed port; ``stop`` also cuts the user's open sessions."""

    def __init__(self, config: Path, log: Path, port: int, username: str):
        self.config, self.log, self.port, self.username = config, log, port, username
        self.process: subprocess.Popen | None = None

    def start(self) -> bool:
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        return _wait_for_banner(self.port, self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        subprocess.run(["pkill", "-KILL", "-u", self.username], check=False)

    def logins(self) -> int:
        """Successful SSH authentications so far: one per connection the exporter made."""
        return self.log.read_text().count(f"Accepted password for {self.username}")


@pytest.fixture
def openssh_server(tmp_path_factory):
    """OpenSSH's sshd on a free port, for a throw-away user whose home receives uploads."""
    _require_sshd()
    keys = _host_keys(tmp_path_factory)

    base = Path(tempfile.mkdtemp(prefix="pstest-sshd-"))
    base.chmod(0o755)  # the user's sessions must reach their home inside it
    etc, home = base / "etc", base / "home"
    etc.mkdir(mode=0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    username = f"pstest{secrets.randbelow(10**6):06d}"
    password = secrets.token_urlsafe(12)
    private, public = client_key()
    process = None
    user_created = False
    try:
        _run("useradd", "--no-create-home", "--home-dir", str(home), "--shell",
             "/usr/sbin/nologin", username)  # fmt: skip
        user_created = True
        _run("chpasswd", input=f"{username}:{password}\n")
        account = pwd.getpwnam(username)
        home.mkdir(mode=0o755)
        os.chown(home, account.pw_uid, account.pw_gid)
        # Outside the home, so uploads land in an empty folder; StrictModes is off because
        # this file sits under /tmp, which is world-writable.
        (etc / "authorized_keys").write_text(public + "\n")
        (etc / "authorized_keys").chmod(0o644)

        log = etc / "sshd.log"
        log.write_text("")
        for _attempt in range(3):  # a free port can be taken before sshd binds it
            port = free_port()
            config = etc / "sshd_config"
            config.write_text(SSHD_CONFIG.format(port=port, etc=etc, keys=keys, user=username))
            process = Sshd(config, log, port, username)
            if process.start():
                break
            process = None
        else:
            pytest.fail(f"sshd did not start:\n{log.read_text()}")

        key_type, key_base64 = (keys / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        yield SftpPeer(
            kind="openssh",
            host="127.0.0.1",
            port=port,
            username=username,
            password=password,
            private_key=private,
            public_key=public,
            root=home,
            home=str(home),
            fingerprint=openssh_fingerprint(key_base64),
            host_key_type=key_type,
            host_key_base64=key_base64,
            uid=account.pw_uid,
            sshd=process,
        )
    finally:
        if process is not None:
            process.stop()
        if user_created:
            _remove_user(username)
        shutil.rmtree(base, ignore_errors=True)


def sftp_installation(
    partner, peer, *, name="Lambert SFTP", upload_path="in/", settings=None, **fields
):
    """The firm's SFTP extension on ``peer`` (either server above), its host key already
    accepted, as a firm that went through Install leaves it. (The benchmarks import this
    module before Django is set up: the model is imported here.)"""
    from extensions.models import Installation

    return Installation.objects.create(
        partner=partner,
        connector="sftp",
        name=name,
        settings={
            "host": peer.host,
            "port": peer.port,
            "username": peer.username,
            "upload_path": upload_path,
            **peer.pin(),
            **(settings or {}),
        },
        secrets={"password": peer.password},
        **fields,
    )
