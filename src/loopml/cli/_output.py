"""Console, JSON and error helpers shared by every command.

Data goes to stdout (a Rich table, or JSON with ``--json``); errors go to stderr
as one red line. Consoles are made per call so they follow whatever
``sys.stdout``/``sys.stderr`` are at the time (test runners swap them).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import traceback
import warnings
from collections.abc import Mapping
from typing import Any

from rich.console import Console

__all__ = [
    "debug_enabled",
    "out",
    "print_json",
    "print_warnings",
    "report_error",
    "report_usage_error",
    "to_jsonable",
]

_DEBUG_HINT = "rerun with --debug (or LOOPML_DEBUG=1) to see the traceback."


def out() -> Console:
    """Return a console on stdout."""
    return Console(soft_wrap=False)


def _err() -> Console:
    # soft_wrap: a long message stays one line instead of being folded by Rich.
    # emoji=False: ':100:' in an error (a route weight) must stay text.
    return Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


def to_jsonable(value: Any) -> Any:
    """Turn records, mappings and floats into plain JSON values.

    Non-finite floats become the strings ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"`` (strict JSON has no such numbers; ``float()`` reads them back).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def print_json(data: Any) -> None:
    """Write ``data`` to stdout as indented, strict JSON."""
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def debug_enabled(flag: bool) -> bool:
    """Return whether tracebacks are wanted: ``--debug`` or ``LOOPML_DEBUG``.

    A malformed ``LOOPML_DEBUG`` counts as off here; ``loopml settings`` shows it.
    """
    if flag:
        return True
    from loopml import settings
    from loopml.errors import SettingError

    try:
        return bool(settings.get("LOOPML_DEBUG"))
    except SettingError:
        return False


def report_error(exc: BaseException, *, expected: bool, debug: bool) -> None:
    """Print ``exc`` to stderr: one red line, plus the traceback in debug mode.

    Args:
        exc: the error.
        expected: a loopml error or an environment problem the user can fix (its
            message is the whole story); otherwise a hint to rerun with --debug.
        debug: print the traceback first.
    """
    from loopml._urls import redact_text

    console = _err()
    # Messages (a driver's, a filesystem's) may quote a URL with its credentials.
    if debug:
        sys.stderr.write(redact_text("".join(traceback.format_exception(exc))))
        sys.stderr.flush()
    message = redact_text(str(exc)) or type(exc).__name__
    if not expected:
        message = f"unexpected {type(exc).__name__}: {message}"
    console.print(f"error: {message}", style="red", markup=False)
    if not expected and not debug:
        console.print(f"hint: {_DEBUG_HINT}", style="dim", markup=False)


def report_usage_error(message: str, command_path: str) -> None:
    """Print a usage error as one red line that names the command's ``--help``.

    Args:
        message: what is wrong, e.g. ``No such option: --foo``.
        command_path: the command as typed so far, e.g. ``loopml runs list``.
    """
    line = f"error: {message} (see '{command_path} --help')"
    _err().print(line, style="red", markup=False)


def print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Print loopml's warnings among ``caught`` as one yellow ``warning:`` line each on stderr.

    Others are handed back to the warnings machinery unchanged.
    """
    from loopml.errors import LoopmlWarning

    for warning in caught:
        if issubclass(warning.category, LoopmlWarning):
            _err().print(f"warning: {warning.message}", style="yellow", markup=False)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
