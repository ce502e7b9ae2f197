"""Cache keys of step executions, over a canonical JSON of everything that matters."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from loopml.errors import InvalidParameter
from loopml.pipelines import _versions

__all__ = ["FORMAT_VERSION", "cache_key", "dumps_canonical", "sha256_json"]

#: Bumped whenever what goes into a fingerprint or a key changes, so that old
#: cache entries stop matching instead of matching wrongly.
FORMAT_VERSION: Final = 1

_Json = Any  # a JSON-able value (lists, dicts, str, int, None)


def cache_key(
    step_name: str,
    code: str,
    inputs: Mapping[str, str],
    constants: Mapping[str, Any],
    packages: Sequence[str],
) -> str:
    """Compute the key under which a step execution's outputs are cached.

    Constants are canonicalised: JSON values stand for themselves (tuples as
    lists); sets, non-finite floats, dicts with non-string keys and every other
    type are tagged with their type and keyed by ``repr``, so give such values a
    deterministic ``repr`` (the default one contains a memory address and
    would make the step miss every time).

    Args:
        step_name: the step's name in its pipeline.
        code: the step's :func:`code_fingerprint`.
        inputs: argument name to the input's content hash.
        constants: argument name to a parameter or literal value.
        packages: distributions the step declares (``"numpy"``; requirement
            strings such as ``"scikit-learn>=1.4"`` are accepted and keyed by
            name). Their installed versions are used; one that is not
            installed counts as ``"not-installed"``.

    Returns:
        A 64-character hex SHA-256 digest. Independent of the order of
        ``inputs``, ``constants`` and ``packages``.

    Raises:
        InvalidParameter: if an argument has the wrong type or a package name is
            not a valid distribution name.

    Example:
        >>> key = cache_key("train", "ab" * 32, {"df": "cd" * 32}, {"alpha": 0.5}, [])
        >>> key == cache_key("train", "ab" * 32, {"df": "cd" * 32}, {"alpha": 0.5}, [])
        True
    """
    if not isinstance(step_name, str) or not step_name:
        raise InvalidParameter(
            "The 'step_name' parameter of cache_key must be a non-empty str. "
            f"Got {step_name!r} instead."
        )
    if not isinstance(code, str):
        raise InvalidParameter(
            f"The 'code' parameter of cache_key must be a str. Got {type(code).__name__} instead."
        )
    if isinstance(packages, str | bytes):
        raise InvalidParameter(
            "The 'packages' parameter of cache_key must be a sequence of distribution names. "
            f"Got the string {packages!r} instead; wrap it in a list."
        )
    for name, content_hash in inputs.items():
        if not isinstance(content_hash, str):
            raise InvalidParameter(
                f"The 'inputs' parameter of cache_key must map names to content hashes (str). "
                f"Got {type(content_hash).__name__} for {name!r} instead."
            )
    versions = _versions.VERSIONS
    versions.refresh()
    declared = sorted(map(_versions.dist_name, packages))
    payload = {
        "format": FORMAT_VERSION,
        "step": step_name,
        "code": code,
        "inputs": {str(name): value for name, value in inputs.items()},
        "constants": {str(name): _canonical(value) for name, value in constants.items()},
        "packages": {name: versions.version(name) for name in declared},
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "implementation": sys.implementation.name,
    }
    return sha256_json(payload)


def sha256_json(payload: _Json) -> str:
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dumps_canonical(value: _Json) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _canonical(value: object) -> _Json:
    """JSON form of a constant; dicts are wrapped so no value can pose as a type tag."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if value == value and value not in (float("inf"), float("-inf")):  # finite
            return value
    elif kind in (list, tuple):
        return [_canonical(item) for item in value]  # type: ignore[attr-defined]
    elif kind is dict:
        items = value.items()  # type: ignore[attr-defined]
        if all(type(key) is str for key, _ in items):
            return {"$dict": {key: _canonical(item) for key, item in items}}
        pairs = [[_canonical(key), _canonical(item)] for key, item in items]
        return {"$type": "dict", "$items": sorted(pairs, key=dumps_canonical)}
    elif kind in (set, frozenset):
        return {"$type": "set", "$items": sorted(map(_canonical, value), key=dumps_canonical)}  # type: ignore[call-overload]
    return {"$type": f"{kind.__module__}.{kind.__qualname__}", "$repr": repr(value)}
