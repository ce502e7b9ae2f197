"""``loopml demo``: a training pipeline over a versioned dataset, run twice.

Everything is local and offline: the breast-cancer data set ships with
scikit-learn. The pipeline (:mod:`loopml.cli._demo_pipeline`) registers it as
dataset ``breast-cancer``, checks a second delivery with planted problems
(quarantined, with an HTML report), splits the good version reproducibly,
trains two candidate models in parallel steps and compares them. The first run
has the cache off, so every step runs; the second, with the same parameters and
the cache on, reuses every step. The winner becomes ``@champion`` in the registry;
then it is served with the other candidate as a canary, under live traffic and
delayed feedback, and the routes are compared (:mod:`loopml.cli._demo_serving`).
It takes about half a minute, and running the demo again reuses identical dataset
versions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from loopml._private_fs import make_private_dirs
from loopml.cli import _data_views as data_views
from loopml.cli import _pipeline_views as pipeline_views
from loopml.cli._format import fmt_duration, fmt_value, short_id, status_text
from loopml.cli._options import Json
from loopml.cli._output import out, print_json
from loopml.errors import PromotionRefused

if TYPE_CHECKING:
    from loopml.pipelines import Event, PipelineRun
    from loopml.registry._client import RegistryClient
    from loopml.registry._promotion import EvaluationResult
    from loopml.registry._records import ModelVersion

__all__ = ["DATASET", "MODEL", "PROJECT", "TRAINING_STEPS", "demo"]

# The same as in _demo_pipeline, which is imported only when the demo runs: importing
# it here would import loopml.pipelines with the CLI.
PROJECT = "demo"
DATASET = "breast-cancer"
TRAINING_STEPS = ("train_logistic_regression", "train_gradient_boosting")
"""The pipeline's steps that train a candidate (each one's run holds its params and metrics)."""
MODEL = "breast-cancer-classifier"
EVAL_DATASET = "breast-cancer-eval"
SENSITIVE = "clinic"
POLICY = f"""\
- auc >= 0.9
- {{kind: beats_champion, metric: auc, margin: 0.0, method: bootstrap}}
- {{kind: fairness, sensitive: {SENSITIVE}, max: 0.25}}
- {{kind: approvals, count: 1}}
"""
"""The demo model's promotion policy."""


def demo(as_json: Json = False) -> None:
    """Run a training pipeline over a versioned dataset twice: the second run is fully cached.

    The pipeline registers a dataset, quarantines a bad delivery, splits the good
    version, trains two candidate models in parallel and compares them; the winner
    is promoted, served with the other as a canary, and the routes compared live.
    With --json the narration goes to stderr and one JSON summary to stdout at the end.
    """
    from loopml import settings
    from loopml.cli import _demo_pipeline as flow
    from loopml.cli._demo_monitoring import MONITOR, monitor_demo
    from loopml.cli._demo_serving import ENDPOINT, serve_demo
    from loopml.cli._pipelines import report_failure
    from loopml.errors import StepFailed
    from loopml.store import redacted

    console = Console(stderr=True, soft_wrap=False) if as_json else out()
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
    card, other = _registry(console, first)
    console.print()
    normal, drifted = serve_demo(
        console, project=PROJECT, model=MODEL, canary=other, test_ref=first.output("split", 1).ref
    )
    console.print()
    report = monitor_demo(
        console, project=PROJECT, endpoint=ENDPOINT, normal=normal, drifted=drifted
    )
    console.print()
    console.print(f"Metadata:  {redacted(settings.store_uri())}", highlight=False)
    console.print(f"Artifacts: {redacted(settings.artifact_uri())}", highlight=False)
    console.print("Next:")
    hints = [
        (f"loopml pipelines show {short_id(first.id)}", "the first run's DAG, timings, step runs"),
        ("loopml pipelines list --project demo", "both pipeline runs"),
        ("loopml runs list --project demo", "the runs (pipelines and their steps)"),
        ("loopml data list --project demo", "the datasets and splits"),
        (f"loopml data versions {DATASET} --project demo", "every version, quarantined too"),
        (f"loopml models versions {MODEL} -p demo", "the candidates"),
        (f"loopml models history {MODEL} -p demo", "@champion moves"),
        (f"loopml deployments compare {ENDPOINT} -p demo", "the routes on live traffic"),
        (f"loopml serve {ENDPOINT} -p demo", "serve the endpoint yourself"),
        (f"loopml monitor history {MONITOR} --check drift -p demo", "drift over time"),
        ("loopml alerts list -p demo", "the drift alerts, firing"),
    ]
    delivery = _delivery_summary(first)
    if not delivery.get("passed", True):
        ref = delivery["ref"]
        hints.append((f"loopml data show {ref} --project demo", "the quarantined delivery"))
        dataset = first.output("load_data").ref
        hints.append((f"loopml data diff {dataset} {ref} --project demo", "what changed"))
    for command, what in hints:
        console.print(f"  [bold]{command}[/]  [dim]# {what}[/]", highlight=False)
    console.print(f"Model card: {card}", highlight=False, soft_wrap=True)
    console.print(f"Monitor report: {report}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(
            {**_summary(first, second, card, other, ENDPOINT), "monitor_report": str(report)}
        )


def _summary(
    first: PipelineRun, second: PipelineRun, card: Path, canary: str, endpoint: str
) -> dict[str, Any]:
    """What ``demo --json`` prints: the runs, the champion, the endpoint and the stores."""
    from loopml import settings
    from loopml.registry._api import get_client
    from loopml.store import redacted

    champion = get_client().get_model(MODEL, project=PROJECT).aliases.get("champion")
    steps = [s for s in second.steps.values() if s.kind == "step"]
    return {
        "project": PROJECT,
        "pipeline_runs": [first.id, second.id],
        "second_run_cached_steps": sum(s.status == "cached" for s in steps),
        "steps": len(steps),
        "dataset": DATASET,
        "model": MODEL,
        "champion": None if champion is None else f"{MODEL}/{champion}",
        "canary": canary,
        "model_card": str(card),
        "endpoint": endpoint,
        "store_uri": redacted(settings.store_uri()),
        "artifact_uri": redacted(settings.artifact_uri()),
    }


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


# -- the registry: register, evaluate, approve, promote ---------------------------------------


def _registry(console: Console, run: PipelineRun) -> tuple[Path, str]:
    """Register both candidates, evaluate them against a policy, promote the winner.

    The winner is approved (as the current identity) and promoted to ``@champion`` when its
    policy passes; the other candidate is then evaluated against the new champion
    and fails ``beats champion`` (shown with its reason). Returns the card's path
    and the other candidate's reference.
    """
    from loopml.approvals import current_identity
    from loopml.registry._api import get_client
    from loopml.registry._card import build_card

    registry = get_client()
    test = run.output("split", 1)
    evaluation = _evaluation_data(test.ref)
    example = _example(test.ref)
    console.print(
        f"Registry: model [bold]{MODEL}[/], evaluated on [bold]{evaluation}[/] "
        f"({test.ref} with a {SENSITIVE!r} column for the fairness check).",
        highlight=False,
        soft_wrap=True,
    )
    versions = {
        step: registry.register(
            run.output(step, 0),
            MODEL,
            project=PROJECT,
            run_id=run.steps[step].run_id,
            input_example=example,
            description=step.removeprefix("train_").replace("_", " "),
        )
        for step in TRAINING_STEPS
    }
    registry.set_policy(MODEL, POLICY, project=PROJECT)
    registry.describe(
        MODEL,
        project=PROJECT,
        intended_use="Demonstration only: classify breast-cancer cell measurements as benign.",
        limitations=(
            "Trained on 455 rows of one public data set; the 'clinic' column is synthetic "
            "(assigned from the row id), so the fairness check only shows the mechanics."
        ),
    )
    before = registry.get_model(MODEL, project=PROJECT).aliases.get("champion")
    results = {step: _evaluate(registry, v.ref, evaluation) for step, v in versions.items()}
    ranked = sorted(results, key=lambda s: -results[s].metrics.get("auc", float("-inf")))
    winner, other = versions[ranked[0]], versions[ranked[1]]
    registry.approve(winner.ref, project=PROJECT, comment="demo review")
    console.print(f"  [green]✓[/] {winner.ref} approved by {current_identity()}", highlight=False)
    results[ranked[0]] = _evaluate(registry, winner.ref, evaluation)  # counts the approval
    try:
        promoted = registry.promote(winner.ref, project=PROJECT, alias="champion")
    except PromotionRefused as exc:
        same = (
            before is not None
            and registry.get_version(f"{MODEL}/{before}", project=PROJECT).digest == winner.digest
        )
        if same:
            console.print(
                f"  [yellow]![/] {winner.ref} is identical to @champion {MODEL}/{before} "
                "(same digest, from an earlier demo), so it cannot beat it",
                highlight=False,
                soft_wrap=True,
            )
        console.print(
            f"  [red]✗[/] {winner.ref} not promoted; @champion stays "
            f"{MODEL}/{before}: {'; '.join(f'{c}: {r}' for c, r in exc.failures)}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        was = f" (was {MODEL}/{before})" if before is not None else ""
        console.print(f"  [green]✓[/] @champion → {promoted.ref}{was}", highlight=False)
        results[ranked[1]] = _evaluate(registry, other.ref, evaluation)
    console.print(_registry_table(versions, results))
    loser = results[ranked[1]]
    for check, reason in loser.failures:
        console.print(f"  [red]✗[/] {other.ref} {check}: {reason}", highlight=False, soft_wrap=True)
    champion = registry.get_model(MODEL, project=PROJECT).aliases.get("champion")
    console.print(
        f"  @champion is {MODEL}/{champion}" if champion else "  no @champion yet",
        highlight=False,
    )
    from loopml.cli._models import card_path

    card = build_card(registry, winner.ref, PROJECT)
    path = card_path(card.name, card.version)
    make_private_dirs(path.parent)
    path.write_text(card.to_html(), encoding="utf-8")
    return path, other.ref


def _evaluate(registry: RegistryClient, ref: str, data: str) -> EvaluationResult:
    return registry.evaluate(ref, data, project=PROJECT, target="target", sensitive=(SENSITIVE,))


def _evaluation_data(test_ref: str) -> str:
    """The test split with a synthetic sensitive column (identical on every demo)."""
    import loopml.data

    frame = loopml.data.load(test_ref, project=PROJECT)
    frame[SENSITIVE] = ["north" if i % 2 == 0 else "south" for i in frame["id"]]
    version = loopml.data.register(
        EVAL_DATASET,
        frame,
        project=PROJECT,
        parents=(test_ref,),
        key=["id"],
        description=f"{test_ref} with a synthetic {SENSITIVE!r} column",
    )
    return version.ref


def _example(test_ref: str) -> Any:
    """A few feature rows of the test split: the models' input example."""
    import loopml.data

    frame = loopml.data.load(test_ref, project=PROJECT)
    return frame.drop(columns=["id", "target"]).head(5)


def _registry_table(
    versions: dict[str, ModelVersion], results: dict[str, EvaluationResult]
) -> Table:
    """Metrics and ✓/✗ per check of each candidate's latest evaluation (one column each)."""
    table = Table(title=f"Model {MODEL}: latest evaluations", title_justify="left")
    table.add_column("")
    for step, version in versions.items():
        name = step.removeprefix("train_").replace("_", " ")
        table.add_column(f"v{version.version} {name}", justify="center")
    for metric in ("auc", "accuracy"):
        table.add_row(metric, *(fmt_value(results[s].metrics.get(metric)) for s in versions))
    names = [r.name for r in next(iter(results.values())).results]
    for name in names:
        marks = []
        for step in versions:
            passed = {r.name: r.passed for r in results[step].results}.get(name, False)
            marks.append(Text("✓", style="green") if passed else Text("✗", style="bold red"))
        table.add_row(Text(name), *marks)
    return table
