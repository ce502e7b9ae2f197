"""Typed, immutable records handed out by the tracking client."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Metric", "Note", "Run", "RunArtifact", "RunStatus"]

RunStatus = str
"""One of ``running``, ``finished``, ``failed``, ``killed`` or ``lost`` (derived:
running, but its process stopped sending heartbeats)."""

TERMINAL_STATUSES = ("finished", "failed", "killed")


@dataclass(frozen=True)
class Metric:
    """One metric point. ``timestamp`` is epoch milliseconds (now when None)."""

    key: str
    value: float
    step: int = 0
    timestamp: int | None = None

    def __eq__(self, other: object) -> bool:
        # NaN is a legitimate metric value; two NaN points with equal coordinates are equal.
        if not isinstance(other, Metric):
            return NotImplemented
        same_value = self.value == other.value or (
            math.isnan(self.value) and math.isnan(other.value)
        )
        return same_value and (self.key, self.step, self.timestamp) == (
            other.key,
            other.step,
            other.timestamp,
        )

    def __hash__(self) -> int:
        return hash((self.key, self.step, self.timestamp))


@dataclass(frozen=True)
class RunArtifact:
    """A file or directory logged to a run; ``digest`` addresses it in the artifact store."""

    path: str
    digest: str
    size: int
    is_dir: bool


@dataclass(frozen=True)
class Note:
    """A Markdown note attached to a run or a project."""

    text: str
    author: str | None
    created_at: int


@dataclass(frozen=True)
class Run:
    """Everything recorded about one run.

    ``metrics`` holds the latest value of each metric; the whole series is
    :func:`loopml.get_metric_history`. ``failure`` is ``{"type", "message",
    "traceback"}`` for failed runs. ``resources`` holds ``cpu_seconds``,
    ``peak_memory_bytes`` and ``wall_seconds`` once the run has ended.
    """

    id: str
    project: str
    name: str | None
    kind: str
    status: RunStatus
    parent_id: str | None
    user: str | None
    start_time: int
    end_time: int | None
    heartbeat_at: int
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    artifacts: tuple[RunArtifact, ...] = ()
    notes: tuple[Note, ...] = ()
    failure: dict[str, str] | None = None
    resources: dict[str, float] | None = None

    @property
    def duration_seconds(self) -> float | None:
        """Wall time from start to end, or None while running."""
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time) / 1000
