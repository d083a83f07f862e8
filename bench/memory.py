"""Memory benchmark: a 10,000-job backfill through ``exports_retry``, peak RSS per process.

What it measures
    The peak resident memory (``VmHWM``) of every process that takes part in a backfill:
    ``manage.py exports_retry --status dead`` (which revives the dead jobs and wakes their
    destination) and the worker that then delivers them, for real, over SFTP. Target:
    at most 250 MB per process, whatever the number of jobs; the code must stream, never
    load every job or document at once. Elapsed times are printed too.

How
    1. A throw-away portal (``bench.harness.Portal``): temporary ``VAR_DIR``, SQLite
       there, or a fresh PostgreSQL database when ``DATABASE_URL`` is set, a queue of its
       own when ``REDIS_URL`` is; ``DEBUG`` off, as in production.
    2. The demo SFTP server (``manage.py demo_sftp_server``, asyncssh) in its own process
       on a free local port; its host key is pinned in the installation.
    3. One firm, ``--clients`` clients (100), one SFTP installation (upload path
       ``Invoice_import/[external_id]/[invoice_type]/``), an integration per client, and
       ``--jobs`` released documents (10,000) of ``--document-kb`` KB (3) each, stored as
       files, with one ``dead`` export job each (``bulk_create``).
    4. The worker: ``manage.py qcluster`` (django-q2, its ORM broker or Redis when
       ``REDIS_URL`` is set, ``Q_WORKERS`` workers, default 2, as in production) started
       with the same environment by ``bench.harness.Workers``, which waits until every
       worker has run a probe task; or, with ``--worker direct``, one fresh ``python`` process
       calling ``exports.engine.deliver`` as a worker would (``--tracemalloc`` then prints
       where its memory goes).
    5. ``exports_retry --status dead`` runs as a subprocess; then the script waits until
       every job is delivered, sampling ``/proc/<pid>/status`` of every process of the
       tree five times a second (and ``os.wait4``'s ``ru_maxrss`` for the ones it reaps).
    6. It checks that every file landed on the SFTP server, stops the worker and prints
       a table: process, peak RSS, target, verdict. Exit 1 when a process exceeds the
       target or a job was not delivered.

Usage::

    .venv/bin/python bench/memory.py                         # 10,000 jobs
    .venv/bin/python bench/memory.py --jobs 500 --clients 10 # what CI may run
    .venv/bin/python bench/memory.py --worker direct --tracemalloc
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import Portal, Workers, free_port  # noqa: E402
from bench.pages import enterprise_number, machine_info  # noqa: E402

TARGET_MB = 250
MANAGE = [sys.executable, str(ROOT / "manage.py")]

# One fresh process delivering the destination, as a django-q2 worker would.
DIRECT_WORKER = r"""
import gc, os, sys, threading, time, tracemalloc
trace = os.environ.get("BENCH_TRACEMALLOC") == "1"
import django
django.setup()
from django.db import connection
from exports import engine
from exports.models import ExportJob

WARM = 1000  # jobs delivered before the reference snapshot: imports and caches are done
warm, done = [], threading.Event()


def watch():
    # Its own thread, so its own database connection; the engine is left untouched.
    while not done.wait(0.2):
        if ExportJob.objects.filter(status="delivered").count() >= WARM:
            gc.collect()
            warm.append(tracemalloc.take_snapshot())
            break
    connection.close()


if trace:
    tracemalloc.start(1)
    threading.Thread(target=watch, daemon=True).start()
started = time.monotonic()
report = engine.deliver(engine.Destination(int(sys.argv[1])))
done.set()
print(f"direct worker: delivered {report.delivered}, dead {report.dead}, "
      f"retrying {report.retrying}, batches {report.batches}, "
      f"{time.monotonic() - started:.1f} s", flush=True)
if trace:
    current, peak = tracemalloc.get_traced_memory()
    print(f"tracemalloc: {current / 2**20:.1f} MB held at the end, {peak / 2**20:.1f} MB "
          "at the peak (Python objects only; RSS adds the interpreter and C libraries)")
    if warm:
        gc.collect()
        end = tracemalloc.take_snapshot()
        grown = end.compare_to(warm[0], "lineno")
        total = sum(stat.size_diff for stat in grown)
        print(f"held at the end minus held after {WARM:,} deliveries: "
              f"{total / 2**10:+,.0f} KiB; the largest differences:")
        for stat in grown[:12]:
            print("   ", stat)
"""


# --- processes and their memory -----------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, starttime)`` of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def _hwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Tracker:
    """Peak RSS of a process and all its descendants, sampled from /proc."""

    def __init__(self):
        self.roots: dict[int, str] = {}
        self.seen: dict[int, dict] = {}

    def watch(self, pid: int, name: str) -> None:
        self.roots[pid] = name
        self.sample()

    def sample(self) -> None:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                info = _stat(int(entry))
                if info:
                    children.setdefault(info[0], []).append(int(entry))
        todo = [(pid, None) for pid in self.roots]
        while todo:
            pid, parent = todo.pop()
            hwm = _hwm_kb(pid)
            if hwm is None:
                continue
            info = _stat(pid)
            record = self.seen.setdefault(
                pid, {"parent": parent, "start": info[1] if info else 0, "hwm": 0}
            )
            record["hwm"] = max(record["hwm"], hwm)
            todo.extend((child, pid) for child in children.get(pid, ()))

    def reaped(self, pid: int, maxrss_kb: int) -> None:
        """``ru_maxrss`` of a process we waited for (covers the time after the last sample)."""
        record = self.seen.setdefault(pid, {"parent": None, "start": 0, "hwm": 0})
        record["hwm"] = max(record["hwm"], maxrss_kb)

    def current_mb(self) -> list[str]:
        """Resident now, of the processes that are the largest so far (the busy ones)."""
        live = [(pid, _rss_kb(pid)) for pid in self.seen]
        live = sorted(((pid, kb) for pid, kb in live if kb), key=lambda item: -item[1])
        return [f"{kb / 1024:.0f}" for _, kb in live[:3]]

    def rows(self, workers: int) -> list[tuple[str, int, int]]:
        """``(role, pid, peak kB)``; django-q2's sentinel forks the workers, then the
        monitor, then the pusher, so start order names the sentinel's children."""
        rows = []
        for root, name in self.roots.items():
            if root not in self.seen:
                continue
            rows.append((name, root, self.seen[root]["hwm"]))
            kids = sorted(
                (pid for pid, r in self.seen.items() if r["parent"] == root),
                key=lambda pid: (self.seen[pid]["start"], pid),
            )
            for kid in kids:
                rows.append(
                    (
                        f"{name}: sentinel" if name == "qcluster" else f"{name}: child",
                        kid,
                        self.seen[kid]["hwm"],
                    )
                )
                grandkids = sorted(
                    (pid for pid, r in self.seen.items() if r["parent"] == kid),
                    key=lambda pid: (self.seen[pid]["start"], pid),
                )
                roles = [f"worker {n + 1}" for n in range(workers)] + ["monitor", "pusher"]
                for n, pid in enumerate(grandkids):
                    role = roles[n] if n < len(roles) else "worker (respawned)"
                    rows.append((f"{name}: {role}", pid, self.seen[pid]["hwm"]))
        return rows


def wait_and_measure(process: subprocess.Popen, tracker: Tracker, interval=0.05) -> float:
    """Wait for a child without children of its own, sampling its memory; elapsed seconds."""
    started = time.monotonic()
    while True:
        tracker.sample()
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            tracker.reaped(process.pid, usage.ru_maxrss)
            return time.monotonic() - started
        time.sleep(interval)


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the SFTP server did not listen on port {port}")


# --- data ---------------------------------------------------------------------------


def build(jobs: int, clients: int, document_kb: int, port: int, *, write_files=True):
    """The firm, its SFTP installation, integrations, documents on disk and dead jobs."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from clients.models import Client, Document, document_path
    from exports.demo_sftp import DEMO_USER, demo_host_key, demo_host_key_path, demo_password
    from exports.models import ExportJob
    from extensions.models import Installation, Integration
    from partnerspace.models import Membership, Partner

    now = timezone.now()
    owner = get_user_model().objects.create_user("owner-memory")
    partner = Partner.objects.create(
        name="Fiduciaire Memory", enterprise_number=enterprise_number(999_999)
    )
    Membership.objects.create(user=owner, partner=partner, role=Membership.Role.OWNER)
    rows = Client.objects.bulk_create(
        Client(
            partner=partner,
            name=f"Client {n:05d} BV",
            enterprise_number=enterprise_number(n + 1),
            vat_number="BE" + enterprise_number(n + 1),
            external_id=f"CL-{n:05d}",
        )
        for n in range(clients)
    )
    key_type, key, fingerprint = demo_host_key(demo_host_key_path())
    installation = Installation.objects.create(
        partner=partner,
        connector="sftp",
        name="Backfill SFTP",
        settings={
            "host": "127.0.0.1",
            "port": port,
            "username": DEMO_USER,
            "upload_path": "Invoice_import/[external_id]/[invoice_type]/",
            "report_path": "",
            "format": "peppol-bis-3",
            "known_host_key": {"type": key_type, "key": key, "fingerprint": fingerprint},
        },
        secrets={"password": demo_password()},
        installed_by=owner,
    )
    links = Integration.objects.bulk_create(
        Integration(
            client=client,
            installation=installation,
            categories=["purchase", "sales", "report"],
            activated_at=now - timedelta(days=30),
        )
        for client in rows
    )
    padding = "x" * max(0, document_kb * 1024 - 400)
    media = Path(settings.MEDIA_ROOT)
    chunk = 2000
    for start in range(0, jobs, chunk):
        documents = []
        for n in range(start, min(jobs, start + chunk)):
            client = rows[n % clients]
            category = ("purchase", "sales")[n % 2]
            data = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">'
                f"<cbc:ID>BF-{n:06d}</cbc:ID><!-- {padding} --></Invoice>\n"
            ).encode()
            document = Document(
                client=client,
                category=category,
                kind="invoice",
                status="approved" if category == "purchase" else "sent",
                number=f"BF-{n:06d}",
                currency="EUR",
                payable_amount=100 + n,
                original_name=f"BF-{n:06d}.xml",
                content_type="application/xml",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                released_at=now - timedelta(days=1),
            )
            document.file.name = document_path(document, document.original_name)
            if write_files:
                path = media / document.file.name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            documents.append(document)
        documents = Document.objects.bulk_create(documents, batch_size=500)
        ExportJob.objects.bulk_create(
            (
                ExportJob(
                    document=document,
                    integration=links[(start + i) % clients],
                    installation=installation,
                    status=ExportJob.Status.DEAD,
                    attempts=settings.EXPORT_MAX_ATTEMPTS,
                    last_error="connection refused by the server",
                )
                for i, document in enumerate(documents)
            ),
            batch_size=500,
        )
    return installation


def status_counts() -> dict[str, int]:
    from django.db.models import Count

    from exports.models import ExportJob

    return dict(ExportJob.objects.values_list("status").annotate(n=Count("pk")).order_by())


# --- the run ------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="dead jobs (default 10000)")
    parser.add_argument("--clients", type=int, default=100, help="clients (default 100)")
    parser.add_argument("--documents", dest="jobs", type=int, help="alias of --jobs")
    parser.add_argument("--document-kb", type=int, default=3, help="document size (default 3)")
    parser.add_argument(
        "--worker",
        choices=["qcluster", "direct"],
        default="qcluster",
        help="qcluster (default): manage.py qcluster; direct: one python process calling "
        "exports.engine.deliver",
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="with --worker direct: where memory goes"
    )
    parser.add_argument(
        "--retry-only",
        action="store_true",
        help="measure exports_retry alone (no worker, no files): to try it with many more jobs",
    )
    parser.add_argument(
        "--timeout", type=float, default=1200, help="give up after this many seconds"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.clients < 1:
        parser.error("--jobs and --clients must be at least 1")
    args.clients = min(args.clients, args.jobs)
    workers = int(os.environ.get("Q_WORKERS", "2"))

    processes: list[subprocess.Popen] = []
    cluster = None
    with Portal("memory") as portal:
        var_dir = Path(portal.env["VAR_DIR"])
        logs = portal.base / "logs"
        logs.mkdir()
        print(f"Memory benchmark: a {args.jobs:,}-job backfill through exports_retry")
        for line in machine_info():
            print("  " + line)
        broker = portal.describe_broker()
        print(
            "  worker: "
            + (
                "none (--retry-only)"
                if args.retry_only
                else f"qcluster ({workers} workers, {broker})"
                if args.worker == "qcluster"
                else "direct (one process calling exports.engine.deliver)"
            )
            + f"; {args.clients} clients, documents of {args.document_kb} KB, SFTP to "
            "the demo asyncssh server on 127.0.0.1 (own process)"
        )
        try:
            from exports.demo_sftp import demo_host_key, demo_host_key_path

            demo_host_key(demo_host_key_path())  # before the server starts: one key file
            port = free_port()
            sftp_root = var_dir / "sftp"
            sftp = subprocess.Popen(
                [*MANAGE, "demo_sftp_server", "--port", str(port), "--root", str(sftp_root)],
                stdout=(logs / "sftp.log").open("w"),
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
            processes.append(sftp)
            started = time.monotonic()
            installation = build(
                args.jobs, args.clients, args.document_kb, port, write_files=not args.retry_only
            )
            print(f"  data built in {time.monotonic() - started:.1f} s: {status_counts()}")
            wait_for_port(port)
            from django.db import connections

            connections.close_all()  # the children write; keep no transaction open here

            tracker = Tracker()
            worker = None
            if args.worker == "qcluster" and not args.retry_only:
                cluster = Workers(portal, processes=1, workers=workers).__enter__()
                worker = cluster.processes[0]
                tracker.watch(worker.pid, "qcluster")

            print()
            backfill_started = time.monotonic()
            retry = subprocess.Popen(
                [*MANAGE, "exports_retry", "--status", "dead"],
                stdout=subprocess.PIPE,
                stderr=(logs / "exports_retry.log").open("w"),
                cwd=ROOT,
                text=True,
            )
            tracker.watch(retry.pid, "exports_retry")
            retry_seconds = wait_and_measure(retry, tracker)
            output = retry.stdout.read().strip()
            print(f"  exports_retry: {output} ({retry_seconds:.1f} s, exit {retry.returncode})")
            if retry.returncode != 0:
                print((logs / "exports_retry.log").read_text()[-3000:])
                return 1
            if args.retry_only:
                counts = status_counts()
                delivered = files = backfill_seconds = None
            else:
                delivered, counts, backfill_seconds = deliver(
                    args, worker, installation, tracker, backfill_started, processes
                )
                files = sum(1 for path in sftp_root.rglob("*.xml") if path.is_file())
        finally:
            if cluster is not None:
                cluster.__exit__(None, None, None)
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()

    print()
    if args.retry_only:
        print(f"  --retry-only: no worker ran; statuses after exports_retry: {counts}")
    else:
        print(
            f"  backfill: {delivered:,} of {args.jobs:,} jobs delivered in "
            f"{backfill_seconds:.1f} s ({delivered / backfill_seconds:.0f} jobs/s, from "
            f"exports_retry's start); {files:,} files on the SFTP server; final statuses "
            f"{counts}"
        )
    print()
    print("| process | pid | peak RSS (MB) | target | verdict |")
    print("|---|---:|---:|---:|---|")
    over = []
    for role, pid, kb in tracker.rows(workers):
        mb = kb / 1024
        if role == "worker (direct)" and args.tracemalloc:
            verdict = "n/a: tracemalloc's own bookkeeping is in this figure"
        elif mb <= TARGET_MB:
            verdict = "ok"
        else:
            verdict = "OVER"
            over.append(role)
        print(f"| {role} | {pid} | {mb:.1f} | ≤ {TARGET_MB} MB | {verdict} |")
    print()
    undelivered = not args.retry_only and (delivered != args.jobs or files < args.jobs)
    if over:
        print(f"FAIL: over {TARGET_MB} MB: {', '.join(over)}")
    if undelivered:
        print(f"FAIL: {args.jobs - delivered} jobs not delivered ({files} files on the server)")
    if args.retry_only and counts.get("pending", 0) != args.jobs:
        print(f"FAIL: exports_retry left {counts}")
        undelivered = True
    if over or undelivered:
        return 1
    print(
        f"OK: every process stayed within {TARGET_MB} MB"
        + ("." if args.retry_only else " and every job was delivered.")
    )
    return 0


def deliver(args, worker, installation, tracker, backfill_started, processes):
    """Start the direct worker if asked, wait until every job is delivered, stop the worker.

    Returns ``(delivered, status counts, seconds since exports_retry started)``.
    """
    from django.db import connections

    if args.worker == "direct":
        worker = subprocess.Popen(
            [sys.executable, "-c", DIRECT_WORKER, str(installation.pk)],
            cwd=ROOT,
            env={**os.environ, "BENCH_TRACEMALLOC": "1" if args.tracemalloc else "0"},
            start_new_session=True,
        )
        processes.append(worker)
        tracker.watch(worker.pid, "worker (direct)")

    deadline = time.monotonic() + args.timeout
    last_print = last_change = time.monotonic()
    last_count = -1
    counts = {}
    while time.monotonic() < deadline:
        for _ in range(5):
            tracker.sample()
            time.sleep(0.2)
        counts = status_counts()
        connections.close_all()
        delivered = counts.get("delivered", 0)
        if delivered != last_count:
            last_count, last_change = delivered, time.monotonic()
        if delivered >= args.jobs:
            break
        if args.worker == "direct" and worker.poll() is not None:
            break
        if time.monotonic() - last_print >= 15:
            last_print = time.monotonic()
            rate = delivered / (time.monotonic() - backfill_started)
            print(
                f"  ... {counts} ({rate:.0f} jobs/s; largest RSS now "
                f"{', '.join(tracker.current_mb())} MB)",
                flush=True,
            )
        if time.monotonic() - last_change > 420:
            print("  no progress for 7 minutes; giving up")
            break
    backfill_seconds = time.monotonic() - backfill_started
    tracker.sample()
    delivered = counts.get("delivered", 0)

    if args.worker == "direct" and worker.returncode is None:
        wait_and_measure(worker, tracker)
    return delivered, counts, backfill_seconds


if __name__ == "__main__":
    sys.exit(main())
