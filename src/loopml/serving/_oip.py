"""Open Inference Protocol (v2) documents the server answers with: output tensors, metadata."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopml.serving._live import LiveEndpoint

__all__ = ["OIP_DATATYPES", "model_metadata", "oip_datatype", "oip_output"]

OIP_DATATYPES: dict[str, str] = {
    "integer": "INT64",
    "float": "FP64",
    "boolean": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
}
"""Signature column type → Open Inference Protocol datatype."""


def oip_datatype(values: Sequence[Any]) -> str:
    """The OIP datatype of a list of output values (``BYTES`` for anything else)."""
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def oip_output(predictions: list[Any]) -> dict[str, Any]:
    """The OIP output tensor: shape [n] or [n, k] (multi-output), data flattened row-major."""
    if predictions and all(isinstance(p, list) for p in predictions):
        width = len(predictions[0])
        if all(len(p) == width for p in predictions):
            flat = [value for row in predictions for value in row]
            return {
                "name": "predict",
                "shape": [len(predictions), width],
                "datatype": oip_datatype(flat),
                "data": flat,
            }
    return {
        "name": "predict",
        "shape": [len(predictions)],
        "datatype": oip_datatype(predictions),
        "data": predictions,
    }


def model_metadata(name: str, live: LiveEndpoint) -> dict[str, Any]:
    """The OIP model metadata of endpoint ``name``: its versions and its primary's signature."""
    primary = live.batchers[live.router.routes[0].model].model
    signature = primary.signature
    inputs = (
        []
        if signature is None
        else [
            {"name": c.name, "datatype": OIP_DATATYPES.get(c.type, "BYTES"), "shape": [-1]}
            for c in signature.inputs
        ]
    )
    outputs = (
        [
            {"name": "predict", "datatype": OIP_DATATYPES.get(c.type, "BYTES"), "shape": [-1]}
            for c in signature.outputs[:1]
        ]
        if signature is not None and signature.outputs
        else [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]
    )
    return {
        "name": name,
        "versions": live.versions(),
        "platform": "loopml",
        "inputs": inputs,
        "outputs": outputs,
    }
