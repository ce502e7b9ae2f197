"""Measuring a version on evaluation data: predictions, metrics with intervals, latency."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidParameter, ModelError
from loopml.registry._policy import CheckOutcome

if TYPE_CHECKING:
    from loopml.registry._loaded import LoadedModel

__all__ = ["jsonable", "latency_p95", "metrics_of", "metrics_outcome", "predictions"]

_LATENCY_SAMPLES = 50


def predictions(model: LoadedModel, features: Any) -> tuple[Any, Any]:
    """The model's predictions and probabilities (None without ``predict_proba``).

    A version with a signature picks its own columns from ``features``; one without
    is given the columns its native model was fitted on, when it names them.

    Raises:
        SignatureError: the data does not match the signature.
        ModelError: the model could not predict on the data (its own error, explained).
    """
    from loopml.errors import LoopmlError

    features = _fitted_columns(model, features)
    try:
        pred = model.predict(features)
    except LoopmlError:
        raise
    except Exception as exc:  # the model's own library: say what it was given
        raise ModelError(
            f"Model {model.version.ref} could not predict on the evaluation data "
            f"({type(exc).__name__}: {exc}). It was given the columns "
            f"{list(getattr(features, 'columns', []))}; "
            + (
                "its signature selects the inputs, so check their values."
                if model.signature is not None
                else "it has no signature to pick its inputs: register it with "
                "input_example= (or drop the extra columns from the dataset)."
            )
        ) from exc
    try:
        proba = model.predict_proba(features)
    except ModelError:
        proba = None
    return pred, proba


def _fitted_columns(model: LoadedModel, features: Any) -> Any:
    """Without a signature, the columns the native model says it was fitted on."""
    names = getattr(model.native, "feature_names_in_", None)
    if model.signature is not None or names is None or not hasattr(features, "columns"):
        return features
    wanted = [str(name) for name in names]
    missing = [name for name in wanted if name not in features.columns]
    if missing:
        raise InvalidParameter(
            f"Model {model.version.ref} was fitted on columns {missing} that the evaluation "
            f"data lacks (columns: {list(features.columns)})."
        )
    return features[wanted]


def metrics_of(y_true: Any, pred: Any, proba: Any) -> dict[str, float]:
    """Classification metrics when the labels are discrete, else regression metrics."""
    import numpy as np
    from sklearn import metrics as m

    discrete = proba is not None or (
        np.issubdtype(np.asarray(y_true).dtype, np.integer) and len(np.unique(y_true)) <= 50
    )
    if discrete:
        out = {
            "accuracy": float(m.accuracy_score(y_true, pred)),
            "f1": float(m.f1_score(y_true, pred, average="weighted")),
        }
        if proba is not None:
            try:
                if proba.shape[1] == 2:
                    out["auc"] = float(m.roc_auc_score(y_true, proba[:, 1]))
                else:
                    out["auc"] = float(m.roc_auc_score(y_true, proba, multi_class="ovr"))
            except ValueError:  # one class only in this data
                pass
        return out
    error = np.asarray(pred, dtype=float) - np.asarray(y_true, dtype=float)
    return {
        "r2": float(m.r2_score(y_true, pred)),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }


_CONFIDENCE = 0.95


def metrics_outcome(
    data: str, y_true: Any, pred: Any, proba: Any, metrics: dict[str, float]
) -> CheckOutcome:
    """The evaluation's metrics with 95% bootstrap intervals, stored beside the checks."""
    from loopml.registry._stats import bootstrap_interval, get_metric

    described: dict[str, dict[str, float | None]] = {}
    for name, value in metrics.items():
        low = high = None
        try:
            scores = proba if get_metric(name).needs_proba else pred
            if scores is not None:
                low, high = bootstrap_interval(name, y_true, scores, confidence=_CONFIDENCE)
        except (InvalidParameter, ValueError):
            pass  # a metric without a bootstrap form keeps its point value
        described[name] = {"value": value, "low": low, "high": high, "confidence": _CONFIDENCE}
    return CheckOutcome(
        name="evaluation metrics",
        kind="evaluation",
        passed=True,
        reason=f"{len(metrics)} metrics on {data}, with {_CONFIDENCE:.0%} bootstrap intervals",
        details={"metrics": described},
    )


def latency_p95(model: LoadedModel, features: Any) -> float | None:
    """p95 of single-row predict time, in milliseconds."""
    import numpy as np

    if len(features) == 0:
        return None
    features = _fitted_columns(model, features)
    timings = []
    for i in range(min(_LATENCY_SAMPLES, len(features))):
        row = features.iloc[[i]]
        start = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 95))


def jsonable(value: Any) -> Any:
    import json

    return json.loads(
        json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )
