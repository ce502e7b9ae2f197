"""Autolog for XGBoost: ``xgboost.train`` and the scikit-learn wrappers' ``fit``.

``xgboost.train`` (the attribute: ``xgb.train`` after ``import xgboost as xgb``,
or ``from xgboost import train`` made after :func:`patch`) logs the params,
``num_boost_round`` and the early-stopping settings, every ``evals`` series as a
metric history (``DATASET-METRIC``, step = iteration), ``best_iteration`` and
``best_score`` when early stopping ran, the feature importances (``weight`` and
``gain``), the input's shape and feature names, and the ``Booster`` as the
artifact ``model`` in the registry's ``xgboost`` flavor format (``model.ubj`` +
``xgboost.json``), so ``register("runs:/RUN/model", ...)`` loads it without
unpickling anything.

``XGBClassifier``/``XGBRegressor``/``XGBRanker``/``XGBRF*`` ``fit`` logs what
scikit-learn's autolog logs (params, training metrics, input schema) plus the
``eval_set`` histories, best iteration/score and importances; the model is the
fitted wrapper in the same format. The wrapper's own call of XGBoost's training
function is not logged again.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loopml.tracking._autolog import _boosting
from loopml.tracking._autolog._common import (
    Config,
    log_model_folder,
    qualified_name,
    safely_quiet,
    text_params,
)
from loopml.tracking._fluent import ActiveRun, get_client

__all__ = ["FRAMEWORK", "patch", "unpatch"]

FRAMEWORK = "xgboost"

_WRAPPERS = (
    "XGBModel",
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBRFClassifier",
    "XGBRFRegressor",
)
# The registry's xgboost flavor restores these classes (most derived first).
_KNOWN = (
    "XGBRFClassifier",
    "XGBRFRegressor",
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBModel",
)
_MODEL_FILE = "model.ubj"
_IMPORTANCE_KINDS = ("weight", "gain")


def patch() -> None:
    """Wrap ``xgboost.train`` and each wrapper class's own ``fit`` (idempotent)."""
    _patches().apply()


def unpatch() -> None:
    """Put the original ``train`` and ``fit`` methods back."""
    _patches().undo()


@functools.cache
def _patches() -> _boosting.BoosterPatches:
    return _boosting.BoosterPatches(FRAMEWORK, _WRAPPERS, _logged_train, _fit_details, _log_wrapper)


def _logged_train(
    config: Config, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    signature = inspect.signature(original)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return original(*args, **kwargs)  # the user's mistake: let XGBoost say so
    arguments = bound.arguments
    params = text_params(_train_params(signature, arguments))
    results = arguments.get("evals_result")
    if results is None:
        results = {}
        arguments["evals_result"] = results
    dtrain = arguments.get("dtrain")

    def details(run: ActiveRun, booster: Any) -> None:
        get_client().set_tags(run.id, {"estimator_class": qualified_name(type(booster))})
        _boosting.log_eval_history(run, results)
        _log_booster_details(run, booster)
        if config.log_input_info and dtrain is not None:
            _boosting.log_input_schema(
                run,
                type(dtrain).__name__,
                dtrain.num_row(),
                dtrain.feature_names,
                dtrain.feature_types,
                dtrain.num_col(),
            )

    return _boosting.logged_train(
        config,
        "xgboost.train",
        params,
        lambda: original(*bound.args, **bound.kwargs),
        details,
        lambda run, booster: _log_model(run, booster, "Booster"),
    )


def _train_params(signature: inspect.Signature, arguments: Mapping[str, Any]) -> dict[str, Any]:
    params = arguments.get("params")
    found: dict[str, Any] = dict(params) if isinstance(params, Mapping) else {}
    for name in ("num_boost_round", "early_stopping_rounds", "maximize"):
        value = arguments.get(name, signature.parameters[name].default)
        if value is not None:
            found[name] = value
    return found


# -- the scikit-learn wrappers ------------------------------------------------------------


def _fit_details(run: ActiveRun, model: Any) -> None:
    _boosting.log_eval_history(run, safely_quiet(model.evals_result))
    _log_booster_details(run, model)


def _log_wrapper(run: ActiveRun, model: Any) -> None:
    import xgboost

    known = {getattr(xgboost, name): name for name in _KNOWN}
    cls = next(known[owner] for owner in type(model).__mro__ if owner in known)
    _log_model(run, model, cls)


# -- shared ------------------------------------------------------------------------------


def _log_booster_details(run: ActiveRun, model: Any) -> None:
    """Best iteration/score (early stopping only) and importances of a Booster or wrapper."""
    best: dict[str, Any] = {}
    for name in ("best_iteration", "best_score"):
        try:
            best[name] = getattr(model, name)
        except AttributeError:  # "only defined when early stopping is used"
            continue
    _boosting.log_best(run, best)
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    importance = {
        kind: safely_quiet(functools.partial(booster.get_score, importance_type=kind)) or {}
        for kind in _IMPORTANCE_KINDS
    }
    _boosting.log_feature_importance(run, booster.feature_names, importance)


def _log_model(run: ActiveRun, model: Any, cls: str) -> None:
    """Log ``model`` as the artifact ``model`` in the registry's ``xgboost`` flavor format."""
    import xgboost

    def write(folder: Path) -> None:
        model.save_model(folder / _MODEL_FILE)
        description = {"class": cls, "file": _MODEL_FILE, "xgboost_version": xgboost.__version__}
        (folder / "xgboost.json").write_text(json.dumps(description, indent=2, sort_keys=True))

    meta = {
        "flavor": FRAMEWORK,
        "xgboost_version": xgboost.__version__,
        "estimator_class": qualified_name(type(model)),
    }
    log_model_folder(run, write, meta)
