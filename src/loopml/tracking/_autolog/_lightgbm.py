"""Autolog for LightGBM: ``lightgbm.train`` and the scikit-learn wrappers' ``fit``.

``lightgbm.train`` (the attribute: ``lgb.train`` after ``import lightgbm as
lgb``, or ``from lightgbm import train`` made after :func:`patch`) logs the
params and ``num_boost_round``, every ``valid_sets`` series as a metric history
(``DATASET-METRIC``, step = iteration; recorded by adding
``lightgbm.record_evaluation`` to the callbacks), ``best_iteration`` when early
stopping ran and ``best_DATASET-METRIC`` (the scores at the best or last
iteration), the feature importances (``split`` and ``gain``), the input's shape
and feature names, and the ``Booster`` as the artifact ``model`` in the
registry's ``lightgbm`` flavor format (``model.txt`` + ``lightgbm.json``).

``LGBMClassifier``/``LGBMRegressor``/``LGBMRanker`` ``fit`` logs what
scikit-learn's autolog logs (params, training metrics, input schema) plus the
evaluation histories, best iteration/scores and importances; the model is the
fitted wrapper in the same format (with a classifier's class labels). The
wrapper's own call of LightGBM's training function is not logged again.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from loopml.tracking._autolog import _boosting
from loopml.tracking._autolog._common import (
    Config,
    log_model_folder,
    qualified_name,
    text_params,
)
from loopml.tracking._fluent import ActiveRun, get_client

__all__ = ["FRAMEWORK", "patch", "unpatch"]

FRAMEWORK = "lightgbm"

_WRAPPERS = ("LGBMModel", "LGBMClassifier", "LGBMRegressor", "LGBMRanker")
# The registry's lightgbm flavor restores these classes (most derived first).
_KNOWN = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel")
_MODEL_FILE = "model.txt"
_IMPORTANCE_KINDS = ("split", "gain")


def patch() -> None:
    """Wrap ``lightgbm.train`` and each wrapper class's own ``fit`` (idempotent)."""
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
    import lightgbm

    signature = inspect.signature(original)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return original(*args, **kwargs)  # the user's mistake: let LightGBM say so
    arguments = bound.arguments
    params = arguments.get("params")
    found: dict[str, Any] = dict(params) if isinstance(params, Mapping) else {}
    found["num_boost_round"] = arguments.get(
        "num_boost_round", signature.parameters["num_boost_round"].default
    )
    results: dict[str, Any] = {}
    arguments["callbacks"] = [
        *(arguments.get("callbacks") or ()),
        lightgbm.record_evaluation(results),
    ]
    train_set = arguments.get("train_set")

    def details(run: ActiveRun, booster: Any) -> None:
        get_client().set_tags(run.id, {"estimator_class": qualified_name(type(booster))})
        _boosting.log_eval_history(run, results)
        _log_booster_details(run, booster, booster.best_iteration, booster.best_score)
        if config.log_input_info and train_set is not None:
            names = train_set.get_feature_name()
            _boosting.log_input_schema(
                run,
                type(train_set).__name__,
                train_set.num_data(),
                names,
                None,
                train_set.num_feature(),
            )

    return _boosting.logged_train(
        config,
        "lightgbm.train",
        text_params(found),
        lambda: original(*bound.args, **bound.kwargs),
        details,
        lambda run, booster: _log_model(run, booster, "Booster", None, type(booster)),
    )


# -- the scikit-learn wrappers ------------------------------------------------------------


def _fit_details(run: ActiveRun, model: Any) -> None:
    _boosting.log_eval_history(run, model.evals_result_)
    _log_booster_details(run, model.booster_, model.best_iteration_, model.best_score_)


def _log_wrapper(run: ActiveRun, model: Any) -> None:
    import lightgbm

    known = {getattr(lightgbm, name): name for name in _KNOWN}
    cls = next(known[owner] for owner in type(model).__mro__ if owner in known)
    classes = getattr(model, "classes_", None) if cls == "LGBMClassifier" else None
    _log_model(run, model.booster_, cls, classes, type(model))


# -- shared ------------------------------------------------------------------------------


def _log_booster_details(
    run: ActiveRun, booster: Any, best_iteration: Any, best_score: Any
) -> None:
    """Best iteration (early stopping only: LightGBM reports 0 otherwise), scores, importances."""
    best: dict[str, Any] = {}
    if isinstance(best_iteration, int) and best_iteration > 0:
        best["best_iteration"] = best_iteration
    if isinstance(best_score, Mapping):
        for data_name, scores in best_score.items():
            if isinstance(scores, Mapping):
                best.update({f"best_{data_name}-{key}": value for key, value in scores.items()})
    _boosting.log_best(run, best)
    names = [str(name) for name in booster.feature_name()]
    importance = {
        kind: dict(zip(names, booster.feature_importance(importance_type=kind), strict=True))
        for kind in _IMPORTANCE_KINDS
    }
    _boosting.log_feature_importance(run, names, importance)


def _log_model(run: ActiveRun, booster: Any, cls: str, classes: Any, model_type: type) -> None:
    """Log a booster as the artifact ``model`` in the registry's ``lightgbm`` flavor format.

    The booster is saved at its best iteration when early stopping found one,
    which is what the wrapper predicts with.
    """
    import lightgbm

    description: dict[str, Any] = {"class": cls, "lightgbm_version": lightgbm.__version__}
    if classes is not None:
        description["classes"] = np.asarray(classes).tolist()
        description["classes_dtype"] = np.asarray(classes).dtype.str

    def write(folder: Path) -> None:
        booster.save_model(str(folder / _MODEL_FILE))
        (folder / "lightgbm.json").write_text(json.dumps(description, indent=2, sort_keys=True))

    meta = {
        "flavor": FRAMEWORK,
        "lightgbm_version": lightgbm.__version__,
        "estimator_class": qualified_name(model_type),
    }
    log_model_folder(run, write, meta)
