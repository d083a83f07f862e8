"""``manage.py serve_demo``: the web server, the worker and the demo SFTP server in one
terminal, all stopped within seconds of one Ctrl-C (``make run``).

Each runs in its own process group, so the terminal's Ctrl-C reaches only this command,
which then stops them in order. django-q2's cluster, asked to stop, waits for its workers
to finish what they are sending, with no bound of its own (a delivery may run for minutes),
so after ``--grace`` seconds whatever still runs is killed. An export cut short that way
is what a crash leaves: its job's lease runs out and the job is tried again.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand

from exports.demo_sftp import DEMO_PORT


class Command(BaseCommand):
    help = (
        "Run the web server, the export worker and the demo SFTP server until Ctrl-C, "
        "then stop all three within a few seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--sftp-port", type=int, default=DEMO_PORT)
        parser.add_argument(
            "--grace",
            type=float,
            default=2.5,
            help="Seconds the processes get to stop before they are killed.",
        )
        parser.add_argument(
            "--noreload", action="store_true", help="Do not restart the web server on edits."
        )

    def handle(self, *args, addrport, sftp_port, grace, noreload, **options):
        manage = [sys.executable, sys.argv[0]]
        web = [*manage, "runserver", addrport] + (["--noreload"] if noreload else [])
        commands = {
            "worker": [*manage, "qcluster"],
            "demo SFTP server": [*manage, "demo_sftp_server", "--port", str(sftp_port)],
            "web server": web,
        }
        stopping = []

        def stop(signum, frame):
            stopping.append(signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, stop)
        children = {
            name: subprocess.Popen(command, start_new_session=True)  # noqa: S603 - our own
            for name, command in commands.items()
        }
        exited = None
        while not stopping and exited is None:
            exited = next((n for n, p in children.items() if p.poll() is not None), None)
            time.sleep(0.1)
        if exited:
            self.stderr.write(f"The {exited} stopped; stopping the others.")
        self._stop(children, grace)
        self.stdout.write("Stopped.")
        if exited:
            sys.exit(1)

    def _stop(self, children, grace):
        """SIGINT to each group, as a Ctrl-C in its own terminal would; SIGKILL to the
        groups still there after ``grace`` seconds."""
        for process in children.values():
            _signal(process, signal.SIGINT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in children.values()):
            time.sleep(0.1)
        for process in children.values():
            _signal(process, signal.SIGKILL)
            process.wait()


def _alive(process) -> bool:
    """The leader or any process of its group (a worker, the reloader's child) runs."""
    if process.poll() is None:
        return True
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal(process, signum):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
