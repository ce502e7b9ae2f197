"""Detection quality of loopml's drift checks at default settings (seeded, not timed).

Prints a table: rows x shift -> detection rate over R seeds (the share of seeds in
which the shifted column was flagged), plus ``control``: the per-column false-alarm
rate on no-shift controls. Every shift is applied alone, to its own column
(``loopml.monitoring.SHIFTS``), reference and current of the same size.

    .venv/bin/python bench/detection_quality.py --rows 1000 10000 100000 --seeds 10
"""

from __future__ import annotations

import argparse

from loopml.monitoring import SHIFTS, detect_drift, make_frame

__all__ = ["detection_rates", "main"]


def detection_rates(rows: list[int], *, seeds: int) -> dict[int, dict[str, float]]:
    """Rows -> {"control": false-alarm rate per column, shift: detection rate}."""
    out: dict[int, dict[str, float]] = {}
    for n in rows:
        rates: dict[str, float] = {}
        alarms = 0
        for seed in range(seeds):
            ref = make_frame(n, seed=1_000 + seed)
            control = detect_drift(ref, make_frame(n, seed=2_000 + seed))
            alarms += len(control.drifted_columns)
        rates["control"] = alarms / (seeds * len(ref.columns))
        for shift, column in SHIFTS.items():
            hits = 0
            for seed in range(seeds):
                ref = make_frame(n, seed=1_000 + seed)
                cur = make_frame(n, seed=3_000 + seed, shifts=[shift])
                hits += column in detect_drift(ref, cur).drifted_columns
            rates[shift] = hits / seeds
        out[n] = rates
    return out


def main() -> None:
    """Print the table (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    rates = detection_rates(args.rows, seeds=args.seeds)
    names = ["control", *SHIFTS]
    print(f"loopml drift detection rate over {args.seeds} seeds (control: false alarms/column)")
    print("| rows | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for n, row in rates.items():
        print(f"| {n:,} | " + " | ".join(f"{row[k]:.2f}" for k in names) + " |")


if __name__ == "__main__":
    main()
