"""A/B ``loopml serve``'s concurrency-16 throughput across source trees, in one invocation.

``bench/serving.py`` measures one tree at a time, so two of its runs minutes apart on
a shared machine differ by more than a small regression. This script serves the same
forest from each ``--tree`` in turn (the order alternates every round), each time in
a fresh ``LOOPML_HOME`` and WAL folder with this virtualenv and ``PYTHONPATH`` set to
that tree's ``src``, and runs ``serving.py``'s warm-up, concurrency-1 and
concurrency-16 phases against it with the same load client. It prints every run and
each tree's medians: requests/s and its ratio to the first tree's; the model call's
time and requests (the server's ``/metrics`` around c=16: at c=16 the answers per
second are about the requests per call over the call's time, so a slower model call
on a busy machine reads as a slower server); the server's CPU per answer split by
thread (``/proc/PID/task``, named by ``py-spy dump``), which puts a number on the
prediction log's flusher and WAL threads; and the load average.

Example (the tree before a change against this checkout)::

    git worktree add /work/base COMMIT^
    .venv/bin/python bench/serving_ab.py --tree base=/work/base/src --tree new=src \\
        --rounds 5 --json ab.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving import (
    ENDPOINT,
    STOP_TIMEOUT_SECONDS,
    WORKERS,
    Server,
    Settings,
    clean_env,
    client_plan,
    free_port,
    metric_totals,
    run_json,
    say,
    train,
    write_inputs,
)

BATCHES = "loopml_batch_size_requests"  # the server's metrics read around c16
MODEL_CALL = "loopml_model_call_seconds"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TIMED_PHASES = ("warmup", "c1", "c16")  # serving.py's order; probe and big are not timed here


@dataclass(frozen=True)
class Tree:
    """A source tree to serve from: a label and its ``src`` folder."""

    name: str
    src: Path


def parse_tree(text: str) -> Tree:
    name, sep, src = text.partition("=")
    if not sep or not name or not (Path(src) / "loopml" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"expected NAME=SRC with SRC/loopml, got {text!r}")
    return Tree(name, Path(src).absolute())


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Sample the thread holding the server's GIL with py-spy, as folded stacks per thread."""
    py_spy = Path(sys.executable).parent / "py-spy"
    argv = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds) + 1)]
    argv += ["--gil", "--threads", "--rate", "200", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def one_run(
    tree: Tree,
    run: str,
    inputs: dict[str, Any],
    settings: Settings,
    c1_seconds: float,
    workdir: Path,
    profile_to: Path | None,
) -> dict[str, Any]:
    """Set up a fresh home for ``tree``, serve from it, drive it; return the timed phases."""
    folder = workdir / run
    folder.mkdir()
    for name in ("forest.pkl", "example.json"):
        shutil.copy(workdir / name, folder / name)
    env = clean_env("LOOPML_", {"LOOPML_HOME": str(folder / "home"), "PYTHONPATH": str(tree.src)})
    helper = [sys.executable, str(WORKERS / "loopml_serving.py")]
    run_json([*helper, "setup", "--workdir", str(folder)], env, folder, f"{run} setup")
    port = free_port()
    argv = [str(Path(sys.executable).parent / "loopml"), "serve", ENDPOINT]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-folder", str(folder / "wal")]
    server = Server(run, argv, env, port, "/v2/health/ready", folder / "server.log")
    spy = None
    server.start()
    try:
        server.wait_ready()
        plan = client_plan(server, "/", inputs, settings, folder, None)
        plan["path"] = f"/v1/endpoints/{ENDPOINT}/predict"
        phases = {p["name"]: p for p in plan["phases"] if p["name"] in TIMED_PHASES}
        phases["c1"]["seconds"] = c1_seconds
        phases["c16"]["metrics_path"] = "/metrics"  # the batches the server made
        before = [p for name, p in phases.items() if name != "c16" and p["seconds"] > 0]
        drive(folder / "before.json", {**plan, "phases": before}, run)
        # c16 alone, so the server's threads can be read around it.
        pid = server.pids[0]
        if profile_to is not None:
            seconds = phases["c16"]["seconds"] + phases["c16"]["pause_seconds"]
            spy = profile(pid, seconds, profile_to / f"{run}.folded")
        load_start = os.getloadavg()[0]
        threads_before = thread_ticks(pid)
        client = drive(folder / "c16.json", {**plan, "phases": [phases["c16"]]}, run)
        threads = thread_ticks(pid)
        names = thread_names(pid)
    finally:
        status = server.stop()
        if spy is not None:
            spy.wait(timeout=STOP_TIMEOUT_SECONDS)
    c16 = client["phases"][0]
    answers = max(1, c16["ok"])
    before, after = metric_totals(c16["metrics_before"]), metric_totals(c16["metrics_after"])
    calls = after[f"{BATCHES}_count"] - before.get(f"{BATCHES}_count", 0.0)
    call_seconds = after[f"{MODEL_CALL}_sum"] - before.get(f"{MODEL_CALL}_sum", 0.0)
    by_name: dict[str, float] = {}
    for tid, ticks in threads.items():
        name = names.get(tid, "other threads")
        spent = (ticks - threads_before.get(tid, 0)) / CLOCK_TICKS
        by_name[name] = by_name.get(name, 0.0) + 1e3 * spent / answers
    return {
        "tree": tree.name,
        "run": run,
        "exit_status": status,
        "load_average_1min": [load_start, os.getloadavg()[0]],
        "rps": c16["requests_per_second"],
        "p50": c16["latency"]["p50"],
        "p99": c16["latency"]["p99"],
        "errors": sum(c16["errors"].values()),
        "server_cores": (c16["server_cpu_seconds"] or 0.0) / c16["wall_seconds"],
        # CPU per answer varies less than answers per second when other work takes cores.
        "server_ms_per_request": 1e3 * (c16["server_cpu_seconds"] or 0.0) / answers,
        "thread_ms_per_request": by_name,
        "requests_per_call": (after[f"{BATCHES}_sum"] - before.get(f"{BATCHES}_sum", 0.0))
        / max(1.0, calls),
        "call_ms": 1e3 * call_seconds / max(1.0, calls),
        "other_cores": (c16["others_cpu_seconds"] or 0.0) / c16["wall_seconds"],
    }


def drive(plan_path: Path, plan: dict[str, Any], run: str) -> dict[str, Any]:
    """Run the load client on ``plan``; its result."""
    plan_path.write_text(json.dumps(plan))
    return run_json(
        [sys.executable, str(WORKERS / "http_load.py"), str(plan_path)],
        dict(os.environ),
        plan_path.parent,
        f"the load client against {run}",
    )


def thread_ticks(pid: int) -> dict[int, int]:
    """CPU clock ticks (user + system) used so far by each thread of process ``pid``."""
    found = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            found[int(stat.parent.name)] = int(fields[11]) + int(fields[12])  # utime, stime
    return found


def thread_names(pid: int) -> dict[int, str]:
    """Thread id → Python thread name, from ``py-spy dump``; the pool's number dropped,
    so the predicting threads add up as one. Empty without py-spy."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        return {}
    dump = subprocess.run(
        [str(py_spy), "dump", "--pid", str(pid)], capture_output=True, text=True, check=False
    )
    return {
        int(m.group(1)): re.sub(r"_\d+$", "", m.group(2))
        for m in re.finditer(r'^Thread (\d+) \(\w+\): "(.*)"$', dump.stdout, re.MULTILINE)
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--tree", type=parse_tree, action="append", required=True, help="NAME=SRC, twice or more"
    )
    parser.add_argument("--rounds", type=int, default=5, help="runs per tree (default 5)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of c16 (10)")
    parser.add_argument(
        "--c1", type=float, help="seconds of concurrency 1 before it (default: --duration; 0: none)"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up (3)")
    parser.add_argument(
        "--profile", type=Path, help="py-spy every run into this folder (slows the server)"
    )
    parser.add_argument("--json", type=Path, help="also write every run to this JSON file")
    args = parser.parse_args(argv)
    if len(args.tree) < 2 or args.rounds < 1 or args.duration <= 0:
        parser.error("give two --tree or more, --rounds >= 1 and --duration > 0")
    args.c1 = args.duration if args.c1 is None else args.c1
    return args


def describe(result: dict[str, Any]) -> str:
    """One line for one run: its c16 figures and its threads' CPU per answer."""
    threads = ", ".join(
        f"{name} {ms:.2f}" for name, ms in sorted(result["thread_ms_per_request"].items())
    )
    return (
        f"{result['run']}: {result['rps']:.0f} req/s, p50 {result['p50'] * 1e3:.1f} ms, "
        f"p99 {result['p99'] * 1e3:.1f} ms, errors {result['errors']}, server "
        f"{result['server_cores']:.2f} cores, others {result['other_cores']:.2f}, load "
        f"{result['load_average_1min'][0]:.2f}; {result['requests_per_call']:.1f} requests "
        f"per model call of {result['call_ms']:.1f} ms; server CPU "
        f"{result['server_ms_per_request']:.2f} ms per answer ({threads})"
    )


def summary(name: str, runs: list[dict[str, Any]], first: float) -> str:
    """One tree's medians: requests/s (and its ratio to the first tree's), the model
    call, the share of the phase spent in model calls, the CPU per answer by thread."""

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    rps = [r["rps"] for r in runs]
    in_calls = statistics.median(
        r["rps"] * r["call_ms"] / 1e3 / max(r["requests_per_call"], 1.0) for r in runs
    )
    names = sorted({n for r in runs for n in r["thread_ms_per_request"]})
    threads = ", ".join(
        f"{n} {statistics.median(r['thread_ms_per_request'].get(n, 0.0) for r in runs):.3f}"
        for n in names
    )
    return (
        f"{name}: median {median('rps'):.0f} req/s over {len(runs)} runs (min {min(rps):.0f}, "
        f"max {max(rps):.0f}); {median('rps') / first:.3f}x the first tree; model call "
        f"{median('call_ms'):.1f} ms for {median('requests_per_call'):.1f} requests, "
        f"{in_calls:.0%} of the time in model calls; server CPU "
        f"{median('server_ms_per_request'):.2f} ms per answer ({threads})"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(args.duration, args.warmup, repeats=1)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-serving-ab-"))
    load_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    try:
        inputs = write_inputs(train(), workdir)
        for round_ in range(args.rounds):
            order = args.tree if round_ % 2 == 0 else args.tree[::-1]
            for tree in order:
                run = f"{tree.name}-{round_}"
                result = one_run(tree, run, inputs, settings, args.c1, workdir, args.profile)
                runs.append(result)
                say(describe(result))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    first = statistics.median(r["rps"] for r in runs if r["tree"] == args.tree[0].name)
    for tree in args.tree:
        print(summary(tree.name, [r for r in runs if r["tree"] == tree.name], first))
    load_end = os.getloadavg()
    print(
        f"load average (1, 5, 15 min): start {load_start[0]:.2f} {load_start[1]:.2f} "
        f"{load_start[2]:.2f}, end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps({"load_average": [load_start, load_end], "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
