"""Typed, immutable records handed out by the tracking client."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopml._html import Section, clip, html_table, when

__all__ = ["JSONMapping", "Metric", "Note", "Run", "RunArtifact", "RunStatus"]

RunStatus = str
"""One of ``running``, ``waiting_for_approval``, ``finished``, ``failed``, ``killed``,
``rejected`` (a human said no at an approval gate) or ``lost`` (derived: running,
but its process stopped sending heartbeats)."""

TERMINAL_STATUSES = ("finished", "failed", "killed", "rejected")
PAUSED_STATUSES = ("running", "waiting_for_approval")


class JSONMapping(Mapping[str, Any]):
    """A read-only mapping parsed from JSON text on first use.

    Search results carry every run's context; most callers never look at it, so
    it is kept as text until someone does.
    """

    __slots__ = ("_extra", "_parsed", "_text")

    def __init__(
        self, text: str | dict[str, Any] | None, extra: Mapping[str, Any] | None = None
    ) -> None:
        self._text = text
        self._extra = extra
        self._parsed: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._parsed is None:
            # Drivers with a native JSON type (psycopg) hand over the dict already.
            text = self._text
            loaded = text if isinstance(text, dict) else json.loads(text) if text else {}
            parsed = loaded if isinstance(loaded, dict) else {}
            if self._extra:
                parsed.update(self._extra)
            self._parsed = parsed
        return self._parsed

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._load())


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
    ``deleted_at`` is when the run was soft-deleted (epoch ms), None while live.
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
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    artifacts: tuple[RunArtifact, ...] = ()
    notes: tuple[Note, ...] = ()
    failure: dict[str, str] | None = None
    resources: dict[str, float] | None = None
    deleted_at: int | None = None

    @property
    def deleted(self) -> bool:
        """Whether the run is soft-deleted (``restore_run`` brings it back)."""
        return self.deleted_at is not None

    @property
    def duration_seconds(self) -> float | None:
        """Wall time from start to end, or None while running."""
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time) / 1000

    def __repr__(self) -> str:
        # Short: the captured context (every installed package) runs to kilobytes.
        name = f" {clip(self.name)!r}" if self.name else ""
        deleted = " deleted" if self.deleted else ""
        return (
            f"<Run {self.id[:8]}{name} {self.status}{deleted} project={clip(self.project)} "
            f"params={len(self.params)} metrics={len(self.metrics)}>"
        )

    def _repr_html_(self) -> str:
        duration = self.duration_seconds
        failure = self.failure or {}
        failed = f"{failure.get('type')}: {failure['message']}" if "message" in failure else None
        return html_table(
            f"Run {self.id}",
            [
                ("name", self.name),
                ("project", self.project),
                ("kind", self.kind),
                ("status", self.status),
                ("user", self.user),
                ("parent", self.parent_id),
                ("started", when(self.start_time)),
                ("duration", None if duration is None else f"{duration:.2f}s"),
                ("failure", failed),
                ("deleted", None if self.deleted_at is None else when(self.deleted_at)),
                ("artifacts", len(self.artifacts) or None),
            ],
            Section("Params", ("param", "value"), sorted(self.params.items())),
            Section("Metrics", ("metric", "latest"), sorted(self.metrics.items())),
            Section("Tags", ("tag", "value"), sorted(self.tags.items())),
        )
