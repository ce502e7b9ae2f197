"""The built-in materializers: how each kind of value is written to a folder.

Each class is small: ``handles`` is a cheap type test that never imports a
library the caller has not imported already (a value cannot be a polars frame
unless polars is loaded), ``save`` writes files and returns the value's content
hash, ``load`` reads them back. Heavy libraries are imported inside the methods.

Content hashes identify the *value*, not the bytes written:

- frames (pandas, pyarrow, polars): :func:`loopml.data._hashing.content_hash` of
  the normalised Arrow table, so equal data hashes equally whichever library
  holds it and whatever Parquet bytes are written (the dtype details that
  normalisation erases, ``int32`` vs ``int64`` or a categorical vs its strings,
  do not change it). A pandas frame with its default ``RangeIndex`` and string
  column labels hashes exactly like the dataset registry hashes the same data;
  any other index (stored, and restored on load) or non-string labels are mixed
  into the hash;
- NumPy: SHA-256 of the dtype descriptor, the shape and the C-ordered bytes;
- JSON: SHA-256 of the canonical text (sorted keys, no spaces, ASCII, ``NaN``
  and ``Infinity`` spelt as Python's :mod:`json` spells them);
- scikit-learn: SHA-256 of the skops file's canonical content (see
  :func:`_skops_hash`; the file bytes themselves are not deterministic);
- dataset versions: the version's data content hash;
- cloudpickle: SHA-256 of the pickle bytes (equal values may pickle differently,
  which costs a cache miss, never a wrong hit).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml._skops import load_skops
from loopml.errors import MaterializerError

if TYPE_CHECKING:
    from loopml.pipelines._materializers import Materializer

__all__ = [
    "BUILTIN_MATERIALIZERS",
    "CloudpickleMaterializer",
    "DatasetVersionMaterializer",
    "JsonMaterializer",
    "NumpyMaterializer",
    "PandasMaterializer",
    "PolarsMaterializer",
    "PyarrowMaterializer",
    "SklearnMaterializer",
]

_PARQUET = "data.parquet"


def _sha256(*parts: bytes | memoryview) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _module(name: str) -> Any:
    """The module ``name`` if the process has imported it, else None (never imports)."""
    return sys.modules.get(name)


def _table_hash(table: Any) -> str:
    from loopml.data._hashing import content_hash

    return content_hash(table)


# --- frames ------------------------------------------------------------------


class PandasMaterializer:
    """pandas ``DataFrame`` → Parquet, with pyarrow's pandas metadata.

    The metadata restores dtypes (categoricals with their categories and order,
    time-zone-aware datetimes, nullable integers) and the index: a
    ``RangeIndex`` is kept as metadata only, any other index as columns.
    ``DataFrame.attrs`` and a ``DatetimeIndex``'s ``freq`` are not kept.
    """

    name = "pandas.parquet"
    executable = False

    def handles(self, value: object) -> bool:
        pd = _module("pandas")  # subclasses go elsewhere: they would load as a plain frame
        return pd is not None and type(value) is pd.DataFrame

    def save(self, value: object, folder: Path) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame: Any = value
        table = pa.Table.from_pandas(frame, preserve_index=None)
        pq.write_table(table, folder / _PARQUET)
        # pyarrow appends the index columns it materialises (a RangeIndex is
        # metadata only): the data columns are the first ones.
        width = len(frame.columns)
        data = table.select(list(range(width))) if table.num_columns > width else table
        return self._hash(frame, data)

    @staticmethod
    def _hash(frame: Any, data_table: Any) -> str:
        import pandas as pd
        import pyarrow as pa

        data = _table_hash(data_table)
        index = frame.index
        plain = (
            isinstance(index, pd.RangeIndex)
            and (index.start, index.step, index.name) == (0, 1, None)
            and all(isinstance(c, str) for c in frame.columns)
        )
        if plain:  # exactly what the dataset registry computes for the same data
            return data
        levels = {str(i): pa.array(index.get_level_values(i)) for i in range(index.nlevels)}
        labels = repr([list(frame.columns), list(frame.columns.names), list(index.names)])
        return _sha256(
            b"loopml-pandas-frame-v1",
            data.encode(),
            _table_hash(pa.table(levels)).encode(),
            labels.encode(),
        )

    def load(self, folder: Path) -> object:
        import pyarrow.parquet as pq

        return pq.read_table(folder / _PARQUET).to_pandas()


class PyarrowMaterializer:
    """``pyarrow.Table`` → Parquet (schema and its metadata kept)."""

    name = "pyarrow.parquet"
    executable = False

    def handles(self, value: object) -> bool:
        pa = _module("pyarrow")
        return pa is not None and isinstance(value, pa.Table)

    def save(self, value: object, folder: Path) -> str:
        import pyarrow.parquet as pq

        pq.write_table(value, folder / _PARQUET)
        return _table_hash(value)

    def load(self, folder: Path) -> object:
        import pyarrow.parquet as pq

        return pq.read_table(folder / _PARQUET)


class PolarsMaterializer:
    """polars ``DataFrame`` → Parquet (categoricals, enums, time zones kept)."""

    name = "polars.parquet"
    executable = False

    def handles(self, value: object) -> bool:
        pl = _module("polars")
        return pl is not None and type(value) is pl.DataFrame

    def save(self, value: object, folder: Path) -> str:
        frame: Any = value
        frame.write_parquet(folder / _PARQUET)
        return _table_hash(frame.to_arrow())

    def load(self, folder: Path) -> object:
        import polars as pl

        # No memory map: the folder is deleted once load returns.
        return pl.read_parquet(folder / _PARQUET, memory_map=False)


# --- arrays and plain data -----------------------------------------------------


class NumpyMaterializer:
    """NumPy arrays and scalars → ``.npy`` (never pickled: object dtypes go elsewhere).

    Dtype (byte order included), shape and memory order are kept; a NumPy
    scalar (``np.float64(0.5)``) loads back as a scalar of its dtype.
    """

    name = "numpy.npy"
    executable = False

    def handles(self, value: object) -> bool:
        np = _module("numpy")
        if np is None or not (type(value) is np.ndarray or isinstance(value, np.generic)):
            return False
        return not bool(value.dtype.hasobject)  # type: ignore[attr-defined]

    def save(self, value: object, folder: Path) -> str:
        import numpy as np

        scalar = isinstance(value, np.generic)
        array = np.asarray(value)
        np.save(folder / ("scalar.npy" if scalar else "array.npy"), array, allow_pickle=False)
        header = json.dumps(
            {
                "kind": "scalar" if scalar else "array",
                "descr": repr(np.lib.format.dtype_to_descr(array.dtype)),
                "shape": list(array.shape),
            },
            sort_keys=True,
        )
        data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        return _sha256(b"loopml-numpy-v1", header.encode(), data.data)

    def load(self, folder: Path) -> object:
        import numpy as np

        scalar = folder / "scalar.npy"
        if scalar.exists():
            return np.load(scalar, allow_pickle=False)[()]
        return np.load(folder / "array.npy", allow_pickle=False)


_JSON_SCALARS = (type(None), bool, int, float, str)


def _is_json(value: object, ancestors: set[int]) -> bool:
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind is not list and kind is not tuple and kind is not dict:
        return False  # subclasses (OrderedDict, IntEnum, namedtuple, ...) would lose their type
    if id(value) in ancestors:
        return False  # a cycle
    ancestors.add(id(value))
    try:
        if kind is dict:
            items: Any = value
            return all(type(k) is str and _is_json(v, ancestors) for k, v in items.items())
        sequence: Any = value
        return all(_is_json(v, ancestors) for v in sequence)
    finally:
        ancestors.discard(id(value))


class JsonMaterializer:
    """``dict`` (string keys), ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, None.

    JSON has no tuples: a tuple is stored as a list and loads back as a list.
    NaN and ±infinity are kept (``NaN``/``Infinity``, as Python's :mod:`json`
    writes and reads them). Dicts with non-string keys, subclasses of these
    types and cyclic structures are not JSON and go to the next materializer.
    """

    name = "json"
    executable = False

    def handles(self, value: object) -> bool:
        try:
            return _is_json(value, set())
        except RecursionError:
            return False

    def save(self, value: object, folder: Path) -> str:
        # Insertion order is kept in the file; the hash sorts the keys.
        text = json.dumps(value, allow_nan=True, ensure_ascii=True)
        (folder / "value.json").write_text(text, encoding="utf-8")
        canonical = json.dumps(
            value, allow_nan=True, ensure_ascii=True, sort_keys=True, separators=(",", ":")
        )
        return _sha256(b"loopml-json-v1", canonical.encode())

    def load(self, folder: Path) -> object:
        return json.loads((folder / "value.json").read_text(encoding="utf-8"))


# --- models ----------------------------------------------------------------------


def _skops_hash(path: Path) -> str:
    """A hash of a skops file that is the same for the same fitted model.

    skops files are not byte-for-byte reproducible: the zip entries carry the
    time of writing, and arrays are stored under names (and nodes carry
    ``__id__`` values) made from ``id()``. The hash covers the schema with every
    ``__id__`` renumbered in a fixed traversal order (so shared references still
    count) and every file name replaced by the SHA-256 of the file's bytes; the
    skops version is left out.
    """
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        ids: dict[Any, int] = {}

        def canon(node: Any) -> Any:
            if isinstance(node, dict):
                out: dict[str, Any] = {}
                for key in sorted(node):
                    item = node[key]
                    if key == "__id__":
                        out[key] = ids.setdefault(item, len(ids))
                    elif key == "file" and isinstance(item, str) and item in names:
                        out[key] = hashlib.sha256(archive.read(item)).hexdigest()
                    else:
                        out[key] = canon(item)
                return out
            if isinstance(node, list):
                return [canon(item) for item in node]
            return node

        schema = json.loads(archive.read("schema.json"))
        schema.pop("_skops_version", None)
        text = json.dumps(canon(schema), sort_keys=True, separators=(",", ":"))
    return _sha256(b"loopml-skops-v1", text.encode())


class SklearnMaterializer:
    """scikit-learn estimators → skops, the format the model registry uses.

    Loading trusts the same fixed allow-list as the registry's scikit-learn
    flavor (see :mod:`loopml._skops`), never the types the file declares: a
    stored value naming any other type raises
    :class:`~loopml.errors.UntrustedTypesError` before anything is built
    (``LOOPML_TRUSTED_TYPES`` names more types to trust).
    """

    name = "sklearn.skops"
    executable = False

    def handles(self, value: object) -> bool:
        base = _module("sklearn.base")
        return base is not None and isinstance(value, base.BaseEstimator)

    def save(self, value: object, folder: Path) -> str:
        skops_io = _import_skops()
        path = folder / "model.skops"
        skops_io.dump(value, path)
        return _skops_hash(path)

    def load(self, folder: Path) -> object:
        _import_skops()
        return load_skops(folder / "model.skops", "a stored scikit-learn value")


def _import_skops() -> Any:
    try:
        import skops.io
    except ImportError as exc:
        raise MaterializerError(
            "Storing scikit-learn estimators needs skops; install it with 'pip install skops'."
        ) from exc
    return skops.io


# --- loopml's own records ----------------------------------------------------------


class DatasetVersionMaterializer:
    """A :class:`loopml.data.DatasetVersion` → its reference, not its data.

    Saves ``{"project", "name", "version", "id", "content_hash"}``; loading
    re-reads the record through the data service of the default tracking
    client, and fails if that version is not the one stored (another id or
    other data). The data itself stays in the dataset registry, with its lineage.
    """

    name = "loopml.dataset_version"
    executable = False

    def handles(self, value: object) -> bool:
        records = _module("loopml.data._records")
        return records is not None and isinstance(value, records.DatasetVersion)

    def save(self, value: object, folder: Path) -> str:
        version: Any = value
        ref = {
            "project": version.project,
            "name": version.name,
            "version": version.version,
            "id": version.id,
            "content_hash": version.content_hash,
        }
        (folder / "dataset-version.json").write_text(json.dumps(ref), encoding="utf-8")
        return str(version.content_hash)

    def load(self, folder: Path) -> object:
        from loopml.data import get_client

        ref = json.loads((folder / "dataset-version.json").read_text(encoding="utf-8"))
        label = f"{ref['name']}:{ref['version']}"
        version = get_client().get_version(label, project=ref["project"])
        if version.id != ref["id"] or version.content_hash != ref["content_hash"]:
            raise MaterializerError(
                f"The dataset version {label} of project {ref['project']!r} is not the one "
                f"stored (id {ref['id']}, content hash {ref['content_hash'][:12]}); got id "
                f"{version.id}, content hash {version.content_hash[:12]} instead."
            )
        return version


# --- the catch-all -------------------------------------------------------------------


class CloudpickleMaterializer:
    """Anything else → cloudpickle. Loading runs pickled code: values are marked executable."""

    name = "cloudpickle"
    executable = True

    def handles(self, value: object) -> bool:
        return True

    def save(self, value: object, folder: Path) -> str:
        import cloudpickle

        if isinstance(value, io.IOBase):
            # cloudpickle would keep a readable file's text as a StringIO: not the value.
            raise TypeError("an open file or stream is a handle on outside state, not a value")
        data = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        (folder / "value.pkl").write_bytes(data)
        return _sha256(b"loopml-cloudpickle-v1", data)

    def load(self, folder: Path) -> object:
        import cloudpickle  # noqa: F401 - pickles made by cloudpickle may refer to it

        with (folder / "value.pkl").open("rb") as handle:
            # load_value refuses executable values unless the caller trusts them.
            return pickle.load(handle)  # noqa: S301


#: In lookup order; cloudpickle last, as it takes anything.
BUILTIN_MATERIALIZERS: tuple[Materializer, ...] = (
    DatasetVersionMaterializer(),
    PandasMaterializer(),
    PyarrowMaterializer(),
    PolarsMaterializer(),
    NumpyMaterializer(),
    SklearnMaterializer(),
    JsonMaterializer(),
    CloudpickleMaterializer(),
)
