"""The prediction-log frame as the performance checks read it: labels, classes, segments.

Shared by :mod:`loopml.monitoring._performance` (realised metrics) and
:mod:`loopml.monitoring._estimated` (CBPE). The frame has one row per predicted row:
``ts`` (int ms), ``route``, ``model_version``, ``prediction``, optional ``proba_<class>``
columns and ``label`` (missing until feedback arrives). A pandas DataFrame or a pyarrow
Table is accepted.

Everything taken from the frame is validated here: a label of the wrong type is an
:class:`~loopml.errors.InvalidParameter` naming the column and an example value, never
a silent coercion. Class values are compared as text keys (``1``, ``1.0`` and ``True``
are the key ``"1"``), so ``proba_1`` is the probability of the label ``1``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopml.errors import InvalidParameter
from loopml.monitoring._results import Status

__all__ = [
    "METRIC_ALIASES",
    "SEGMENT_KEYS",
    "Bound",
    "Segment",
    "Task",
    "bad",
    "bounds",
    "class_keys",
    "judge",
    "labelled_mask",
    "metric_names",
    "numbers",
    "proba_columns",
    "proba_matrix",
    "segments",
    "to_pandas",
    "window_ms",
]

Task = Literal["classification", "regression"]
SEGMENT_KEYS: tuple[str, ...] = ("window", "route", "model_version")
"""What a frame can be split by; a segment is one combination of their values."""

METRIC_ALIASES: Mapping[str, str] = {"roc_auc": "auc"}
"""Other names accepted for the registry's metric names (results use the registry's)."""

_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_WINDOW = re.compile(r"^([1-9][0-9]{0,5})([smhdw])$")
# A window so small that the frame splits into more segments than this is a mistake,
# and would produce more results than anyone can read or store.
MAX_SEGMENTS = 10_000
PROBA_PREFIX = "proba_"


@dataclass(frozen=True)
class Segment:
    """One part of the frame judged on its own.

    Attributes:
        name: ``window=2026-12-01T00:00:00+00:00, route=primary:credit@champion`` ...;
            ``""`` when the frame is not split.
        rows: Positions of the segment's rows in the frame.
        window_start: Start of the window, ms since the epoch (the first row's time when
            the frame is not split by window).
        window_end: End of the window, exclusive.
    """

    name: str
    rows: npt.NDArray[np.intp]
    window_start: int
    window_end: int


@dataclass(frozen=True)
class Bound:
    """What a metric is judged against: ``value op bound`` is within tolerance."""

    op: Literal[">=", "<="]
    value: float
    source: str


def bad(parameter: str, function: str, expected: str, got: object) -> InvalidParameter:
    """The house validation error: names the parameter, the expectation and what was got."""
    return InvalidParameter(
        f"The '{parameter}' parameter of {function} must be {expected}. Got {got!r} instead."
    )


def to_pandas(frame: object, parameter: str, function: str) -> pd.DataFrame:
    """A pandas DataFrame (a copy is not made) from a DataFrame or a pyarrow Table."""
    if isinstance(frame, pd.DataFrame):
        return frame
    to_frame = getattr(frame, "to_pandas", None)
    if type(frame).__module__.startswith("pyarrow") and callable(to_frame):
        converted = to_frame()
        if isinstance(converted, pd.DataFrame):
            return converted
    raise bad(parameter, function, "a pandas DataFrame or a pyarrow Table", type(frame).__name__)


def window_ms(window: str | None, function: str) -> int | None:
    """``"1d"`` -> 86400000 (units ``s m h d w``); ``None`` stays ``None``."""
    if window is None:
        return None
    match = _WINDOW.match(window) if isinstance(window, str) else None
    if match is None:
        raise bad(
            "window", function, "a duration such as '30m', '6h', '1d' or '1w', or None", window
        )
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def metric_names(
    metrics: Sequence[str], allowed: Sequence[str], function: str, why: str
) -> list[str]:
    """The registry's names of ``metrics``, each one of ``allowed``, without repeats."""
    if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics:
        raise bad("metrics", function, "a non-empty sequence of metric names", metrics)
    names: list[str] = []
    for metric in metrics:
        name = METRIC_ALIASES.get(metric, metric) if isinstance(metric, str) else metric
        if name not in allowed:
            raise bad("metrics", function, f"names among {', '.join(allowed)} ({why})", metric)
        if name not in names:
            names.append(name)
    return names


def proba_columns(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """``(column, class key)`` of every ``proba_<class>`` column, in the frame's order."""
    return [
        (str(c), str(c)[len(PROBA_PREFIX) :])
        for c in frame.columns
        if str(c).startswith(PROBA_PREFIX) and len(str(c)) > len(PROBA_PREFIX)
    ]


def proba_matrix(
    frame: pd.DataFrame, columns: Sequence[tuple[str, str]]
) -> npt.NDArray[np.float64]:
    """The ``proba_`` columns as a float matrix, each value checked to be a probability.

    Raises:
        InvalidParameter: A value that is not a number in ``[0, 1]``.
    """
    names = [c for c, _ in columns]
    try:
        scores = frame[names].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameter(
            f"The {', '.join(names)} columns must hold probabilities in [0, 1]; one holds "
            "something that is not a number."
        ) from None
    bad_at = ~(np.isfinite(scores) & (scores >= 0.0) & (scores <= 1.0))
    if bad_at.any():
        row, column = np.argwhere(bad_at)[0]
        raise InvalidParameter(
            f"The {names[column]!r} column must hold probabilities in [0, 1]. "
            f"Got {float(scores[row, column])!r} instead."
        )
    return scores


def labelled_mask(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Which rows have a label (``None``, ``NaN`` and ``NA`` are "not yet")."""
    if "label" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return cast(npt.NDArray[np.bool_], frame["label"].notna().to_numpy(dtype=bool))


def _require(frame: pd.DataFrame, column: str, function: str) -> pd.Series[Any]:
    if column not in frame.columns:
        raise InvalidParameter(
            f"The frame given to {function} has no {column!r} column; it has "
            f"{', '.join(map(str, frame.columns[:20]))}."
        )
    return frame[column]


def _example(values: npt.NDArray[Any], bad_at: npt.NDArray[np.bool_]) -> Any:
    return values[np.flatnonzero(bad_at)[0]]


def class_keys(values: pd.Series[Any], column: str) -> npt.NDArray[np.str_]:
    """Class labels as text keys; ``1``, ``1.0`` and ``True`` all become ``"1"``.

    Raises:
        InvalidParameter: A value that is no class label (a fraction, a list, NaN),
            or text mixed with numbers; the message names the column and the value.
    """
    whole = pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
    if whole and not values.hasnans:  # the common case, without a Python loop over the rows
        return values.to_numpy(dtype=np.int64).astype(str)
    raw = values.to_numpy(dtype=object)
    keys = np.empty(len(raw), dtype=object)
    kinds = np.empty(len(raw), dtype="U4")
    for i, value in enumerate(raw):
        if isinstance(value, str):
            keys[i], kinds[i] = value, "text"
        elif isinstance(value, bool | np.bool_ | int | np.integer) or (
            isinstance(value, float | np.floating) and math.isfinite(value) and value.is_integer()
        ):
            keys[i], kinds[i] = str(int(value)), "num"
        else:
            raise InvalidParameter(
                f"The {column!r} column must hold class labels (text, booleans or whole "
                f"numbers) for a classification task. Got {value!r} "
                f"({type(value).__name__}) instead."
            )
    if len(set(kinds.tolist())) > 1:
        raise InvalidParameter(
            f"The {column!r} column mixes text ({_example(raw, kinds == 'text')!r}) and "
            f"numbers ({_example(raw, kinds == 'num')!r}); send labels of one type."
        )
    return keys.astype(str)


def numbers(values: pd.Series[Any], column: str) -> npt.NDArray[np.float64]:
    """Finite real numbers of a regression column.

    Raises:
        InvalidParameter: Text, a boolean, a non-finite or non-numeric value; the
            message names the column and the value.
    """
    raw = values.to_numpy(dtype=object)
    ok = np.fromiter(
        (
            isinstance(v, int | float | np.integer | np.floating)
            and not isinstance(v, bool | np.bool_)
            and math.isfinite(v)
            for v in raw
        ),
        dtype=bool,
        count=len(raw),
    )
    if not ok.all():
        value = _example(raw, ~ok)
        raise InvalidParameter(
            f"The {column!r} column must hold finite numbers for a regression task. "
            f"Got {value!r} ({type(value).__name__}) instead."
        )
    return raw.astype(np.float64)


def segments(
    frame: pd.DataFrame, by: Sequence[str], window: int | None, function: str
) -> list[Segment]:
    """Split the frame by window start, route and model version (as ``by`` asks).

    Windows are aligned on the Unix epoch (``1d`` windows start at 00:00 UTC), so the
    same row always falls in the same window whoever reads it.
    """
    if isinstance(by, str) or not isinstance(by, Sequence) or not set(by) <= set(SEGMENT_KEYS):
        raise bad("by", function, f"a sequence of names among {', '.join(SEGMENT_KEYS)}", by)
    if "window" in by and window is None:
        raise bad("window", function, "a duration when 'by' includes 'window'", window)
    ts = _require(frame, "ts", function)
    if isinstance(ts.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(ts.dtype):
        if ts.hasnans:
            raise InvalidParameter(f"The 'ts' column given to {function} has missing times.")
        stamps = ts.dt.tz_localize(None) if isinstance(ts.dtype, pd.DatetimeTZDtype) else ts
        stamps = stamps.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    elif pd.api.types.is_integer_dtype(ts.dtype):
        stamps = ts.to_numpy(dtype=np.int64)
    else:
        raise InvalidParameter(
            f"The 'ts' column given to {function} must hold integer milliseconds since "
            f"the epoch (or timestamps). Got dtype {ts.dtype} instead."
        )
    keys: dict[str, npt.NDArray[Any]] = {}
    for key in by:
        if key == "window":
            keys[key] = stamps // cast(int, window) * cast(int, window)
        else:
            keys[key] = _require(frame, key, function).fillna("").astype(str).to_numpy()
    if not keys:
        return [_segment("", np.arange(len(frame)), stamps, None)] if len(frame) else []
    groups = pd.DataFrame(keys).groupby(list(keys), sort=True).indices
    if len(groups) > MAX_SEGMENTS:
        raise InvalidParameter(
            f"{function} would split the frame into {len(groups)} segments, more than "
            f"{MAX_SEGMENTS}; use a longer 'window' or fewer 'by' keys."
        )
    out = []
    for values, rows in groups.items():
        parts = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
        start = int(parts["window"]) if "window" in parts else None
        name = ", ".join(f"{k}={_iso(int(v)) if k == 'window' else v}" for k, v in parts.items())
        out.append(_segment(name, np.asarray(rows, dtype=np.intp), stamps, start, window))
    return out


def _segment(
    name: str,
    rows: npt.NDArray[np.intp],
    stamps: npt.NDArray[np.int64],
    start: int | None,
    window: int | None = None,
) -> Segment:
    if start is not None and window is not None:
        return Segment(name, rows, start, start + window)
    chosen = stamps[rows]
    return Segment(name, rows, int(chosen.min()), int(chosen.max()) + 1)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def bounds(
    thresholds: Mapping[str, tuple[str, float]] | None,
    baseline: Mapping[str, float] | None,
    tolerance: float,
    metrics: Sequence[str],
    higher_is_better: Mapping[str, bool],
    function: str,
) -> dict[str, Bound]:
    """The bound each metric is judged against, from explicit thresholds or a baseline.

    A baseline (the model version's evaluation metrics) gives ``baseline - tolerance *
    |baseline|`` for a metric where higher is better and ``baseline + tolerance *
    |baseline|`` for an error; keys that are not among ``metrics`` are ignored, so a
    model version's whole metric dict can be passed.
    """
    out: dict[str, Bound] = {}
    for metric, rule in (thresholds or {}).items():
        name = METRIC_ALIASES.get(metric, metric)
        # A list as well as a tuple: thresholds read from YAML or JSON arrive as lists.
        valid = (
            name in metrics
            and isinstance(rule, tuple | list)
            and len(rule) == 2
            and rule[0] in (">=", "<=")
            and _real(rule[1])
        )
        if not valid:
            raise bad(
                "thresholds",
                function,
                f"a mapping of metrics among {', '.join(metrics)} to ('>=' or '<=', number)",
                {metric: rule},
            )
        out[name] = Bound(cast(Literal[">=", "<="], rule[0]), float(rule[1]), "threshold")
    if not (_real(tolerance) and 0.0 <= tolerance < 1.0):
        raise bad("tolerance", function, "a number in [0, 1)", tolerance)
    for metric, value in (baseline or {}).items():
        name = METRIC_ALIASES.get(metric, metric)
        if name not in metrics:
            continue
        if not _real(value):
            raise bad("baseline", function, "a mapping of metric names to numbers", {metric: value})
        if name in out:
            raise bad("baseline", function, "free of metrics that 'thresholds' bounds", metric)
        up = higher_is_better[name]
        bound = float(value) - tolerance * abs(float(value)) * (1 if up else -1)
        source = f"baseline {float(value):.4g} {'-' if up else '+'} {tolerance:.0%}"
        out[name] = Bound(">=" if up else "<=", bound, source)
    return out


def _real(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def judge(value: float, interval: tuple[float, float], bound: Bound | None) -> tuple[Status, str]:
    """Decide a metric against its bound.

    ``alert`` only when the point estimate breaks the bound **and** the whole interval
    lies on the wrong side of it: a window whose metric dips below the bound by chance
    (its interval still reaches the bound) is ``ok`` with a "not significant" note, so
    small windows do not flap.

    Returns:
        The status and a clause for the message (``""`` without a bound).
    """
    if bound is None:
        return "ok", ""
    low, high = interval
    if bound.op == ">=":
        breaks, sure = value < bound.value, high < bound.value
    else:
        breaks, sure = value > bound.value, low > bound.value
    side = "below" if bound.op == ">=" else "above"
    against = f"{bound.op} {bound.value:.4g} ({bound.source})"
    if breaks and sure:
        return "alert", f"; {side} the bound {against}, the whole interval too"
    if breaks:
        return "ok", f"; {side} the bound {against} but not significantly (interval reaches it)"
    return "ok", f"; within the bound {against}"
