"""The root ``loopml`` command: global options, error handling and the command groups."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from loopml.cli import (
    _approvals,
    _artifacts,
    _data,
    _demo,
    _deployments,
    _gc,
    _models,
    _pipelines,
    _predict,
    _projects,
    _quickstart,
    _runs,
    _serve,
    _settings,
)
from loopml.cli._output import debug_enabled, report_error
from loopml.errors import LoopmlError

__all__ = ["app", "main"]

# Typer's own signals pass through: --help and Exit, usage errors (exit 2), Ctrl-C.
_TYPER_SIGNALS = (typer.Exit, typer.Abort, typer.TyperException)


class _LoopmlGroup(TyperGroup):
    """The root group: turns errors into one red line on stderr and exit code 1."""

    def invoke(self, ctx: Any) -> Any:  # a typer.Context; Any to match Typer's own signature
        try:
            return super().invoke(ctx)
        except _TYPER_SIGNALS:
            raise
        except (LoopmlError, OSError) as exc:
            # OSError: the environment (permissions, full disk) — the message says it all.
            report_error(exc, expected=True, debug=debug_enabled(ctx.params.get("debug", False)))
        except Exception as exc:
            report_error(exc, expected=False, debug=debug_enabled(ctx.params.get("debug", False)))
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
        typer.Option("--debug", help="Show full tracebacks on errors (or set LOOPML_DEBUG=1)."),
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
app.command("gc")(_gc.gc)
app.command("settings")(_settings.show_settings)
app.command("demo")(_demo.demo)
app.command("serve")(_serve.serve)
app.command("predict")(_predict.predict)
app.command("quickstart")(_quickstart.quickstart)


def main() -> None:
    """Entry point of the ``loopml`` console script."""
    app(prog_name="loopml")
