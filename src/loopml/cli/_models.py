"""``loopml models …``: list, inspect, evaluate, approve, promote and roll back model versions.

Every command is a thin face over the model registry
(:class:`loopml.registry.RegistryClient`); errors it raises (an unknown model or
alias, a refused promotion, deciding twice, a tampered artifact) become the app's
one red line and exit code 1. A refused promotion first lists its failing checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from loopml._private_fs import make_private_dirs
from loopml.cli import _model_admin
from loopml.cli import _model_views as views
from loopml.cli._options import (
    Comment,
    Json,
    ModelOrVersionRef,
    ModelVersionRef,
    Project,
)
from loopml.cli._output import out, print_json, to_jsonable
from loopml.errors import PromotionRefused

if TYPE_CHECKING:
    from loopml.registry._client import RegistryClient
    from loopml.registry._records import ModelVersion

__all__ = ["app", "card_path"]

app = typer.Typer(
    help="Register, evaluate, approve and promote model versions.", no_args_is_help=True
)

_Name = Annotated[str, typer.Argument(help="The model name.", metavar="NAME")]
_Alias = Annotated[str, typer.Option("--alias", "-a", help="The alias to move.")]


def _project_name(project: str | None) -> str:
    from loopml import settings

    return settings.project(project)


def _registry() -> RegistryClient:
    from loopml.registry._api import get_client

    return get_client()


# -- models list / versions / show ------------------------------------------------------


@app.command("list")
def list_models(project: Project = None, as_json: Json = False) -> None:
    """List the models of a project: latest version, aliases and policy."""
    from loopml.cli._client import require_project

    project = require_project(_project_name(project))
    models = _registry().list_models(project=project)
    if as_json:
        print_json([views.model_json(m) for m in models])
        return
    if not models:
        out().print(
            f"No models in project {project!r}. Register one with loopml.models.register(...).",
            style="dim",
            highlight=False,
        )
        return
    out().print(views.models_table(models, project))


@app.command("versions")
def list_versions(name: _Name, project: Project = None, as_json: Json = False) -> None:
    """List every version of a model, oldest first, rejected and archived ones included."""
    versions = _registry().list_versions(name, project=_project_name(project))
    if as_json:
        print_json([views.version_json(v) for v in versions])
        return
    out().print(views.versions_table(name, versions))


@app.command("show")
def show(ref: ModelOrVersionRef, project: Project = None, as_json: Json = False) -> None:
    """Show a version: metadata, source run params and metrics, latest policy results."""
    project = _project_name(project)
    registry = _registry()
    version = registry.get_version(ref, project=project)
    model = registry.get_model(version.name, project=project)
    results = registry.policy_results(version)
    approvals = registry.approvals_of(version)
    if as_json:
        data = views.version_json(version)
        data["model_aliases"] = model.aliases
        data["policy_results"] = to_jsonable(results)
        data["policy_change"] = to_jsonable(model.policy_event)
        data["approvals"] = [{"identity": i, "role": r} for i, r in approvals]
        print_json(data)
        return
    out().print(views.show_renderables(version, model, results, approvals))


# -- models policy / evaluate -------------------------------------------------------------


app.command("policy")(_model_admin.policy)


@app.command("evaluate")
def evaluate(
    ref: ModelVersionRef,
    data: Annotated[
        str,
        typer.Option("--data", help="The dataset version to evaluate on, e.g. 'credit-test:1'."),
    ],
    target: Annotated[str, typer.Option("--target", "-t", help="The label column.")],
    sensitive: Annotated[
        list[str] | None,
        typer.Option("--sensitive", help="A column fairness checks group by (repeat)."),
    ] = None,
    project: Project = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust", help="Load pickled (pyfunc) versions registered by someone other than you."
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Compute metrics on a dataset version and run the model's policy; store the results.

    Exits with status 1 when a check fails (after printing every check).
    """
    result = _registry().evaluate(
        ref,
        data,
        project=_project_name(project),
        target=target,
        sensitive=tuple(sensitive or ()),
        trust=trust,
    )
    if as_json:
        print_json(views.result_json(result))
    else:
        console = out()
        for renderable in views.evaluation_renderables(result, data):
            console.print(renderable)
    if not result.passed:
        raise typer.Exit(1)


# -- models approve / reject ----------------------------------------------------------------


@app.command("approve")
def approve(
    ref: ModelVersionRef,
    comment: Comment = None,
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            help="Approve in this approver role; the approver-roles file "
            "(LOOPML_APPROVER_ROLES) must give it to you.",
        ),
    ] = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """Approve a version as the current identity (approving twice is refused)."""
    approved = _registry().approve(ref, project=_project_name(project), comment=comment, role=role)
    _decided("Approved", approved, comment, role, as_json=as_json)


@app.command("reject")
def reject(
    ref: ModelVersionRef, comment: Comment = None, project: Project = None, as_json: Json = False
) -> None:
    """Reject a version: it can no longer be approved or promoted."""
    rejected = _registry().reject(ref, project=_project_name(project), comment=comment)
    _decided("Rejected", rejected, comment, as_json=as_json)


def _decided(
    what: str,
    version: ModelVersion,
    comment: str | None,
    role: str | None = None,
    *,
    as_json: bool,
) -> None:
    from loopml.approvals import current_identity

    if as_json:
        print_json(
            {
                "decision": what.lower(),
                "identity": current_identity(),
                "role": role,
                "comment": comment,
                **views.version_json(version),
            }
        )
        return
    line = Text(f"{what} ", style="green" if what == "Approved" else "magenta")
    line.append(f"{version.ref} as {current_identity() or 'unknown'}")
    if role:
        line.append(f" (role {role})")
    if comment:
        line.append(f": {comment}")
    line.append(f" (status {version.status}).")
    out().print(line)


# -- models promote / rollback / history -------------------------------------------------------


@app.command("promote")
def promote(
    ref: ModelVersionRef,
    alias: _Alias = "champion",
    force: Annotated[
        bool, typer.Option("--force", help="Skip the policy (needs --reason; recorded).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why a forced promotion is needed.")
    ] = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """Point an alias at a version whose latest evaluation passed its policy.

    A refused promotion lists every failing check, then exits with status 1.
    """
    from loopml.registry._refs import parse_model_ref

    project = _project_name(project)
    registry = _registry()
    name = parse_model_ref(ref).name
    previous = registry.get_model(name, project=project).aliases.get(alias)
    try:
        promoted = registry.promote(ref, project=project, alias=alias, force=force, reason=reason)
    except PromotionRefused as exc:
        if as_json:
            print_json(
                {
                    "promoted": False,
                    "failures": [{"check": c, "reason": r} for c, r in exc.failures],
                }
            )
        else:
            title = f"Failing checks of {ref}"
            out().print(views.failures_table(exc.failures, title))
        raise
    if as_json:
        print_json(
            {"promoted": True, "alias": alias, "previous": previous, **views.version_json(promoted)}
        )
        return
    if previous == promoted.version:
        out().print(f"@{alias} already is {promoted.ref}; nothing moved.", highlight=False)
        return
    was = f" (was {name}/{previous})" if previous is not None else ""
    forced = " [bold yellow]forced[/]" if force else ""
    out().print(
        f"[green]✓[/]{forced} @{alias} → {promoted.ref}{was}",
        highlight=False,
    )


@app.command("rollback")
def rollback(
    name: _Name, alias: _Alias = "champion", project: Project = None, as_json: Json = False
) -> None:
    """Move an alias back to the version it pointed at before its last move."""
    project = _project_name(project)
    registry = _registry()
    before = registry.get_model(name, project=project).aliases.get(alias)
    target = registry.rollback(name, project=project, alias=alias)
    if as_json:
        print_json({"alias": alias, "previous": before, **views.version_json(target)})
        return
    was = f" (was {name}/{before})" if before is not None else ""
    out().print(f"[green]↺[/] @{alias} → {target.ref}{was}", highlight=False)


@app.command("history")
def history(
    name: _Name,
    alias: Annotated[
        str | None, typer.Option("--alias", "-a", help="Only the moves of this alias.")
    ] = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """List every alias move, policy change and archiving of a model, oldest first.

    Each row says who, when, from, to and why; --alias shows that alias's moves only.
    """
    project = _project_name(project)
    registry = _registry()
    events = registry.alias_history(name, project=project, alias=alias)
    changes = [] if alias else registry.model_events(name, project=project)
    if as_json:
        print_json(views.history_json(events, changes))
        return
    if not events and not changes:
        what = f"@{alias} of model {name!r} has" if alias else f"No alias of model {name!r} has"
        message = f"{what} never moved." if alias else f"{what} moved yet."
        out().print(message, style="dim", highlight=False)
        return
    out().print(views.history_table(name, events, changes))


# -- models describe / card ------------------------------------------------------------------


@app.command("describe")
def describe(
    name: _Name,
    intended_use: Annotated[
        str | None, typer.Option("--intended-use", help="What the model is for (model card).")
    ] = None,
    limitations: Annotated[
        str | None, typer.Option("--limitations", help="Where it should not be used (model card).")
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="Free text about the model.")
    ] = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """Set the user-written parts of a model's card (options left out are kept)."""
    model = _registry().describe(
        name,
        project=_project_name(project),
        description=description,
        intended_use=intended_use,
        limitations=limitations,
    )
    if as_json:
        print_json(views.model_json(model))
        return
    out().print(f"Updated the description of model {name!r}.", highlight=False)


def card_path(name: str, version: int) -> Path:
    """Where ``models card --html`` writes by default: ``LOOPML_HOME/cards/NAME-N.html``."""
    from loopml import settings

    return (settings.home() / "cards" / f"{name}-{version}.html").absolute()


@app.command("card")
def card(
    ref: ModelVersionRef,
    html: Annotated[
        bool,
        typer.Option("--html", help="Write a self-contained HTML page instead of Markdown."),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the card to this file (HTML default: LOOPML_HOME/cards/NAME-N.html).",
        ),
    ] = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """Generate a version's model card: use, data, metrics, fairness, policy, lineage.

    Markdown goes to stdout unless --output is given; HTML is always written to a file.
    With --json, stdout gets {ref, format, path} (and the Markdown as "markdown" when
    no file is written).
    """
    from loopml.registry._card import build_card

    built = build_card(_registry(), ref, _project_name(project))
    if not html and output is None:
        if as_json:
            print_json({"ref": built.ref, "format": "markdown", "markdown": built.to_markdown()})
        else:
            typer.echo(built.to_markdown(), nl=False)
        return
    if output is None:  # under LOOPML_HOME, private like the rest of it
        target = card_path(built.name, built.version)
        make_private_dirs(target.parent)
    else:
        target = output
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(built.to_html() if html else built.to_markdown(), encoding="utf-8")
    if as_json:
        print_json(
            {
                "ref": built.ref,
                "format": "html" if html else "markdown",
                "path": str(target.absolute()),
            }
        )
        return
    out().print(f"Model card of {built.ref}: {target}", highlight=False, soft_wrap=True)


app.command("archive")(_model_admin.archive)
app.command("unarchive")(_model_admin.unarchive)
app.command("requirements")(_model_admin.requirements)
