"""Attribution (explainability) drift: has what the model relies on changed?

:func:`attribution_drift` computes global feature attributions on a seeded sample of the
reference and of the current window, and compares their rankings by NDCG, as SageMaker
Clarify's feature attribution drift monitor does
(https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-model-monitor-feature-attribution-drift.html)::

    NDCG = DCG / iDCG,  DCG = sum_i a(F'_i) / log2(i + 1),  iDCG = sum_i a(F_i) / log2(i + 1)

where ``F`` lists the features by reference attribution (descending), ``F'`` by current
attribution, and ``a(f)`` is a feature's *reference* attribution; k = all features.
Clarify flags a violation below 0.9 and so does the ``ndcg`` result here (on the point
estimate, as Clarify does; its ``interval`` is a percentile bootstrap over the sampled
rows of both windows, 200 resamples). Features tied in the current ranking share the
mean of their positions' discounts, so ties cannot change the score.

Attributions (``method``):

- ``"shap"``: mean |SHAP value| per feature from ``shap.TreeExplainer`` (summed over
  a classifier's classes), for tree models: scikit-learn trees and tree ensembles,
  XGBoost and LightGBM. Needs the ``shap`` package (``pip install loopml[monitoring]``)
  and numeric features.
- ``"permutation"``: label-free permutation importance, mean |f(x) - f(x with feature j
  permuted within the window)|, f the class probabilities (total variation distance)
  when the model has ``predict_proba``, else the prediction (a change of label counts
  1). Needs no ground truth and works for any model with ``predict``.
- ``"auto"`` (default): ``"shap"`` when shap is installed, the model is a tree model
  and every feature is numeric; ``"permutation"`` otherwise.

A loaded registry model (``loopml.models.load``) is explained through the estimator
the registry already loaded under its own trust rules (``LoadedModel.native``) on the
signature-checked input; nothing is loaded or unpickled here. The per-feature results
(method ``attribution_change``) give the relative change of each feature's share of the
total attribution (``inf`` for a feature with none on the reference that has some now,
stored as null); they are descriptive (threshold ``None``, status ``ok``): the
decision is the NDCG's. Defaults: ``sample`` = 2000 rows per window (at most
:data:`MAX_SAMPLE`), at least :data:`MIN_ROWS` rows per window.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from loopml.errors import InsufficientData, InvalidParameter, UnknownColumnError
from loopml.monitoring._results import CheckResult, Status

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAX_SAMPLE", "MIN_ROWS", "attribution_drift", "ndcg"]

MAX_SAMPLE = 100_000
"""The largest ``sample`` accepted (rows explained per window)."""
MIN_ROWS = 30
"""Fewest rows a window needs to be explained."""

_METHODS = ("auto", "shap", "permutation")
_RESAMPLES = 200
_BATCH_ROWS = 100_000
FloatArray = npt.NDArray[np.float64]


def attribution_drift(
    model: Any,
    reference: Any,
    current: Any,
    *,
    method: str = "auto",
    features: Sequence[str] | None = None,
    ndcg_threshold: float = 0.9,
    sample: int = 2000,
    seed: int = 0,
) -> list[CheckResult]:
    """Compare the model's feature attributions on ``reference`` and ``current`` (module doc).

    Args:
        model: Anything with ``predict(DataFrame)`` (and optionally ``predict_proba``),
            or a loaded registry model.
        reference: The reference rows (pandas DataFrame or pyarrow Table; only the
            sampled rows of a Table are converted).
        current: The current window's rows (same types).
        method: ``"auto"``, ``"shap"`` or ``"permutation"``.
        features: The feature columns; by default the model's signature inputs, else
            its ``feature_names_in_``, else the reference's columns.
        ndcg_threshold: Alert when the NDCG is below this (Clarify's 0.9).
        sample: Rows explained per window (a seeded sample without replacement).
        seed: Seed of the sampling, the permutations and the bootstrap.

    Returns:
        The ``ndcg`` result first, then one ``attribution_change`` result per feature.

    Raises:
        InvalidParameter: A bad argument, ``"shap"`` for a model it cannot explain.
        UnknownColumnError: A feature is missing from either window.
        InsufficientData: A window has fewer than :data:`MIN_ROWS` rows.
        ImportError: ``method="shap"`` without the shap package.

    Example:
        >>> import numpy as np, pandas as pd
        >>> from sklearn.tree import DecisionTreeRegressor
        >>> x = pd.DataFrame(np.random.default_rng(0).normal(size=(300, 2)), columns=["a", "b"])
        >>> model = DecisionTreeRegressor(max_depth=3).fit(x, x["a"])
        >>> attribution_drift(model, x, x, method="permutation")[0].status
        'ok'
    """
    _validate(method, ndcg_threshold, sample, seed)
    ref_frame, cur_frame = _frame(reference, "reference"), _frame(current, "current")
    names = _features(model, features, ref_frame, cur_frame)
    rng = np.random.default_rng(seed)
    ref_x, cur_x = _sample(ref_frame, names, sample, rng), _sample(cur_frame, names, sample, rng)
    native, prepare = _native(model)
    tree = _tree_model(native)
    chosen = _choose(method, tree, ref_x)
    if chosen == "shap":
        explain = _shap_explainer(tree)
        ref_a, cur_a = explain(prepare(ref_x)), explain(prepare(cur_x))
    else:
        ref_a, cur_a = _permutation(model, ref_x, rng), _permutation(model, cur_x, rng)
    return _results(names, ref_a, cur_a, chosen, ndcg_threshold, rng)


def ndcg(reference: Sequence[float], current: Sequence[float]) -> float:
    """NDCG of the current attribution ranking against the reference one (Clarify's).

    Args:
        reference: Each feature's reference attribution (the relevance), non-negative.
        current: Each feature's current attribution, in the same feature order.

    Returns:
        DCG / iDCG in [0, 1]; ``nan`` when every reference attribution is 0.

    Example:
        >>> round(ndcg([0.70, 0.50, 0.05], [0.10, 0.20, 0.70]), 3)  # Clarify's example
        0.688
    """
    return float(_ndcg(np.asarray(reference, dtype=np.float64), np.asarray([current], float))[0])


def _ndcg(relevance: FloatArray, scores: FloatArray) -> FloatArray:
    """NDCG of each row of ``scores`` ``(k, f)`` against one ``relevance`` ``(f,)``."""
    f = relevance.size
    peak = float(relevance.max(initial=0.0))
    if peak > 0:  # on a scale of 1: subnormal attributions would lose the sums' precision
        relevance = relevance / peak
    discount = 1.0 / np.log2(np.arange(2, f + 2))
    ideal = float(np.sort(relevance)[::-1] @ discount)
    out = np.empty(scores.shape[0])
    for row, score in enumerate(scores):
        order = np.argsort(-score, kind="stable")
        ranked = score[order]
        gains = np.empty(f)
        start = 0
        while start < f:  # tied scores share the mean discount of their positions
            end = start + 1
            while end < f and ranked[end] == ranked[start]:
                end += 1
            gains[start:end] = discount[start:end].mean()
            start = end
        out[row] = float(relevance[order] @ gains) / ideal if ideal > 0 else math.nan
    return out


def _validate(method: str, ndcg_threshold: float, sample: int, seed: int) -> None:
    if method not in _METHODS:
        raise InvalidParameter(
            "The 'method' parameter of attribution_drift must be one of "
            f"{', '.join(map(repr, _METHODS))}. Got {method!r} instead."
        )
    if (
        isinstance(ndcg_threshold, bool)
        or not isinstance(ndcg_threshold, float | int)
        or not 0.0 < ndcg_threshold <= 1.0
    ):
        raise InvalidParameter(
            "The 'ndcg_threshold' parameter of attribution_drift must be a float in (0, 1]. "
            f"Got {ndcg_threshold!r} instead."
        )
    for name, value, low, high in (
        ("sample", sample, MIN_ROWS, MAX_SAMPLE),
        ("seed", seed, 0, None),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise InvalidParameter(
                f"The '{name}' parameter of attribution_drift must be an int {bound}. "
                f"Got {value!r} instead."
            )


def _frame(data: Any, role: str) -> Any:
    """``data`` if it is a DataFrame or a pyarrow Table (converted only once sampled)."""
    import pandas as pd  # imported on use: importing loopml.monitoring stays cheap

    if isinstance(data, pd.DataFrame) or (
        hasattr(data, "column_names") and hasattr(data, "take") and hasattr(data, "to_pandas")
    ):
        return data
    raise InvalidParameter(
        f"The '{role}' parameter of attribution_drift must be a pandas DataFrame or a "
        f"pyarrow Table. Got {type(data).__name__} instead."
    )


def _columns(frame: Any) -> list[str]:
    names = frame.column_names if hasattr(frame, "column_names") else frame.columns
    return [str(c) for c in names]


def _features(model: Any, features: Sequence[str] | None, ref: Any, cur: Any) -> list[str]:
    if features is not None:
        if isinstance(features, str) or not features:
            raise InvalidParameter(
                "The 'features' parameter of attribution_drift must be a non-empty list of "
                f"column names. Got {features!r} instead."
            )
        names = [str(f) for f in features]
    else:
        signature = getattr(model, "signature", None)
        native = getattr(model, "native", model)
        if signature is not None and hasattr(signature, "input_names"):
            names = list(signature.input_names)
        elif getattr(native, "feature_names_in_", None) is not None:
            names = [str(f) for f in native.feature_names_in_]
        else:
            names = _columns(ref)
    for role, frame in (("reference", ref), ("current", cur)):
        known = tuple(_columns(frame))
        missing = tuple(n for n in names if n not in known)
        if missing:
            raise UnknownColumnError(
                f"The {role} window has no feature column {', '.join(map(repr, missing))}; "
                f"its columns are: {', '.join(known) or '(none)'}.",
                columns=missing,
                known=known,
            )
    return names


def _sample(frame: Any, names: list[str], size: int, rng: np.random.Generator) -> pd.DataFrame:
    n = len(frame)
    if n < MIN_ROWS:
        raise InsufficientData(
            f"attribution_drift needs at least {MIN_ROWS} rows per window. Got {n}.",
            needed=MIN_ROWS,
            got=n,
        )
    rows = np.sort(rng.choice(n, size=min(size, n), replace=False))
    sampled: pd.DataFrame
    if hasattr(frame, "column_names"):  # a pyarrow Table: convert the sampled rows only
        sampled = frame.select(names).take(rows).to_pandas()
    else:
        sampled = frame.iloc[rows][names].reset_index(drop=True)
    return sampled


def _native(model: Any) -> tuple[Any, Callable[[pd.DataFrame], Any]]:
    """The estimator to explain and how to turn a sample into the input it was fitted on."""
    loaded = sys.modules.get("loopml.registry._loaded")
    if loaded is not None and isinstance(model, loaded.LoadedModel):
        native = model.native
        # Flavors give a model fitted on an array (no feature names) the frame's values.
        by_name = getattr(native, "feature_names_in_", None) is not None
        array = not by_name and hasattr(native, "n_features_in_")
        return native, lambda x: model.prepare(x).to_numpy() if array else model.prepare(x)
    return model, lambda x: x


def _tree_model(native: Any) -> Any:
    """What ``shap.TreeExplainer`` should explain for ``native``, or None if not a tree model."""
    lgb_flavor = sys.modules.get("loopml.registry._flavors")
    if lgb_flavor is not None and isinstance(native, lgb_flavor.LightGBMModel):
        return native.booster
    lgb = sys.modules.get("lightgbm")
    if lgb is not None and isinstance(native, lgb.LGBMModel | lgb.Booster):
        return native.booster_ if isinstance(native, lgb.LGBMModel) else native
    xgb = sys.modules.get("xgboost")
    if xgb is not None and isinstance(native, xgb.XGBModel | xgb.Booster):
        return native
    if "sklearn" not in sys.modules:
        return None
    from sklearn import ensemble, tree

    kinds = (
        tree.BaseDecisionTree,
        ensemble.RandomForestClassifier,
        ensemble.RandomForestRegressor,
        ensemble.ExtraTreesClassifier,
        ensemble.ExtraTreesRegressor,
        ensemble.GradientBoostingClassifier,
        ensemble.GradientBoostingRegressor,
        ensemble.HistGradientBoostingClassifier,
        ensemble.HistGradientBoostingRegressor,
        ensemble.IsolationForest,
    )
    return native if isinstance(native, kinds) else None


def _choose(method: str, tree: Any, sample: pd.DataFrame) -> str:
    import pandas as pd

    numeric = all(
        pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t) for t in sample.dtypes
    )
    if method == "auto":
        installed = importlib.util.find_spec("shap") is not None
        return "shap" if installed and tree is not None and numeric else "permutation"
    if method == "shap" and (tree is None or not numeric):
        why = "the model is not a tree model" if tree is None else "a feature is not numeric"
        raise InvalidParameter(
            "The 'method' parameter of attribution_drift must be 'auto' or 'permutation' "
            f"when {why} (TreeExplainer explains numeric tree models). Got 'shap' instead."
        )
    return method


def _shap_explainer(tree: Any) -> Callable[[Any], FloatArray]:
    try:
        with warnings.catch_warnings():
            # shap's plotting modules warn about matplotlib deprecations on import.
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            shap = importlib.import_module("shap")
    except ImportError as exc:
        raise ImportError(
            "attribution_drift(method='shap') needs the shap package; install it with "
            "'pip install loopml[monitoring]' or use method='permutation'."
        ) from exc
    explainer = shap.TreeExplainer(tree)

    def explain(x: Any) -> FloatArray:
        with warnings.catch_warnings():
            # shap warns that LightGBM's binary output format changed; the shape is handled.
            warnings.filterwarnings("ignore", "LightGBM binary classifier", UserWarning)
            values = explainer.shap_values(x, check_additivity=False)
        stacked = np.abs(np.stack(values, axis=-1) if isinstance(values, list) else values)
        per_row: FloatArray = (stacked.sum(axis=-1) if stacked.ndim == 3 else stacked).astype(
            np.float64
        )
        return per_row

    return explain


def _permutation(model: Any, x: pd.DataFrame, rng: np.random.Generator) -> FloatArray:
    """Per-row |f(x) - f(x with column j permuted)|: shape ``(rows, features)``."""
    import pandas as pd

    proba = getattr(model, "has_proba", None)
    use_proba = (
        proba if isinstance(proba, bool) else callable(getattr(model, "predict_proba", None))
    )
    predict = model.predict_proba if use_proba else model.predict
    n, f = x.shape
    base = np.asarray(predict(x))
    out = np.empty((n, f))
    # Permuted copies of several features go to the model in one call (a call has a fixed
    # cost, large for models that start threads), at most _BATCH_ROWS rows at a time.
    per_call = max(1, _BATCH_ROWS // n)
    for first in range(0, f, per_call):
        columns = list(range(first, min(f, first + per_call)))
        copies = []
        for j in columns:
            shuffled = x.copy()
            name = x.columns[j]
            # set_axis keeps the column's dtype (categoricals too) and places it by position.
            shuffled[name] = x[name].iloc[rng.permutation(n)].set_axis(x.index)
            copies.append(shuffled)
        moved = np.asarray(predict(pd.concat(copies, ignore_index=True)))
        for k, j in enumerate(columns):
            out[:, j] = _distance(moved[k * n : (k + 1) * n], base, use_proba)
    return out


def _distance(moved: npt.NDArray[Any], base: npt.NDArray[Any], proba: bool) -> FloatArray:
    """Per row: total variation between probabilities, |difference| of numbers, or 1 for a
    changed label."""
    n = len(base)
    if proba:
        tv: FloatArray = 0.5 * np.abs(moved - base).reshape(n, -1).sum(axis=1)
        return tv
    if np.issubdtype(base.dtype, np.number) and base.dtype != np.bool_:
        gap: FloatArray = np.abs(moved - base).reshape(n, -1).sum(axis=1)
        return gap
    changed: FloatArray = (moved != base).reshape(n, -1).any(axis=1).astype(np.float64)
    return changed


def _results(
    names: list[str],
    ref_a: FloatArray,
    cur_a: FloatArray,
    method: str,
    threshold: float,
    rng: np.random.Generator,
) -> list[CheckResult]:
    ref_imp, cur_imp = ref_a.mean(axis=0), cur_a.mean(axis=0)
    detail: dict[str, Any] = {
        "reference": dict(zip(names, map(float, ref_imp), strict=True)),
        "current": dict(zip(names, map(float, cur_imp), strict=True)),
        "method": method,
        "reference_ranking": [names[i] for i in np.argsort(-ref_imp, kind="stable")],
        "current_ranking": [names[i] for i in np.argsort(-cur_imp, kind="stable")],
        "reference_rows": len(ref_a),
        "current_rows": len(cur_a),
    }
    if not ref_imp.sum() > 0:
        return [
            CheckResult(
                check="attribution_drift",
                column="",
                method="ndcg",
                statistic=None,
                threshold=threshold,
                status="no_data",
                message="attribution_drift not judged: the model's output does not change "
                "with any feature on the reference sample.",
                detail=detail,
            )
        ]
    score = float(_ndcg(ref_imp, cur_imp[None, :])[0])
    boot_ref = _resampled_means(ref_a, rng)
    boot_cur = _resampled_means(cur_a, rng)
    scores = np.array([_ndcg(r, c[None, :])[0] for r, c in zip(boot_ref, boot_cur, strict=True)])
    low, high = (float(v) for v in np.nanquantile(scores, [0.025, 0.975]))
    status: Status = "alert" if score < threshold else "ok"
    top_ref, top_cur = detail["reference_ranking"][0], detail["current_ranking"][0]
    message = (
        f"Attribution ranking NDCG {score:.3f} [{low:.3f}, {high:.3f}] "
        f"{'below' if status == 'alert' else 'at or above'} {threshold:g} ({method}); "
        f"top feature {top_ref!r} on the reference, {top_cur!r} now."
    )
    results = [
        CheckResult(
            check="attribution_drift",
            column="",
            method="ndcg",
            statistic=score,
            threshold=threshold,
            status=status,
            interval=(low, high),
            message=message,
            detail=detail,
        )
    ]
    ref_share, cur_share = ref_imp / ref_imp.sum(), _shares(cur_imp)
    ref_rank = {n: r + 1 for r, n in enumerate(detail["reference_ranking"])}
    cur_rank = {n: r + 1 for r, n in enumerate(detail["current_ranking"])}
    for i, name in enumerate(names):
        change = (cur_share[i] - ref_share[i]) / ref_share[i] if ref_share[i] > 0 else math.inf
        if ref_share[i] == 0 and cur_share[i] == 0:
            change = 0.0
        results.append(
            CheckResult(
                check="attribution_drift",
                column=name,
                method="attribution_change",
                statistic=float(change),
                threshold=None,
                status="ok",
                message=f"{name!r}: share of attribution {ref_share[i]:.1%} on the reference, "
                f"{cur_share[i]:.1%} now.",
                # Both rankings, but not the importance maps: those are the ndcg result's,
                # which the report draws once (not once per feature).
                detail={
                    "method": method,
                    "reference_ranking": detail["reference_ranking"],
                    "current_ranking": detail["current_ranking"],
                    "reference_rank": ref_rank[name],
                    "current_rank": cur_rank[name],
                    "reference_share": float(ref_share[i]),
                    "current_share": float(cur_share[i]),
                },
            )
        )
    return results


def _shares(importance: FloatArray) -> FloatArray:
    total = importance.sum()
    shares: FloatArray = importance / total if total > 0 else np.zeros_like(importance)
    return shares


def _resampled_means(values: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Column means of ``values`` over bootstrap resamples of its rows: ``(resamples, f)``."""
    n = len(values)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(_RESAMPLES)])
    means: FloatArray = counts @ values / n
    return means
