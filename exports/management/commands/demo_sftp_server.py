"""Serve the demo SFTP server on 127.0.0.1, so the demo's SFTP exports land on this machine.

The host key is kept in ``var/demo-sftp-host-key``, so the fingerprint ``seed_demo`` pins
(via ``exports.demo_sftp.demo_host_key``) stays valid across restarts.
"""

import signal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from exports.demo_sftp import (
    DEMO_PORT,
    DEMO_USER,
    SftpServer,
    demo_host_key_path,
    demo_password,
)


class Command(BaseCommand):
    help = "Run the demo SFTP server (user demo) on 127.0.0.1 until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=DEMO_PORT)
        parser.add_argument(
            "--root",
            type=Path,
            default=None,
            help="Folder that receives the uploads (default: var/demo-sftp).",
        )

    def handle(self, *args, port, root, **options):
        root = (root or Path(settings.VAR_DIR) / "demo-sftp").resolve()
        server = SftpServer(
            root,
            {DEMO_USER: demo_password()},
            host="127.0.0.1",
            port=port,
            host_key_path=demo_host_key_path(),
        )
        server.start()
        # Stop cleanly on `kill` too, not only on Ctrl-C.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        self.stdout.write(
            f"Demo SFTP server on {server.host}:{server.port}\n"
            f"  user:        {DEMO_USER}\n"
            f"  files in:    {root}\n"
            f"  host key:    {server.host_key_type} {server.fingerprint}\n"
            "Press Ctrl-C to stop."
        )
        try:
            signal.pause()  # until Ctrl-C or SIGTERM
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            self.stdout.write("Demo SFTP server stopped.")
