"""detect_drift: the decision rule, the report, bad arguments, sketches as inputs."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.errors import InsufficientData, InvalidParameter, UnknownColumnError
from loopml.monitoring import (
    CheckResult,
    DriftReport,
    benjamini_hochberg,
    detect_drift,
    make_frame,
    sketch,
)

SHIFTED = ["mean", "missing", "category_mix", "unseen_category"]


@pytest.fixture(scope="module")
def frames() -> tuple[pa.Table, pa.Table]:
    ref = pa.Table.from_pandas(make_frame(5_000, seed=1), preserve_index=False)
    cur = pa.Table.from_pandas(make_frame(5_000, seed=2, shifts=SHIFTED), preserve_index=False)
    return ref, cur


@pytest.fixture(scope="module")
def report(frames: tuple[pa.Table, pa.Table]) -> DriftReport:
    return detect_drift(*frames)


def test_report_flags_the_shifted_columns(report: DriftReport) -> None:
    assert report.drifted_columns == ("num_00", "num_03", "cat_0", "cat_1")
    assert report.reference_rows == report.current_rows == 5_000
    by_key = {(c.check, c.column): c for c in report.checks}
    assert by_key["drift", "num_00"].method == "ks"
    assert by_key["drift", "cat_0"].method == "chi2"
    assert by_key["missing_rate", "num_03"].status == "alert"
    assert by_key["drift", "num_03"].status == "ok"  # the values left did not move
    assert by_key["unseen_category", "cat_1"].status == "alert"
    assert ("unseen_category", "num_00") not in by_key
    assert len(report.checks) == 25 * 2 + 5
    assert report.dataset.check == "dataset_drift"
    assert report.dataset.statistic == pytest.approx(4 / 25)
    assert report.dataset.status == "ok"
    assert report.dataset.detail["drifted"] == list(report.drifted_columns)


def test_p_values_are_adjusted_and_details_follow_the_conventions(report: DriftReport) -> None:
    for c in report.checks:
        assert c.p_value is not None
        assert c.detail["adjusted"] is True
        assert c.p_value >= c.detail["raw_p_value"]
        assert (c.status == "alert") == (
            c.statistic is not None
            and c.threshold is not None
            and c.statistic > c.threshold
            and c.p_value <= 0.05
        )
        if c.check == "drift":
            keys = {"kind", "reference", "current", "reference_missing", "current_missing"}
            assert keys <= set(c.detail)
            assert ("edges" in c.detail) == (c.detail["kind"] == "numeric")
        # JSON-able, and survives the result type's round trip.
        orjson.dumps(c.to_dict())
        assert CheckResult.from_dict(c.to_dict()) == c


@given(st.lists(st.floats(0.0, 1.0), max_size=30))
def test_benjamini_hochberg_properties(p: list[float]) -> None:
    adj = benjamini_hochberg(p)
    assert len(adj) == len(p)
    assert all(a >= x - 1e-15 and a <= 1.0 for a, x in zip(adj, p, strict=True))
    order = np.argsort(p, kind="stable")
    assert all(adj[i] <= adj[j] + 1e-15 for i, j in itertools.pairwise(order))


def test_benjamini_hochberg_known_values() -> None:
    assert benjamini_hochberg([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05] * 5)
    assert benjamini_hochberg([0.001, 0.5]) == pytest.approx([0.002, 0.5])


def test_sketches_and_merged_partitions_give_the_same_report(
    frames: tuple[pa.Table, pa.Table], report: DriftReport
) -> None:
    ref, cur = frames
    ref_sketch = sketch(ref)
    parts = [sketch(cur.slice(i, 1_250), ref_sketch.layout) for i in range(0, 5_000, 1_250)]
    merged = parts[0].merge(parts[1]).merge(parts[2].merge(parts[3]))
    again = detect_drift(ref_sketch, merged)
    assert again == report


def test_current_sketch_must_share_the_reference_layout(
    frames: tuple[pa.Table, pa.Table],
) -> None:
    ref, cur = frames
    with pytest.raises(InvalidParameter, match="reference's layout"):
        detect_drift(ref, sketch(cur))


def test_overrides_of_method_and_tolerance(frames: tuple[pa.Table, pa.Table]) -> None:
    r = detect_drift(
        *frames,
        columns=["num_00", "cat_0", "num_03"],
        methods={"num_00": "wasserstein", "cat_0": "psi"},
        tolerances={"num_00": 0.6, "missing_rate": 0.3},
    )
    by_key = {(c.check, c.column): c for c in r.checks}
    assert by_key["drift", "num_00"].method == "wasserstein"
    assert by_key["drift", "num_00"].threshold == 0.6
    assert by_key["drift", "num_00"].status == "ok"  # a 0.5-sd shift under a 0.6 tolerance
    assert by_key["drift", "cat_0"].method == "psi"
    assert by_key["drift", "cat_0"].status == "alert"
    assert by_key["missing_rate", "num_03"].status == "ok"  # 25 % under 30 %
    assert r.drifted_columns == ("cat_0",)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"columns": ["nmu_00"]}, UnknownColumnError, "Did you mean 'num_00'"),
        ({"methods": {"cat_9": "chi2"}}, UnknownColumnError, "'methods'"),
        ({"methods": {"num_00": "kss"}}, InvalidParameter, "Did you mean 'ks'"),
        ({"methods": {"cat_0": "ks"}}, InvalidParameter, "'cat_0' one of chi2"),
        ({"tolerances": {"pssi": 0.1}}, UnknownColumnError, "Did you mean 'psi'"),
        ({"tolerances": {"ks": -1.0}}, InvalidParameter, "finite numbers >= 0"),
        ({"fdr": 0.0}, InvalidParameter, "'fdr'"),
        ({"drift_share": 2.0}, InvalidParameter, "'drift_share'"),
    ],
)
def test_bad_arguments_name_the_thing(
    frames: tuple[pa.Table, pa.Table], kwargs: dict[str, object], error: type, match: str
) -> None:
    small = (frames[0].slice(0, 100), frames[1].slice(0, 100))
    with pytest.raises(error, match=match):
        detect_drift(*small, **kwargs)  # type: ignore[arg-type]


def test_empty_sides_raise_insufficient_data(frames: tuple[pa.Table, pa.Table]) -> None:
    ref, cur = frames
    with pytest.raises(InsufficientData, match="current"):
        detect_drift(ref, cur.slice(0, 0))
    with pytest.raises(InsufficientData, match="reference"):
        detect_drift(ref.slice(0, 0), cur)
    with pytest.raises(InvalidParameter, match="pyarrow Table"):
        detect_drift([1, 2], cur)  # type: ignore[arg-type]


def test_too_few_rows_is_no_data_never_ok() -> None:
    ref = pd.DataFrame({"x": np.arange(100.0), "c": ["a", "b"] * 50})
    cur = pd.DataFrame({"x": [1.0] * 10 + [None] * 30, "c": ["a"] * 20 + [None] * 20})
    r = detect_drift(ref, cur)
    statuses = {(c.check, c.column): c.status for c in r.checks}
    assert statuses["drift", "x"] == "no_data"
    assert statuses["drift", "c"] == "no_data"
    assert statuses["unseen_category", "c"] == "no_data"
    assert statuses["missing_rate", "x"] == "alert"  # 40 rows, 75 % missing
    tiny = detect_drift(ref, cur.head(5))
    assert {c.status for c in tiny.checks} == {"no_data"}
    assert tiny.dataset.status == "no_data"
    assert "30 needed" in tiny.checks[0].message


def test_integer_codes_as_categories_and_a_capped_reference() -> None:
    rng = np.random.default_rng(0)
    ref = pa.table({"code": rng.integers(0, 5, 2_000)})
    cur = pa.table({"code": rng.integers(0, 6, 2_000)})
    r = detect_drift(ref, cur, kinds={"code": "categorical"})
    assert [c.check for c in r.checks] == ["drift", "missing_rate", "unseen_category"]
    assert r.drifted_columns == ("code",)
    capped = sketch(ref, kinds={"code": "categorical"}, limit=3)
    r2 = detect_drift(capped, sketch(cur, capped.layout, limit=3))
    unseen = next(c for c in r2.checks if c.check == "unseen_category")
    assert unseen.status == "no_data" and "categories" in unseen.message


def test_dataset_drift_alerts_at_the_share() -> None:
    ref = make_frame(3_000, seed=5)
    cur = make_frame(3_000, seed=6, shifts=["mean", "variance"])
    cols = ["num_00", "num_01", "num_05"]
    assert detect_drift(ref, cur, columns=cols).dataset.status == "alert"  # 2 of 3
    assert detect_drift(ref, cur, columns=cols, drift_share=0.9).dataset.status == "ok"


def test_a_current_column_of_another_type_is_named() -> None:
    ref = pd.DataFrame({"x": np.arange(100.0)})
    cur = pd.DataFrame({"x": ["a"] * 100})
    with pytest.raises(InvalidParameter, match="Column 'x': A numeric sketch needs"):
        detect_drift(ref, cur)
    with pytest.raises(UnknownColumnError, match="lacks column 'x'"):
        detect_drift(ref, pd.DataFrame({"y": np.arange(100.0)}))
