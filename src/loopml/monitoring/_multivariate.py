"""Multivariate drift: can a classifier tell the reference rows from the current ones?

:func:`domain_classifier_drift` labels reference rows 0 and current rows 1, fits a
gradient-boosted classifier with stratified K-fold cross-validation and measures the
out-of-fold ROC AUC. Without drift no classifier beats a coin (AUC 0.5, whatever the
data); a joint change that no single column shows (a correlation that flips sign with
unchanged marginals, a new combination of values) lets the trees separate the two sides.

The decision is an effect size *and* evidence, as for the per-column checks:

* the effect size is the AUC, judged against ``threshold`` (0.55 by default). An AUC
  of 0.55 is what a mean shift of 0.18 standard deviations of one normal column gives
  (AUC = Φ(d/√2)); below that the two samples overlap so much that a model trained on
  one behaves on the other as on fresh data from the same source, so it is no reason
  to act. It also keeps the detector quiet on no-shift data at any sample size: the
  out-of-fold AUC of the trees on identical sources sits at or just below 0.5;
* the evidence is the 95 % DeLong interval of the AUC computed on the pooled
  out-of-fold scores: the check alerts when the interval's *lower* bound exceeds the
  threshold, so a small sample with a lucky AUC of 0.6 is not enough. ``p_value`` is
  the one-sided p-value of "the AUC is at most the threshold" (it is below 0.025
  exactly when the check alerts). The interval treats the fold models' scores as one
  scorer's; fold-to-fold differences in calibration only lower the pooled AUC, which
  errs on the quiet side; the per-fold AUCs are in ``detail["folds"]``.

Both sides are sampled to the same size (at most ``sample`` rows each) by row
position: the rows kept are those whose seeded 64-bit hash of their position is among
the smallest, so the sample depends on the data's order and the seed only, never on
chance or on how the data was split into batches, and the cost is bounded at any size.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data._sketches import hash_uint64
from loopml.errors import InsufficientData, InvalidParameter
from loopml.monitoring._results import CheckResult, Status

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_CATEGORIES",
    "MAX_SAMPLE",
    "MIN_ROWS",
    "delong_interval",
    "domain_classifier_drift",
]

#: Fewest rows each side needs: below this the interval is too wide to mean anything.
MIN_ROWS = 50
#: Largest ``sample`` accepted: beyond it fitting costs minutes and the interval is
#: already narrower than any tolerance worth setting.
MAX_SAMPLE = 500_000
#: Categories kept per column (the most frequent over both samples); the rest share
#: one "(other)" code. HistGradientBoosting takes at most 255 codes per feature.
MAX_CATEGORIES = 254
_MAX_FOLDS = 20
_Z95 = statistics.NormalDist().inv_cdf(0.975)
_CHECK = "domain_classifier_drift"

F64 = npt.NDArray[np.float64]


def domain_classifier_drift(
    reference: pd.DataFrame | pa.Table,
    current: pd.DataFrame | pa.Table,
    *,
    columns: Sequence[str] | None = None,
    sample: int = 20_000,
    folds: int = 5,
    threshold: float = 0.55,
    seed: int = 0,
) -> CheckResult:
    """Judge whether the current rows differ jointly from the reference rows.

    Args:
        reference: The reference data (a pandas DataFrame or an Arrow table).
        current: The current data, with the same columns.
        columns: The columns to compare; by default every column of ``reference``
            of a numeric, boolean, string or dictionary (categorical) type, skipping
            others (timestamps differ between windows by construction). Leave out
            identifiers and anything else that differs between the two on purpose.
        sample: Most rows taken from each side; both sides are sampled to the
            smaller of their sizes and ``sample``.
        folds: Cross-validation folds.
        threshold: The tolerated AUC, in ``(0.5, 1)``.
        seed: Seeds the row sample, the folds and the classifier.

    Returns:
        One ``multivariate_drift`` result (method ``domain_auc``): the out-of-fold
        AUC, its 95 % interval, ``alert`` when the interval's lower bound exceeds
        ``threshold``. ``detail`` holds ``auc``, the per-fold AUCs (``folds``), the
        rows compared (``rows``, both sides), ``columns`` and ``skipped``.

    Raises:
        InvalidParameter: A parameter out of range, an unknown column, a column of
            a type that cannot be compared, or inputs that are not tables.
        InsufficientData: Either side has fewer than :data:`MIN_ROWS` rows.

    Example:
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> ref = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)})
        >>> cur = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)})
        >>> domain_classifier_drift(ref, cur).status
        'ok'
    """
    _check_int("sample", sample, MIN_ROWS, MAX_SAMPLE)
    _check_int("folds", folds, 2, _MAX_FOLDS)
    _check_int("seed", seed, 0, 2**63 - 1)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0.5 < threshold < 1.0
    ):
        raise InvalidParameter(
            f"The 'threshold' parameter of {_CHECK} must be a float in the range "
            f"(0.5, 1.0). Got {threshold!r} instead."
        )
    ref_n, cur_n = _rows("reference", reference), _rows("current", current)
    if min(ref_n, cur_n) < MIN_ROWS:
        side, got = ("reference", ref_n) if ref_n < cur_n else ("current", cur_n)
        raise InsufficientData(
            f"{_CHECK} needs at least {MIN_ROWS} rows on each side; the {side} has {got}.",
            needed=MIN_ROWS,
            got=got,
        )
    chosen, skipped = _columns(reference, current, columns)
    m = min(ref_n, cur_n, sample)
    ref = _sample(reference, chosen, m, seed)
    cur = _sample(current, chosen, m, seed + 1)
    features, categorical = _encode(ref, cur, chosen)
    labels = np.concatenate([np.zeros(m, dtype=np.int8), np.ones(m, dtype=np.int8)])
    scores, fold_aucs = _out_of_fold_scores(features, labels, categorical, folds, seed)
    auc, se = _delong(scores[labels == 1], scores[labels == 0])
    low, high = max(0.0, auc - _Z95 * se), min(1.0, auc + _Z95 * se)
    if se > 0:
        p_value = 1.0 - statistics.NormalDist().cdf((auc - threshold) / se)
    else:
        p_value = 0.0 if auc > threshold else 1.0
    status: Status = "alert" if low > threshold else "ok"
    verdict = "can" if status == "alert" else "cannot"
    message = (
        f"A classifier {verdict} tell the current rows from the reference beyond the "
        f"tolerance: out-of-fold AUC {auc:.3f} (95 % interval {low:.3f}-{high:.3f}, "
        f"tolerance {threshold:g}) on {m:,} + {m:,} rows of {len(chosen)} columns."
    )
    detail: dict[str, Any] = {
        "auc": auc,
        "folds": fold_aucs,
        "rows": 2 * m,
        "reference_rows": ref_n,
        "current_rows": cur_n,
        "columns": chosen,
        "skipped": skipped,
        "interval": "delong",
    }
    return CheckResult(
        check="multivariate_drift",
        column="",
        method="domain_auc",
        statistic=auc,
        threshold=float(threshold),
        status=status,
        p_value=p_value,
        interval=(low, high),
        message=message,
        detail=detail,
    )


def delong_interval(positive: F64, negative: F64) -> tuple[float, float, float]:
    """The ROC AUC of scores and its 95 % DeLong interval (clipped to ``[0, 1]``).

    Args:
        positive: Scores of the rows labelled 1.
        negative: Scores of the rows labelled 0.

    Returns:
        ``(auc, low, high)``.
    """
    auc, se = _delong(positive, negative)
    return auc, max(0.0, auc - _Z95 * se), min(1.0, auc + _Z95 * se)


def _delong(positive: F64, negative: F64) -> tuple[float, float]:
    """The AUC and DeLong's standard error, in the midrank form (Sun and Xu, 2014).

    Ties count a half.
    """
    from scipy.stats import rankdata

    m, n = len(positive), len(negative)
    combined = rankdata(np.concatenate([positive, negative]))
    ranks_pos = combined[:m]
    ranks_neg = combined[m:]
    auc = float((ranks_pos.sum() - m * (m + 1) / 2) / (m * n))
    # Each row's share of the other side it outranks (its "placement").
    v_pos = (ranks_pos - rankdata(positive)) / n
    v_neg = 1.0 - (ranks_neg - rankdata(negative)) / m
    var = float(np.var(v_pos, ddof=1) / m + np.var(v_neg, ddof=1) / n)
    return auc, math.sqrt(max(var, 0.0))


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameter(
            f"The '{name}' parameter of {_CHECK} must be an int in the range "
            f"[{low}, {high}]. Got {value!r} instead."
        )


def _is_pandas(data: object) -> bool:
    # Checked by module name so that Arrow-only callers never import pandas.
    return type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame"


def _rows(name: str, data: object) -> int:
    if isinstance(data, pa.Table) or _is_pandas(data):
        return int(data.shape[0])  # type: ignore[attr-defined]
    raise InvalidParameter(
        f"The '{name}' parameter of {_CHECK} must be a pandas DataFrame or a pyarrow "
        f"Table. Got {type(data).__name__} instead."
    )


def _names(data: pd.DataFrame | pa.Table) -> list[str]:
    if isinstance(data, pa.Table):
        return list(data.column_names)
    return [str(c) for c in data.columns]


def _comparable(kind: pa.DataType) -> bool:
    return _categorical(kind) or pa.types.is_null(kind) or _numeric(kind)


def _numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    )


def _categorical(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)
    )


def _schema(data: pd.DataFrame | pa.Table, names: list[str]) -> dict[str, pa.DataType]:
    if isinstance(data, pa.Table):
        return {name: data.schema.field(name).type for name in names}
    # Types from a few rows: enough to know a column's kind without converting it all.
    return {f.name: f.type for f in _to_arrow(data.iloc[:1000][names]).schema}


def _columns(
    reference: pd.DataFrame | pa.Table,
    current: pd.DataFrame | pa.Table,
    columns: Sequence[str] | None,
) -> tuple[list[str], list[str]]:
    ref_names, cur_names = _names(reference), _names(current)
    if columns is None:
        wanted = ref_names
    elif isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise InvalidParameter(
            f"The 'columns' parameter of {_CHECK} must be a sequence of column names "
            f"or None. Got {columns!r} instead."
        )
    else:
        wanted = list(dict.fromkeys(columns))
    missing = [c for c in wanted if c not in ref_names or c not in cur_names]
    if columns is not None and missing:
        raise InvalidParameter(
            f"The 'columns' parameter of {_CHECK} must name columns of both tables. "
            f"Got {missing!r}, missing from the "
            f"{'reference' if any(c not in ref_names for c in missing) else 'current'} data."
        )
    present = [c for c in wanted if c not in missing]
    kinds = _schema(reference, present)
    chosen = [c for c in present if _comparable(kinds[c])]
    if columns is not None and len(chosen) < len(present):
        bad = {c: str(kinds[c]) for c in present if c not in chosen}
        raise InvalidParameter(
            f"The 'columns' parameter of {_CHECK} must name numeric, boolean, string or "
            f"categorical columns. Got {bad} instead."
        )
    if not chosen:
        raise InvalidParameter(
            f"The 'columns' parameter of {_CHECK} must leave at least one numeric, "
            f"boolean, string or categorical column present in both tables. Got none of "
            f"{ref_names!r}."
        )
    return chosen, [c for c in wanted if c not in chosen]


def _positions(rows: int, m: int, seed: int) -> npt.NDArray[np.int64]:
    """The positions of the ``m`` rows whose seeded position hash is smallest, in order."""
    salt = hash_uint64(np.array([seed], dtype=np.uint64))[0]
    hashes = hash_uint64(np.arange(rows, dtype=np.uint64) ^ salt)
    if m >= rows:
        return np.arange(rows, dtype=np.int64)
    # The hash is a bijection of distinct positions, so there are no ties to break.
    return np.sort(np.argpartition(hashes, m - 1)[:m]).astype(np.int64)


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidParameter(
            f"The data given to {_CHECK} must have one type per column. Got {exc} instead."
        ) from exc


def _sample(data: pd.DataFrame | pa.Table, names: list[str], m: int, seed: int) -> pa.Table:
    keep = _positions(int(data.shape[0]), m, seed)
    if isinstance(data, pa.Table):
        return data.select(names).take(pa.array(keep))
    return _to_arrow(data.iloc[keep][names])


def _encode(ref: pa.Table, cur: pa.Table, names: list[str]) -> tuple[F64, list[bool]]:
    """One float matrix of both samples (reference rows first); NaN marks a missing value."""
    features = np.empty((ref.num_rows + cur.num_rows, len(names)), dtype=np.float64)
    categorical = []
    for j, name in enumerate(names):
        values = _both(name, ref.column(name), cur.column(name))
        is_category = pa.types.is_large_string(values.type)
        categorical.append(is_category)
        if is_category:
            features[:, j] = _category_codes(values)
        else:
            # Nulls become NaN, which the trees route on their own (missingness is signal);
            # infinities, which the trees refuse, become the largest finite values.
            big = np.finfo(np.float64).max
            features[:, j] = np.clip(values.to_numpy(zero_copy_only=False), -big, big)
    return features, categorical


def _both(name: str, ref: pa.ChunkedArray, cur: pa.ChunkedArray) -> pa.ChunkedArray:
    """Both sides' values as one column of one type: float64 or (categories) large_string.

    The sides may differ in physical type (a pandas categorical against plain strings,
    integers against floats, a column of nulls only); they may not differ in kind.
    """
    sides = []
    kinds = {_kind(ref.type), _kind(cur.type)} - {"null"}
    if len(kinds) > 1 or not (_comparable(ref.type) and _comparable(cur.type)):
        raise InvalidParameter(
            f"The column {name!r} given to {_CHECK} must be numeric, boolean, string or "
            "categorical, the same kind on both sides. "
            f"Got {ref.type} in the reference and {cur.type} in the current data instead."
        )
    target = pa.large_string() if kinds == {"category"} else pa.float64()
    for side in (ref, cur):
        if pa.types.is_dictionary(side.type):
            side = side.cast(side.type.value_type)
        sides.extend(pc.cast(side, target, safe=False).chunks)
    return pa.chunked_array(sides, type=target)


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_null(kind):
        return "null"
    return "category" if _categorical(kind) else "number"


def _category_codes(values: pa.ChunkedArray) -> F64:
    """Codes of the most frequent categories of both samples, one shared code for the rest.

    The codes come from both samples together, so a value has one code on both sides
    and a category only the current data has is a category like any other.
    """
    counts = pc.value_counts(values.drop_null())
    kept = counts.field("values")
    if len(counts) > MAX_CATEGORIES:
        # Most frequent first; ties by value, so the choice does not depend on row order.
        order = pc.sort_indices(
            pa.table({"n": counts.field("counts"), "v": kept}),
            sort_keys=[("n", "descending"), ("v", "ascending")],
        )
        kept = kept.take(order[:MAX_CATEGORIES])
    codes = pc.index_in(values, value_set=kept).to_numpy(zero_copy_only=False)
    codes = np.asarray(codes, dtype=np.float64)  # nulls (missing or rare) are NaN here
    rare = np.isnan(codes) & ~np.asarray(values.is_null().to_numpy(zero_copy_only=False))
    codes[rare] = float(MAX_CATEGORIES)
    return codes


def _out_of_fold_scores(
    features: F64, labels: npt.NDArray[np.int8], categorical: list[bool], folds: int, seed: int
) -> tuple[F64, list[float]]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    scores = np.empty(len(labels), dtype=np.float64)
    fold_aucs: list[float] = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    for train, test in splitter.split(features, labels):
        model = HistGradientBoostingClassifier(
            max_iter=50,
            learning_rate=0.2,
            max_leaf_nodes=15,
            categorical_features=np.array(categorical, dtype=bool),
            # A fixed number of rounds: the same work and result whatever the data.
            early_stopping=False,
            random_state=seed % 2**32,
        )
        # One OpenMP thread: a monitor shares the machine with serving and other checks,
        # and OpenMP's spinning threads run several times slower on a busy machine
        # than one thread does (measured: 7 s against 1.2 s for one fit at load 5 on 2 cores).
        with threadpool_limits(limits=1, user_api="openmp"):
            model.fit(features[train], labels[train])
            scores[test] = model.predict_proba(features[test])[:, 1]
        fold_aucs.append(float(roc_auc_score(labels[test], scores[test])))
    return scores, fold_aucs
