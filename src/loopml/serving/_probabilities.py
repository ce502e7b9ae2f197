"""Class probabilities on request: ``?probabilities=true`` or ``"return_probabilities": true``.

A predict request that asks for them is answered with ``classes`` (the model's class
labels, in the order of the columns) and ``probabilities`` (one list per row) besides
its ``predictions``. They come from a second call, ``predict_proba``, on the
version that answered, after the prediction is logged; the prediction log keeps the
answered predictions, not the probabilities (they can be recomputed from the logged
inputs and version). A model without ``predict_proba`` is refused before anything is
predicted or logged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd

from loopml.registry._loaded import LoadedModel
from loopml.serving._payloads import FloatRows, Payload

__all__ = [
    "BODY_FIELD",
    "QUERY_FIELD",
    "class_labels",
    "class_probabilities",
    "wants_probabilities",
]

QUERY_FIELD = "probabilities"
"""``?probabilities=true`` asks for class probabilities."""
BODY_FIELD = "return_probabilities"
"""``{"return_probabilities": true, ...}`` asks for them in a JSON body."""

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


def wants_probabilities(query: bytes | str) -> bool | None:
    """What the query string asks: True, False, or None when it does not say.

    Raises:
        ValueError: ``probabilities`` is not a boolean word (its text is in the message).
    """
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    asked = None
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key != QUERY_FIELD:
            continue
        word = value.strip().lower()
        if word not in _TRUE + _FALSE:
            raise ValueError(f"true or false; got {value[:40]!r}")
        asked = word in _TRUE
    return asked


def class_labels(model: LoadedModel, count: int) -> list[Any]:
    """The model's class labels (``classes_``), or 0 … count-1 when it names none."""
    classes = getattr(model.native, "classes_", None)
    if classes is not None and len(classes) == count:
        labels: list[Any] = np.asarray(classes).tolist()
        return labels
    return list(range(count))


def class_probabilities(model: LoadedModel, payload: Payload) -> tuple[list[Any], list[Any]]:
    """``(classes, probabilities)`` of every row of ``payload`` (in a worker thread).

    Raises:
        ModelError: the model has no probabilities, or fails on the input.
    """
    frame = (
        pd.DataFrame(payload.values, columns=list(payload.names))
        if isinstance(payload, FloatRows)
        else pd.DataFrame(payload)
    )
    array = np.asarray(model.predict_proba(frame), dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    rows: list[Any] = array.tolist()
    return class_labels(model, array.shape[1]), rows
