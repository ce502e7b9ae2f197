"""Real ``loopml serve`` processes for tests: start, wait until ready, kill, load with clients.

A :class:`ServeProcess` runs the console script itself (no shell in between, so its
pid is the server's), in a session of its own so that a ``--workers`` supervisor and
its workers can all be killed when a test ends, whatever happened. Output goes to a
file, not a pipe: uvicorn's access log would fill a pipe and stall the server.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from loopml.artifacts import ArtifactStore
from loopml.serving import SEGMENT_SCHEMA
from loopml.store import Store, tables
from server_support import free_port, map_with_clients

__all__ = [
    "LOOPML",
    "Answer",
    "Load",
    "ServeProcess",
    "post_all",
    "segment_rows",
    "serving",
]

LOOPML = Path(sys.executable).with_name("loopml")  # the console script of this environment
START_SECONDS = 90.0  # models load and warm up before the port opens; CI machines are slow
STOP_SECONDS = 60.0


@dataclass(frozen=True)
class Answer:
    """What a client got for one request: the answer's fields, and what it sent."""

    request_id: str
    route: str
    model_version: str
    predictions: list[Any]
    body: dict[str, Any]


class ServeProcess:
    """One ``loopml serve`` process (and its workers), with its output in a file.

    Args:
        args: arguments after ``loopml serve`` (endpoints, options); ``--host``,
            ``--port`` and ``--log-folder`` are added.
        log_folder: the prediction log folder.
        env: the environment of the process (stores, project).
        output: the file its stdout and stderr go to.
    """

    def __init__(
        self, args: Sequence[str], log_folder: Path, env: dict[str, str], output: Path
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._output = output
        command = [
            str(LOOPML),
            "serve",
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-folder",
            str(log_folder),
            "--poll-interval",
            "0",
        ]
        with output.open("wb") as sink:
            self.process = subprocess.Popen(
                command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        """The server's pid (the uvicorn supervisor with ``--workers``)."""
        return self.process.pid

    def output(self) -> str:
        """Everything the process printed so far."""
        return self._output.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        """Return once GET /v2/health/ready answers 200 (fail if the process exits)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while True:
                try:
                    if client.get(f"{self.url}/v2/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                code = self.process.poll()
                if code is not None:
                    raise AssertionError(f"loopml serve exited with {code}:\n{self.output()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"loopml serve not ready in {timeout} s:\n{self.output()}")
                time.sleep(0.05)

    def wait_for_output(self, text: str, times: int = 1, timeout: float = START_SECONDS) -> None:
        """Return once the process printed ``text`` ``times`` times."""
        deadline = time.monotonic() + timeout
        while self.output().count(text) < times:
            assert self.process.poll() is None, f"loopml serve exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {times} x {text!r}:\n{self.output()}"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server process itself (no shutdown, no log close) and reap it."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_SECONDS)

    def terminate(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGTERM), wait for the process to exit, and return its exit code."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"loopml serve did not exit on {sig}:\n{self.output()}") from None

    def stop(self) -> None:
        """SIGTERM the server and check that it shut down gracefully, with status 0.

        The application's shutdown closes the prediction log.
        """
        code = self.terminate()
        output = self.output()
        assert code == 0, f"exit status {code}:\n{output}"
        assert "Application shutdown complete." in output, output
        assert "Traceback" not in output, output

    def cleanup(self) -> None:
        """Kill the whole session (server and workers), whatever state it is in."""
        with suppress(ProcessLookupError):  # already gone
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_SECONDS)


@contextmanager
def serving(
    args: Sequence[str], log_folder: Path, env: dict[str, str], output: Path
) -> Iterator[ServeProcess]:
    """Start ``loopml serve ARGS``, wait until it is ready, and kill it at the end."""
    server = ServeProcess(args, log_folder, env, output)
    try:
        server.wait_ready()
        yield server
    finally:
        server.cleanup()


def _answer(response: httpx.Response, body: dict[str, Any]) -> Answer:
    assert response.status_code == 200, response.text
    data = response.json()
    assert response.headers["X-Request-Id"] == data["request_id"]
    return Answer(
        data["request_id"], data["route"], data["model_version"], data["predictions"], body
    )


def post_all(
    url: str, endpoint: str, bodies: Sequence[dict[str, Any]], threads: int = 8
) -> list[Answer]:
    """POST every body to ``endpoint`` from ``threads`` concurrent clients; all must be 200.

    Returns:
        The answers, in the order of ``bodies``.
    """

    def send(client: httpx.Client, body: dict[str, Any]) -> Answer:
        return _answer(client.post(f"/v1/endpoints/{endpoint}/predict", json=body), body)

    return map_with_clients(send, bodies, threads, base_url=url)


@dataclass
class Load:
    """Client threads sending requests until stopped or until the server goes away.

    Each thread has one request in flight at a time, so at most ``threads`` requests
    can be cut off when the server dies.

    Args:
        url: the server.
        endpoint: the endpoint to predict with.
        make_body: ``make_body(i)`` is the body of the i-th request of a thread.
        threads: how many clients.
        new_connections: open a new connection for every request (so that the
            kernel spreads them over ``--workers`` processes), not keep-alive.
    """

    url: str
    endpoint: str
    make_body: Callable[[int], dict[str, Any]]
    threads: int = 8
    new_connections: bool = False
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # non-200 answers (must stay empty)
    cut_off: int = 0  # requests sent whose answer never came (the server died)
    refused: int = 0  # requests that found no server to connect to
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        """Start the client threads."""
        self._workers = [
            threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def answered(self) -> int:
        """How many requests got a 200 so far."""
        with self._lock:
            return len(self.answers)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        """Return once ``count`` requests have been answered."""
        deadline = time.monotonic() + timeout
        while self.answered() < count:
            assert not self.failures, self.failures[:3]
            assert time.monotonic() < deadline, f"only {self.answered()} answers in {timeout} s"
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop sending and wait for every thread to finish."""
        self._stop.set()
        for worker in self._workers:
            worker.join(STOP_SECONDS)
            assert not worker.is_alive(), "a client thread hangs"

    def _run(self) -> None:
        headers = {"Connection": "close"} if self.new_connections else {}
        with httpx.Client(base_url=self.url, timeout=30, headers=headers) as client:
            i = 0
            while not self._stop.is_set():
                body = self.make_body(i)
                i += 1
                try:
                    response = client.post(f"/v1/endpoints/{self.endpoint}/predict", json=body)
                except httpx.ConnectError:
                    with self._lock:
                        self.refused += 1
                    return  # the server is gone; this request never reached it
                except httpx.TransportError:
                    with self._lock:
                        self.cut_off += 1
                    return  # the server went away while it had this request
                with self._lock:
                    if response.status_code == 200:
                        self.answers.append(_answer(response, body))
                    else:
                        self.failures.append(f"{response.status_code}: {response.text}")
                        return


def segment_rows(store: Store, artifacts: ArtifactStore, endpoint: str) -> pd.DataFrame:
    """Every row of every stored segment of ``endpoint``, duplicates kept.

    :func:`loopml.serving.predictions` drops duplicate request ids; this reads the
    segments as stored, so a test can tell that nothing was logged twice.
    """
    segment = tables.PREDICTION_SEGMENT
    with store.read() as connection:
        digests = list(
            connection.execute(
                select(segment.c.digest).where(segment.c.endpoint == endpoint)
            ).scalars()
        )
    found = [
        pq.read_table(io.BytesIO(artifacts.get_bytes(str(d))), schema=SEGMENT_SCHEMA)
        for d in digests
    ]
    table = pa.concat_tables(found) if found else SEGMENT_SCHEMA.empty_table()
    frame: pd.DataFrame = table.to_pandas()
    return frame
