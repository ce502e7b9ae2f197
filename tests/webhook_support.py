"""A real webhook receiver for tests: an HTTP server on a free loopback port, in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

__all__ = ["Delivery", "webhook_receiver"]


class Delivery(NamedTuple):
    """One POST the receiver got: its ``Idempotency-Key`` header and its JSON body."""

    key: str | None
    body: Any


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[Delivery]]]:
    """Receive webhooks until the block ends; yields the URL and the deliveries so far."""
    received: list[Delivery] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(Delivery(self.headers.get("Idempotency-Key"), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
