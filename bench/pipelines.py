"""Benchmark the pipeline framework's own overhead per step, cold and fully cached.

Two 20-step pipelines of trivial steps: a *chain* (each step adds 1 to the one
before) and a *fan-out* (20 independent steps). Each round runs in a fresh
process on a fresh ``LOOPML_HOME`` and times, in this order:

1. a 1-step pipeline, the first in the process (starts the forkserver, or the
   first Ray workers);
2. another 1-step pipeline (a warm process: executor start-up + one step);
3. the 20-step pipeline, cold (every cache look-up misses);
4. the same 20-step pipeline again, fully cached;
5. the 1-step pipeline of (2) again, cached.

Per-step overhead is the slope between the 1-step and 20-step runs
(``(t3 - t2) / 19`` cold, ``(t4 - t5) / 19`` cached), so the fixed cost of a run
(recording it, starting the executor) is reported apart: executor start-up is
``t2`` minus one cold step. Cold runs are made to miss by a pipeline parameter
(a salt passed to the first step), not by turning the cache off, so they pay
for their cache look-ups. Every run's step statuses are checked.

On Ray, ``ray.init`` (a local Ray on this machine) is timed on its own before
the runs, which then reuse that Ray, as they would a cluster.

Examples::

    .venv/bin/python bench/pipelines.py                       # local executor, 3 rounds
    .venv/bin/python bench/pipelines.py --executor both --markdown
    .venv/bin/python bench/pipelines.py --quick --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import loopml

BENCH = Path(__file__).resolve().parent
STEPS = 20
SHAPES = ("chain", "fanout")
WORKER_TIMEOUT_SECONDS = 1800
TARGET_COLD_MS = 100.0
TARGET_CACHED_MS = 30.0
TABLE_WIDTH = 130  # when stdout is not a terminal

Round = dict[str, Any]


# -- the pipelines (module level: worker processes import them from here) --------------------


@loopml.step
def start(salt: int) -> int:
    return salt


@loopml.step
def inc(x: int) -> int:
    return x + 1


@loopml.step
def leaf(salt: int, i: int) -> int:
    return salt + i


@loopml.pipeline
def chain(salt: int = 0, steps: int = STEPS):
    value = start(salt)
    for _ in range(steps - 1):
        value = inc(value)


@loopml.pipeline
def fanout(salt: int = 0, steps: int = STEPS):
    for i in range(steps):
        leaf(salt, i)


# -- one round, in a fresh process ----------------------------------------------------------


def _timed(pipeline: Any, executor: str, expect: str, **params: int) -> float:
    started = time.perf_counter()
    run = pipeline.run(params=params, executor=executor)
    seconds = time.perf_counter() - started
    statuses = {s.status for s in run.steps.values()}
    if run.status != "finished" or statuses != {expect}:
        raise SystemExit(f"{pipeline.name} {params}: run {run.status}, steps {statuses}")
    return seconds


def worker(shape: str, executor: str) -> Round:
    """Time the five runs of one round; return the raw seconds and the derived figures."""
    from loopml.tracking import get_client

    _ = get_client().store  # create the database and migrate it: not timed
    pipeline = chain if shape == "chain" else fanout
    raw: dict[str, float] = {}
    if executor == "ray":
        import ray

        began = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False)
        raw["ray_init"] = time.perf_counter() - began
    raw["first_1"] = _timed(pipeline, executor, "finished", salt=1, steps=1)
    raw["cold_1"] = _timed(pipeline, executor, "finished", salt=2, steps=1)
    raw["cold_n"] = _timed(pipeline, executor, "finished", salt=3)
    raw["cached_n"] = _timed(pipeline, executor, "cached", salt=3)
    raw["cached_1"] = _timed(pipeline, executor, "cached", salt=2, steps=1)
    if executor == "ray":
        import ray

        ray.shutdown()
    cold_step = (raw["cold_n"] - raw["cold_1"]) / (STEPS - 1)
    cached_step = (raw["cached_n"] - raw["cached_1"]) / (STEPS - 1)
    return {
        "raw_seconds": raw,
        "cold_step_ms": 1000 * cold_step,
        "cached_step_ms": 1000 * cached_step,
        "cold_all_in_ms": 1000 * raw["cold_n"] / STEPS,
        "cached_all_in_ms": 1000 * raw["cached_n"] / STEPS,
        "startup_ms": 1000 * (raw["cold_1"] - cold_step),
        "first_startup_ms": 1000 * (raw["first_1"] - cold_step),
        "cached_run_fixed_ms": 1000 * (raw["cached_1"] - cached_step),
        "ray_init_ms": 1000 * raw["ray_init"] if "ray_init" in raw else None,
    }


def run_worker(shape: str, executor: str, keep: bool) -> Round:
    """One round in a fresh interpreter on a fresh LOOPML_HOME."""
    folder = Path(tempfile.mkdtemp(prefix=f"loopml-bench-pipelines-{shape}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = str(folder / "home")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", shape, executor],
            capture_output=True,
            text=True,
            env=env,
            cwd=folder,
            timeout=WORKER_TIMEOUT_SECONDS,
            check=False,
        )
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{shape} on {executor} failed:\n{done.stdout}\n{done.stderr}")
    result: Round = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the results: a figure of one shape on one executor."""

    executor: str
    label: str
    key: str
    target: float | None


ROWS = [
    ("cold_step_ms", "per cold step, {shape} of 20 (slope)", TARGET_COLD_MS),
    ("cached_step_ms", "per cached step, {shape} of 20 (slope)", TARGET_CACHED_MS),
    ("cold_all_in_ms", "{shape} of 20 cold, wall / 20 (start-up included)", None),
    ("cached_all_in_ms", "{shape} of 20 cached, wall / 20", None),
    ("startup_ms", "executor start-up + fixed cost of a run (warm process)", None),
    ("first_startup_ms", "the same, first run in a fresh process", None),
    ("cached_run_fixed_ms", "fixed cost of a fully cached run", None),
    ("ray_init_ms", "ray.init() of a local Ray", None),
]


def summarise(results: dict[str, dict[str, list[Round]]]) -> list[dict[str, Any]]:
    """Medians per executor, shape and figure, with the target and whether it is met."""
    rows: list[dict[str, Any]] = []
    for executor, shapes in results.items():
        for key, label, target in ROWS:
            for shape, rounds in shapes.items():
                values = [r[key] for r in rounds if r.get(key) is not None]
                if not values:
                    continue
                # start-up figures hardly depend on the shape: show the chain's only
                if (
                    key
                    not in ("cold_step_ms", "cached_step_ms", "cold_all_in_ms", "cached_all_in_ms")
                    and shape != "chain"
                ):
                    continue
                median = statistics.median(values)
                applies = target is not None and executor == "local"
                rows.append(
                    {
                        "executor": executor,
                        "shape": shape,
                        "key": key,
                        "label": label.format(shape=shape),
                        "median_ms": median,
                        "rounds_ms": values,
                        "target_ms": target if applies else None,
                        "met": (median <= target) if applies and target is not None else None,
                    }
                )
    return rows


def fmt_ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def cells(row: dict[str, Any]) -> list[str]:
    target = "—" if row["target_ms"] is None else f"≤ {row['target_ms']:.0f} ms"
    met = "—" if row["met"] is None else ("yes" if row["met"] else "NO")
    spread = " / ".join(fmt_ms(v) for v in row["rounds_ms"])
    return [row["executor"], row["label"], fmt_ms(row["median_ms"]), spread, target, met]


HEADERS = ["Executor", "Workload", "Median", "Rounds", "Target", "Met?"]


def machine_facts(load_at_start: float) -> dict[str, Any]:
    ray_version = None
    try:
        import ray

        ray_version = ray.__version__
    except ImportError:
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": platform.processor() or platform.machine(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loopml": loopml.__version__,
        "ray": ray_version,
        "load_average_1min": {"start": load_at_start, "end": os.getloadavg()[0]},
    }


def markdown(rows: list[dict[str, Any]], facts: dict[str, Any], rounds: int) -> str:
    lines = [
        "| " + " | ".join(HEADERS).replace("Median", f"Median of {rounds}") + " |",
        "|:---|:---|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    load = facts["load_average_1min"]
    lines += [
        "",
        f"- {facts['date']} · {facts['usable_cores']} usable cores · {facts['platform']} · "
        f"load average {load['start']:.1f} at start, {load['end']:.1f} at end",
        f"- loopml {facts['loopml']} · Python {facts['python']} · Ray {facts['ray']}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--executor", choices=("local", "ray", "both"), default="local")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per shape (default 3)")
    parser.add_argument("--quick", action="store_true", help="one round (a smoke test)")
    parser.add_argument("--json", type=Path, help="also save every figure to this file")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep-tmp", action="store_true", help="keep each round's folder")
    parser.add_argument("--worker", nargs=2, metavar=("SHAPE", "EXECUTOR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=TABLE_WIDTH)
    executors = ["local", "ray"] if args.executor == "both" else [args.executor]
    load_at_start = os.getloadavg()[0]
    results: dict[str, dict[str, list[Round]]] = {e: {s: [] for s in SHAPES} for e in executors}
    for index in range(args.rounds):
        for executor in executors:  # rounds alternate shapes and executors
            for shape in SHAPES:
                console.print(f"round {index + 1}/{args.rounds}: {shape} on {executor} …")
                results[executor][shape].append(run_worker(shape, executor, args.keep_tmp))
    rows = summarise(results)
    facts = machine_facts(load_at_start)
    table = Table(title="Pipeline overhead per step", title_justify="left")
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("Executor", "Workload") else "right")
    for row in rows:
        table.add_row(*cells(row))
    console.print(table)
    if args.markdown:
        print(markdown(rows, facts, args.rounds))
    if args.json:
        payload = {"machine": facts, "rounds": args.rounds, "summary": rows, "results": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    missed = [row for row in rows if row["met"] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
