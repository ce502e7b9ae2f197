"""``loopml scheduler``: evaluates every trigger and runs the firings' actions.

One scheduler is active per store (:mod:`loopml.automation._lease`); the others poll the
lease and take over when it expires. Each tick of the active one:

1. evaluates every trigger that is not paused (:func:`~loopml.automation._evaluate.evaluate`,
   each that writes in its own fenced transaction), polling only the sources that have
   something after their cursor (:mod:`loopml.automation._changes`, one query per kind);
2. claims pending firings (``pending`` → ``running``, fenced) and runs their actions in
   worker threads, at most ``max_actions`` at once; each ends ``succeeded`` or ``failed``
   with its result or error.

A firing left ``running`` by a scheduler that died (its holder is not the lease's
holder any more) is claimed again and its action run again: actions are at least once,
firings exactly once. The webhook action sends the firing's id as ``Idempotency-Key``
for receivers to drop repeats.

3. advances every unfinished automation attempt (:mod:`~loopml.automation._attempt`) by
   one step, each in a worker thread (at most one step of an attempt at a time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select, update

from loopml._identity import current_identity
from loopml.artifacts import ArtifactStore
from loopml.automation._actions import ActionFailed, run_action
from loopml.automation._changes import changed, next_tick, unfinished_counts
from loopml.automation._driver import AttemptDriver
from loopml.automation._evaluate import evaluate
from loopml.automation._lease import DEFAULT_TTL, Lease, new_holder
from loopml.automation._sources import GitPoll, Watched
from loopml.errors import InvalidParameter, LeaseLost
from loopml.store import Node, Store, add_edge, now_ms, tables

__all__ = ["DEFAULT_TICK", "Scheduler", "TickReport"]

DEFAULT_TICK = 1.0
"""Seconds between two ticks of the active scheduler."""
_CLAIM_BATCH = 16
_MAX_CACHED_TICKS = 100_000  # (cron, zone, cursor) -> next tick; a cursor moves rarely

_log = logging.getLogger(__name__)
_trigger = tables.TRIGGER
_firing = tables.TRIGGER_FIRING
_lease_table = tables.SCHEDULER_LEASE


@dataclass
class TickReport:
    """What one tick did."""

    leader: bool
    evaluated: int = 0
    fired: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Scheduler:
    """Evaluates triggers and runs their firings while it holds the scheduler lease.

    Args:
        store: the metadata store.
        holder: this scheduler's name (default: host, pid and a random part).
        lease_ttl: seconds the lease lasts without renewal.
        tick: seconds between ticks.
        trust: run pipeline actions of triggers stored by other accounts.
        max_actions: actions running at once.
        git: reads a git trigger's new commits (None: git triggers see nothing).
        artifacts: the artifact store automation attempts use (default: the default one).
    """

    def __init__(
        self,
        store: Store,
        *,
        holder: str | None = None,
        lease_ttl: float = DEFAULT_TTL,
        tick: float = DEFAULT_TICK,
        trust: bool = False,
        max_actions: int = 4,
        git: GitPoll | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        if isinstance(tick, bool) or not isinstance(tick, int | float) or not 0.05 <= tick <= 60:
            raise InvalidParameter(f"The scheduler tick must be 0.05 to 60 seconds; got {tick!r}.")
        if isinstance(max_actions, bool) or not isinstance(max_actions, int) or max_actions < 1:
            raise InvalidParameter(f"max_actions must be an int >= 1; got {max_actions!r}.")
        self.store = store
        self.lease = Lease(store, holder or new_holder(), lease_ttl)
        self.tick_seconds = float(tick)
        self.trust = trust
        self.identity = current_identity()
        self.git = git
        self._pool = ThreadPoolExecutor(max_actions, thread_name_prefix="loopml-action")
        self._max_actions = max_actions
        self._running: dict[int, Future[None]] = {}
        self._lock = threading.Lock()
        self._next_ticks: dict[tuple[str, str, int], int] = {}
        self._attempts = AttemptDriver(
            store, artifacts, trusted=lambda by: trust or (by is not None and by == self.identity)
        )

    @property
    def holder(self) -> str:
        """This scheduler's name in the lease."""
        return self.lease.holder

    def run(
        self, stop: threading.Event, on_tick: Callable[[TickReport], None] | None = None
    ) -> None:
        """Tick until ``stop`` is set; then wait for running actions and give the lease up."""
        leader = False
        try:
            while not stop.is_set():
                report = self.tick()
                if report.leader != leader:
                    leader = report.leader
                    _log.info(
                        "Scheduler %s is now %s.", self.holder, "active" if leader else "standby"
                    )
                if on_tick is not None:
                    on_tick(report)
                wait = self.tick_seconds if leader else self.lease.ttl_ms / 3000
                stop.wait(wait)
        finally:
            self.close()

    def close(self) -> None:
        """Wait for the running actions, then release the lease."""
        self._pool.shutdown(wait=True)
        if self.lease.epoch is not None:
            try:
                self.lease.release()
            except Exception:  # the store is gone: the lease simply expires
                _log.warning("Scheduler %s could not release its lease.", self.holder)

    def tick(self) -> TickReport:
        """One tick: take or renew the lease; if active, evaluate and start actions."""
        if not self.lease.acquire():
            return TickReport(leader=False)
        report = TickReport(leader=True)
        try:
            self._evaluate_all(report)
            self._start_firings(report)
            self._attempts.tick(self._pool, self.lease.fence)
        except LeaseLost as exc:
            report.leader = False
            report.errors.append(str(exc))
        return report

    def _evaluate_all(self, report: TickReport) -> None:
        """Evaluate every trigger; poll only those whose source may have something new.

        One read transaction finds them (:func:`~loopml.automation._changes.changed`,
        one query per kind) and counts every trigger's unfinished firings; each trigger
        that has something to write still writes in its own fenced transaction.
        """
        now = now_ms()
        with self.store.read() as connection:
            rows = connection.execute(
                select(_trigger).where(_trigger.c.paused.is_(False)).order_by(_trigger.c.id)
            ).all()
            cursors = [(_watched(row), dict((row.state or {}).get("cursor") or {})) for row in rows]
            fresh = changed(connection, cursors)
            unfinished = unfinished_counts(connection)
        for row, (watched, cursor) in zip(rows, cursors, strict=True):
            quiet = (
                row.id not in fresh
                and watched.kind != "git"
                and not self._tick_due(watched, cursor, now)
            )
            try:
                outcome = evaluate(
                    self.store,
                    row,
                    now_ms(),
                    fence=self.lease.fence,
                    git=self.git,
                    quiet=quiet,
                    unfinished=unfinished.get(int(row.id), 0),
                )
            except LeaseLost:
                raise
            except Exception as exc:  # one broken trigger must not stop the others
                _log.exception("Trigger %s could not be evaluated.", row.name)
                report.errors.append(f"{row.name}: {exc}")
                continue
            report.evaluated += 1
            report.fired.extend(outcome.firing_ids)

    def _tick_due(self, watched: Watched, cursor: dict[str, Any], now: int) -> bool:
        """Whether a schedule trigger has a tick due (other kinds: False)."""
        if watched.kind != "schedule" or "tick" not in cursor:
            return watched.kind == "schedule"
        key = (
            str(watched.source["cron"]),
            str(watched.source.get("timezone", "UTC")),
            int(cursor["tick"]),
        )
        due = self._next_ticks.get(key)
        if due is None:
            if len(self._next_ticks) >= _MAX_CACHED_TICKS:
                self._next_ticks.clear()
            due = self._next_ticks[key] = next_tick(*key)
        return now >= due

    def _start_firings(self, report: TickReport) -> None:
        with self._lock:
            done = [i for i, f in self._running.items() if f.done()]
            for firing_id in done:
                del self._running[firing_id]
            free = self._max_actions - len(self._running)
        if free <= 0:
            return
        for firing_id in self._claim(free):
            future = self._pool.submit(self._run_firing, firing_id)
            with self._lock:
                self._running[firing_id] = future
            report.started.append(firing_id)

    def _claim(self, limit: int) -> list[int]:
        """Take up to ``limit`` firings: pending ones, and running ones whose holder died."""
        claimed: list[int] = []
        with self.store.write() as connection:
            self.lease.fence(connection)
            holders = select(_lease_table.c.holder)
            rows = connection.execute(
                select(_firing.c.id)
                .where(
                    or_(
                        _firing.c.status == "pending",
                        and_(
                            _firing.c.status == "running",
                            _firing.c.holder.not_in(holders),
                        ),
                    )
                )
                .order_by(_firing.c.id)
                .limit(min(limit, _CLAIM_BATCH))
            ).all()
            now = now_ms()
            for row in rows:
                with self._lock:
                    if row.id in self._running:
                        continue
                connection.execute(
                    update(_firing)
                    .where(_firing.c.id == row.id)
                    .values(
                        status="running",
                        holder=self.holder,
                        started_at=now,
                        attempts=_firing.c.attempts + 1,
                    )
                )
                claimed.append(int(row.id))
        return claimed

    def _run_firing(self, firing_id: int) -> None:
        with self.store.read() as connection:
            row = connection.execute(
                select(_firing, _trigger.c.name, _trigger.c.created_by, tables.PROJECT.c.name)
                .join(_trigger, _trigger.c.id == _firing.c.trigger_id)
                .join(tables.PROJECT, tables.PROJECT.c.id == _trigger.c.project_id)
                .where(_firing.c.id == firing_id)
            ).first()
        if row is None:
            return
        mapping = row._mapping
        firing: dict[str, Any] = {
            "id": firing_id,
            "trigger": mapping[_trigger.c.name],
            "dedup_key": row.dedup_key,
            "events": row.events,
        }
        trusted = self.trust or (
            mapping[_trigger.c.created_by] is not None
            and mapping[_trigger.c.created_by] == self.identity
        )
        status, result = "succeeded", {}
        try:
            result = run_action(
                row.action,
                firing=firing,
                project=str(mapping[tables.PROJECT.c.name]),
                trusted=trusted,
                store=self.store,
            )
        except ActionFailed as exc:
            status, result = "failed", {"error": str(exc)}
        except Exception as exc:  # the action's own failure is the firing's, not ours
            _log.exception("The action of firing %d failed unexpectedly.", firing_id)
            status, result = "failed", {"error": f"{type(exc).__name__}: {exc}"}
        with self.store.write() as connection:
            recorded = connection.execute(
                update(_firing)
                .where(_firing.c.id == firing_id, _firing.c.holder == self.holder)
                .values(status=status, finished_at=now_ms(), result=result)
            ).rowcount
            run_id = result.get("run")
            if recorded and isinstance(run_id, str) and run_id:
                add_edge(
                    connection,
                    Node("trigger_firing", str(firing_id)),
                    Node("run", run_id),
                    "started",
                    now_ms(),
                )


def _watched(row: Any) -> Watched:
    """What the trigger of ``row`` watches, read from its stored spec without validating it."""
    spec = row.spec if isinstance(row.spec, dict) else {}
    source = spec.get("source")
    return Watched(
        int(row.id), int(row.project_id), str(row.kind), source if isinstance(source, dict) else {}
    )
