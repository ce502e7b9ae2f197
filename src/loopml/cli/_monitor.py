"""``loopml monitor …`` and ``loopml alerts …``: monitors, their results and alerts.

Every command is a thin face over :mod:`loopml.monitoring`; its typed errors (an
unknown monitor, check or column, a bad window, reference or cron text, a webhook
to a forbidden address) become the app's one red line and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli._format import fmt_time, fmt_value
from loopml.cli._output import out, print_json
from loopml.errors import InvalidParameter

if TYPE_CHECKING:
    from loopml.monitoring import CheckResult, MonitorResult

__all__ = ["alerts_app", "app"]

app = typer.Typer(
    help="Watch live models: drift, data quality, performance, fairness, attribution.",
    no_args_is_help=True,
)
alerts_app = typer.Typer(
    help="Alerts opened by monitors: list and acknowledge.", no_args_is_help=True
)

_Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
_Project = Annotated[
    str | None, typer.Option("--project", "-p", help="Project (default: LOOPML_PROJECT).")
]
_Name = Annotated[str, typer.Argument(help="The monitor's name.", metavar="NAME")]
_STATUS_STYLES = {"ok": "green", "alert": "bold red", "no_data": "yellow", "firing": "bold red"}


def _status(status: str | None) -> Text:
    if status is None:
        return Text("never ran", style="dim")
    return Text(status, style=_STATUS_STYLES.get(status, ""))


@app.command("create")
def create(
    name: Annotated[
        str | None, typer.Argument(help="The monitor's name (or the file's).", metavar="NAME")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A YAML file holding the monitor.")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="The endpoint to watch.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Watch this dataset's latest version instead.")
    ] = None,
    route: Annotated[str | None, typer.Option("--route", "-r", help="Only this route.")] = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="Only this model version's predictions.")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="training (default), dataset:NAME[:N], file:PATH, window:7d@-14d.",
        ),
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="How far back one run looks (1d).")
    ] = None,
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            help="A check to run (repeat); default: drift, data_quality, performance.",
        ),
    ] = None,
    sensitive: Annotated[
        list[str] | None,
        typer.Option("--sensitive", help="A sensitive column for the fairness check (repeat)."),
    ] = None,
    column: Annotated[
        list[str] | None, typer.Option("--column", help="An input column to judge (repeat).")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="Cron text, e.g. '0 6 * * *'.")
    ] = None,
    min_rows: Annotated[
        int | None, typer.Option("--min-rows", help="Fewer rows than this: no_data (100).")
    ] = None,
    sink: Annotated[
        list[str] | None,
        typer.Option(
            "--sink",
            help="log, webhook:URL, slack:URL or command:PROGRAM (repeat; default: log).",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace an existing monitor's configuration.")
    ] = False,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Create a monitor from options or a YAML file (--file)."""
    from loopml.monitoring import MonitorSpec, create_monitor, spec_from_yaml

    given: dict[str, Any] = {
        "endpoint": endpoint,
        "dataset": dataset,
        "route": route,
        "model_version": model_version,
        "reference": reference,
        "window": window,
        "schedule": schedule,
        "min_rows": min_rows,
    }
    if check:
        given["checks"] = {c: {} for c in check}
    if sensitive:
        checks = given.setdefault("checks", {"drift": {}, "data_quality": {}, "performance": {}})
        checks["fairness"] = {"sensitive": list(sensitive)}
    if column:
        given["columns"] = tuple(column)
    if sink:
        given["sinks"] = tuple(_sink(s) for s in sink)
    given = {k: v for k, v in given.items() if v is not None}
    if file is not None:
        spec = spec_from_yaml(file)
        if name is not None and name != spec.name:
            raise InvalidParameter(
                f"The file names monitor {spec.name!r}, the command {name!r}; give one name."
            )
        if given:
            spec = MonitorSpec.from_dict({**spec.to_dict(), **given})
    else:
        if name is None:
            raise InvalidParameter("Give the monitor's NAME, or --file with a YAML monitor.")
        spec = MonitorSpec.from_dict({"name": name, **given})
    record = create_monitor(spec, project=project, replace=replace)
    if as_json:
        print_json(_monitor_json(record))
        return
    out().print(
        f"Monitor [bold]{record.name}[/bold] saved in project {record.project!r}: "
        f"{_watching(record.spec)}; checks {', '.join(record.spec.checks)}. "
        f"Run it with `loopml monitor run {record.name}`."
    )


@app.command("list")
def list_(project: _Project = None, as_json: _Json = False) -> None:
    """List the project's monitors with their latest status."""
    from loopml.monitoring import list_monitors

    records = list_monitors(project=project)
    if as_json:
        print_json([_monitor_json(r) for r in records])
        return
    if not records:
        out().print("No monitors yet: `loopml monitor create NAME --endpoint ENDPOINT`.")
        return
    table = Table("name", "watches", "checks", "schedule", "last run", "status")
    for r in records:
        table.add_row(
            r.name,
            _watching(r.spec),
            ", ".join(r.spec.checks),
            r.spec.schedule or "-",
            fmt_time(r.last_run_at),
            _status(r.last_status),
        )
    out().print(table)


@app.command("show")
def show(
    name: _Name,
    project: _Project = None,
    as_json: _Json = False,
    as_yaml: Annotated[bool, typer.Option("--yaml", help="Print the monitor as YAML.")] = False,
) -> None:
    """Show a monitor's configuration and its latest result."""
    import yaml

    from loopml.monitoring import get_monitor, results

    record = get_monitor(name, project=project)
    if as_yaml:
        out().print(yaml.safe_dump(record.spec.to_dict(), sort_keys=False), end="", markup=False)
        return
    latest = results(name, project=project, limit=1)
    if as_json:
        print_json({**_monitor_json(record), "latest": latest[0].to_dict() if latest else None})
        return
    console = out()
    console.print(f"[bold]{record.name}[/bold] ({record.project}): {_watching(record.spec)}")
    console.print(
        f"reference {record.spec.reference}, window {record.spec.window}, "
        f"min rows {record.spec.min_rows}, schedule {record.spec.schedule or '-'}"
    )
    console.print(f"checks: {', '.join(record.spec.checks)}; sinks: {list(record.spec.sinks)}")
    if latest:
        _print_result(latest[0])
    else:
        console.print(f"Never ran: `loopml monitor run {record.name}`.")


@app.command("run")
def run(
    name: _Name,
    trust: Annotated[
        bool, typer.Option("--trust", help="Allow loading a model that runs code (attribution).")
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the result's HTML report here.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Judge predictions from then ('2h', ISO time), not the window."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="... up to then (default: now).")
    ] = None,
    fail_on_alert: Annotated[
        bool, typer.Option("--fail-on-alert", help="Exit with status 3 when a check alerts.")
    ] = False,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Run a monitor once: judge, store the result, open or resolve alerts."""
    from loopml.monitoring import run_monitor

    if html is not None:
        _check_html_target(html)  # before the run: a bad path must not leave a result behind
    result = run_monitor(name, project=project, trust=trust, since=since, until=until)
    if html is not None:
        _write_html(result, html, project)
    if as_json:
        print_json(result.to_dict())
    else:
        _print_result(result)
    if fail_on_alert and result.status == "alert":
        raise typer.Exit(3)


@app.command("history")
def history_(
    name: _Name,
    check: Annotated[str | None, typer.Option("--check", help="Only this check.")] = None,
    column: Annotated[str | None, typer.Option("--column", help="Only this column.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many points.")] = 1000,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """A monitor's checks over time (statistic, threshold, decision)."""
    from loopml.monitoring import history

    points = history(name, project=project, check=check, column=column, limit=limit)
    if as_json:
        print_json([p.to_dict() for p in points])
        return
    if not points:
        out().print(f"Monitor {name!r} has no results yet.")
        return
    table = Table("at", "result", "check", "column", "method", "statistic", "threshold", "status")
    for p in points:
        table.add_row(
            fmt_time(p.at),
            str(p.result_id),
            p.check,
            p.column or "-",
            p.method or "-",
            fmt_value(p.statistic),
            fmt_value(p.threshold),
            _status(p.status),
        )
    out().print(table)


@app.command("report")
def report(
    name: _Name,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
    result_id: Annotated[
        int | None, typer.Option("--result", help="A result id (default: the latest).")
    ] = None,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """The report of a monitor's latest (or a given) result: HTML (--html) or JSON."""
    from loopml import settings
    from loopml.monitoring import monitor_store

    if html is not None:
        _check_html_target(html)
    store = monitor_store()
    if result_id is None:
        latest = store.results(name, project=settings.project(project), limit=1)
        if not latest:
            raise InvalidParameter(f"Monitor {name!r} has no results yet: run it first.")
        result = latest[0]
    else:
        record = store.get(name, project=settings.project(project))
        result = store.result(result_id, monitor=record)
    if html is not None:
        _write_html(result, html, project)
        if not as_json:
            out().print(f"Wrote {html} ({html.stat().st_size:,} bytes).")
    if as_json or html is None:
        print_json(result.to_dict())


@app.command("delete")
def delete(
    name: _Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Delete a monitor with its results and alerts."""
    from loopml.monitoring import delete_monitor, get_monitor

    get_monitor(name, project=project)
    if not yes and not typer.confirm(f"Delete monitor {name!r} with its results and alerts?"):
        raise typer.Exit(1)
    removed = delete_monitor(name, project=project)
    if as_json:
        print_json({"deleted": name, "results": removed})
    else:
        out().print(f"Deleted monitor {name!r} and {removed} result(s).")


@alerts_app.command("list")
def alerts_list(
    monitor: Annotated[str | None, typer.Option("--monitor", help="Only this monitor's.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="firing or resolved (default: both).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 100,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """List alerts, newest first."""
    from loopml.monitoring import alerts

    found = alerts(project=project, monitor=monitor, state=state, limit=limit)
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    if not found:
        out().print("No alerts.")
        return
    table = Table(
        "id", "monitor", "check", "column", "state", "opened", "statistic", "acked", "message"
    )
    for a in found:
        table.add_row(
            str(a.id),
            a.monitor,
            a.check if not a.method else f"{a.check} ({a.method})",
            a.column or "-",
            _status(a.state) if a.state == "firing" else Text("resolved", style="green"),
            fmt_time(a.opened_at),
            fmt_value(a.statistic),
            a.acked_by or ("yes" if a.acked_at else "-"),
            a.message,
        )
    out().print(table)


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[int, typer.Argument(help="The alert's id.", metavar="ID")],
    note: Annotated[str | None, typer.Option("--note", help="What you did about it.")] = None,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Acknowledge an alert: say someone has seen it."""
    from loopml.monitoring import ack

    alert = ack(alert_id, project=project, note=note)
    if as_json:
        print_json(alert.to_dict())
    else:
        out().print(
            f"Alert {alert.id} ({alert.monitor}: {alert.check} {alert.column}) acknowledged."
        )


def _sink(text: str) -> Any:
    if text == "log":
        return "log"
    kind, _, target = text.partition(":")
    if kind == "webhook" and target:
        return {"webhook": target}
    if kind == "slack" and target:
        return {"webhook": target, "format": "slack"}
    if kind == "command" and target:
        return {"command": target.split()}
    raise InvalidParameter(
        f"The '--sink' option must be log, webhook:URL, slack:URL or command:PROGRAM. "
        f"Got {text!r} instead."
    )


def _watching(spec: Any) -> str:
    if spec.dataset is not None:
        return f"dataset {spec.dataset}"
    parts = [f"endpoint {spec.endpoint}"]
    if spec.route:
        parts.append(f"route {spec.route}")
    if spec.model_version:
        parts.append(f"version {spec.model_version}")
    return ", ".join(parts) + f" over {spec.window}"


def _monitor_json(record: Any) -> dict[str, Any]:
    return {
        "name": record.name,
        "project": record.project,
        "spec": record.spec.to_dict(),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "last_status": record.last_status,
        "last_run_at": record.last_run_at,
    }


def _order(check: CheckResult) -> tuple[int, float]:
    rank = {"alert": 0, "no_data": 1, "ok": 2}[check.status]
    return rank, -(check.statistic or 0.0)


def _print_result(result: MonitorResult) -> None:
    console = out()
    console.print(
        Text.assemble(
            f"Result {result.id} of {result.monitor} at {fmt_time(result.started_at)}: ",
            _status(result.status),
            f" — {result.current_rows:,} current rows ({result.current}) vs "
            f"{result.reference_rows:,} reference rows ({result.reference})",
        )
    )
    if not result.checks:
        return
    table = Table(
        "check", "column", "method", "segment", "statistic", "threshold", "p", "status", "why"
    )
    for c in sorted(result.checks, key=_order):
        table.add_row(
            c.check,
            c.column or "-",
            c.method or "-",
            c.segment or "-",
            fmt_value(c.statistic),
            fmt_value(c.threshold),
            "-" if c.p_value is None else f"{c.p_value:.2g}",
            _status(c.status),
            c.message,
        )
    console.print(table)


def _check_html_target(path: Path) -> None:
    from loopml.monitoring._report import check_report_target

    check_report_target(path, "--html")


def _write_html(result: MonitorResult, path: Path, project: str | None) -> None:
    from loopml import settings
    from loopml.monitoring import monitor_store
    from loopml.monitoring._report import write_report

    earlier = monitor_store().results(result.monitor, project=settings.project(project), limit=30)
    write_report(result, path, history=[r for r in earlier if r.id != result.id])
