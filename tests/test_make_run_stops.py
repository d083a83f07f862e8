"""``make run`` (``manage.py serve_demo``) stops the web server, the worker and the demo
SFTP server within 5 seconds of Ctrl-C, even while the worker is busy with a long task:
django-q2's cluster alone would wait for the task to end."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django_q.tasks import async_task

from tests.peers.workers import ROOT, _descendants, wait_until, worker_environment

pytestmark = pytest.mark.django_db(transaction=True)


def hold(path: str) -> None:
    """A task that keeps its worker busy for minutes, as a slow delivery does."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_all_three_within_5_seconds_while_a_task_runs(tmp_path):
    busy = tmp_path / "busy"
    async_task("tests.test_make_run_stops.hold", str(busy), task_name="long delivery")
    web, sftp = free_port(), free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "serve_demo",
            f"127.0.0.1:{web}",
            "--sftp-port",
            str(sftp),
            "--noreload",
        ],
        cwd=ROOT,
        env=worker_environment(DEBUG="1"),  # as `make run`
        start_new_session=True,  # its own group, as the terminal's foreground job
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(busy.exists, 60, lambda: (tmp_path / "serve.log").read_text())
        wait_until(lambda: listening(web) and listening(sftp), 30, "web and SFTP servers")
        processes = {process.pid, *_descendants(process.pid)}
        assert int(busy.read_text()) in processes

        pressed = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        process.wait(timeout=10)
        wait_until(lambda: not any(map(running, processes)), 10, "every process gone")
        stopped = time.monotonic() - pressed
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in _descendants(process.pid):
            os.kill(pid, signal.SIGKILL)
        process.wait()
        log.close()

    assert stopped < 5, f"stopped after {stopped:.1f} s"
    assert not listening(web) and not listening(sftp)
    assert "Stopped." in (tmp_path / "serve.log").read_text()
