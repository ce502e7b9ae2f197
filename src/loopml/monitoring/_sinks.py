"""Alert sinks: the log and a local command, and sinks built from stored configuration.

A monitor stores its sinks as specs (``"log"``, ``{"webhook": url, "format": "slack"}``,
``{"command": ["notify", "--team", "ml"]}``); :func:`sink_from_spec` turns one into a
sink and names what is wrong with a bad one. A spec cannot allow private webhook
addresses: that is the operator's setting (``LOOPML_WEBHOOK_ALLOW_PRIVATE``), not
something whoever edits a monitor may switch on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING

from loopml.errors import AlertDeliveryFailed, InvalidParameter
from loopml.monitoring._events import AlertEvent, Sink
from loopml.monitoring._webhook import WebhookSink

if TYPE_CHECKING:
    import subprocess

__all__ = ["CommandSink", "LogSink", "sink_from_spec"]

_ALERT_VARIABLE = "LOOPML_ALERT"
_STDERR_SHOWN = 500  # characters of a failed command's stderr quoted in the error
_MAX_ARGS = 256


class LogSink:
    """Writes each event to Python logging: WARNING when firing, INFO when resolved.

    The record's ``alert`` attribute holds :meth:`AlertEvent.to_dict` for structured
    handlers. Line breaks and control characters in stored text are shown escaped, so
    a column name cannot forge log lines.

    Args:
        logger: The logger or its name.
    """

    def __init__(self, logger: str | logging.Logger = "loopml.monitoring.alerts") -> None:
        self.logger = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)

    def __repr__(self) -> str:
        return f"LogSink({self.logger.name!r})"

    def deliver(self, event: AlertEvent) -> None:
        """Log ``event``."""
        level = logging.WARNING if event.state == "firing" else logging.INFO
        text = event.title + (f": {event.message}" if event.message else "")
        if event.report:
            text += f" (report: {event.report})"
        self.logger.log(level, "%s", _one_line(text), extra={"alert": event.to_dict()})


class CommandSink:
    """Runs a local command for each event, without a shell.

    The event's JSON (:meth:`AlertEvent.to_dict`) is the command's standard input and
    the value of its ``LOOPML_ALERT`` environment variable; the rest of the environment
    is inherited. Standard output is discarded.

    Args:
        argv: The program and its arguments, e.g. ``["notify-send", "loopml"]``.
        timeout: Seconds the command may run before it (and what it started) is killed.

    Raises:
        InvalidParameter: ``argv`` is not a non-empty list of strings, or ``timeout``
            is not a positive number.

    Example:
        >>> CommandSink(["logger", "-t", "loopml"])
        CommandSink(['logger', '-t', 'loopml'], timeout=30.0)
    """

    def __init__(self, argv: Sequence[str], *, timeout: float = 30.0) -> None:
        if (
            isinstance(argv, str | bytes)
            or not isinstance(argv, Sequence)
            or not 0 < len(argv) <= _MAX_ARGS
            or not all(isinstance(a, str) and "\0" not in a for a in argv)
            or not argv[0]
        ):
            raise InvalidParameter(
                "The 'argv' parameter of CommandSink must be a non-empty list of at most "
                f"{_MAX_ARGS} strings without NUL, the program first. Got {argv!r} instead."
            )
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not (0 < timeout < math.inf)
        ):
            raise InvalidParameter(
                "The 'timeout' parameter of CommandSink must be a finite number of seconds "
                f"> 0. Got {timeout!r} instead."
            )
        self.argv = list(argv)
        self.timeout = float(timeout)

    def __repr__(self) -> str:
        return f"CommandSink({self.argv!r}, timeout={self.timeout!r})"

    def deliver(self, event: AlertEvent) -> None:
        """Run the command for ``event`` and wait for it.

        Raises:
            AlertDeliveryFailed: the command could not start, exited with a non-zero
                status, or ran past its timeout (it is killed then).
        """
        import subprocess  # loaded when a command runs, not when loopml.monitoring is imported
        import tempfile

        payload = event.to_json()
        env = {**os.environ, _ALERT_VARIABLE: payload.decode()}
        with tempfile.TemporaryFile() as stderr:
            # stderr goes to a file, not a pipe: a chatty command cannot fill memory,
            # and only its tail is quoted.
            try:
                process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env=env,
                    start_new_session=os.name == "posix",
                )
            except OSError as exc:
                raise AlertDeliveryFailed(
                    f"The alert command {self.argv[0]!r} could not start: {exc.strerror or exc}."
                ) from None
            try:
                process.communicate(payload, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill(process)
                raise AlertDeliveryFailed(
                    f"The alert command {self.argv[0]!r} ran longer than {self.timeout:g} s "
                    "and was killed."
                ) from None
            if process.returncode != 0:
                raise AlertDeliveryFailed(
                    f"The alert command {self.argv[0]!r} exited with status "
                    f"{process.returncode}{_tail(stderr)}."
                )


def sink_from_spec(spec: object, *, allow_command: bool = True) -> Sink:
    """Build a sink from its stored form.

    Args:
        spec: ``"log"``; ``{"webhook": url}`` with optional ``format`` (``generic`` or
            ``slack``), ``headers``, ``timeout`` and ``retries``; or ``{"command":
            [program, arg, ...]}`` with optional ``timeout``.
        allow_command: Accept command specs. A command sink runs a program on the
            machine that runs the monitor: pass False for specs from anyone who may
            not run programs there (an HTTP API's callers).

    Returns:
        The sink.

    Raises:
        InvalidParameter: the spec has an unknown form or key, or a value of the wrong
            type, or is a command spec when ``allow_command`` is False; the message
            names it.
        ForbiddenAddress: a webhook URL that is not http(s) or names a forbidden address.

    Example:
        >>> sink_from_spec({"webhook": "https://hooks.example.com/x", "format": "slack"})
        WebhookSink('https://hooks.example.com/…', format='slack')
    """
    if spec == "log":
        return LogSink()
    if not isinstance(spec, Mapping):
        raise InvalidParameter(
            "The 'spec' parameter of sink_from_spec must be 'log', {'webhook': url, ...} "
            f"or {{'command': [...], ...}}. Got {_shown(spec)} instead."
        )
    kinds = [kind for kind in ("webhook", "command") if kind in spec]
    if len(kinds) != 1:
        raise InvalidParameter(
            "The 'spec' parameter of sink_from_spec must have exactly one of the keys "
            f"'webhook' and 'command'. Got keys {sorted(map(str, spec))} instead."
        )
    kind = kinds[0]
    allowed = (
        {"webhook", "format", "headers", "timeout", "retries"}
        if kind == "webhook"
        else {
            "command",
            "timeout",
        }
    )
    unknown = sorted(str(key) for key in spec if key not in allowed)
    if unknown:
        raise InvalidParameter(
            f"The 'spec' parameter of sink_from_spec for a {kind} sink may have the keys "
            f"{sorted(allowed)}. Got unknown keys {unknown} instead."
        )
    if kind == "command":
        if not allow_command:
            raise InvalidParameter(
                "The 'spec' parameter of sink_from_spec must not be a command sink here: "
                "a command runs a program on this machine, and this caller does not allow "
                "it (allow_command=False). Use a webhook or the log."
            )
        command = spec["command"]
        if not isinstance(command, list):
            raise InvalidParameter(
                "The 'command' key of a sink spec must be a list of strings, the program "
                f"first. Got {_shown(command)} instead."
            )
        return CommandSink(command, timeout=spec.get("timeout", 30.0))
    return WebhookSink(
        spec["webhook"],
        format=spec.get("format", "generic"),
        headers=spec.get("headers"),
        timeout=spec.get("timeout"),
        retries=spec.get("retries"),
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    if os.name == "posix":
        import signal

        # The command ran in a session of its own: end what it started too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()
    process.wait()


def _tail(stderr: IO[bytes]) -> str:
    size = stderr.seek(0, os.SEEK_END)
    stderr.seek(max(0, size - 4 * _STDERR_SHOWN))
    text = _one_line(stderr.read().decode("utf-8", "replace")).strip()
    if not text:
        return ""
    return f"; its stderr ends: {text[-_STDERR_SHOWN:]}"


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"
