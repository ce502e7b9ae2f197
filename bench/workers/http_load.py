"""A lean closed-loop HTTP/1.1 load generator for ``bench/serving.py``; standard library only.

Usage (``bench/serving.py`` runs it once per server, in its own process)::

    .venv/bin/python bench/workers/http_load.py PLAN.json > RESULT.json

The plan names the server (host, port, path), the request bodies (files of
pre-encoded JSON: many single-row bodies, one 10,000-row body) and the phases to
run in order. Every request is a ``POST`` over a keep-alive connection made with
asyncio streams; each concurrent worker owns one connection, opened before the
phase's clock starts, and sends its next request as soon as the last answer is in
(a closed loop). Answers are read by ``Content-Length`` (or chunk by chunk), and
only a ``200`` counts as an answer: any other status, a dropped connection or a
request still unanswered at the phase's deadline plus ``grace_seconds`` is an
error, counted by kind. The event loop is uvloop's when installed, else asyncio's.

Phases:

* ``probe``: one request per body file listed, answers saved to ``save_to`` (for
  checking the predictions; not timed).
* ``load``: ``concurrency`` workers cycling through the single-row bodies for
  ``seconds``; latency of every answer, answers per second over the phase's wall
  time (from the start until the last in-flight answer is in).
* ``sequential``: ``repeats`` requests of one body, one after the other.

Every phase also reports the CPU seconds this client used and, when the plan
lists the server's process ids, the CPU seconds the server used (Linux ``/proc``),
so a reader can see the client was not the bottleneck. A phase with a
``metrics_path`` also reports that page (``GET``, untimed) as fetched just before
and just after it (``metrics_before``, ``metrics_after``): the server's own
account of the phase.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import math
import os
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

READ_LIMIT = 1 << 20  # header block limit for StreamReader.readuntil
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BadAnswer(Exception):
    """The server sent something that is not an HTTP/1.1 answer we can read."""


class Connection:
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, limit=READ_LIMIT
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-encoded request; return the status and the body of the answer."""
        if self.writer is None or self.reader is None:
            await self.open()
        assert self.writer is not None and self.reader is not None
        writer, reader = self.writer, self.reader
        writer.write(raw)
        if writer.transport.get_write_buffer_size():
            await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1."):
            raise BadAnswer(head[:80].decode("latin-1"))
        status = int(head[9:12])
        length = -1
        chunked = False
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if chunked:
            body = await self._read_chunked(reader)
        elif length >= 0:
            body = await reader.readexactly(length)
        else:  # no length: the body runs to the end of the connection
            body = await reader.read()
            close = True
        if close:
            self.close()
        return status, body

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    """A complete ``POST`` request carrying ``body`` as JSON."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: loopml-bench\r\n"
        "Accept: application/json\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


# --- CPU accounting -------------------------------------------------------------


def process_cpu_seconds(pids: Iterable[int]) -> float | None:
    """User + system CPU seconds of ``pids`` so far (None where /proc is unavailable)."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float | None:
    """CPU seconds every core of the machine has spent busy since boot (Linux ``/proc/stat``)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # cpu  user nice system idle iowait irq softirq steal guest guest_nice
    if first[0] != "cpu" or len(first) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class CpuClock:
    """CPU seconds used by this client, the server and the whole machine, start to stop.

    What the machine used beyond the client and the server is other processes: on a
    shared machine, the figure that says how much the measurement was disturbed.
    """

    def __init__(self, server_pids: list[int]) -> None:
        self.server_pids = server_pids

    def __enter__(self) -> CpuClock:
        self._client = time.process_time()
        self._server = process_cpu_seconds(self.server_pids) if self.server_pids else None
        self._machine = machine_busy_seconds()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.client = time.process_time() - self._client
        after = process_cpu_seconds(self.server_pids) if self.server_pids else None
        self.server = None if after is None or self._server is None else after - self._server
        machine = machine_busy_seconds()
        self.machine = None if machine is None or self._machine is None else machine - self._machine

    def report(self) -> dict[str, Any]:
        others = None
        if self.machine is not None and self.server is not None:
            others = max(0.0, self.machine - self.server - self.client)
        return {
            "wall_seconds": self.wall,
            "client_cpu_seconds": self.client,
            "server_cpu_seconds": self.server,
            "machine_cpu_seconds": self.machine,
            "others_cpu_seconds": others,
        }


# --- statistics -------------------------------------------------------------------


def percentile(ordered: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile of an already sorted list."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "count": len(ordered),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "min": ordered[0] if ordered else None,
        "max": ordered[-1] if ordered else None,
        "mean": sum(ordered) / len(ordered) if ordered else None,
    }


# --- phases -----------------------------------------------------------------------


async def probe(conn: Connection, raw: bytes, save_to: Path) -> dict[str, Any]:
    started = time.perf_counter()
    status, body = await conn.send(raw)
    save_to.write_bytes(body)
    return {"status": status, "seconds": time.perf_counter() - started, "saved": str(save_to)}


async def load(
    host: str,
    port: int,
    requests: list[bytes],
    concurrency: int,
    seconds: float,
    grace: float,
) -> dict[str, Any]:
    """Run ``concurrency`` closed-loop workers for ``seconds``."""
    conns = [Connection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    deadline = 0.0

    async def worker(conn: Connection, cycle: Iterator[bytes]) -> None:
        clock = time.perf_counter
        record = latencies.append
        while clock() < deadline:
            raw = next(cycle)
            started = clock()
            try:
                status, _ = await conn.send(raw)
            except (OSError, EOFError, asyncio.IncompleteReadError, BadAnswer, ValueError) as exc:
                errors[type(exc).__name__] += 1
                conn.close()
                continue
            if status == 200:
                record(clock() - started)
            else:
                errors[f"HTTP {status}"] += 1

    def cycle_from(offset: int) -> Iterator[bytes]:
        index = offset
        while True:
            yield requests[index % len(requests)]
            index += 1

    started = time.perf_counter()
    deadline = started + seconds
    tasks = [asyncio.ensure_future(worker(c, cycle_from(i * 7))) for i, c in enumerate(conns)]
    done, pending = await asyncio.wait(tasks, timeout=seconds + grace)
    for task in pending:
        task.cancel()
        errors["unanswered at the deadline"] += 1
    for task in done:
        if task.exception() is not None:
            errors[type(task.exception()).__name__] += 1
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return {
        "concurrency": concurrency,
        "seconds": elapsed,
        "ok": len(latencies),
        "errors": dict(errors),
        "requests_per_second": len(latencies) / elapsed,
        "latency": latency_summary(latencies),
    }


async def sequential(
    host: str, port: int, raw: bytes, repeats: int, grace: float
) -> dict[str, Any]:
    conn = Connection(host, port)
    await conn.open()
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            status, _ = await asyncio.wait_for(conn.send(raw), timeout=grace)
        except (OSError, EOFError, asyncio.IncompleteReadError, BadAnswer, ValueError) as exc:
            errors[type(exc).__name__] += 1
            conn.close()
            continue
        if status == 200:
            latencies.append(time.perf_counter() - started)
        else:
            errors[f"HTTP {status}"] += 1
    conn.close()
    return {
        "repeats": repeats,
        "ok": len(latencies),
        "errors": dict(errors),
        "latencies": latencies,
        "latency": latency_summary(latencies),
    }


async def run_plan(plan: dict[str, Any]) -> dict[str, Any]:
    host, port, path = plan["host"], int(plan["port"]), plan["path"]
    grace = float(plan.get("grace_seconds", 60))
    pids = [int(p) for p in plan.get("server_pids", [])]

    def encode(file: str) -> bytes:
        return request_bytes(host, port, path, Path(file).read_bytes())

    rows = [encode(f) for f in plan["row_bodies"]]
    bodies = {name: encode(file) for name, file in plan.get("bodies", {}).items()}
    results: list[dict[str, Any]] = []
    for phase in plan["phases"]:
        gc.collect()
        if phase.get("pause_seconds"):
            await asyncio.sleep(phase["pause_seconds"])
        metrics_url = (
            f"http://{host}:{port}{phase['metrics_path']}" if "metrics_path" in phase else None
        )
        before = None if metrics_url is None else await asyncio.to_thread(fetch, metrics_url)
        gc.disable()
        with CpuClock(pids) as cpu:
            if phase["kind"] == "probe":
                conn = Connection(host, port)
                out = {
                    "answers": [
                        await probe(conn, bodies[name], Path(save_to))
                        for name, save_to in phase["save"].items()
                    ]
                }
                conn.close()
            elif phase["kind"] == "load":
                out = await load(
                    host, port, rows, int(phase["concurrency"]), float(phase["seconds"]), grace
                )
            elif phase["kind"] == "sequential":
                out = await sequential(host, port, bodies[phase["body"]], phase["repeats"], grace)
            else:
                raise ValueError(f"unknown phase kind {phase['kind']!r}")
        gc.enable()
        if metrics_url is not None:
            out |= {
                "metrics_before": before,
                "metrics_after": await asyncio.to_thread(fetch, metrics_url),
            }
        results.append({"name": phase["name"], "kind": phase["kind"], **out, **cpu.report()})
    return {"loop": loop_name(), "phases": results}


def fetch(url: str) -> str:
    """The text of ``GET url`` (a server's metrics page)."""
    with urllib.request.urlopen(url, timeout=30) as answer:
        text: str = answer.read().decode()
        return text


def loop_name() -> str:
    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__name__}"


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[1]).read_text())
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    result = runner(run_plan(plan))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
