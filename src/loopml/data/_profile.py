"""Profiles: small per-column statistics of a dataset version.

A :class:`Profile` is what drift monitoring compares production data against,
so it is computed once, at registration, in at most two vectorised passes over
the batches, with memory bounded by one batch plus small sketches per column.

Conventions (they matter when comparing profiles):

* ``count`` is the number of non-missing values; float ``NaN`` counts as
  *missing*, like null.
* ``±inf`` is a value: counted, included in ``min``/``max`` and ``distinct``, but
  left out of ``mean``, ``std``, ``quantiles`` and ``histogram`` (computed over
  the finite values only; the histogram counts then sum to the finite count).
* ``distinct`` is exact up to 100,000 distinct values (``distinct_exact``), a
  k-minimum-values estimate above (relative standard error about 0.3 %).
* ``top_k`` (and ``categories``) are exact whenever ``distinct_exact`` is true;
  above, rare values were dropped while counting and the counts are lower bounds.
* ``quantiles`` are exact (NumPy's linear interpolation) when a column has at
  most 1,000,000 finite values; above, they come from a deterministic uniform
  sample of about 100,000 values (rank error about 0.3 %).
* Numbers are plain Python ``int``/``float``. In :meth:`Profile.to_dict`
  non-finite floats are written as the strings ``"inf"``, ``"-inf"`` and
  ``"nan"`` so that the JSON stays standard; :meth:`Profile.from_dict` reads
  them back.
* Datetime ``min``/``max`` are ISO 8601 strings (with the column's time zone).

None of these numbers depends on how the data was split into batches (up to
floating-point rounding of ``mean`` and ``std``).

Example:
    >>> import pyarrow as pa
    >>> p = profile_table(pa.table({"x": [1.0, 2.0, None], "c": ["a", "b", "a"]}))
    >>> p.columns["x"].missing, p.columns["x"].mean, p.columns["c"].top_k
    (1, 1.5, (('a', 2), ('b', 1)))
    >>> Profile.from_json(p.to_json()) == p
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

import pyarrow as pa

from loopml.data._sketches import QUANTILE_KEYS, column_accumulator
from loopml.errors import DataSourceError

__all__ = [
    "QUANTILE_KEYS",
    "ColumnKind",
    "ColumnProfile",
    "Histogram",
    "Profile",
    "build_profile",
    "profile_table",
]

ColumnKind = Literal["numeric", "boolean", "categorical", "text", "datetime", "other"]


_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Histogram:
    """Equal-width histogram of a numeric column's finite values.

    Attributes:
        edges: Bin edges, ``len(counts) + 1`` increasing floats.
        counts: Values per bin; the last bin includes its right edge.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class ColumnProfile:
    """Statistics of one column (see the module docstring for the conventions).

    Attributes:
        name: Column name.
        arrow_type: ``str()`` of the normalised Arrow type, e.g. ``"int64"``.
        kind: How the column was profiled.
        count: Non-missing values.
        missing: Nulls, plus ``NaN`` in float columns.
        distinct: Distinct non-missing values (exact or estimated).
        distinct_exact: False when ``distinct`` is an estimate.
        min: Smallest value: float (numeric), ISO string (datetime) or string.
        max: Largest value, like ``min``.
        mean: Mean of the finite values; for booleans the rate of True.
        std: Population standard deviation (``ddof=0``) of the finite values.
        quantiles: Numeric: value at each level of :data:`QUANTILE_KEYS`.
        histogram: Numeric: 20 equal-width bins over the finite ``[min, max]``.
        top_k: Categorical, text, boolean: up to 20 ``(str(value), count)``, most
            frequent first, ties in ascending value order.
        categories: Categorical only: every value, sorted.
        integral: Numeric: whether every finite value is a whole number (always
            for integer columns; for floats, e.g. integers with missing values
            read as floats). ``None`` for other kinds and for profiles stored
            before this statistic existed.
    """

    name: str
    arrow_type: str
    kind: ColumnKind
    count: int
    missing: int
    distinct: int
    distinct_exact: bool
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] | None = None
    histogram: Histogram | None = None
    top_k: tuple[tuple[str, int], ...] | None = None
    categories: tuple[str, ...] | None = None
    integral: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; non-finite floats become ``"inf"``, ``"-inf"``, ``"nan"``."""
        numeric = self.kind == "numeric"
        return {
            "name": self.name,
            "arrow_type": self.arrow_type,
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "distinct": self.distinct,
            "distinct_exact": self.distinct_exact,
            "min": _encode(self.min) if numeric else self.min,
            "max": _encode(self.max) if numeric else self.max,
            "mean": _encode(self.mean),
            "std": _encode(self.std),
            "quantiles": None
            if self.quantiles is None
            else {k: _encode(v) for k, v in self.quantiles.items()},
            "histogram": None
            if self.histogram is None
            else {
                "edges": [_encode(e) for e in self.histogram.edges],
                "counts": list(self.histogram.counts),
            },
            "top_k": None if self.top_k is None else [[v, n] for v, n in self.top_k],
            "categories": None if self.categories is None else list(self.categories),
            "integral": self.integral,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnProfile:
        """Rebuild a column profile written by :meth:`to_dict`."""
        numeric = d["kind"] == "numeric"
        hist = d.get("histogram")
        quantiles = d.get("quantiles")
        top_k = d.get("top_k")
        categories = d.get("categories")
        return cls(
            name=str(d["name"]),
            arrow_type=str(d["arrow_type"]),
            kind=cast(ColumnKind, d["kind"]),
            count=int(d["count"]),
            missing=int(d["missing"]),
            distinct=int(d["distinct"]),
            distinct_exact=bool(d["distinct_exact"]),
            min=_decode(d.get("min")) if numeric else d.get("min"),
            max=_decode(d.get("max")) if numeric else d.get("max"),
            mean=_decode(d.get("mean")),
            std=_decode(d.get("std")),
            quantiles=None
            if quantiles is None
            else {str(k): _decode_float(v) for k, v in quantiles.items()},
            histogram=None
            if hist is None
            else Histogram(
                edges=tuple(_decode_float(e) for e in hist["edges"]),
                counts=tuple(int(n) for n in hist["counts"]),
            ),
            top_k=None if top_k is None else tuple((str(v), int(n)) for v, n in top_k),
            categories=None if categories is None else tuple(str(c) for c in categories),
            integral=None if d.get("integral") is None else bool(d["integral"]),
        )


@dataclass(frozen=True)
class Profile:
    """The profile of a dataset version.

    Attributes:
        row_count: Number of rows.
        columns: Column name to :class:`ColumnProfile`, in data order.
    """

    row_count: int
    columns: dict[str, ColumnProfile]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (columns as a list, in data order)."""
        return {
            "format": _FORMAT_VERSION,
            "row_count": self.row_count,
            "columns": [c.to_dict() for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        """Rebuild a profile written by :meth:`to_dict`.

        Raises:
            ValueError: ``d`` was written by a newer, incompatible format.
        """
        version = d.get("format", _FORMAT_VERSION)
        if version != _FORMAT_VERSION:
            raise ValueError(
                f"The profile format must be {_FORMAT_VERSION}. Got {version!r} instead."
            )
        columns = [ColumnProfile.from_dict(c) for c in d["columns"]]
        return cls(row_count=int(d["row_count"]), columns={c.name: c for c in columns})

    def to_json(self) -> str:
        """Compact, standard JSON (no ``NaN``/``Infinity`` literals)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Profile:
        """Rebuild a profile written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def build_profile(batches: Callable[[], Iterable[pa.RecordBatch]], schema: pa.Schema) -> Profile:
    """Profile data given as a re-iterable stream of record batches.

    ``batches()`` is called once, or twice when a numeric column needs a second
    pass (histogram over the final range, quantiles); both calls must yield the
    same rows in the same order.

    Args:
        batches: Returns a fresh iterable over the data's batches on each call.
        schema: The batches' (normalised) schema.

    Returns:
        The profile.

    Raises:
        DataSourceError: A batch does not match ``schema``, or the second pass
            did not yield the rows of the first.

    Example:
        >>> import pyarrow as pa
        >>> t = pa.table({"n": [3, 1, 2]})
        >>> build_profile(lambda: t.to_batches(), t.schema).columns["n"].max
        3.0
    """
    accumulators = [column_accumulator(field.type) for field in schema]
    row_count = 0
    for batch in batches():
        _check_batch(batch, schema)
        row_count += batch.num_rows
        for i, acc in enumerate(accumulators):
            acc.update(batch.column(i))

    second = [i for i, acc in enumerate(accumulators) if acc.needs_second_pass]
    if second:
        position = 0
        for batch in batches():
            _check_batch(batch, schema)
            for i in second:
                accumulators[i].update_second(batch.column(i), position)
            position += batch.num_rows
        if position != row_count:
            raise DataSourceError(
                f"The data changed while it was profiled: the first pass read {row_count} "
                f"rows, the second {position}."
            )

    columns = {
        f.name: _column_profile(f, acc.finish())
        for f, acc in zip(schema, accumulators, strict=True)
    }
    return Profile(row_count=row_count, columns=columns)


def profile_table(table: pa.Table) -> Profile:
    """Profile an in-memory Arrow table.

    Args:
        table: The data (ideally normalised; other integer, float and string
            types are profiled as their normalised counterparts).

    Returns:
        The profile.
    """
    return build_profile(table.to_batches, table.schema)


def _check_batch(batch: pa.RecordBatch, schema: pa.Schema) -> None:
    if batch.schema.names != schema.names or batch.schema.types != schema.types:
        raise DataSourceError(
            f"Every batch must have the schema {schema.names}/{schema.types}. "
            f"Got {batch.schema.names}/{batch.schema.types} instead."
        )


def _column_profile(f: pa.Field, stats: dict[str, Any]) -> ColumnProfile:
    if stats.get("quantiles") is not None:
        stats["quantiles"] = dict(zip(QUANTILE_KEYS, stats["quantiles"], strict=True))
    if stats.get("histogram") is not None:
        stats["histogram"] = Histogram(*stats["histogram"])
    return ColumnProfile(name=f.name, arrow_type=str(f.type), **stats)


def _encode(x: float | str | None) -> float | str | None:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def _decode(x: object) -> float | None:
    return None if x is None else _decode_float(x)


def _decode_float(x: object) -> float:
    if isinstance(x, str):
        return float(x)  # "inf", "-inf", "nan"
    return float(cast(float, x))
