"""What the tests' fake APIs (Google, Dropbox, Microsoft) share: a threaded server on
127.0.0.1 with keep-alive, JSON answers, and starting and stopping it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
    timeout = 10  # an idle keep-alive connection does not hold its thread forever
    # Headers and body are written apart: without this the body waits for the client's
    # delayed ACK, about 40 ms on every answer.
    disable_nagle_algorithm = True
    server: LocalServer

    def log_message(self, format, *args):
        pass

    def _answer(self, status, body=b"", headers=None, content_type=None):
        """A dict or list goes as JSON, a str as plain text, bytes as they are."""
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body, content_type = body.encode(), content_type or "text/plain; charset=utf-8"
        self.send_response(status)
        if body:
            self.send_header("Content-Type", content_type or "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, peer, handler: type[JsonHandler]):
        self.peer = peer
        super().__init__(("127.0.0.1", 0), handler)


class LocalPeer:
    """Base of a fake: its ``__init__`` sets its state, then calls ``serve(handler)``."""

    def serve(self, handler: type[JsonHandler]) -> None:
        self.server = LocalServer(self, handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
