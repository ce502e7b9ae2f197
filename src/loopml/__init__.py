"""loopml: the whole machine-learning lifecycle as one closed loop.

``import loopml`` is cheap: it does no I/O, starts no thread and imports nothing
heavy. The names below are loaded on first use.

Example:
    >>> import loopml
    >>> with loopml.start_run(name="baseline", params={"C": 1.0}):
    ...     loopml.log_metric("accuracy", 0.93)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loopml._version import __version__

if TYPE_CHECKING:
    from loopml import data as data
    from loopml import models as models
    from loopml.pipelines import Resources as Resources
    from loopml.pipelines import approval_gate as approval_gate
    from loopml.pipelines import pipeline as pipeline
    from loopml.pipelines import step as step
    from loopml.tracking import (
        ActiveRun as ActiveRun,
    )
    from loopml.tracking import (
        Metric as Metric,
    )
    from loopml.tracking import (
        Run as Run,
    )
    from loopml.tracking import (
        TrackingClient as TrackingClient,
    )
    from loopml.tracking import (
        active_run as active_run,
    )
    from loopml.tracking import (
        autolog as autolog,
    )
    from loopml.tracking import (
        delete_run as delete_run,
    )
    from loopml.tracking import (
        end_run as end_run,
    )
    from loopml.tracking import (
        get_metric_history as get_metric_history,
    )
    from loopml.tracking import (
        get_run as get_run,
    )
    from loopml.tracking import (
        log_artifact as log_artifact,
    )
    from loopml.tracking import (
        log_batch as log_batch,
    )
    from loopml.tracking import (
        log_dict as log_dict,
    )
    from loopml.tracking import (
        log_figure as log_figure,
    )
    from loopml.tracking import (
        log_metric as log_metric,
    )
    from loopml.tracking import (
        log_metrics as log_metrics,
    )
    from loopml.tracking import (
        log_note as log_note,
    )
    from loopml.tracking import (
        log_param as log_param,
    )
    from loopml.tracking import (
        log_params as log_params,
    )
    from loopml.tracking import (
        log_text as log_text,
    )
    from loopml.tracking import (
        restore_run as restore_run,
    )
    from loopml.tracking import (
        search_runs as search_runs,
    )
    from loopml.tracking import (
        set_tag as set_tag,
    )
    from loopml.tracking import (
        set_tags as set_tags,
    )
    from loopml.tracking import (
        start_run as start_run,
    )

__all__ = [
    "ActiveRun",
    "Metric",
    "Resources",
    "Run",
    "TrackingClient",
    "__version__",
    "active_run",
    "approval_gate",
    "autolog",
    "data",
    "delete_run",
    "end_run",
    "get_metric_history",
    "get_run",
    "log_artifact",
    "log_batch",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_note",
    "log_param",
    "log_params",
    "log_text",
    "models",
    "pipeline",
    "restore_run",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
]

# Every public name but __version__ is imported on first use: ``data`` and ``models`` are
# submodules, the decorators come from loopml.pipelines, the rest from loopml.tracking.
_SUBMODULES = {"data": "loopml.data", "models": "loopml.models"}
_PIPELINES = ("Resources", "approval_gate", "pipeline", "step")
_LAZY = {
    name: "loopml.pipelines" if name in _PIPELINES else "loopml.tracking"
    for name in __all__
    if name != "__version__" and name not in _SUBMODULES
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The public names only: not the helpers above, nor the submodules imported so far.
    return sorted(__all__)
