"""Running an inference app for real in a test: uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import uvicorn

__all__ = ["free_port", "map_with_clients", "start_in_thread"]

T = TypeVar("T")
R = TypeVar("R")


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


def map_with_clients(
    send: Callable[[httpx.Client, T], R], items: Iterable[T], threads: int, **options: Any
) -> list[R]:
    """``send(client, item)`` for every item from ``threads`` threads, results in order.

    Each thread uses one keep-alive ``httpx.Client(**options)`` of its own; all are
    closed at the end.
    """
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def call(item: T) -> R:
        client: httpx.Client | None = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(**{"timeout": 30, **options})
            with lock:
                clients.append(client)
        return send(client, item)

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(call, items))
    finally:
        for client in clients:
            client.close()
