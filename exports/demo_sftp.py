"""An SFTP server in the portal's own process, for the demo and for tests.

The SFTP connector is tested against a real SSH server rather than mocks: this one is
asyncssh running its event loop in a background thread, so synchronous code (paramiko in
the connector, pytest) can talk to it over real TCP. It is small on purpose:

* every user is chrooted to one ``root`` folder, so uploads land at ``root/<path>``;
* the host key can be persisted (``host_key_path``) so its fingerprint, the one a firm
  pins, stays the same across restarts;
* ``stop()`` then ``start()`` comes back on the same port, which is how tests simulate a
  server that goes away mid-batch and returns; ``connections`` counts SSH connections,
  so tests can check that a batch uses one;
* ``posix_rename=False`` makes the server refuse the OpenSSH posix-rename extension, to
  exercise the connector's fallback for servers without it.

Not for production: it trusts its users with everything under ``root``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import threading
from pathlib import Path

import asyncssh
from django.conf import settings

START_TIMEOUT = 10.0


def load_or_create_host_key(path: Path | None) -> asyncssh.SSHKey:
    """The ed25519 host key stored at ``path``, created (mode 600) when missing."""
    if path is None:
        return asyncssh.generate_private_key("ssh-ed25519")
    path = Path(path)
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stored:
        stored.write(key.export_private_key())
    return key


def describe_host_key(key: asyncssh.SSHKey) -> tuple[str, str, str]:
    """``(type, base64 public key, "SHA256:…" fingerprint)`` as the connector pins them."""
    return (
        key.get_algorithm(),
        base64.b64encode(key.public_data).decode("ascii"),
        key.get_fingerprint("sha256"),
    )


DEMO_USER = "demo"
DEMO_PORT = 2222
DEFAULT_PASSWORD = "demo-sftp"  # noqa: S105 - the local demo server's published password
DEMO_INSTALLATION = "Demo SFTP server"
DEMO_PATH = "Invoice_import/[external_id]/[invoice_type]/"


def demo_password() -> str:
    return getattr(settings, "DEMO_SFTP_PASSWORD", "") or DEFAULT_PASSWORD


def demo_host_key_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-sftp-host-key"


def demo_host_key(path: Path) -> tuple[str, str, str]:
    """The demo server's host key, created if missing, so ``seed_demo`` can pin it offline."""
    return describe_host_key(load_or_create_host_key(path))


class _ChrootSftp(asyncssh.SFTPServer):
    """asyncssh's file-system SFTP server, confined to ``root``."""

    def __init__(self, chan, *, root: Path, posix_rename: bool):
        super().__init__(chan, chroot=os.fsencode(root))
        self._posix_rename = posix_rename

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if not self._posix_rename:
            raise asyncssh.SFTPOpUnsupported("posix-rename is disabled on this server")
        super().posix_rename(oldpath, newpath)


class _Server(asyncssh.SSHServer):
    """One per connection: password and public-key checks against the owner's tables."""

    def __init__(self, owner: SftpServer):
        self._owner = owner
        self._connection = None

    def connection_made(self, conn) -> None:
        self._connection = conn
        self._owner._opened(conn)

    def connection_lost(self, exc) -> None:
        self._owner._closed(self._connection)

    def begin_auth(self, username: str) -> bool:
        return True  # every user must authenticate

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._owner.users.get(username)
        return expected is not None and hmac.compare_digest(
            expected.encode("utf-8"), password.encode("utf-8")
        )

    def public_key_auth_supported(self) -> bool:
        return bool(self._owner.authorized_keys)

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return any(
            asyncssh.import_public_key(text).public_data == key.public_data
            for text in self._owner.authorized_keys.get(username, ())
        )


class SftpServer:
    """A threaded asyncssh SFTP server; use as a context manager or ``start()``/``stop()``."""

    def __init__(
        self,
        root: Path,
        users: dict[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        authorized_keys: dict[str, list[str]] | None = None,
        host_key_path: Path | None = None,
        posix_rename: bool = True,
    ):
        self.root = Path(root)
        self.users = dict(users)
        self.authorized_keys = {name: list(keys) for name, keys in (authorized_keys or {}).items()}
        self.host, self.port = host, port
        self.host_key_path = Path(host_key_path) if host_key_path else None
        self.posix_rename = posix_rename
        self.connections = 0  # SSH connections accepted since construction
        self._host_key = load_or_create_host_key(self.host_key_path)
        self._open: set = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor = None

    # -- what a client pins -----------------------------------------------------------

    @property
    def host_key_type(self) -> str:
        return describe_host_key(self._host_key)[0]

    @property
    def host_key_base64(self) -> str:
        return describe_host_key(self._host_key)[1]

    @property
    def fingerprint(self) -> str:
        return describe_host_key(self._host_key)[2]

    # -- life cycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> SftpServer:
        """Listen (again on the same port after a ``stop()``); returns once accepting."""
        if self.running:
            raise RuntimeError("the SFTP server is already running")
        if self.host_key_path is not None:  # may have been swapped to simulate a new key
            self._host_key = load_or_create_host_key(self.host_key_path)
        self.root.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"demo-sftp-{self.port}", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(START_TIMEOUT)
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection, as a crashing server would."""
        if not self.running:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(START_TIMEOUT)
        finally:
            self._shutdown_loop()

    def __enter__(self) -> SftpServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def _listen(self) -> None:
        self._acceptor = await asyncssh.listen(
            self.host,
            self.port,
            server_factory=lambda: _Server(self),
            server_host_keys=[self._host_key],
            sftp_factory=lambda chan: _ChrootSftp(
                chan, root=self.root, posix_rename=self.posix_rename
            ),
            allow_scp=False,
            reuse_address=True,
            login_timeout=30,
        )
        self.port = self._acceptor.get_port()

    async def _close(self) -> None:
        self._acceptor.close()
        await self._acceptor.wait_closed()
        connections = list(self._open)
        for conn in connections:
            conn.abort()
        for conn in connections:
            await conn.wait_closed()
        self._acceptor = None

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT)
        self._loop.close()
        self._loop = self._thread = None

    def _opened(self, conn) -> None:
        self.connections += 1
        self._open.add(conn)

    def _closed(self, conn) -> None:
        self._open.discard(conn)


def install_demo_extension(partner, clients):
    """The demo firm's SFTP extension, pointing at ``demo_sftp_server``, key pinned.

    Idempotent; integrations are activated once, so documents the demo released before
    stay home, as they would for a firm.
    """
    from extensions.connectors.base import host_key_pin
    from extensions.models import Installation, Integration

    key_type, key, fingerprint = demo_host_key(demo_host_key_path())
    installation, _ = Installation.objects.update_or_create(
        partner=partner,
        connector="sftp",
        name=DEMO_INSTALLATION,
        defaults={
            "settings": {
                "host": "127.0.0.1",
                "port": DEMO_PORT,
                "username": DEMO_USER,
                "upload_path": DEMO_PATH,
                "report_path": "",
                "format": "peppol-bis-3",
                **host_key_pin(key_type, key, fingerprint),
            },
            "secrets": {"password": demo_password()},
            "removed_at": None,
        },
    )
    for client in clients:
        Integration.objects.get_or_create(
            client=client,
            installation=installation,
            defaults={"categories": ["purchase", "sales", "report"]},
        )
    return installation
