"""Differences between two profiles: schema changes, statistic changes and drift.

Everything is computed from the two :class:`~loopml.data._profile.Profile`
objects alone -- never from the raw data -- so two versions of any size compare
in microseconds. Rendering for the terminal is the CLI's business.

Distribution change is the *population stability index* (PSI),
``sum((p_new - p_old) * ln(p_new / p_old))`` with proportions floored at
``1e-4``:

* numeric columns: both histograms are re-binned onto 20 equal-width bins over
  the union of their ranges, assuming values spread evenly inside each bin;
* categorical, text and boolean columns: over the union of the two top-k value
  lists plus one bucket for every other value.

Common reading: below 0.1 no real change, 0.1-0.2 moderate, above 0.2 a shift
(:data:`PSI_DRIFT_THRESHOLD`).

Key columns -- the dataset's declared keys, and columns that look like keys in
both versions (distinct ids, see :func:`loopml.data._infer.is_key_like`) -- get no
PSI and never drift: new versions bring new ids by design.

Example:
    >>> import pyarrow as pa
    >>> from loopml.data._profile import profile_table
    >>> old = profile_table(pa.table({"x": [1, 2, 3], "c": ["a", "b", "a"]}))
    >>> new = profile_table(pa.table({"x": [1.5, 2.0, 9.0], "d": [True, False, True]}))
    >>> d = diff_profiles(old, new)
    >>> d.added, d.removed, [(r.name, r.old_type, r.new_type) for r in d.retyped]
    ((('d', 'bool'),), (('c', 'string'),), [('x', 'int64', 'double')])
    >>> d.has_changes
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loopml.data._infer import is_key_like
from loopml.data._profile import QUANTILE_KEYS, ColumnProfile, Histogram, Profile

__all__ = [
    "PSI_DRIFT_THRESHOLD",
    "ColumnDiff",
    "ProfileDiff",
    "StatChange",
    "TypeChange",
    "diff_profiles",
]

#: PSI above which a column's distribution is commonly said to have shifted.
PSI_DRIFT_THRESHOLD = 0.2

_PSI_BINS = 20
_PSI_FLOOR = 1e-4

Value = float | int | str | None


@dataclass(frozen=True)
class StatChange:
    """One statistic that differs between the old and the new profile.

    Attributes:
        stat: ``"count"``, ``"missing"``, ``"missing_rate"``, ``"distinct"``,
            ``"mean"``, ``"std"``, ``"min"``, ``"max"`` or ``"q0.5"`` (quantiles).
        old: The old value (None when absent).
        new: The new value (None when absent).
        abs_change: ``new - old`` when both are numbers, else None.
        rel_change: ``(new - old) / |old|`` when both are numbers and ``old != 0``.
    """

    stat: str
    old: Value
    new: Value
    abs_change: float | None
    rel_change: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; non-finite floats become ``"inf"``, ``"-inf"``, ``"nan"``."""
        return {
            "stat": self.stat,
            "old": _json(self.old),
            "new": _json(self.new),
            "abs_change": _json(self.abs_change),
            "rel_change": _json(self.rel_change),
        }


@dataclass(frozen=True)
class TypeChange:
    """A column whose normalised Arrow type changed."""

    name: str
    old_type: str
    new_type: str


@dataclass(frozen=True)
class ColumnDiff:
    """How one column present in both profiles changed.

    Attributes:
        name: Column name.
        old_kind: Profile kind in the old version.
        new_kind: Profile kind in the new version.
        changes: The statistics that differ, in a fixed order.
        psi: Population stability index, None when not computable (no
            histogram or top-k on both sides, or no values).
        new_categories: Values present only in the new version (when both value
            sets are fully known: categorical or boolean columns).
        vanished_categories: Values present only in the old version.
        key: Whether the column identifies rows (no PSI; never drifted).
    """

    name: str
    old_kind: str
    new_kind: str
    changes: tuple[StatChange, ...] = ()
    psi: float | None = None
    new_categories: tuple[str, ...] = ()
    vanished_categories: tuple[str, ...] = ()
    key: bool = False

    @property
    def has_changes(self) -> bool:
        """Whether any statistic, the kind or the category set changed."""
        return bool(
            self.changes
            or self.old_kind != self.new_kind
            or self.new_categories
            or self.vanished_categories
        )

    @property
    def drifted(self) -> bool:
        """Whether :attr:`psi` exceeds :data:`PSI_DRIFT_THRESHOLD`."""
        return self.psi is not None and self.psi > PSI_DRIFT_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            "name": self.name,
            "old_kind": self.old_kind,
            "new_kind": self.new_kind,
            "changes": [c.to_dict() for c in self.changes],
            "psi": _json(self.psi),
            "drifted": self.drifted,
            "new_categories": list(self.new_categories),
            "vanished_categories": list(self.vanished_categories),
            "key": self.key,
        }


@dataclass(frozen=True)
class ProfileDiff:
    """Schema and statistics differences between two profiles.

    Attributes:
        row_count: The old and new row counts (``abs_change``/``rel_change`` set).
        added: ``(name, arrow_type)`` of columns only in the new profile.
        removed: ``(name, arrow_type)`` of columns only in the old profile.
        retyped: Columns in both whose Arrow type changed.
        columns: A :class:`ColumnDiff` for every column in both, in new order.
    """

    row_count: StatChange
    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    retyped: tuple[TypeChange, ...] = ()
    columns: dict[str, ColumnDiff] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        """Whether the row count, the schema or any column's statistics differ."""
        return bool(
            self.row_count.old != self.row_count.new
            or self.added
            or self.removed
            or self.retyped
            or any(c.has_changes for c in self.columns.values())
        )

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        """Names of the columns whose PSI exceeds :data:`PSI_DRIFT_THRESHOLD`."""
        return tuple(name for name, c in self.columns.items() if c.drifted)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (standard JSON: no NaN or infinity literals)."""
        return {
            "has_changes": self.has_changes,
            "row_count": self.row_count.to_dict(),
            "added": [{"name": n, "arrow_type": t} for n, t in self.added],
            "removed": [{"name": n, "arrow_type": t} for n, t in self.removed],
            "retyped": [
                {"name": r.name, "old_type": r.old_type, "new_type": r.new_type}
                for r in self.retyped
            ],
            "columns": [c.to_dict() for c in self.columns.values()],
            "drifted_columns": list(self.drifted_columns),
        }


def diff_profiles(old: Profile, new: Profile, key_columns: Sequence[str] = ()) -> ProfileDiff:
    """Compare two profiles.

    Args:
        old: The reference profile (e.g. ``credit:1``).
        new: The profile compared with it (e.g. ``credit:2``).
        key_columns: The dataset's key columns (never drifted; nor are columns
            that look like keys in both profiles).

    Returns:
        The differences; :attr:`ProfileDiff.has_changes` is False for equal profiles.
    """
    added = tuple((n, c.arrow_type) for n, c in new.columns.items() if n not in old.columns)
    removed = tuple((n, c.arrow_type) for n, c in old.columns.items() if n not in new.columns)
    common = [n for n in new.columns if n in old.columns]
    keys = set(key_columns) | {
        n for n in common if is_key_like(old.columns[n]) and is_key_like(new.columns[n])
    }
    retyped = tuple(
        TypeChange(n, old.columns[n].arrow_type, new.columns[n].arrow_type)
        for n in common
        if old.columns[n].arrow_type != new.columns[n].arrow_type
    )
    return ProfileDiff(
        row_count=_change("row_count", old.row_count, new.row_count),
        added=added,
        removed=removed,
        retyped=retyped,
        columns={n: _column_diff(old.columns[n], new.columns[n], key=n in keys) for n in common},
    )


def _column_diff(old: ColumnProfile, new: ColumnProfile, key: bool) -> ColumnDiff:
    pairs: list[tuple[str, Value, Value]] = [
        ("count", old.count, new.count),
        ("missing", old.missing, new.missing),
        ("missing_rate", _missing_rate(old), _missing_rate(new)),
        ("distinct", old.distinct, new.distinct),
        ("mean", old.mean, new.mean),
        ("std", old.std, new.std),
        ("min", old.min, new.min),
        ("max", old.max, new.max),
    ]
    old_q, new_q = old.quantiles or {}, new.quantiles or {}
    pairs += [(f"q{k}", old_q.get(k), new_q.get(k)) for k in QUANTILE_KEYS]
    changes = tuple(_change(s, a, b) for s, a, b in pairs if not _same(a, b))
    old_set, new_set = _value_set(old), _value_set(new)
    both_known = old_set is not None and new_set is not None
    return ColumnDiff(
        name=new.name,
        old_kind=old.kind,
        new_kind=new.kind,
        changes=changes,
        psi=None if key else _psi(old, new),
        new_categories=tuple(sorted(new_set - old_set)) if both_known else (),  # type: ignore[operator]
        vanished_categories=tuple(sorted(old_set - new_set)) if both_known else (),  # type: ignore[operator]
        key=key,
    )


def _missing_rate(c: ColumnProfile) -> float | None:
    total = c.count + c.missing
    return c.missing / total if total else None


def _value_set(c: ColumnProfile) -> set[str] | None:
    if c.categories is not None:
        return set(c.categories)
    if c.kind == "boolean" and c.top_k is not None:
        return {v for v, _ in c.top_k}
    return None


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b if a is not None and b is not None else a is b


def _change(stat: str, old: Value, new: Value) -> StatChange:
    numbers = (
        isinstance(old, int | float)
        and isinstance(new, int | float)
        and not isinstance(old, bool)
        and not isinstance(new, bool)
    )
    if not numbers:
        return StatChange(stat, old, new, None, None)
    a, b = float(old), float(new)  # type: ignore[arg-type]
    with np.errstate(all="ignore"):
        delta = b - a
    rel = delta / abs(a) if a != 0 and math.isfinite(a) else None
    return StatChange(stat, old, new, delta, rel)


def _psi(old: ColumnProfile, new: ColumnProfile) -> float | None:
    if old.histogram is not None and new.histogram is not None:
        return _histogram_psi(old.histogram, new.histogram)
    if old.top_k is not None and new.top_k is not None and old.count and new.count:
        return _category_psi(old, new)
    return None


def _histogram_psi(old: Histogram, new: Histogram) -> float | None:
    if not sum(old.counts) or not sum(new.counts):
        return None
    lo = min(old.edges[0], new.edges[0])
    hi = max(old.edges[-1], new.edges[-1])
    edges = np.linspace(lo, hi, _PSI_BINS + 1)
    return _psi_of(_rebin(old, edges), _rebin(new, edges))


def _rebin(h: Histogram, edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Counts of ``h`` on ``edges``, its values spread evenly inside each bin."""
    cumulative = np.concatenate([[0.0], np.cumsum(h.counts, dtype=np.float64)])
    return np.diff(np.interp(edges, np.asarray(h.edges), cumulative))


def _category_psi(old: ColumnProfile, new: ColumnProfile) -> float:
    old_counts, new_counts = dict(old.top_k or ()), dict(new.top_k or ())
    values = sorted(set(old_counts) | set(new_counts))
    o = [old_counts.get(v, 0) for v in values]
    n = [new_counts.get(v, 0) for v in values]
    # Everything beyond the top-k lands in one "other" bucket.
    o.append(max(old.count - sum(old_counts.values()), 0))
    n.append(max(new.count - sum(new_counts.values()), 0))
    return _psi_of(np.asarray(o, dtype=np.float64), np.asarray(n, dtype=np.float64))


def _psi_of(old: npt.NDArray[np.float64], new: npt.NDArray[np.float64]) -> float:
    p = np.maximum(old / old.sum(), _PSI_FLOOR)
    q = np.maximum(new / new.sum(), _PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def _json(x: Value) -> Value:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x
