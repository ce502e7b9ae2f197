"""Profile diffs: schema changes, statistic changes, distribution shift."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from loopml.data._diff import PSI_DRIFT_THRESHOLD, ProfileDiff, diff_profiles
from loopml.data._profile import Profile, profile_table


def _profile(**columns: object) -> Profile:
    return profile_table(pa.table(columns))


def test_equal_profiles_have_no_changes() -> None:
    p = _profile(x=[1.0, 2.0, 3.0], s=["a", "b", "a"], b=[True, False, None])
    d = diff_profiles(p, p)
    assert not d.has_changes
    assert (d.added, d.removed, d.retyped, d.drifted_columns) == ((), (), (), ())
    assert all(c.changes == () and c.psi == pytest.approx(0.0) for c in d.columns.values())
    assert (d.row_count.old, d.row_count.new, d.row_count.abs_change) == (3, 3, 0.0)


def test_added_removed_and_retyped_columns() -> None:
    old = _profile(keep=[1, 2], gone=["a", "b"], typed=[1, 2])
    new = _profile(typed=[1.0, 2.5], keep=[1, 2], fresh=[True, False])
    d = diff_profiles(old, new)
    assert d.has_changes
    assert d.added == (("fresh", "bool"),)
    assert d.removed == (("gone", "string"),)
    assert [(r.name, r.old_type, r.new_type) for r in d.retyped] == [("typed", "int64", "double")]
    assert list(d.columns) == ["typed", "keep"]  # common columns, in new order
    assert not d.columns["keep"].has_changes
    assert d.columns["typed"].has_changes


def test_stat_changes_have_absolute_and_relative_change() -> None:
    old = _profile(x=[1.0, 2.0, 3.0, None])
    new = _profile(x=[2.0, 4.0, 6.0, 8.0, None, None])
    d = diff_profiles(old, new)
    changes = {c.stat: c for c in d.columns["x"].changes}
    assert {"count", "missing", "missing_rate", "mean", "std", "min", "max", "q0.5"} <= set(changes)
    mean = changes["mean"]
    assert (mean.old, mean.new, mean.abs_change, mean.rel_change) == (2.0, 5.0, 3.0, 1.5)
    assert changes["missing_rate"].old == 0.25 and changes["missing_rate"].new == pytest.approx(
        1 / 3
    )
    assert (d.row_count.old, d.row_count.new, d.row_count.rel_change) == (4, 6, 0.5)


def test_relative_change_from_zero_is_none() -> None:
    d = diff_profiles(_profile(x=[1.0, 2.0]), _profile(x=[1.0, None]))
    missing = next(c for c in d.columns["x"].changes if c.stat == "missing")
    assert (missing.old, missing.new, missing.abs_change, missing.rel_change) == (0, 1, 1.0, None)


def test_shift_has_a_larger_psi_than_a_resample() -> None:
    rng = np.random.default_rng(11)
    base = _profile(x=rng.normal(0, 1, 50_000))
    resample = _profile(x=rng.normal(0, 1, 50_000))
    shifted = _profile(x=rng.normal(1.0, 1, 50_000))
    same_psi = diff_profiles(base, resample).columns["x"].psi
    shift_psi = diff_profiles(base, shifted).columns["x"].psi
    assert same_psi is not None and shift_psi is not None
    assert same_psi < 0.05 < PSI_DRIFT_THRESHOLD < shift_psi
    assert diff_profiles(base, shifted).drifted_columns == ("x",)
    assert diff_profiles(base, resample).drifted_columns == ()


def test_categories_new_vanished_and_psi() -> None:
    rng = np.random.default_rng(3)
    old_values = rng.choice(["a", "b", "c"], size=5_000, p=[0.5, 0.3, 0.2])
    same = rng.choice(["a", "b", "c"], size=5_000, p=[0.5, 0.3, 0.2])
    moved = rng.choice(["a", "b", "d"], size=5_000, p=[0.2, 0.3, 0.5])
    old = _profile(s=old_values)
    d_same = diff_profiles(old, _profile(s=same)).columns["s"]
    d_moved = diff_profiles(old, _profile(s=moved)).columns["s"]
    assert (d_same.new_categories, d_same.vanished_categories) == ((), ())
    assert (d_moved.new_categories, d_moved.vanished_categories) == (("d",), ("c",))
    assert d_same.psi is not None and d_moved.psi is not None
    assert d_same.psi < 0.01 and d_moved.drifted


def test_boolean_categories_and_unknown_value_sets() -> None:
    d = diff_profiles(_profile(b=[True, True]), _profile(b=[True, False]))
    assert d.columns["b"].new_categories == ("False",)
    # Text columns: the full value set is unknown, so nothing is claimed.
    old = _profile(t=[f"id{i}" for i in range(200)])
    new = _profile(t=[f"other{i}" for i in range(200)])
    c = diff_profiles(old, new).columns["t"]
    assert c.old_kind == "text" and (c.new_categories, c.vanished_categories) == ((), ())


def test_no_psi_without_values() -> None:
    empty = pa.table({"x": pa.nulls(3, pa.float64()), "t": pa.nulls(3, pa.timestamp("ns"))})
    d = diff_profiles(profile_table(empty), _profile(x=[1.0], t=pa.array([1], pa.timestamp("ns"))))
    assert d.columns["x"].psi is None and d.columns["t"].psi is None
    assert d.columns["x"].has_changes


def test_to_dict_is_standard_json() -> None:
    old = _profile(x=[1.0, math.inf], s=["a", "b"], gone=[1, 2])
    new = _profile(x=[-math.inf, 2.0], s=["a", "c"], new=[1.5, 2.5])
    d = diff_profiles(old, new)
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert data["has_changes"] is True
    assert data["added"] == [{"name": "new", "arrow_type": "double"}]
    assert data["removed"] == [{"name": "gone", "arrow_type": "int64"}]
    x = next(c for c in data["columns"] if c["name"] == "x")
    assert {
        "stat": "min",
        "old": 1.0,
        "new": "-inf",
        "abs_change": "-inf",
        "rel_change": "-inf",
    } in x["changes"]
    s = next(c for c in data["columns"] if c["name"] == "s")
    assert (s["new_categories"], s["vanished_categories"]) == (["c"], ["b"])


def test_diff_of_round_tripped_profiles_is_empty() -> None:
    p = _profile(x=[0.1, 0.2, None], s=["a", None, "b"])
    again = Profile.from_json(p.to_json())
    d: ProfileDiff = diff_profiles(p, again)
    assert not d.has_changes
