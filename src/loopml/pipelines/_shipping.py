"""Shipping a step's code by value to a worker, with its file name, lines and source.

cloudpickle renames every code object it pickles to ``<dynamic-code>`` (so that
its payloads do not depend on where code was defined), so a step from a script
or a file loaded by path would fail in a worker with a traceback naming no file
and showing no source. Here code objects are pickled with :mod:`marshal`, as a
``.pyc`` holds them, which keeps their file name and line table; the text of
every file the code comes from travels with it and is put in the worker's
:mod:`linecache`, so the traceback shows the user's file, line and source line
even where the file does not exist (a Ray node) or has changed since.

Like any pickled code, a payload is as trusted as the process that made it: the
worker runs the code anyway. Source texts are capped all the same.
"""

from __future__ import annotations

import io
import linecache
import marshal
import pickle
import types
from collections import ChainMap
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import cloudpickle

__all__ = ["MAX_SOURCE_CHARS", "dumps_by_value", "load_by_value"]

MAX_SOURCE_CHARS = 1024 * 1024
"""Characters of one source file shipped with a step; a larger file travels without it."""


def dumps_by_value(function: Callable[..., Any]) -> bytes:
    """Pickle ``function`` by value, keeping its file name and shipping its source.

    Returns:
        Bytes that ``cloudpickle.loads`` (or :mod:`pickle`) turns back into the
        function, after registering the shipped sources with :mod:`linecache`.
    """
    buffer = io.BytesIO()
    files: set[str] = set()
    _CodeKeepingPickler(buffer, files).dump(function)
    sources = {name: text for name in sorted(files) if (text := _source(name)) is not None}
    payload: bytes = cloudpickle.dumps(_Shipped(buffer.getvalue(), sources))
    return payload


def load_by_value(payload: bytes, sources: dict[str, str]) -> Any:
    """Unpickle a function made by :func:`dumps_by_value`; tracebacks show ``sources``.

    Each source is registered with :mod:`linecache` without a modification time,
    which ``linecache.checkcache`` leaves alone: the lines shown are those of the
    code that runs, not of whatever the file holds now.
    """
    for name, text in sources.items():
        linecache.cache[name] = (len(text), None, text.splitlines(keepends=True), name)
    return cloudpickle.loads(payload)


class _Shipped:
    """Pickles to a call of :func:`load_by_value` (importable in every worker)."""

    def __init__(self, payload: bytes, sources: dict[str, str]) -> None:
        self.payload = payload
        self.sources = sources

    def __reduce__(self) -> tuple[Any, tuple[bytes, dict[str, str]]]:
        return load_by_value, (self.payload, self.sources)


class _CodeKeepingPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, except that code objects keep their file name; notes the files seen."""

    def __init__(self, file: BinaryIO, files: set[str]) -> None:
        self._files = files
        # The C pickler reads ``dispatch_table`` when initialised: set it first.
        self.dispatch_table = ChainMap(
            {types.CodeType: self._reduce_code}, cloudpickle.Pickler.dispatch_table
        )
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)

    def _reduce_code(self, code: types.CodeType) -> tuple[Any, ...]:
        try:
            data = marshal.dumps(code)
        except ValueError:  # a constant marshal cannot write (code built by hand): as before
            reduced: tuple[Any, ...] = cloudpickle.Pickler.dispatch_table[types.CodeType](code)
            return reduced
        self._files.update(c.co_filename for c in _code_objects(code))
        return marshal.loads, (data,)


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code objects nested in it (inner functions, comprehensions)."""
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)


def _source(name: str) -> str | None:
    """The text of the file (or notebook cell) ``name`` as ``linecache`` knows it."""
    lines = linecache.getlines(name)
    if not lines:
        return None
    text = "".join(lines)
    return text if len(text) <= MAX_SOURCE_CHARS else None
