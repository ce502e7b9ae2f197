"""The scheduler's side of automation attempts: one step of each unfinished attempt per tick.

Steps run in the scheduler's worker threads (a retrain runs a pipeline for minutes;
the tick must not wait for it), at most one step of an attempt at a time. All state is
in the store (:mod:`~loopml.automation._attempt`), so the driver keeps only the futures
of the steps it started.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future

from sqlalchemy import Connection

from loopml.artifacts import ArtifactStore
from loopml.automation._attempt import Context, Transition, advance
from loopml.automation._automation_store import AutomationStore
from loopml.store import Store

__all__ = ["AttemptDriver"]

_log = logging.getLogger(__name__)


class AttemptDriver:
    """Advances the store's unfinished automation attempts.

    Args:
        store: the metadata store.
        artifacts: the artifact store (default: the default tracking client's).
        trusted: whether pipelines of an automation stored by this account may run.
    """

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore | None,
        *,
        trusted: Callable[[str | None], bool],
    ) -> None:
        self.store = store
        self._artifacts = artifacts
        self._trusted = trusted
        self._automations = AutomationStore(store)
        self._running: dict[int, Future[Transition | None]] = {}
        self._lock = threading.Lock()

    def context(self, fence: Callable[[Connection], None] | None = None) -> Context:
        """The context steps run in."""
        if self._artifacts is None:
            from loopml.tracking import get_client

            self._artifacts = get_client().artifacts
        return Context(
            self.store,
            self._artifacts,
            trusted=lambda automation: self._trusted(automation.created_by),
            fence=fence,
        )

    def step(
        self, attempt_id: int, fence: Callable[[Connection], None] | None = None
    ) -> Transition | None:
        """Do one step of attempt ``attempt_id`` now, in this thread."""
        attempt = self._automations.attempt(attempt_id)
        if attempt.finished:
            return None
        automation = self._automations.get_by_id(attempt.automation_id)
        if automation.paused:
            return None
        return advance(self.context(fence), automation, attempt)

    def tick(self, pool: Executor, fence: Callable[[Connection], None]) -> list[int]:
        """Start a step of every unfinished attempt not being stepped; return their ids."""
        with self._lock:
            for attempt_id in [i for i, f in self._running.items() if f.done()]:
                del self._running[attempt_id]
        started = []
        for attempt in self._automations.unfinished():
            with self._lock:
                if attempt.id in self._running:
                    continue
                self._running[attempt.id] = pool.submit(self._safe_step, attempt.id, fence)
            started.append(attempt.id)
        return started

    def _safe_step(self, attempt_id: int, fence: Callable[[Connection], None]) -> Transition | None:
        try:
            return self.step(attempt_id, fence)
        except Exception:  # one attempt's trouble must not stop the scheduler
            _log.exception("Automation attempt %d could not be advanced.", attempt_id)
            return None
