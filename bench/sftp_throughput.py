"""Month-end SFTP throughput: the portal's workers against rclone and plain paramiko.

What is measured, in one run, against one real OpenSSH server on loopback (optionally
behind a delay proxy that adds ``--rtt-ms`` of round-trip time, see bench/harness.py):

1. **project**: N purchase invoices (Peppol UBL, 5-50 KB, about 40 % over 32 KB) of C
   clients, the firm's one SFTP installation activated for every client (many clients,
   one server: the month-end shape). Real ``manage.py qcluster`` processes are started
   and left idle; then every document is released through ``clients.release.release``
   in one transaction (a bulk approval; ``--release each`` releases them one transaction
   each, as ``release_documents`` does). The clock runs from the moment the release
   commits (from the first release with ``each``) until the last file is renamed into
   place on the server: the newest ctime in the upload tree, read once every job is
   recorded delivered. Files go where the installation says
   (``project/Invoice_import/[uen_number]/[invoice_type]/``, mode 664, checked).
2. **rclone**: the very same files, laid out locally in the same tree, copied with
   ``rclone copy`` (default settings: the options given are printed) to the same server
   through the same proxy. Wall time of the command.
3. **paramiko**: one plain paramiko connection (its own socket, so no TCP_NODELAY),
   one SFTP channel, uploading the files one after the other (open, pipelined write,
   close; folders made once). Wall time from connecting to the last close.

Each method writes into its own folder of the same SFTP user and is then checked:
every expected file exactly once with the right bytes, nothing else (no ``.part``).
SSH handshakes are counted from sshd's log ("Accepted password for").

Prints the machine, the parameters, a table and the ratios project ÷ rclone and
project ÷ paramiko (files/s). Exit 0 after printing; 1 when something is broken (a file
missing, duplicated or wrong, a method that failed). Targets (for the full run, not for
short CI runs): project ÷ rclone ≥ 1.0 at loopback and at 30 ms; ≤ 10 handshakes per
1,000 files.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import posixpath
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.harness import log

PROJECT_FOLDER = "project"
TEMPLATE = "Invoice_import/[uen_number]/[invoice_type]/"
NO_PROGRESS_TIMEOUT = 120.0


@dataclass
class Result:
    method: str
    files: int
    seconds: float
    handshakes: int
    check: harness.Check
    note: str = ""

    @property
    def rate(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_thousand(self) -> float:
        return self.handshakes * 1000 / self.files if self.files else 0.0


def release_all(documents, mode: str) -> tuple[float, float]:
    """Release every document; returns (seconds releasing took, when the clock starts).

    ``together``: one transaction (a bulk approval); the clock starts when it commits,
    that is when the documents are released for every other process (the first
    on-commit hook, before the ones that queue the deliveries). ``each``: one transaction
    per document, as ``release_documents`` does; the clock starts before the first.
    """
    from django.db import transaction

    from clients.release import release

    began = time.time()
    if mode == "each":
        for document in documents:
            release(document)
        return time.time() - began, began
    committed = []
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.time()))
        for document in documents:
            release(document)
    log(f"commit hooks (queueing deliveries) took {time.time() - committed[0]:.2f} s")
    return committed[0] - began, committed[0]


def run_project(sftp, portal, options, port) -> tuple[Result, dict[str, bytes]]:
    from django.db import connection
    from django.db.models import Count

    from exports.models import ExportAttempt, ExportJob

    log(f"creating {options.documents} documents for {options.clients} clients")
    data = harness.month_end(
        sftp,
        documents=options.documents,
        clients=options.clients,
        port=port,
        connections=options.connections,
        folder=f"{PROJECT_FOLDER}/{TEMPLATE}",
    )
    jobs = ExportJob.objects.filter(installation=data.installation)
    root = sftp.home / PROJECT_FOLDER
    with harness.Workers(portal, processes=options.clusters, workers=options.workers):
        log(f"releasing; {options.clusters} qcluster x {options.workers} workers deliver")
        before = sftp.handshakes()
        released, started = release_all(data.documents, options.release)
        connection.close()  # no transaction or lock left open on SQLite while we wait
        done, last_progress, seen = 0, time.monotonic(), -1
        while done < options.documents:
            time.sleep(0.2)
            done = jobs.filter(status=ExportJob.Status.DELIVERED).count()
            if done != seen:
                seen, last_progress = done, time.monotonic()
            elif time.monotonic() - last_progress > NO_PROGRESS_TIMEOUT:
                log(f"no progress for {NO_PROGRESS_TIMEOUT:.0f} s at {done} delivered")
                break
        finished = harness.last_change(root)
        handshakes = sftp.handshakes() - before
        log("stopping the workers")
    statuses = dict(jobs.values_list("status").annotate(n=Count("pk")))
    attempts = ExportAttempt.objects.filter(job__installation=data.installation).count()
    expected = harness.expected_files(data.installation)
    relative = {name.split("/", 1)[1]: content for name, content in expected.items()}
    check = harness.check_tree(root, relative, mode=0o664)
    if done < options.documents:
        check.missing = check.missing or [f"{options.documents - done} jobs not delivered"]
    when = " (before the clock started)" if options.release == "together" else ""
    note = f"jobs {statuses}, attempts {attempts}; releasing took {released:.1f} s{when}"
    return Result("project", done, finished - started, handshakes, check, note), relative


def lay_out(files: dict[str, bytes], root: Path) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


RCLONE_OPTIONS = ["--config", "<empty file>"]


def run_rclone(sftp, portal, port, files) -> Result:
    source = portal.base / "rclone-source"
    lay_out(files, source)
    config = portal.base / "rclone.conf"
    config.write_text("")
    # The password goes on stdin: a random one may start with "-" and read as a flag.
    obscured = subprocess.run(
        ["rclone", "obscure", "-"],
        input=sftp.password,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    remote = f":sftp,host={sftp.host},port={port},user={sftp.username},pass={obscured}:rclone"
    before = sftp.handshakes()
    started = time.time()
    result = subprocess.run(
        ["rclone", "copy", str(source), remote, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.time() - started
    handshakes = sftp.handshakes() - before
    check = harness.check_tree(sftp.home / "rclone", files)
    note = ""
    if result.returncode != 0:
        note = f"rclone exited {result.returncode}: {result.stderr.strip()[-300:]}"
        check.missing = check.missing or ["rclone failed"]
    return Result("rclone", len(files), seconds, handshakes, check, note)


def run_paramiko(sftp, port, files) -> Result:
    import paramiko

    before = sftp.handshakes()
    started = time.time()
    client = paramiko.SSHClient()
    # The reference pins the server's key like the project does, so both pay the same.
    key = paramiko.PKey.from_type_string(
        sftp.host_key_type, base64.b64decode(sftp.host_key_base64)
    )
    client.get_host_keys().add(f"[{sftp.host}]:{port}", key.get_name(), key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        sftp.host,
        port=port,
        username=sftp.username,
        password=sftp.password,
        allow_agent=False,
        look_for_keys=False,
    )
    try:
        channel = client.open_sftp()
        made: set[str] = set()
        for name in sorted(files):
            path = posixpath.join("paramiko", name)
            folder = posixpath.dirname(path)
            if folder not in made:
                parts = folder.split("/")
                for depth in range(1, len(parts) + 1):
                    sub = "/".join(parts[:depth])
                    if sub not in made:
                        with contextlib.suppress(OSError):
                            channel.mkdir(sub)
                        made.add(sub)
            with channel.open(path, "wb") as handle:
                handle.set_pipelined(True)
                handle.write(files[name])
    finally:
        client.close()
    seconds = time.time() - started
    handshakes = sftp.handshakes() - before
    check = harness.check_tree(sftp.home / "paramiko", files)
    return Result("paramiko", len(files), seconds, handshakes, check)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="added round-trip time")
    parser.add_argument(
        "--connections", type=int, default=4, help="the installation's parallel connections"
    )
    parser.add_argument("--clusters", type=int, default=1, help="qcluster processes")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("Q_WORKERS", 2)),
        help="Q_WORKERS: worker processes per qcluster (default as in settings: 2)",
    )
    parser.add_argument(
        "--release",
        choices=["each", "together"],
        default="together",
        help="one transaction per document (release_documents) or one for all",
    )
    options = parser.parse_args(argv)
    if options.documents < 1 or options.clients < 1:
        parser.error("--documents and --clients must be positive")

    facts = harness.machine()
    with harness.OpenSshServer() as sftp, harness.Portal("sftp") as portal:
        proxy = (
            harness.DelayProxy(sftp.port, options.rtt_ms)
            if options.rtt_ms > 0
            else contextlib.nullcontext()
        )
        with proxy:
            port = proxy.port if options.rtt_ms > 0 else sftp.port
            facts["database"] = portal.describe_database()
            facts["broker"] = portal.describe_broker()
            project, files = run_project(sftp, portal, options, port)
            log("rclone copy")
            rclone = run_rclone(sftp, portal, port, files)
            log("paramiko, one connection")
            plain = run_paramiko(sftp, port, files)
    results = [project, rclone, plain]

    print("SFTP throughput (bench/sftp_throughput.py)")
    for key, value in facts.items():
        print(f"  {key:<10} {value}")
    print(
        f"  parameters documents={options.documents} clients={options.clients} "
        f"rtt={options.rtt_ms:g} ms connections={options.connections} "
        f"qcluster={options.clusters}x{options.workers} workers release={options.release} "
        f"batch={os.environ.get('EXPORT_BATCH_SIZE', '100')}"
    )
    remote = ":sftp,host=…,port=…,user=…,pass=…:rclone"
    print(f"  rclone     rclone copy SOURCE {remote} {' '.join(RCLONE_OPTIONS)} (else defaults)")
    print()
    header = ("method", "files", "seconds", "files/s", "handshakes", "per 1,000")
    print("{:<10} {:>6} {:>8} {:>8} {:>10} {:>9}".format(*header))
    for r in results:
        print(
            f"{r.method:<10} {r.files:>6} {r.seconds:>8.2f} {r.rate:>8.1f} "
            f"{r.handshakes:>10} {r.per_thousand:>9.1f}"
        )
    print()
    for other in (rclone, plain):
        ratio = project.rate / other.rate if other.rate else float("nan")
        print(f"project ÷ {other.method}: {ratio:.2f}")
    print()
    broken = False
    for r in results:
        print(f"{r.method}: {r.check}{'; ' + r.note if r.note else ''}")
        broken = broken or not r.check.ok
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
