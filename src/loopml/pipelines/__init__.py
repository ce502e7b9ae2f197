"""Pipelines: plain Python steps in a DAG, cached, resumable, with approval gates.

Example:
    >>> import loopml
    >>> @loopml.step
    ... def double(x: int) -> int:
    ...     return 2 * x
    >>> @loopml.pipeline
    ... def numbers(x: int = 2):
    ...     double(double(x))
    >>> run = numbers.run(params={"x": 3})   # doctest: +SKIP
"""

from __future__ import annotations

from loopml.pipelines._api import get_pipeline_run, list_pipeline_runs, resume
from loopml.pipelines._loader import load_pipeline
from loopml.pipelines._materializers import Materializer, get_materializer, register_materializer
from loopml.pipelines._pipeline import Pipeline, approval_gate, pipeline
from loopml.pipelines._records import PipelineRun, StepRecord
from loopml.pipelines._reproduce import ReproductionReport, StepComparison, reproduce
from loopml.pipelines._runner import Event
from loopml.pipelines._step import Step, step
from loopml.pipelines._task import Resources, StoredValue

__all__ = [
    "Event",
    "Materializer",
    "Pipeline",
    "PipelineRun",
    "ReproductionReport",
    "Resources",
    "Step",
    "StepComparison",
    "StepRecord",
    "StoredValue",
    "approval_gate",
    "get_materializer",
    "get_pipeline_run",
    "list_pipeline_runs",
    "load_pipeline",
    "pipeline",
    "register_materializer",
    "reproduce",
    "resume",
    "step",
]
