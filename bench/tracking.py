"""Benchmark loopml's experiment tracking, alone or against MLflow on the same workload.

The workload (see ``workers/workload.py``): create 100 runs with 10 params each;
log 10,000 metric points one call at a time in one run; log 10,000 points in
batches of 1,000; search 1,000 runs on a metric filter (about half match).

Every round runs in a fresh subprocess on a fresh store in a fresh temp folder:
loopml rounds with this interpreter, MLflow rounds with ``--peer-python`` (a
separate virtualenv, so peers never constrain loopml's dependencies). loopml
and MLflow rounds alternate; the table shows medians over the rounds and the
loopml/MLflow speed ratio (above 1 means loopml is faster).

Examples::

    make bench                                   # 3 rounds each, against MLflow
    .venv/bin/python bench/tracking.py           # loopml only, MLflow reference figures
    .venv/bin/python bench/tracking.py --vs mlflow --quick --json out.json --markdown
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from workers.workload import Spec, expected_hits

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKERS = {
    "loopml": BENCH / "workers" / "loopml_worker.py",
    "mlflow": BENCH / "workers" / "mlflow_worker.py",
}
PEER_NAMES = {"mlflow": "MLflow"}
DEFAULT_PEER_PYTHON = REPO / ".venv-peers" / "bin" / "python"
WORKER_TIMEOUT_SECONDS = 3600
BUSY_LOAD = 0.5  # warn when the 1-minute load average exceeds this per usable core
TABLE_WIDTH = 130  # when stdout is not a terminal

Round = dict[str, Any]


@dataclass(frozen=True)
class Measure:
    """One row of the results table.

    ``reference`` is MLflow 3.17's figure on this machine as recorded in the
    issue (median of 3); it stands in for the peer column when no peer runs.
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: float | None
    reference: float | None
    extract: Callable[[Round], float]


def measures(spec: Spec) -> list[Measure]:
    """Return the table's rows, labelled with the spec's sizes."""
    full = spec == Spec()
    return [
        Measure(
            "create_runs",
            f"Create {spec.runs} runs ({spec.params_per_run} params + 1 metric each)",
            "runs/s",
            True,
            10,
            47 if full else None,
            lambda r: r["create_runs"]["per_second"],
        ),
        Measure(
            "log_one_at_a_time",
            f"log_metric one call at a time ({spec.points:,} points)",
            "calls/s",
            True,
            100,
            204 if full else None,
            lambda r: r["log_one_at_a_time"]["per_second"],
        ),
        Measure(
            "log_in_batches",
            f"log_batch in batches of {spec.batch_size:,} ({spec.points:,} points)",
            "points/s",
            True,
            10,
            7_900 if full else None,
            lambda r: r["log_in_batches"]["per_second"],
        ),
        Measure(
            "search",
            f"Search {spec.search_runs:,} runs, {spec.search_filter} "
            f"(median of {spec.search_repeats}, gc.collect() before each)",
            "s",
            False,
            5,
            0.12 if full else None,
            lambda r: r["search"]["seconds"],
        ),
        Measure(
            "search_back_to_back",
            f"Search, {spec.search_repeats} calls back to back (mean, GC pauses included)",
            "s",
            False,
            None,
            None,
            lambda r: r["search"]["back_to_back_seconds"],
        ),
        Measure(
            "search_cold",
            "Search, first call in the process",
            "s",
            False,
            None,
            None,
            lambda r: r["search"]["cold_seconds"],
        ),
        *(
            Measure(
                f"{phase}_readable",
                f"{title}: first call → checked by a fresh process",
                "s",
                False,
                None,
                None,
                lambda r, phase=phase: r[phase]["readable_seconds"],
            )
            for phase, title in (
                ("create_runs", "Create runs"),
                ("log_one_at_a_time", "One at a time"),
                ("log_in_batches", "Batches"),
            )
        ),
    ]


# --- running rounds -----------------------------------------------------------


def run_worker(tool: str, python: Path, spec: Spec, keep: bool) -> Round:
    """Run one round of ``tool`` in a fresh process on a fresh temp folder."""
    workdir = Path(tempfile.mkdtemp(prefix=f"loopml-bench-{tool}-"))
    argv = [str(python), str(WORKERS[tool]), "round", "--workdir", str(workdir)]
    argv += ["--spec", spec.to_json()]
    try:
        proc = subprocess.run(
            argv,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_SECONDS,
            check=False,
        )
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(
            f"\n{tool} round failed (exit {proc.returncode}); its output ends with:\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-6000:]}"
        )
    result: Round = json.loads(proc.stdout.strip().splitlines()[-1])
    result["workdir"] = str(workdir) if keep else None
    return result


def run_rounds(
    tools: dict[str, Path], spec: Spec, rounds: int, keep: bool, console: Console
) -> dict[str, list[Round]]:
    """Run ``rounds`` rounds of every tool, alternating tools within each round."""
    results: dict[str, list[Round]] = {tool: [] for tool in tools}
    for index in range(rounds):
        for tool, python in tools.items():
            started = time.perf_counter()
            results[tool].append(run_worker(tool, python, spec, keep))
            console.print(
                f"round {index + 1}/{rounds} · {tool:<6} · {time.perf_counter() - started:6.1f} s",
                highlight=False,
            )
    return results


# --- summarising --------------------------------------------------------------


def ratio(measure: Measure, ours: float | None, theirs: float | None) -> float | None:
    """Return how many times faster loopml is (above 1: loopml faster)."""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return None
    return ours / theirs if measure.higher_is_better else theirs / ours


def summarise(
    results: dict[str, list[Round]], spec: Spec, peer: str | None
) -> list[dict[str, Any]]:
    """Return one row per measure: medians, ratio, target and whether it is met."""
    rows = []
    for measure in measures(spec):
        medians = {
            tool: statistics.median(measure.extract(r) for r in rounds)
            for tool, rounds in results.items()
        }
        ours = medians.get("loopml")
        theirs = medians[peer] if peer else measure.reference
        r = ratio(measure, ours, theirs)
        rows.append(
            {
                "key": measure.key,
                "label": measure.label,
                "unit": measure.unit,
                "loopml": ours,
                "peer": theirs,
                "peer_is_reference": peer is None and theirs is not None,
                "ratio": r,
                "target": measure.target,
                "met": None if r is None or measure.target is None else r >= measure.target,
                "per_round": {
                    tool: [measure.extract(x) for x in rounds] for tool, rounds in results.items()
                },
            }
        )
    return rows


def usable_cores() -> int:
    """Return the cores this process may run on (all cores where that is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_facts(results: dict[str, list[Round]], load_at_start: float) -> dict[str, Any]:
    """Return what identifies the machine and software the figures come from."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "platform": platform.platform(),
        "load_average_1min": {"start": load_at_start, "end": os.getloadavg()[0]},
        "tools": {tool: rounds[0]["tool"] for tool, rounds in results.items() if rounds},
    }


# --- printing -------------------------------------------------------------------


def fmt_value(value: float | None, unit: str) -> str:
    """Format a median with its unit: rates with thousands separators, times in s or ms."""
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"
    return f"{value:,.0f} {unit}"


def fmt_ratio(value: float | None) -> str:
    """Format a speed ratio."""
    if value is None:
        return "—"
    return f"{value:.1f}x" if value < 100 else f"{value:,.0f}x"


def table_cells(row: dict[str, Any]) -> list[str]:
    """Return a row's cells: workload, loopml, peer, ratio, target, met?."""
    peer = fmt_value(row["peer"], row["unit"])
    if row["peer_is_reference"]:
        peer += " (ref)"
    target = f"≥ {row['target']:g}x" if row["target"] is not None else "—"
    met = {None: "—", True: "yes", False: "NO"}[row["met"]]
    return [
        row["label"],
        fmt_value(row["loopml"], row["unit"]),
        peer,
        fmt_ratio(row["ratio"]),
        target,
        met,
    ]


def headers(peer: str | None, rounds: int) -> list[str]:
    """Return the column headers."""
    of = f"median of {rounds}" if rounds > 1 else "1 round"
    other = f"{PEER_NAMES[peer]} ({of})" if peer else "MLflow 3.17 (reference)"
    return ["Workload", f"loopml ({of})", other, "Ratio", "Target", "Met?"]


def facts_lines(facts: dict[str, Any], spec: Spec) -> list[str]:
    """Return the machine and version facts as short lines."""
    load = facts["load_average_1min"]
    lines = [
        f"{facts['date']} · {facts['cpu']} · {facts['usable_cores']} usable cores · "
        f"{facts['platform']} · load average {load['start']:.1f} at start, "
        f"{load['end']:.1f} at end",
    ]
    for tool in facts["tools"].values():
        lines.append(
            f"{tool['name']} {tool['version']} · Python {tool['python']} · "
            f"SQLite {tool['sqlite']} · journal_mode={tool['journal_mode']}"
        )
    lines.append(
        f"search: {expected_hits(spec)} of {spec.search_runs:,} runs match "
        f"{spec.search_filter!r}; every tool returned exactly that many"
    )
    return lines


def print_rich(
    console: Console,
    rows: list[dict[str, Any]],
    facts: dict[str, Any],
    spec: Spec,
    peer: str | None,
    rounds: int,
) -> None:
    """Print the results table and the facts under it."""
    table = Table(title="loopml tracking benchmark", title_justify="left")
    for index, header in enumerate(headers(peer, rounds)):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*table_cells(row))
    console.print(table)
    for line in facts_lines(facts, spec):
        console.print(line, highlight=False)
    if peer is None:
        console.print(
            "(ref) = MLflow figure recorded in the issue, not measured now; "
            "run with --vs mlflow for a like-for-like comparison."
        )


def markdown(
    rows: list[dict[str, Any]], facts: dict[str, Any], spec: Spec, peer: str | None, rounds: int
) -> str:
    """Return the results as a Markdown table plus facts, ready for bench/README.md."""
    head = headers(peer, rounds)
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in rows]
    lines.append("")
    lines += [f"- {line}" for line in facts_lines(facts, spec)]
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--vs", choices=sorted(PEER_NAMES), help="also run this peer's rounds")
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=DEFAULT_PEER_PYTHON,
        help="interpreter of the peers' virtualenv (default: .venv-peers/bin/python)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per tool (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smaller smoke-test workload")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument(
        "--peer-only", action="store_true", help="run only the peer's rounds (checks its setup)"
    )
    parser.add_argument("--keep-tmp", action="store_true", help="keep each round's temp folder")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    args = parser.parse_args(argv)
    if args.peer_only and not args.vs:
        parser.error("--peer-only needs --vs")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def select_tools(args: argparse.Namespace) -> dict[str, Path]:
    """Return each tool to run with the interpreter it runs under, in round order."""
    tools: dict[str, Path] = {}
    if not args.peer_only:
        tools["loopml"] = Path(sys.executable)
    if args.vs:
        if not args.peer_python.exists():
            raise SystemExit(
                f"{args.peer_python} does not exist; `make bench` creates .venv-peers from "
                "bench/peers-requirements.txt, or pass --peer-python."
            )
        # Absolute (rounds run in their temp folder) but not resolved: resolving the
        # venv's python symlink would leave the venv.
        tools[args.vs] = args.peer_python.absolute()
    return tools


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the results."""
    args = parse_args(argv)
    spec = Spec.quick() if args.quick else Spec()
    tools = select_tools(args)
    console = Console(stderr=True)
    console.print(f"workload: {spec}", highlight=False)
    load_at_start = os.getloadavg()[0]
    if load_at_start > BUSY_LOAD * usable_cores():
        console.print(
            f"[yellow]warning: load average {load_at_start:.1f}; other processes will "
            "slow both tools and blur the figures[/yellow]"
        )
    results = run_rounds(tools, spec, args.rounds, args.keep_tmp, console)
    rows = summarise(results, spec, args.vs)
    facts = machine_facts(results, load_at_start)
    out = Console()
    if not out.is_terminal:
        out = Console(width=TABLE_WIDTH)
    print_rich(out, rows, facts, spec, args.vs, args.rounds)
    if args.markdown:
        print()
        print(markdown(rows, facts, spec, args.vs, args.rounds))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": facts, "spec": asdict(spec), "rounds": args.rounds}
        payload |= {"summary": rows, "results": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    missed = [row["label"] for row in rows if row["met"] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
