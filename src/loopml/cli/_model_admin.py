"""``loopml models policy | archive | unarchive | requirements``: gates and housekeeping.

``policy`` prints a model's promotion policy with its latest change, stores a
new one (``--set FILE``; an empty file is refused) or removes it on purpose
(``--clear --reason``, recorded). A check naming a metric that no version
reports prints one yellow ``warning:`` line on stderr per metric; the policy is
stored all the same. ``archive``/``unarchive`` take one model reference
(``credit/2``, ``credit@challenger``, ``models:/credit/2``); ``requirements``
prints the version's requirements.txt.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.text import Text

from loopml.cli import _model_views as views
from loopml.cli._options import Json, ModelOrVersionRef, ModelVersionRef, Project
from loopml.cli._output import out, print_json, to_jsonable
from loopml.errors import InvalidParameter, ModelError, PolicyWarning

if TYPE_CHECKING:
    from loopml.registry._client import RegistryClient
    from loopml.registry._policy import Policy
    from loopml.registry._records import Model

__all__ = ["archive", "policy", "requirements", "unarchive"]

_Name = Annotated[str, typer.Argument(help="The model name.", metavar="NAME")]
_Reason = Annotated[
    str | None, typer.Option("--reason", help="Why: kept with the record.", metavar="TEXT")
]


def _project_name(project: str | None) -> str:
    from loopml import settings

    return settings.project(project)


def _registry() -> RegistryClient:
    from loopml.registry._api import get_client

    return get_client()


# -- models policy ---------------------------------------------------------------------------


def policy(
    name: _Name,
    project: Project = None,
    set_file: Annotated[
        Path | None,
        typer.Option("--set", help="Store the policy in this YAML file.", metavar="FILE"),
    ] = None,
    clear: Annotated[
        bool,
        typer.Option("--clear", help="Remove the policy on purpose (needs --reason; recorded)."),
    ] = False,
    reason: _Reason = None,
    as_json: Json = False,
) -> None:
    """Print a model's promotion policy, store one with --set FILE, or --clear it with a reason.

    An empty policy file is refused: clearing a gate is done with --clear, and recorded.
    """
    if set_file is not None and clear:
        raise InvalidParameter("Give either --set FILE or --clear, not both.")
    if reason is not None and set_file is None and not clear:
        raise InvalidParameter("--reason goes with --set FILE or --clear.")
    project = _project_name(project)
    registry = _registry()
    if clear:
        registry.clear_policy(name, project=project, reason=reason)
        _print_stored(registry, name, project, as_json)
        return
    if set_file is not None:
        text = _read_policy(set_file)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PolicyWarning)
            registry.set_policy(name, text, project=project, reason=reason)
        _print_warnings(caught)
        _print_stored(registry, name, project, as_json)
        return
    model = registry.get_model(name, project=project)
    current = registry.get_policy(name, project=project)
    if as_json:
        print_json(_policy_json(name, current, model))
        return
    console = out()
    if not current.checks:
        cleared = model.policy_event is not None and model.policy_event.action == "policy_clear"
        if cleared:
            console.print(views.policy_event_text(model))
        else:
            console.print(
                f"Model {name!r} has no promotion policy; set one with "
                f"'loopml models policy {name} --set FILE'.",
                style="dim",
                highlight=False,
            )
        return
    console.print(f"Promotion policy of model {name!r}", style="bold", highlight=False)
    console.print(Syntax(current.to_yaml(), "yaml", background_color="default"))
    console.print(views.policy_event_text(model), style="dim")


def _read_policy(path: Path) -> str:
    from loopml.registry._policy_ops import MAX_POLICY_TEXT

    limit = 4 * MAX_POLICY_TEXT  # UTF-8: at most 4 bytes a character
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ModelError(
            f"The policy file {path} is larger than {limit:,} bytes; a policy is a short "
            "list of checks."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"The policy file {path} is not UTF-8 text ({exc.reason}).") from None


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    console = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)
    for warning in caught:
        if issubclass(warning.category, PolicyWarning):
            console.print(f"warning: {warning.message}", style="yellow", markup=False)
        else:  # not ours: hand it back to the warnings machinery unchanged
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def _print_stored(registry: RegistryClient, name: str, project: str, as_json: bool) -> None:
    model = registry.get_model(name, project=project)
    current = registry.get_policy(name, project=project)
    if as_json:
        print_json(_policy_json(name, current, model))
        return
    if current.checks:
        count = len(current.checks)
        message = f"Stored the promotion policy of model {name!r}: {count} check(s)."
        out().print(message, highlight=False)
    else:
        out().print(views.policy_event_text(model))


def _policy_json(name: str, current: Policy, model: Model) -> dict[str, object]:
    return {"name": name, **current.to_dict(), "last_change": to_jsonable(model.policy_event)}


# -- models archive / unarchive ----------------------------------------------------------------


def archive(
    ref: ModelVersionRef, reason: _Reason = None, project: Project = None, as_json: Json = False
) -> None:
    """Archive a version: kept, but no longer approved, promoted or aliased (recorded).

    A version an alias points at is refused; the message names the alias to move first.
    """
    version = _registry().archive(ref, project=_project_name(project), reason=reason)
    if as_json:
        print_json(views.version_json(version))
        return
    line = Text("Archived ", style="dim")
    line.append(version.ref)
    if reason:
        line.append(f": {reason}")
    out().print(line)


def unarchive(
    ref: ModelVersionRef, reason: _Reason = None, project: Project = None, as_json: Json = False
) -> None:
    """Bring an archived version back, with the status it had before (recorded)."""
    version = _registry().unarchive(ref, project=_project_name(project), reason=reason)
    if as_json:
        print_json(views.version_json(version))
        return
    line = Text("Unarchived ", style="green")
    line.append(f"{version.ref} (status {version.status}).")
    out().print(line)


# -- models requirements ---------------------------------------------------------------------


def requirements(
    ref: ModelOrVersionRef,
    project: Project = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write requirements.txt to this file instead."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Print the pip requirements a version needs, as a requirements.txt (pinned at register)."""
    from loopml.registry._requirements import requirements_text

    version = _registry().get_version(ref, project=_project_name(project))
    if version.requirements is None:
        raise ModelError(
            f"Model {version.ref} was registered before loopml recorded requirements; "
            "register it again to capture them."
        )
    if as_json:
        print_json({"ref": version.ref, "requirements": list(version.requirements)})
        return
    text = requirements_text(version.requirements)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    out().print(f"Requirements of {version.ref}: {output}", highlight=False, soft_wrap=True)
