"""Release-to-file latency: one document at a time, with an idle worker waiting.

What is measured: a real OpenSSH server on loopback (optionally behind the delay proxy
of bench/harness.py, ``--rtt-ms``), the firm's SFTP installation activated for a few
clients, and real ``manage.py qcluster`` workers (the broker the environment selects:
django-q2's ORM broker, or Redis when ``REDIS_URL`` is set) started and left idle. Then,
``--releases`` times: release one document through ``clients.release.release`` (its own
transaction, as a click on "Approve" does) and measure until its file exists on the
server under its final name (checked every millisecond). After each file the script
waits until the job is recorded delivered and then a random 0.2-0.6 s, so the next
release again finds an idle worker and no connection open (and does not fall into step
with the broker's polling).

Prints the machine, the parameters, p50 / p95 / max of the latencies and the SSH
handshakes per release. Exit 0 after printing; 1 when a document never arrived or
arrived with the wrong bytes. Target: p95 <= 1.5 s with the ORM broker, lower with Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.harness import log

TEMPLATE = "latency/Invoice_import/[uen_number]/[invoice_type]/"
ARRIVAL_TIMEOUT = 30.0


def expected_path(home: Path, document) -> Path:
    """Where the engine puts this released document (the same rules it applies)."""
    from django.utils import timezone

    from extensions import paths

    folder = paths.render(
        TEMPLATE, client=document.client, category=document.category, today=timezone.localdate()
    )
    return home.joinpath(*folder, paths.file_name(document))


def measure(sftp, options, documents) -> tuple[list[float], list[str]]:
    from django.db import connection

    from clients.release import release
    from exports.models import ExportJob

    rng = random.Random("latency")
    latencies, problems = [], []
    for number, document in enumerate(documents, start=1):
        started = time.monotonic()
        release(document)
        target = expected_path(sftp.home, document)
        deadline = started + ARRIVAL_TIMEOUT
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        arrived = time.monotonic()
        if not target.exists():
            problems.append(f"document {document.pk} did not arrive in {ARRIVAL_TIMEOUT:.0f} s")
            break
        latencies.append(arrived - started)
        with document.file.open("rb") as stored:
            if target.read_bytes() != stored.read():
                problems.append(f"{target.name}: wrong bytes")
        jobs = ExportJob.objects.filter(document=document)
        harness.wait_for(
            lambda jobs=jobs: not jobs.exclude(status=ExportJob.Status.DELIVERED).exists(),
            ARRIVAL_TIMEOUT,
            interval=0.01,
            what="the job recorded delivered",
        )
        connection.close()
        time.sleep(rng.uniform(0.2, 0.6))  # the worker goes idle again
        if number % 20 == 0:
            log(f"{number} released, p50 so far {statistics.median(latencies):.3f} s")
    return latencies, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=100)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="added round-trip time")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("Q_WORKERS", 2)),
        help="Q_WORKERS: worker processes of the one qcluster (default as in settings: 2)",
    )
    options = parser.parse_args(argv)
    if options.releases < 1 or options.clients < 1:
        parser.error("--releases and --clients must be positive")

    facts = harness.machine()
    with harness.OpenSshServer() as sftp, harness.Portal("latency") as portal:
        proxy = (
            harness.DelayProxy(sftp.port, options.rtt_ms)
            if options.rtt_ms > 0
            else contextlib.nullcontext()
        )
        with proxy:
            port = proxy.port if options.rtt_ms > 0 else sftp.port
            facts["database"] = portal.describe_database()
            facts["broker"] = portal.describe_broker()
            facts["poll"] = f"{portal.env.get('Q_POLL', '0.2')} s (Q_POLL, ORM broker only)"
            log(f"creating {options.releases} documents for {options.clients} clients")
            data = harness.month_end(
                sftp,
                documents=options.releases,
                clients=options.clients,
                port=port,
                connections=4,
                folder=TEMPLATE,
            )
            with harness.Workers(portal, workers=options.workers):
                log(f"releasing {options.releases} documents one at a time")
                before = sftp.handshakes()
                latencies, problems = measure(sftp, options, data.documents)
                handshakes = sftp.handshakes() - before

    print("Release-to-file latency (bench/latency.py)")
    for key, value in facts.items():
        print(f"  {key:<10} {value}")
    print(
        f"  parameters releases={options.releases} clients={options.clients} "
        f"rtt={options.rtt_ms:g} ms qcluster=1x{options.workers} workers"
    )
    print()
    if latencies:
        print(f"{'releases':>8} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'handshakes':>10}")
        print(
            f"{len(latencies):>8} {statistics.median(latencies):>7.3f} "
            f"{harness.percentile(latencies, 0.95):>7.3f} {max(latencies):>7.3f} "
            f"{handshakes:>10}"
        )
    for problem in problems:
        print(f"broken: {problem}")
    return 1 if problems or not latencies else 0


if __name__ == "__main__":
    sys.exit(main())
