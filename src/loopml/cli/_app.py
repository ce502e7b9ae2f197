"""The root ``loopml`` command: global options, error handling and the command groups."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Annotated, Any

import typer

# Typer 0.29 carries its own copy of Click; its usage errors are only importable from there.
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from loopml.cli import (
    _approvals,
    _artifacts,
    _data,
    _demo,
    _deployments,
    _gc,
    _models,
    _monitor,
    _pipelines,
    _predict,
    _projects,
    _quickstart,
    _runs,
    _serve,
    _settings,
    _triggers,
    _up,
)
from loopml.cli._client import READ_COMMANDS
from loopml.cli._output import debug_enabled, report_error, report_usage_error
from loopml.errors import LoopmlError

__all__ = ["app", "main"]

# Typer's own signals pass through: --help and Exit, usage errors (exit 2), Ctrl-C.
_TYPER_SIGNALS = (typer.Exit, typer.Abort, typer.TyperException)

_DEBUG = "--debug"


def debug_first(args: list[str]) -> list[str]:
    """Move every ``--debug`` before a ``--`` to the front, where the root option reads it.

    So ``loopml runs show X --debug`` works like ``loopml --debug runs show X``.
    Words after ``--`` are arguments, left where they are.
    """
    end = args.index("--") if "--" in args else len(args)
    head = args[:end]
    if _DEBUG not in head:
        return args
    return [_DEBUG, *(arg for arg in head if arg != _DEBUG), *args[end:]]


@contextmanager
def _one_line_usage_errors(root: Any = None, args: list[str] | None = None) -> Iterator[None]:
    """Turn a usage error into one red line naming the command's --help, and exit 2.

    Args:
        root: the root context, to find the command from ``args`` (its words) when
            the error carries no context (a missing option value says nothing).
        args: the words after the root's own options.
    """
    try:
        yield
    except NoArgsIsHelpError:
        raise  # 'loopml runs' alone: the help is the answer
    except UsageError as exc:
        if exc.ctx is not None:
            where = exc.ctx.command_path
        else:
            where = _command_path(root, args or []) if root is not None else "loopml"
        report_usage_error(exc.format_message(), where)
        raise typer.Exit(exc.exit_code) from None


def _command_path(root: Any, args: list[str]) -> str:
    """``loopml runs list`` from the words after the root's own options."""
    words = ["loopml"]
    command = root.command
    for word in args:
        sub = getattr(command, "commands", {}).get(word)
        if sub is None:
            break
        words.append(word)
        command = sub
    return " ".join(words)


def _reading_if_read_only(root: Any, words: list[str]) -> AbstractContextManager[None]:
    """:func:`loopml.store.read_only` for the commands of ``READ_COMMANDS``: they create no home."""
    path = _command_path(root, words).removeprefix("loopml ")
    if path in READ_COMMANDS:
        from loopml.store import read_only

        return read_only()
    return nullcontext()


class _LoopmlGroup(TyperGroup):
    """The root group: one red line on stderr for every error, ``--debug`` anywhere.

    Errors of loopml and of the environment exit 1, usage errors (an unknown
    option, a missing argument, a bad value) exit 2.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:  # a typer.Context; Any to match Typer's own signature
        with _one_line_usage_errors():
            return super().make_context(info_name, debug_first(list(args)), parent, **extra)

    def invoke(self, ctx: Any) -> Any:  # a typer.Context; Any to match Typer's own signature
        debug = debug_enabled(ctx.params.get("debug", False))
        try:
            # The words after the root options, before the group consumes them (Typer's Click
            # keeps the sub-command's name in _protected_args; it has no public reader).
            words = [*ctx._protected_args, *ctx.args]
            with _one_line_usage_errors(ctx, words), _reading_if_read_only(ctx, words):
                return super().invoke(ctx)
        except _TYPER_SIGNALS:
            raise
        except (LoopmlError, OSError) as exc:
            # OSError: the environment (permissions, full disk) — the message says it all.
            report_error(exc, expected=True, debug=debug)
        except Exception as exc:
            report_error(exc, expected=False, debug=debug)
        raise typer.Exit(1)


app = typer.Typer(
    name="loopml",
    cls=_LoopmlGroup,
    help="loopml: track experiments and run the machine-learning lifecycle as one loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from loopml._version import __version__

        typer.echo(f"loopml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show full tracebacks on errors, wherever it is on the command line "
            "(or set LOOPML_DEBUG=1).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """loopml: track experiments and run the machine-learning lifecycle as one loop."""


app.add_typer(_runs.app, name="runs")
app.add_typer(_artifacts.app, name="artifacts")
app.add_typer(_projects.app, name="projects")
app.add_typer(_data.app, name="data")
app.add_typer(_pipelines.app, name="pipelines")
app.add_typer(_approvals.app, name="approvals")
app.add_typer(_models.app, name="models")
app.add_typer(_deployments.app, name="deployments")
app.add_typer(_monitor.app, name="monitor")
app.add_typer(_monitor.alerts_app, name="alerts")
app.add_typer(_triggers.app, name="triggers")
app.add_typer(_triggers.app, name="trigger", hidden=True)  # `loopml trigger fire NAME` reads well
app.command("scheduler")(_triggers.scheduler)
app.command("up", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    _up.up
)
app.command("gc")(_gc.gc)
app.command("settings")(_settings.show_settings)
app.command("demo")(_demo.demo)
app.command("serve")(_serve.serve)
app.command("predict")(_predict.predict)
app.command("quickstart")(_quickstart.quickstart)


def main() -> None:
    """Entry point of the ``loopml`` console script."""
    app(prog_name="loopml")
