"""Faults with real worker processes: what the export engine promises when things break.

Every test runs ``manage.py qcluster`` processes (``tests/peers/workers.py``) on the test
database and broker, with the sweeper (``exports.tasks.sweep``) called every second from
the test process, as django-q2's scheduler calls it every minute in production. Timings are
short (a retry after about 2 s, doubling to 10 s; leases of 10-20 s) so that faults play
out in seconds. Outcomes are awaited by polling the database against a deadline.
"""

import asyncio
import collections
import contextlib
import errno
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
from datetime import timedelta
from functools import partial
from pathlib import Path

import asyncssh
import pytest
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from clients.models import Document
from clients.release import release
from exports import demo_sftp
from exports.models import ExportAttempt, ExportJob
from extensions import paths
from extensions.models import Installation, Integration
from tests.peers import free_port
from tests.peers.sftp import sftp_installation as shared_sftp_installation
from tests.peers.workers import uses_postgresql, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

UPLOAD_PATH = "Invoice_import/[uen_number]/[invoice_type]/"
Outcome = ExportAttempt.Outcome
Status = ExportJob.Status


# --- helpers --------------------------------------------------------------------------


sftp_installation = partial(shared_sftp_installation, name="Faults SFTP", upload_path=UPLOAD_PATH)


def backlog(firm, installation, make_client, make_document, *, documents, clients=10):
    """``documents`` purchase invoices of ``clients`` integrated clients, not yet released."""
    companies = [make_client(firm["partner"], f"Faults client {i:02d}") for i in range(clients)]
    for company in companies:
        Integration.objects.create(
            client=company, installation=installation, categories=["purchase", "sales"]
        )
    return [
        make_document(companies[i % clients], Document.Category.PURCHASE, number=f"F-{i:05d}")
        for i in range(documents)
    ]


def release_all(documents) -> None:
    """A month-end release: every document in one transaction."""
    with transaction.atomic():
        for document in documents:
            release(document)


def jobs_of(installation):
    return ExportJob.objects.filter(installation=installation)


def attempts_of(installation):
    return ExportAttempt.objects.filter(job__installation=installation)


def delivered(installation) -> int:
    return jobs_of(installation).filter(status=Status.DELIVERED).count()


def summary(installation) -> str:
    """The state a test got stuck in, for its failure message."""
    counts = dict(jobs_of(installation).values_list("status").annotate(n=Count("pk")).order_by())
    errors = set(jobs_of(installation).exclude(last_error="").values_list("last_error", flat=True))
    installation.refresh_from_db()
    return (
        f"jobs by status {counts}; installation {installation.status} "
        f"{installation.last_error!r}; job errors {sorted(errors)[:3]}"
    )


def at_least(count: int, queryset) -> list | None:
    rows = list(queryset)
    return rows if len(rows) >= count else None


def worker_pid(attempt) -> int:
    return int(attempt.worker.rsplit(":", 1)[1])


def dead(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet: it runs no more code."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def connected(pids, port: int) -> set[int]:
    """Which of ``pids`` hold an established TCP connection to ``port`` on this host."""
    sockets = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if int(remote.rsplit(":", 1)[1], 16) == port and state == "01":  # ESTABLISHED
            sockets.add(f"socket:[{inode}]")
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            if sockets & {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}:
                found.add(pid)
    return found


def final_files(root) -> set:
    return {p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".part")}


def part_files(root) -> list:
    return sorted(root.rglob("*.part"))


def expected_path(root, document, folder=None):
    """Where a document must land: its folder and its deterministic file name."""
    if folder is None:  # UPLOAD_PATH
        kind = "purchases" if document.category == Document.Category.PURCHASE else "sales"
        folder = root / "Invoice_import" / document.client.enterprise_number / kind
    return folder / paths.file_name(document)


def assert_exactly_once(installation, root, documents, folder=None, ignore=()) -> None:
    """Every job delivered, by exactly one delivered attempt; exactly one final file per
    document, at its deterministic name, with its bytes; no ``.part`` file anywhere."""
    jobs = jobs_of(installation)
    assert jobs.count() == len(documents)
    assert not jobs.exclude(status=Status.DELIVERED).exists(), summary(installation)
    per_job = (
        attempts_of(installation)
        .values("job")
        .annotate(delivered=Count("pk", filter=Q(outcome=Outcome.DELIVERED)))
    )
    assert len(per_job) == len(documents)
    assert {row["delivered"] for row in per_job} == {1}

    expected = {
        expected_path(root, document, folder): document
        for document in Document.objects.filter(pk__in=[d.pk for d in documents]).select_related(
            "client"
        )
    }
    files = final_files(root) - set(ignore)
    assert len(files) == len(documents)
    assert files == set(expected)  # nothing missing, nothing extra: no second copy
    for path, document in expected.items():
        with document.file.open("rb") as stored:
            assert path.read_bytes() == stored.read(), path
    assert not part_files(root)


def integrations_tab(client, firm, company) -> str:
    client.force_login(firm["owner"])
    response = client.get(reverse("integrations:list", args=[company.pk]))
    assert response.status_code == 200
    return response.content.decode()


class Trigger(threading.Thread):
    """Calls ``action(observed)`` as soon as ``condition()`` returns something true
    (``observed``), polling every 10 ms in the background, so that a fault lands at a
    chosen point of a flow the test is busy driving."""

    def __init__(self, condition, action):
        super().__init__(name="trigger", daemon=True)
        self.condition, self.action = condition, action
        self.fired_at = None  # when the action was done
        self.observed = None
        self._done, self._fired = threading.Event(), threading.Event()

    def run(self) -> None:
        try:
            while not self._done.is_set():
                observed = self.condition()
                if observed:
                    self.action(observed)
                    self.fired_at, self.observed = timezone.now(), observed
                    self._fired.set()
                    return
                self._done.wait(0.01)
        finally:
            connections.close_all()

    def wait(self, timeout: float, what):
        wait_until(self._fired.is_set, timeout, what)
        return self.fired_at

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self._done.set()
        self.join(10)


# --- SFTP servers with a fault built in ------------------------------------------------


class RecordingSftp(demo_sftp._ChrootSftp):
    """The in-process server's SFTP session, counting per path the files opened for
    writing and the renames onto it: what the destination saw, write by write."""

    opened: collections.Counter = collections.Counter()
    renamed: collections.Counter = collections.Counter()

    def open(self, path, pflags, attrs):
        if pflags & asyncssh.FXF_WRITE:
            self.opened[path.decode()] += 1
        return super().open(path, pflags, attrs)

    def posix_rename(self, oldpath, newpath):
        super().posix_rename(oldpath, newpath)
        self.renamed[newpath.decode()] += 1


@pytest.fixture
def recording_sftp(sftp_server, monkeypatch):
    monkeypatch.setattr(RecordingSftp, "opened", collections.Counter())
    monkeypatch.setattr(RecordingSftp, "renamed", collections.Counter())
    monkeypatch.setattr(demo_sftp, "_ChrootSftp", RecordingSftp)
    return sftp_server


class StallingSftp(demo_sftp._ChrootSftp):
    """Answers the first ``stalls`` writes only after ``delay`` seconds: a server so slow
    that the client's socket timeout runs out first. Later writes are answered at once."""

    stalls = 0
    delay = 0.0
    stalled: list = []

    async def write(self, file_obj, offset, data):
        cls = type(self)
        if cls.stalls > 0:
            cls.stalls -= 1
            cls.stalled.append(time.time())
            await asyncio.sleep(cls.delay)
        return super().write(file_obj, offset, data)


@pytest.fixture
def stalling_sftp(sftp_server, monkeypatch):
    monkeypatch.setattr(StallingSftp, "stalled", [])
    monkeypatch.setattr(demo_sftp, "_ChrootSftp", StallingSftp)
    return sftp_server


class SilentServer:
    """Accepts TCP connections on ``port`` and never says a word (no SSH banner)."""

    def __init__(self, port: int):
        self.port = port
        self.accepted: list[float] = []  # when each connection came in (epoch seconds)
        self._held: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._thread = threading.Thread(target=self._accept, name="silent", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _address = self._listener.accept()
            except OSError:
                return  # closed
            self.accepted.append(time.time())
            self._held.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._thread.join(5)
        self._listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def tmpfs():
    """``mount(folder, uid)``: a 64 KiB tmpfs on ``folder`` owned by ``uid``, unmounted at
    teardown."""
    mounted = []

    def mount(folder, uid):
        folder.mkdir(exist_ok=True)
        options = f"size=64k,mode=0755,uid={uid},gid={uid}"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        if subprocess.run(["umount", str(folder)], check=False).returncode:
            subprocess.run(["umount", "--lazy", str(folder)], check=False)


def fill(path) -> int:
    """Write zeros to ``path`` until its file system is full; the bytes written."""
    written = 0
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                written += os.write(descriptor, b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return written
    finally:
        os.close(descriptor)


# --- the destination goes away --------------------------------------------------------


def test_server_down_for_thirty_seconds_during_two_thousand_documents(
    openssh_server, workers, sweeper, firm, make_client, make_document
):
    """OpenSSH's sshd is stopped (its sessions killed mid-write) for 30 s while 2,000
    documents are going out, then started again on the same port: all 2,000 arrive, once,
    no ``.part`` file is left in place of a final one, and nobody does anything.

    OpenSSH rather than the in-process server: it is what firms run, stopping it cuts the
    sessions the way a crashing server does (half-written ``.part`` files stay on disk),
    and while it is down the port refuses connections for real.
    """
    peer = openssh_server
    installation = sftp_installation(firm["partner"], peer)
    documents = backlog(firm, installation, make_client, make_document, documents=2000)
    workers(1, Q_WORKERS=2)

    outage = Trigger(
        lambda: (n := delivered(installation)) >= 300 and n, lambda _n: peer.sshd.stop()
    )
    with outage:
        release_all(documents)
        down_at = outage.wait(60, lambda: f"300 deliveries; {summary(installation)}")
    # The outage itself: 30 seconds in which the workers keep failing and retrying.
    wait_until(
        lambda: timezone.now() - down_at >= timedelta(seconds=30), 31, "the end of the outage"
    )
    installation.refresh_from_db()
    status_while_down = installation.status
    failed_while_down = attempts_of(installation).filter(outcome=Outcome.TRANSIENT).count()
    restarted = timezone.now()
    assert peer.sshd.start()

    wait_until(
        lambda: delivered(installation) == len(documents),
        120,
        lambda: f"all 2,000 after the restart; {summary(installation)}",
        interval=0.2,
    )
    assert outage.observed < len(documents)  # the outage hit in the middle of the flow
    assert status_while_down == Installation.Status.FAILING
    assert failed_while_down >= 3  # tried again and again while the server was down
    resumed = attempts_of(installation).filter(started_at__gte=restarted).earliest("started_at")
    # Backoff is capped at 10 s; the sweeper wakes the destination once the jobs are due.
    assert resumed.started_at - restarted < timedelta(seconds=20)
    installation.refresh_from_db()
    assert (installation.status, installation.last_error) == (Installation.Status.OK, "")
    assert not jobs_of(installation).filter(status=Status.DEAD).exists()
    assert_exactly_once(installation, peer.root, documents)


# --- a worker dies --------------------------------------------------------------------


def test_worker_killed_mid_batch_another_finishes_after_the_lease(
    openssh_server, workers, sweeper, firm, make_client, make_document
):
    """The worker process sending a batch (the one connected to the server while jobs
    are claimed, 40 files in) is killed with SIGKILL. Its jobs stay claimed until their
    lease runs out (nobody sends them earlier), then the sweeper hands them out again and
    another worker process finishes: every document exactly once (files that landed
    before the worker could record them are sent again under the same name: replaced,
    not duplicated)."""
    lease = 10
    peer = openssh_server
    # One connection at a time: the dead worker's batch is the only one in flight.
    installation = sftp_installation(firm["partner"], peer, connections=1)
    documents = backlog(firm, installation, make_client, make_document, documents=300)
    clusters = workers(2, Q_WORKERS=1, EXPORT_LEASE_SECONDS=lease)
    # Their processes; the ones that run tasks are forked by each cluster's sentinel.
    children = set(workers.pids()) - {cluster.pid for cluster in clusters}

    def sending_worker():
        """Once 40 files are on the server and jobs are claimed: the worker connected."""
        if len(final_files(peer.root)) < 40:
            return None
        if not jobs_of(installation).filter(status=Status.RUNNING).exists():
            return None
        senders = connected(children, peer.port)
        return senders.pop() if len(senders) == 1 else None

    def kill(pid):
        if pid in children:
            os.kill(pid, signal.SIGKILL)

    with Trigger(sending_worker, kill) as trigger:
        release_all(documents)
        killed_at = trigger.wait(60, lambda: f"40 deliveries; {summary(installation)}")
    victim = trigger.observed
    wait_until(lambda: dead(victim), 10, f"worker {victim} (of {children}) to die")

    in_flight = {
        job.pk: job.lease_until
        for job in jobs_of(installation).filter(status=Status.RUNNING).only("lease_until")
    }
    assert in_flight  # killed in the middle of a batch: claimed jobs left unsent
    wait_until(
        lambda: delivered(installation) == len(documents),
        90,
        lambda: f"every document after the kill; {summary(installation)}",
        interval=0.2,
    )

    after = attempts_of(installation).filter(started_at__gte=killed_at)
    assert after.exists() and victim not in {worker_pid(a) for a in after}
    for attempt in after.filter(job_id__in=in_flight):
        # Not handed out before the lease ran out.
        assert attempt.started_at >= in_flight[attempt.job_id], attempt
    reclaimed = jobs_of(installation).filter(pk__in=in_flight)
    assert {job.attempts for job in reclaimed} == {2}  # the lost attempt counted
    assert_exactly_once(installation, peer.root, documents)


# --- two clusters, one backlog ----------------------------------------------------------


def test_two_clusters_drain_one_backlog_without_claiming_a_job_twice(
    recording_sftp, workers, sweeper, firm, make_client, make_document
):
    """Two ``qcluster`` processes (two workers each) on PostgreSQL with the Redis broker
    deliver one backlog over up to four parallel connections, claiming small batches
    against each other: no job is claimed twice and none is lost. The attempt log shows
    one delivered attempt per job and no job attempted by two workers at overlapping
    times; the server saw each file written once and renamed into place once."""
    if not uses_postgresql() or not settings.REDIS_URL:
        pytest.fail(
            "this test needs PostgreSQL (SELECT … FOR UPDATE SKIP LOCKED) and the Redis "
            "broker, as production runs them: run it with DATABASE_URL=postgres://… and "
            "REDIS_URL=redis://… set (CI's `make faults` does)"
        )
    peer = recording_sftp
    installation = sftp_installation(firm["partner"], peer, connections=4)
    documents = backlog(firm, installation, make_client, make_document, documents=600)
    clusters = workers(2, Q_WORKERS=2, EXPORT_BATCH_SIZE=20)
    owner = {pid: cluster.name for cluster in clusters for pid in cluster.pids()}

    release_all(documents)
    wait_until(
        lambda: delivered(installation) == len(documents),
        90,
        lambda: f"the backlog delivered; {summary(installation)}",
        interval=0.2,
    )

    attempts = list(attempts_of(installation).order_by("started_at"))
    assert {a.outcome for a in attempts} == {Outcome.DELIVERED}  # nothing failed or retried
    assert len(attempts) == len({a.job_id for a in attempts}) == len(documents)
    by_job = collections.defaultdict(list)
    for attempt in attempts:
        by_job[attempt.job_id].append(attempt)
    for job_attempts in by_job.values():
        for first, second in itertools.pairwise(job_attempts):
            assert first.worker == second.worker or first.finished_at <= second.started_at

    # Both clusters did part of the work, at the same time: the claims really competed.
    per_cluster = collections.Counter(owner.get(worker_pid(a)) for a in attempts)
    assert set(per_cluster) == {c.name for c in clusters}, per_cluster
    spans = {
        cluster.name: (
            min(a.started_at for a in attempts if owner.get(worker_pid(a)) == cluster.name),
            max(a.finished_at for a in attempts if owner.get(worker_pid(a)) == cluster.name),
        )
        for cluster in clusters
    }
    (start_1, end_1), (start_2, end_2) = spans.values()
    assert start_1 < end_2 and start_2 < end_1, spans

    finals = {path for path in RecordingSftp.renamed if not path.endswith(".part")}
    assert len(finals) == len(documents)
    assert set(RecordingSftp.renamed.values()) == {1}  # each file renamed into place once
    assert set(RecordingSftp.opened.values()) == {1}  # and written once
    assert_exactly_once(installation, peer.root, documents)


# --- a drain longer than its task may run -----------------------------------------------


def test_a_drain_out_of_time_hands_the_rest_to_the_next_task(
    sftp_server, workers, sweeper, firm, make_client, make_document
):
    """A delivery task whose time budget (``EXPORT_DRAIN_SECONDS``) is spent stops starting
    files, gives the rest back and queues the next task, before django-q's task timeout
    could kill it mid-file. With no budget at all each task sends one file (the first
    always goes): 20 documents are 20 tasks, one after the other, one connection each,
    and every document arrives once."""
    peer = sftp_server
    installation = sftp_installation(firm["partner"], peer)
    documents = backlog(firm, installation, make_client, make_document, documents=20, clients=2)
    before = peer.server.connections
    workers(1, Q_WORKERS=1, EXPORT_DRAIN_SECONDS=0)

    release_all(documents)
    wait_until(
        lambda: delivered(installation) == len(documents),
        60,
        lambda: f"every document, one task each; {summary(installation)}",
        interval=0.2,
    )
    assert peer.server.connections - before == len(documents)
    assert not attempts_of(installation).exclude(outcome=Outcome.DELIVERED).exists()
    assert_exactly_once(installation, peer.root, documents)


# --- the destination is slow ------------------------------------------------------------


def test_server_that_never_greets_times_out_and_the_job_is_retried(
    workers, sweeper, firm, make_client, make_document, tmp_path
):
    """The server accepts TCP connections but never sends its SSH banner: each attempt
    fails as transient after the connect timeout (2 s here, ``EXPORT_SFTP_CONNECT_TIMEOUT``),
    the same single worker process retries after the backoff, and once a real server
    answers on that port the document is delivered. The worker never hangs (django-q2's
    own task timeout, 300 s, is far away)."""
    port = free_port()
    server = demo_sftp.SftpServer(
        tmp_path / "root", {"exporter": "pw-exporter"}, port=port, host_key_path=tmp_path / "k"
    )
    pin = {"type": server.host_key_type, "key": server.host_key_base64}
    installation = Installation.objects.create(
        partner=firm["partner"],
        connector="sftp",
        name="Silent server",
        settings={
            "host": "127.0.0.1",
            "port": port,
            "username": "exporter",
            "upload_path": UPLOAD_PATH,
            "known_host_key": {**pin, "fingerprint": server.fingerprint},
        },
        secrets={"password": "pw-exporter"},
    )
    documents = backlog(firm, installation, make_client, make_document, documents=3, clients=1)
    silent = SilentServer(port)
    try:
        (cluster,) = workers(1, Q_WORKERS=1, EXPORT_SFTP_CONNECT_TIMEOUT=2)
        release_all(documents)
        failures = wait_until(
            lambda: at_least(2, attempts_of(installation).order_by("finished_at")),
            30,
            lambda: f"two timed-out attempts; {summary(installation)}",
        )
    finally:
        silent.close()
    with server:
        wait_until(
            lambda: delivered(installation) == len(documents),
            30,
            lambda: f"delivery once the server answers; {summary(installation)}",
        )

    message = f"127.0.0.1:{port} did not complete the SSH handshake within 2 seconds"
    assert len(silent.accepted) >= 2
    for attempt, connected in zip(failures[:2], silent.accepted, strict=False):
        assert (attempt.outcome, attempt.error) == (Outcome.TRANSIENT, message)
        # Given up by the timeout, promptly: timed from the moment the server saw the
        # connection to the moment the worker recorded the failure.
        took = attempt.finished_at.timestamp() - connected
        assert 1.9 <= took < 5, took
    first, second = failures[:2]
    # Retried after the backoff (2 s ± 20 %) and another connect timeout; soon after.
    gap = (second.finished_at - first.finished_at).total_seconds()
    assert 2 * 0.8 + 2 <= gap < 15, gap
    all_attempts = list(attempts_of(installation))
    assert {worker_pid(a) for a in all_attempts} <= cluster.pids()
    assert len({worker_pid(a) for a in all_attempts}) == 1  # one worker, never stuck
    assert_exactly_once(installation, tmp_path / "root", documents)


def test_server_that_stalls_on_write_times_out_and_the_job_is_retried(
    stalling_sftp, workers, sweeper, firm, make_client, make_document
):
    """Connected and sending, the server takes 8 s to acknowledge a write, longer than
    the 2 s SFTP request timeout (``EXPORT_SFTP_IO_TIMEOUT``), twice in a row: each time
    the job fails as transient after one request timeout (two at most: paramiko swallows
    a timeout in a file's close, and the next request times out again), the rest of the
    batch waits, the same worker retries after the backoff, and the third attempt goes
    through. The half-written ``.part`` files are replaced, never left behind."""
    peer = stalling_sftp
    StallingSftp.stalls, StallingSftp.delay = 2, 8.0
    installation = sftp_installation(firm["partner"], peer)
    documents = backlog(firm, installation, make_client, make_document, documents=3, clients=1)
    timeout = 2
    (cluster,) = workers(1, Q_WORKERS=1, EXPORT_SFTP_IO_TIMEOUT=timeout)

    release_all(documents)
    wait_until(
        lambda: delivered(installation) == len(documents),
        45,
        lambda: f"delivery after two stalls; {summary(installation)}",
    )

    assert len(StallingSftp.stalled) == 2
    attempts = list(attempts_of(installation).order_by("finished_at"))
    failures = [a for a in attempts if a.outcome == Outcome.TRANSIENT]
    assert len(failures) == 2
    for attempt, stalled in zip(failures, StallingSftp.stalled, strict=True):
        assert attempt.error.startswith(f"the connection to {peer.host}:{peer.port} was lost")
        # From the write the server sat on to the failure the worker recorded.
        took = attempt.finished_at.timestamp() - stalled
        assert timeout - 0.1 <= took < 2 * timeout + 1.5, took
    assert failures[0].job_id == failures[1].job_id  # the same job, retried
    job = jobs_of(installation).get(pk=failures[0].job_id)
    assert job.attempts == 3
    assert len({worker_pid(a) for a in attempts}) == 1
    assert {worker_pid(a) for a in attempts} <= cluster.pids()
    assert_exactly_once(installation, peer.root, documents)


# --- the destination's disk ---------------------------------------------------------------


def test_full_disk_is_a_transient_error_shown_on_the_integrations_tab(
    openssh_server, tmpfs, workers, sweeper, firm, make_client, make_document, client
):
    """The upload folder is a 64 KiB file system that is full: the server answers the
    write with a failure, and the job fails as **transient** (“its disk may be full”),
    because a full disk is usually freed again (the firm's import tool picks files up, an
    administrator cleans up) and then nothing should need a person: the retries carry on
    with backoff. The error is on the client's Integrations tab; once space is freed the
    waiting documents arrive on their own."""
    peer = openssh_server
    folder = tmpfs(peer.root / "Invoice_import", peer.uid)
    filler = folder / "filler.bin"
    assert fill(filler) > 0
    installation = sftp_installation(firm["partner"], peer, upload_path="Invoice_import/")
    documents = backlog(firm, installation, make_client, make_document, documents=3, clients=1)
    company = documents[0].client
    workers(1, Q_WORKERS=1)

    release_all(documents)
    integration = Integration.objects.get(installation=installation)
    wait_until(
        lambda: attempts_of(installation).exists(),
        30,
        lambda: f"a first attempt; {summary(installation)}",
    )
    landed = {p.name: p.stat().st_size for p in final_files(folder) - {filler}}
    assert not attempts_of(installation).filter(outcome=Outcome.DELIVERED).exists(), (
        f"recorded as delivered while the server's disk is full; sizes there: {landed}"
    )
    integration.refresh_from_db()
    error = integration.last_error
    assert error.startswith(
        f"the server could not store the file in {peer.home}/Invoice_import; its disk may "
        "be full ("
    ), error
    assert not jobs_of(installation).filter(status=Status.DEAD).exists()
    assert escape(error) in integrations_tab(client, firm, company)

    filler.unlink()  # someone frees space
    wait_until(
        lambda: delivered(installation) == len(documents),
        30,
        lambda: f"delivery once space is free; {summary(installation)}",
    )
    assert_exactly_once(installation, peer.root, documents, folder=folder)
    assert escape(error) not in integrations_tab(client, firm, company)


def test_folder_without_write_permission_waits_for_a_person_then_delivers(
    openssh_server, workers, sweeper, firm, make_client, make_document, client
):
    """The upload folder belongs to root (mode 755): the SFTP user may not create files
    in it. That is the destination's configuration, not the documents: the installation
    **needs attention** (“no write permission”), the jobs wait without an attempt counted
    (none dies, no retry hammers the server, the sweeper leaves it alone), and the
    Integrations tab and Manage say why. Once a person gives the user its rights, a
    successful *Test connection* sends what waited."""
    peer = openssh_server
    folder = peer.root / "Invoice_import"
    folder.mkdir(mode=0o755)  # made by root, owned by root
    installation = sftp_installation(firm["partner"], peer, upload_path="Invoice_import/")
    documents = backlog(firm, installation, make_client, make_document, documents=3, clients=1)
    company = documents[0].client
    workers(1, Q_WORKERS=1)

    release_all(documents)
    wait_until(
        lambda: (
            Installation.objects.get(pk=installation.pk).status == Installation.Status.ATTENTION
        ),
        30,
        lambda: f"the installation to need attention; {summary(installation)}",
    )
    expected = f"no write permission in {peer.home}/Invoice_import"
    installation.refresh_from_db()
    assert installation.last_error == expected
    runs = sweeper.runs
    wait_until(lambda: sweeper.runs >= runs + 3, 30, "three sweeps while it needs attention")
    assert not attempts_of(installation).exists()  # nothing counted, nothing retried
    assert set(jobs_of(installation).values_list("status", "attempts")) == {(Status.PENDING, 0)}
    tab = integrations_tab(client, firm, company)
    assert "Needs attention" in tab and escape(expected) in tab
    manage = client.get(reverse("store:manage", args=[installation.pk])).content.decode()
    assert "status-attention" in manage and escape(expected) in manage
    assert not list(folder.iterdir())

    os.chown(folder, peer.uid, peer.uid)  # a person fixes the rights, then tests
    client.post(reverse("store:test", args=[installation.pk]))
    installation.refresh_from_db()
    assert (installation.status, installation.last_error) == (Installation.Status.OK, "")
    wait_until(
        lambda: delivered(installation) == len(documents),
        30,
        lambda: f"delivery after the test connection; {summary(installation)}",
    )
    assert_exactly_once(installation, peer.root, documents, folder=folder)
