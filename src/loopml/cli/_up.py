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
    as_json: Annotated[
        bool,
        typer.Option("--json", help="The server announces itself as one JSON line on stdout."),
    ] = False,
) -> None:
    """Serve endpoints and run the triggers in one command (arguments go to `loopml serve`)."""
    serve_args = [*context.args, *(["--trust"] if trust else []), *(["--json"] if as_json else [])]
    _check_serve_args(context, serve_args)
    base = [sys.executable, "-m", "loopml.cli"]
    commands = {
        "serve": [*base, "serve", *serve_args],
        "scheduler": [*base, "scheduler", *(["--trust"] if trust else [])],
    }

    def say(text: str) -> None:
        if as_json:
            typer.echo(text, err=True)
        else:
            out().print(text, highlight=False)

    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, command in commands.items():
            children[name] = subprocess.Popen(command)
        say(
            f"loopml up: server pid {children['serve'].pid}, scheduler pid "
            f"{children['scheduler'].pid} (Ctrl-C stops both)."
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
        say(f"loopml up: {name} stopped (exit {code}); stopped the other too.")
        raise typer.Exit(code or 1)


def _check_serve_args(context: typer.Context, args: list[str]) -> None:
    """Parse ``args`` as `loopml serve` would, before anything starts.

    Raises:
        UsageError: an option serve does not know, or a bad value (named as ``loopml
            up``'s, so its one-line error points at ``loopml up --help``).
    """
    from typer._click.exceptions import NoSuchOption, UsageError

    serve = getattr(context.find_root().command, "commands", {}).get("serve")
    if serve is None:
        return
    try:
        serve.make_context(f"{context.command_path} serve", list(args))
    except NoSuchOption as exc:
        raise NoSuchOption(exc.option_name, ctx=context) from None
    except UsageError as exc:
        raise UsageError(exc.message, ctx=context) from None


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
