"""``loopml data delete`` and ``loopml data restore``: soft-delete a dataset version, bring it back.

Deleting asks for confirmation on a terminal unless ``--yes``; without a terminal
(a script, CI) it refuses to guess and exits 2, so it never waits for an answer.
"""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer._click.exceptions import UsageError

from loopml.cli import _data_views as views
from loopml.cli._options import Json, Project
from loopml.cli._output import out, print_json
from loopml.errors import DatasetNotFound, InvalidParameter, LoopmlError

if TYPE_CHECKING:
    from loopml.data import DatasetVersion, VersionReference

__all__ = ["check_version_ref", "delete", "restore"]


def check_version_ref(value: str) -> str:
    """Return ``value`` if it names one dataset version by number (``credit:2``).

    Raises:
        typer.BadParameter: anything else: a bare name, ``@latest``, bad text (exit 2).
    """
    from loopml.data._refs import parse_ref

    try:
        parsed = parse_ref(value)
    except InvalidParameter as exc:
        raise typer.BadParameter(str(exc)) from exc
    if parsed.version is None:
        raise typer.BadParameter(
            f"{value!r} does not name one version; write {parsed.name}:N "
            f"(see 'loopml data versions {parsed.name}')."
        )
    return str(parsed)


_VersionRef = Annotated[
    str,
    typer.Argument(
        help="The dataset version, NAME:VERSION (e.g. credit:2).",
        metavar="REF",
        callback=check_version_ref,
        show_default=False,
    ),
]


def delete(
    ref: _VersionRef,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking for confirmation.")
    ] = False,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """Delete dataset version REF (soft: 'loopml data restore REF' brings it back).

    A deleted version is never the latest, is hidden from 'data versions' (unless
    --all or --deleted) and its data cannot be loaded; 'data show' and 'data diff'
    still read its metadata. Runs, pipeline steps, models or datasets that still
    refer to it do not block the deletion: they are listed, and garbage collection
    keeps its data while they live. Asks first on a terminal unless --yes;
    elsewhere --yes is required.
    """
    import loopml.data
    from loopml.errors import DatasetVersionReferenced

    version = loopml.data.get(ref, project=project)
    if not yes and not version.deleted:
        client = loopml.data.get_client()
        _confirm(version, client.references(version.ref, project=version.project))
    with warnings.catch_warnings():
        # The references are printed below (or are in the JSON), not as a Python warning.
        warnings.simplefilter("ignore", DatasetVersionReferenced)
        deletion = loopml.data.delete(version.ref, project=version.project)
    latest = _latest(version.name, version.project)
    if as_json:
        print_json({**views.deletion_json(deletion), "latest": latest})
        return
    console = out()
    console.print(
        f"Deleted dataset version {version.ref} (restore it with "
        f"'loopml data restore {version.ref} -p {version.project}').",
        highlight=False,
    )
    if deletion.references:
        console.print(
            f"warning: {version.ref} is still referred to by {len(deletion.references)} live "
            "object(s); garbage collection keeps its data while they live:",
            style="yellow",
            highlight=False,
        )
        for line in _reference_lines(deletion.references):
            console.print(line, highlight=False)
    if latest is None:
        console.print(
            f"note: dataset {version.name!r} now has no usable version.",
            style="yellow",
            highlight=False,
        )
    else:
        console.print(f"{version.name}@latest is {latest}.", highlight=False)


def restore(ref: _VersionRef, project: Project = None, as_json: Json = False) -> None:
    """Restore deleted dataset version REF, exactly as it was."""
    import loopml.data

    version = loopml.data.restore(ref, project=project)
    latest = _latest(version.name, version.project)
    if as_json:
        print_json({**views.version_json(version), "latest": latest})
        return
    out().print(
        f"Restored dataset version {version.ref}; {version.name}@latest is {latest or 'none'}.",
        highlight=False,
    )


def _confirm(version: DatasetVersion, references: list[VersionReference]) -> None:
    """Ask on a terminal; refuse (exit 2) without one, so that scripts never hang."""
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to delete {version.ref} without confirmation: stdin is not a terminal; "
            "pass --yes (-y) to delete."
        )
    # On stderr, like the prompt: stdout carries only the result (JSON with --json).
    console = Console(stderr=True, soft_wrap=False)
    console.print(views.version_panel(version))
    if references:
        console.print(
            Text(f"{version.ref} is referred to by:", style="yellow"), *_reference_lines(references)
        )
    # Not typer.confirm: Click echoes a space to stdout after the prompt, which would
    # break the JSON of --json. An empty answer or end of input means no.
    sys.stderr.write(f"Delete dataset version {version.ref}? [y/N]: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise LoopmlError(f"Not confirmed: {version.ref} is not deleted.")


def _reference_lines(references: tuple[VersionReference, ...] | list[VersionReference]) -> Any:
    return [Text(f"  - {r.label}: {r.relation}") for r in references]


def _latest(name: str, project: str) -> str | None:
    import loopml.data

    try:
        return loopml.data.get(name, project=project).ref
    except DatasetNotFound:
        return None
