"""Small, mergeable summaries used by the profiler.

Everything here is vectorised (NumPy / Arrow kernels) and bounded in memory, and
every summary depends only on the multiset of values it was fed -- never on how
the values were split into batches -- so a profile computed batch by batch is
identical to one computed over the whole table.

* :class:`DistinctSketch` -- a *k minimum values* (KMV) sketch over 64-bit hashes:
  exact while at most ``limit`` distinct hashes were seen, an unbiased estimate
  (relative standard error about ``1/sqrt(limit)``, 0.3 % for the default) above.
* :class:`ValueCounter` -- merged value counts of a string/boolean column, capped
  in size; exact while the column has at most ``limit`` distinct values.
* :class:`Moments` -- count, mean and sum of squared deviations merged with the
  parallel formulas of Chan, Golub and LeVeque (numerically stable).
* :func:`hash_uint64`, :func:`hash_objects` -- 64-bit hashes of numbers (SplitMix64
  finaliser over the value's bits) and of strings/bytes (the SipHash of
  ``pandas.util.hash_array``, computed in NumPy by ``_siphash``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data._siphash import siphash_strings

__all__ = [
    "DISTINCT_EXACT_LIMIT",
    "QUANTILE_KEYS",
    "ColumnAccumulator",
    "DistinctSketch",
    "Moments",
    "ValueCounter",
    "column_accumulator",
    "hash_objects",
    "hash_uint64",
    "merge_moments",
    "position_sample_mask",
    "quantiles",
]

#: The quantile levels of numeric columns, as the keys of ``ColumnProfile.quantiles``.
QUANTILE_KEYS: tuple[str, ...] = ("0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99")

#: Distinct counts are exact up to this many distinct values, estimated above.
DISTINCT_EXACT_LIMIT = 100_000

U64 = npt.NDArray[np.uint64]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def hash_uint64(bits: npt.NDArray[np.uint64]) -> U64:
    """Mix 64-bit words into well-spread 64-bit hashes (SplitMix64 finaliser).

    The finaliser is a bijection, so distinct words never collide.

    Args:
        bits: The values' bit patterns (``int64`` viewed as ``uint64``, ...).

    Returns:
        A new ``uint64`` array of the same length.
    """
    with np.errstate(over="ignore"):
        z = bits + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def hash_objects(values: pa.Array, *, generic: bool = False) -> U64:
    """Hash string or binary values (or, with ``generic``, any values) to 64 bits.

    Args:
        values: An Arrow array without nulls; usually the distinct values of a batch.
        generic: Hash ``str()`` of each value (for types without a byte form);
            one Python call per value, so only for rarely met types.

    Returns:
        A ``uint64`` array, one hash per value.
    """
    if generic:
        values = pa.array([str(v) for v in values.to_pylist()], pa.large_string())
    return siphash_strings(values)


def position_sample_mask(start: int, length: int, rate: float) -> npt.NDArray[np.bool_]:
    """Deterministic uniform Bernoulli sample of row positions.

    Row ``i`` is kept when the hash of ``i`` falls below ``rate`` of the hash space,
    so the sample depends on row positions only, not on batch boundaries.

    Args:
        start: Position of the batch's first row in the whole data.
        length: Number of rows in the batch.
        rate: Probability of keeping a row, in ``[0, 1]``.

    Returns:
        A boolean mask of ``length`` entries.
    """
    positions = np.arange(start, start + length, dtype=np.uint64)
    threshold = np.uint64(min(int(rate * 2.0**64), 2**64 - 1))
    return hash_uint64(positions) < threshold


class DistinctSketch:
    """Distinct count: exact up to ``limit`` values, KMV estimate above.

    Keeps the ``limit`` smallest distinct 64-bit hashes seen. While at most
    ``limit`` distinct hashes were seen the count is exact (up to 64-bit hash
    collisions); above, the estimate ``(limit - 1) / (h_k / 2**64)`` is used. The
    state depends only on the set of hashes fed, not on their order or grouping.

    Args:
        limit: Number of hashes kept (the exactness threshold).
    """

    _CHUNK = 1 << 16

    def __init__(self, limit: int = DISTINCT_EXACT_LIMIT) -> None:
        self._limit = limit
        self._hashes: U64 = np.empty(0, dtype=np.uint64)  # sorted, unique
        self._overflowed = False
        self._few_distinct = False  # last chunk had many duplicates

    def update(self, hashes: U64) -> None:
        """Add the hashes of some values (duplicates allowed)."""
        # Chunks let the threshold drop early, so most hashes of a large
        # high-cardinality batch are discarded by one comparison instead of a sort.
        for start in range(0, hashes.size, self._CHUNK):
            chunk = hashes[start : start + self._CHUNK]
            if self._overflowed:
                chunk = chunk[chunk < self._hashes[-1]]
                if chunk.size == 0:
                    continue
            if self._few_distinct:
                # Arrow's hash-based unique is linear when values repeat a lot.
                uniques = np.sort(pc.unique(pa.array(chunk)).to_numpy())
            else:
                uniques = _sorted_unique(np.sort(chunk))
            self._few_distinct = uniques.size * 4 < chunk.size
            # Timsort merges the two sorted runs in linear time.
            merged = np.concatenate([self._hashes, uniques])
            merged = _sorted_unique(np.sort(merged, kind="stable"))
            if merged.size > self._limit:
                self._overflowed = True
                merged = merged[: self._limit]
            self._hashes = merged

    @property
    def exact(self) -> bool:
        """Whether :attr:`count` is exact."""
        return not self._overflowed

    @property
    def count(self) -> int:
        """The number of distinct values, exact or estimated."""
        if not self._overflowed:
            return int(self._hashes.size)
        kth = (float(self._hashes[-1]) + 1.0) / 2.0**64
        return round((self._limit - 1) / kth)


def _sorted_unique(ordered: U64) -> U64:
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=np.bool_)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


class ValueCounter:
    """Merged value counts of a column, at most ``limit`` values kept.

    Exact while the column has at most ``limit`` distinct values; when more are
    seen the least frequent are dropped, and the counts kept become lower bounds
    (their order is approximate).

    Args:
        value_type: Arrow type of the values counted.
        limit: The most values kept.
    """

    def __init__(self, value_type: pa.DataType, limit: int = DISTINCT_EXACT_LIMIT) -> None:
        self._limit = limit
        self._table = pa.table(
            {"v": pa.array([], type=value_type), "n": pa.array([], type=pa.int64())}
        )
        self.truncated = False

    def update(self, values: pa.Array, counts: pa.Array) -> None:
        """Add the value counts of one batch (``values`` distinct, no nulls)."""
        if len(values) == 0:
            return
        batch = pa.table({"v": values, "n": counts.cast(pa.int64())})
        if self._table.num_rows == 0:
            merged = batch
        else:
            grouped = pa.concat_tables([self._table, batch]).group_by("v").aggregate([("n", "sum")])
            merged = grouped.select(["v", "n_sum"]).rename_columns(["v", "n"])
        if merged.num_rows > self._limit:
            self.truncated = True
            merged = merged.take(_order(merged)[: self._limit])
        self._table = merged

    def most_common(self, k: int | None = None) -> list[tuple[object, int]]:
        """``(value, count)`` pairs, most frequent first, ties by ascending value."""
        order = _order(self._table)
        if k is not None:
            order = order[:k]
        top = self._table.take(order)
        return list(zip(top["v"].to_pylist(), top["n"].to_pylist(), strict=True))

    def values(self) -> list[object]:
        """Every value kept, in ascending order."""
        return sorted(self._table["v"].to_pylist())

    def __len__(self) -> int:
        return int(self._table.num_rows)


def _order(table: pa.Table) -> pa.Array:
    return pc.sort_indices(table, sort_keys=[("n", "descending"), ("v", "ascending")])


@dataclass
class Moments:
    """Running count, mean and sum of squared deviations (``m2``) of finite values."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, x: npt.NDArray[np.float64]) -> None:
        """Merge the moments of ``x`` (finite values only) into the running ones."""
        n_b = int(x.size)
        if n_b == 0:
            return
        # Values near the float limit overflow a plain sum; their mean never overflows,
        # so it is taken over the values scaled into [-1, 1] then. The squared
        # deviations may still be inf (honestly unrepresentable): NumPy's overflow
        # warning is expected.
        with np.errstate(over="ignore", invalid="ignore"):
            mean_b = float(x.mean())
            if not math.isfinite(mean_b):
                scale = float(np.abs(x).max())
                mean_b = float((x / scale).mean()) * scale
            m2_b = float(np.square(x - mean_b).sum())
        if self.n == 0:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        merged = merge_moments(self, Moments(n_b, mean_b, m2_b))
        self.n, self.mean, self.m2 = merged.n, merged.mean, merged.m2

    @property
    def std(self) -> float:
        """Population standard deviation (``ddof=0``)."""
        return math.sqrt(max(self.m2, 0.0) / self.n) if self.n else math.nan


def merge_moments(a: Moments, b: Moments) -> Moments:
    """The moments of two parts together (Chan et al.); the mean stays finite when both
    are, even for means near the float limit of opposite signs."""
    if a.n == 0:
        return Moments(b.n, b.mean, b.m2)
    if b.n == 0:
        return Moments(a.n, a.mean, a.m2)
    n = a.n + b.n
    with np.errstate(over="ignore", invalid="ignore"):
        delta = b.mean - a.mean
        mean = a.mean + delta * b.n / n
        if not math.isfinite(mean) and math.isfinite(a.mean) and math.isfinite(b.mean):
            # delta * b.n overflowed (means near the float limit): the weighted form cannot.
            mean = a.mean * (a.n / n) + b.mean * (b.n / n)
        m2 = a.m2 + (b.m2 + delta * delta * a.n * b.n / n)
    return Moments(n, mean, m2)


def quantiles(values: npt.NDArray[Any], levels: Sequence[float]) -> list[float]:
    """Exact quantiles with NumPy's default (linear) method, faster for large arrays.

    Equal to ``numpy.quantile(values, levels)``: the order statistics needed are
    located with a fine histogram and only the values in their bins are sorted,
    which avoids a selection over the whole array.

    Args:
        values: Finite numbers, at least one.
        levels: Quantile levels in ``[0, 1]``.

    Returns:
        One float per level.
    """
    n = values.size
    q = np.asarray(levels, dtype=np.float64)
    virtual = (n - 1) * q  # as NumPy computes it, for equal results
    below = np.floor(virtual)
    gamma = virtual - below
    prev = np.clip(below.astype(np.int64), 0, n - 1)
    nxt = np.clip(prev + 1, 0, n - 1)
    ranks = np.unique(np.concatenate([prev, nxt]))
    ordered = _order_statistics(values, ranks)
    a = np.asarray([ordered[r] for r in prev], dtype=np.float64)
    b = np.asarray([ordered[r] for r in nxt], dtype=np.float64)
    with np.errstate(over="ignore"):
        diff = b - a
    if not np.isfinite(diff).all():  # a span beyond float64 (NumPy's own answer: inf)
        return [float(v) for v in a * (1 - gamma) + b * gamma]
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return [float(v) for v in out]


_FINE_BINS = 1 << 12


def _order_statistics(values: npt.NDArray[Any], ranks: npt.NDArray[np.int64]) -> dict[int, Any]:
    n = values.size
    lo, hi = float(values.min()), float(values.max())
    if n <= 4 * _FINE_BINS or lo == hi:
        part = np.partition(values, ranks)
        return {int(r): part[r] for r in ranks}
    # Bin numbers are a monotone function of the value, so sorting the values of
    # the wanted bins sorts them bin by bin.
    bins = ((values * 0.5 - lo * 0.5) * (_FINE_BINS / (hi * 0.5 - lo * 0.5))).astype(np.int64)
    np.minimum(bins, _FINE_BINS - 1, out=bins)
    counts = np.bincount(bins, minlength=_FINE_BINS)
    ends = np.cumsum(counts)
    wanted_bins = np.searchsorted(ends, ranks, side="right")
    wanted = np.zeros(_FINE_BINS, dtype=np.bool_)
    wanted[wanted_bins] = True
    subset_size = int(counts[wanted].sum())
    if subset_size > n // 8:  # values crowd in few bins: plain selection is cheaper
        part = np.partition(values, ranks)
        return {int(r): part[r] for r in ranks}
    subset = np.sort(values[wanted[bins]])
    # Position in ``subset`` of each bin's first value.
    starts = np.cumsum(np.where(wanted, counts, 0)) - np.where(wanted, counts, 0)
    result = {}
    for r, b in zip(ranks, wanted_bins, strict=True):
        within = int(r) - int(ends[b] - counts[b])
        result[int(r)] = subset[int(starts[b]) + within]
    return result


# --- per-column accumulators (used by _profile) --------------------------------------------------

_BINS = 20
_TOP_K = 20
_CATEGORY_LIMIT = 50
_QUANTILE_EXACT_LIMIT = 1_000_000
_QUANTILE_SAMPLE_SIZE = 100_000
_LEVELS = [float(k) for k in QUANTILE_KEYS]


class ColumnAccumulator:
    """Statistics of one column, fed batch by batch (see ``_profile`` for conventions).

    The base class profiles columns of any other type: count, missing, distinct.
    """

    needs_second_pass = False

    def __init__(self) -> None:
        self.count = 0
        self.missing = 0
        self.sketch = DistinctSketch()

    def update(self, arr: pa.Array) -> None:
        self.missing += arr.null_count
        values = arr.drop_null() if arr.null_count else arr
        self.count += len(values)
        self._update(values)

    def _update(self, values: pa.Array) -> None:
        try:
            uniques = pc.unique(values)
        except pa.ArrowNotImplementedError:  # nested types: hash every value
            uniques = values
        self.sketch.update(hash_objects(uniques, generic=True))

    def update_second(self, arr: pa.Array, position: int) -> None:
        """Second pass over the column; ``position`` is the batch's first row."""

    def finish(self) -> dict[str, Any]:
        """The column's statistics, keyed like ``ColumnProfile``'s fields."""
        return self._base("other")

    def _base(self, kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "count": self.count,
            "missing": self.missing,
            "distinct": self.sketch.count,
            "distinct_exact": self.sketch.exact,
        }


class _NumericAccumulator(ColumnAccumulator):
    """Integers, floats and decimals, profiled as float64 (NaN is missing)."""

    def __init__(self, arrow_type: pa.DataType) -> None:
        super().__init__()
        self._integer = pa.types.is_integer(arrow_type) and arrow_type != pa.uint64()
        self._target = pa.int64() if self._integer else pa.float64()
        self.moments = Moments()
        self.min = math.inf
        self.max = -math.inf
        self.finite_min = math.inf
        self.finite_max = -math.inf
        self.counts = np.zeros(_BINS, dtype=np.int64)
        self._kept: list[npt.NDArray[np.float64]] = []
        # Floats that are all whole numbers (integers with missing values, read as floats).
        self.integral = True

    def _numbers(self, arr: pa.Array) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
        """Non-missing values (native dtype) and the finite ones (float64)."""
        if arr.type != self._target:
            arr = arr.cast(self._target)
        values = arr.drop_null() if arr.null_count else arr
        x = values.to_numpy(zero_copy_only=False)
        if self._integer:
            return x, x
        nan = np.isnan(x)
        if nan.any():
            x = x[~nan]
        finite = np.isfinite(x)
        return x, (x if finite.all() else x[finite])

    def update(self, arr: pa.Array) -> None:
        x, finite = self._numbers(arr)
        self.missing += len(arr) - x.size
        self.count += x.size
        if x.size == 0:
            return
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        if finite.size:
            self.finite_min = min(self.finite_min, float(finite.min()))
            self.finite_max = max(self.finite_max, float(finite.max()))
            if self.integral and not self._integer:
                self.integral = bool(np.all(finite == np.trunc(finite)))
        self.moments.update(finite)
        # -0.0 + 0.0 == +0.0: equal floats get equal bits, hence equal hashes.
        bits = x.view(np.uint64) if self._integer else (x + 0.0).view(np.uint64)
        self.sketch.update(hash_uint64(bits))

    @property
    def needs_second_pass(self) -> bool:  # type: ignore[override]
        return self.moments.n > 0

    def update_second(self, arr: pa.Array, position: int) -> None:
        _, finite = self._numbers(arr)
        if finite.size == 0:
            return
        lo, hi = _bin_range(self.finite_min, self.finite_max)
        span = hi - lo
        if math.isfinite(span):  # dividing first: a subnormal span must not overflow _BINS/span
            scaled = (finite - lo) / span * _BINS
        else:  # values near the float64 limits: halves keep the span finite
            scaled = (finite * 0.5 - lo * 0.5) / (hi * 0.5 - lo * 0.5) * _BINS
        bins = scaled.astype(np.int64)
        np.minimum(bins, _BINS - 1, out=bins)  # the maximum sits on the last edge
        self.counts += np.bincount(bins, minlength=_BINS)
        if self.moments.n > _QUANTILE_EXACT_LIMIT:
            rate = _QUANTILE_SAMPLE_SIZE / self.moments.n
            mask = position_sample_mask(position, len(arr), rate)
            finite = self._numbers(arr.filter(pa.array(mask)))[1]
        self._kept.append(finite)

    def finish(self) -> dict[str, Any]:
        base = self._base("numeric")
        if self.count == 0:
            return base
        stats: dict[str, Any] = {"min": self.min, "max": self.max}
        stats["integral"] = self._integer or (self.integral and self.moments.n > 0)
        if self.moments.n:
            kept = np.concatenate(self._kept) if self._kept else np.empty(0)
            self._kept = []
            stats["mean"] = self.moments.mean
            stats["std"] = self.moments.std
            stats["histogram"] = _histogram(self.finite_min, self.finite_max, self.counts)
            if kept.size:
                stats["quantiles"] = tuple(quantiles(kept, _LEVELS))
        return base | stats


class _StringAccumulator(ColumnAccumulator):
    """Strings (categorical or text) and booleans: value counts and min/max."""

    def __init__(self, arrow_type: pa.DataType) -> None:
        super().__init__()
        self._boolean = pa.types.is_boolean(arrow_type)
        self._target = pa.bool_() if self._boolean else pa.large_string()
        self.counter = ValueCounter(self._target)
        self.min: str | None = None
        self.max: str | None = None

    def _update(self, values: pa.Array) -> None:
        if values.type != self._target:
            values = values.cast(self._target)
        if len(values) == 0:
            return
        counts = pc.value_counts(values)
        uniques = counts.field("values")
        self.counter.update(uniques, counts.field("counts"))
        if self._boolean:
            return
        self.sketch.update(hash_objects(uniques))
        low, high = (s.as_py() for s in pc.min_max(uniques).values())
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)

    def finish(self) -> dict[str, Any]:
        top_k = tuple((str(v), int(n)) for v, n in self.counter.most_common(_TOP_K))
        if self._boolean:
            trues = dict(self.counter.most_common()).get(True, 0)
            mean = trues / self.count if self.count else None
            return self._base("boolean") | {
                "distinct": len(self.counter),
                "distinct_exact": True,
                "mean": mean,
                "top_k": top_k,
            }
        base = self._base("text")
        distinct, count = self.sketch.count, self.count
        categorical = (
            self.sketch.exact
            and distinct <= _CATEGORY_LIMIT
            and (distinct <= count / 2 or count < 100)
        )
        categories = tuple(str(v) for v in self.counter.values()) if categorical else None
        return base | {
            "kind": "categorical" if categorical else "text",
            "min": self.min,
            "max": self.max,
            "top_k": top_k,
            "categories": categories,
        }


class _DatetimeAccumulator(ColumnAccumulator):
    """Timestamps and dates: min/max (as ISO strings) and distinct."""

    def __init__(self, arrow_type: pa.DataType) -> None:
        super().__init__()
        self._type = arrow_type
        self._view = pa.int32() if pa.types.is_date32(arrow_type) else pa.int64()
        self.min: int | None = None
        self.max: int | None = None

    def _update(self, values: pa.Array) -> None:
        if len(values) == 0:
            return
        x = values.view(self._view).to_numpy().astype(np.int64)
        low, high = int(x.min()), int(x.max())
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)
        self.sketch.update(hash_uint64(x.view(np.uint64)))

    def _iso(self, value: int | None) -> str | None:
        if value is None:
            return None
        scalar = pa.array([value], type=self._view).view(self._type)[0]
        return str(scalar.as_py().isoformat())

    def finish(self) -> dict[str, Any]:
        return self._base("datetime") | {"min": self._iso(self.min), "max": self._iso(self.max)}


def column_accumulator(arrow_type: pa.DataType) -> ColumnAccumulator:
    """The accumulator that profiles a column of ``arrow_type``."""
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _NumericAccumulator(t)
    if pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
        return _StringAccumulator(t)
    if pa.types.is_string_view(t):
        return _StringAccumulator(t)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return _DatetimeAccumulator(t)
    return ColumnAccumulator()


def _bin_range(lo: float, hi: float) -> tuple[float, float]:
    if lo < hi:
        return lo, hi
    pad = max(0.5, abs(lo) * 1e-9)  # a constant column: one value in the middle bin
    return lo - pad, hi + pad


def _histogram(
    lo: float, hi: float, counts: npt.NDArray[np.int64]
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    lo, hi = _bin_range(lo, hi)
    if math.isfinite(hi - lo):
        edges = np.linspace(lo, hi, _BINS + 1)
    else:  # a span beyond float64: space the halves, then double them back
        edges = np.linspace(lo * 0.5, hi * 0.5, _BINS + 1) * 2
    return tuple(float(e) for e in edges), tuple(int(n) for n in counts)
