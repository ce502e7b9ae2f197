"""Data drift per column and the share of drifted columns: :func:`detect_drift`.

The decision rule. A check *alerts* when both hold:

1. its effect size exceeds the tolerance δ of its method (``DEFAULT_TOLERANCES`` in
   ``_drift_stats``: what is practically relevant, whatever the sample size), and
2. its p-value for H0 "the true effect is at most δ", adjusted with the
   Benjamini-Hochberg procedure across *every* check of the report (drift, missing
   rate and unseen category, all columns), is at most ``fdr`` (0.05): the evidence
   that the effect is real at this sample size, with the expected share of false
   alerts among all alerts bounded by ``fdr``.

So an irrelevant shift is never flagged at a million rows (its effect is below δ)
and a noisy large distance is not flagged at a hundred rows (the test of "effect > δ"
has no power there). A check with fewer than :data:`~loopml.monitoring._drift_stats.
MIN_VALUES` (30) non-missing values on either side (rows, for the missing rate) is
``no_data``, never ``ok``. ``CheckResult.p_value`` holds the adjusted p-value;
``detail["raw_p_value"]`` the raw one and ``detail["adjusted"]`` says so.

A column has drifted when any of its checks alerts. The dataset check
(``dataset_drift``, method ``share_drifted``) alerts when the share of drifted
columns among the columns judged reaches ``drift_share`` (0.5, Evidently's default).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from loopml.errors import InsufficientData, InvalidParameter, UnknownColumnError
from loopml.monitoring._drift_stats import (
    CATEGORICAL_METHODS,
    DEFAULT_TOLERANCES,
    MIN_VALUES,
    NUMERIC_METHODS,
    Effect,
    compare,
    missing_rate,
    unseen_share,
)
from loopml.monitoring._results import CheckResult, Status
from loopml.monitoring._sketch import (
    SketchKind,
    SketchLayout,
    TableSketch,
    frame_to_table,
    infer_layout,
    sketch,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DriftReport", "benjamini_hochberg", "detect_drift"]


@dataclass(frozen=True)
class DriftReport:
    """The outcome of :func:`detect_drift`.

    Attributes:
        checks: Per column: a ``drift`` check with its method, a ``missing_rate``
            check and, for categorical columns, an ``unseen_category`` check.
        dataset: The ``dataset_drift`` check (method ``share_drifted``).
        drifted_columns: Columns with at least one alerting check, in column order.
        reference_rows: Rows in the reference.
        current_rows: Rows in the current data.
    """

    checks: tuple[CheckResult, ...]
    dataset: CheckResult
    drifted_columns: tuple[str, ...]
    reference_rows: int
    current_rows: int


@dataclass(frozen=True)
class _Pending:
    check: str
    column: str
    method: str
    tolerance: float
    effect: Effect | None
    reason: str = ""


def detect_drift(
    reference: pa.Table | pd.DataFrame | TableSketch,
    current: pa.Table | pd.DataFrame | TableSketch,
    *,
    columns: Sequence[str] | None = None,
    methods: Mapping[str, str] | None = None,
    tolerances: Mapping[str, float] | None = None,
    fdr: float = 0.05,
    kinds: Mapping[str, SketchKind] | None = None,
    layout: Mapping[str, SketchLayout] | None = None,
    drift_share: float = 0.5,
) -> DriftReport:
    """Judge, column by column, whether ``current`` has drifted from ``reference``.

    See the module docstring for the rule. Tables are sketched in one pass each (the
    reference's layout, inferred from it unless given, bins both).

    Args:
        reference: The reference data, or its sketch.
        current: The current data, or its sketch (with the reference's layout).
        columns: The columns to judge; default every sketched (numeric or categorical)
            column of the reference.
        methods: Column name to drift method (``ks``, ``chi2``, ``jensen_shannon``,
            ``wasserstein``, ``psi``, ``hellinger``); default ``ks`` for numeric and
            ``chi2`` for categorical columns.
        tolerances: δ overrides, keyed by column name (that column's drift check) or by
            method name (``ks``, ..., ``missing_rate``, ``unseen_share``: every check of
            that method); a column name wins.
        fdr: The false discovery rate of the Benjamini-Hochberg correction, in (0, 1).
        kinds: Column name to ``numeric`` or ``categorical`` when inferring the layout
            (e.g. integer codes as categories).
        layout: Per-column layouts for sketching tables (default: inferred from the
            reference).
        drift_share: The share of drifted columns at which ``dataset_drift`` alerts.

    Returns:
        The :class:`DriftReport`.

    Raises:
        InsufficientData: The reference or the current data has no rows.
        UnknownColumnError: A column named in ``columns``, ``methods`` or
            ``tolerances`` is not in the reference (the message names the closest).
        InvalidParameter: Any other bad argument (unknown method, mismatched layouts).

    Example:
        >>> from loopml.monitoring import make_frame
        >>> reference = make_frame(2000, seed=1)
        >>> report = detect_drift(reference, make_frame(2000, seed=2, shifts=["mean"]))
        >>> report.drifted_columns
        ('num_00',)
    """
    if not 0.0 < fdr < 1.0:
        raise InvalidParameter(
            f"The 'fdr' parameter of detect_drift must be in (0, 1). Got {fdr!r} instead."
        )
    if not 0.0 < drift_share <= 1.0:
        raise InvalidParameter(
            "The 'drift_share' parameter of detect_drift must be in (0, 1]. "
            f"Got {drift_share!r} instead."
        )
    ref = _as_sketch(reference, layout, columns, kinds)
    wanted = _wanted_columns(columns, ref)
    cur = (
        _as_sketch(current, ref.layout, wanted, None)
        if not isinstance(current, TableSketch)
        else current
    )
    for name in wanted:
        got = cur.columns.get(name)
        if got is None or got.layout != ref.columns[name].layout:
            raise InvalidParameter(
                "The 'current' parameter of detect_drift must be sketched with the reference's "
                f"layout. Got {'no' if got is None else 'another'} layout for {name!r} instead."
            )
    for side, sk in (("reference", ref), ("current", cur)):
        if sk.rows == 0:
            raise InsufficientData(f"The {side} data of detect_drift has no rows.", needed=1, got=0)
    methods = dict(methods or {})
    tolerances = dict(tolerances or {})
    _check_names(methods, tolerances, ref)
    pending: list[_Pending] = []
    for name in wanted:
        pending.extend(_column_checks(name, ref, cur, methods, tolerances))
    checks = _decide(pending, fdr)
    drifted = tuple(dict.fromkeys(c.column for c in checks if c.status == "alert"))
    judged = {c.column for c in checks if c.status != "no_data"}
    return DriftReport(
        checks=checks,
        dataset=_dataset_check(drifted, judged, drift_share),
        drifted_columns=drifted,
        reference_rows=ref.rows,
        current_rows=cur.rows,
    )


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (step-up, monotone, capped at 1).

    Example:
        >>> benjamini_hochberg([0.01, 0.04, 0.03])
        [0.03, 0.04, 0.04]
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return [float(x) for x in out]


def _as_sketch(
    data: pa.Table | pd.DataFrame | TableSketch,
    layout: Mapping[str, SketchLayout] | None,
    columns: Sequence[str] | None,
    kinds: Mapping[str, SketchKind] | None,
) -> TableSketch:
    if isinstance(data, TableSketch):
        return data
    if not isinstance(data, pa.Table):
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            raise InvalidParameter(
                "The 'reference' and 'current' parameters of detect_drift must be a pyarrow "
                f"Table, a pandas DataFrame or a TableSketch. Got {type(data).__name__} instead."
            )
        data = frame_to_table(data)
    if layout is None:
        if columns is not None:
            _check_columns(columns, data.schema.names, "columns")
        layout = infer_layout(data, columns=columns, kinds=kinds)
    elif columns is not None:
        _check_columns(columns, list(layout), "columns")
    absent = [c for c in (columns or layout) if c not in data.schema.names]
    if absent:
        raise UnknownColumnError(
            f"The data given to detect_drift lacks column {absent[0]!r} of the reference.",
            tuple(absent),
            tuple(data.schema.names),
        )
    return sketch(data, layout, columns=columns)


def _wanted_columns(columns: Sequence[str] | None, ref: TableSketch) -> list[str]:
    if columns is None:
        return list(ref.columns)
    _check_columns(columns, list(ref.columns), "columns")
    return list(dict.fromkeys(columns))


def _check_columns(names: Sequence[str] | Mapping[str, Any], known: list[str], what: str) -> None:
    unknown = tuple(n for n in names if n not in known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownColumnError(
            f"The {what!r} parameter of detect_drift must name columns of the reference. "
            f"Got {unknown[0]!r} instead.{hint}",
            unknown,
            tuple(known),
        )


def _check_names(methods: dict[str, str], tolerances: dict[str, float], ref: TableSketch) -> None:
    _check_columns(methods, list(ref.columns), "methods")
    for column, method in methods.items():
        allowed = NUMERIC_METHODS if ref.columns[column].kind == "numeric" else CATEGORICAL_METHODS
        if method not in allowed:
            close = difflib.get_close_matches(str(method), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InvalidParameter(
                f"The 'methods' parameter of detect_drift must give {column!r} one of "
                f"{', '.join(allowed)}. Got {method!r} instead.{hint}"
            )
    keys = [*ref.columns, *DEFAULT_TOLERANCES]
    for key, value in tolerances.items():
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownColumnError(
                "The 'tolerances' parameter of detect_drift must be keyed by column or "
                f"method names. Got {key!r} instead.{hint}",
                (key,),
                tuple(ref.columns),
            )
        if not (isinstance(value, int | float) and 0.0 <= value < float("inf")):
            raise InvalidParameter(
                "The 'tolerances' parameter of detect_drift must hold finite numbers >= 0. "
                f"Got {value!r} for {key!r} instead."
            )


def _column_checks(
    name: str,
    ref: TableSketch,
    cur: TableSketch,
    methods: dict[str, str],
    tolerances: dict[str, float],
) -> list[_Pending]:
    r, c = ref.columns[name], cur.columns[name]
    method = methods.get(name) or ("ks" if r.kind == "numeric" else "chi2")
    tol = float(tolerances.get(name, tolerances.get(method, DEFAULT_TOLERANCES[method])))
    out: list[_Pending] = []
    if min(r.count, c.count) < MIN_VALUES:
        out.append(_Pending("drift", name, method, tol, None, _too_few(r.count, c.count)))
    else:
        out.append(_Pending("drift", name, method, tol, compare(method, r, c, tolerance=tol)))
    tol_m = float(tolerances.get("missing_rate", DEFAULT_TOLERANCES["missing_rate"]))
    if min(r.rows, c.rows) < MIN_VALUES:
        reason = _too_few(r.rows, c.rows, "rows")
        out.append(_Pending("missing_rate", name, "missing_rate", tol_m, None, reason))
    else:
        effect = missing_rate(r, c, tolerance=tol_m)
        out.append(_Pending("missing_rate", name, "missing_rate", tol_m, effect))
    if r.kind == "categorical":
        tol_u = float(tolerances.get("unseen_share", DEFAULT_TOLERANCES["unseen_share"]))
        if r.capped:
            reason = "the reference has more categories than the sketch counts exactly"
            out.append(_Pending("unseen_category", name, "unseen_share", tol_u, None, reason))
        elif min(r.count, c.count) < MIN_VALUES:
            reason = _too_few(r.count, c.count)
            out.append(_Pending("unseen_category", name, "unseen_share", tol_u, None, reason))
        else:
            effect = unseen_share(r, c, tolerance=tol_u)
            out.append(_Pending("unseen_category", name, "unseen_share", tol_u, effect))
    return out


def _too_few(n: int, m: int, what: str = "non-missing values") -> str:
    return f"too few {what} to judge ({n} reference, {m} current; {MIN_VALUES} needed per side)"


def _decide(pending: list[_Pending], fdr: float) -> tuple[CheckResult, ...]:
    judged = [p for p in pending if p.effect is not None]
    adjusted = benjamini_hochberg([p.effect.p_value for p in judged if p.effect is not None])
    adj_of = {id(p): a for p, a in zip(judged, adjusted, strict=True)}
    out: list[CheckResult] = []
    for p in pending:
        if p.effect is None:
            out.append(
                CheckResult(
                    check=p.check,
                    column=p.column,
                    method=p.method,
                    statistic=None,
                    threshold=p.tolerance,
                    status="no_data",
                    message=f"{p.column!r}: {p.check} not judged: {p.reason}",
                    detail={"reason": p.reason},
                )
            )
            continue
        e, adj = p.effect, adj_of[id(p)]
        status: Status = "alert" if e.statistic > p.tolerance and adj <= fdr else "ok"
        out.append(
            CheckResult(
                check=p.check,
                column=p.column,
                method=p.method,
                statistic=e.statistic,
                threshold=p.tolerance,
                status=status,
                p_value=adj,
                interval=e.interval,
                message=_message(p, e, adj, status, fdr),
                detail=e.detail | {"raw_p_value": e.p_value, "adjusted": True, "fdr": fdr},
            )
        )
    return tuple(out)


def _message(p: _Pending, e: Effect, adj: float, status: Status, fdr: float) -> str:
    head = f"{p.column!r} {p.check} ({p.method}) {e.statistic:.3g}"
    if status == "alert":
        return f"{head} > tolerance {p.tolerance:g}, adjusted p {adj:.2g} <= {fdr:g}"
    if e.statistic <= p.tolerance:
        return f"{head} within tolerance {p.tolerance:g}"
    return f"{head} > tolerance {p.tolerance:g} but not significant (adjusted p {adj:.2g})"


def _dataset_check(drifted: tuple[str, ...], judged: set[str], drift_share: float) -> CheckResult:
    if not judged:
        return CheckResult(
            check="dataset_drift",
            column="",
            method="share_drifted",
            statistic=None,
            threshold=drift_share,
            status="no_data",
            message="no column had enough data to judge",
            detail={"columns": 0, "drifted": []},
        )
    share = len(drifted) / len(judged)
    status: Status = "alert" if share >= drift_share else "ok"
    return CheckResult(
        check="dataset_drift",
        column="",
        method="share_drifted",
        statistic=share,
        threshold=drift_share,
        status=status,
        message=f"{len(drifted)} of {len(judged)} columns drifted ({share:.0%}; "
        f"the dataset drifts at {drift_share:.0%})",
        detail={"columns": len(judged), "drifted": list(drifted)},
    )
