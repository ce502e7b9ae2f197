"""Autolog for scikit-learn: every estimator's ``fit``, and the flow other wrappers reuse.

:func:`patch` replaces the ``fit`` of every scikit-learn estimator class with a
wrapper that calls the original and records, in the active run (or a run of its
own), the estimator's params, its scores on the training data, the shape of the
input and the fitted model (see :func:`loopml.autolog`). :func:`unpatch` puts
the originals back. :func:`logged_fit` is that flow, reused by the XGBoost and
LightGBM scikit-learn wrappers with their own extras and model format.

Logging is a courtesy: a failure while logging is reported through
:mod:`logging` and never reaches the caller's ``fit``; only the user's own
exception (from the original ``fit``) propagates.
"""

from __future__ import annotations

import functools
import inspect
import math
import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loopml.tracking._autolog._common import (
    SCHEMA_FILE,
    Config,
    guarded,
    is_number,
    log,
    log_model_folder,
    open_run,
    qualified_name,
    safely,
    safely_quiet,
    text_params,
)
from loopml.tracking._fluent import ActiveRun, get_client

__all__ = ["FRAMEWORK", "logged_fit", "patch", "training_metrics", "unpatch"]

FRAMEWORK = "sklearn"

_PICKLE_FILE = "model.pkl"
_PICKLE_PROTOCOL = 5

_originals: dict[type, Callable[..., Any]] = {}
_estimator_classes: list[type] | None = None


def patch() -> None:
    """Wrap ``fit`` where each scikit-learn estimator class defines it (idempotent)."""
    for cls in _sklearn_estimator_classes():
        for owner in cls.__mro__:
            fit = owner.__dict__.get("fit")
            if owner in _originals or not inspect.isfunction(fit):
                continue
            if not owner.__module__.startswith("sklearn"):
                continue
            _originals[owner] = fit
            setattr(owner, "fit", _wrap(fit))  # noqa: B010 - the attribute is the point


def unpatch() -> None:
    """Put every original ``fit`` back."""
    for cls, original in _originals.items():
        setattr(cls, "fit", original)  # noqa: B010
    _originals.clear()


def _sklearn_estimator_classes() -> list[type]:
    # all_estimators() imports every scikit-learn module (seconds); do it once.
    global _estimator_classes
    if _estimator_classes is None:
        from sklearn.utils.discovery import all_estimators

        _estimator_classes = [cls for _, cls in all_estimators()]
    return _estimator_classes


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        return guarded(
            FRAMEWORK,
            original,
            lambda config: logged_fit(config, original, self, args, kwargs),
            (self, *args),
            kwargs,
        )

    return fit


def logged_fit(
    config: Config,
    original: Callable[..., Any],
    estimator: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    extras: Callable[[ActiveRun, Any], None] | None = None,
    log_model: Callable[[ActiveRun, Any], None] | None = None,
) -> Any:
    """Call ``original(estimator, *args, **kwargs)`` and log it as :func:`loopml.autolog` says.

    Args:
        config: what to log.
        original: the unpatched ``fit``.
        estimator: the estimator being fitted.
        args: the positional arguments of ``fit`` after ``self``.
        kwargs: its keyword arguments.
        extras: logs what a library adds (eval metrics …) once the fit returned.
        log_model: stores the fitted model (default: pickled, flavor ``sklearn``).
    """
    params = safely("read the estimator's params", _estimator_params, estimator) or {}
    opened = safely("start a run", open_run, config, type(estimator).__name__, params)
    if opened is None:
        return original(estimator, *args, **kwargs)
    run, owned = opened
    inputs = safely("find the fit's inputs", _fit_inputs, original, estimator, args, kwargs)
    X, y, sample_weight = inputs or (None, None, None)
    safely("log the params", lambda: get_client().log_params(run.id, params))
    safely("log the input info", _log_input, config, run, estimator, X, y)
    try:
        result = original(estimator, *args, **kwargs)
    except BaseException as exc:
        if owned:
            status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
            safely("end the run", run.end, status, exc)
        raise
    safely("log the search's best params", _log_best_params, run, estimator)
    metrics = safely("compute the metrics", training_metrics, estimator, X, y, sample_weight)
    if metrics:
        safely("log the metrics", lambda: get_client().log_metrics(run.id, metrics))
    if extras is not None:
        safely("log the library's training details", extras, run, estimator)
    if config.log_models:
        safely("log the model", log_model or _log_model, run, estimator)
    if owned:
        safely("end the run", run.end, "finished")
    return result


def _log_input(config: Config, run: ActiveRun, estimator: Any, X: Any, y: Any) -> None:
    tags: dict[str, Any] = {"estimator_class": qualified_name(type(estimator))}
    schema = _input_schema(X, y) if config.log_input_info else None
    if schema is not None:
        tags.update(input_rows=schema["rows"], input_columns=schema["columns"])
    get_client().set_tags(run.id, tags)
    if schema is not None:
        get_client().log_dict(run.id, schema, SCHEMA_FILE)


def _log_best_params(run: ActiveRun, estimator: Any) -> None:
    best_params = getattr(estimator, "best_params_", None)
    if isinstance(best_params, Mapping):
        best = {f"best_{key}": value for key, value in best_params.items()}
        get_client().log_params(run.id, text_params(best))


# -- what is logged -------------------------------------------------------------------


def _estimator_params(estimator: Any) -> dict[str, str]:
    return text_params(estimator.get_params(deep=True))


def _fit_inputs(
    fit: Callable[..., Any], estimator: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, Any, Any]:
    """Return the ``X``, ``y`` and ``sample_weight`` this ``fit`` call was given."""
    try:
        signature = inspect.signature(fit)
        bound = signature.bind_partial(estimator, *args, **kwargs).arguments
    except (TypeError, ValueError):
        return (args[0] if args else kwargs.get("X")), kwargs.get("y"), None
    names = list(signature.parameters)
    X = bound.get(names[1]) if len(names) > 1 else None
    y = bound.get("y", bound.get("Y"))
    sample_weight = bound.get("sample_weight")
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD and sample_weight is None:
            sample_weight = bound.get(name, {}).get("sample_weight")
    return X, y, sample_weight


def _input_schema(X: Any, y: Any) -> dict[str, Any] | None:
    """Shape and types of ``X`` (never iterates it: it may be a one-shot iterator)."""
    schema: dict[str, Any]
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        rows, columns = X.shape
        schema = {
            "type": "dataframe",
            "rows": int(rows),
            "columns": int(columns),
            "schema": [{"name": str(n), "dtype": str(t)} for n, t in X.dtypes.items()],
        }
    elif getattr(X, "shape", None) is not None:
        shape = [int(size) for size in X.shape]
        schema = {
            "type": type(X).__name__,
            "rows": shape[0] if shape else 1,
            "columns": shape[1] if len(shape) > 1 else 1,
            "shape": shape,
            "dtype": str(getattr(X, "dtype", None)),
        }
    elif isinstance(X, list | tuple):
        first: Any = X[0] if X else None
        wide = isinstance(first, list | tuple)
        schema = {
            "type": type(X).__name__,
            "rows": len(X),
            "columns": len(first) if wide else 1,
            "dtype": type(first).__name__,
        }
    else:
        return None
    if y is not None and getattr(y, "shape", None) is not None:
        schema["target"] = {
            "name": None if getattr(y, "name", None) is None else str(y.name),
            "shape": [int(size) for size in y.shape],
            "dtype": str(getattr(y, "dtype", None)),
        }
    return schema


def training_metrics(estimator: Any, X: Any, y: Any, sample_weight: Any) -> dict[str, float]:
    """Scores of the fitted estimator on its training data; any that fails is left out."""
    from sklearn import metrics as m
    from sklearn.base import is_classifier, is_regressor

    weight = {} if sample_weight is None else {"sample_weight": sample_weight}
    found: dict[str, float] = {}
    best_score: Any = getattr(estimator, "best_score_", None)
    if is_number(best_score):
        found["best_score"] = float(best_score)

    def add(name: str, compute: Callable[[], Any]) -> None:
        try:
            value = compute()
        except Exception as exc:
            log.debug("autolog skipped metric %s: %s", name, exc)
            return
        if is_number(value):
            found[name] = float(value)

    # These scores are ours, not the user's: their warnings (e.g. an undefined
    # precision) would only be noise coming out of the user's fit().
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if y is None:
            add("training_score", lambda: estimator.score(X, **weight))
            return found
        add("training_score", lambda: estimator.score(X, y, **weight))
        if is_classifier(estimator):
            predicted = safely_quiet(estimator.predict, X)
            if predicted is not None:
                add("training_accuracy", lambda: m.accuracy_score(y, predicted, **weight))
                for name, scorer in (
                    ("f1", m.f1_score),
                    ("precision", m.precision_score),
                    ("recall", m.recall_score),
                ):
                    add(
                        f"training_{name}",
                        functools.partial(
                            scorer, y, predicted, average="weighted", zero_division=0, **weight
                        ),
                    )
            proba: Any = (
                safely_quiet(estimator.predict_proba, X)
                if hasattr(estimator, "predict_proba")
                else None
            )
            if getattr(proba, "ndim", 0) == 2:
                classes = getattr(estimator, "classes_", None)
                add("training_log_loss", lambda: m.log_loss(y, proba, labels=classes, **weight))
                if proba.shape[1] == 2:
                    add("training_roc_auc", lambda: m.roc_auc_score(y, proba[:, 1], **weight))
                else:
                    add(
                        "training_roc_auc",
                        lambda: m.roc_auc_score(
                            y, proba, multi_class="ovr", labels=classes, **weight
                        ),
                    )
        elif is_regressor(estimator):
            predicted = safely_quiet(estimator.predict, X)
            if predicted is not None:
                add("training_r2", lambda: m.r2_score(y, predicted, **weight))
                add("training_mae", lambda: m.mean_absolute_error(y, predicted, **weight))
                add("training_mse", lambda: m.mean_squared_error(y, predicted, **weight))
                if "training_mse" in found:
                    found["training_rmse"] = math.sqrt(found["training_mse"])
    return found


def _log_model(run: ActiveRun, estimator: Any) -> None:
    import sklearn

    data = pickle.dumps(estimator, protocol=_PICKLE_PROTOCOL)
    meta = {
        "flavor": "sklearn",
        "sklearn_version": sklearn.__version__,
        "estimator_class": qualified_name(type(estimator)),
        "pickle_file": _PICKLE_FILE,
        "pickle_protocol": _PICKLE_PROTOCOL,
    }

    def write(folder: Path) -> None:
        (folder / _PICKLE_FILE).write_bytes(data)

    # The registry trusts this pickle (runs:/RUN/model) only if it is the one autolog
    # logged: log_model_folder records the folder's digest for it to check.
    log_model_folder(run, write, meta)
