"""Steps of the test project: small, deterministic, and observable from the outside.

Every step that matters for caching appends its name to the file named by
``LP_PROJECT_MARKS`` each time it actually runs, so a test can tell an execution
from a cache hit or a reuse without looking at loopml's own records.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import loopml

MARKS = "LP_PROJECT_MARKS"
"""Environment variable naming the file each execution is appended to."""
FAIL = "LP_PROJECT_FAIL"
"""Set (to anything) to make :func:`fragile` raise."""
HOLD = "LP_PROJECT_HOLD"
"""Seconds :func:`hold` sleeps (default 0)."""


def mark(label: str) -> None:
    """Record that ``label`` ran (when the tests asked for marks)."""
    path = os.environ.get(MARKS)
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(f"{label}\n")


@loopml.step
def load(n: int) -> list[int]:
    mark("load")
    return list(range(n))


@loopml.step
def scale(values: list[int], factor: int = 2) -> list[int]:
    mark("scale")
    print(f"scaling {len(values)} values by {factor}")
    print("scale warns on stderr", file=sys.stderr)
    loopml.log_metric("count", float(len(values)))
    loopml.log_metric("factor", float(factor))
    return [v * factor for v in values]


@loopml.step
def total(values: list[int]) -> int:
    mark("total")
    return sum(values)


@loopml.step
def count(values: list[int]) -> int:
    mark("count")
    return len(values)


@loopml.step
def stamp(seconds: float, label: str) -> list[float]:
    """Sleep, and say when (epoch seconds) the sleep started and ended."""
    started = time.time()
    time.sleep(seconds)
    return [started, time.time()]


@loopml.step(retries=2, backoff=0)
def flaky(counter: str, failures: int) -> int:
    """Fail the first ``failures`` executions (counted in the file ``counter``)."""
    path = Path(counter)
    seen = int(path.read_text()) if path.exists() else 0
    path.write_text(str(seen + 1))
    if seen < failures:
        raise RuntimeError(f"flaky failure {seen + 1}")
    return seen + 1


@loopml.step(timeout=1)
def sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@loopml.step
def fragile(values: list[int]) -> int:
    """Raise while ``LP_PROJECT_FAIL`` is set; otherwise the largest value."""
    mark("fragile")
    if os.environ.get(FAIL):
        raise ValueError(f"fragile refuses {len(values)} values")
    return max(values)


@loopml.step
def late_failure(seconds: float) -> int:
    """Raise after ``seconds``."""
    time.sleep(seconds)
    raise ValueError("late_failure gave up")


@loopml.step
def early_failure() -> int:
    """Raise at once."""
    raise ValueError("early_failure gave up")


@loopml.step
def hold(values: list[int]) -> int:
    """Sleep ``LP_PROJECT_HOLD`` seconds, then return the sum (a step to kill mid-run)."""
    mark("hold")
    time.sleep(float(os.environ.get(HOLD, "0")))
    return sum(values)


@loopml.step
def unstorable(n: int) -> Iterator[int]:
    """Return a generator: no materializer can store one."""
    return (i for i in range(n))


@loopml.step
def lock() -> Any:
    """Return a lock: not even cloudpickle can store one."""
    return threading.Lock()


@loopml.step(cache=False)
def resolve_dataset(ref: str) -> Any:
    """The dataset version ``ref`` names now (``sales@latest``): never cached."""
    mark("resolve_dataset")
    return loopml.data.get(ref)


@loopml.step
def dataset_total(version: Any) -> float:
    """Sum of the ``amount`` column of a dataset version (cached by the data's hash)."""
    mark("dataset_total")
    frame = loopml.data.load(f"{version.name}:{version.version}", project=version.project)
    return float(frame["amount"].sum())


# -- values of several kinds, for the materializer round trip ---------------------------


class Point:
    """A user class no built-in format knows: stored with cloudpickle."""

    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


@loopml.step
def make_frame(n: int) -> Any:
    import pandas as pd

    return pd.DataFrame({"id": list(range(n)), "amount": [i * 1.5 for i in range(n)]})


@loopml.step(outputs=("train", "test"))
def split(frame: Any, test_rows: int) -> tuple[Any, Any]:
    return frame.iloc[:-test_rows].reset_index(drop=True), frame.iloc[-test_rows:].reset_index(
        drop=True
    )


@loopml.step
def to_array(frame: Any) -> Any:
    return frame["amount"].to_numpy()


@loopml.step
def centre(array: Any) -> Point:
    return Point(float(array.mean()), float(array.max()))


@loopml.step
def describe(train: Any, test: Any, array: Any, point: Point) -> dict[str, Any]:
    """What arrived, by type, after a round trip through the artifact store."""
    return {
        "train": [type(train).__name__, len(train)],
        "test": [type(test).__name__, len(test)],
        "array": [type(array).__name__, str(array.dtype), float(array.sum())],
        "point": [type(point).__name__, point.x, point.y],
    }
