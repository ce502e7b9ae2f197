"""The options and arguments every command shares, so each means the same everywhere.

Use these instead of declaring ``--json``, ``--project`` or a model reference
again in a command module; ``tests/e2e/test_cli_tree.py`` walks the whole
command tree and checks that every command follows the same rules:

* every command takes ``--json``;
* a short flag has one meaning everywhere (``-p`` is always ``--project``; the
  table is in that test and in the README);
* a model version is ONE argument, ``credit/2``, ``credit@champion`` or
  ``models:/credit/2`` (:data:`ModelVersionRef`, metavar ``MODEL_REF``).

Example:
    >>> import typer
    >>> from loopml.cli._options import Json, ModelVersionRef, Project
    >>> app = typer.Typer()
    >>> @app.command("archive")
    ... def archive(ref: ModelVersionRef, project: Project = None, as_json: Json = False) -> None:
    ...     '''Archive a model version.'''
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = [
    "MODEL_REF_METAVAR",
    "Comment",
    "Json",
    "ModelOrVersionRef",
    "ModelVersionRef",
    "Project",
    "check_model_version_ref",
]

MODEL_REF_METAVAR = "MODEL_REF"
"""The metavar of every model-version argument (the command-tree test finds them by it)."""

Json = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print the result as JSON on stdout (errors stay one line on stderr).",
    ),
]
"""``--json``: a listing prints a JSON list, anything else one JSON object."""

Project = Annotated[
    str | None, typer.Option("--project", "-p", help="Project (default: LOOPML_PROJECT).")
]
"""``--project``/``-p``: the project a command works in (default: the setting)."""

Comment = Annotated[str | None, typer.Option("--comment", help="Why: kept with the decision.")]
"""``--comment``: why a decision was taken (no short flag: ``-m`` is ``--model``)."""


def check_model_version_ref(value: str) -> str:
    """Return ``value`` if it names one model version, else raise a usage error.

    Accepted: ``credit/2``, ``credit@champion`` and ``models:/credit/2`` (or
    ``models:/credit@champion``); a bare model name is refused, since an action
    on "the latest" version is rarely what was meant.

    Raises:
        typer.BadParameter: the text is not a version reference (exit 2).
    """
    from loopml.errors import InvalidParameter
    from loopml.registry._refs import parse_model_ref

    try:
        parsed = parse_model_ref(value)
    except InvalidParameter as exc:
        raise typer.BadParameter(str(exc)) from exc
    if parsed.version is None and parsed.alias is None:
        raise typer.BadParameter(
            f"{value!r} names a model, not a version; write {parsed.name}/2, "
            f"{parsed.name}@champion or models:/{parsed.name}/2."
        )
    return value.strip()


def _check_model_ref(value: str) -> str:
    from loopml.errors import InvalidParameter
    from loopml.registry._refs import parse_model_ref

    try:
        parse_model_ref(value)
    except InvalidParameter as exc:
        raise typer.BadParameter(str(exc)) from exc
    return value.strip()


ModelVersionRef = Annotated[
    str,
    typer.Argument(
        help="The model version: credit/2, credit@champion or models:/credit/2.",
        metavar=MODEL_REF_METAVAR,
        callback=check_model_version_ref,
        show_default=False,
    ),
]
"""A model version as one argument (``NAME VERSION`` as two is not accepted)."""

ModelOrVersionRef = Annotated[
    str,
    typer.Argument(
        help="credit (its newest usable version), credit/2, credit@champion or models:/credit/2.",
        metavar=MODEL_REF_METAVAR,
        callback=_check_model_ref,
        show_default=False,
    ),
]
"""A model version as one argument, where a bare name means the newest usable version."""
