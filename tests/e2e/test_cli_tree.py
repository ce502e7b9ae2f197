"""The whole command tree follows the same rules (issue 13, "one consistent CLI").

The tree is walked, not listed: a command added anywhere is checked too.
For every command: it takes ``--json``; each short flag means the one long
option the table below gives it, and a long option in the table always has its
short flag; a model version is one ``MODEL_REF`` argument that takes
``credit/2``, ``credit@champion`` and ``models:/credit/2``; ``--debug`` may
come after the command; an unknown option is one line on stderr and exit 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from cli_support import Cli

from loopml.cli import app
from loopml.cli._options import MODEL_REF_METAVAR

# One meaning per short flag, everywhere. -m is --model and -P is --param, as in MLflow
# ('mlflow models serve -m', 'mlflow run -P'); the "why" texts (--comment, --reason) have none.
SHORT_FLAGS: dict[str, frozenset[str]] = {
    "-a": frozenset({"--alias"}),
    "-d": frozenset({"--description"}),
    "-e": frozenset({"--executor"}),
    "-f": frozenset({"--filter"}),
    "-k": frozenset({"--key"}),
    "-m": frozenset({"--model"}),
    "-n": frozenset({"--max"}),
    "-o": frozenset({"--output"}),
    "-p": frozenset({"--project"}),
    "-P": frozenset({"--param"}),
    "-r": frozenset({"--route"}),
    "-s": frozenset({"--status"}),
    "-t": frozenset({"--target"}),
    "-y": frozenset({"--yes"}),
}
SHORT_OF = {long: short for short, longs in SHORT_FLAGS.items() for long in longs}


# Commands another helper of issue 13 gives --json; remove an entry once it is merged
# (strict: the test then fails until the entry goes).
def _walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from _walk(sub, (*path, name))


ROOT = typer.main.get_command(app)
COMMANDS = list(_walk(ROOT, ()))
GROUPS = [(), *sorted({path[:-1] for path, _ in COMMANDS if len(path) > 1})]


def _ids(items: list[tuple[tuple[str, ...], Any]]) -> list[str]:
    return [" ".join(path) for path, _ in items]


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option"]


def _arguments(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "argument"]


def test_the_tree_has_every_command() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert len(names) >= 47
    assert {"runs list", "models promote", "pipelines run", "demo", "gc"} <= names


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=_ids(COMMANDS))
def test_every_command_takes_json(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    names = {opt for option in _options(command) for opt in option.opts}
    assert "--json" in names, f"'loopml {' '.join(path)}' has no --json"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=_ids(COMMANDS))
def test_short_flags_have_one_meaning(path: tuple[str, ...], command: Any) -> None:
    where = f"'loopml {' '.join(path)}'"
    for option in _options(command):
        names = [*option.opts, *option.secondary_opts]
        shorts = [n for n in names if len(n) == 2 and not n.startswith("--")]
        longs = [n for n in names if n.startswith("--")]
        assert longs, f"{where}: option {names} has no long name"
        for short in shorts:
            assert short in SHORT_FLAGS, f"{where}: {short} is not in the table of short flags"
            assert set(longs) & SHORT_FLAGS[short], (
                f"{where}: {short} means {longs}, but everywhere else {sorted(SHORT_FLAGS[short])}"
            )
        for long in longs:
            if long in SHORT_OF:
                assert SHORT_OF[long] in shorts, f"{where}: {long} lacks its short {SHORT_OF[long]}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=_ids(COMMANDS))
def test_a_model_version_is_one_argument(path: tuple[str, ...], command: Any) -> None:
    where = f"'loopml {' '.join(path)}'"
    arguments = _arguments(command)
    for argument in arguments:
        assert argument.name != "version" and argument.metavar != "VERSION", (
            f"{where} takes the version as its own argument; use ONE MODEL_REF argument "
            "(loopml.cli._options.ModelVersionRef)"
        )
    refs = [a for a in arguments if a.metavar == MODEL_REF_METAVAR]
    if not refs:
        return
    ctx = command.make_context(path[-1], [], resilient_parsing=True)
    for argument in refs:
        for ref in ("credit/2", "credit@champion", "models:/credit/2", "models:/credit@champion"):
            assert argument.process_value(ctx, ref) == ref, (where, ref)
        for bad in ("credit/2/3", "credit@", "models:/", "cr edit/2"):
            with pytest.raises(typer.BadParameter):
                argument.process_value(ctx, bad)


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=_ids(COMMANDS))
def test_debug_is_taken_after_the_command(cli: Cli, path: tuple[str, ...]) -> None:
    result = cli(*path, "--debug", "--help")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"Usage: loopml {' '.join(path)} ")


@pytest.mark.parametrize(
    "path", [*GROUPS, *(path for path, _ in COMMANDS)], ids=lambda p: " ".join(p) or "loopml"
)
def test_an_unknown_option_is_one_line_and_exit_2(cli: Cli, path: tuple[str, ...]) -> None:
    result = cli(*path, "--no-such-flag-here")
    assert result.exit_code == 2
    where = " ".join(("loopml", *path))
    assert result.stderr == (f"error: No such option: --no-such-flag-here (see '{where} --help')\n")
    assert result.stdout == ""
