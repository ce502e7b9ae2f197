"""What every check of one monitor run may read: :class:`CheckContext`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.monitoring._results import CheckResult
from loopml.monitoring._sources import Data, Readers
from loopml.monitoring._spec import MonitorSpec

if TYPE_CHECKING:
    from loopml.registry import ModelVersion

__all__ = ["Check", "CheckContext"]


@dataclass(frozen=True)
class CheckContext:
    """What every check of one run may read.

    Attributes:
        spec: The monitor.
        project: Its project.
        current: The current data.
        reference: The reference data.
        columns: The input columns to judge.
        model: The model version watched, if known.
        readers: The service clients.
        trust: Whether model code may run (attribution loads the model).
    """

    spec: MonitorSpec
    project: str
    current: Data
    reference: Data
    columns: list[str]
    model: ModelVersion | None
    readers: Readers
    trust: bool


Check = Callable[[CheckContext, dict[str, Any]], list[CheckResult]]
"""A check: one run's context and the check's options → its results."""
