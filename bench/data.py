"""Benchmark loopml's data layer: register, profile, validate and hash a large table.

The workload: 1,000,000 rows x 25 columns (15 float, 5 integer, 5 categorical
string columns), generated with a seeded NumPy generator and written to Parquet
before any timer starts, plus a "delivery": the same rows with planted problems
(1,000 values out of range in one column, 500 unknown categories in another).

Every phase of every round runs in a fresh subprocess, so its peak memory
(``VmHWM``) is its own:

- register: ``loopml.data.register(name, parquet)`` on a fresh ``LOOPML_HOME``:
  hashing, the Parquet snapshot, the profile, storing, and inferring the schema;
- validate: ``loopml.data.validate(delivery, against="bench@latest")`` against
  that inferred schema (type, nullability, ranges, allowed values of 25 columns);
  the failing counts must be exactly the planted ones;
- hash: ``ContentHasher`` over ``open_source(parquet).batches()`` (reading and
  hashing), then over the same batches already in memory (hashing alone), in
  MB of Arrow data per second; both digests must equal the registered one;
- with ``--vs pandera``: plain ``pandera`` on the whole frame, the same checks,
  ``schema.validate(frame, lazy=True)`` (the Parquet read is timed apart).

Examples::

    .venv/bin/python bench/data.py                      # 3 rounds, 1,000,000 rows
    .venv/bin/python bench/data.py --rows 20000 --rounds 1
    .venv/bin/python bench/data.py --vs pandera --markdown --json bench/results/data.json
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

BENCH = Path(__file__).resolve().parent
SEED = 20_240_601
FLOATS, INTS, CATEGORIES = 15, 5, (4, 12, 50, 300, 2_000)
OUT_OF_RANGE, UNKNOWN_CATEGORY = 1_000, 500
NAME, PROJECT = "bench", "bench"
WORKER_TIMEOUT_SECONDS = 1800
TABLE_WIDTH = 120

Round = dict[str, Any]


# --- data ------------------------------------------------------------------------


def make_files(folder: Path, rows: int) -> dict[str, Any]:
    """Write the seeded table and the delivery with planted problems; return their facts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    columns: dict[str, pa.Array] = {}
    for i in range(FLOATS):
        values = rng.normal(loc=i * 10.0, scale=1.0 + i, size=rows)
        mask = rng.random(rows) < 0.01 if i % 5 == 0 else None  # some columns miss 1 %
        columns[f"num_{i:02d}"] = pa.array(values, mask=mask)
    for i in range(INTS):
        columns[f"int_{i}"] = pa.array(rng.integers(0, 10 ** (i + 2), size=rows))
    for i, size in enumerate(CATEGORIES):
        labels = np.array([f"c{i}_{j:04d}" for j in range(size)])
        codes = pa.array(rng.integers(0, size, size=rows).astype(np.int32))
        columns[f"cat_{i}"] = pa.DictionaryArray.from_arrays(codes, labels).cast(pa.string())
    table = pa.table(columns)
    data = folder / "data.parquet"
    pq.write_table(table, data)

    broken = rng.choice(rows, OUT_OF_RANGE + UNKNOWN_CATEGORY, replace=False)
    high, unknown = np.sort(broken[:OUT_OF_RANGE]), np.sort(broken[OUT_OF_RANGE:])
    num = table["num_01"].to_numpy().copy()
    num[high] = 1e9
    cat = np.asarray(table["cat_0"].to_numpy(zero_copy_only=False), dtype=object)
    cat[unknown] = "unheard-of"
    delivery = table.set_column(1, "num_01", pa.array(num)).set_column(
        FLOATS + INTS, "cat_0", pa.array(cat, pa.string())
    )
    delivery_path = folder / "delivery.parquet"
    pq.write_table(delivery, delivery_path)
    return {
        "rows": rows,
        "columns": table.num_columns,
        "arrow_bytes": table.nbytes,
        "parquet_bytes": data.stat().st_size,
        "data": str(data),
        "delivery": str(delivery_path),
    }


# --- the worker (one phase, in a fresh process) ------------------------------------


def _memory(before: dict[str, int] | None = None) -> dict[str, int]:
    """This process's current and peak resident memory, in bytes (Linux).

    With ``before`` (taken after the imports, before the timed call), also the
    peak's rise over the memory the process held then.
    """
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    memory = {"rss": found.get("VmRSS", 0), "peak": found.get("VmHWM", 0)}
    if before is not None:
        memory["memory_before"] = before["rss"]
        memory["rise"] = max(0, memory["peak"] - before["rss"])
    return memory


def _phase_register(files: dict[str, Any]) -> dict[str, Any]:
    import loopml.data

    before = _memory()
    started = time.perf_counter()
    version = loopml.data.register(NAME, files["data"], project=PROJECT)
    seconds = time.perf_counter() - started
    if version.row_count != files["rows"] or version.column_count != files["columns"]:
        raise SystemExit(f"registered {version.row_count} x {version.column_count}: wrong shape")
    return {
        "seconds": seconds,
        "content_hash": version.content_hash,
        "snapshot_bytes": version.size_bytes,
        **_memory(before),
    }


def _phase_validate(files: dict[str, Any]) -> dict[str, Any]:
    import loopml.data

    before = _memory()
    started = time.perf_counter()
    report = loopml.data.validate(files["delivery"], against=f"{NAME}@latest", project=PROJECT)
    seconds = time.perf_counter() - started
    failing = {c.name: c.failing_count for c in report.checks if not c.passed}
    expected = {"num_01": OUT_OF_RANGE, "cat_0": UNKNOWN_CATEGORY}
    got = {name.split(":")[0]: count for name, count in failing.items()}
    if got != expected:
        raise SystemExit(f"validation found {failing}; planted {expected}")
    return {
        "seconds": seconds,
        "checks": len(report.checks),
        **_memory(before),
    }


def _phase_hash(files: dict[str, Any], expected: str) -> dict[str, Any]:
    from loopml.data._hashing import ContentHasher
    from loopml.data._sources import open_source

    source = open_source(files["data"])
    started = time.perf_counter()
    hasher = ContentHasher(source.schema)
    streamed_bytes = 0
    for batch in source.batches():
        streamed_bytes += batch.nbytes
        hasher.update(batch)
    streamed = hasher.hexdigest()
    streaming_seconds = time.perf_counter() - started

    batches = list(source.batches())
    started = time.perf_counter()
    hasher = ContentHasher(source.schema)
    for batch in batches:
        hasher.update(batch)
    in_memory = hasher.hexdigest()
    memory_seconds = time.perf_counter() - started
    if not streamed == in_memory == expected:
        raise SystemExit(f"hash mismatch: {streamed} / {in_memory} / registered {expected}")
    megabytes = streamed_bytes / 1e6
    return {
        "arrow_bytes": streamed_bytes,
        "streaming_seconds": streaming_seconds,
        "streaming_mb_per_second": megabytes / streaming_seconds,
        "memory_seconds": memory_seconds,
        "memory_mb_per_second": megabytes / memory_seconds,
    }


def _phase_pandera(files: dict[str, Any]) -> dict[str, Any]:
    """The same checks as loopml's inferred schema, with plain pandera on the whole frame."""
    import pandas as pd
    import pandera.pandas as pa_pandas

    import loopml.data

    _, schema, _ = loopml.data.get_schema(NAME, project=PROJECT)
    columns = {}
    for spec in schema.column_schemas:
        checks = []
        if spec.min is not None or spec.max is not None:
            checks.append(pa_pandas.Check.in_range(spec.min, spec.max))
        if spec.allowed is not None:
            checks.append(pa_pandas.Check.isin(list(spec.allowed)))
        # No dtype rule: what pandas reads from Parquet varies; the value checks are the cost.
        columns[spec.name] = pa_pandas.Column(None, checks=checks, nullable=spec.nullable)
    plain = pa_pandas.DataFrameSchema(columns)
    before = _memory()
    started = time.perf_counter()
    frame = pd.read_parquet(files["delivery"])
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    try:
        plain.validate(frame, lazy=True)
        failures = 0
    except pa_pandas.errors.SchemaErrors as exc:
        failures = len(exc.failure_cases)
    seconds = time.perf_counter() - started
    if failures != OUT_OF_RANGE + UNKNOWN_CATEGORY:
        raise SystemExit(f"pandera found {failures} failure cases")
    return {
        "seconds": seconds,
        "read_seconds": read_seconds,
        **_memory(before),
    }


def worker(argv: list[str]) -> int:
    """``data.py worker PHASE FILES_JSON [EXPECTED_HASH]``: run one phase, print JSON."""
    phase, files = argv[0], json.loads(argv[1])
    if phase == "register":
        result = _phase_register(files)
    elif phase == "validate":
        result = _phase_validate(files)
    elif phase == "hash":
        result = _phase_hash(files, argv[2])
    elif phase == "pandera":
        result = _phase_pandera(files)
    else:
        raise SystemExit(f"unknown phase {phase!r}")
    print(json.dumps(result))
    return 0


# --- rounds ----------------------------------------------------------------------------


def run_phase(phase: str, files: dict[str, Any], home: Path, *extra: str) -> dict[str, Any]:
    """Run one phase in a fresh interpreter with ``LOOPML_HOME=home``, defaults otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = str(home)
    argv = [sys.executable, str(Path(__file__).resolve()), "worker", phase, json.dumps(files)]
    proc = subprocess.run(
        [*argv, *extra],
        cwd=home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_SECONDS,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"\n{phase} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
            f"{proc.stderr[-6000:]}"
        )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_round(files: dict[str, Any], peer: str | None, keep: bool) -> Round:
    """Register on a fresh home, then validate, hash (and the peer) in fresh processes."""
    workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-data-"))
    home = workdir / "loopml-home"
    try:
        result: Round = {"register": run_phase("register", files, home)}
        result["validate"] = run_phase("validate", files, home)
        result["hash"] = run_phase("hash", files, home, result["register"]["content_hash"])
        if peer == "pandera":
            result["pandera"] = run_phase("pandera", files, home)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result["workdir"] = str(workdir) if keep else None
    return result


# --- summary -----------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One row of the table: where its figure is, its unit, and its target (if any)."""

    label: str
    phase: str
    field: str
    unit: str
    target: float | None = None
    higher_is_better: bool = False


def measures(rows: int, peer: str | None) -> list[Measure]:
    """The table's rows."""
    full = rows == 1_000_000
    shown = [
        Measure("register: hash + snapshot + profile + store", "register", "seconds", "s",
                5.0 if full else None),
        Measure("register: peak memory (whole process)", "register", "peak", "MiB"),
        Measure("validate the delivery against the inferred schema", "validate", "seconds", "s",
                3.0 if full else None),
        Measure("validate: peak memory (whole process)", "validate", "peak", "MiB"),
        Measure("hash while reading the Parquet file", "hash", "streaming_mb_per_second",
                "MB/s", higher_is_better=True),
        Measure("hash batches already in memory", "hash", "memory_mb_per_second", "MB/s",
                higher_is_better=True),
    ]  # fmt: skip
    if peer == "pandera":
        shown += [
            Measure("pandera: validate(frame, lazy=True), same checks", "pandera", "seconds", "s"),
            Measure("pandera: read the Parquet file into pandas", "pandera", "read_seconds", "s"),
            Measure("pandera: peak memory (whole process)", "pandera", "peak", "MiB"),
        ]
    return shown


def summarise(rounds: list[Round], rows: int, peer: str | None) -> list[dict[str, Any]]:
    """Medians over the rounds, with the target and whether the median meets it."""
    summary = []
    for m in measures(rows, peer):
        values = [r[m.phase][m.field] for r in rounds]
        median = statistics.median(values)
        rise = statistics.median(r[m.phase]["rise"] for r in rounds) if m.unit == "MiB" else None
        met = None
        if m.target is not None:
            met = median >= m.target if m.higher_is_better else median <= m.target
        summary.append(
            {
                "label": m.label,
                "unit": m.unit,
                "median": median,
                "rise": rise,
                "per_round": values,
                "target": m.target,
                "met": met,
            }
        )
    return summary


def fmt(value: float, unit: str) -> str:
    """A figure with its unit."""
    if unit == "MiB":
        return f"{value / 2**20:,.0f} MiB"
    if unit == "MB/s":
        return f"{value:,.0f} MB/s"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def cells(row: dict[str, Any]) -> list[str]:
    """Label, median, target, met?"""
    target = "—" if row["target"] is None else f"≤ {fmt(row['target'], row['unit'])}"
    shown = fmt(row["median"], row["unit"])
    if row.get("rise") is not None:
        shown += f" (+{fmt(row['rise'], row['unit'])} over imports)"
    return [
        row["label"],
        shown,
        target,
        {None: "—", True: "yes", False: "NO"}[row["met"]],
    ]


def machine_facts(files: dict[str, Any]) -> dict[str, Any]:
    """CPU, cores, platform, versions and the data's sizes."""
    import numpy
    import pandas
    import pyarrow

    import loopml

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "usable_cores": cores,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "loopml": loopml.__version__,
            "pyarrow": pyarrow.__version__,
            "pandas": pandas.__version__,
            "numpy": numpy.__version__,
        },
        "load_average_1min": os.getloadavg()[0],
        "data": {k: files[k] for k in ("rows", "columns", "arrow_bytes", "parquet_bytes")},
    }


def facts_lines(facts: dict[str, Any]) -> list[str]:
    """Machine and data facts, one per line."""
    data, v = facts["data"], facts["versions"]
    return [
        f"{facts['date']} · {facts['cpu']} · {facts['usable_cores']} usable cores · "
        f"{facts['platform']} · load average {facts['load_average_1min']:.1f} at end",
        f"loopml {v['loopml']} · Python {facts['python']} · pyarrow {v['pyarrow']} · "
        f"pandas {v['pandas']} · numpy {v['numpy']}",
        f"data: {data['rows']:,} rows x {data['columns']} columns "
        f"({FLOATS} float with 1 % missing in 3, {INTS} int, {len(CATEGORIES)} categorical "
        f"of {'/'.join(map(str, CATEGORIES))} values); {data['arrow_bytes'] / 1e6:,.0f} MB "
        f"in Arrow, {data['parquet_bytes'] / 1e6:,.0f} MB of Parquet",
    ]


def markdown(rows: list[dict[str, Any]], facts: dict[str, Any], rounds: int) -> str:
    """The table and facts in Markdown, for bench/README.md."""
    of = f"median of {rounds}" if rounds > 1 else "1 round"
    lines = [f"| Workload | loopml ({of}) | Target | Met? |", "|:---|---:|---:|---:|"]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    lines.append("")
    lines += [f"- {line}" for line in facts_lines(facts)]
    return "\n".join(lines)


# --- command line ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--vs", choices=["pandera"], help="also time plain pandera")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep-tmp", action="store_true", help="keep each round's temp folder")
    args = parser.parse_args(argv)
    if args.rows < 1_000 or args.rounds < 1:
        parser.error("--rows must be at least 1,000 and --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Generate the data, run the rounds, print (and optionally save) the medians."""
    from rich.console import Console
    from rich.table import Table

    args = parse_args(argv)
    console = Console(stderr=True)
    data_dir = Path(tempfile.mkdtemp(prefix="loopml-bench-data-files-"))
    try:
        started = time.perf_counter()
        files = make_files(data_dir, args.rows)
        console.print(
            f"data: {args.rows:,} rows x {files['columns']} columns, "
            f"{files['parquet_bytes'] / 1e6:,.0f} MB of Parquet "
            f"(written in {time.perf_counter() - started:.1f} s, not timed)",
            highlight=False,
        )
        rounds = []
        for index in range(args.rounds):
            started = time.perf_counter()
            rounds.append(run_round(files, args.vs, args.keep_tmp))
            console.print(
                f"round {index + 1}/{args.rounds} · {time.perf_counter() - started:5.1f} s",
                highlight=False,
            )
        facts = machine_facts(files)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    summary = summarise(rounds, args.rows, args.vs)
    out = Console()
    if not out.is_terminal:
        out = Console(width=TABLE_WIDTH)
    of = f"median of {args.rounds}" if args.rounds > 1 else "1 round"
    table = Table(title="loopml data benchmark", title_justify="left")
    for index, header in enumerate(["Workload", f"loopml ({of})", "Target", "Met?"]):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in summary:
        table.add_row(*cells(row))
    out.print(table)
    for line in facts_lines(facts):
        out.print(line, highlight=False)
    if args.markdown:
        print()
        print(markdown(summary, facts, args.rounds))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": facts, "rounds": rounds, "summary": summary}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    missed = [row["label"] for row in summary if row["met"] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(worker(sys.argv[2:]))
    sys.exit(main())
