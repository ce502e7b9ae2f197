"""``loopml up``: the one-machine setup — the inference server and the scheduler together.

It starts two child processes of this same loopml, ``loopml serve ARGS…`` (every
argument after ``up``'s own options goes to ``serve`` as given) and ``loopml
scheduler``, and supervises them: Ctrl-C or SIGTERM stops both (each finishes its own
clean shutdown: the server writes its prediction log, the scheduler gives its lease
up); when either stops on its own, the other is stopped too and ``up`` exits with the
first one's status. Two processes rather than threads of one: a pipeline the scheduler
runs, or a slow model the server loads, never holds up the other.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Annotated

import typer

from loopml.cli._output import out

__all__ = ["STOP_SECONDS", "up"]

STOP_SECONDS = 60.0
"""How long each child gets to stop cleanly after SIGTERM before it is killed."""


def up(
    context: typer.Context,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Both: load pickled models and run pipelines that other accounts stored.",
        ),
    ] = False,
) -> None:
    """Serve endpoints and run the triggers in one command (arguments go to `loopml serve`)."""
    serve_args = list(context.args)
    base = [sys.executable, "-m", "loopml.cli"]
    commands = {
        "serve": [*base, "serve", *serve_args, *(["--trust"] if trust else [])],
        "scheduler": [*base, "scheduler", *(["--trust"] if trust else [])],
    }
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, command in commands.items():
            children[name] = subprocess.Popen(command)
        out().print(
            f"loopml up: server pid {children['serve'].pid}, scheduler pid "
            f"{children['scheduler'].pid} (Ctrl-C stops both).",
            highlight=False,
        )
        first: tuple[str, int] | None = None
        while not stopping and first is None:
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    first = (name, code)
                    break
            time.sleep(0.2)
    finally:
        _stop_all(children)
        for number, handler in previous.items():
            signal.signal(number, handler)
    if first is not None:
        name, code = first
        out().print(f"loopml up: {name} stopped (exit {code}); stopped the other too.")
        raise typer.Exit(code or 1)


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every running child, wait for each, kill what does not stop in time."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
