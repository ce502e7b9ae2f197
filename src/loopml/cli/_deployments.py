"""``loopml deployments …``: set, show, list, history and roll back serving endpoints.

Every command is a thin face over :class:`loopml.serving._deployments.DeploymentClient`;
its errors (a bad route, weights that do not add up to 100, an unknown model or
alias, an unknown endpoint) become the app's one red line and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli._format import fmt_time
from loopml.cli._output import out, print_json
from loopml.errors import InvalidParameter

if TYPE_CHECKING:
    from loopml.serving._deployments import Deployment, DeploymentClient

__all__ = ["app"]

app = typer.Typer(
    help="Route endpoint traffic to registry models: primaries, canaries and shadows.",
    no_args_is_help=True,
)

_Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
_Project = Annotated[
    str | None, typer.Option("--project", "-p", help="Project (default: LOOPML_PROJECT).")
]
_Endpoint = Annotated[str, typer.Argument(help="The endpoint name.", metavar="ENDPOINT")]
_MODE_STYLES = {"primary": "green", "canary": "yellow", "shadow": "dim"}


def _project_name(project: str | None) -> str:
    from loopml import settings

    return settings.project(project)


def _client() -> DeploymentClient:
    from loopml.serving._deployments import get_client

    return get_client()


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    """A revision as plain JSON."""
    return {
        "endpoint": deployment.endpoint,
        "project": deployment.project,
        "revision": deployment.revision,
        "routes": [r.to_dict() for r in deployment.routes],
        "settings": deployment.settings.to_dict(),
        "created_at": deployment.created_at,
        "actor": deployment.actor,
        "reason": deployment.reason,
    }


def _routes_text(deployment: Deployment) -> Text:
    text = Text()
    for i, route in enumerate(deployment.routes):
        if i:
            text.append(", ")
        text.append(str(route), style=_MODE_STYLES.get(route.mode, ""))
    return text


def _routes_table(deployment: Deployment) -> Table:
    table = Table(
        title=f"{deployment.endpoint} — revision {deployment.revision}", title_justify="left"
    )
    table.add_column("model")
    table.add_column("mode")
    table.add_column("weight", justify="right")
    for route in deployment.routes:
        weight = "copy" if route.mode == "shadow" else f"{route.weight:g}%"
        table.add_row(
            Text(route.model), Text(route.mode, style=_MODE_STYLES.get(route.mode, "")), weight
        )
    return table


def _print_deployment(deployment: Deployment) -> None:
    console = out()
    console.print(_routes_table(deployment))
    settings = deployment.settings.to_dict()
    shown = ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"
    console.print(Text(f"settings: {shown}"))
    who = deployment.actor or "unknown"
    console.print(
        Text(f"set {fmt_time(deployment.created_at)} by {who}: {deployment.reason or '-'}"),
        style="dim",
    )


@app.command("set")
def set_deployment(
    endpoint: Annotated[
        str | None,
        typer.Argument(help="The endpoint name (or the file's).", metavar="ENDPOINT"),
    ] = None,
    route: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            "-r",
            help="MODEL:WEIGHT, MODEL:WEIGHT:canary or MODEL:shadow (repeat).",
            metavar="ROUTE",
        ),
    ] = None,
    project: _Project = None,
    sticky_key: Annotated[
        str | None,
        typer.Option("--sticky-key", help="Request field that keeps a caller on one route."),
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option("--max-batch-size", help="Most requests per predict call.")
    ] = None,
    max_wait_ms: Annotated[
        float | None, typer.Option("--max-wait-ms", help="Longest wait for a batch to fill.")
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", "-m", help="Why: kept with the revision.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A YAML spec: endpoint, routes, settings."),
    ] = None,
    as_json: _Json = False,
) -> None:
    """Write a new revision of an endpoint's routes; it goes live at once."""
    from loopml.serving._routes import DeploymentSpec

    settings: dict[str, Any] = {}
    if file is not None:
        if route:
            raise InvalidParameter("Give the routes with --route or in --file, not both.")
        spec = DeploymentSpec.from_yaml(file.read_text(encoding="utf-8"))
        if endpoint is not None and endpoint != spec.endpoint:
            raise InvalidParameter(
                f"ENDPOINT {endpoint!r} differs from the file's endpoint {spec.endpoint!r}."
            )
        endpoint = spec.endpoint
        routes: list[Any] = list(spec.routes)
        settings = spec.settings.to_dict()
    else:
        if endpoint is None:
            raise InvalidParameter("Name the ENDPOINT (or give --file spec.yaml).")
        if not route:
            raise InvalidParameter(
                "Give at least one --route, e.g. --route credit@champion:90 "
                "--route credit/7:10:canary --route credit/8:shadow."
            )
        routes = list(route)
    flags = {"sticky_key": sticky_key, "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms}
    settings.update({k: v for k, v in flags.items() if v is not None})
    deployment = _client().set(
        endpoint, routes, project=_project_name(project), settings=settings, reason=reason
    )
    if as_json:
        print_json(deployment_json(deployment))
        return
    out().print(
        Text(f"Endpoint {deployment.endpoint!r} is now at revision {deployment.revision}: ")
        + _routes_text(deployment)
    )


@app.command("show")
def show(
    endpoint: _Endpoint,
    revision: Annotated[
        int | None, typer.Option("--revision", help="A revision (default: the live one).")
    ] = None,
    project: _Project = None,
    as_json: _Json = False,
    as_yaml: Annotated[
        bool, typer.Option("--yaml", help="Print the spec as YAML (for set --file).")
    ] = False,
) -> None:
    """Show the live (or an earlier) revision of an endpoint."""
    deployment = _client().get(endpoint, project=_project_name(project), revision=revision)
    if as_json:
        print_json(deployment_json(deployment))
    elif as_yaml:
        typer.echo(deployment.to_yaml(), nl=False)
    else:
        _print_deployment(deployment)


@app.command("history")
def history(endpoint: _Endpoint, project: _Project = None, as_json: _Json = False) -> None:
    """List every revision of an endpoint, oldest first; the last one is live."""
    revisions = _client().history(endpoint, project=_project_name(project))
    if as_json:
        print_json([deployment_json(d) for d in revisions])
        return
    table = Table(title=f"{endpoint} — revisions", title_justify="left")
    for column in ("revision", "routes", "set", "by", "reason"):
        table.add_column(column)
    for deployment in revisions:
        live = deployment is revisions[-1]
        table.add_row(
            Text(f"{deployment.revision}{' (live)' if live else ''}", style="bold" if live else ""),
            _routes_text(deployment),
            fmt_time(deployment.created_at),
            Text(deployment.actor or "-"),
            Text(deployment.reason or "-"),
        )
    out().print(table)


@app.command("rollback")
def rollback(
    endpoint: _Endpoint,
    to: Annotated[
        int | None,
        typer.Option("--to", help="The revision to restore (default: the one before the live)."),
    ] = None,
    project: _Project = None,
    reason: Annotated[
        str | None, typer.Option("--reason", "-m", help="Why: kept with the revision.")
    ] = None,
    as_json: _Json = False,
) -> None:
    """Restore an earlier revision's routes as a new revision (history is kept)."""
    deployment = _client().rollback(endpoint, project=_project_name(project), to=to, reason=reason)
    if as_json:
        print_json(deployment_json(deployment))
        return
    out().print(
        Text(f"Endpoint {endpoint!r} is now at revision {deployment.revision} ")
        + Text(f"({deployment.reason}): ")
        + _routes_text(deployment)
    )


@app.command("list")
def list_deployments(project: _Project = None, as_json: _Json = False) -> None:
    """List the endpoints of a project and their live routes."""
    project = _project_name(project)
    deployments = _client().list(project=project)
    if as_json:
        print_json([deployment_json(d) for d in deployments])
        return
    if not deployments:
        out().print(
            f"No endpoints in project {project!r}. Create one with "
            "loopml deployments set ENDPOINT --route MODEL:100.",
            style="dim",
            highlight=False,
        )
        return
    table = Table(title=f"Endpoints of {project}", title_justify="left")
    for column in ("endpoint", "revision", "routes", "set"):
        table.add_column(column)
    for d in deployments:
        table.add_row(Text(d.endpoint), str(d.revision), _routes_text(d), fmt_time(d.created_at))
    out().print(table)
