"""Mergeable, bounded, deterministic column sketches for drift checks.

A :class:`TableSketch` summarises a table in one streaming pass over Arrow record
batches, vectorised per batch. Its state is bounded whatever the row count, and the
sketch of a table equals the merge of the sketches of any partition of its rows:

* **Numeric** columns count values in *fixed* bins of ``z = (x - center) / scale``,
  where ``center`` and ``scale`` come from the *reference* (its mean and standard
  deviation) and are carried in the column's :class:`SketchLayout`, so a reference and
  a current sketch share their bins. The bins (:data:`Z_EDGES`) are 0.02 wide on
  ``[-8, 8]``, then grow by a factor 1.1 out to ``|z| = 1e12``, plus an underflow and
  an overflow bin: 1,346 counters. Missing (null and NaN) and ``±inf`` values are
  counted apart. Merging adds counters, so the counts of a merge are *exactly* those
  of one pass; the moments (count, mean, ``m2``, used for display only) are merged with
  Chan's formulas and agree up to floating-point rounding.
* **Categorical** columns (strings, booleans, dictionaries, and integers whose layout
  says so) count every category exactly while there are at most ``limit`` of them
  (default 10,000). Beyond, they keep the ``limit`` categories with the smallest 64-bit
  hashes and count the rest as ``other``: that set depends only on the data, not on
  how it was split, so merging stays exact. The kept hashes are a *k minimum values*
  sketch of the distinct count (the estimator of ``loopml.data``'s ``DistinctSketch``,
  without storing a second copy of the hashes). Category names are kept to 128
  characters for display; the comparison goes by hash of the full value.

State: a numeric column is about 11 kB; a categorical one at most ``limit`` x
(16 bytes + name); 25 columns stay well under 50 MB (a test pins it).

Serialisation is JSON (orjson) with base64 NumPy buffers, never pickle; :meth:`TableSketch.
from_bytes` validates everything it reads and raises :class:`~loopml.errors.InvalidParameter`
on malformed bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data._sketches import Moments, hash_objects, merge_moments
from loopml.errors import InvalidParameter
from loopml.monitoring._parquet_columns import column_chunks, is_parquet_file
from loopml.monitoring._sketch_values import (
    array_b64,
    array_from_b64,
    float64_values,
    is_categorical_type,
    is_numeric_type,
    json_float,
    number_view,
    require_valid,
    stored_count,
    stored_float,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.parquet as pq

    from loopml.data._profile import Profile

__all__ = [
    "CATEGORY_LIMIT",
    "MAX_SKETCH_BYTES",
    "Z_EDGES",
    "ColumnSketch",
    "SketchData",
    "SketchKind",
    "SketchLayout",
    "TableSketch",
    "infer_layout",
    "layout_from_profile",
    "sketch",
]

SketchKind = Literal["numeric", "categorical"]

#: Default bound on the categories counted exactly per column.
CATEGORY_LIMIT = 10_000

#: Largest serialised sketch :meth:`TableSketch.from_bytes` accepts.
MAX_SKETCH_BYTES = 256 * 1024 * 1024

_NAME_CHARS = 128
_LINEAR_HALF = 400  # bins of width 1/50 on each side of 0, out to |z| = 8
_LINEAR_SCALE = 50.0
_TAIL = 8.0 * 1.1 ** np.arange(math.ceil(math.log(1e12 / 8.0) / math.log(1.1)) + 1)
_T = _TAIL.size - 1  # tail bins on each side

#: The fixed bin edges in units of the reference's standard deviation; bin ``i`` is
#: ``[Z_EDGES[i - 1], Z_EDGES[i])``, bin 0 and the last bin are under- and overflow.
Z_EDGES: npt.NDArray[np.float64] = np.concatenate(
    [
        -_TAIL[::-1],
        np.arange(-_LINEAR_HALF + 1, _LINEAR_HALF) / _LINEAR_SCALE,
        _TAIL,
    ]
)
_NBINS = Z_EDGES.size + 1

SketchData: TypeAlias = (
    "pa.Table | pd.DataFrame | pq.ParquetFile | Callable[[], Iterable[pa.RecordBatch]]"
)
"""What :func:`sketch` reads: a table, a DataFrame, a Parquet file (read one column at a
time), or a callable returning an iterable of record batches (called once per pass)."""


@dataclass(frozen=True)
class SketchLayout:
    """How one column is sketched; a reference and a current sketch must share it.

    Attributes:
        kind: ``numeric`` (fixed bins of ``z``) or ``categorical`` (category counts).
        center: Numeric: the reference's mean (``z``'s origin).
        scale: Numeric: the reference's standard deviation (``z``'s unit).
    """

    kind: SketchKind
    center: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise InvalidParameter(
                "The 'kind' parameter of SketchLayout must be 'numeric' or 'categorical'. "
                f"Got {self.kind!r} instead."
            )
        if not (math.isfinite(self.center) and math.isfinite(self.scale) and self.scale > 0):
            raise InvalidParameter(
                "The 'center' and 'scale' parameters of SketchLayout must be finite, with "
                f"scale > 0. Got center={self.center!r}, scale={self.scale!r} instead."
            )

    @classmethod
    def numeric(cls, mean: float | None, std: float | None) -> SketchLayout:
        """The layout of a numeric column whose reference has this mean and std.

        A missing or non-finite mean centres on 0. A standard deviation that is 0 (a
        constant reference), missing or non-finite falls back to ``max(|center|, 1) /
        1000``: bins then resolve relative changes of 0.002 %, so any value other
        than the constant lands in a bin of its own and is seen as drift.
        """
        center = mean if mean is not None and math.isfinite(mean) else 0.0
        if std is not None and math.isfinite(std) and std > 0:
            return cls("numeric", center, std)
        return cls("numeric", center, max(abs(center), 1.0) / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"kind": self.kind, "center": self.center, "scale": self.scale}


class ColumnSketch:
    """The sketch of one column (see the module docstring).

    Args:
        layout: How the column is sketched.
        limit: Categorical: the most categories counted exactly.
    """

    def __init__(self, layout: SketchLayout, limit: int = CATEGORY_LIMIT) -> None:
        if limit < 1:
            raise InvalidParameter(
                f"The 'limit' parameter of ColumnSketch must be >= 1. Got {limit!r} instead."
            )
        self.layout = layout
        self.limit = limit
        self.rows = 0
        self.missing = 0
        # numeric
        self.neg_inf = 0
        self.pos_inf = 0
        self.min = math.inf
        self.max = -math.inf
        self.moments = Moments()
        self.counts: npt.NDArray[np.int64] = np.zeros(
            _NBINS if layout.kind == "numeric" else 0, dtype=np.int64
        )
        # categorical: sorted unique hashes, their names and counts (aligned with ``counts``)
        self.hashes: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self.names: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        self.other = 0
        self.capped = False

    @property
    def kind(self) -> SketchKind:
        """``numeric`` or ``categorical``."""
        return self.layout.kind

    @property
    def count(self) -> int:
        """Non-missing values seen."""
        return self.rows - self.missing

    @property
    def distinct(self) -> int:
        """Categorical: distinct values, exact unless :attr:`capped` (then a KMV estimate)."""
        if not self.capped:
            return int(self.hashes.size)
        kth = (float(self.hashes[-1]) + 1.0) / 2.0**64
        return round((self.limit - 1) / kth)

    def update(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Add a batch of the column's values."""
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        for arr in chunks:
            self.rows += len(arr)
            if self.layout.kind == "numeric":
                self._update_numeric(arr)
            else:
                self._update_categorical(arr)

    def _update_numeric(self, arr: pa.Array) -> None:
        if not is_numeric_type(arr.type):
            raise InvalidParameter(
                f"A numeric sketch needs integers, floats or decimals. Got {arr.type} instead."
            )
        nulls = arr.null_count
        if nulls:
            arr = arr.drop_null()
        x = float64_values(arr)
        finite_mask = np.isfinite(x)
        if finite_mask.all():
            finite = x
        else:
            nan = np.isnan(x)
            nulls += int(nan.sum())
            self.pos_inf += int(np.count_nonzero(x == math.inf))
            self.neg_inf += int(np.count_nonzero(x == -math.inf))
            finite = x[finite_mask]
        self.missing += nulls
        if finite.size == 0:
            return
        self.min = min(self.min, float(finite.min()))
        self.max = max(self.max, float(finite.max()))
        self.moments.update(finite)
        self.counts += np.bincount(_bin_index(finite, self.layout), minlength=_NBINS)

    def _update_categorical(self, arr: pa.Array) -> None:
        value_type = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
        if not is_categorical_type(value_type):
            raise InvalidParameter(
                "A categorical sketch needs strings, booleans, integers or dictionaries of "
                f"them. Got {arr.type} instead."
            )
        self.missing += arr.null_count
        if arr.null_count:
            arr = arr.drop_null()
        if len(arr) == 0:
            return
        if pa.types.is_dictionary(arr.type):
            # Count the codes, then name them: no decoding of every row. A dictionary
            # may repeat a value; equal values get equal hashes and are summed below.
            vc = pc.value_counts(arr.indices)
            values = arr.dictionary.take(vc.field("values"))
        else:
            vc = pc.value_counts(arr)
            values = vc.field("values")
        text = values.cast(pa.large_string())
        hashes = hash_objects(text)
        counts = number_view(vc.field("counts")).astype(np.int64)
        if self.capped:  # above the threshold: certainly not among the smallest hashes
            keep = hashes <= self.hashes[-1]
            self.other += int(counts[~keep].sum())
            if not keep.all():
                text = text.filter(pa.array(keep))
                hashes, counts = hashes[keep], counts[keep]
        names = np.asarray(pc.utf8_slice_codeunits(text, 0, _NAME_CHARS).to_pylist(), dtype=object)
        self._absorb(hashes, names, counts)

    def _absorb(
        self,
        hashes: npt.NDArray[np.uint64],
        names: npt.NDArray[np.object_],
        counts: npt.NDArray[np.int64],
    ) -> None:
        h = np.concatenate([self.hashes, hashes])
        n = np.concatenate([self.names, names])
        c = np.concatenate([self.counts, counts])
        order = np.argsort(h, kind="stable")
        h, n, c = h[order], n[order], c[order]
        if h.size:
            starts = np.flatnonzero(np.concatenate([[True], h[1:] != h[:-1]]))
            h, n, c = h[starts], n[starts], np.add.reduceat(c, starts)
        if h.size > self.limit:
            self.capped = True
            self.other += int(c[self.limit :].sum())
            h, n, c = h[: self.limit], n[: self.limit], c[: self.limit]
        self.hashes, self.names, self.counts = h, n, c

    def merge(self, other: ColumnSketch) -> ColumnSketch:
        """A new sketch of both sketches' values (they must share layout and limit)."""
        if other.layout != self.layout or other.limit != self.limit:
            raise InvalidParameter(
                "Only sketches with the same layout and limit merge. Got "
                f"{self.layout}/{self.limit} and {other.layout}/{other.limit} instead."
            )
        out = ColumnSketch(self.layout, self.limit)
        out.rows = self.rows + other.rows
        out.missing = self.missing + other.missing
        if self.kind == "numeric":
            out.neg_inf = self.neg_inf + other.neg_inf
            out.pos_inf = self.pos_inf + other.pos_inf
            out.min, out.max = min(self.min, other.min), max(self.max, other.max)
            out.moments = merge_moments(self.moments, other.moments)
            out.counts = self.counts + other.counts
            return out
        out.other = self.other + other.other
        out.capped = self.capped or other.capped
        out.hashes, out.names, out.counts = self.hashes, self.names, self.counts
        if other.capped and other.hashes.size:
            # Categories of ``self`` above other's threshold may be absent from it.
            keep = out.hashes <= other.hashes[-1]
            out.other += int(out.counts[~keep].sum())
            out.hashes, out.names, out.counts = out.hashes[keep], out.names[keep], out.counts[keep]
        hashes, names, counts = other.hashes, other.names, other.counts
        if self.capped and self.hashes.size:
            keep = hashes <= self.hashes[-1]
            out.other += int(counts[~keep].sum())
            hashes, names, counts = hashes[keep], names[keep], counts[keep]
        out._absorb(hashes, names, counts)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (buffers as base64)."""
        d: dict[str, Any] = {
            "layout": self.layout.to_dict(),
            "limit": self.limit,
            "rows": self.rows,
            "missing": self.missing,
            "counts": array_b64(self.counts),
        }
        if self.kind == "numeric":
            m = self.moments
            return d | {
                "neg_inf": self.neg_inf,
                "pos_inf": self.pos_inf,
                "min": json_float(self.min),
                "max": json_float(self.max),
                "moments": [m.n, json_float(m.mean), json_float(m.m2)],
            }
        return d | {
            "hashes": array_b64(self.hashes),
            "names": self.names.tolist(),
            "other": self.other,
            "capped": self.capped,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnSketch:
        """Rebuild (and validate) a sketch written by :meth:`to_dict`."""
        require_valid(isinstance(d, Mapping), "a column must be an object")
        lay = d.get("layout")
        require_valid(isinstance(lay, Mapping), "a column's layout must be an object")
        assert isinstance(lay, Mapping)  # for mypy: require_valid raised otherwise
        layout = SketchLayout(
            kind=cast(SketchKind, lay.get("kind")),
            center=stored_float(lay.get("center")),
            scale=stored_float(lay.get("scale")),
        )
        out = cls(layout, stored_count(d.get("limit"), "limit", minimum=1))
        out.rows = stored_count(d.get("rows"), "rows")
        out.missing = stored_count(d.get("missing"), "missing")
        counts = array_from_b64(d.get("counts"), np.int64, "counts")
        require_valid(bool((counts >= 0).all()), "counts must be >= 0")
        if layout.kind == "numeric":
            require_valid(counts.size == _NBINS, f"a numeric sketch has {_NBINS} counts")
            out.counts = counts
            out.neg_inf = stored_count(d.get("neg_inf"), "neg_inf")
            out.pos_inf = stored_count(d.get("pos_inf"), "pos_inf")
            out.min, out.max = (
                stored_float(d.get("min"), math.inf),
                stored_float(d.get("max"), -math.inf),
            )
            require_valid(
                (out.min <= out.max) == bool(counts.sum()), "min <= max exactly when values exist"
            )
            moments = d.get("moments")
            require_valid(
                isinstance(moments, list) and len(moments) == 3, "moments must be [n, m, m2]"
            )
            assert isinstance(moments, list)
            out.moments = Moments(
                stored_count(moments[0], "moments"),
                stored_float(moments[1], 0.0),
                stored_float(moments[2], 0.0),
            )
            finite = int(counts.sum())
            require_valid(out.moments.n == finite, "moments count must equal the bin counts")
            require_valid(
                out.rows == out.missing + out.neg_inf + out.pos_inf + finite,
                "rows must equal missing + infinities + binned values",
            )
        else:
            hashes = array_from_b64(d.get("hashes"), np.uint64, "hashes")
            names = d.get("names")
            require_valid(isinstance(names, list), "names must be a list of strings")
            assert isinstance(names, list)
            require_valid(
                isinstance(names, list) and all(isinstance(n, str) for n in names),
                "names must be a list of strings",
            )
            require_valid(
                hashes.size == counts.size == len(names) <= out.limit,
                "hashes, names and counts must align, at most 'limit' of them",
            )
            require_valid(
                bool((hashes[1:] > hashes[:-1]).all()), "hashes must be sorted and unique"
            )
            require_valid(all(len(n) <= _NAME_CHARS for n in names), "names are at most 128 chars")
            out.hashes, out.counts = hashes, counts
            out.names = np.asarray(names, dtype=object).reshape(-1)
            out.other = stored_count(d.get("other"), "other")
            capped = d.get("capped")
            require_valid(isinstance(capped, bool), "capped must be a boolean")
            out.capped = bool(capped)
            require_valid(
                out.rows == out.missing + out.other + int(counts.sum()),
                "rows must equal missing + other + category counts",
            )
        return out


class TableSketch:
    """The sketches of a table's columns, with its row count.

    Args:
        layout: Column name to :class:`SketchLayout`, in column order.
        limit: The categorical columns' category bound.
    """

    def __init__(self, layout: Mapping[str, SketchLayout], limit: int = CATEGORY_LIMIT) -> None:
        self.rows = 0
        self.limit = limit
        self.columns: dict[str, ColumnSketch] = {
            name: ColumnSketch(lay, limit) for name, lay in layout.items()
        }

    @property
    def layout(self) -> dict[str, SketchLayout]:
        """Column name to layout."""
        return {name: col.layout for name, col in self.columns.items()}

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add a batch of rows; it must hold every sketched column."""
        missing = [name for name in self.columns if name not in batch.schema.names]
        if missing:
            raise InvalidParameter(
                f"Every sketched column must be in each batch. Got a batch without {missing}."
            )
        for name, col in self.columns.items():
            try:
                col.update(batch.column(name))
            except InvalidParameter as exc:
                raise InvalidParameter(f"Column {name!r}: {exc}") from None
        self.rows += batch.num_rows

    def merge(self, other: TableSketch) -> TableSketch:
        """A new sketch of both sketches' rows (they must share their layout)."""
        if self.layout != other.layout:
            raise InvalidParameter(
                "Only table sketches with the same layout merge. Got columns "
                f"{list(self.columns)} and {list(other.columns)} (or other bins) instead."
            )
        out = TableSketch({}, self.limit)
        out.rows = self.rows + other.rows
        out.columns = {n: c.merge(other.columns[n]) for n, c in self.columns.items()}
        return out

    def to_bytes(self) -> bytes:
        """The sketch as JSON bytes (no pickle); read back with :meth:`from_bytes`."""
        return orjson.dumps(
            {
                "format": "loopml.table_sketch",
                "version": 1,
                "rows": self.rows,
                "limit": self.limit,
                "columns": [[name, col.to_dict()] for name, col in self.columns.items()],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TableSketch:
        """Read a sketch written by :meth:`to_bytes`, validating every field.

        Raises:
            InvalidParameter: The bytes are not a valid sketch (the message says why).
        """
        require_valid(
            isinstance(data, bytes | bytearray | memoryview), "a sketch must be given as bytes"
        )
        require_valid(
            len(data) <= MAX_SKETCH_BYTES, f"a sketch is at most {MAX_SKETCH_BYTES} bytes"
        )
        try:
            d = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidParameter(f"The sketch is not valid: not JSON ({exc}).") from None
        require_valid(isinstance(d, dict), "a sketch must be a JSON object")
        require_valid(
            d.get("format") == "loopml.table_sketch", "format must be 'loopml.table_sketch'"
        )
        require_valid(d.get("version") == 1, "version must be 1")
        out = cls({}, stored_count(d.get("limit"), "limit", minimum=1))
        out.rows = stored_count(d.get("rows"), "rows")
        columns = d.get("columns")
        require_valid(isinstance(columns, list), "columns must be a list")
        for item in columns:
            require_valid(
                isinstance(item, list) and len(item) == 2 and isinstance(item[0], str),
                "each column must be [name, sketch]",
            )
            require_valid(item[0] not in out.columns, f"column {item[0]!r} appears twice")
            col = ColumnSketch.from_dict(item[1])
            require_valid(col.rows == out.rows, f"column {item[0]!r} must have the table's rows")
            require_valid(col.limit == out.limit, f"column {item[0]!r} must have the table's limit")
            out.columns[item[0]] = col
        return out


def sketch(
    data: SketchData | pa.RecordBatch,
    layout: Mapping[str, SketchLayout] | None = None,
    *,
    columns: Sequence[str] | None = None,
    kinds: Mapping[str, SketchKind] | None = None,
    limit: int = CATEGORY_LIMIT,
) -> TableSketch:
    """Sketch a table in one pass (two without ``layout``: moments, then bins).

    Args:
        data: A ``pa.Table``, a ``pd.DataFrame``, a record batch, a
            ``pyarrow.parquet.ParquetFile`` (read one column at a time, which holds one
            column's batch in memory, not a row group's), or a callable that returns an
            iterable of record batches (called once per pass).
        layout: Per-column layouts, e.g. a reference sketch's :attr:`TableSketch.layout`;
            ``None`` infers them from ``data`` with :func:`infer_layout`.
        columns: The columns to sketch; default every column in ``layout``, or every
            numeric, string, boolean and dictionary column when inferring.
        kinds: Per-column kind overrides when inferring (e.g. integers as categorical).
        limit: The most categories counted exactly per categorical column.

    Returns:
        The :class:`TableSketch`.

    Raises:
        InvalidParameter: A column is missing or of a type its layout cannot sketch.

    Example:
        >>> import pyarrow as pa
        >>> s = sketch(pa.table({"x": [1.0, 2.0, None], "c": ["a", "b", "a"]}))
        >>> s.rows, s.columns["x"].missing, s.columns["c"].distinct
        (3, 1, 2)
    """
    batches, _ = _source(data)
    if layout is None:
        source = data if is_parquet_file(data) else batches  # by column, or the batches once
        layout = infer_layout(source, columns=columns, kinds=kinds)
    elif columns is not None:
        unknown = [c for c in columns if c not in layout]
        if unknown:
            raise InvalidParameter(
                "The 'columns' parameter of sketch must name columns of the layout. "
                f"Got {unknown} instead."
            )
        layout = {c: layout[c] for c in columns}
    out = TableSketch(layout, limit)
    if is_parquet_file(data):
        _sketch_columns(out, data)
    else:
        for batch in batches():
            out.update(batch)
    return out


def _sketch_columns(out: TableSketch, file: pq.ParquetFile) -> None:
    """Sketch ``file`` into ``out`` column by column; the same state as batch by batch."""
    missing = [name for name in out.columns if name not in file.schema_arrow.names]
    if missing:
        raise InvalidParameter(
            f"Every sketched column must be in the file. Got a file without {missing}."
        )
    for name, col in out.columns.items():
        for values in column_chunks(file, name):
            try:
                col.update(values)
            except InvalidParameter as exc:
                raise InvalidParameter(f"Column {name!r}: {exc}") from None
    out.rows = file.metadata.num_rows


def infer_layout(
    data: SketchData | pa.RecordBatch,
    *,
    columns: Sequence[str] | None = None,
    kinds: Mapping[str, SketchKind] | None = None,
) -> dict[str, SketchLayout]:
    """Layouts from a pass over ``data`` (the reference): kinds by type, numeric moments.

    Numeric types are ``numeric`` and strings, booleans and dictionaries
    ``categorical`` unless ``kinds`` says otherwise; other types (timestamps, nested)
    are left out unless named in ``columns``, which is an error.

    Raises:
        InvalidParameter: A named column is absent or cannot be sketched as asked.
    """
    batches, schema = _source(data)
    kinds = dict(kinds or {})
    chosen = {} if schema is None else _choose_kinds(schema, columns, kinds)
    moments = {n: Moments() for n, k in chosen.items() if k == "numeric"}
    if is_parquet_file(data):
        for name, mom in moments.items():
            for values in column_chunks(data, name):
                _add_finite(mom, values)
    else:
        for batch in batches():
            if schema is None:  # a callable source: the first batch tells the schema
                schema = batch.schema
                chosen = _choose_kinds(schema, columns, kinds)
                moments = {n: Moments() for n, k in chosen.items() if k == "numeric"}
            for name, mom in moments.items():
                _add_finite(mom, batch.column(name))
    return {
        n: SketchLayout.numeric(moments[n].mean if moments[n].n else None, moments[n].std)
        if k == "numeric"
        else SketchLayout("categorical")
        for n, k in chosen.items()
    }


def _add_finite(moments: Moments, values: pa.Array) -> None:
    x = float64_values(values.drop_null())
    moments.update(x[np.isfinite(x)])


def layout_from_profile(
    profile: Profile,
    *,
    columns: Sequence[str] | None = None,
    kinds: Mapping[str, SketchKind] | None = None,
) -> dict[str, SketchLayout]:
    """Layouts from a dataset version's stored profile (no re-read of the data).

    Numeric profile columns use their mean and std; boolean and categorical columns
    (and text columns, whose categories are then capped) are categorical. Datetime
    and other columns are left out unless named, which is an error.

    Raises:
        InvalidParameter: A named column is not in the profile or cannot be sketched.
    """
    kinds = dict(kinds or {})
    names = list(profile.columns) if columns is None else list(columns)
    out: dict[str, SketchLayout] = {}
    for name in names:
        col = profile.columns.get(name)
        if col is None:
            raise InvalidParameter(
                f"The 'columns' parameter of layout_from_profile must name profiled columns. "
                f"Got {name!r} instead."
            )
        kind = kinds.get(name) or {
            "numeric": "numeric",
            "boolean": "categorical",
            "categorical": "categorical",
            "text": "categorical",
        }.get(col.kind)
        if kind is None:
            if columns is not None:
                raise InvalidParameter(
                    f"Column {name!r} is {col.kind}; only numeric and categorical columns "
                    "can be sketched."
                )
            continue
        out[name] = (
            SketchLayout.numeric(col.mean, col.std)
            if kind == "numeric"
            else SketchLayout("categorical")
        )
    return out


def _choose_kinds(
    schema: pa.Schema, columns: Sequence[str] | None, kinds: Mapping[str, SketchKind]
) -> dict[str, SketchKind]:
    names = schema.names if columns is None else list(columns)
    out: dict[str, SketchKind] = {}
    for name in names:
        if name not in schema.names:
            raise InvalidParameter(f"Column {name!r} is not in the data.")
        t = schema.field(name).type
        natural: SketchKind | None = (
            "numeric"
            if is_numeric_type(t)
            else "categorical"
            if is_categorical_type(t) or pa.types.is_dictionary(t)
            else None
        )
        kind = kinds.get(name, natural)
        if kind is None:
            if columns is not None:
                raise InvalidParameter(
                    f"Column {name!r} is {t}; only numeric and categorical columns can be sketched."
                )
            continue
        fits = (
            is_numeric_type(t)
            if kind == "numeric"
            else natural == "categorical" or (pa.types.is_integer(t))
        )
        if not fits:
            raise InvalidParameter(
                f"The 'kinds' parameter must give each column a kind its type allows. Got "
                f"{kind!r} for {name!r} of type {t} instead."
            )
        out[name] = kind
    return out


def _source(
    data: SketchData | pa.RecordBatch,
) -> tuple[Callable[[], Iterable[pa.RecordBatch]], pa.Schema | None]:
    """The batches of ``data`` and, when known without reading, its schema."""
    if isinstance(data, pa.RecordBatch):
        return (lambda: [data]), data.schema
    if isinstance(data, pa.Table):
        return data.to_batches, data.schema
    if is_parquet_file(data):
        return data.iter_batches, data.schema_arrow
    if callable(data):
        return data, None
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        table = frame_to_table(data)
        return table.to_batches, table.schema
    raise InvalidParameter(
        "The 'data' parameter of sketch must be a pyarrow Table, a pandas DataFrame or a "
        f"callable returning record batches. Got {type(data).__name__} instead."
    )


def frame_to_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table, or a typed error naming the column that cannot be one.

    Raises:
        InvalidParameter: column names repeat, or a column mixes kinds of values (text
            and numbers) that have no one Arrow type.
    """
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidParameter(
            f"The data has repeated column names: {', '.join(map(repr, repeated))}; "
            "each column must be named once."
        )
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        for name, column in zip(names, frame.columns, strict=True):
            try:
                pa.array(frame[column], from_pandas=True)
            except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
                raise InvalidParameter(
                    f"Column {name!r} mixes kinds of values that have no one type ({exc}); "
                    "cast it (to str or to float) first."
                ) from None
        raise


def _bin_index(finite: npt.NDArray[np.float64], layout: SketchLayout) -> npt.NDArray[np.intp]:
    """The bin of each finite value (see :data:`Z_EDGES`)."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = (finite - layout.center) / layout.scale
        k = np.floor(z * _LINEAR_SCALE)
    np.clip(k, -_LINEAR_HALF - 1, _LINEAR_HALF, out=k)
    idx = (k + (_LINEAR_HALF + 1 + _T)).astype(np.intp)
    # Only the values beyond |z| = 8 need a search among the tail edges.
    tail = np.flatnonzero((k < -_LINEAR_HALF) | (k >= _LINEAR_HALF))
    if tail.size:
        idx[tail] = np.searchsorted(Z_EDGES, z[tail], side="right")
    return idx
