"""``loopml demo``: train a few scikit-learn models, tracked, and compare them.

Everything is local and offline: the breast-cancer data set ships with
scikit-learn. The whole demo takes a few seconds.
"""

from __future__ import annotations

import pickle
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

from loopml.cli._format import fmt_duration, fmt_value, short_id, status_text
from loopml.cli._output import out

__all__ = ["PROJECT", "demo", "train_all"]

PROJECT = "demo"
_SEED = 0

Data = tuple[Any, Any, Any, Any]
"""X_train, X_test, y_train, y_test."""


def demo() -> None:
    """Train three small models on a bundled data set, track them, and compare them."""
    from loopml import settings
    from loopml.store import redacted

    console = out()
    console.print(f"Training demo models in project [bold]{PROJECT}[/] …")
    batch = uuid.uuid4().hex[:12]
    for name, run_id, auc, seconds in train_all(batch):
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
    console.print(
        "Next: [bold]loopml runs list --project demo[/], then "
        "[bold]loopml runs show RUN_ID[/] or [bold]loopml runs compare RUN_ID RUN_ID[/]."
    )


def train_all(batch: str) -> list[tuple[str, str, float, float]]:
    """Train every demo model in its own run; return (name, run id, test AUC, seconds)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    features, target = load_breast_cancer(return_X_y=True)
    data: Data = tuple(
        train_test_split(features, target, test_size=0.25, random_state=_SEED, stratify=target)
    )
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


def _tracked(
    name: str, batch: str, trainer: Callable[[Data], Any], data: Data
) -> tuple[str, float]:
    from loopml import tracking

    tags = {"demo_batch": batch, "dataset": "sklearn.breast_cancer"}
    with tracking.start_run(name=name, project=PROJECT, tags=tags) as run:
        model = trainer(data)
        scores = _evaluate(model, data)
        tracking.log_metrics(scores)
        tracking.set_tag("model_class", type(model).__name__)
        with tempfile.TemporaryDirectory(prefix="loopml-demo-") as folder:
            path = Path(folder) / "model.pkl"
            path.write_bytes(pickle.dumps(model))
            tracking.log_artifact(path, "model.pkl")
        tracking.log_note(
            f"**{name}** on the breast-cancer data set ({len(data[0])} training rows).\n\n"
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
