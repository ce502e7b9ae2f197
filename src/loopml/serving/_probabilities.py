"""Class probabilities on request: ``?probabilities=true`` or ``"return_probabilities": true``.

A predict request that asks for them is answered with ``classes`` (the model's class
labels, in the order of the columns) and ``probabilities`` (one list per row) besides
its ``predictions``. A model without ``predict_proba`` is refused before anything is
predicted or logged.

An endpoint whose settings say ``log_probabilities`` (or a server started with
``--log-probabilities``) computes them for every request, in the same batch as the
prediction, and logs them (:func:`logged_probabilities`): monitoring then reads one
``proba_<class>`` column per class, which estimated performance (CBPE), realised ROC
AUC and log loss need. A request of such an endpoint that asks for them gets the
logged ones; elsewhere they come from a second call, ``predict_proba``, on the version
that answered, after the prediction is logged, and are not logged.

A class's key — the ``<class>`` of ``proba_<class>`` — is its label as text, whole
numbers and booleans as the integer they equal (``1``, ``1.0`` and ``True`` all give
``"1"``), as monitoring keys labels (:func:`class_key`).
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd

from loopml.registry._loaded import LoadedModel
from loopml.serving._payloads import FloatRows, Payload

__all__ = [
    "BODY_FIELD",
    "QUERY_FIELD",
    "class_key",
    "class_labels",
    "class_probabilities",
    "logged_probabilities",
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


def class_key(label: Any) -> str:
    """A class label as the text that names its probability column (see the module docstring)."""
    if isinstance(label, str):
        return label
    if isinstance(label, bool | np.bool_ | int | np.integer):
        return str(int(label))
    if isinstance(label, float | np.floating) and math.isfinite(label) and label == int(label):
        return str(int(label))
    return str(label)


def logged_probabilities(model: LoadedModel, frame: pd.DataFrame) -> FloatRows | None:
    """The class probabilities of ``frame``'s rows as the prediction log keeps them.

    The columns are named by :func:`class_key`; None when two classes share a key (a
    model with both ``1`` and ``True``, say), whose columns could not be told apart.

    Raises:
        Exception: whatever the model raises (the caller answers with the prediction only
            when that happens: see :class:`~loopml.serving._batching.Batcher`).
    """
    array = np.asarray(model.predict_proba(frame), dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[0] != len(frame) or not array.shape[1]:
        raise ValueError(
            f"predict_proba returned an array of shape {array.shape} for {len(frame)} rows."
        )
    keys = tuple(class_key(label) for label in class_labels(model, array.shape[1]))
    if len(set(keys)) != len(keys):
        return None
    return FloatRows(keys, array)
