"""Benchmark loopml's drift report end to end, side by side with Evidently's DataDriftPreset.

The workload (issue 14): 20 numeric + 5 categorical columns, reference and current of
the same size, 5 known shifted columns in the current data (a mean shift, a variance
change, a mean and variance change, a categorical mix change and a new category; all
five are changes Evidently's defaults can see, so both tools can flag the same columns: a
change in the missing rate, which Evidently ignores, is in the detection-quality table
of ``detection_evidently.py`` instead), at 100,000
and 1,000,000 rows, generated with a seeded NumPy generator and written to Parquet
before any timer starts.

Every phase of every round runs in a fresh subprocess, so its peak memory
(``VmHWM``, the whole process) is its own:

- loopml: read both Parquet files into sketches (``loopml.monitoring.sketch`` of a
  ``pyarrow.parquet.ParquetFile``: one column at a time, batch by batch), decide
  (``detect_drift``), and write the HTML report (``render_html`` of the checks as one
  ``MonitorResult``); also the sketch state's size and the report's size and time;
- loopml multivariate: ``domain_classifier_drift`` on both files (read whole, sampled to
  20,000 rows a side);
- evidently (``--vs evidently``, in ``--peer-python``): ``pd.read_parquet`` both files,
  ``Report([DataDriftPreset()]).run(...)`` with defaults, ``save_html``.

The table shows medians over the rounds, the speed and memory ratios against the
targets (>= 10x faster at 100k rows, >= 20x at 1M, peak <= 1/3), and the columns each
tool flagged, which must be exactly the 5 shifted ones, as a Markdown table ready for
bench/README.md. Without ``--vs evidently`` the Evidently column holds the issue's figures,
marked "(issue)".

Examples::

    make bench
    .venv/bin/python bench/monitoring.py --quick                 # 20,000 rows, loopml only
    .venv/bin/python bench/monitoring.py --vs evidently --json out.json
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
DEFAULT_PEER_PYTHON = BENCH.parent / ".venv-peers" / "bin" / "python"
SEED = 20_261_207
NUMERIC, CATEGORICAL = 20, 5
#: The shifted columns and what changes in the current data.
SHIFTED = {
    "num_00": "mean + 0.5 sd",
    "num_01": "sd x 2, same mean",
    "num_02": "mean - 0.3 sd, sd x 1.2",
    "cat_0": "shares 50/30/20 % -> 30/40/30 %",
    "cat_1": "10 % of rows in a category the reference never had",
}
#: Evidently's targets from the issue: (speed ratio, peak ratio) per size; its figures there.
TARGETS = {100_000: 10.0, 1_000_000: 20.0}
ISSUE_EVIDENTLY = {100_000: (5.9, 452.0), 1_000_000: (95.8, 1_919.0)}
PEAK_RATIO_TARGET = 3.0
WORKER_TIMEOUT_SECONDS = 1800

Round = dict[str, Any]


# --- data ----------------------------------------------------------------------------


def make_files(folder: Path, rows: int) -> dict[str, Any]:
    """Write the seeded reference and the shifted current data; return their facts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(rng: np.random.Generator, shifted: bool) -> pa.Table:
        columns: dict[str, pa.Array] = {}
        for i in range(NUMERIC):
            mean, sd = i * 3.0, 1.0 + i % 4
            z = rng.standard_normal(rows)
            if shifted and i == 0:
                z += 0.5
            if shifted and i == 1:
                z *= 2.0
            if shifted and i == 2:
                z = 1.2 * z - 0.3
            columns[f"num_{i:02d}"] = pa.array(mean + sd * z)
        mixes = [
            (["red", "green", "blue"], [0.5, 0.3, 0.2], [0.3, 0.4, 0.3]),
            (["a", "b", "c", "d", "new"], [0.4, 0.3, 0.2, 0.1, 0.0], [0.36, 0.27, 0.18, 0.09, 0.1]),
            (["north", "south", "east", "west"], [0.4, 0.3, 0.2, 0.1], None),
            ([f"k{j:02d}" for j in range(50)], list(1.0 / np.arange(1, 51)), None),
            (["yes", "no"], [0.7, 0.3], None),
        ]
        for i, (labels, weights, after) in enumerate(mixes):
            p = np.asarray(after if shifted and after is not None else weights, dtype=float)
            codes = rng.choice(len(labels), size=rows, p=p / p.sum()).astype(np.int32)
            columns[f"cat_{i}"] = pa.DictionaryArray.from_arrays(codes, labels).cast(pa.string())
        return pa.table(columns)

    paths = {}
    for side, seed, shifted in (("reference", SEED, False), ("current", SEED + 1, True)):
        path = folder / f"{side}.parquet"
        pq.write_table(table(np.random.default_rng(seed), shifted), path)
        paths[side] = str(path)
    return {"rows": rows, "columns": NUMERIC + CATEGORICAL, **paths}


# --- the workers (one phase, in a fresh process) ---------------------------------------


def _memory() -> dict[str, int]:
    """This process's current and peak resident memory, in bytes (Linux).

    Taken once more before the timed work (``rss`` then is what the imports hold) and
    kept as ``imported``, so the table can say how much of a peak is the imports'.
    """
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return {"rss": found.get("VmRSS", 0), "peak": found.get("VmHWM", 0)}


def _phase_loopml(files: dict[str, Any], out: Path) -> dict[str, Any]:
    began = time.perf_counter()
    # detect_drift needs scipy.special (its tail probabilities, not scipy.stats) and
    # render_html jinja2, both imported on first use; they are loaded here, before the
    # timer, as `import evidently` loads its libraries before Evidently's: both timers
    # then measure the work of a process that has its libraries, and the import time of
    # each is reported apart.
    import jinja2  # noqa: F401
    import pyarrow.parquet as pq
    import scipy.special  # noqa: F401

    from loopml.monitoring import MonitorResult, detect_drift, render_html, sketch, worst_status

    imports = time.perf_counter() - began

    imported = _memory()["rss"]
    started = time.perf_counter()
    reference = sketch(pq.ParquetFile(files["reference"]))
    current = sketch(pq.ParquetFile(files["current"]), reference.layout)
    report = detect_drift(reference, current)
    decided = time.perf_counter()
    checks = (*report.checks, report.dataset)
    result = MonitorResult(
        monitor="bench",
        status=worst_status([c.status for c in checks]),
        started_at=int(time.time() * 1000),
        reference=f"file:{files['reference']}",
        current=f"file:{files['current']}",
        reference_rows=report.reference_rows,
        current_rows=report.current_rows,
        checks=checks,
    )
    path = out / "loopml-report.html"
    path.write_text(render_html(result))
    finished = time.perf_counter()
    return {
        "seconds": finished - started,
        "report_seconds": finished - decided,
        "import_seconds": imports,
        "report_bytes": path.stat().st_size,
        "sketch_bytes": len(reference.to_bytes()) + len(current.to_bytes()),
        "flagged": sorted(report.drifted_columns),
        "imported": imported,
        **_memory(),
    }


def _phase_multivariate(files: dict[str, Any], out: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from loopml.monitoring import domain_classifier_drift

    imported = _memory()["rss"]
    started = time.perf_counter()
    result = domain_classifier_drift(
        pq.read_table(files["reference"]), pq.read_table(files["current"])
    )
    return {
        "seconds": time.perf_counter() - started,
        "status": result.status,
        "auc": result.statistic,
        "interval": result.interval,
        "imported": imported,
        **_memory(),
    }


#: How Evidently 0.7's default tests decide: p-value tests flag below their threshold
#: (KS at or below), distances at or above (``legacy/calculations/stattests``).
EVIDENTLY_RULES = {
    "K-S p_value": lambda v, t: v <= t,
    "chi-square p_value": lambda v, t: v < t,
    "Z-test p_value": lambda v, t: v < t,
    "Wasserstein distance (normed)": lambda v, t: v >= t,
    "Jensen-Shannon distance": lambda v, t: v >= t,
}


def evidently_flagged(snapshot: Any) -> list[str]:
    """The columns an Evidently 0.7 snapshot's ValueDrift metrics call drifted."""
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        rule = EVIDENTLY_RULES.get(config["method"])
        if rule is None:
            raise SystemExit(f"no rule for Evidently's method {config['method']!r}")
        if rule(metric["value"], config["threshold"]):
            flagged.append(config["column"])
    return sorted(flagged)


def _phase_evidently(files: dict[str, Any], out: Path) -> dict[str, Any]:
    began = time.perf_counter()
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    imports = time.perf_counter() - began

    imported = _memory()["rss"]
    started = time.perf_counter()
    reference = pd.read_parquet(files["reference"])
    current = pd.read_parquet(files["current"])
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    path = out / "evidently-report.html"
    snapshot.save_html(str(path))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "version": evidently.__version__,
        "import_seconds": imports,
        "report_bytes": path.stat().st_size,
        "flagged": evidently_flagged(snapshot),
        "imported": imported,
        **_memory(),
    }


PHASES = {
    "loopml": _phase_loopml,
    "multivariate": _phase_multivariate,
    "evidently": _phase_evidently,
}


def worker(argv: list[str]) -> int:
    """``monitoring.py worker PHASE FILES_JSON OUT_DIR``: run one phase, print JSON."""
    phase, files, out = argv[0], json.loads(argv[1]), Path(argv[2])
    print(json.dumps(PHASES[phase](files, out)))
    return 0


def run_phase(phase: str, python: Path, files: dict[str, Any], keep: bool) -> dict[str, Any]:
    """Run one phase in a fresh interpreter in a fresh temp folder."""
    workdir = Path(tempfile.mkdtemp(prefix=f"loopml-bench-monitoring-{phase}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = str(workdir / "loopml-home")
    argv = [str(python), str(Path(__file__).resolve()), "worker", phase, json.dumps(files)]
    try:
        proc = subprocess.run(
            [*argv, str(workdir)],
            cwd=workdir,
            env=env,
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
            f"\n{phase} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
            f"{proc.stderr[-6000:]}"
        )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- summary ---------------------------------------------------------------------------


def median(rounds: list[Round], phase: str, field: str) -> float | None:
    """The median of one figure over the rounds that ran the phase."""
    values = [r[phase][field] for r in rounds if phase in r]
    return statistics.median(values) if values else None


def summarise(rows: int, rounds: list[Round]) -> dict[str, Any]:
    """Medians, ratios, targets and the flagged columns of one size."""
    ours, peak = median(rounds, "loopml", "seconds"), median(rounds, "loopml", "peak")
    measured = any("evidently" in r for r in rounds)
    if measured:
        theirs, their_peak = (
            median(rounds, "evidently", "seconds"),
            median(rounds, "evidently", "peak"),
        )
    else:
        theirs, their_peak = ISSUE_EVIDENTLY.get(rows, (None, None))
        their_peak = None if their_peak is None else their_peak * 2**20
    speed = theirs / ours if ours and theirs else None
    memory = their_peak / peak if peak and their_peak else None
    target = TARGETS.get(rows)
    return {
        "rows": rows,
        "loopml_seconds": ours,
        "loopml_peak": peak,
        "evidently_seconds": theirs,
        "evidently_peak": their_peak,
        "evidently_measured": measured,
        "speed_ratio": speed,
        "peak_ratio": memory,
        "speed_target": target,
        "speed_met": None if speed is None or target is None else speed >= target,
        "peak_met": None if memory is None else memory >= PEAK_RATIO_TARGET,
        "loopml_flagged": rounds[0]["loopml"]["flagged"],
        "evidently_flagged": rounds[0].get("evidently", {}).get("flagged"),
        "multivariate": rounds[0].get("multivariate"),
        "sketch_bytes": median(rounds, "loopml", "sketch_bytes"),
        "loopml_imported": median(rounds, "loopml", "imported"),
        "loopml_import_seconds": median(rounds, "loopml", "import_seconds"),
        "evidently_import_seconds": median(rounds, "evidently", "import_seconds"),
        "evidently_imported": median(rounds, "evidently", "imported"),
        "report_bytes": median(rounds, "loopml", "report_bytes"),
        "report_seconds": median(rounds, "loopml", "report_seconds"),
    }


def fmt(value: float | None, unit: str) -> str:
    """A figure with its unit, or a dash."""
    if value is None:
        return "—"
    if unit == "MiB":
        return f"{value / 2**20:,.0f} MiB"
    if unit == "x":
        return f"{value:.1f}x"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def markdown(summaries: list[dict[str, Any]], rounds: int) -> str:
    """The results table and the facts under it, in Markdown."""
    expected = sorted(SHIFTED)
    head = [
        "Work",
        f"loopml ({rounds} round{'s' * (rounds > 1)})",
        "Evidently 0.7",
        "Ratio",
        "Target",
        "Met?",
    ]
    lines = ["| " + " | ".join(head) + " |", "|:---|---:|---:|---:|---:|:---:|"]
    met = {None: "—", True: "yes", False: "NO"}
    for s in summaries:
        ref = "" if s["evidently_measured"] else " (issue)"
        n = f"{s['rows']:,} rows"
        target = f"≥ {s['speed_target']:g}x" if s["speed_target"] else "—"
        lines.append(
            f"| {n}: drift report end to end | {fmt(s['loopml_seconds'], 's')} | "
            f"{fmt(s['evidently_seconds'], 's')}{ref} | {fmt(s['speed_ratio'], 'x')} | "
            f"{target} | {met[s['speed_met']]} |"
        )
        lines.append(
            f"| {n}: peak memory | {fmt(s['loopml_peak'], 'MiB')} | "
            f"{fmt(s['evidently_peak'], 'MiB')}{ref} | {fmt(s['peak_ratio'], 'x')} | ≥ 3x | "
            f"{met[s['peak_met']]} |"
        )
        for tool in ("loopml", "evidently"):
            got = s[f"{tool}_flagged"]
            if got is not None:
                verdict = (
                    "exactly the 5 shifted" if got == expected else f"{got}, NOT the 5 shifted"
                )
                lines.append(
                    f"| {n}: columns {tool} flagged | {verdict} | | | | {met[got == expected]} |"
                )
    lines.append("")
    for s in summaries:
        mv = s["multivariate"]
        lines.append(
            f"- {s['rows']:,} rows: sketch state {s['sketch_bytes'] / 1e6:.2f} MB (both sides); "
            f"HTML report {s['report_bytes'] / 1e6:.2f} MB in "
            f"{fmt(s['report_seconds'], 's')}; resident after the imports: loopml "
            f"{fmt(s['loopml_imported'], 'MiB')}, Evidently {fmt(s['evidently_imported'], 'MiB')}; "
            f"imports (not timed above): loopml {fmt(s['loopml_import_seconds'], 's')}, "
            f"Evidently {fmt(s['evidently_import_seconds'], 's')}"
            + (
                f"; domain classifier AUC {mv['auc']:.3f} ({mv['status']}) in "
                f"{fmt(mv['seconds'], 's')}, peak {fmt(mv['peak'], 'MiB')}"
                if mv
                else ""
            )
        )
    lines.append(f"- shifted columns: {', '.join(f'{c} ({w})' for c, w in SHIFTED.items())}")
    lines.append(
        f"- {datetime.now(UTC).isoformat(timespec='seconds')} · {cpu()} · "
        f"{len(os.sched_getaffinity(0))} usable cores · {platform.platform()} · "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return "\n".join(lines)


def cpu() -> str:
    """The CPU's model name."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


# --- command line ------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--vs", choices=["evidently"], help="also run Evidently's rounds")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON)
    parser.add_argument("--rows", type=int, nargs="+", help="sizes (default 100000 1000000)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per size (default 1)")
    parser.add_argument("--quick", action="store_true", help="one round at 20,000 rows")
    parser.add_argument("--no-multivariate", action="store_true", help="skip that phase")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp folders")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = [20_000] if args.quick else [100_000, 1_000_000]
    if args.rounds < 1 or any(r < 1_000 for r in args.rows):
        parser.error("--rounds must be >= 1 and every --rows >= 1000")
    if args.vs and not args.peer_python.exists():
        parser.error(f"{args.peer_python} does not exist; `make .venv-peers/.installed` builds it")
    return args


def main(argv: list[str]) -> int:
    """Run the benchmark and print (and optionally save) the results."""
    if argv and argv[0] == "worker":
        return worker(argv[1:])
    args = parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="loopml-bench-monitoring-data-"))
    summaries, everything = [], {}
    try:
        for rows in args.rows:
            files = make_files(data_dir, rows)
            rounds: list[Round] = []
            for index in range(args.rounds):
                result: Round = {
                    "loopml": run_phase("loopml", Path(sys.executable), files, args.keep_tmp)
                }
                if not args.no_multivariate:
                    result["multivariate"] = run_phase(
                        "multivariate", Path(sys.executable), files, args.keep_tmp
                    )
                if args.vs:
                    result["evidently"] = run_phase(
                        "evidently", args.peer_python.absolute(), files, args.keep_tmp
                    )
                rounds.append(result)
                print(
                    f"{rows:,} rows, round {index + 1}/{args.rounds}: "
                    + ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in result.items()),
                    file=sys.stderr,
                )
            summaries.append(summarise(rows, rounds))
            everything[rows] = rounds
    finally:
        if not args.keep_tmp:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(markdown(summaries, args.rounds))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summaries, "rounds": everything}, indent=2))
    missed = [s for s in summaries if False in (s["speed_met"], s["peak_met"])]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
