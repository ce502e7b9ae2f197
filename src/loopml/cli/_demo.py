"""``loopml demo``: a training pipeline over a versioned dataset, run twice.

Everything is local and offline: the breast-cancer data set ships with
scikit-learn. The pipeline (:mod:`loopml.cli._demo_pipeline`) registers it as
dataset ``breast-cancer``, checks a second delivery with planted problems
(quarantined, with an HTML report), splits the good version reproducibly,
trains two candidate models in parallel steps and compares them. The first run
has the cache off, so every step runs; the second, with the same parameters and
the cache on, reuses every step. It takes a few seconds, and running the demo
again reuses identical dataset versions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import typer
from rich.console import Console
from rich.padding import Padding
from rich.table import Table

from loopml.cli import _data_views as data_views
from loopml.cli import _pipeline_views as pipeline_views
from loopml.cli._format import fmt_duration, fmt_value, short_id, status_text
from loopml.cli._output import out

if TYPE_CHECKING:
    from loopml.pipelines import Event, PipelineRun

__all__ = ["DATASET", "PROJECT", "TRAINING_STEPS", "demo"]

# The same as in _demo_pipeline, which is imported only when the demo runs: importing
# it here would import loopml.pipelines with the CLI.
PROJECT = "demo"
DATASET = "breast-cancer"
TRAINING_STEPS = ("train_logistic_regression", "train_gradient_boosting")
"""The pipeline's steps that train a candidate (each one's run holds its params and metrics)."""


def demo() -> None:
    """Run a training pipeline over a versioned dataset twice: the second run is fully cached.

    The pipeline registers a dataset, quarantines a bad delivery, splits the good
    version, trains two candidate models in parallel and compares them.
    """
    from loopml import settings
    from loopml.cli import _demo_pipeline as flow
    from loopml.cli._pipelines import report_failure
    from loopml.errors import StepFailed
    from loopml.store import redacted

    console = out()
    steps = " → ".join(flow.demo_training.build(flow.demo_training.resolve_params({})).nodes)
    console.print(
        f"Demo pipeline [bold]{flow.demo_training.name}[/] in project [bold]{PROJECT}[/]: {steps}",
        highlight=False,
        soft_wrap=True,
    )
    try:
        console.print()
        console.print("Run 1 of 2, cache off: every step runs …")
        first = _run(console, cache=False)
        _show_data(console, first)
        console.print()
        console.print("Run 2 of 2, the same pipeline and parameters, cache on …")
        second = _run(console, cache=True)
    except StepFailed as exc:
        report_failure(exc)
        raise typer.Exit(1) from None
    console.print(_cache_summary(first, second), highlight=False, soft_wrap=True)
    console.print()
    console.print(_comparison(first))
    console.print()
    console.print(f"Metadata:  {redacted(settings.store_uri())}", highlight=False)
    console.print(f"Artifacts: {settings.artifact_uri()}", highlight=False)
    console.print("Next:")
    hints = [
        (f"loopml pipelines show {short_id(first.id)}", "the first run's DAG, timings, step runs"),
        ("loopml pipelines list --project demo", "both pipeline runs"),
        ("loopml runs list --project demo", "the runs (pipelines and their steps)"),
        ("loopml data list --project demo", "the datasets and splits"),
        (f"loopml data versions {DATASET} --project demo", "every version, quarantined too"),
    ]
    delivery = _delivery_summary(first)
    if not delivery.get("passed", True):
        ref = delivery["ref"]
        hints.append((f"loopml data show {ref} --project demo", "the quarantined delivery"))
        dataset = first.output("load_data").ref
        hints.append((f"loopml data diff {dataset} {ref} --project demo", "what changed"))
    for command, what in hints:
        console.print(f"  [bold]{command}[/]  [dim]# {what}[/]", highlight=False)


def _run(console: Console, *, cache: bool) -> PipelineRun:
    """Run the demo pipeline with a live DAG view; print the recorded DAG when not on a terminal."""
    from loopml.cli import _demo_pipeline as flow
    from loopml.cli._pipelines import execute_live, source_lookup

    graph = flow.demo_training.build(flow.demo_training.resolve_params({}))
    view = pipeline_views.DagView(
        graph.describe()["nodes"], "Pipeline demo_training", source_lookup()
    )

    def start(on_event: Callable[[Event], None]) -> PipelineRun:
        return flow.demo_training.run(cache=cache, project=PROJECT, on_event=on_event)

    run = execute_live(console, view, start, lines=False)
    if not console.is_terminal:
        console.print(view.table())
    took = fmt_duration(pipeline_views.duration_seconds(run))
    console.print(
        f"  [green]✓[/] pipeline run {short_id(run.id)} {run.status} in {took}", highlight=False
    )
    return run


def _cache_summary(first: PipelineRun, second: PipelineRun) -> str:
    steps = [s for s in second.steps.values() if s.kind == "step"]
    cached = [s for s in steps if s.status == "cached"]
    if len(cached) == len(steps):
        return (
            f"  [blue]↺[/] all {len(steps)} steps of run {short_id(second.id)} were cached from "
            f"run {short_id(first.id)}: same code, same inputs, nothing ran again"
        )
    return f"  [yellow]![/] {len(cached)} of {len(steps)} steps of run {short_id(second.id)} cached"


# -- what the data steps did ----------------------------------------------------------------


def _delivery_summary(run: PipelineRun) -> dict[str, Any]:
    summary = run.output("validate_delivery", 1)
    return summary if isinstance(summary, dict) else {}


def _show_data(console: Console, run: PipelineRun) -> None:
    """What the data steps did: the registered version, the delivery's checks, the split."""
    dataset = run.output("load_data")
    again = " (identical data: the existing version)" if dataset.created_at < run.start_time else ""
    console.print()
    console.print(f"Data, from run {short_id(run.id)}:")
    console.print(
        f"  [green]✓[/] registered {dataset.ref}: {dataset.row_count} rows, "
        f"{dataset.column_count} columns{again}",
        highlight=False,
    )
    _show_delivery(console, _delivery_summary(run))
    train, test = run.output("split", 0), run.output("split", 1)
    fraction = float(run.params.get("test_fraction", 0.2))
    shares = f"{round(100 * (1 - fraction))}/{round(100 * fraction)}"
    console.print(
        f"  [green]✓[/] split {train.parents[0] if train.parents else dataset.ref} {shares}, "
        f"stratified on target: {train.ref} ({train.row_count} rows), "
        f"{test.ref} ({test.row_count} rows)",
        highlight=False,
    )
    console.print(
        f"Training candidates on [bold]{train.ref}[/], tested on [bold]{test.ref}[/].",
        highlight=False,
    )


def _show_delivery(console: Console, delivery: dict[str, Any]) -> None:
    import loopml.data

    ref = delivery.get("ref")
    if ref is None:
        return
    if delivery.get("passed"):
        console.print(
            f"  [yellow]![/] the second delivery passed its checks and is {ref} "
            "(was the schema changed since an earlier demo?)",
            highlight=False,
        )
        return
    how = (
        f"identical to {ref}, quarantined by an earlier demo"
        if delivery.get("existing")
        else f"quarantined as {ref}"
    )
    console.print(
        f"  [red]✗[/] second delivery {how}: {delivery.get('failed_checks', 0)} of "
        f"{delivery.get('checks', 0)} checks failed",
        highlight=False,
    )
    report = loopml.data.report(ref, project=PROJECT)
    if report is not None:
        table = data_views.checks_table(report.failed_checks, "Failing checks")
        console.print(Padding(table, (0, 0, 0, 4)))
    if delivery.get("report"):
        console.print(f"    Report: {delivery['report']}", highlight=False)


# -- the candidates -------------------------------------------------------------------


def _comparison(run: PipelineRun) -> Table:
    """The training steps' runs of ``run``, best test AUC first."""
    from loopml.tracking import get_client

    client = get_client()
    runs = [
        client.get_run(record.run_id)
        for name, record in run.steps.items()
        if name in TRAINING_STEPS and record.run_id
    ]
    runs.sort(key=lambda r: -r.metrics.get("test_auc", float("-inf")))
    table = Table(title="Demo runs, best test AUC first", title_justify="left")
    for column in ("run", "name", "status", "test_auc", "test_accuracy", "test_f1", "duration"):
        justify: Literal["left", "right"] = "right" if column.startswith("test") else "left"
        table.add_column(column, justify=justify, overflow="fold")
    for found in runs:
        table.add_row(
            short_id(found.id),
            found.name or "",
            status_text(found.status),
            *(fmt_value(found.metrics.get(k)) for k in ("test_auc", "test_accuracy", "test_f1")),
            fmt_duration(found.duration_seconds),
        )
    return table
