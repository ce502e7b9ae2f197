"""``loopml.autolog()``: log scikit-learn ``fit`` calls without changing the training code.

:func:`autolog` replaces the ``fit`` of every scikit-learn estimator class with a
wrapper that calls the original and records, in the active run (or a run of its
own), the estimator's params, its scores on the training data, the shape of the
input and the fitted model. ``autolog(disable=True)`` puts the originals back.

Logging is a courtesy: a failure while logging is reported through
:mod:`logging` and never reaches the caller's ``fit``; only the user's own
exception (from the original ``fit``) propagates.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import pickle
import platform
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.tracking._fluent import ActiveRun, active_run, get_client, start_run
from loopml.tracking._reserved import set_loopml_tags
from loopml.tracking._validate import MAX_KEY_LENGTH

__all__ = ["MODEL_DIGEST_TAG", "autolog"]

MODEL_DIGEST_TAG = "loopml.autolog.model_digest"

_log = logging.getLogger(__name__)

_MODEL_DIR = "model"
_PICKLE_FILE = "model.pkl"
_PICKLE_PROTOCOL = 5
_MODEL_META_FILE = "loopml-model.json"
_SCHEMA_FILE = "input_schema.json"


@dataclass(frozen=True)
class _Config:
    log_models: bool
    log_input_info: bool
    project: str | None


class _Depth(threading.local):
    # How many autologged fits are running in this thread: only the outermost one
    # logs, so a Pipeline or a search does not log each fit it makes of its steps.
    value = 0


_lock = threading.Lock()
_config: _Config | None = None
_originals: dict[type, Callable[..., Any]] = {}
_estimator_classes: list[type] | None = None
_depth = _Depth()
_reported: set[tuple[str, type[BaseException]]] = set()


def autolog(
    *,
    disable: bool = False,
    log_models: bool = True,
    log_input_info: bool = True,
    project: str | None = None,
) -> None:
    """Log every scikit-learn ``fit`` to loopml automatically.

    Once enabled, the outermost ``fit`` of any scikit-learn estimator (inner fits
    of a ``Pipeline`` or ``GridSearchCV`` are not logged separately) records:

    - params: ``estimator.get_params(deep=True)`` as text, with nested estimators
      shown by class name; for searches also ``best_<param>`` from ``best_params_``;
    - metrics on the training data: ``training_score`` and, for classifiers,
      ``training_accuracy``, ``training_f1``/``training_precision``/``training_recall``
      (weighted), ``training_log_loss`` and ``training_roc_auc`` (one-vs-rest when
      multiclass) if the model has ``predict_proba``; for regressors ``training_r2``,
      ``training_mae``, ``training_mse`` and ``training_rmse``; ``best_score`` for
      searches. ``sample_weight`` given to ``fit`` weights them; a metric that
      cannot be computed is left out;
    - tags ``estimator_class``, ``input_rows`` and ``input_columns``, and the
      artifact ``input_schema.json`` (column names and dtypes of a DataFrame,
      otherwise shape and dtype);
    - the artifact folder ``model`` holding ``model.pkl`` (pickle protocol 5) and
      ``loopml-model.json`` (flavor ``"sklearn"``, versions, estimator class).

    It logs into the active run and leaves that run open. Without an active run,
    it starts one named after the estimator class and ends it when ``fit``
    returns (finished) or raises (failed; the exception is re-raised). If the
    active run already holds one of the params with a different value (say, a
    second ``fit`` with another ``C``), this fit is logged in a child run of it
    instead, because params are immutable.

    Only ``fit`` is patched: ``fit_transform``/``fit_predict`` methods that do not
    call ``fit`` are not logged. Estimators fitted in worker threads of a search
    run with ``n_jobs`` and joblib's threading back-end may log on their own.

    Args:
        disable: restore the original ``fit`` methods and stop logging.
        log_models: store the fitted model as the artifact ``model``.
        log_input_info: record the input's shape as tags and ``input_schema.json``.
        project: project of the runs autolog starts itself (default
            ``LOOPML_PROJECT``); runs started by the caller keep their own.

    Example:
        >>> import loopml
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.linear_model import LogisticRegression
        >>> loopml.autolog()
        >>> X, y = load_iris(return_X_y=True, as_frame=True)
        >>> with loopml.start_run(name="iris") as run:
        ...     model = LogisticRegression(max_iter=200).fit(X, y)
        >>> loopml.get_run(run.id).metrics["training_accuracy"] > 0.9
        True
        >>> loopml.autolog(disable=True)
    """
    global _config
    with _lock:
        if disable:
            _config = None
            for cls, original in _originals.items():
                setattr(cls, "fit", original)  # noqa: B010 - the attribute is the point
            _originals.clear()
            return
        _config = _Config(log_models, log_input_info, project)
        for cls in _sklearn_estimator_classes():
            for owner in cls.__mro__:
                fit = owner.__dict__.get("fit")
                if owner in _originals or not inspect.isfunction(fit):
                    continue
                if not owner.__module__.startswith("sklearn"):
                    continue
                _originals[owner] = fit
                setattr(owner, "fit", _wrap(fit))  # noqa: B010


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
        config = _config
        if config is None or _depth.value > 0:
            return original(self, *args, **kwargs)
        _depth.value += 1
        try:
            return _logged_fit(config, original, self, args, kwargs)
        finally:
            _depth.value -= 1

    return fit


def _logged_fit(
    config: _Config,
    original: Callable[..., Any],
    estimator: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    params = _safely("read the estimator's params", _estimator_params, estimator) or {}
    opened = _safely("start a run", _open_run, config, estimator, params)
    if opened is None:
        return original(estimator, *args, **kwargs)
    run, owned = opened
    inputs = _safely("find the fit's inputs", _fit_inputs, original, estimator, args, kwargs)
    X, y, sample_weight = inputs or (None, None, None)
    _safely("log the params", lambda: get_client().log_params(run.id, params))
    _safely("log the input info", _log_input, config, run, estimator, X, y)
    try:
        result = original(estimator, *args, **kwargs)
    except BaseException as exc:
        if owned:
            status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
            _safely("end the run", run.end, status, exc)
        raise
    _safely("log the search's best params", _log_best_params, run, estimator)
    metrics = _safely("compute the metrics", _training_metrics, estimator, X, y, sample_weight)
    if metrics:
        _safely("log the metrics", lambda: get_client().log_metrics(run.id, metrics))
    if config.log_models:
        _safely("log the model", _log_model, run, estimator)
    if owned:
        _safely("end the run", run.end, "finished")
    return result


def _open_run(config: _Config, estimator: Any, params: Mapping[str, str]) -> tuple[ActiveRun, bool]:
    """Return the run to log into and whether this fit started it (and must end it)."""
    name = type(estimator).__name__
    active = active_run()
    if active is None:
        return start_run(name=name, project=config.project), True
    info = active.info
    if any(key in info.params and info.params[key] != value for key, value in params.items()):
        return start_run(name=name, project=info.project), True  # a child of ``active``
    return active, False


def _log_input(config: _Config, run: ActiveRun, estimator: Any, X: Any, y: Any) -> None:
    tags: dict[str, Any] = {"estimator_class": _qualified_name(type(estimator))}
    schema = _input_schema(X, y) if config.log_input_info else None
    if schema is not None:
        tags.update(input_rows=schema["rows"], input_columns=schema["columns"])
    get_client().set_tags(run.id, tags)
    if schema is not None:
        get_client().log_dict(run.id, schema, _SCHEMA_FILE)


def _log_best_params(run: ActiveRun, estimator: Any) -> None:
    best_params = getattr(estimator, "best_params_", None)
    if isinstance(best_params, Mapping):
        best = {f"best_{key}": value for key, value in best_params.items()}
        get_client().log_params(run.id, _text_params(best))


# -- what is logged -------------------------------------------------------------------


def _estimator_params(estimator: Any) -> dict[str, str]:
    return _text_params(estimator.get_params(deep=True))


def _text_params(params: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(key): str(_displayable(value))
        for key, value in params.items()
        if 0 < len(str(key)) <= MAX_KEY_LENGTH
    }


def _displayable(value: Any) -> Any:
    """``value`` with every estimator in it replaced by its class name."""
    if hasattr(value, "get_params") and not isinstance(value, type):
        return type(value).__name__
    if isinstance(value, list | tuple):
        return type(value)(_displayable(item) for item in value)
    if isinstance(value, dict):
        return {key: _displayable(item) for key, item in value.items()}
    return value


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


def _training_metrics(estimator: Any, X: Any, y: Any, sample_weight: Any) -> dict[str, float]:
    """Scores of the fitted estimator on its training data; any that fails is left out."""
    from sklearn import metrics as m
    from sklearn.base import is_classifier, is_regressor

    weight = {} if sample_weight is None else {"sample_weight": sample_weight}
    found: dict[str, float] = {}
    best_score: Any = getattr(estimator, "best_score_", None)
    if _is_number(best_score):
        found["best_score"] = float(best_score)

    def add(name: str, compute: Callable[[], Any]) -> None:
        try:
            value = compute()
        except Exception as exc:
            _log.debug("autolog skipped metric %s: %s", name, exc)
            return
        if _is_number(value):
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
            predicted = _safely_quiet(estimator.predict, X)
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
                _safely_quiet(estimator.predict_proba, X)
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
            predicted = _safely_quiet(estimator.predict, X)
            if predicted is not None:
                add("training_r2", lambda: m.r2_score(y, predicted, **weight))
                add("training_mae", lambda: m.mean_absolute_error(y, predicted, **weight))
                add("training_mse", lambda: m.mean_squared_error(y, predicted, **weight))
                if "training_mse" in found:
                    found["training_rmse"] = math.sqrt(found["training_mse"])
    return found


def _log_model(run: ActiveRun, estimator: Any) -> None:
    import sklearn

    from loopml._version import __version__ as loopml_version

    data = pickle.dumps(estimator, protocol=_PICKLE_PROTOCOL)
    meta = {
        "flavor": "sklearn",
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
        "loopml_version": loopml_version,
        "estimator_class": _qualified_name(type(estimator)),
        "pickle_file": _PICKLE_FILE,
        "pickle_protocol": _PICKLE_PROTOCOL,
    }
    with tempfile.TemporaryDirectory(prefix="loopml-autolog-") as folder:
        model_dir = Path(folder) / _MODEL_DIR
        model_dir.mkdir()
        (model_dir / _PICKLE_FILE).write_bytes(data)
        (model_dir / _MODEL_META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        logged = get_client().log_artifact(run.id, model_dir, _MODEL_DIR)
        # The registry trusts this pickle (runs:/RUN/model) only if it is the one autolog
        # logged: it checks the artifact's digest against this tag.
        set_loopml_tags(get_client(), run.id, {MODEL_DIGEST_TAG: logged.digest})


# -- helpers ----------------------------------------------------------------------------


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_number(value: Any) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _safely_quiet(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as exc:
        _log.debug("autolog could not call %s: %s", getattr(function, "__name__", function), exc)
        return None


def _safely(what: str, function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function``; on error, report it (once per kind of failure) and return None."""
    try:
        return function(*args)
    except Exception as exc:
        key = (what, type(exc))
        first = key not in _reported
        _reported.add(key)
        _log.log(
            logging.WARNING if first else logging.DEBUG,
            "loopml.autolog could not %s (the fit is not affected): %s: %s",
            what,
            type(exc).__name__,
            exc,
            exc_info=_log.isEnabledFor(logging.DEBUG),
        )
        return None
