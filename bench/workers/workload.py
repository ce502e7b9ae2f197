"""The tracking workload, timed the same way for every tool.

Each tool has a small worker script (``loopml_worker.py``, ``mlflow_worker.py``)
that adapts the tool to the :class:`Tool` protocol and calls :func:`main`. A
worker runs in the tool's own virtualenv, so this module uses the standard
library only.

One *round* (``worker.py round --workdir DIR --spec JSON``) runs, in order:

1. warm-up: one throw-away run (creates the database, runs migrations);
2. ``create_runs``: N runs with P params and one ``auc`` metric each;
3. ``log_one_at_a_time``: one run, ``points`` single ``log_metric`` calls;
4. ``log_in_batches``: one run, the same points through ``log_batch``;
5. ``search``: set up ``search_runs`` runs with a seeded ``auc`` (not timed),
   then time a metric-filtered search: the first call, ``search_repeats`` calls
   each after a (not timed) ``gc.collect()``, and ``search_repeats`` calls back
   to back (see :func:`_phase_search`).

For phases 2 to 4 the timer starts at the first call and stops once the run
has ended (``end_run`` returned). Then a fresh process of the same tool (this
script in ``read-*`` mode) reads everything back and fails loudly if a run, a
param or a point is missing. The time from the first call until that reader
has read and checked everything, its start-up and imports included, is the
"readable" variant of the figure.

The round prints its result as one JSON line, the last line of stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

PROJECT_WARM_UP = "bench-warm-up"
PROJECT_CREATE = "bench-create"
PROJECT_LOG = "bench-log"
PROJECT_SEARCH = "bench-search"
METRIC_KEY = "loss"
AUC_KEY = "auc"


@dataclass(frozen=True)
class Spec:
    """Sizes of the workload; the defaults are the issue's workload."""

    runs: int = 100
    params_per_run: int = 10
    points: int = 10_000
    batch_size: int = 1_000
    search_runs: int = 1_000
    search_threshold: float = 0.51
    search_repeats: int = 10
    seed: int = 20_240_601

    @classmethod
    def quick(cls) -> Spec:
        """Return the smoke-test variant: same shape, a few seconds per round."""
        return cls(runs=20, points=2_000, search_runs=200, search_repeats=5)

    @classmethod
    def from_json(cls, text: str) -> Spec:
        """Parse a spec written by :meth:`to_json`; missing fields keep their defaults."""
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown spec fields: {sorted(unknown)}")
        return cls(**raw)

    def to_json(self) -> str:
        """Serialise for a worker's ``--spec`` argument."""
        return json.dumps(asdict(self))

    @property
    def search_filter(self) -> str:
        """The filter string, identical for every tool."""
        return f"metrics.{AUC_KEY} > {self.search_threshold}"


class Tool(Protocol):
    """What a worker adapts its tool to. Every call uses the tool's public API."""

    def describe(self) -> dict[str, Any]:
        """Return the tool's name, version and the settings that matter for speed."""
        ...

    def db_path(self) -> Path:
        """Return the SQLite file the tool writes to."""
        ...

    def prepare_project(self, project: str) -> None:
        """Make ``project`` usable (MLflow: create the experiment). Not timed."""
        ...

    def create_runs(
        self, project: str, params: Sequence[dict[str, Any]], aucs: Sequence[float]
    ) -> None:
        """Create one finished run per item: its params, then metric ``auc``."""
        ...

    def start_run(self, project: str, name: str) -> str:
        """Start a run, make it the active one and return its id."""
        ...

    def end_run(self) -> None:
        """End the active run; the tool's documented way to finish it."""
        ...

    def log_one_at_a_time(self, key: str, values: Sequence[float]) -> None:
        """Log ``values[i]`` at step ``i``, one API call per point, in the active run."""
        ...

    def log_in_batches(self, key: str, values: Sequence[float], batch_size: int) -> None:
        """Log the same points through the batch API, ``batch_size`` points a call."""
        ...

    def search(self, project: str, filter_string: str) -> int:
        """Search the project's runs with ``filter_string``; return the number of hits."""
        ...

    def read_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """Return ``(step, value)`` of every point of ``key`` in the run."""
        ...

    def read_runs(self, project: str) -> list[tuple[int, float | None]]:
        """Return ``(number of params, auc or None)`` for every run of the project."""
        ...


class VerificationError(RuntimeError):
    """A fresh process could not read back what was logged."""


# --- the data, built before any timer starts --------------------------------


def point_values(n: int) -> list[float]:
    """Return the value logged at each step; exact in binary, so checks can be exact."""
    return [step * 0.25 for step in range(n)]


def run_params(run_index: int, n: int) -> dict[str, Any]:
    """Return the params of one created run: a mix of ints, floats and strings."""
    kinds: list[Callable[[int], Any]] = [int, lambda v: v / 8, lambda v: f"value-{v}"]
    return {f"param_{j}": kinds[j % 3](run_index * 100 + j) for j in range(n)}


def auc_values(seed: int, n: int) -> list[float]:
    """Return ``n`` seeded values uniform in [0, 1)."""
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


def expected_hits(spec: Spec) -> int:
    """Return how many of the search runs the filter must match."""
    return sum(v > spec.search_threshold for v in auc_values(spec.seed, spec.search_runs))


# --- one round ---------------------------------------------------------------


def run_round(tool: Tool, spec: Spec, script: Path) -> dict[str, Any]:
    """Run every phase on a fresh store and return the timings."""
    result: dict[str, Any] = {"tool": tool.describe(), "spec": asdict(spec)}
    result["tool"]["python"] = platform.python_version()
    result["tool"]["sqlite"] = sqlite3.sqlite_version
    started = time.perf_counter()
    for project in (PROJECT_WARM_UP, PROJECT_CREATE, PROJECT_LOG, PROJECT_SEARCH):
        tool.prepare_project(project)
    tool.create_runs(PROJECT_WARM_UP, [run_params(0, spec.params_per_run)], [0.5])
    result["warm_up_seconds"] = time.perf_counter() - started
    result["create_runs"] = _phase_create(tool, spec, script)
    result["log_one_at_a_time"] = _phase_log(tool, spec, script, batched=False)
    result["log_in_batches"] = _phase_log(tool, spec, script, batched=True)
    result["search"] = _phase_search(tool, spec)
    result["tool"]["journal_mode"] = journal_mode(tool.db_path())
    return result


def _phase_create(tool: Tool, spec: Spec, script: Path) -> dict[str, Any]:
    """Time creating ``spec.runs`` runs, then check them from a fresh process."""
    params = [run_params(i, spec.params_per_run) for i in range(spec.runs)]
    aucs = auc_values(spec.seed + 1, spec.runs)
    started_at = time.time()
    started = time.perf_counter()
    tool.create_runs(PROJECT_CREATE, params, aucs)
    seconds = time.perf_counter() - started
    reader = _spawn_reader(
        script,
        [
            *("read-runs", "--project", PROJECT_CREATE),
            *("--runs", str(spec.runs), "--params", str(spec.params_per_run)),
        ],
    )
    return _timing(spec.runs, seconds, started_at, reader)


def _phase_log(tool: Tool, spec: Spec, script: Path, *, batched: bool) -> dict[str, Any]:
    """Time logging ``spec.points`` points in one run, then read them from a fresh process."""
    values = point_values(spec.points)
    run_id = tool.start_run(PROJECT_LOG, "batched" if batched else "one-at-a-time")
    started_at = time.time()
    started = time.perf_counter()
    if batched:
        tool.log_in_batches(METRIC_KEY, values, spec.batch_size)
    else:
        tool.log_one_at_a_time(METRIC_KEY, values)
    tool.end_run()
    seconds = time.perf_counter() - started
    reader = _spawn_reader(
        script,
        ["read-history", "--run-id", run_id, "--key", METRIC_KEY, "--points", str(spec.points)],
    )
    return _timing(spec.points, seconds, started_at, reader)


def _phase_search(tool: Tool, spec: Spec) -> dict[str, Any]:
    """Create the search runs (not timed), then time searches three ways.

    * ``cold_seconds``: the first search in the process.
    * ``seconds``: median of ``search_repeats`` calls, each after ``gc.collect()``
      (not timed), so every call starts from the same heap and no call pays for
      garbage left by an earlier one; this is the headline figure.
    * ``back_to_back_seconds``: mean of ``search_repeats`` calls in a row with
      the collector left alone, so garbage-collection pauses caused by the
      search's own allocations are included, amortised.
    """
    aucs = auc_values(spec.seed, spec.search_runs)
    started = time.perf_counter()
    tool.create_runs(PROJECT_SEARCH, [{} for _ in aucs], aucs)
    setup_seconds = time.perf_counter() - started
    expected = expected_hits(spec)

    def timed_search(collect_first: bool) -> float:
        if collect_first:
            gc.collect()
        started = time.perf_counter()
        hits = tool.search(PROJECT_SEARCH, spec.search_filter)
        seconds = time.perf_counter() - started
        if hits != expected:
            raise VerificationError(
                f"search {spec.search_filter!r} over {spec.search_runs} runs returned "
                f"{hits} runs; {expected} have {AUC_KEY} > {spec.search_threshold}"
            )
        return seconds

    cold = timed_search(collect_first=True)
    collected = [timed_search(collect_first=True) for _ in range(spec.search_repeats)]
    back_to_back = [timed_search(collect_first=False) for _ in range(spec.search_repeats)]
    return {
        "runs": spec.search_runs,
        "filter": spec.search_filter,
        "hits": expected,
        "setup_seconds": setup_seconds,
        "cold_seconds": cold,
        "seconds": statistics.median(collected),
        "repeat_seconds": collected,
        "back_to_back_seconds": statistics.mean(back_to_back),
        "back_to_back_repeat_seconds": back_to_back,
    }


def _timing(n: int, seconds: float, started_at: float, reader: dict[str, Any]) -> dict[str, Any]:
    """Bundle a phase's figures."""
    return {
        "n": n,
        "seconds": seconds,
        "per_second": n / seconds,
        "readable_seconds": reader["done_at"] - started_at,
        "reader_import_seconds": reader["import_seconds"],
        "reader_read_seconds": reader["read_seconds"],
    }


def _spawn_reader(script: Path, args: list[str]) -> dict[str, Any]:
    """Run ``script`` in read mode in a fresh process; raise if it did not verify."""
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise VerificationError(
            f"fresh-process reader {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def journal_mode(db: Path) -> str:
    """Return the journal mode stored in ``db`` (only ``wal`` persists, others read ``delete``)."""
    if not db.exists():
        return "unknown (no database file)"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


# --- fresh-process readers -----------------------------------------------------


def verify_history(points: list[tuple[int, float]], n: int) -> None:
    """Raise unless ``points`` are exactly steps ``0..n-1`` with their logged values."""
    if len(points) != n:
        raise VerificationError(f"expected {n} points, read {len(points)}")
    got = sorted(points)
    for (step, value), want in zip(got, point_values(n), strict=True):
        if value != want:
            raise VerificationError(f"step {step}: expected {want}, read {value}")
    if [step for step, _ in got] != list(range(n)):
        raise VerificationError("steps are not exactly 0..n-1")


def verify_runs(runs: list[tuple[int, float | None]], n_runs: int, n_params: int) -> None:
    """Raise unless there are ``n_runs`` runs, each with ``n_params`` params and an auc."""
    if len(runs) != n_runs:
        raise VerificationError(f"expected {n_runs} runs, read {len(runs)}")
    for index, (n, auc) in enumerate(runs):
        if n != n_params or auc is None:
            raise VerificationError(
                f"run #{index}: {n} params (expected {n_params}), {AUC_KEY}={auc!r}"
            )


def _read(
    make_tool: Callable[[Path | None], Tool], args: argparse.Namespace, process_start: float
) -> dict[str, Any]:
    """Import the tool, read back one phase's data, verify it and time each part."""
    tool = make_tool(None)
    imported = time.perf_counter()
    if args.command == "read-history":
        verify_history(tool.read_history(args.run_id, args.key), args.points)
    else:
        verify_runs(tool.read_runs(args.project), args.runs, args.params)
    done = time.perf_counter()
    return {
        "done_at": time.time(),
        "import_seconds": imported - process_start,
        "read_seconds": done - imported,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    round_ = sub.add_parser("round", help="run one timed round on a fresh store in WORKDIR")
    round_.add_argument("--workdir", type=Path, required=True)
    round_.add_argument("--spec", type=Spec.from_json, default=Spec())
    history = sub.add_parser("read-history", help="verify a run's metric history")
    history.add_argument("--run-id", required=True)
    history.add_argument("--key", required=True)
    history.add_argument("--points", type=int, required=True)
    runs = sub.add_parser("read-runs", help="verify a project's runs")
    runs.add_argument("--project", required=True)
    runs.add_argument("--runs", type=int, required=True)
    runs.add_argument("--params", type=int, required=True)
    return parser


def main(make_tool: Callable[[Path | None], Tool], script: str) -> None:
    """Entry point of a worker script.

    Args:
        make_tool: builds the adapter; given the round's work folder it first points
            the tool's environment at a fresh store there; given ``None`` (a reader)
            it uses the environment inherited from the round.
        script: the worker's ``__file__``, re-run in read mode as the fresh process.
    """
    process_start = time.perf_counter()
    args = _parser().parse_args()
    if args.command == "round":
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run_round(make_tool(args.workdir.resolve()), args.spec, Path(script).resolve())
    else:
        result = _read(make_tool, args, process_start)
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
