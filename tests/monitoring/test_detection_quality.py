"""Detection quality at default settings on seeded controls and known shifts (not timed).

* per-column false alarms on no-shift controls at most 5 % at 10^3, 10^5 and 10^6 rows;
* a practically irrelevant shift (mean + 0.02 sd) not flagged at 10^6 rows;
* every meaningful shift detected at 10^4 rows (and above);
* decisions from sketches agree with decisions from exact statistics on the raw values.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.stats import ks_2samp

from loopml.monitoring import (
    MEANINGFUL_SHIFTS,
    SHIFTS,
    DriftReport,
    benjamini_hochberg,
    detect_drift,
    make_frame,
    sketch,
)
from loopml.monitoring._drift_stats import DEFAULT_TOLERANCES

COLUMNS = 25


def _false_alarm_rate(rows: int, seeds: range) -> float:
    alarms = 0
    for seed in seeds:
        ref, cur = make_frame(rows, seed=2 * seed), make_frame(rows, seed=2 * seed + 1)
        alarms += len(detect_drift(ref, cur).drifted_columns)
    return alarms / (COLUMNS * len(seeds))


def test_false_alarms_at_1e3_rows() -> None:
    assert _false_alarm_rate(1_000, range(20)) <= 0.05


def test_false_alarms_at_1e5_rows() -> None:
    assert _false_alarm_rate(100_000, range(3)) <= 0.05


@pytest.mark.slow
def test_no_false_alarm_and_irrelevant_shift_ignored_at_1e6_rows() -> None:
    # The sketch path: both sides sketched from partitions, then merged.
    ref = pa.Table.from_pandas(make_frame(1_000_000, seed=10), preserve_index=False)
    cur = pa.Table.from_pandas(
        make_frame(1_000_000, seed=11, shifts=["irrelevant"]), preserve_index=False
    )
    ref_sketch = sketch(ref)
    parts = [sketch(cur.slice(i, 250_000), ref_sketch.layout) for i in range(0, 1_000_000, 250_000)]
    cur_sketch = parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
    report = detect_drift(ref_sketch, cur_sketch)
    assert report.drifted_columns == ()
    irrelevant = next(c for c in report.checks if c.column == SHIFTS["irrelevant"])
    assert irrelevant.statistic is not None and irrelevant.statistic < 0.02


@pytest.mark.parametrize("shift", MEANINGFUL_SHIFTS)
def test_each_meaningful_shift_is_detected_at_1e4_rows(shift: str) -> None:
    for seed in range(3):
        ref = make_frame(10_000, seed=100 + seed)
        cur = make_frame(10_000, seed=200 + seed, shifts=[shift])
        report = detect_drift(ref, cur)
        assert report.drifted_columns == (SHIFTS[shift],), (shift, seed)


def test_irrelevant_shift_is_not_flagged_at_1e5_rows() -> None:
    ref = make_frame(100_000, seed=7)
    report = detect_drift(ref, make_frame(100_000, seed=8, shifts=["irrelevant"]))
    assert report.drifted_columns == ()


def _exact_drifted(ref: pd.DataFrame, cur: pd.DataFrame, report: DriftReport) -> tuple[str, ...]:
    """The report's decisions with each numeric column's KS from the raw values (scipy)."""
    raw: list[float] = []
    effects: list[tuple[str, float, float]] = []
    tol = DEFAULT_TOLERANCES["ks"]
    for c in report.checks:
        assert c.statistic is not None
        statistic, p = c.statistic, float(c.detail["raw_p_value"])
        if c.check == "drift" and c.method == "ks":
            x, y = ref[c.column].dropna().to_numpy(), cur[c.column].dropna().to_numpy()
            statistic = float(ks_2samp(x, y).statistic)
            n, m = x.size, y.size
            t = statistic - tol
            rate = 2.0 * n * m / (math.sqrt(n) + math.sqrt(m)) ** 2
            p = 1.0 if t <= 0 else min(1.0, 4.0 * math.exp(-rate * t * t))
        raw.append(p)
        effects.append((c.column, statistic, float(c.threshold or 0.0)))
    adjusted = benjamini_hochberg(raw)
    drifted = [
        col for (col, e, thr), a in zip(effects, adjusted, strict=True) if e > thr and a <= 0.05
    ]
    return tuple(dict.fromkeys(drifted))


@pytest.mark.parametrize(
    ("rows", "shifts"),
    [
        (1_000, ()),
        (1_000, tuple(SHIFTS)),
        (10_000, ()),
        (10_000, tuple(SHIFTS)),
        (10_000, ("shape",)),
        (100_000, ("irrelevant", "variance")),
    ],
)
def test_sketch_and_exact_decisions_agree(rows: int, shifts: tuple[str, ...]) -> None:
    ref, cur = make_frame(rows, seed=31), make_frame(rows, seed=32, shifts=shifts)
    report = detect_drift(ref, cur)
    assert report.drifted_columns == _exact_drifted(ref, cur, report)


def test_detection_rates_table_shape() -> None:
    # The benchmark script's table: rows x shift -> detection rate over seeds.
    from importlib import util
    from pathlib import Path

    path = Path(__file__).parents[2] / "bench" / "detection_quality.py"
    spec = util.spec_from_file_location("detection_quality", path)
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rates = module.detection_rates([1_000], seeds=2)
    assert set(rates[1_000]) == {"control", *SHIFTS}
    assert all(0.0 <= r <= 1.0 for r in rates[1_000].values())
    assert np.isclose(rates[1_000]["mean"], 1.0)
