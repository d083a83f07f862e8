"""Real servers the tests talk to: SFTP (asyncssh and OpenSSH), SMTP, HTTP."""

import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
