"""Experiment tracking: runs, params, metrics, tags, artifacts, notes and search.

The fluent functions (``start_run``, ``log_metric`` …) act on the active run
through the process's default :class:`TrackingClient`; use a client directly to
work with several stores or with runs by id.
"""

from __future__ import annotations

from loopml.tracking._autolog import autolog
from loopml.tracking._client import TrackingClient
from loopml.tracking._fluent import (
    ActiveRun,
    active_run,
    delete_run,
    end_run,
    get_client,
    get_metric_history,
    get_run,
    log_artifact,
    log_batch,
    log_dict,
    log_figure,
    log_metric,
    log_metrics,
    log_note,
    log_param,
    log_params,
    log_text,
    restore_run,
    search_runs,
    set_tag,
    set_tags,
    start_run,
)
from loopml.tracking._projects import ProjectSummary
from loopml.tracking._records import Metric, Note, Run, RunArtifact

__all__ = [
    "ActiveRun",
    "Metric",
    "Note",
    "ProjectSummary",
    "Run",
    "RunArtifact",
    "TrackingClient",
    "active_run",
    "autolog",
    "delete_run",
    "end_run",
    "get_client",
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
    "restore_run",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
]
