"""Detection quality of Evidently's DataDriftPreset (defaults) next to loopml's, on the same cases.

The cases come from ``loopml.monitoring._synthetic.make_frame`` (the generator the
test-suite's detection-quality tests use): for each size and repetition, one reference
frame and, against it, a no-shift control and one current frame per shift in
``SHIFTS`` (mean, variance, shape, missing rate, a practically irrelevant mean + 0.02 sd,
category mix, unseen category, disappearing category), each written to Parquet. Then:

- loopml (this interpreter): ``detect_drift(reference, current).drifted_columns``;
- Evidently (``--peer-python``, one process for every case):
  ``Report([DataDriftPreset()]).run(...)`` with defaults, the columns its ValueDrift
  metrics call drifted (the rule of ``monitoring.evidently_flagged``).

It prints, per size, the per-column false-alarm rate on the controls and, per shift, the
share of repetitions in which the shifted column was flagged. ``bench/detection_quality.py``
calls :func:`rates` for its Evidently column; this file also runs on its own.

Examples::

    .venv/bin/python bench/detection_evidently.py --vs evidently           # 10^3 and 10^5 rows
    .venv/bin/python bench/detection_evidently.py --vs evidently --million # and 10^6 once
    .venv/bin/python bench/detection_evidently.py --quick                  # loopml only, small
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from monitoring import DEFAULT_PEER_PYTHON, evidently_flagged

#: Repetitions per size (rows -> repetitions).
REPETITIONS = {1_000: 20, 100_000: 3}
MILLION = {1_000_000: 1}
QUICK = {1_000: 3, 10_000: 1}
SEED = 14_000
WORKER_TIMEOUT_SECONDS = 7200

Case = dict[str, Any]


def write_cases(folder: Path, repetitions: dict[int, int]) -> list[Case]:
    """Write every case's reference and current Parquet files; return the manifest."""
    from loopml.monitoring._synthetic import SHIFTS, make_frame

    cases: list[Case] = []
    for rows, reps in repetitions.items():
        for rep in range(reps):
            reference = folder / f"ref-{rows}-{rep}.parquet"
            make_frame(rows, seed=SEED + rep).to_parquet(reference)
            for shift in ("control", *SHIFTS):
                current = folder / f"cur-{rows}-{rep}-{shift}.parquet"
                shifts = () if shift == "control" else (shift,)
                make_frame(rows, seed=SEED + 10_000 + rep, shifts=shifts).to_parquet(current)
                cases.append(
                    {
                        "rows": rows,
                        "rep": rep,
                        "shift": shift,
                        "reference": str(reference),
                        "current": str(current),
                    }
                )
    return cases


def loopml_flagged(cases: list[Case]) -> list[list[str]]:
    """The columns loopml's ``detect_drift`` flags in each case, with its defaults."""
    import pyarrow.parquet as pq

    from loopml.monitoring import detect_drift

    return [
        sorted(
            detect_drift(
                pq.read_table(case["reference"]), pq.read_table(case["current"])
            ).drifted_columns
        )
        for case in cases
    ]


def worker(manifest: Path) -> int:
    """``detection_evidently.py worker MANIFEST``: Evidently's flags for every case, as JSON."""
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    flagged = []
    for case in json.loads(manifest.read_text()):
        snapshot = Report([DataDriftPreset()]).run(
            current_data=pd.read_parquet(case["current"]),
            reference_data=pd.read_parquet(case["reference"]),
        )
        flagged.append(evidently_flagged(snapshot))
    print(json.dumps(flagged))
    return 0


def evidently_flags(cases: list[Case], peer_python: Path, folder: Path) -> list[list[str]]:
    """Run Evidently on every case in one ``peer_python`` process."""
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(cases))
    proc = subprocess.run(
        [str(peer_python), str(Path(__file__).resolve()), "worker", str(manifest)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_SECONDS,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"Evidently failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
    result: list[list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def summarise(cases: list[Case], flagged: list[list[str]]) -> dict[int, dict[str, float]]:
    """Per size: the controls' per-column false-alarm rate and each shift's detection rate."""
    from loopml.monitoring._synthetic import SHIFTS, make_frame

    columns = len(make_frame(1, seed=0).columns)
    out: dict[int, dict[str, float]] = {}
    for rows in sorted({c["rows"] for c in cases}):
        here = [(c, f) for c, f in zip(cases, flagged, strict=True) if c["rows"] == rows]
        controls = [f for c, f in here if c["shift"] == "control"]
        rates = {"control": sum(map(len, controls)) / (columns * len(controls))}
        for shift, column in SHIFTS.items():
            hits = [column in f for c, f in here if c["shift"] == shift]
            rates[shift] = sum(hits) / len(hits)
        out[rows] = rates
    return out


def rates(
    repetitions: dict[int, int], peer_python: Path | None
) -> dict[str, dict[int, dict[str, float]]]:
    """loopml's rates and, given ``peer_python``, Evidently's, on the same cases."""
    folder = Path(tempfile.mkdtemp(prefix="loopml-bench-detection-"))
    try:
        cases = write_cases(folder, repetitions)
        out = {"loopml": summarise(cases, loopml_flagged(cases))}
        if peer_python is not None:
            out["evidently"] = summarise(cases, evidently_flags(cases, peer_python, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def markdown(results: dict[str, dict[int, dict[str, float]]], repetitions: dict[int, int]) -> str:
    """One row per case, one column per tool and size."""
    tools = list(results)
    sizes = sorted(repetitions)
    head = ["Case (rate)"] + [f"{t} {n:,} rows ({repetitions[n]}x)" for n in sizes for t in tools]
    lines = ["| " + " | ".join(head) + " |", "|:---" + "|---:" * (len(head) - 1) + "|"]
    for case in results[tools[0]][sizes[0]]:
        label = "control: per-column false alarms" if case == "control" else f"{case}: flagged"
        cells = [f"{results[t][n][case]:.0%}" for n in sizes for t in tools]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run the cases and print the table."""
    if argv and argv[0] == "worker":
        return worker(Path(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vs", choices=["evidently"], help="also run Evidently on the cases")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON)
    parser.add_argument("--million", action="store_true", help="also 10^6 rows, once")
    parser.add_argument("--quick", action="store_true", help="a few small cases")
    parser.add_argument("--json", type=Path, help="also write the rates to this file")
    args = parser.parse_args(argv)
    repetitions = dict(QUICK if args.quick else REPETITIONS)
    if args.million:
        repetitions |= MILLION
    peer = args.peer_python.absolute() if args.vs else None
    if peer is not None and not peer.exists():
        parser.error(f"{peer} does not exist; `make .venv-peers/.installed` builds it")
    results = rates(repetitions, peer)
    print(markdown(results, repetitions))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
