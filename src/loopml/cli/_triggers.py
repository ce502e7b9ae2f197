"""``loopml triggers …`` and ``loopml scheduler``: what acts when something happens.

A thin face over :mod:`loopml.automation`: its typed errors (an unknown trigger, kind
or source option, a cron text or time zone that does not parse, a git URL refused)
become the app's one red line and exit code 1.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli._format import fmt_time
from loopml.cli._output import out, print_json
from loopml.cli._pipelines import parse_params
from loopml.errors import InvalidParameter

if TYPE_CHECKING:
    from loopml.automation import Trigger, TriggerStore

__all__ = ["app", "scheduler"]

app = typer.Typer(
    help="Triggers: run a pipeline or call a webhook when data, alerts, commits or time come.",
    no_args_is_help=True,
)

_Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
_Project = Annotated[
    str | None, typer.Option("--project", "-p", help="Project (default: LOOPML_PROJECT).")
]
_Name = Annotated[str, typer.Argument(help="The trigger's name.", metavar="NAME")]
_OUTCOME_STYLES = {"fired": "green", "waiting": "yellow", "skipped": "dim", "failed": "bold red"}


def _store() -> TriggerStore:
    from loopml.automation import TriggerStore
    from loopml.tracking import get_client

    return TriggerStore(get_client().store)


def _project(project: str | None) -> str:
    from loopml import settings

    return settings.project(project)


@app.command("create")
def create(
    name: Annotated[
        str | None, typer.Argument(help="The trigger's name (or the file's).", metavar="NAME")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A YAML file holding the trigger.")
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="schedule, dataset, monitor_alert, git, pipeline, model or manual.",
        ),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="A source option as KEY=VALUE (repeat): cron=..., dataset=..., monitor=..., "
            "url=..., branch=..., pipeline=..., model=..., event=...",
            metavar="KEY=VALUE",
        ),
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Run this pipeline (MODULE:NAME).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-P",
            help="A pipeline parameter KEY=VALUE; '{event.FIELD}' takes the event's.",
        ),
    ] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="Post each firing to this http(s) URL.")
    ] = None,
    cooldown: Annotated[
        float | None, typer.Option("--cooldown", help="Seconds after a firing before the next.")
    ] = None,
    debounce: Annotated[
        float | None, typer.Option("--debounce", help="Quiet seconds before a burst fires.")
    ] = None,
    min_evidence: Annotated[
        int | None, typer.Option("--min-evidence", help="Rows/commits needed before firing.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace an existing trigger of that name.")
    ] = False,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Create a trigger from options or a YAML file (--file)."""
    from loopml.automation import TriggerSpec
    from loopml.monitoring._spec import read_spec_yaml

    if file is not None:
        data = read_spec_yaml(file, "trigger")
        if not isinstance(data, dict):
            raise InvalidParameter(f"The trigger file {str(file)!r} must hold a mapping.")
        if name is not None and name != data.get("name"):
            raise InvalidParameter(
                f"The file names trigger {data.get('name')!r}, the command {name!r}; give one."
            )
    else:
        if name is None or kind is None:
            raise InvalidParameter("Give the trigger's NAME and --kind, or --file with YAML.")
        action: dict[str, Any] = {}
        if pipeline is not None:
            action = {"pipeline": pipeline, "params": parse_params(param or [])}
        if webhook is not None:
            action["webhook"] = webhook
        hygiene = {
            k: v
            for k, v in (
                ("cooldown", cooldown),
                ("debounce", debounce),
                ("min_evidence", min_evidence),
            )
            if v is not None
        }
        data = {
            "name": name,
            "kind": kind,
            "source": _source(source or []),
            "action": action,
            "hygiene": hygiene,
        }
    spec = TriggerSpec.from_dict(data)
    trigger = _store().create(spec, project=_project(project), replace=replace)
    if as_json:
        print_json(trigger.to_dict())
        return
    out().print(
        f"Trigger [bold]{trigger.name}[/bold] saved in project {trigger.project!r}: "
        f"{_watching(trigger)} → {_action(trigger)}. `loopml scheduler` runs it."
    )


def _source(pairs: list[str]) -> dict[str, Any]:
    """``--source`` pairs as options: ``paths`` and ``checks`` split on commas, booleans read."""
    options: dict[str, Any] = {}
    for key, value in parse_params(pairs).items():
        if key in ("paths", "checks"):
            options[key] = [v.strip() for v in value.split(",") if v.strip()]
        elif key == "passed_only":
            if value.lower() not in ("true", "false"):
                raise InvalidParameter(f"passed_only must be true or false; got {value!r}.")
            options[key] = value.lower() == "true"
        else:
            options[key] = value
    return options


def _watching(trigger: Trigger) -> str:
    source = trigger.spec.source
    shown = ", ".join(f"{k}={v}" for k, v in source.items())
    return f"{trigger.spec.kind}" + (f" ({shown})" if shown else "")


def _action(trigger: Trigger) -> str:
    action = trigger.spec.action
    if action.pipeline is not None:
        return f"pipeline {action.pipeline}"
    return "webhook"


@app.command("list")
def list_(project: _Project = None, as_json: _Json = False) -> None:
    """List the project's triggers."""
    triggers = _store().list(project=_project(project))
    if as_json:
        print_json([t.to_dict() for t in triggers])
        return
    if not triggers:
        out().print("No triggers yet: `loopml triggers create NAME --kind ...`.")
        return
    table = Table("name", "watches", "does", "state", "waiting", "last fired")
    for t in triggers:
        table.add_row(
            t.name,
            _watching(t),
            _action(t),
            Text("paused", style="yellow") if t.paused else Text("active", style="green"),
            str(len(t.state.get("pending", []))),
            fmt_time(t.state.get("last_fired_at")),
        )
    out().print(table)


@app.command("show")
def show(
    name: _Name,
    project: _Project = None,
    as_json: _Json = False,
    as_yaml: Annotated[bool, typer.Option("--yaml", help="Print the trigger as YAML.")] = False,
) -> None:
    """Show a trigger's configuration and its latest firings."""
    import yaml

    store, chosen = _store(), _project(project)
    trigger = store.get(name, project=chosen)
    if as_yaml:
        out().print(yaml.safe_dump(trigger.spec.to_dict(), sort_keys=False), end="", markup=False)
        return
    firings = store.firings(name, project=chosen, limit=10)
    if as_json:
        print_json({**trigger.to_dict(), "firings": [f.to_dict() for f in firings]})
        return
    console = out()
    console.print(f"[bold]{trigger.name}[/bold] ({trigger.project}): {_watching(trigger)}")
    console.print(f"does: {_action(trigger)}; hygiene: {trigger.spec.to_dict()['hygiene']}")
    console.print(f"{'paused' if trigger.paused else 'active'}; last reason: "
                  f"{trigger.state.get('last_reason') or '-'}")  # fmt: skip
    _print_firings(firings)


def _print_firings(firings: list[Any]) -> None:
    if not firings:
        out().print("No firings yet.")
        return
    table = Table("firing", "fired", "key", "status", "attempts", "result")
    for f in firings:
        result = f.result or {}
        table.add_row(
            str(f.id),
            fmt_time(f.fired_at),
            f.dedup_key,
            Text(f.status, style=_OUTCOME_STYLES.get(f.status, "")),
            str(f.attempts),
            str(result.get("error") or result.get("run") or result.get("webhook") or "-")[:80],
        )
    out().print(table)


@app.command("history")
def history_(
    name: _Name,
    limit: Annotated[int, typer.Option("--limit", help="At most this many evaluations.")] = 100,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Every evaluation that saw an event, fired or not, and why."""
    evaluations = _store().evaluations(name, project=_project(project), limit=limit)
    if as_json:
        print_json([e.to_dict() for e in evaluations])
        return
    if not evaluations:
        out().print(f"Trigger {name!r} has seen no event yet.")
        return
    table = Table("at", "outcome", "events", "reason", "firing")
    for e in evaluations:
        table.add_row(
            fmt_time(e.at),
            Text(e.outcome, style=_OUTCOME_STYLES.get(e.outcome, "")),
            str(e.events),
            e.reason,
            "-" if e.firing_id is None else str(e.firing_id),
        )
    out().print(table)


@app.command("fire")
def fire(
    name: _Name,
    key: Annotated[
        str | None,
        typer.Option("--key", "-k", help="Fire at most once for this key (idempotent)."),
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="An event field KEY=VALUE for the action (repeat)."),
    ] = None,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Ask a manual trigger to fire: the scheduler fires it at its next tick."""
    added = _store().fire(name, project=_project(project), key=key, data=parse_params(field or []))
    if as_json:
        print_json({"trigger": name, "key": key, "new": added})
        return
    out().print(
        f"Trigger {name!r} will fire at the scheduler's next tick."
        if added
        else f"Trigger {name!r} was already asked to fire for key {key!r}; nothing new."
    )


@app.command("pause")
def pause(name: _Name, project: _Project = None, as_json: _Json = False) -> None:
    """Stop evaluating a trigger (what happens meanwhile is seen when it resumes)."""
    trigger = _store().set_paused(name, True, project=_project(project))
    if as_json:
        print_json(trigger.to_dict())
        return
    out().print(f"Trigger {name!r} paused.")


@app.command("resume")
def resume(name: _Name, project: _Project = None, as_json: _Json = False) -> None:
    """Evaluate a paused trigger again."""
    trigger = _store().set_paused(name, False, project=_project(project))
    if as_json:
        print_json(trigger.to_dict())
        return
    out().print(f"Trigger {name!r} resumed.")


@app.command("delete")
def delete(
    name: _Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Delete a trigger with its history."""
    store, chosen = _store(), _project(project)
    store.get(name, project=chosen)
    if not yes and not typer.confirm(f"Delete trigger {name!r} and its history?"):
        raise typer.Exit(1)
    store.delete(name, project=chosen)
    if as_json:
        print_json({"deleted": name, "project": chosen})
        return
    out().print(f"Trigger {name!r} deleted.")


def scheduler(
    trust: Annotated[
        bool,
        typer.Option("--trust", help="Run pipelines of triggers that other accounts stored."),
    ] = False,
    tick: Annotated[
        float, typer.Option("--tick", help="Seconds between two evaluations of every trigger.")
    ] = 1.0,
    lease: Annotated[
        float,
        typer.Option("--lease", help="Seconds the active scheduler's lease lasts unrenewed."),
    ] = 15.0,
    once: Annotated[
        bool, typer.Option("--once", help="One tick, wait for its actions, then exit.")
    ] = False,
    as_json: _Json = False,
) -> None:
    """Run the triggers: evaluate each every tick and run what fires (one active per store)."""
    from loopml import settings
    from loopml.automation import Scheduler
    from loopml.automation._git_events import git_poller
    from loopml.tracking import get_client

    runner = Scheduler(
        get_client().store,
        lease_ttl=lease,
        tick=tick,
        trust=trust,
        git=git_poller(settings.home() / "git-cache"),
    )
    console = out()
    if once:
        report = runner.tick()
        runner.close()
        if as_json:
            print_json(report.__dict__)
            return
        console.print(
            f"{'active' if report.leader else 'standby'}: {report.evaluated} trigger(s) "
            f"evaluated, {len(report.fired)} fired, {len(report.started)} action(s) run"
            + (f"; errors: {'; '.join(report.errors)}" if report.errors else "")
        )
        return
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    if as_json:  # one line announcing it, as `loopml serve --json` does
        print_json({"scheduler": runner.holder, "pid": os.getpid()})
    else:
        console.print(f"Scheduler {runner.holder} started (Ctrl-C stops it).", highlight=False)
    runner.run(stop)
    if not as_json:
        console.print("Scheduler stopped.")
