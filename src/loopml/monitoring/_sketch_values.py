"""Values in and out of a sketch: Arrow numbers as NumPy without pandas, the column kinds a
sketch takes, and the checked pieces of a sketch's stored (JSON) form."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from loopml.errors import InvalidParameter

__all__ = [
    "array_b64",
    "array_from_b64",
    "float64_values",
    "is_categorical_type",
    "is_numeric_type",
    "json_float",
    "number_view",
    "require_valid",
    "stored_count",
    "stored_float",
]


def float64_values(arr: pa.Array) -> npt.NDArray[np.float64]:
    """Non-null numbers as float64 (decimals through Arrow's cast, not per value)."""
    if pa.types.is_decimal(arr.type):
        arr = arr.cast(pa.float64())
    return np.asarray(number_view(arr), dtype=np.float64)


def number_view(arr: pa.Array) -> npt.NDArray[Any]:
    """An integer or float array without nulls as a NumPy view of its values buffer.

    ``Array.to_numpy`` would do the same, but it imports pandas first (pyarrow's pandas
    shim): 37 MiB resident that the sketches otherwise never need.
    """
    assert arr.null_count == 0, "a null's slot holds no value"  # callers drop nulls first
    dtype = np.dtype(arr.type.to_pandas_dtype())
    return np.frombuffer(
        arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize
    )


def is_numeric_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def is_categorical_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_boolean(t)
        or pa.types.is_integer(t)
    )


def array_b64(a: npt.NDArray[Any]) -> str:
    return base64.b64encode(
        np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
    ).decode()


def array_from_b64(text: object, dtype: type[np.generic], what: str) -> npt.NDArray[Any]:
    require_valid(isinstance(text, str), f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(cast(str, text), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter(f"The sketch is not valid: {what} is not base64.") from None
    require_valid(len(raw) % 8 == 0, f"{what} must hold 8-byte numbers")
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


def json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


def stored_float(x: object, default: float | None = None) -> float:
    if x is None and default is not None:
        return default
    require_valid(isinstance(x, int | float) and not isinstance(x, bool), "numbers must be numbers")
    return float(cast(float, x))


def stored_count(x: object, what: str, *, minimum: int = 0) -> int:
    require_valid(
        isinstance(x, int) and not isinstance(x, bool) and x >= minimum,
        f"{what} must be an integer >= {minimum}",
    )
    return cast(int, x)


def require_valid(ok: bool, why: str) -> None:
    if not ok:
        raise InvalidParameter(f"The sketch is not valid: {why}.")
