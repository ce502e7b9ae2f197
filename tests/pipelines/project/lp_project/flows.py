"""Pipelines of the test project (``lp_project.flows:NAME`` references)."""

from __future__ import annotations

import loopml
from lp_project import steps


@loopml.pipeline
def chain(n: int = 4, factor: int = 2) -> None:
    """load → scale → total, and load → count (independent of scale and factor)."""
    values = steps.load(n)
    steps.total(steps.scale(values, factor=factor))
    steps.count(values)


@loopml.pipeline
def parallel(seconds: float = 1.0) -> None:
    """Two independent sleeps: ``stamp`` and ``stamp_2``."""
    steps.stamp(seconds, label="a")
    steps.stamp(seconds, label="b")


@loopml.pipeline
def retrying(counter: str, failures: int = 2) -> None:
    steps.flaky(counter, failures=failures)


@loopml.pipeline
def timing_out(seconds: float = 30.0) -> None:
    steps.sleeper(seconds)


@loopml.pipeline
def failing(n: int = 3) -> None:
    """load → fragile (raises while LP_PROJECT_FAIL is set); load → count."""
    values = steps.load(n)
    steps.fragile(values)
    steps.count(values)


@loopml.pipeline
def failing_twice(seconds: float = 1.0) -> None:
    """Two independent steps that both raise; the one traced first fails last."""
    steps.late_failure(seconds)
    steps.early_failure()


@loopml.pipeline
def holding(n: int = 3) -> None:
    """load → hold (sleeps LP_PROJECT_HOLD seconds): a run to kill in its second step."""
    steps.hold(steps.load(n))


@loopml.pipeline
def gated(n: int = 3) -> None:
    """load → approval gate → total."""
    values = steps.load(n)
    loopml.approval_gate("Ship the total?")
    steps.total(values)


@loopml.pipeline
def typed(n: int, label: str = "x", ratio: float = 0.5) -> None:
    steps.load(n)


@loopml.pipeline
def unstorable(n: int = 3) -> None:
    steps.unstorable(n)


@loopml.pipeline
def unpicklable() -> None:
    steps.lock()


@loopml.pipeline
def from_dataset(ref: str = "sales@latest") -> None:
    steps.dataset_total(steps.resolve_dataset(ref))


@loopml.pipeline
def round_trip(n: int = 10, test_rows: int = 3) -> None:
    frame = steps.make_frame(n)
    train, test = steps.split(frame, test_rows=test_rows)
    array = steps.to_array(frame)
    steps.describe(train, test, array, steps.centre(array))
