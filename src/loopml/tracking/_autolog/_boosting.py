"""What XGBoost and LightGBM autolog share: the native ``train`` flow and what boosters report.

Both libraries report evaluation results as ``{data set: {metric: [value per
iteration]}}``; each series becomes a metric history ``DATASET-METRIC`` (say
``validation_0-logloss``) with step = iteration (0-based). Feature importances
go into the artifact ``feature_importance.json``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loopml.tracking._autolog import _sklearn
from loopml.tracking._autolog._common import (
    SCHEMA_FILE,
    Config,
    guarded,
    is_number,
    open_run,
    safely,
)
from loopml.tracking._fluent import ActiveRun, get_client
from loopml.tracking._records import Metric
from loopml.tracking._validate import MAX_KEY_LENGTH

__all__ = [
    "IMPORTANCE_FILE",
    "BoosterPatches",
    "eval_history",
    "log_best",
    "log_eval_history",
    "log_feature_importance",
    "log_input_schema",
    "logged_train",
]

IMPORTANCE_FILE = "feature_importance.json"

_BATCH = 1000  # metric points per write

LoggedTrain = Callable[[Config, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
"""Runs a library's native ``train`` under a run: (config, original, args, kwargs)."""
ModelLogger = Callable[[ActiveRun, Any], None]


class BoosterPatches:
    """The ``train`` function and wrapper ``fit`` methods one boosting library's autolog replaces.

    ``library.train`` is wrapped to call ``logged_train``; every ``fit`` defined by the
    library on the wrapper classes' MROs is wrapped to log like scikit-learn's autolog,
    with ``fit_details`` (evaluation histories, best iteration) and ``log_wrapper``
    (the model). Applying twice changes nothing; :meth:`undo` puts the originals back.
    """

    def __init__(
        self,
        library: str,
        wrappers: Sequence[str],
        logged_train: LoggedTrain,
        fit_details: ModelLogger,
        log_wrapper: ModelLogger,
    ) -> None:
        self.library = library
        self.wrappers = tuple(wrappers)
        self._logged_train = logged_train
        self._fit_details = fit_details
        self._log_wrapper = log_wrapper
        self._originals: dict[tuple[Any, str], Any] = {}

    def apply(self) -> None:
        """Wrap ``train`` and each wrapper class's own ``fit`` (idempotent)."""
        module: Any = importlib.import_module(self.library)
        if (module, "train") not in self._originals:
            self._originals[(module, "train")] = module.train
            module.train = self._wrap_train(module.train)
        for name in self.wrappers:
            for owner in getattr(module, name).__mro__:
                fit = owner.__dict__.get("fit")
                if (owner, "fit") in self._originals or not inspect.isfunction(fit):
                    continue
                if not owner.__module__.startswith(self.library):
                    continue
                self._originals[(owner, "fit")] = fit
                setattr(owner, "fit", self._wrap_fit(fit))  # noqa: B010 - the attribute is the point

    def undo(self) -> None:
        """Put the original ``train`` and ``fit`` methods back."""
        for (owner, attribute), original in self._originals.items():
            setattr(owner, attribute, original)
        self._originals.clear()

    def _wrap_train(self, original: Callable[..., Any]) -> Callable[..., Any]:
        framework, logged = self.library, self._logged_train

        @functools.wraps(original)
        def train(*args: Any, **kwargs: Any) -> Any:
            return guarded(
                framework,
                original,
                lambda config: logged(config, original, args, kwargs),
                args,
                kwargs,
            )

        return train

    def _wrap_fit(self, original: Callable[..., Any]) -> Callable[..., Any]:
        framework, details, log_model = self.library, self._fit_details, self._log_wrapper

        @functools.wraps(original)
        def fit(model: Any, *args: Any, **kwargs: Any) -> Any:
            return guarded(
                framework,
                original,
                lambda config: _sklearn.logged_fit(
                    config, original, model, args, kwargs, extras=details, log_model=log_model
                ),
                (model, *args),
                kwargs,
            )

        return fit


def logged_train(
    config: Config,
    name: str,
    params: Mapping[str, str],
    call: Callable[[], Any],
    details: Callable[[ActiveRun, Any], None],
    log_model: Callable[[ActiveRun, Any], None],
) -> Any:
    """Run a native ``train`` (``call``) and log it into the run :func:`open_run` picks.

    Args:
        config: what to log.
        name: the name of a run this call starts itself.
        params: the training params, as text.
        call: trains and returns the booster.
        details: logs what the booster reports (eval history, best iteration …).
        log_model: stores the booster as the artifact ``model``.

    Returns:
        What ``call`` returned; its exception, if it raised (the run it started is
        then failed, or killed by a ``KeyboardInterrupt``).
    """
    opened = safely("start a run", open_run, config, name, params)
    if opened is None:
        return call()
    run, owned = opened
    safely("log the params", lambda: get_client().log_params(run.id, params))
    try:
        booster = call()
    except BaseException as exc:
        if owned:
            status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
            safely("end the run", run.end, status, exc)
        raise
    safely("log the training details", details, run, booster)
    if config.log_models:
        safely("log the model", log_model, run, booster)
    if owned:
        safely("end the run", run.end, "finished")
    return booster


def eval_history(results: Any) -> dict[str, list[float]]:
    """``{DATASET-METRIC: values}`` from a ``{data set: {metric: values}}`` report.

    Keys longer than a metric key may be, and values that are not finite numbers
    (XGBoost's ``cv`` reports ``(mean, std)`` pairs), are left out.
    """
    history: dict[str, list[float]] = {}
    if not isinstance(results, Mapping):
        return history
    for data_name, metrics in results.items():
        if not isinstance(metrics, Mapping):
            continue
        for metric_name, values in metrics.items():
            key = f"{data_name}-{metric_name}"
            if len(key) > MAX_KEY_LENGTH or not isinstance(values, Sequence):
                continue
            if all(is_number(value) for value in values):
                history[key] = [float(value) for value in values]
    return history


def log_eval_history(run: ActiveRun, results: Any) -> None:
    """Log every series of an evaluation report as a metric history (step = iteration)."""
    points = [
        Metric(key, value, step)
        for key, values in eval_history(results).items()
        for step, value in enumerate(values)
    ]
    for start in range(0, len(points), _BATCH):
        get_client().log_batch(run.id, points[start : start + _BATCH])


def log_best(run: ActiveRun, metrics: Mapping[str, Any]) -> None:
    """Log those of ``metrics`` (best iteration, best scores) that are finite numbers."""
    found = {key: float(value) for key, value in metrics.items() if is_number(value)}
    if found:
        get_client().log_metrics(run.id, found)


def log_feature_importance(
    run: ActiveRun, features: Sequence[str] | None, importance: Mapping[str, Mapping[str, float]]
) -> None:
    """Log ``feature_importance.json``: the feature names and each kind of importance.

    Args:
        run: the run.
        features: the model's feature names in column order (None if it has none).
        importance: ``{kind ("gain", "weight", "split" …): {feature: importance}}``.
    """
    kinds = {
        kind: {str(feature): float(value) for feature, value in values.items() if is_number(value)}
        for kind, values in importance.items()
    }
    if features is None and not any(kinds.values()):
        return
    names = None if features is None else [str(feature) for feature in features]
    get_client().log_dict(run.id, {"features": names, "importance": kinds}, IMPORTANCE_FILE)


def log_input_schema(
    run: ActiveRun,
    kind: str,
    rows: int,
    names: Sequence[str] | None,
    types: Sequence[str] | None,
    columns: int,
) -> None:
    """Tag ``input_rows``/``input_columns`` and log ``input_schema.json`` for a native data set."""
    schema: dict[str, Any] = {"type": kind, "rows": int(rows), "columns": int(columns)}
    if names is not None:
        kinds = list(types) if types is not None and len(types) == len(names) else None
        schema["schema"] = [
            {"name": str(name), "dtype": None if kinds is None else str(kinds[i])}
            for i, name in enumerate(names)
        ]
    get_client().set_tags(run.id, {"input_rows": int(rows), "input_columns": int(columns)})
    get_client().log_dict(run.id, schema, SCHEMA_FILE)
