"""Benchmark the scheduler (issue 15): a tick over 1,000 triggers, and event-to-run latency.

Targets: one tick evaluating 1,000 declared triggers <= 1 s; from an event to the
start of the pipeline it triggers <= 2 s with default settings.

Each back-end (SQLite in a temp folder, PostgreSQL in a database of its own on
``LOOPML_TEST_POSTGRES_URL``, created and dropped here) runs in a fresh child process:

1. **Ticks** (in the child, :meth:`loopml.automation.Scheduler.tick` called directly):
   1,000 triggers are stored, a mix of 200 ``schedule`` (hourly, at different
   minutes), 200 ``dataset``, 150 each of ``monitor_alert``, ``pipeline``, ``model``
   and ``manual``, each watching a source of its own and calling a webhook on a local
   receiver. Timed: the first tick (it writes every trigger's state once), then
   ``--ticks`` ticks with nothing new (the steady state), then ``--rounds`` ticks each
   after a different 10 % of the triggers got one new event: ``manual`` ones through
   ``TriggerStore.fire``, ``dataset`` ones through ``loopml.data.register``; the
   ``monitor_alert``, ``pipeline`` and ``model`` sources get their rows (an alert of a
   monitor result, a finished pipeline run, a registered model version) inserted into
   the store directly, which is what those services write; a ``schedule`` trigger's
   cursor is moved back an hour, so one hourly tick is due (missed: catch-up ``once``).
2. **Latency** (a real ``loopml scheduler`` at its defaults, tick 1 s, next to the
   1,000 triggers): from ``TriggerStore.fire`` of a manual trigger, or from
   ``loopml.data.register`` of a version a dataset trigger watches, until the row of
   the pipeline run its action starts exists. The dataset trigger is measured with
   ``debounce: 0`` and, once, with its default (30 s of quiet before a burst fires,
   so that latency is ~30 s by design, not a scheduler cost).

Examples::

    .venv/bin/python bench/scheduler.py                      # both back-ends
    .venv/bin/python bench/scheduler.py --backends sqlite --no-latency
    .venv/bin/python bench/scheduler.py --profile            # cProfile of the ticks
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MIX = {
    "schedule": 200,
    "dataset": 200,
    "monitor_alert": 150,
    "pipeline": 150,
    "model": 150,
    "manual": 150,
}
PROJECT = "bench"
TICK_TARGET = 1.0
LATENCY_TARGET = 2.0
FLOWS = """
import loopml


@loopml.step
def count(n: int) -> int:
    return n + 1


@loopml.pipeline
def {name}(n: int = 1):
    count(n)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--ticks", type=int, default=7, help="steady-state ticks timed")
    parser.add_argument("--rounds", type=int, default=5, help="ticks after 10 %% new events")
    parser.add_argument("--samples", type=int, default=5, help="latency samples per trigger")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-default-debounce", action="store_true", help="skip the 30 s one")
    parser.add_argument("--profile", action="store_true", help="print cProfile of the ticks")
    parser.add_argument(
        "--src",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="run loopml from this src folder too (e.g. main's, from git archive); "
        "variants alternate per back-end, in this order",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(_child(args)), flush=True)
        return
    variants = [tuple(v.split("=", 1)) for v in args.src] or [("installed", "")]
    results: dict[str, dict[str, Any]] = {}
    for backend in args.backends.split(","):
        for label, src in variants:
            name = backend if len(variants) == 1 else f"{backend}, {label}"
            results[name] = _run_child(backend, src, name)
    _print(results)


def _run_child(backend: str, src: str, name: str) -> dict[str, Any]:
    """One back-end (and loopml source) in a fresh process on a fresh store."""
    with _store_uri(backend) as (uri, home):
        env = {
            **os.environ,
            "LOOPML_STORE_URI": uri,
            "LOOPML_ARTIFACT_URI": str(home / "artifacts"),
            "LOOPML_HOME": str(home / "home"),
            "LOOPML_WEBHOOK_ALLOW_PRIVATE": "1",
        }
        if src:  # the `loopml scheduler` it starts inherits it too
            env["PYTHONPATH"] = str(Path(src).resolve())
        command = [sys.executable, __file__, "--child", backend, *sys.argv[1:]]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        sys.stderr.write(done.stderr[-3000:] if done.returncode else "")
        for line in done.stdout.splitlines():
            if not line.startswith("RESULT "):
                print(f"  [{name}] {line}", flush=True)
        if done.returncode != 0:
            raise SystemExit(f"the {name} child failed (exit {done.returncode})")
        result: dict[str, Any] = json.loads(done.stdout.split("RESULT ", 1)[1])
        return result


@contextmanager
def _store_uri(backend: str) -> Iterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="loopml-schedbench-") as folder:
        home = Path(folder)
        if backend == "sqlite":
            yield f"sqlite:///{home / 'store' / 'loopml.db'}", home
            return
        import psycopg
        from sqlalchemy.engine import make_url

        from loopml import settings

        server = make_url(str(settings.get("LOOPML_TEST_POSTGRES_URL")))
        name = f"loopml_bench_{uuid.uuid4().hex[:12]}"
        admin = {
            "host": server.host,
            "port": server.port or 5432,
            "user": server.username,
            "password": server.password,
            "dbname": server.database,
            "autocommit": True,
        }
        with psycopg.connect(**admin) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(False), home
        finally:
            with psycopg.connect(**admin) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _child(args: argparse.Namespace) -> dict[str, Any]:
    from loopml.automation import Scheduler, TriggerStore
    from loopml.tracking import get_client

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    import loopml

    print(f"loopml from {Path(loopml.__file__).parent}")
    store = get_client().store
    triggers = TriggerStore(store)
    started = time.perf_counter()
    names = _declare(triggers, hook)
    stored = sum(map(len, names.values()))
    print(f"set-up: {stored:,} triggers stored in {time.perf_counter() - started:.1f} s")
    scheduler = Scheduler(store)
    profile = _profiler() if args.profile else None
    result: dict[str, Any] = {"load": [os.getloadavg()[0]]}
    result["first"] = _timed_tick(scheduler, profile)[0]
    steady = [_timed_tick(scheduler, profile) for _ in range(args.ticks)]
    result["steady"] = [s for s, _ in steady]
    result["evaluated"] = steady[-1][1].evaluated
    events, fired = [], 0
    for round_ in range(args.rounds):
        _new_events(store, triggers, names, round_)
        took, report = _timed_tick(scheduler, profile)
        events.append(took)
        fired += len(report.fired)
        _settle(scheduler, store)  # the next round starts with no firing left to run
    result["events"] = events
    result["fired_per_round"] = fired / max(args.rounds, 1)
    result["load"].append(os.getloadavg()[0])
    if not args.no_latency:
        _settle(scheduler, store, waiting=True)  # the latency phase starts from a quiet store
    scheduler.close()
    if profile is not None:
        _print_profile(profile)
    if not args.no_latency:
        result["latency"] = _latency(store, triggers, args)
        result["load"].append(os.getloadavg()[0])
    server.shutdown()
    return result


def _declare(triggers: Any, hook: str) -> dict[str, list[str]]:
    from loopml.automation import Action, TriggerSpec

    action = Action(webhook=hook, timeout=10)
    names: dict[str, list[str]] = {}
    for kind, count in MIX.items():
        for i in range(count):
            source: dict[str, Any] = {
                "schedule": {"cron": f"{i % 60} * * * *"},
                "dataset": {"dataset": f"ds-{i:03d}"},
                "monitor_alert": {"monitor": f"mon-{i:03d}"},
                "pipeline": {"pipeline": f"pipe_{i:03d}", "status": "any"},
                "model": {"model": f"model-{i:03d}", "event": "registered"},
                "manual": {},
            }[kind]
            name = f"{kind.replace('_', '-')}-{i:03d}"
            triggers.create(
                TriggerSpec(name=name, kind=kind, source=source, action=action),
                project=PROJECT,
            )
            names.setdefault(kind, []).append(name)
    return names


def _timed_tick(scheduler: Any, profile: Any) -> tuple[float, Any]:
    if profile is not None:
        profile.enable()
    started = time.perf_counter()
    report = scheduler.tick()
    took = time.perf_counter() - started
    if profile is not None:
        profile.disable()
    if not report.leader or report.errors:
        raise SystemExit(f"tick failed: leader={report.leader} errors={report.errors[:3]}")
    return took, report


def _new_events(store: Any, triggers: Any, names: dict[str, list[str]], round_: int) -> None:
    """One new event for every tenth trigger of each kind (a different tenth each round)."""
    import pandas as pd
    from sqlalchemy import select, update

    import loopml.data
    from loopml.store import now_ms, tables

    chosen = {kind: list(range(round_ % 10, len(n), 10)) for kind, n in names.items()}
    for i in chosen["manual"]:
        triggers.fire(names["manual"][i], project=PROJECT, data={"round": round_})
    for i in chosen["dataset"]:
        loopml.data.register(f"ds-{i:03d}", pd.DataFrame({"x": [round_, i]}), project=PROJECT)
    now = now_ms()
    trigger = tables.TRIGGER
    with store.write() as connection:
        project_id = store.project_id(connection, PROJECT)
        for i in chosen["schedule"]:
            row = connection.execute(
                select(trigger).where(trigger.c.name == names["schedule"][i])
            ).one()
            state = {**row.state, "cursor": {"tick": now - 3_600_000}}
            connection.execute(
                update(trigger)
                .where(trigger.c.id == row.id)
                .values(state=state, state_version=row.state_version + 1)
            )
        for i in chosen["monitor_alert"]:
            _alert(connection, project_id, f"mon-{i:03d}", now)
        for i in chosen["pipeline"]:
            _finished_run(connection, project_id, f"pipe_{i:03d}", now)
        for i in chosen["model"]:
            _model_version(connection, project_id, f"model-{i:03d}", now)


def _id_of(connection: Any, table: Any, where: Any, values: dict[str, Any]) -> int:
    from sqlalchemy import select

    found = connection.execute(select(table.c.id).where(*where)).scalar()
    if found is not None:
        return int(found)
    return int(connection.execute(table.insert().values(**values)).inserted_primary_key[0])


def _alert(connection: Any, project_id: int, monitor: str, now: int) -> None:
    from loopml.store import tables

    table = tables.MONITOR
    monitor_id = _id_of(
        connection,
        table,
        (table.c.project_id == project_id, table.c.name == monitor),
        {
            "project_id": project_id,
            "name": monitor,
            "spec": {},
            "created_at": now,
            "updated_at": now,
        },
    )
    result_id = connection.execute(
        tables.MONITOR_RESULT.insert().values(
            monitor_id=monitor_id,
            status="alert",
            started_at=now,
            finished_at=now,
            reference="dataset:ref:1",
            current="window",
            reference_rows=1000,
            current_rows=1000,
            lineage={},
            digest="0" * 64,
        )
    ).inserted_primary_key[0]
    connection.execute(
        tables.MONITOR_ALERT.insert().values(
            monitor_id=monitor_id,
            check="drift",
            column="f00",
            method="psi",
            segment="",
            state="open",
            opened_at=now,
            first_result_id=result_id,
            last_result_id=result_id,
            message="drift on f00",
        )
    )


def _finished_run(connection: Any, project_id: int, pipeline: str, now: int) -> None:
    from loopml.store import tables

    run_id = uuid.uuid4().hex
    connection.execute(
        tables.RUN.insert().values(
            id=run_id,
            project_id=project_id,
            name=pipeline,
            kind="pipeline",
            status="finished",
            start_time=now - 1000,
            end_time=now,
            heartbeat_at=now,
            context={},
            params_json="{}",
            tags_json="{}",
        )
    )
    connection.execute(
        tables.PIPELINE_RUN.insert().values(
            run_id=run_id,
            pipeline=pipeline,
            params={},
            graph={},
            executor="local",
            use_cache=True,
        )
    )


def _model_version(connection: Any, project_id: int, model: str, now: int) -> None:
    from sqlalchemy import func, select

    from loopml.store import tables

    table, versions = tables.MODEL, tables.MODEL_VERSION
    model_id = _id_of(
        connection,
        table,
        (table.c.project_id == project_id, table.c.name == model),
        {"project_id": project_id, "name": model, "created_at": now},
    )
    last = connection.execute(
        select(func.max(versions.c.version)).where(versions.c.model_id == model_id)
    ).scalar()
    connection.execute(
        versions.insert().values(
            model_id=model_id,
            version=int(last or 0) + 1,
            status="candidate",
            flavor="sklearn",
            executable=False,
            digest="0" * 64,
            params={},
            metrics={},
            datasets=[],
            tags={},
            created_at=now,
        )
    )


def _settle(scheduler: Any, store: Any, *, waiting: bool = False) -> None:
    """Tick (untimed) until every firing's action has run and, when ``waiting``, no
    trigger holds events back (the dataset and alert ones debounce for 30 s)."""
    for _ in range(1200):
        if not _unfinished(store) and not (waiting and _waiting(store)):
            return
        scheduler.tick()
        time.sleep(0.1)
    raise SystemExit("firings did not finish within two minutes")


def _waiting(store: Any) -> bool:
    from sqlalchemy import select

    from loopml.store import tables

    with store.read() as connection:
        states = connection.execute(select(tables.TRIGGER.c.state)).scalars()
        return any((state or {}).get("pending") for state in states)


def _unfinished(store: Any) -> int:
    from sqlalchemy import func, select

    from loopml.store import tables

    firing = tables.TRIGGER_FIRING
    with store.read() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(firing)
                .where(firing.c.status.in_(("pending", "running")))
            ).scalar_one()
        )


def _drain(store: Any, deadline: float = 60.0) -> None:
    """Wait until the running ``loopml scheduler`` has run every firing's action."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not _unfinished(store):
            return
        time.sleep(0.05)
    raise SystemExit(f"firings did not finish within {deadline:g} s")


def _latency(store: Any, triggers: Any, args: argparse.Namespace) -> dict[str, list[float]]:
    import pandas as pd

    import loopml.data
    from loopml.automation import Action, Hygiene, Lease, TriggerSpec

    folder = Path(os.environ["LOOPML_HOME"]) / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[str, Hygiene]] = {
        "manual": ("manual", Hygiene()),
        "dataset (debounce 0)": ("dataset", Hygiene(debounce=0)),
    }
    if not args.no_default_debounce:
        cases["dataset (default debounce 30 s)"] = ("dataset", Hygiene())
    for i, (kind, hygiene) in enumerate(cases.values()):
        (folder / f"flow{i}.py").write_text(FLOWS.format(name=f"tiny{i}"))
        source = {"dataset": f"latency-{i}"} if kind == "dataset" else {}
        triggers.create(
            TriggerSpec(
                name=f"latency-{i}",
                kind=kind,
                source=source,
                action=Action(pipeline=f"{folder / f'flow{i}.py'}:tiny{i}"),
                hygiene=hygiene,
            ),
            project=PROJECT,
        )
    log = (folder / "scheduler.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("loopml")), "scheduler"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out: dict[str, list[float]] = {}
    try:
        _wait(lambda: (Lease(store, "reader").current() or _NoHolder()).holder != "", 60)
        time.sleep(2.0)  # past its first ticks
        for i, (label, (kind, _)) in enumerate(cases.items()):
            samples = 1 if "default" in label else args.samples
            out[label] = []
            for n in range(samples):
                runs = _runs(store, f"tiny{i}")
                started = time.perf_counter()
                if kind == "manual":
                    triggers.fire(f"latency-{i}", project=PROJECT)
                else:
                    frame = pd.DataFrame({"x": [n, i]})
                    loopml.data.register(f"latency-{i}", frame, project=PROJECT)
                _wait(lambda i=i, runs=runs: _runs(store, f"tiny{i}") > runs, 120, 0.01)
                out[label].append(time.perf_counter() - started)
                print(f"latency {label}: {out[label][-1]:.2f} s")
                _drain(store, 120)
                time.sleep(0.3 + 0.37 * n)  # land at a different phase of the tick
    finally:
        process.terminate()
        process.wait(60)
        log.close()
    return out


class _NoHolder:
    holder = ""


def _runs(store: Any, pipeline: str) -> int:
    from sqlalchemy import func, select

    from loopml.store import tables

    with store.read() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(tables.PIPELINE_RUN)
                .where(tables.PIPELINE_RUN.c.pipeline == pipeline)
            ).scalar_one()
        )


def _wait(condition: Callable[[], bool], deadline: float, every: float = 0.05) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(every)
    raise SystemExit(f"timed out after {deadline:g} s")


def _profiler() -> Any:
    import cProfile

    return cProfile.Profile()


def _print_profile(profile: Any) -> None:
    import io
    import pstats

    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(30)
    print("\n".join(text.getvalue().splitlines()[:60]))


def _print(results: dict[str, dict[str, Any]]) -> None:
    print()
    print("| Back-end | Work | Median | Min-max | Target | Ratio to target | Met? |")
    print("|:---|:---|---:|---:|---:|---:|:---:|")
    for backend, r in results.items():
        rows = [
            ("first tick after the triggers were stored", [r["first"]], TICK_TARGET),
            (f"steady tick, {r['evaluated']:,} triggers, nothing new", r["steady"], TICK_TARGET),
            (
                f"tick with 10 % new events ({r['fired_per_round']:.0f} firings)",
                r["events"],
                TICK_TARGET,
            ),
        ]
        rows += [
            (f"event → pipeline run row: {label}", values, LATENCY_TARGET)
            for label, values in r.get("latency", {}).items()
        ]
        for label, values, target in rows:
            median = statistics.median(values)
            print(
                f"| {backend} | {label} (n={len(values)}) | {median:.3f} s | "
                f"{min(values):.3f}-{max(values):.3f} s | ≤ {target:g} s | "
                f"{median / target:.2f} | {'yes' if median <= target else 'NO'} |"
            )
        loads = ", ".join(f"{x:.1f}" for x in r["load"])
        print(f"| {backend} | load average during the run: {loads} | | | | | |")
    print(
        f"\nmachine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
