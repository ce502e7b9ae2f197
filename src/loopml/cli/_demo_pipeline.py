"""The demo's training pipeline: load → validate → split → train two candidates → compare.

Steps run in worker processes, which find them again by importing this module
(``loopml.cli._demo_pipeline:demo_training``), so everything a step needs lives
here, at module level. Each step runs inside its own child run: the training
steps log params, metrics (with histories), the pickled model and a note there.

The data: the breast-cancer set that ships with scikit-learn is registered as
dataset ``breast-cancer``; a second delivery with planted problems (negative
radii, labels of 2) is checked strictly and quarantined, so the pipeline keeps
training on the last good version, split 80/20 stratified on the target.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml._private_fs import make_private_dirs
from loopml.pipelines import Pipeline, step

if TYPE_CHECKING:
    import pandas as pd

    from loopml.data import DatasetVersion, ValidationReport

__all__ = ["DATASET", "PROJECT", "demo_training"]

PROJECT = "demo"
DATASET = "breast-cancer"
_DATA_SEED = 42
_DELIVERY_ROWS = 120
_NEGATIVE_RADII = 6
_BAD_LABELS = 3

Arrays = tuple[Any, Any, Any, Any]
"""X_train, X_test, y_train, y_test."""


# -- data steps ----------------------------------------------------------------------------


@step
def load_data() -> DatasetVersion:
    """Register the breast-cancer data (with an id column); identical data is the same version."""
    import loopml.data

    return loopml.data.register(
        DATASET,
        _frame(),
        project=PROJECT,
        key=["id"],
        description="Wisconsin breast-cancer data (scikit-learn), with an id column",
    )


@step(outputs=("accepted", "delivery"))
def validate_delivery(dataset: DatasetVersion) -> tuple[DatasetVersion, dict[str, Any]]:
    """Check a new delivery strictly: accept it if it passes, else keep training on ``dataset``.

    Returns the version to train on and what happened to the delivery (its
    reference, whether it passed, failed and total checks, the HTML report).
    """
    import loopml.data
    from loopml.errors import DataValidationError

    frame = loopml.data.load(dataset.ref, project=PROJECT)
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
        report: ValidationReport | None = exc.report  # type: ignore[assignment]
        summary = {
            "ref": ref,
            "passed": False,
            "existing": exc.existing,
            "failed_checks": len(report.failed_checks) if report else 0,
            "checks": len(report.checks) if report else 0,
            "report": str(_write_report(ref, report)) if report else None,
        }
        return dataset, summary
    summary = {"ref": version.ref, "passed": True, "existing": not version.is_new}
    return version, summary


@step(outputs=("train", "test"))
def split(
    dataset: DatasetVersion, test_fraction: float, seed: int
) -> tuple[DatasetVersion, DatasetVersion]:
    """Split the accepted version reproducibly, stratified on the target."""
    import loopml.data

    parts = loopml.data.split(
        dataset.ref,
        {"train": 1 - test_fraction, "test": test_fraction},
        seed=seed,
        stratify="target",
        project=PROJECT,
    )
    return parts["train"], parts["test"]


# -- training steps --------------------------------------------------------------------------


@step(outputs=("model", "scores"))
def train_logistic_regression(
    train: DatasetVersion, test: DatasetVersion, seed: int
) -> tuple[Any, dict[str, Any]]:
    """A scaled logistic regression: the baseline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from loopml import tracking

    arrays = _arrays(train, test)
    tracking.log_params({"model": "logistic_regression", "C": 1.0, "max_iter": 1000})
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    ).fit(arrays[0], arrays[2])
    return model, _finish("logistic-regression", model, arrays, train, test)


@step(outputs=("model", "scores"))
def train_gradient_boosting(
    train: DatasetVersion, test: DatasetVersion, seed: int
) -> tuple[Any, dict[str, Any]]:
    """Gradient boosting; training loss and test AUC are logged for every stage."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from loopml import tracking

    x_train, x_test, y_train, y_test = arrays = _arrays(train, test)
    tracking.log_params(
        {"model": "gradient_boosting", "n_estimators": 100, "learning_rate": 0.1, "max_depth": 3}
    )
    model = GradientBoostingClassifier(
        n_estimators=100, learning_rate=0.1, max_depth=3, random_state=seed
    ).fit(x_train, y_train)
    points = [
        tracking.Metric("train_loss", float(loss), stage)
        for stage, loss in enumerate(model.train_score_, 1)
    ]
    for stage, proba in enumerate(model.staged_predict_proba(x_test), 1):
        points.append(
            tracking.Metric("staged_test_auc", float(roc_auc_score(y_test, proba[:, 1])), stage)
        )
    tracking.log_batch(points)
    return model, _finish("gradient-boosting", model, arrays, train, test)


@step
def compare(
    logistic_regression: dict[str, Any], gradient_boosting: dict[str, Any]
) -> dict[str, Any]:
    """Rank the candidates by test AUC; the best one's name and score go on this step's run."""
    from loopml import tracking

    ranking = sorted(
        (logistic_regression, gradient_boosting), key=lambda s: s["test_auc"], reverse=True
    )
    best = ranking[0]
    tracking.log_metric("best_test_auc", best["test_auc"])
    tracking.set_tag("best_model", best["model"])
    return {"best": best["model"], "ranking": ranking}


def _demo_training(seed: int = 0, test_fraction: float = 0.2) -> None:
    """Load → validate → split → train two candidates (in parallel) → compare."""
    dataset = load_data()
    accepted, _ = validate_delivery(dataset)
    train, test = split(accepted, test_fraction=test_fraction, seed=_DATA_SEED)
    _, baseline = train_logistic_regression(train, test, seed=seed)
    _, boosted = train_gradient_boosting(train, test, seed=seed)
    compare(baseline, boosted)


# `Pipeline(...)` rather than `@pipeline`: the decorator has no overloads yet, so type
# checkers would see `Pipeline | Callable`. The name makes the recorded reference
# `loopml.cli._demo_pipeline:demo_training`, which resume and reproduce import.
demo_training = Pipeline(_demo_training, name="demo_training")


# -- helpers (run inside the steps) ----------------------------------------------------------


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


def _write_report(ref: str, report: ValidationReport) -> Path:
    import loopml.data
    from loopml import settings

    folder = make_private_dirs(settings.home() / "reports")
    path = (folder / f"{ref.replace(':', '-')}.html").absolute()
    profile = loopml.data.get(ref, project=PROJECT).profile
    path.write_text(report.to_html(profile), encoding="utf-8")
    return path


def _arrays(train: DatasetVersion, test: DatasetVersion) -> Arrays:
    """Load the split inside the step's run, so lineage records the versions it used."""
    import loopml.data

    train_frame = loopml.data.load(train.ref, project=PROJECT)
    test_frame = loopml.data.load(test.ref, project=PROJECT)
    features = [c for c in train_frame.columns if c not in ("id", "target")]
    return (
        train_frame[features].to_numpy(),
        test_frame[features].to_numpy(),
        train_frame["target"].to_numpy(),
        test_frame["target"].to_numpy(),
    )


def _finish(
    name: str, model: Any, arrays: Arrays, train: DatasetVersion, test: DatasetVersion
) -> dict[str, Any]:
    """Score on the test split and log it all to the step's run; return the scores."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    from loopml import tracking

    _, x_test, _, y_test = arrays
    predicted = model.predict(x_test)
    probability = model.predict_proba(x_test)[:, 1]
    scores = {
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "test_auc": float(roc_auc_score(y_test, probability)),
        "test_f1": float(f1_score(y_test, predicted)),
    }
    tracking.log_metrics(scores)
    tracking.set_tags({"model_class": type(model).__name__, "train": train.ref, "test": test.ref})
    with tempfile.TemporaryDirectory(prefix="loopml-demo-") as folder:
        path = Path(folder) / "model.pkl"
        path.write_bytes(pickle.dumps(model))
        tracking.log_artifact(path, "model.pkl")
    tracking.log_note(
        f"**{name}** on `{train.ref}` ({len(arrays[0])} rows), tested on `{test.ref}`; "
        f"both split from `{train.parents[0] if train.parents else '?'}`.\n\n"
        f"- test AUC: `{scores['test_auc']:.4f}`\n"
        f"- test accuracy: `{scores['test_accuracy']:.4f}`\n"
        f"- test F1: `{scores['test_f1']:.4f}`\n"
    )
    return {"model": name, **scores}
