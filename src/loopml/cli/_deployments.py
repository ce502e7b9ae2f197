"""``loopml deployments …``: set, show, list, history, roll back and compare endpoints.

Every command is a thin face over :class:`loopml.serving._deployments.DeploymentClient`
(``compare`` over :func:`loopml.serving._compare.compare_routes`); their errors (a
bad route, weights that do not add up to 100, an unknown model or alias, an unknown
endpoint, no feedback yet) become the app's one red line and exit code 1.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli._format import fmt_time, fmt_value
from loopml.cli._output import out, print_json
from loopml.errors import InvalidParameter

if TYPE_CHECKING:
    from loopml.serving._compare import Estimate, RouteComparison, RouteDifference
    from loopml.serving._deployments import Deployment, DeploymentClient

__all__ = ["app", "comparison_table"]

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
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_VERDICTS = {
    "better": ("better", "bold green"),
    "worse": ("worse", "bold red"),
    "no_difference": ("no", ""),
    "too_few_labels": ("too few labels", "yellow"),
}


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
    log_probabilities: Annotated[
        bool | None,
        typer.Option(
            "--log-probabilities/--no-log-probabilities",
            help="Log class probabilities with every prediction (for estimated performance).",
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why: kept with the revision.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="A YAML spec: endpoint, routes, settings."),
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
    flags = {
        "sticky_key": sticky_key,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "log_probabilities": log_probabilities,
    }
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
        str | None, typer.Option("--reason", help="Why: kept with the revision.")
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
    from loopml.cli._client import require_project

    project = require_project(_project_name(project))
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


@app.command("compare")
def compare(
    endpoint: _Endpoint,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only predictions since: a duration back (30m, 1h, 2d) or ISO time."
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="accuracy, f1, precision, recall, rmse, mae or r2 (default: from the labels).",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="The route to compare with (default: the primary with most traffic).",
            metavar="ROUTE",
        ),
    ] = None,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Compare an endpoint's routes on live traffic and its feedback, with intervals and tests."""
    from loopml.cli._client import open_client
    from loopml.serving._claim import local_log_folders
    from loopml.serving._compare import compare_routes

    start = None if since is None else _since_ms(since)
    with open_client() as client:
        comparison = compare_routes(
            client.store,
            client.artifacts,
            endpoint,
            project=_project_name(project),
            since_ms=start,
            metric=metric,
            baseline=baseline,
            wal_folders=local_log_folders(),
        )
    if as_json:
        print_json(comparison.to_dict())
        return
    console = out()
    console.print(comparison_table(comparison))
    unmatched = sum(r.unmatched_labels for r in comparison.routes)
    if unmatched:
        console.print(
            f"Left out {unmatched} label(s) that do not pair with their prediction: "
            "a request of k rows needs a list of k labels.",
            style="dim",
            highlight=False,
        )
    console.print(Text(comparison.summary), soft_wrap=True)


def _since_ms(text: str) -> int:
    """``--since``: a duration back from now (``30m``, ``1h``, ``2d``) or an ISO time.

    Returns:
        The time in milliseconds since the epoch (an ISO time without a zone is local).

    Raises:
        InvalidParameter: neither a duration nor an ISO time, or a duration that goes
            back before 1970 (no prediction is older; it would not fit the store's
            integers either).
    """
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        now = time.time()
        if not seconds <= now:  # also inf, from a number of hundreds of digits
            raise InvalidParameter(
                f"The '--since' option goes back before 1970: got {text.strip()[:40]!r}; "
                "give a shorter duration, or leave --since out for every prediction."
            )
        return int((now - seconds) * 1000)
    try:
        return int(datetime.fromisoformat(text.strip()).timestamp() * 1000)
    except (ValueError, OverflowError, OSError):  # the last two: out of the platform's range
        raise InvalidParameter(
            "The '--since' option must be a duration back from now (30m, 1h, 2d, 1w) or an "
            f"ISO time (2024-05-01T12:00). Got {text[:40]!r} instead."
        ) from None


def comparison_table(comparison: RouteComparison) -> Table:
    """One column per route: versions, counts, metric, difference from the baseline, latency.

    Routes are columns (as versions are in the registry's evaluation table), so a few
    of them fit a narrow terminal; when every route serves the same model, its name
    goes in the title and the routes are shortened to mode and version or alias
    (``canary v2``).
    """
    model = _shared_model(comparison)
    level = f"{comparison.confidence:.0%}"
    of = f" of {model}" if model else ""
    table = Table(
        title=f"{comparison.endpoint}: {comparison.metric} per route{of}, {level} intervals",
        title_justify="left",
    )
    table.add_column("")
    for stats in comparison.routes:
        mode, _, ref = stats.route.partition(":")
        header = f"{mode} {_short_ref(ref)}" if model else stats.route
        table.add_column(Text(header, style=_MODE_STYLES.get(stats.mode, "")), overflow="fold")
    differences = [comparison.difference(stats.route) for stats in comparison.routes]
    rows: list[tuple[str, list[str | Text]]] = [
        (
            "version",
            [
                ", ".join(_short_ref(v) if model else v for v in s.model_versions)
                for s in comparison.routes
            ],
        ),
        ("predictions", [str(s.predictions) for s in comparison.routes]),
        ("labelled", [str(s.labelled) for s in comparison.routes]),
        (comparison.metric, [_value(s.metric) for s in comparison.routes]),
        (f"  {level} CI", [_interval(s.metric) for s in comparison.routes]),
        ("Δ vs baseline", [_difference_value(d) for d in differences]),
        (f"  {level} CI", [_interval(d.difference) if d else "" for d in differences]),
        ("p", [_p_value(d) for d in differences]),
        ("significant", [_verdict(d) for d in differences]),
        (
            "latency p50/p95",
            [f"{s.latency_p50_ms:.3g} / {s.latency_p95_ms:.3g} ms" for s in comparison.routes],
        ),
    ]
    for label, cells in rows:
        table.add_row(label, *cells)
    return table


def _shared_model(comparison: RouteComparison) -> str | None:
    """The model every route serves, if they all serve the same one."""
    from loopml.registry._refs import parse_model_ref

    names = set()
    for stats in comparison.routes:
        mode, colon, ref = stats.route.partition(":")
        if not colon or mode != stats.mode:
            return None
        try:
            names.add(parse_model_ref(ref).name)
        except InvalidParameter:
            return None
    return names.pop() if len(names) == 1 else None


def _short_ref(ref: str) -> str:
    """``credit@champion`` → ``@champion``, ``credit/7`` → ``v7``, ``credit`` → ``latest``."""
    from loopml.registry._refs import parse_model_ref

    parsed = parse_model_ref(ref)
    if parsed.version is not None:
        return f"v{parsed.version}"
    return f"@{parsed.alias}" if parsed.alias else "latest"


def _value(estimate: Estimate | None) -> str:
    return "-" if estimate is None else fmt_value(estimate.value)


def _interval(estimate: Estimate | None) -> str:
    return "-" if estimate is None else f"[{estimate.low:.3g}, {estimate.high:.3g}]"


def _difference_value(difference: RouteDifference | None) -> Text:
    if difference is None:
        return Text("baseline", style="bold")
    if difference.difference is None:
        return Text("-")
    paired = " (paired)" if difference.paired else ""
    return Text(f"{difference.difference.value:+.3g}{paired}")


def _p_value(difference: RouteDifference | None) -> str:
    if difference is None:
        return ""
    return "-" if difference.p_value is None else f"{difference.p_value:.2g}"


def _verdict(difference: RouteDifference | None) -> Text:
    if difference is None:
        return Text("")
    word, style = _VERDICTS[difference.verdict]
    return Text(word, style=style)
