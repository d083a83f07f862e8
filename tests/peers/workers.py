"""Real django-q2 worker processes (``manage.py qcluster``) for the fault tests.

``workers(count, **environment)`` starts ``count`` clusters on the test's own database
(the SQLite file, or the ``test_…`` PostgreSQL database) and broker (Redis when
``REDIS_URL`` is set, else the ORM broker in that database), waits until each one has its
worker pool up and one task went through, and stops them at teardown: SIGTERM, then
SIGKILL for the whole process group. Each cluster logs to a file that is attached to the
report of a failing test.

``sweeper`` calls ``exports.tasks.sweep()`` every second from the test process: the very
function django-q2's scheduler runs, but django-q2 looks at its schedules only about every
30 seconds and a schedule repeats at most once a minute, which would make every fault
test wait minutes for what production does within a minute anyway.

Tests that use them need ``@pytest.mark.django_db(transaction=True)``: the workers are other
processes and only see committed rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOG_TAIL = 150  # lines of each worker log attached to a failing test's report

# Seconds instead of minutes, so that faults play out within a test.
FAST = {
    "Q_POLL": "0.1",
    "EXPORT_RETRY_BASE_SECONDS": "2",
    "EXPORT_RETRY_CAP_SECONDS": "10",
    "EXPORT_LEASE_SECONDS": "20",
}

_LOGS = pytest.StashKey[list]()


def probe(path: str) -> None:
    """A task that proves a cluster runs tasks from this broker against this database."""
    Path(path).write_text(str(os.getpid()))


def wait_until(predicate, timeout: float, what: str, *, interval: float = 0.1):
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds.

    ``what`` says what was awaited; it may be a callable, evaluated only on failure, so the
    message can show the state the test got stuck in.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            description = what() if callable(what) else what
            pytest.fail(f"not within {timeout:g}s: {description}")
        time.sleep(interval)


def database_url() -> str:
    """The test database as a ``DATABASE_URL`` (call once the test database exists)."""
    db = settings.DATABASES["default"]
    engine = db["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if engine == "django.db.backends.postgresql":
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}{'@' if auth else ''}{host}{port}/{quote(db['NAME'])}"
    raise RuntimeError(f"worker processes cannot share a {engine} test database")


def uses_postgresql() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def _descendants(pid: int) -> set[int]:
    """``pid``'s children, grandchildren, …, read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclass
class Cluster:
    """One ``manage.py qcluster``: a main process, its sentinel, workers, monitor, pusher."""

    name: str
    process: subprocess.Popen
    log: Path
    workers: int
    seen: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> set[int]:
        """Every process of the cluster alive now or seen before (workers get replaced)."""
        if self.process.poll() is None:
            self.seen |= {self.pid, *_descendants(self.pid)}
        return set(self.seen)

    def alive(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        """The sentinel has forked its workers, the monitor and the pusher."""
        if not self.alive():
            pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
        return len(self.pids() - {self.pid}) >= 1 + self.workers + 2

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT)
        self.pids()
        # Whatever is left of the group: a worker stuck in a task, an orphaned child.
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()

    def tail(self, lines: int = LOG_TAIL) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def worker_environment(**overrides) -> dict[str, str]:
    """The environment a worker needs to share the test's database, broker, files and keys."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("EXPORT_", "Q_", "DATABASE_URL", "REDIS_URL", "PYTEST_"))
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url(),
        VAR_DIR=str(settings.VAR_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        SECRET_KEY=settings.SECRET_KEY,  # django-q signs task payloads with it
        FIELD_ENCRYPTION_KEYS=",".join(settings.FIELD_ENCRYPTION_KEYS),
        EXPORT_ALLOW_PRIVATE_HOSTS="1",
        Q_CLUSTER_NAME=settings.Q_CLUSTER["name"],
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    if settings.REDIS_URL:
        environment["REDIS_URL"] = settings.REDIS_URL
    environment.update(FAST)
    environment.update({name: str(value) for name, value in overrides.items()})
    return environment


class Workers:
    """Starts clusters for one test and stops them all at its end."""

    def __init__(self, request, directory: Path):
        self.request, self.directory = request, directory
        self.clusters: list[Cluster] = []

    def __call__(self, count: int = 1, **environment) -> list[Cluster]:
        """Start ``count`` clusters with ``environment`` on top of the fast timings."""
        env = worker_environment(**environment)
        workers = int(env.get("Q_WORKERS", "2"))
        started = []
        for _ in range(count):
            name = f"qcluster-{len(self.clusters) + 1}"
            log = self.directory / f"{name}.log"
            with log.open("w") as output:
                process = subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, to kill it whole
                )
            cluster = Cluster(name, process, log, workers)
            self.clusters.append(cluster)
            self.request.node.stash.setdefault(_LOGS, []).append(cluster)
            started.append(cluster)
        for cluster in started:
            wait_until(cluster.ready, START_TIMEOUT, lambda c=cluster: f"{c.name}:\n{c.tail()}")
        self._probe()
        return started

    def _probe(self) -> None:
        from django_q.tasks import async_task

        path = self.directory / f"probe-{uuid.uuid4().hex}"
        async_task("tests.peers.workers.probe", str(path), task_name="workers probe")
        wait_until(
            path.exists,
            START_TIMEOUT,
            lambda: (
                "no worker ran a probe task:\n"
                + "\n".join(f"--- {c.name}\n{c.tail()}" for c in self.clusters)
            ),
        )

    def pids(self) -> dict[int, Cluster]:
        return {pid: cluster for cluster in self.clusters for pid in cluster.pids()}

    def stop(self) -> None:
        for cluster in self.clusters:
            cluster.stop()


@pytest.fixture
def workers(request, transactional_db, tmp_path):
    """Factory: ``workers(2, EXPORT_LEASE_SECONDS=10)`` → two running clusters."""
    pool = Workers(request, tmp_path / "workers")
    pool.directory.mkdir()
    try:
        yield pool
    finally:
        pool.stop()
        if settings.REDIS_URL:  # tasks nobody took must not reach the next test's workers
            from django_q.brokers import get_broker

            get_broker().purge_queue()


class Sweeper(threading.Thread):
    """``exports.tasks.sweep()`` every ``interval`` seconds, as the scheduler would."""

    def __init__(self, interval: float):
        super().__init__(name="sweeper", daemon=True)
        self.interval = interval
        self.runs = 0
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        from django.db import connections

        from exports.tasks import sweep

        try:
            while not self._halt.wait(self.interval):
                try:
                    sweep()
                    self.runs += 1
                except Exception as exc:  # a locked SQLite file: the next run tries again
                    self.errors.append(repr(exc))
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._halt.set()
        self.join(STOP_TIMEOUT)


@pytest.fixture
def sweeper(transactional_db):
    thread = Sweeper(interval=1.0)
    thread.start()
    yield thread
    thread.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for cluster in item.stash.get(_LOGS, []):
            report.sections.append((f"{cluster.name} log ({cluster.log})", cluster.tail()))
    return report


# --- the task queue, as tests see it -------------------------------------------------------


def queued_deliveries() -> list[tuple]:
    """The arguments of every ``exports.tasks.deliver`` task waiting in the broker the
    settings name (the database's or Redis), without taking them."""
    from django_q.brokers import get_broker
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    broker = get_broker()
    if settings.REDIS_URL:
        packages = broker.connection.lrange(broker.list_key, 0, -1)
    else:
        packages = OrmQ.objects.filter(key=broker.list_key).values_list("payload", flat=True)
    tasks = [SignedPackage.loads(package) for package in packages]
    return [tuple(task["args"]) for task in tasks if task["func"] == "exports.tasks.deliver"]


@pytest.fixture
def task_queue():
    """An empty queue for the test: Redis keeps tasks across tests, the database does not."""
    from django_q.brokers import get_broker

    broker = get_broker()
    broker.purge_queue()
    yield broker
    broker.purge_queue()
