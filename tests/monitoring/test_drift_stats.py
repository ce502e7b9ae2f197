"""Drift statistics from sketches, checked against exact computations on the raw values."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import binom, ks_2samp, wasserstein_distance

from loopml.monitoring import SketchLayout, sketch
from loopml.monitoring._drift_stats import (
    DEFAULT_TOLERANCES,
    NUMERIC_METHODS,
    compare,
    missing_rate,
    unseen_share,
)
from loopml.monitoring._sketch import ColumnSketch


def _pair(ref: np.ndarray, cur: np.ndarray) -> tuple[ColumnSketch, ColumnSketch]:
    ref_sketch = sketch(pa.table({"x": ref}))
    layout = ref_sketch.layout
    return ref_sketch.columns["x"], sketch(pa.table({"x": cur}), layout).columns["x"]


@pytest.fixture(scope="module")
def normals() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(3.0, 2.0, 20_000), rng.normal(4.0, 2.0, 15_000)


def test_ks_brackets_the_exact_statistic(normals: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = normals
    e = compare("ks", *_pair(ref, cur))
    exact = ks_2samp(ref, cur).statistic
    assert e.statistic <= exact + 1e-12 <= e.detail["ks_upper"] + 1e-12
    assert e.detail["ks_upper"] - e.statistic < 0.015  # 0.02-sd bins of a normal
    assert e.interval[0] <= e.statistic <= e.interval[1]


@given(st.integers(0, 2**31), st.sampled_from([30, 100, 1000]), st.floats(0.0, 0.2))
def test_ks_p_value_is_valid_under_the_boundary_of_h0(seed: int, n: int, tol: float) -> None:
    # Same distribution: D_true = 0 <= tol, so a false rejection at 5 % must be rare;
    # DKW is conservative, so with these sizes it never happens.
    rng = np.random.default_rng(seed)
    e = compare("ks", *_pair(rng.normal(size=n), rng.normal(size=n)), tolerance=tol)
    assert e.p_value > 0.05 or e.statistic > tol + 0.1


def test_wasserstein_matches_scipy_in_reference_sds(
    normals: tuple[np.ndarray, np.ndarray],
) -> None:
    ref, cur = normals
    e = compare("wasserstein", *_pair(ref, cur))
    exact = wasserstein_distance(ref, cur) / ref.std()
    assert e.detail["plug_in"] == pytest.approx(exact, abs=0.02)
    assert e.statistic == pytest.approx(0.5, abs=0.03)  # 1.0 / 2 sd
    assert e.p_value < 1e-6


def test_bootstrap_methods_are_seeded_and_bias_corrected() -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(size=200), rng.normal(size=200)
    pair = _pair(ref, cur)
    for method in ("jensen_shannon", "hellinger", "psi"):
        a = compare(method, *pair, seed=3)
        assert a == compare(method, *pair, seed=3)
        # Same distribution: the plug-in distance is biased up; the correction removes most.
        assert a.statistic < a.detail["plug_in"]
        assert a.p_value > 0.5


def test_jensen_shannon_hellinger_psi_on_the_plotted_bins() -> None:
    rng = np.random.default_rng(5)
    cats = np.array(["a", "b", "c", "d"])
    ref = rng.choice(cats, 50_000, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng.choice(cats, 50_000, p=[0.1, 0.2, 0.3, 0.4])
    r = sketch(pa.table({"c": ref})).columns["c"]
    c = sketch(pa.table({"c": cur})).columns["c"]
    p = np.array([np.mean(ref == k) for k in cats])
    q = np.array([np.mean(cur == k) for k in cats])
    js = compare("jensen_shannon", r, c)
    assert js.detail["plug_in"] == pytest.approx(jensenshannon(p, q), rel=1e-9)
    hel = compare("hellinger", r, c)
    expected = math.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum())
    assert hel.detail["plug_in"] == pytest.approx(expected, rel=1e-9)
    psi = compare("psi", r, c)
    assert psi.detail["plug_in"] == pytest.approx(((q - p) * np.log(q / p)).sum(), rel=1e-9)
    assert sorted(js.detail["categories"]) == sorted(cats)
    assert sum(js.detail["reference"]) == pytest.approx(1.0)


def test_chi2_effect_does_not_depend_on_the_sample_ratio() -> None:
    rng = np.random.default_rng(2)
    cats = np.array(["a", "b", "c"])
    ref = sketch(pa.table({"c": rng.choice(cats, 100_000, p=[0.5, 0.3, 0.2])})).columns["c"]
    small = sketch(pa.table({"c": rng.choice(cats, 2_000, p=[0.3, 0.4, 0.3])})).columns["c"]
    large = sketch(pa.table({"c": rng.choice(cats, 100_000, p=[0.3, 0.4, 0.3])})).columns["c"]
    v_small, v_large = compare("chi2", ref, small), compare("chi2", ref, large)
    assert v_small.statistic == pytest.approx(v_large.statistic, abs=0.03)
    assert v_large.statistic == pytest.approx(0.205, abs=0.01)
    assert v_small.p_value < 1e-6 and v_large.p_value < 1e-6
    same = sketch(pa.table({"c": rng.choice(cats, 100_000, p=[0.5, 0.3, 0.2])})).columns["c"]
    assert compare("chi2", ref, same).p_value > 0.5


def test_numeric_chi2_runs_on_reference_quantile_bins(
    normals: tuple[np.ndarray, np.ndarray],
) -> None:
    e = compare("chi2", *_pair(*normals))
    assert 15 <= e.detail["df"] <= 20
    assert len(e.detail["edges"]) == len(e.detail["reference"]) + 1
    assert all(0.03 < s < 0.07 for s in e.detail["reference"])  # about 1/20 each


def test_missing_rate_from_0_to_25_percent() -> None:
    x = np.arange(1000.0)
    y = x.copy()
    y[::4] = np.nan
    r, c = _pair(x, y)
    e = missing_rate(r, c, tolerance=0.05)
    assert e.statistic == pytest.approx(0.25)
    assert e.p_value < 1e-20
    assert e.detail == {"reference": 0.0, "current": 0.25, "raw_p_value": e.p_value}
    assert missing_rate(r, r, tolerance=0.05).p_value > 0.99


def test_unseen_share_is_an_exact_binomial_test() -> None:
    ref = sketch(pa.table({"c": ["a", "b"] * 500})).columns["c"]
    cur = sketch(pa.table({"c": ["a"] * 970 + ["z"] * 20 + ["y"] * 10})).columns["c"]
    e = unseen_share(ref, cur, tolerance=0.01)
    assert e.statistic == pytest.approx(0.03)
    assert e.p_value == pytest.approx(binom.sf(29, 1000, 0.01))
    assert e.detail["unseen"] == ["z", "y"]
    assert e.interval[0] < 0.03 < e.interval[1]


def test_capped_sides_compare_only_what_both_count_exactly() -> None:
    rng = np.random.default_rng(4)
    values = np.array([f"v{i}" for i in range(400)])
    ref = sketch(pa.table({"c": rng.choice(values, 20_000)}), limit=50).columns["c"]
    cur = sketch(pa.table({"c": rng.choice(values, 20_000)}), limit=50).columns["c"]
    e = compare("chi2", ref, cur)
    assert e.p_value > 0.5  # the same distribution, whatever each side kept
    assert e.detail["categories"][-1] == "(other)"


def test_every_numeric_method_gives_plot_detail(normals: tuple[np.ndarray, np.ndarray]) -> None:
    pair = _pair(*normals)
    for method in NUMERIC_METHODS:
        e = compare(method, *pair)
        assert e.tolerance == DEFAULT_TOLERANCES[method]
        assert e.detail["kind"] == "numeric"
        assert len(e.detail["edges"]) <= 51
        assert e.detail["edges"] == sorted(e.detail["edges"])
        assert e.statistic > e.tolerance and e.p_value < 0.01, method


def test_infinite_values_fall_in_the_outer_cells() -> None:
    layout = {"x": SketchLayout("numeric", 0.0, 1.0)}
    ref = sketch(pa.table({"x": np.r_[np.zeros(100), math.inf]}), layout).columns["x"]
    cur = sketch(pa.table({"x": np.r_[np.zeros(50), [math.inf] * 51]}), layout).columns["x"]
    assert compare("ks", ref, cur).statistic == pytest.approx(51 / 101 - 1 / 101)


def test_wasserstein_without_finite_values_on_one_side() -> None:
    layout = {"x": SketchLayout("numeric", 0.0, 1.0)}
    ref = sketch(pa.table({"x": np.arange(50.0)}), layout).columns["x"]
    cur = sketch(pa.table({"x": [math.inf] * 50}), layout).columns["x"]
    e = compare("wasserstein", ref, cur)
    assert e.statistic == math.inf and e.p_value == 0.0
