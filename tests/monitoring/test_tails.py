"""Tail probabilities equal scipy.stats' bit for bit; the drift path stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from loopml.monitoring import make_frame
from loopml.monitoring._tails import beta_ppf, binom_sf, ncx2_sf, norm_sf

RNG = np.random.default_rng(20_261_207)


def test_norm_sf_equals_scipy_stats() -> None:
    xs = [*RNG.normal(0.0, 10.0, 2_000), 0.0, -0.0, 40.0, -40.0, np.inf, -np.inf, 1e-300]
    for x in xs:
        assert norm_sf(x) == stats.norm.sf(x)


def test_beta_ppf_equals_scipy_stats() -> None:
    # As unseen_share calls it: Clopper-Pearson bounds of x successes in m.
    for m in [1, 2, 30, 31, *RNG.integers(30, 10**7, 300)]:
        for x in {1, int(m), int(RNG.integers(1, m + 1))}:
            assert beta_ppf(0.025, x, m - x + 1) == stats.beta.ppf(0.025, x, m - x + 1)
            if x < m:
                assert beta_ppf(0.975, x + 1, m - x) == stats.beta.ppf(0.975, x + 1, m - x)


@pytest.mark.parametrize("p", [0.0, 1e-5, 0.01, 0.05, 0.5, 1.0, 1.5])
def test_binom_sf_equals_scipy_stats(p: float) -> None:
    for n in [1, 30, 1_000, *RNG.integers(30, 10**7, 200)]:
        for k in {0, int(n) - 1, int(RNG.integers(0, n))}:
            np.testing.assert_array_equal(binom_sf(k, int(n), p), stats.binom.sf(k, n, p))


@pytest.mark.parametrize("nc", [0.0, 1e-12, 0.5, 40.0, 4_000.0, 1e6])
def test_ncx2_sf_equals_scipy_stats(nc: float) -> None:
    for df in [1, 2, 5, 19, 49, 199]:
        xs = [0.0, 1e-4, *RNG.exponential(df + nc, 20), 3.0 * (df + nc), 1e7]
        for x in xs:
            assert ncx2_sf(x, df, nc) == stats.ncx2.sf(x, df, nc)


def test_a_drift_report_on_parquet_files_loads_no_heavy_module(tmp_path: Path) -> None:
    # The path of bench/monitoring.py: neither scipy.stats, nor pandas (pyarrow imports
    # it on a to_numpy or pa.array), nor the store's modules.
    for side, seed, shifts in (("reference", 1, []), ("current", 2, ["mean", "unseen_category"])):
        frame = make_frame(2_000, seed=seed, shifts=shifts)
        pq.write_table(pa.Table.from_pandas(frame), tmp_path / f"{side}.parquet")
    code = (
        "import sys\n"
        "import pyarrow.parquet as pq\n"
        "from loopml.monitoring import MonitorResult, detect_drift, render_html, sketch\n"
        "ref = sketch(pq.ParquetFile('reference.parquet'))\n"
        "report = detect_drift(ref, sketch(pq.ParquetFile('current.parquet'), ref.layout))\n"
        "assert report.drifted_columns, report\n"
        "render_html(MonitorResult(monitor='m', status='alert', started_at=0,"
        " reference='r', current='c', reference_rows=2000, current_rows=2000,"
        " checks=(*report.checks, report.dataset)))\n"
        "heavy = [m for m in ('scipy.stats', 'pandas', 'sqlalchemy', 'yaml', 'fsspec')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    run = [sys.executable, "-c", code]
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
