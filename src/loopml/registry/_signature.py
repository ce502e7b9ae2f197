"""Model signatures: the columns a model takes and gives, and the check of its input.

A :class:`Signature` is inferred from the training data (or an input example) and
the model's predictions, stored with the version as plain JSON (:meth:`to_dict`),
and enforced on every prediction request. Column types are five portable names:

==========  ==========================================  ===========================
type        inferred from                               enforced dtype
==========  ==========================================  ===========================
integer     integer dtypes (``int64``, ``Int64`` …)     ``int64``; ``Int64`` when
                                                        nullable
float       float dtypes                                ``float64`` (NaN is null)
boolean     ``bool`` / ``boolean``                      ``bool``; ``boolean`` when
                                                        nullable
string      strings (``str``, ``object`` of ``str``,    unchanged
            categoricals of strings)
datetime    ``datetime64`` (with or without time zone)  ``datetime64``
==========  ==========================================  ===========================

A column is *nullable* when the data it was inferred from has a missing value.

:meth:`Signature.enforce` is deliberately strict: only casts that cannot change a
value are made (integers to floats, whole floats to integers, ISO 8601 strings to
date-times, Python objects to the column's dtype). Text is never parsed as a
number and numbers are never turned into text or booleans: such input is almost
always a mistake upstream, and a wrong prediction is worse than an error.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from loopml.errors import InvalidParameter, ModelError, SignatureError

__all__ = ["COLUMN_TYPES", "ColumnSpec", "ColumnType", "Signature", "as_frame", "infer_signature"]

ColumnType = Literal["integer", "float", "boolean", "string", "datetime"]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)

# pandas.api.types.infer_dtype's names for object columns → signature types.
_INFERRED: dict[str, ColumnType] = {
    "string": "string",
    "boolean": "boolean",
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "datetime64": "datetime",
    "datetime": "datetime",
    "date": "datetime",
}


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a signature.

    Attributes:
        name: the column's name.
        type: ``"integer"``, ``"float"``, ``"boolean"``, ``"string"`` or ``"datetime"``.
        nullable: whether missing values (None, NaN, NaT) are accepted.
    """

    name: str
    type: str
    nullable: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidParameter(
                f"The 'name' parameter of ColumnSpec must be a non-empty str. "
                f"Got {self.name!r} instead."
            )
        if self.type not in COLUMN_TYPES:
            raise InvalidParameter(
                f"The 'type' parameter of ColumnSpec must be one of {', '.join(COLUMN_TYPES)}. "
                f"Got {self.type!r} instead."
            )

    def describe(self) -> str:
        """``"an integer column 'age'"``: how error messages name what is expected."""
        article = "an" if self.type == "integer" else "a"
        return f"{article} {self.type} column {self.name!r}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"name": …, "type": …, "nullable": …}``."""
        return {"name": self.name, "type": self.type, "nullable": self.nullable}


@dataclass(frozen=True)
class Signature:
    """A model's input and output schema.

    Attributes:
        inputs: the columns the model takes, in the order it takes them.
        outputs: the columns of its predictions (``prediction`` for a 1-D output).

    Example:
        >>> import pandas as pd
        >>> sig = Signature(inputs=(ColumnSpec("age", "integer"), ColumnSpec("income", "float")))
        >>> frame = pd.DataFrame({"income": [10], "age": [30], "extra": ["x"]})
        >>> sig.enforce(frame).dtypes.to_dict()
        {'age': dtype('int64'), 'income': dtype('float64')}
    """

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        # Lists are accepted and frozen, so a signature stays hashable.
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        for part in ("inputs", "outputs"):
            names = [c.name for c in getattr(self, part)]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise InvalidParameter(
                    f"The {part!r} of a Signature must have distinct column names. "
                    f"Got {', '.join(map(repr, twice))} more than once."
                )

    @property
    def input_names(self) -> list[str]:
        """The input column names, in order."""
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored with a model version."""
        return {
            "inputs": [c.to_dict() for c in self.inputs],
            "outputs": [c.to_dict() for c in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Rebuild a signature from :meth:`to_dict`'s output.

        Raises:
            ModelError: ``data`` is not a stored signature.
        """
        try:
            return cls(
                inputs=tuple(_spec_from(d) for d in data.get("inputs", ())),
                outputs=tuple(_spec_from(d) for d in data.get("outputs", ())),
            )
        except (AttributeError, KeyError, TypeError, InvalidParameter) as exc:
            raise ModelError(f"Not a stored model signature ({exc}): {data!r:.200}") from exc

    def enforce(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Check ``frame`` against the inputs and return what the model is given.

        Columns come back in signature order with the dtypes of the table in the
        module docstring. Columns the signature does not name are dropped, so a
        caller may send a whole record. A signature without inputs returns
        ``frame`` unchanged.

        Args:
            frame: the prediction input.

        Returns:
            A DataFrame (same index) with exactly the signature's columns: ``frame``
            itself when it already has them, in order, with the enforced dtypes
            (the common case of a served model, checked in one vectorised pass).

        Raises:
            SignatureError: a column is missing, holds a value that is not of its
                type (text in a float column, 2.5 in an integer column), or holds a
                missing value where the signature allows none. The message names
                the column and the expected type.
            InvalidParameter: ``frame`` is not a DataFrame.
        """
        if not isinstance(frame, pd.DataFrame):
            raise InvalidParameter(
                "The 'frame' parameter of Signature.enforce must be a pandas DataFrame. "
                f"Got {type(frame).__name__} instead; use as_frame() to convert it."
            )
        if not self.inputs or _conforms(frame, self.inputs):
            return frame
        labels: dict[str, Any] = {}
        for label in frame.columns:
            labels.setdefault(str(label), label)
        columns: dict[str, pd.Series[Any]] = {}
        for spec in self.inputs:
            if spec.name not in labels:
                raise SignatureError(
                    f"Input column {spec.name!r} is missing; the model expects {spec.describe()}."
                )
            column = frame[labels[spec.name]]
            if isinstance(column, pd.DataFrame):
                raise SignatureError(
                    f"Input column {spec.name!r} appears more than once; "
                    f"the model expects one {spec.type} column {spec.name!r}."
                )
            columns[spec.name] = _enforce_column(column, spec)
        return pd.DataFrame(columns, index=frame.index)


_EXACT_DTYPES: dict[str, np.dtype[Any]] = {
    "float": np.dtype("float64"),
    "integer": np.dtype("int64"),
    "boolean": np.dtype("bool"),
}
"""Dtypes that need no conversion: int64 and bool hold no missing value, float64 may."""


def _conforms(frame: pd.DataFrame, inputs: tuple[ColumnSpec, ...]) -> bool:
    """Whether ``frame`` is exactly what :meth:`Signature.enforce` would return."""
    exact = _exact_form(inputs)
    if exact is None:
        return False
    names, dtypes, all_float, required = exact
    if len(frame.columns) != len(names) or frame.columns.tolist() != names:
        return False
    if frame.dtypes.tolist() != dtypes:
        return False
    if not required.any():
        return True
    missing = np.isnan(frame.to_numpy()) if all_float else frame.isna().to_numpy()
    return not bool(np.asarray(missing.any(axis=0))[required].any())


@functools.lru_cache(maxsize=256)
def _exact_form(
    inputs: tuple[ColumnSpec, ...],
) -> tuple[list[str], list[np.dtype[Any]], bool, np.ndarray[Any, np.dtype[np.bool_]]] | None:
    """What a frame needing no conversion looks like: names, dtypes, all float, no-null mask.

    None when no frame can be taken as it is: a nullable integer or boolean column
    is enforced as the nullable ``Int64`` / ``boolean`` extension dtype, and text
    and time columns are always converted.
    """
    dtypes = []
    for spec in inputs:
        dtype = _EXACT_DTYPES.get(spec.type)
        if dtype is None or (spec.type != "float" and spec.nullable):
            return None
        dtypes.append(dtype)
    required = np.array([spec.type == "float" and not spec.nullable for spec in inputs], dtype=bool)
    all_float = all(spec.type == "float" for spec in inputs)
    return [spec.name for spec in inputs], dtypes, all_float, required


def _spec_from(data: Mapping[str, Any]) -> ColumnSpec:
    return ColumnSpec(name=data["name"], type=data["type"], nullable=bool(data["nullable"]))


# --- inference ---------------------------------------------------------------------


def infer_signature(
    example: pd.DataFrame,
    predictions: np.ndarray[Any, Any] | pd.Series[Any] | pd.DataFrame | Sequence[Any] | None = None,
    *,
    output_names: Sequence[str] | None = None,
) -> Signature:
    """Infer a signature from input rows and, optionally, the model's predictions.

    Args:
        example: training data or an input example; column names become input names.
        predictions: the model's output on ``example``. A 1-D output is one column
            named ``prediction``; a 2-D output (probabilities) has columns
            ``"0"`` … ``"k-1"``, or ``output_names`` (class labels); a DataFrame
            keeps its column names. None: no outputs.
        output_names: names of a 2-D output's columns.

    Returns:
        The signature; every column nullable exactly when its data has a missing value.

    Raises:
        InvalidParameter: ``example`` is not a DataFrame, or ``output_names`` does
            not fit the output's width.
        ModelError: a column's type cannot be expressed (mixed values, only
            missing values, complex numbers …).

    Example:
        >>> import pandas as pd
        >>> sig = infer_signature(pd.DataFrame({"age": [31, 40]}), [0.2, 0.9])
        >>> [(c.name, c.type, c.nullable) for c in sig.inputs + sig.outputs]
        [('age', 'integer', False), ('prediction', 'float', False)]
    """
    if not isinstance(example, pd.DataFrame):
        raise InvalidParameter(
            "The 'example' parameter of infer_signature must be a pandas DataFrame. "
            f"Got {type(example).__name__} instead."
        )
    inputs = tuple(_infer_column(str(label), example.iloc[:, i]) for i, label in enumerate(example))
    return Signature(inputs=inputs, outputs=_infer_outputs(predictions, output_names))


def _infer_outputs(
    predictions: object, output_names: Sequence[str] | None
) -> tuple[ColumnSpec, ...]:
    if predictions is None:
        return ()
    if isinstance(predictions, pd.DataFrame):
        return tuple(
            _infer_column(str(label), predictions.iloc[:, i])
            for i, label in enumerate(predictions.columns)
        )
    if isinstance(predictions, pd.Series):
        return (_infer_column("prediction", predictions),)
    array = np.asarray(predictions)
    if array.ndim == 1:
        return (_infer_column("prediction", pd.Series(array)),)
    if array.ndim != 2:
        raise ModelError(
            f"Cannot infer an output schema from predictions of shape {array.shape}; "
            "a signature describes 1-D or 2-D outputs."
        )
    names = [str(i) for i in range(array.shape[1])] if output_names is None else list(output_names)
    if len(names) != array.shape[1]:
        raise InvalidParameter(
            f"The 'output_names' parameter of infer_signature must name the {array.shape[1]} "
            f"output columns. Got {len(names)} names instead."
        )
    return tuple(_infer_column(str(name), pd.Series(array[:, j])) for j, name in enumerate(names))


def _infer_column(name: str, series: pd.Series[Any]) -> ColumnSpec:
    return ColumnSpec(name=name, type=_infer_type(name, series), nullable=bool(series.isna().any()))


def _infer_type(name: str, series: pd.Series[Any]) -> ColumnType:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _infer_type(name, pd.Series(dtype.categories))
    if ptypes.is_bool_dtype(dtype):
        return "boolean"
    if ptypes.is_integer_dtype(dtype):
        return "integer"
    if ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "datetime"
    if ptypes.is_object_dtype(dtype) or ptypes.is_string_dtype(dtype):
        kind = ptypes.infer_dtype(series, skipna=True)
        if kind in _INFERRED:
            return _INFERRED[kind]
        if kind == "empty":
            raise ModelError(
                f"Cannot infer the type of column {name!r}: it holds only missing values. "
                "Drop it, or pass a Signature."
            )
        raise ModelError(
            f"Cannot infer the type of column {name!r}: its values are {kind} "
            f"(one of {', '.join(COLUMN_TYPES)} is needed). Convert it, or pass a Signature."
        )
    raise ModelError(
        f"Cannot infer the type of column {name!r}: dtype {dtype} is none of "
        f"{', '.join(COLUMN_TYPES)}. Convert it, or pass a Signature."
    )


# --- enforcement -------------------------------------------------------------------


def _enforce_column(series: pd.Series[Any], spec: ColumnSpec) -> pd.Series[Any]:
    if series.isna().all():
        # No value to check (no rows, or only missing ones), and no dtype to trust:
        # pandas gives such columns float64 or object whatever they were meant to be.
        result = pd.Series([None] * len(series), index=series.index, dtype=_NULL_DTYPES[spec.type])
        if not len(series) and not spec.nullable:
            result = result.astype(_NON_NULL_DTYPES.get(spec.type, result.dtype))
    else:
        result = _CONVERTERS[spec.type](series, spec)
    if not spec.nullable:
        missing = int(result.isna().sum())
        if missing:
            first = result.index[result.isna().to_numpy()][0]
            raise SignatureError(
                f"Input column {spec.name!r} has {missing} missing value"
                f"{'' if missing == 1 else 's'} (first at row {_plain(first)!r}); the model "
                f"expects {spec.describe()} without missing values."
            )
    return result


def _bad(
    series: pd.Series[Any], spec: ColumnSpec, mask: np.ndarray[Any, Any], why: str
) -> SignatureError:
    """The error for the first row where ``mask`` is set."""
    position = int(np.flatnonzero(mask)[0])
    value = series.iloc[position]
    return SignatureError(
        f"Input column {spec.name!r} holds {_plain(value)!r} ({type(value).__name__}) at row "
        f"{_plain(series.index[position])!r}, {why}; the model expects {spec.describe()}."
    )


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds: ``1.5``, not ``np.float64(1.5)``."""
    return value.item() if isinstance(value, np.generic) else value


def _wrong_dtype(series: pd.Series[Any], spec: ColumnSpec) -> SignatureError:
    present = series.notna().to_numpy()
    if present.any():
        return _bad(series, spec, present, f"which is not {_a(spec.type)}")
    return SignatureError(
        f"Input column {spec.name!r} has dtype {series.dtype}; the model expects {spec.describe()}."
    )


def _object_values(
    series: pd.Series[Any],
    spec: ColumnSpec,
    accept: type | tuple[type, ...],
    reject: type | tuple[type, ...] = (),
) -> np.ndarray[Any, Any]:
    """The values of an object column, checked to be ``accept`` instances (or missing)."""
    values = series.to_numpy(dtype=object, copy=True)
    missing = series.isna().to_numpy()
    wrong = np.array(
        [
            not m and (not isinstance(v, accept) or isinstance(v, reject))
            for v, m in zip(values, missing, strict=True)
        ],
        dtype=bool,
    )
    if wrong.any():
        raise _bad(series, spec, wrong, f"which is not {_a(spec.type)}")
    values[missing] = None
    return values


def _a(kind: str) -> str:
    return f"an {kind}" if kind == "integer" else f"a {kind}"


def _to_integer(series: pd.Series[Any], spec: ColumnSpec) -> pd.Series[Any]:
    dtype = series.dtype
    target: Any = "Int64" if spec.nullable else "int64"
    if ptypes.is_bool_dtype(dtype):
        raise _wrong_dtype(series, spec)
    if ptypes.is_integer_dtype(dtype):
        try:
            return series.astype(target)
        except (TypeError, ValueError, OverflowError):
            pass  # missing values in a non-nullable column: reported by the caller
        return series.astype("Int64")
    if ptypes.is_float_dtype(dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        present = ~np.isnan(values)
        with np.errstate(invalid="ignore"):
            fractional = present & ~(np.isfinite(values) & (np.floor(values) == values))
            too_big = present & ~fractional & (np.abs(values) >= 2.0**63)
        if fractional.any():
            raise _bad(series, spec, fractional, "which is not a whole number")
        if too_big.any():
            raise _bad(series, spec, too_big, "which does not fit in 64 bits")
        ints = pd.array(
            [int(v) if p else None for v, p in zip(values, present, strict=True)], dtype="Int64"
        )
        return _finish_integer(pd.Series(ints, index=series.index), target)
    if ptypes.is_object_dtype(dtype):
        values = _object_values(series, spec, numbers.Real, bool)
        for i, value in enumerate(values):
            if value is not None and not isinstance(value, numbers.Integral):
                number = float(value)
                if not (math.isfinite(number) and number.is_integer()):
                    raise _bad(
                        series, spec, np.arange(len(values)) == i, "which is not a whole number"
                    )
                values[i] = int(number)
        try:
            ints = pd.array(list(values), dtype="Int64")
        except (TypeError, ValueError, OverflowError) as exc:
            raise SignatureError(
                f"Input column {spec.name!r} holds integers that do not fit in 64 bits ({exc}); "
                f"the model expects {spec.describe()}."
            ) from exc
        return _finish_integer(pd.Series(ints, index=series.index), target)
    raise _wrong_dtype(series, spec)


def _finish_integer(series: pd.Series[Any], target: Any) -> pd.Series[Any]:
    return series if series.isna().any() else series.astype(target)


def _to_float(series: pd.Series[Any], spec: ColumnSpec) -> pd.Series[Any]:
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype):
        raise _wrong_dtype(series, spec)
    if ptypes.is_integer_dtype(dtype) or ptypes.is_float_dtype(dtype):
        return pd.Series(series.to_numpy(dtype="float64", na_value=np.nan), index=series.index)
    if ptypes.is_object_dtype(dtype):
        values = _object_values(series, spec, numbers.Real, bool)
        floats = np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
        return pd.Series(floats, index=series.index)
    raise _wrong_dtype(series, spec)


def _to_boolean(series: pd.Series[Any], spec: ColumnSpec) -> pd.Series[Any]:
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype):
        result = series
    elif ptypes.is_object_dtype(dtype):
        values = _object_values(series, spec, (bool, np.bool_))
        result = pd.Series(pd.array(list(values), dtype="boolean"), index=series.index)
    else:
        raise _wrong_dtype(series, spec)
    if result.isna().any():
        return result.astype("boolean")
    return result.astype("boolean" if spec.nullable else "bool")


def _to_string(series: pd.Series[Any], spec: ColumnSpec) -> pd.Series[Any]:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories
        if ptypes.is_object_dtype(categories.dtype) or ptypes.is_string_dtype(categories.dtype):
            _object_values(pd.Series(categories), spec, str)
            return series
        raise _wrong_dtype(series, spec)
    if ptypes.is_object_dtype(dtype):
        _object_values(series, spec, str)
        return series
    if ptypes.is_string_dtype(dtype):
        return series
    raise _wrong_dtype(series, spec)


def _to_datetime(series: pd.Series[Any], spec: ColumnSpec) -> pd.Series[Any]:
    dtype = series.dtype
    if ptypes.is_datetime64_any_dtype(dtype):
        return series
    if ptypes.is_object_dtype(dtype) or ptypes.is_string_dtype(dtype):
        values = _object_values(series.astype(object), spec, (str, dt.date, np.datetime64))
        parsed: list[Any] = []
        for i, value in enumerate(values):
            try:
                parsed.append(pd.NaT if value is None else pd.Timestamp(value))
            except (ValueError, TypeError, OverflowError):
                raise _bad(
                    series, spec, np.arange(len(values)) == i, "which is not a date-time"
                ) from None
        try:
            return pd.Series(pd.to_datetime(parsed), index=series.index)
        except (ValueError, TypeError) as exc:  # mixed time zones
            raise SignatureError(
                f"Input column {spec.name!r} mixes time zones ({exc}); "
                f"the model expects {spec.describe()}."
            ) from exc
    raise _wrong_dtype(series, spec)


_NULL_DTYPES: dict[str, Any] = {
    "integer": "Int64",
    "float": "float64",
    "boolean": "boolean",
    "string": object,
    "datetime": "datetime64[ns]",
}

_NON_NULL_DTYPES: dict[str, Any] = {"integer": "int64", "boolean": "bool"}

_CONVERTERS = {
    "integer": _to_integer,
    "float": _to_float,
    "boolean": _to_boolean,
    "string": _to_string,
    "datetime": _to_datetime,
}


# --- input conversion --------------------------------------------------------------


def as_frame(data: object, signature: Signature | None = None) -> pd.DataFrame:
    """Turn prediction input into a DataFrame (not yet checked: see :meth:`Signature.enforce`).

    Accepted: a DataFrame (returned as is); a dict of columns (lists, arrays or
    Series; a dict of scalars is one row); a list of records (dicts); a 2-D array
    or list of rows, whose columns are named from the signature's inputs in order;
    any object with ``to_pandas()`` (pyarrow tables, polars frames).

    Args:
        data: the input.
        signature: names the columns of array input; without one, array columns
            are numbered ``0`` … ``n-1`` (what a model fitted on an array expects).

    Returns:
        The input as a DataFrame.

    Raises:
        SignatureError: an array's width differs from the signature's inputs.
        InvalidParameter: ``data`` is of none of the accepted kinds.

    Example:
        >>> as_frame([{"age": 31}, {"age": 40}]).shape
        (2, 1)
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        if data and not any(ptypes.is_list_like(v) for v in data.values()):
            return pd.DataFrame([dict(data)])
        return pd.DataFrame(dict(data))
    to_pandas = getattr(data, "to_pandas", None)
    if callable(to_pandas):
        frame = to_pandas()
        if isinstance(frame, pd.DataFrame):
            return frame
    if isinstance(data, (list, tuple)):
        if not data:
            names = [] if signature is None else signature.input_names
            return pd.DataFrame({name: [] for name in names})
        if all(isinstance(row, Mapping) for row in data):
            return pd.DataFrame(list(data))
        if all(ptypes.is_list_like(row) and not isinstance(row, Mapping) for row in data):
            rows = [list(row) for row in data]
            return _from_rows(rows, {len(r) for r in rows}, signature)
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InvalidParameter(
                "The 'data' parameter must be a 2-D array (one row per example). "
                f"Got an array of shape {data.shape} instead."
            )
        return _from_rows(data, {data.shape[1]}, signature)
    raise InvalidParameter(
        "The 'data' parameter must be a DataFrame, a dict of columns, a list of records, "
        f"a 2-D array or a list of rows. Got {type(data).__name__} instead."
    )


def _from_rows(rows: Any, widths: set[int], signature: Signature | None) -> pd.DataFrame:
    if len(widths) != 1:
        raise SignatureError(f"Input rows have different lengths ({sorted(widths)}).")
    (width,) = widths
    if signature is None or not signature.inputs:
        return pd.DataFrame(rows)
    names = signature.input_names
    if width != len(names):
        raise SignatureError(
            f"Input rows have {width} values; the model expects {len(names)} columns "
            f"({', '.join(names)})."
        )
    if isinstance(rows, np.ndarray):
        return pd.DataFrame(rows, columns=names)
    return pd.DataFrame(cast(list[list[Any]], rows), columns=names, dtype=object).infer_objects()
