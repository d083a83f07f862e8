"""What the benchmarks share: a throw-away portal, real workers, a real SFTP server.

* :class:`Portal` is a Django environment of its own: a temporary ``VAR_DIR`` (media,
  logs), its own SQLite database there, or, when ``DATABASE_URL`` is set, a fresh
  PostgreSQL database created on that server for the run and dropped after it. With
  ``REDIS_URL`` set the queue is Redis (under a cluster name of its own), else the ORM
  broker. The benchmark process itself runs Django against it (to create data and
  release documents through the real code path) and starts ``manage.py qcluster``
  processes with exactly the same environment.
* :class:`OpenSshServer` is Debian's ``sshd`` on a free loopback port with its own
  configuration (the test suite's, ``tests.peers.sftp.SSHD_CONFIG``: ``internal-sftp``,
  ``LogLevel VERBOSE``), its own host keys and a throw-away system user. Every SSH
  connection that authenticates leaves "Accepted password for <user>" in its log:
  that is how handshakes are counted, for the portal and the reference tools alike.
* :class:`DelayProxy` emulates a round-trip time on loopback (see :func:`serve_proxy`).
* :func:`month_end` creates a firm, C clients each with the firm's one SFTP installation
  activated, and N UBL invoices (5-50 KB) spread over them.

Run ``python -m bench.harness proxy --target 127.0.0.1:PORT --rtt-ms 30`` to start the
delay proxy on its own; it prints the port it listens on.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SSHD = Path("/usr/sbin/sshd")
START_TIMEOUT = 20.0


def log(message: str) -> None:
    """Progress goes to stderr, figures to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


# --- the portal ------------------------------------------------------------------------


class Portal:
    """A throw-away portal: settings, database and broker of its own, migrated.

    Use as a context manager; ``env`` is the environment the workers get.
    """

    def __init__(self, name: str):
        self.name = name
        self.base = Path(tempfile.mkdtemp(prefix=f"psbench-{name}-"))
        self.base.chmod(0o755)
        self.cluster = f"psbench{os.getpid()}"
        self.database_name: str | None = None
        self._admin_url: str | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> Portal:
        from cryptography.fernet import Fernet

        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "Q_", "EXPORT_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="partnerspace.settings",
            DEBUG="0",
            SECRET_KEY="bench-only-" + secrets.token_urlsafe(32),
            FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            EXPORT_ALLOW_PRIVATE_HOSTS="1",
            VAR_DIR=str(self.base / "var"),
            Q_CLUSTER_NAME=self.cluster,
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        # Knobs the caller set for the portal (EXPORT_*, Q_*) pass through unchanged.
        env.update({k: v for k, v in os.environ.items() if k.startswith(("Q_", "EXPORT_"))})
        url = os.environ.get("DATABASE_URL", "")
        if url:
            env["DATABASE_URL"] = self._create_database(url)
        self.env = env
        os.environ.clear()
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))

        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        return self

    def __exit__(self, *exc_info) -> None:
        from django.db import connections

        with suppress(Exception):
            if self.env.get("REDIS_URL"):
                from django_q.brokers import get_broker

                get_broker().delete_queue()
        connections.close_all()
        if self.database_name is not None:
            self._drop_database()
        shutil.rmtree(self.base, ignore_errors=True)

    # PostgreSQL: a database of our own on the server DATABASE_URL names.
    def _create_database(self, url: str) -> str:
        import psycopg

        parts = urlsplit(url)
        if not parts.scheme.startswith(("postgres", "pgsql")):
            raise SystemExit(f"DATABASE_URL: only PostgreSQL is supported, not {parts.scheme}")
        self.database_name = f"partnerspace_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self._admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
        with psycopg.connect(self._admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.database_name}"')
        return urlunsplit(parts._replace(path="/" + self.database_name))

    def _drop_database(self) -> None:
        import psycopg

        with psycopg.connect(self._admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')

    def describe_database(self) -> str:
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                version = cursor.fetchone()[0]
            return f"PostgreSQL {version}"
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (WAL)"

    def describe_broker(self) -> str:
        if self.env.get("REDIS_URL"):
            import redis

            info = redis.Redis.from_url(self.env["REDIS_URL"]).info("server")
            return f"Redis {info['redis_version']} (django-q2)"
        return "django-q2 ORM broker"


class Workers:
    """``processes`` x ``manage.py qcluster`` with ``workers`` each, as in production."""

    def __init__(self, portal: Portal, *, processes: int = 1, workers: int = 4):
        self.portal, self.count, self.workers = portal, processes, workers
        self.processes: list[subprocess.Popen] = []
        self.log = portal.base / "qcluster.log"

    def __enter__(self) -> Workers:
        env = {**self.portal.env, "Q_WORKERS": str(self.workers)}
        with self.log.open("ab") as output:
            for _number in range(self.count):
                self.processes.append(
                    subprocess.Popen(
                        [PYTHON, str(ROOT / "manage.py"), "qcluster"],
                        cwd=ROOT,
                        env=env,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own group: stopped as a whole below
                    )
                )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        """Queue one trivial task per worker and wait until every one of them ran."""
        from django_q.tasks import async_task

        probes = self.portal.base / "probes"
        probes.mkdir(exist_ok=True)
        total = self.count * self.workers
        for number in range(total):
            async_task("os.mkdir", str(probes / str(number)), group="bench-probe")
        wait_for(
            lambda: self._check() or len(list(probes.iterdir())) >= total,
            START_TIMEOUT * 3,
            what="qcluster workers ready",
        )
        time.sleep(0.5)  # let every worker go back to waiting

    def _check(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"qcluster exited ({process.returncode}):\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def __exit__(self, *exc_info) -> None:
        for process in self.processes:  # as a service manager stops it: the main process
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            with suppress(ProcessLookupError):  # whatever of its group is left
                os.killpg(process.pid, signal.SIGKILL)
        self.processes = []


# --- the SFTP server -----------------------------------------------------------------


def _run(*command: str, input: str | None = None) -> str:
    result = subprocess.run(command, input=input, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def version_of(*command: str) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "not installed"
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0] if text else "unknown"


@dataclass
class OpenSshServer:
    """sshd on 127.0.0.1 for a throw-away user whose home receives the uploads."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="psbench-sshd-")))
    username: str = field(default_factory=lambda: f"psbench{secrets.randbelow(10**6):06d}")
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    host: str = "127.0.0.1"
    port: int = 0
    home: Path | None = None
    host_key_type: str = ""
    host_key_base64: str = ""
    _sshd: object = None
    _user_created: bool = False

    def __enter__(self) -> OpenSshServer:
        from tests.peers.sftp import SSHD_CONFIG, Sshd

        if not SSHD.exists():
            raise SystemExit("sshd is missing: apt-get install -y openssh-server")
        if os.geteuid() != 0:
            raise SystemExit("the benchmark creates a throw-away system user: run it as root")
        self.base.chmod(0o755)
        etc, keys, self.home = self.base / "etc", self.base / "keys", self.base / "home"
        etc.mkdir(mode=0o755)
        keys.mkdir(mode=0o700)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for key_type in ("ed25519", "rsa"):
            key = keys / f"ssh_host_{key_type}_key"
            _run("ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "", "-f", str(key))
        try:
            _run("useradd", "--no-create-home", "--home-dir", str(self.home), "--shell",
                 "/usr/sbin/nologin", self.username)  # fmt: skip
            self._user_created = True
            _run("chpasswd", input=f"{self.username}:{self.password}\n")
            account = pwd.getpwnam(self.username)
            self.home.mkdir(mode=0o755)
            os.chown(self.home, account.pw_uid, account.pw_gid)
            (etc / "authorized_keys").write_text("")
            log_file = etc / "sshd.log"
            log_file.write_text("")
            for _attempt in range(3):  # a free port can be taken before sshd binds it
                self.port = free_port()
                config = etc / "sshd_config"
                config.write_text(
                    SSHD_CONFIG.format(port=self.port, etc=etc, keys=keys, user=self.username)
                )
                sshd = Sshd(config, log_file, self.port, self.username)
                if sshd.start():
                    self._sshd = sshd
                    break
            else:
                raise RuntimeError(f"sshd did not start:\n{log_file.read_text()}")
        except BaseException:
            self.__exit__()
            raise
        key_type, key_base64 = (keys / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        self.host_key_type, self.host_key_base64 = key_type, key_base64
        return self

    def __exit__(self, *exc_info) -> None:
        if self._sshd is not None:
            self._sshd.stop()
            self._sshd = None
        if self._user_created:
            _remove_user(self.username)
            self._user_created = False
        shutil.rmtree(self.base, ignore_errors=True)

    def handshakes(self) -> int:
        """SSH connections that authenticated so far (sshd's "Accepted password for")."""
        return self._sshd.logins()

    def pin(self) -> dict:
        from tests.peers.sftp import openssh_fingerprint

        return {
            "type": self.host_key_type,
            "key": self.host_key_base64,
            "fingerprint": openssh_fingerprint(self.host_key_base64),
        }


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


# --- round-trip time on loopback -----------------------------------------------------


async def _pipe(reader, writer, delay: float) -> None:
    """Copy one direction, each chunk written ``delay`` seconds after it was read.

    Reading never waits for writing, so chunks are in flight together (bandwidth is not
    limited, only latency is added) and they leave in the order they came.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        while True:
            try:
                data = await reader.read(256 * 1024)
            except ConnectionError:
                data = b""
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    reading = asyncio.ensure_future(read())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        reading.cancel()


def _nodelay(writer) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _proxy(target_host: str, target_port: int, rtt: float, ready) -> None:
    async def handle(client_reader, client_writer) -> None:
        _nodelay(client_writer)
        await asyncio.sleep(rtt)  # the TCP handshake's round trip
        try:
            server_reader, server_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        _nodelay(server_writer)
        await asyncio.gather(
            _pipe(client_reader, server_writer, rtt / 2),
            _pipe(server_reader, client_writer, rtt / 2),
        )
        for writer in (client_writer, server_writer):
            writer.close()

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await stop


def serve_proxy(target: str, rtt_ms: float) -> None:
    """Listen on a free loopback port and forward to ``target`` with ``rtt_ms`` added.

    Each chunk read from either side is written to the other side rtt/2 later, in order,
    so a request and its answer take one extra rtt whatever their size; a new connection
    waits one rtt before it reaches the server, as a TCP handshake would. Bandwidth is
    not limited, packet loss is not emulated. TCP_NODELAY is set on both legs, so the
    proxy itself never holds data back (the client's own socket options still count).
    """
    host, port = target.rsplit(":", 1)

    def ready(listening: int) -> None:
        print(listening, flush=True)

    with suppress(KeyboardInterrupt):
        asyncio.run(_proxy(host, int(port), rtt_ms / 1000, ready))


class DelayProxy:
    """The proxy as a separate process (so it never competes for this one's GIL)."""

    def __init__(self, target_port: int, rtt_ms: float):
        self.target_port, self.rtt_ms = target_port, rtt_ms
        self.port = 0
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> DelayProxy:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "bench.harness", "proxy", "--target",
             f"127.0.0.1:{self.target_port}", "--rtt-ms", str(self.rtt_ms)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.__exit__()
            raise RuntimeError("the delay proxy did not start")
        self.port = int(line)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


# --- data ----------------------------------------------------------------------------


@dataclass
class MonthEnd:
    installation: object
    clients: list
    documents: list


def month_end(
    sftp: OpenSshServer,
    *,
    documents: int,
    clients: int,
    port: int,
    connections: int,
    folder: str,
    seed: str = "bench",
) -> MonthEnd:
    """A firm with ``clients`` clients, its one SFTP installation activated for each, and
    ``documents`` purchase invoices (Peppol UBL, 5-50 KB) stored and not yet released."""
    import dataclasses
    import datetime

    from django.core.files.base import ContentFile

    from clients import demo
    from clients.models import Client, Document
    from clients.release import INITIAL_STATUS
    from extensions.models import Installation, Integration
    from partnerspace.models import Partner

    rng = random.Random(seed)
    partner = Partner.objects.create(
        name="Fiduciaire Benchmark", enterprise_number=demo.enterprise_number(7_000_001)
    )
    installation = Installation.objects.create(
        partner=partner,
        connector="sftp",
        name="Firm SFTP",
        connections=connections,
        settings={
            "host": sftp.host,
            "port": port,
            "username": sftp.username,
            "upload_path": folder,
            "known_host_key": sftp.pin(),
        },
        secrets={"password": sftp.password},
    )
    templates = demo.demo_clients()
    suppliers = demo.demo_companies()["suppliers"]
    companies, rows = [], []
    for index in range(clients):
        number = demo.enterprise_number(4_000_000 + index * 7_919)
        template = templates[index % len(templates)]
        company = dataclasses.replace(
            template,
            name=f"{template.name} {index + 1:03d}",
            enterprise_number=number,
            external_id=f"CL-{index + 1:04d}",
        )
        companies.append(company)
        rows.append(
            Client(
                partner=partner,
                name=company.name,
                enterprise_number=number,
                vat_number=company.vat_number,
                external_id=company.external_id,
            )
        )
    client_rows = Client.objects.bulk_create(rows)
    Integration.objects.bulk_create(
        [
            Integration(client=client, installation=installation, categories=["purchase"])
            for client in client_rows
        ]
    )
    issue_date = datetime.date.today().replace(day=1)
    category = Document.Category.PURCHASE
    stored = []
    for index in range(documents):
        owner = index % clients
        size = rng.randint(5_000, 50_000)
        data = demo.invoice_xml(
            number=f"BENCH-{index + 1:05d}",
            issue_date=issue_date,
            supplier=suppliers[index % len(suppliers)],
            customer=companies[owner],
            lines=demo.lines_for_size(size),
            seed=f"{seed}-{index}",
        )
        document = Document(
            client=client_rows[owner],
            category=category,
            kind=Document.Kind.INVOICE,
            status=INITIAL_STATUS[category],
            number=f"BENCH-{index + 1:05d}",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            original_name=f"BENCH-{index + 1:05d}.xml",
            content_type="application/xml",
        )
        document.file.save(document.original_name, ContentFile(data), save=False)
        stored.append(document)
    stored = Document.objects.bulk_create(stored, batch_size=500)
    return MonthEnd(installation, client_rows, stored)


def expected_files(installation) -> dict[str, bytes]:
    """What each job must have put on the server: path (as the engine builds it) → bytes."""
    from exports import engine
    from exports.models import ExportJob

    connector = installation.connector_instance()
    expected = {}
    jobs = ExportJob.objects.filter(installation=installation).select_related(
        "document__client", "integration"
    )
    for job in jobs:
        export_file = engine.build_file(job, connector)
        expected["/".join((*export_file.folder, export_file.filename))] = export_file.content
    return expected


@dataclass
class Check:
    missing: list[str]
    unexpected: list[str]
    wrong: list[str]
    mode: int | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong)

    def __str__(self) -> str:
        if self.ok:
            mode = f", mode {self.mode:o}" if self.mode is not None else ""
            return f"every file once, right bytes{mode}, nothing else"
        parts = []
        for label, paths in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("wrong bytes or mode", self.wrong),
        ):
            if paths:
                parts.append(f"{len(paths)} {label} (e.g. {paths[0]})")
        return "; ".join(parts)


def check_tree(root: Path, expected: dict[str, bytes], mode: int | None = None) -> Check:
    """Every expected file under ``root`` exactly once with its bytes (and ``mode`` when
    given), and nothing else: no second copy under another name, no ``.part`` left."""
    found = {
        str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()
    } if root.exists() else set()  # fmt: skip
    missing = sorted(set(expected) - found)
    unexpected = sorted(found - set(expected))
    wrong = sorted(
        name
        for name in set(expected) & found
        if (root / name).read_bytes() != expected[name]
        or (mode is not None and stat.S_IMODE((root / name).stat().st_mode) != mode)
    )
    return Check(missing, unexpected, wrong, mode)


def last_change(root: Path) -> float:
    """The newest ctime under ``root``: when the last file was renamed into place."""
    return max((p.stat().st_ctime for p in root.rglob("*") if p.is_file()), default=0.0)


def machine() -> dict[str, str]:
    import paramiko

    cpu = ""
    with suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else ""
    return {
        "cores": f"{os.cpu_count()} ({cpu or platform.machine()})",
        "python": platform.python_version(),
        "openssh": version_of(str(SSHD), "-V"),
        "rclone": version_of("rclone", "version"),
        "paramiko": paramiko.__version__,
    }


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.4999))
    return ordered[min(len(ordered), rank) - 1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    proxy = commands.add_parser("proxy", help=serve_proxy.__doc__.splitlines()[0])
    proxy.add_argument("--target", required=True, help="host:port to forward to")
    proxy.add_argument("--rtt-ms", type=float, required=True)
    options = parser.parse_args(argv)
    if options.command == "proxy":
        serve_proxy(options.target, options.rtt_ms)


if __name__ == "__main__":
    main()
