"""Running an inference app for real in a test: uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

__all__ = ["free_port", "start_in_thread"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_in_thread(app: Any) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` until the returned ``stop()`` is called; returns its base URL too."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("The server did not start.")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(20)

    return f"http://127.0.0.1:{port}", stop
