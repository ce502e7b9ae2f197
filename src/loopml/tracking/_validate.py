"""Validation of what users log: keys, values, steps. Messages name what was wrong."""

from __future__ import annotations

import math
import numbers
from typing import Any

from loopml.errors import InvalidParameter
from loopml.store import tables

__all__ = [
    "MAX_KEY_LENGTH",
    "check_key",
    "check_run_name",
    "check_step",
    "check_timestamp",
    "metric_value",
]

MAX_KEY_LENGTH = tables.KEY_LENGTH
"""The longest param, tag or metric key, and run name: the store's column width."""


def check_key(kind: str, key: object) -> str:
    """Return ``key`` if it is a usable name for a param, metric or tag."""
    if not isinstance(key, str):
        raise InvalidParameter(f"The {kind} key must be a str; got {type(key).__name__} {key!r}.")
    if not key or key.strip() != key:
        raise InvalidParameter(
            f"The {kind} key must be non-empty, without leading or trailing spaces; got {key!r}."
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidParameter(
            f"The {kind} key must be at most {MAX_KEY_LENGTH} characters; got {len(key)}."
        )
    if any(ord(ch) < 32 for ch in key):
        raise InvalidParameter(f"The {kind} key must not contain control characters; got {key!r}.")
    return key


def metric_value(key: str, value: Any) -> float | None:
    """Return the value to store (None stands for NaN); inf and -inf are kept as they are."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        # numpy scalars are numbers.Real; strings and None are not.
        raise InvalidParameter(
            f"The value of metric {key!r} must be a real number; "
            f"got {type(value).__name__} {value!r}."
        )
    number = float(value)
    return None if math.isnan(number) else number


def check_step(key: str, step: Any) -> int:
    """Return ``step`` as an int."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidParameter(
            f"The step of metric {key!r} must be an int; got {type(step).__name__} {step!r}."
        )
    return int(step)


def check_timestamp(key: str, timestamp: Any) -> int:
    """Return ``timestamp`` (epoch milliseconds) as an int."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Integral):
        raise InvalidParameter(
            f"The timestamp of metric {key!r} must be int epoch milliseconds; "
            f"got {type(timestamp).__name__} {timestamp!r}."
        )
    return int(timestamp)


def check_run_name(name: object) -> str | None:
    """Return ``name`` (a run's display name, or None) if the store can hold it."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidParameter(
            f"The 'name' parameter of a run must be a str or None; got {type(name).__name__}."
        )
    if len(name) > MAX_KEY_LENGTH:
        raise InvalidParameter(
            f"The 'name' parameter of a run must be at most {MAX_KEY_LENGTH} characters; "
            f"got {len(name)}."
        )
    return name
