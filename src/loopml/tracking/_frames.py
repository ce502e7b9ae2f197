"""Runs as a pandas DataFrame: one row a run, ``params.*``, ``metrics.*``, ``tags.*`` columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopml.tracking._records import Run

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["runs_to_frame"]


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """Flatten run records into a DataFrame (pandas is imported only here)."""
    import pandas as pd

    records: list[dict[str, Any]] = []
    for run in runs:
        record: dict[str, Any] = {
            "run_id": run.id,
            "project": run.project,
            "name": run.name,
            "kind": run.kind,
            "status": run.status,
            "parent_id": run.parent_id,
            "user": run.user,
            "start_time": pd.to_datetime(run.start_time, unit="ms", utc=True),
            "end_time": None
            if run.end_time is None
            else pd.to_datetime(run.end_time, unit="ms", utc=True),
        }
        record.update({f"metrics.{k}": v for k, v in run.metrics.items()})
        record.update({f"params.{k}": v for k, v in run.params.items()})
        record.update({f"tags.{k}": v for k, v in run.tags.items()})
        records.append(record)
    return pd.DataFrame.from_records(records)
