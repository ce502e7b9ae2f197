"""Background writer: metric points are buffered in memory and written in batches.

The promise: a point is written at most ``LOOPML_FLUSH_INTERVAL`` seconds after
it was logged (sooner when ``LOOPML_FLUSH_MAX_POINTS`` are waiting), at run end
and at interpreter exit. Each batch is one transaction, so a process killed with
SIGKILL loses at most the points of the last interval and never leaves a
half-written batch. The same thread refreshes the heartbeat of the runs this
process has open, so runs of a dead process can be told apart as *lost*.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterable

from sqlalchemy import Connection, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml.store import Store, now_ms, tables

__all__ = ["MetricWriter", "Point"]

_log = logging.getLogger(__name__)

Point = tuple[str, str, float | None, int, int]
"""(run_id, key, value or None for NaN, step, timestamp ms)."""

_metric = tables.METRIC
_latest = tables.LATEST_METRIC
_run = tables.RUN


class MetricWriter:
    """Buffers metric points for one store and writes them from a daemon thread."""

    def __init__(
        self,
        store: Store,
        flush_interval: float,
        max_points: int,
        heartbeat_interval: float,
    ) -> None:
        self._store = store
        self._flush_interval = flush_interval
        self._max_points = max_points
        self._heartbeat_interval = heartbeat_interval
        self._buffer: list[Point] = []
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._live_runs: set[str] = set()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        _WRITERS.add(self)

    def add(self, point: Point) -> None:
        """Queue one point."""
        self.add_many((point,))

    def add_many(self, points: Iterable[Point]) -> None:
        """Queue many points at once."""
        self._ensure_thread()
        with self._buffer_lock:
            self._buffer.extend(points)
            size = len(self._buffer)
        if size >= self._max_points:
            self._wake.set()

    def track(self, run_id: str) -> None:
        """Keep the heartbeat of ``run_id`` fresh until :meth:`untrack`."""
        self._ensure_thread()
        self._live_runs.add(run_id)

    def untrack(self, run_id: str) -> None:
        """Stop refreshing the heartbeat of ``run_id``."""
        self._live_runs.discard(run_id)

    def pending(self) -> int:
        """Return the number of points not written yet."""
        return len(self._buffer)

    def flush(self) -> None:
        """Write every queued point now, in one transaction.

        On failure the points go back to the front of the queue and the error
        propagates, so nothing is silently dropped.
        """
        with self._flush_lock:
            with self._buffer_lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return
            try:
                with self._store.write() as connection:
                    write_points(connection, batch)
            except BaseException:
                with self._buffer_lock:
                    self._buffer[:0] = batch
                raise

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._stopped = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        if os.getpid() == self._pid:
            self.flush()

    def _ensure_thread(self) -> None:
        if self._thread is None or os.getpid() != self._pid:
            self._start_thread()

    def _start_thread(self) -> None:
        with self._buffer_lock:
            if self._thread is not None and os.getpid() == self._pid:
                return
            if os.getpid() != self._pid:
                # A forked child inherits the parent's unwritten points: they are the
                # parent's to write, not the child's.
                self._pid = os.getpid()
                self._buffer = []
                self._live_runs = set()
            self._stopped = False
            self._thread = threading.Thread(
                target=self._loop, name="loopml-metric-writer", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        last_heartbeat = 0.0
        while not self._stopped:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            try:
                self.flush()
                now = now_ms() / 1000
                if self._live_runs and now - last_heartbeat >= self._heartbeat_interval:
                    self._beat()
                    last_heartbeat = now
            except Exception:
                _log.exception("loopml could not write buffered metrics; will retry")

    def _beat(self) -> None:
        runs = list(self._live_runs)
        with self._store.write() as connection:
            connection.execute(
                update(_run).where(_run.c.id.in_(runs)).values(heartbeat_at=now_ms())
            )


def write_points(connection: Connection, points: list[Point]) -> None:
    """Insert metric points and advance each run's latest value, in ``connection``'s transaction."""
    connection.execute(
        _metric.insert(),
        [
            {"run_id": r, "key": k, "value": v, "step": s, "timestamp": t}
            for r, k, v, s, t in points
        ],
    )
    latest: dict[tuple[str, str], Point] = {}
    for point in points:
        slot = (point[0], point[1])
        best = latest.get(slot)
        if best is None or (point[3], point[4]) >= (best[3], best[4]):
            latest[slot] = point
    factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = factory(_latest)
    excluded = statement.excluded
    newer = (excluded.step > _latest.c.step) | (
        (excluded.step == _latest.c.step) & (excluded.timestamp >= _latest.c.timestamp)
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_latest.c.run_id, _latest.c.key],
            set_={"value": excluded.value, "step": excluded.step, "timestamp": excluded.timestamp},
            where=newer,
        ),
        [
            {"run_id": r, "key": k, "value": v, "step": s, "timestamp": t}
            for r, k, v, s, t in latest.values()
        ],
    )


_WRITERS: weakref.WeakSet[MetricWriter] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    for writer in list(_WRITERS):
        try:
            writer.close()
        except Exception:
            _log.exception("loopml could not write buffered metrics at exit")
