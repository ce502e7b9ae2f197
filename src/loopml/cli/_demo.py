"""``loopml demo``: version a dataset, quarantine a bad delivery, train on the good one.

Everything is local and offline: the breast-cancer data set ships with
scikit-learn. The demo registers it as dataset ``breast-cancer``, checks a
second delivery with planted problems (quarantined, with an HTML report),
splits the good version reproducibly and trains three models on the split,
each run loading its data itself so that lineage records which versions it
used. It takes a few seconds, and running it again reuses identical versions.
"""

from __future__ import annotations

import pickle
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.padding import Padding
from rich.table import Table

from loopml.cli import _data_views as data_views
from loopml.cli._format import fmt_duration, fmt_value, short_id, status_text
from loopml.cli._output import out

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data import ValidationReport

__all__ = ["DATASET", "PROJECT", "DemoData", "demo", "prepare_data", "train_all"]

PROJECT = "demo"
DATASET = "breast-cancer"
_SEED = 0
_DATA_SEED = 42
_DELIVERY_ROWS = 120
_NEGATIVE_RADII = 6
_BAD_LABELS = 3

Data = tuple[Any, Any, Any, Any]
"""X_train, X_test, y_train, y_test."""


@dataclass(frozen=True)
class DemoData:
    """References of the demo's dataset versions."""

    dataset: str
    train: str
    test: str
    quarantined: str | None


def demo() -> None:
    """Register a dataset, quarantine a bad delivery, then train and compare three models."""
    from loopml import settings
    from loopml.store import redacted

    console = out()
    console.print(f"Preparing the demo data in project [bold]{PROJECT}[/] …")
    data = prepare_data(console)
    console.print()
    console.print(
        f"Training demo models on [bold]{data.train}[/], tested on [bold]{data.test}[/] …"
    )
    batch = uuid.uuid4().hex[:12]
    for name, run_id, auc, seconds in train_all(batch, data):
        console.print(
            f"  [green]✓[/] {name:<20} test_auc={auc:.4f}  "
            f"({fmt_duration(seconds)}, run {short_id(run_id)})",
            highlight=False,
        )
    console.print()
    console.print(_comparison(batch))
    console.print()
    console.print(f"Metadata:  {redacted(settings.store_uri())}", highlight=False)
    console.print(f"Artifacts: {settings.artifact_uri()}", highlight=False)
    console.print("Next:")
    hints = [
        ("loopml runs list --project demo", "the runs"),
        ("loopml data list --project demo", "the datasets and splits"),
        (f"loopml data versions {DATASET} --project demo", "every version, quarantined too"),
    ]
    if data.quarantined:
        hints.append(
            (f"loopml data show {data.quarantined} --project demo", "the quarantined delivery")
        )
        hints.append(
            (f"loopml data diff {data.dataset} {data.quarantined} --project demo", "what changed")
        )
    for command, what in hints:
        console.print(f"  [bold]{command}[/]  [dim]# {what}[/]", highlight=False)


# -- data ------------------------------------------------------------------------------


def prepare_data(console: Console) -> DemoData:
    """Register the data, check a second delivery (quarantined) and split the good version."""
    import loopml.data

    frame = _frame()
    good = loopml.data.register(
        DATASET,
        frame,
        project=PROJECT,
        key=["id"],
        description="Wisconsin breast-cancer data (scikit-learn), with an id column",
    )
    again = "" if good.is_new else " (identical data: the existing version)"
    console.print(
        f"  [green]✓[/] registered {good.ref}: {good.row_count} rows, "
        f"{good.column_count} columns{again}",
        highlight=False,
    )
    quarantined = _second_delivery(console, frame)
    parts = loopml.data.split(
        good.ref, {"train": 0.8, "test": 0.2}, seed=_DATA_SEED, stratify="target", project=PROJECT
    )
    shown = ", ".join(f"{v.ref} ({v.row_count} rows)" for v in parts.values())
    console.print(
        f"  [green]✓[/] split {good.ref} 80/20, stratified on target: {shown}", highlight=False
    )
    return DemoData(good.ref, parts["train"].ref, parts["test"].ref, quarantined)


def _frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    frame.insert(0, "id", range(len(frame)))
    return frame


def _delivery(frame: pd.DataFrame) -> pd.DataFrame:
    """New rows like the old (resampled, 2 % noise, kept in range), with planted problems:
    a few negative ``mean radius`` values and a few ``target`` labels of 2."""
    import numpy as np

    rng = np.random.default_rng(_DATA_SEED)
    features = [c for c in frame.columns if c not in ("id", "target")]
    rows = frame.iloc[rng.integers(0, len(frame), _DELIVERY_ROWS)].reset_index(drop=True)
    noisy = rows[features] * rng.normal(1.0, 0.02, size=(len(rows), len(features)))
    noisy = noisy.clip(lower=frame[features].min(), upper=frame[features].max(), axis=1)
    noisy.insert(0, "id", np.arange(len(frame), len(frame) + len(rows)))
    noisy["target"] = rows["target"].to_numpy()
    radii = rng.choice(len(rows), _NEGATIVE_RADII, replace=False)
    noisy.loc[radii, "mean radius"] = -noisy.loc[radii, "mean radius"]
    labels = rng.choice(len(rows), _BAD_LABELS, replace=False)
    noisy.loc[labels, "target"] = 2
    return noisy


def _second_delivery(console: Console, frame: pd.DataFrame) -> str | None:
    """Register the bad delivery strictly; show why it is quarantined and write the report."""
    import loopml.data
    from loopml.errors import DataValidationError

    report: ValidationReport | None
    try:
        version = loopml.data.register(
            DATASET,
            _delivery(frame),
            project=PROJECT,
            strict=True,
            description="second delivery, with planted problems",
        )
    except DataValidationError as exc:
        ref = str(exc.version)
        report = exc.report  # type: ignore[assignment]
        how = (
            f"identical to {ref}, quarantined by an earlier demo"
            if exc.existing
            else f"quarantined as {ref}"
        )
    else:
        console.print(
            f"  [yellow]![/] the second delivery passed its checks and is {version.ref} "
            "(was the schema changed since an earlier demo?)",
            highlight=False,
        )
        return None
    failed = len(report.failed_checks) if report else 0
    total = len(report.checks) if report else 0
    console.print(
        f"  [red]✗[/] second delivery {how}: {failed} of {total} checks failed",
        highlight=False,
    )
    if report is None:
        return ref
    table = data_views.checks_table(report.failed_checks, "Failing checks")
    console.print(Padding(table, (0, 0, 0, 4)))
    path = _write_report(ref, report)
    console.print(f"    Report: {path}", highlight=False)
    return ref


def _write_report(ref: str, report: ValidationReport) -> Path:
    import loopml.data
    from loopml import settings

    folder = settings.home() / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / f"{ref.replace(':', '-')}.html").absolute()
    profile = loopml.data.get(ref, project=PROJECT).profile
    path.write_text(report.to_html(profile), encoding="utf-8")
    return path


# -- training ----------------------------------------------------------------------------


def train_all(batch: str, data: DemoData) -> list[tuple[str, str, float, float]]:
    """Train every demo model in its own run; return (name, run id, test AUC, seconds)."""
    trainers: list[tuple[str, Callable[[Data], Any]]] = [
        ("logistic-regression", _logistic_regression),
        ("random-forest", _random_forest),
        ("gradient-boosting", _gradient_boosting),
    ]
    results = []
    for name, trainer in trainers:
        started = time.perf_counter()
        run_id, auc = _tracked(name, batch, trainer, data)
        results.append((name, run_id, auc, time.perf_counter() - started))
    return results


def _load(data: DemoData) -> Data:
    """Load the split inside the active run, so lineage records the versions it used."""
    import loopml.data

    train = loopml.data.load(data.train, project=PROJECT)
    test = loopml.data.load(data.test, project=PROJECT)
    features = [c for c in train.columns if c not in ("id", "target")]
    return (
        train[features].to_numpy(),
        test[features].to_numpy(),
        train["target"].to_numpy(),
        test["target"].to_numpy(),
    )


def _tracked(
    name: str, batch: str, trainer: Callable[[Data], Any], data: DemoData
) -> tuple[str, float]:
    from loopml import tracking

    tags = {"demo_batch": batch, "dataset": data.dataset, "train": data.train, "test": data.test}
    with tracking.start_run(name=name, project=PROJECT, tags=tags) as run:
        arrays = _load(data)
        model = trainer(arrays)
        scores = _evaluate(model, arrays)
        tracking.log_metrics(scores)
        tracking.set_tag("model_class", type(model).__name__)
        with tempfile.TemporaryDirectory(prefix="loopml-demo-") as folder:
            path = Path(folder) / "model.pkl"
            path.write_bytes(pickle.dumps(model))
            tracking.log_artifact(path, "model.pkl")
        tracking.log_note(
            f"**{name}** on `{data.train}` ({len(arrays[0])} rows), tested on `{data.test}`; "
            f"both split from `{data.dataset}`.\n\n"
            f"- test AUC: `{scores['test_auc']:.4f}`\n"
            f"- test accuracy: `{scores['test_accuracy']:.4f}`\n"
            f"- test F1: `{scores['test_f1']:.4f}`\n"
        )
    return run.id, scores["test_auc"]


def _evaluate(model: Any, data: Data) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    _, x_test, _, y_test = data
    predicted = model.predict(x_test)
    probability = model.predict_proba(x_test)[:, 1]
    return {
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "test_auc": float(roc_auc_score(y_test, probability)),
        "test_f1": float(f1_score(y_test, predicted)),
    }


def _logistic_regression(data: Data) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from loopml import tracking

    params = {"model": "logistic_regression", "C": 1.0, "max_iter": 1000}
    tracking.log_params(params)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    return model.fit(data[0], data[2])


def _random_forest(data: Data) -> Any:
    """Grown 10 trees at a time (warm start), so test AUC has a history over trees."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    from loopml import tracking

    x_train, x_test, y_train, y_test = data
    params = {"model": "random_forest", "n_estimators": 100, "max_depth": 6, "seed": _SEED}
    tracking.log_params(params)
    model = RandomForestClassifier(max_depth=6, random_state=_SEED, warm_start=True)
    for trees in range(10, 101, 10):
        model.set_params(n_estimators=trees)
        model.fit(x_train, y_train)
        auc = float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))
        tracking.log_metric("staged_test_auc", auc, trees)
    return model


def _gradient_boosting(data: Data) -> Any:
    """Training loss and test AUC logged for every boosting stage."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from loopml import tracking

    x_train, x_test, y_train, y_test = data
    params = {
        "model": "gradient_boosting",
        "n_estimators": 100,
        "learning_rate": 0.1,
        "max_depth": 3,
    }
    tracking.log_params(params)
    model = GradientBoostingClassifier(
        n_estimators=100, learning_rate=0.1, max_depth=3, random_state=_SEED
    ).fit(x_train, y_train)
    points = [
        tracking.Metric("train_loss", float(loss), stage)
        for stage, loss in enumerate(model.train_score_, 1)
    ]
    for stage, proba in enumerate(model.staged_predict_proba(x_test), 1):
        auc = float(roc_auc_score(y_test, proba[:, 1]))
        points.append(tracking.Metric("staged_test_auc", auc, stage))
    tracking.log_batch(points)
    return model


def _comparison(batch: str) -> Table:
    from loopml import tracking

    runs = tracking.search_runs(
        project=PROJECT, filter=f"tags.demo_batch = '{batch}'", order_by=["metrics.test_auc DESC"]
    )
    assert isinstance(runs, list)  # output="list"
    table = Table(title="Demo runs, best test AUC first", title_justify="left")
    for column in ("run", "name", "status", "test_auc", "test_accuracy", "test_f1", "duration"):
        justify: Literal["left", "right"] = "right" if column.startswith("test") else "left"
        table.add_column(column, justify=justify, overflow="fold")
    for run in runs:
        table.add_row(
            short_id(run.id),
            run.name or "",
            status_text(run.status),
            *(fmt_value(run.metrics.get(key)) for key in ("test_auc", "test_accuracy", "test_f1")),
            fmt_duration(run.duration_seconds),
        )
    return table
