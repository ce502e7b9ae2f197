"""``loopml.autolog()``: log training calls of scikit-learn, XGBoost and LightGBM automatically.

One module per framework patches that library's training entry points
(:mod:`._sklearn`, :mod:`._xgboost`, :mod:`._lightgbm`); :mod:`._common` holds what
they share, including the guard that makes only the outermost autologged call
in a thread log, whichever framework it belongs to. A framework's module (and
the library itself) is imported only when autolog is enabled for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Iterable

from loopml.errors import InvalidParameter
from loopml.tracking._autolog._common import CONFIGS, MODEL_DIGEST_TAG, Config

__all__ = ["FRAMEWORKS", "MODEL_DIGEST_TAG", "autolog"]

FRAMEWORKS: dict[str, tuple[str, str]] = {
    "sklearn": ("sklearn", "sklearn"),
    "xgboost": ("xgboost", "xgboost"),
    "lightgbm": ("lightgbm", "lightgbm"),
}
"""Framework name → (the library's import name, the loopml extra that installs it)."""

_MODULE = "loopml.tracking._autolog._{}"
_lock = threading.Lock()


def autolog(
    frameworks: Iterable[str] | None = None,
    *,
    disable: bool = False,
    log_models: bool = True,
    log_input_info: bool = True,
    project: str | None = None,
) -> None:
    """Log every training call of scikit-learn, XGBoost and LightGBM to loopml automatically.

    Once enabled, the outermost training call (inner fits of a ``Pipeline``,
    ``GridSearchCV`` or a wrapper's own helpers are not logged separately) records:

    **scikit-learn** (every estimator's ``fit``):

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

    **XGBoost** (``xgboost.train`` and the ``XGB*`` wrappers' ``fit``) and
    **LightGBM** (``lightgbm.train`` and the ``LGBM*`` wrappers' ``fit``):

    - params: the training params and ``num_boost_round`` (the wrappers: their
      ``get_params()``, as for scikit-learn, and the training metrics too);
    - every evaluation series (``evals`` / ``valid_sets`` / ``eval_set``) as a
      metric history ``DATASET-METRIC`` (``validation_0-logloss``), step = iteration;
    - ``best_iteration`` when early stopping ran; XGBoost's ``best_score``,
      LightGBM's ``best_DATASET-METRIC``;
    - the artifact ``feature_importance.json`` (feature names; ``weight`` and
      ``gain``, or LightGBM's ``split`` and ``gain``), the input's shape and
      feature names (tags and ``input_schema.json``);
    - the artifact folder ``model`` in the registry's flavor format (XGBoost's
      ``model.ubj``, LightGBM's ``model.txt``; no pickle), which
      ``loopml.models.register("runs:/RUN/model", ...)`` loads.

    It logs into the active run and leaves that run open. Without an active run,
    it starts one (named after the estimator class, or ``xgboost.train`` /
    ``lightgbm.train``) and ends it when training returns (finished) or raises
    (failed; the exception is re-raised). If the active run already holds one of
    the params with a different value (say, a second ``fit`` with another ``C``),
    the call is logged in a child run of it instead, because params are immutable.

    Logging is a courtesy: a failure while logging is reported through
    :mod:`logging` and never reaches the training call. Only the libraries'
    attributes are patched: ``from xgboost import train`` made *before*
    ``autolog()`` keeps the unpatched function. Estimators fitted in worker
    threads of a search run with ``n_jobs`` and joblib's threading back-end may
    log on their own.

    Args:
        frameworks: the frameworks to enable (or, with ``disable``, to disable)
            among ``"sklearn"``, ``"xgboost"`` and ``"lightgbm"``; default: every one
            that is installed. Others are left as they are.
        disable: restore the original functions and stop logging.
        log_models: store the trained model as the artifact ``model``.
        log_input_info: record the input's shape as tags and ``input_schema.json``.
        project: project of the runs autolog starts itself (default
            ``LOOPML_PROJECT``); runs started by the caller keep their own.

    Raises:
        InvalidParameter: a framework name is unknown, or a framework named
            explicitly is not installed (it says which extra installs it).

    Example:
        >>> import loopml
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.linear_model import LogisticRegression
        >>> loopml.autolog(frameworks=["sklearn"])
        >>> X, y = load_iris(return_X_y=True, as_frame=True)
        >>> with loopml.start_run(name="iris") as run:
        ...     model = LogisticRegression(max_iter=200).fit(X, y)
        >>> loopml.get_run(run.id).metrics["training_accuracy"] > 0.9
        True
        >>> loopml.autolog(disable=True)
    """
    chosen = _chosen(frameworks, disable=disable)
    config = Config(log_models, log_input_info, project)
    with _lock:
        for name in chosen:
            if disable:
                CONFIGS.pop(name, None)
                loaded = sys.modules.get(_MODULE.format(name))
                if loaded is not None:  # never enabled otherwise: nothing to restore
                    loaded.unpatch()
            else:
                importlib.import_module(_MODULE.format(name)).patch()
                CONFIGS[name] = config


def _chosen(frameworks: Iterable[str] | None, *, disable: bool) -> list[str]:
    """The frameworks a call acts on, checked; installed ones when none are named."""
    if frameworks is None:
        return [name for name in FRAMEWORKS if disable or _installed(name)]
    if isinstance(frameworks, str):
        raise InvalidParameter(
            f"The 'frameworks' parameter of autolog must be a list of names; got the string "
            f"{frameworks!r} (write [{frameworks!r}])."
        )
    names = list(frameworks)
    unknown = [name for name in names if name not in FRAMEWORKS]
    if unknown:
        raise InvalidParameter(
            f"The 'frameworks' parameter of autolog must name frameworks among "
            f"{', '.join(FRAMEWORKS)}; got {', '.join(map(repr, unknown))}."
        )
    missing = [name for name in names if not disable and not _installed(name)]
    if missing:
        extras = ",".join(FRAMEWORKS[name][1] for name in missing)
        raise InvalidParameter(
            f"autolog cannot enable {', '.join(missing)}: not installed; install it with "
            f"pip install 'loopml[{extras}]'."
        )
    return list(dict.fromkeys(names))


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(FRAMEWORKS[name][0]) is not None
    except (ImportError, ValueError):  # a broken or hidden installation is not one
        return False
