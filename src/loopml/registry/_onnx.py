"""The ONNX flavor (run with onnxruntime) and the verified scikit-learn → ONNX conversion.

An ONNX model is fed in one of two layouts, recorded in ``onnx.json`` next to
``model.onnx`` when it is saved:

- ``"tensor"``: one input, a 2-D tensor of every feature column. Models made by
  :func:`convert_to_onnx` look like this; they carry the example's column names
  (metadata ``loopml.columns``), so the frame's columns are picked in that order;
  other single-input models get the frame's columns in the frame's order (after
  :meth:`~loopml.registry.Signature.enforce`, the signature's order);
- ``"columns"``: one input per column, named as the column, each an ``[n, 1]`` tensor.

The first output is the prediction; an output whose name contains ``prob``
(skl2onnx's ``probabilities``) gives ``predict_proba``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import InvalidParameter, ModelError, SignatureError
from loopml.registry._paths import model_file

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import NDArray

__all__ = ["COLUMNS_METADATA", "OnnxFlavor", "OnnxModel", "convert_to_onnx"]

COLUMNS_METADATA = "loopml.columns"
"""Metadata key of the input column names :func:`convert_to_onnx` stores in the model."""

_NUMPY_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


def _runtime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError(
            "The onnx flavor needs onnxruntime; install it with 'pip install loopml[onnx]'."
        ) from exc
    return onnxruntime


def _model_bytes(model: object) -> bytes:
    if isinstance(model, OnnxModel):
        return model.model_bytes
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    serialize = getattr(model, "SerializeToString", None)  # onnx.ModelProto
    if callable(serialize):
        return bytes(serialize())
    raise ModelError(
        f"The onnx flavor stores ONNX models (onnx.ModelProto or its bytes); "
        f"got {type(model).__qualname__}."
    )


def _select(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    labels: dict[str, Any] = {}
    for label in frame.columns:
        labels.setdefault(str(label), label)
    missing = [c for c in columns if c not in labels]
    if missing:
        raise SignatureError(
            f"Input column {missing[0]!r} is missing; the ONNX model takes the columns "
            f"{', '.join(columns)}."
        )
    return frame[[labels[c] for c in columns]]


def _to_numpy(frame: pd.DataFrame, onnx_type: str, what: str) -> NDArray[Any]:
    if onnx_type not in _NUMPY_TYPES:
        raise ModelError(
            f"The ONNX model's input {what} is a {onnx_type}, which loopml cannot feed."
        )
    dtype = _NUMPY_TYPES[onnx_type]
    try:
        if dtype is np.float32 or dtype is np.float64:
            return frame.to_numpy(dtype=dtype, na_value=np.nan)
        return frame.to_numpy(dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise SignatureError(
            f"Input {what} cannot be given to the ONNX model as a {onnx_type} ({exc})."
        ) from exc


class OnnxModel:
    """An ONNX model with its onnxruntime session (what the onnx flavor loads).

    Args:
        model_bytes: the serialized model.
        layout: how inputs are fed and outputs read (``onnx.json``); None reads it
            from the model itself.

    Attributes:
        model_bytes: the serialized model.
        layout: ``{"inputs": "tensor" | "columns", "feeds": [{"name", "type"}],
            "columns": [...] | None, "prediction": name, "probabilities": name | None}``.
        session: the ``onnxruntime.InferenceSession``.

    Raises:
        ModelError: onnxruntime cannot load the model.
    """

    def __init__(self, model_bytes: bytes, layout: dict[str, Any] | None = None) -> None:
        ort = _runtime()
        try:
            self.session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"onnxruntime cannot load the ONNX model: {exc}") from exc
        self.model_bytes = model_bytes
        self.layout = layout if layout is not None else self._describe()

    def _describe(self) -> dict[str, Any]:
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        metadata = self.session.get_modelmeta().custom_metadata_map
        columns = json.loads(metadata[COLUMNS_METADATA]) if COLUMNS_METADATA in metadata else None
        probabilities = next((o.name for o in outputs[1:] if "prob" in o.name.lower()), None)
        return {
            "inputs": "tensor" if len(inputs) == 1 else "columns",
            "feeds": [{"name": i.name, "type": i.type, "shape": list(i.shape)} for i in inputs],
            "columns": columns,
            "prediction": outputs[0].name,
            "probabilities": probabilities,
        }

    @property
    def has_proba(self) -> bool:
        """Whether the model has a probabilities output."""
        return self.layout.get("probabilities") is not None

    def _feeds(self, frame: pd.DataFrame) -> dict[str, NDArray[Any]]:
        feeds: list[dict[str, Any]] = self.layout["feeds"]
        if self.layout["inputs"] == "tensor":
            (feed,) = feeds
            columns = self.layout.get("columns")
            data = _select(frame, columns) if columns else frame
            shape = feed.get("shape") or []
            width = shape[1] if len(shape) == 2 else None
            if isinstance(width, int) and width != data.shape[1]:
                raise SignatureError(
                    f"The ONNX model takes {width} input columns; got {data.shape[1]} "
                    f"({', '.join(map(str, data.columns))})."
                )
            return {feed["name"]: _to_numpy(data, feed["type"], f"{feed['name']!r}")}
        return {
            feed["name"]: _to_numpy(
                _select(frame, [feed["name"]]), feed["type"], f"column {feed['name']!r}"
            ).reshape(-1, 1)
            for feed in feeds
        }

    def _run(self, frame: pd.DataFrame, output: str) -> NDArray[Any]:
        (result,) = self.session.run([output], self._feeds(frame))
        if isinstance(result, list):  # a ZipMap output: one {class: probability} dict per row
            keys = list(result[0]) if result else []
            return np.array([[row[k] for k in keys] for row in result], dtype=np.float64)
        return np.asarray(result)

    def predict(self, frame: pd.DataFrame) -> NDArray[Any]:
        """The first output, 1-D for a single column."""
        result = self._run(frame, self.layout["prediction"])
        return result.ravel() if result.ndim == 2 and result.shape[1] == 1 else result

    def predict_proba(self, frame: pd.DataFrame) -> NDArray[Any]:
        """The probabilities output (one column per class).

        Raises:
            ModelError: the model has no probabilities output.
        """
        name = self.layout.get("probabilities")
        if name is None:
            raise ModelError("The ONNX model has no probabilities output.")
        return self._run(frame, name)

    def __repr__(self) -> str:
        return f"OnnxModel(inputs={self.layout['inputs']!r}, {len(self.model_bytes)} bytes)"


class OnnxFlavor:
    """ONNX models (``onnx.ModelProto``, or their bytes given to ``save``) → ``model.onnx``.

    Loads as an :class:`OnnxModel`, run with onnxruntime on the CPU.
    """

    name = "onnx"
    executable = False

    def handles(self, model: object) -> bool:
        """Whether ``model`` is an ``onnx.ModelProto`` or an :class:`OnnxModel`."""
        if isinstance(model, OnnxModel):
            return True
        onnx = sys.modules.get("onnx")
        return onnx is not None and isinstance(model, onnx.ModelProto)

    def save(self, model: object, folder: Path) -> None:
        """Write ``model.onnx`` and ``onnx.json`` (the input layout).

        Raises:
            ModelError: ``model`` is not an ONNX model onnxruntime can load.
        """
        loaded = model if isinstance(model, OnnxModel) else OnnxModel(_model_bytes(model))
        (folder / "model.onnx").write_bytes(loaded.model_bytes)
        (folder / "onnx.json").write_text(
            json.dumps(loaded.layout, indent=2, sort_keys=True), encoding="utf-8"
        )

    def load(self, folder: Path, trusted_types: Collection[str] = ()) -> object:
        """Read ``model.onnx`` into an :class:`OnnxModel`."""
        path = model_file(folder, "model.onnx", "a file of the onnx flavor")
        meta = folder / "onnx.json"
        layout = None
        if meta.exists() or meta.is_symlink():
            meta = model_file(folder, "onnx.json", "the onnx flavor's input layout")
            layout = json.loads(meta.read_text(encoding="utf-8"))
        # onnxruntime refuses tensors stored outside a model given as bytes, so the
        # model reads no file but its own.
        return OnnxModel(path.read_bytes(), layout)

    def predict(self, model: object, frame: pd.DataFrame) -> NDArray[Any]:
        """The model's first output, 1-D for a single column."""
        return _as_onnx(model).predict(frame)

    def predict_proba(self, model: object, frame: pd.DataFrame) -> NDArray[Any] | None:
        """The probabilities output, or None when the model has none."""
        onnx_model = _as_onnx(model)
        return onnx_model.predict_proba(frame) if onnx_model.has_proba else None


def _as_onnx(model: object) -> OnnxModel:
    return model if isinstance(model, OnnxModel) else OnnxModel(_model_bytes(model))


# --- conversion ----------------------------------------------------------------------


def convert_to_onnx(model: object, example: pd.DataFrame, tolerance: float = 1e-5) -> bytes:
    """Convert a scikit-learn model to ONNX and check it predicts what the model does.

    The ONNX model takes one float tensor of the example's columns, in order (so
    every column must be numeric; booleans count as 0/1). Classifiers get a
    probabilities tensor (no ZipMap). The conversion is run on ``example`` next to
    the original: class labels must be equal, probabilities within ``tolerance``
    (absolute), regression outputs within ``tolerance * max(1, |y|)``. ONNX runs in
    float32, so models fed large unscaled values may not pass a small tolerance.

    Args:
        model: a fitted scikit-learn estimator or pipeline.
        example: input rows to convert with (column count) and verify on.
        tolerance: the largest difference accepted (see above).

    Returns:
        The serialized ONNX model.

    Raises:
        ModelError: the model is not a scikit-learn model, an example column is
            not numeric, skl2onnx cannot convert the model, or the conversion
            predicts differently (the message gives the largest difference).
        InvalidParameter: ``example`` is not a non-empty DataFrame, or
            ``tolerance`` is not a finite number >= 0.
    """
    import pandas as pd
    from pandas.api import types as ptypes

    from loopml.registry._flavors import SklearnFlavor

    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
        raise InvalidParameter(
            f"The 'tolerance' parameter of convert_to_onnx must be a number. Got {tolerance!r}."
        )
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidParameter(
            "The 'tolerance' parameter of convert_to_onnx must be a finite number >= 0. "
            f"Got {tolerance!r} instead."
        )
    if not isinstance(example, pd.DataFrame) or example.empty:
        got = "an empty one" if isinstance(example, pd.DataFrame) else type(example).__name__
        raise InvalidParameter(
            "The 'example' parameter of convert_to_onnx must be a non-empty DataFrame. "
            f"Got {got} instead."
        )
    sklearn_flavor = SklearnFlavor()
    if not sklearn_flavor.handles(model):
        raise ModelError(
            f"convert_to_onnx converts scikit-learn models; got {type(model).__qualname__}."
        )
    for label, dtype in example.dtypes.items():
        if not ptypes.is_numeric_dtype(dtype) or ptypes.is_complex_dtype(dtype):
            raise ModelError(
                "convert_to_onnx feeds the model one float tensor, so every example column "
                f"must be numeric; column {str(label)!r} is {dtype}. Encode it before the "
                "model, or serve the model without ONNX."
            )
    onnx_bytes = _convert(model, example)
    _verify(model, example, OnnxModel(onnx_bytes), sklearn_flavor, tolerance)
    return onnx_bytes


def _convert(model: Any, example: pd.DataFrame) -> bytes:
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
        from sklearn.base import is_classifier
    except ImportError as exc:
        raise ModelError(
            "convert_to_onnx needs skl2onnx and onnxruntime; "
            "install them with 'pip install loopml[onnx]'."
        ) from exc
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    try:
        proto = convert_sklearn(
            model,
            initial_types=[("X", FloatTensorType([None, example.shape[1]]))],
            options=options,
        )
    except Exception as exc:  # skl2onnx raises RuntimeError, NotImplementedError, …
        raise ModelError(f"skl2onnx cannot convert {type(model).__qualname__}: {exc}") from exc
    entry = proto.metadata_props.add()
    entry.key = COLUMNS_METADATA
    entry.value = json.dumps([str(c) for c in example.columns])
    return bytes(proto.SerializeToString())


def _verify(
    model: Any, example: pd.DataFrame, converted: OnnxModel, flavor: Any, tolerance: float
) -> None:
    from sklearn.base import is_classifier

    name = type(model).__qualname__
    expected = flavor.predict(model, example)
    got = converted.predict(example)
    if expected.shape != got.shape:
        raise ModelError(
            f"The ONNX conversion of {name} gives predictions of shape {got.shape}; "
            f"the model gives {expected.shape}."
        )
    if is_classifier(model):
        differ = np.asarray(expected != got).reshape(len(example), -1).any(axis=1)
        if differ.any():
            row = int(np.flatnonzero(differ)[0])
            raise ModelError(
                f"The ONNX conversion of {name} predicts another class for {int(differ.sum())} "
                f"of {len(example)} example rows (row {example.index[row]!r}: "
                f"{got[row]!r} instead of {expected[row]!r})."
            )
        proba = flavor.predict_proba(model, example)
        if proba is not None and converted.has_proba:
            onnx_proba = converted.predict_proba(example)
            if onnx_proba.shape != proba.shape:
                raise ModelError(
                    f"The ONNX conversion of {name} gives probabilities of shape "
                    f"{onnx_proba.shape}; the model gives {proba.shape}."
                )
            diff = np.abs(onnx_proba.astype(np.float64) - proba.astype(np.float64))
            if not np.allclose(onnx_proba, proba, rtol=0.0, atol=tolerance):
                _raise_difference(name, "probabilities", diff, example, tolerance)
        return
    want = expected.astype(np.float64)
    diff = np.abs(got.astype(np.float64) - want)
    excess = diff - tolerance * np.maximum(1.0, np.abs(want))
    if (excess > 0).any() or np.isnan(diff).any():
        _raise_difference(name, "predictions", diff, example, tolerance)


def _raise_difference(
    name: str, what: str, diff: NDArray[Any], example: pd.DataFrame, tolerance: float
) -> None:
    flat = np.nan_to_num(diff.reshape(len(example), -1), nan=np.inf)
    row = int(np.argmax(flat.max(axis=1)))
    raise ModelError(
        f"The ONNX conversion of {name} differs from the model on the example: {what} differ "
        f"by up to {flat.max():.3g} (row {example.index[row]!r}; tolerance {tolerance:g})."
    )
