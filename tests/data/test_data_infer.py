"""Inferred schemas accept new samples of the same distribution and still catch real shifts.

Each trial draws a reference sample and an independent delivery from the same
distributions (seeded, so the counts below are reproducible), infers a schema
from the reference's profile as ``register`` does, and validates the delivery
against it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from loopml.data._infer import CATEGORY_MIN_COUNT, allowed_values, is_key_like, numeric_range
from loopml.data._normalize import normalize_table
from loopml.data._profile import profile_table
from loopml.data._schema import DatasetSchema, infer_schema
from loopml.data._validate import validate_batches

Draw = Callable[[np.random.Generator, int, int], object]

#: column -> draw(rng, rows, first_id); ids continue where the reference stopped.
SHAPES: dict[str, Draw] = {
    "normal": lambda rng, n, _: rng.normal(50.0, 10.0, n),
    "uniform": lambda rng, n, _: rng.uniform(-1.0, 1.0, n),
    "exponential": lambda rng, n, _: rng.exponential(2.0, n),
    "lognormal": lambda rng, n, _: rng.lognormal(0.0, 1.0, n),
    "counts": lambda rng, n, _: rng.poisson(3.0, n),
    "rare_counts": lambda rng, n, _: rng.poisson(0.1, n),
    # integers with missing values, as pandas delivers them: floats with NaN
    "nullable_counts": lambda rng, n, _: np.where(
        rng.random(n) < 0.1, np.nan, rng.poisson(5.0, n).astype(float)
    ),
    "category": lambda rng, n, _: rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
    "id": lambda rng, n, first: np.arange(first, first + n),
    "code": lambda rng, n, first: [f"C-{i:08d}" for i in range(first, first + n)],
}


def _sample(rng: np.random.Generator, rows: int, first_id: int) -> pa.Table:
    return normalize_table(
        pa.table({name: draw(rng, rows, first_id) for name, draw in SHAPES.items()})
    )


def _failing_columns(table: pa.Table, schema: DatasetSchema) -> set[str]:
    report = validate_batches(table.to_batches(max_chunksize=4096), schema, [], source="trial")
    return {c.column for c in report.checks if not c.passed and c.column is not None}


@pytest.mark.parametrize(("rows", "trials"), [(50, 300), (10_000, 100)])
def test_same_distribution_passes_at_least_99_percent(rows: int, trials: int) -> None:
    rng = np.random.default_rng(20261207 + rows)
    failures: Counter[str] = Counter()
    for _ in range(trials):
        reference = _sample(rng, rows, 0)
        schema = infer_schema(profile_table(reference))
        failures.update(_failing_columns(_sample(rng, rows, rows), schema))
    allowed_failures = trials // 100
    assert {c: n for c, n in failures.items() if n > allowed_failures} == {}, failures


def test_a_larger_delivery_of_the_same_distribution_passes() -> None:
    rng = np.random.default_rng(11)
    failures: Counter[str] = Counter()
    for _ in range(100):
        schema = infer_schema(profile_table(_sample(rng, 1_000, 0)))
        failures.update(_failing_columns(_sample(rng, 20_000, 1_000), schema))
    assert {c: n for c, n in failures.items() if n > 1} == {}, failures


def _shifted(rng: np.random.Generator, rows: int, column: str, shift: str) -> pa.Table:
    sample = _sample(rng, rows, rows)
    values = np.asarray(sample.column(column).to_numpy(zero_copy_only=False))
    if shift == "mean+10sd":
        values = values + 10 * 10.0
    elif shift == "x10":
        values = values * 10
    elif shift == "new category":
        values = np.where(rng.random(rows) < 0.05, "e", values)
    index = sample.schema.get_field_index(column)
    return sample.set_column(index, column, pa.array(values, sample.schema.field(column).type))


@pytest.mark.parametrize(
    ("rows", "column", "shift"),
    [
        (50, "normal", "mean+10sd"),
        (10_000, "normal", "mean+10sd"),
        (50, "uniform", "x10"),
        (10_000, "uniform", "x10"),
        (10_000, "normal", "x10"),
        (10_000, "exponential", "x10"),
        (10_000, "counts", "x10"),
        (10_000, "category", "new category"),
    ],
)
def test_a_real_shift_still_fails(rows: int, column: str, shift: str) -> None:
    rng = np.random.default_rng(7)
    trials = 50
    caught = 0
    for _ in range(trials):
        schema = infer_schema(profile_table(_sample(rng, rows, 0)))
        caught += column in _failing_columns(_shifted(rng, rows, column, shift), schema)
    assert caught >= 0.95 * trials, (caught, trials)


# -- the rules one by one -------------------------------------------------------------------


def _profile(**columns: object) -> dict[str, object]:
    return profile_table(normalize_table(pa.table(columns))).columns  # type: ignore[return-value]


def test_pure_min_max_would_fail_often() -> None:
    """Why ranges are widened: a fresh sample exceeds the old extremes about half the time."""
    rng = np.random.default_rng(5)
    exceeded = sum(rng.normal(size=50).max() > rng.normal(size=50).max() for _ in range(1_000))
    assert 400 < exceeded < 600


def test_ids_and_codes_get_no_rules_and_are_key_candidates() -> None:
    columns = _profile(
        id=list(range(100, 150)), code=[f"u{i}" for i in range(50)], x=[i % 7 for i in range(50)]
    )
    assert is_key_like(columns["id"]) and is_key_like(columns["code"])  # type: ignore[arg-type]
    assert not is_key_like(columns["x"])  # type: ignore[arg-type]
    schema = infer_schema(profile_table(normalize_table(pa.table({"id": list(range(50))}))))
    assert (schema.column("id").min, schema.column("id").max) == (None, None)


def test_sparse_distinct_integers_are_not_taken_for_ids() -> None:
    columns = _profile(amount=[i * 37 for i in range(50)])
    assert not is_key_like(columns["amount"])  # type: ignore[arg-type]
    assert numeric_range(columns["amount"]) is not None  # type: ignore[arg-type]


def test_allowed_set_needs_every_value_seen_often_enough() -> None:
    common = ["a"] * 20 + ["b"] * CATEGORY_MIN_COUNT
    assert allowed_values(_profile(c=common)["c"]) == ("a", "b")  # type: ignore[arg-type]
    rare = ["a"] * 20 + ["b"] * (CATEGORY_MIN_COUNT - 1)
    assert allowed_values(_profile(c=rare)["c"]) is None  # type: ignore[arg-type]
    # 30 values: more than the profile keeps counts for, so the set is not enumerated
    many = [f"v{i % 30}" for i in range(300)]
    assert allowed_values(_profile(c=many)["c"]) is None  # type: ignore[arg-type]


def test_integral_floats_get_whole_number_bounds() -> None:
    rng = np.random.default_rng(1)
    values = np.where(rng.random(200) < 0.2, np.nan, rng.poisson(4.0, 200).astype(float))
    column = _profile(n=values)["n"]
    assert column.integral  # type: ignore[attr-defined]
    bounds = numeric_range(column)  # type: ignore[arg-type]
    assert bounds is not None and all(b == int(b) for b in bounds)
    assert not _profile(x=[0.5, 1.0] * 20)["x"].integral  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "values",
    [[1.0] * 30, [1.0, float("inf")] * 15, [*range(10), 1000]],
    ids=["constant", "infinite", "few rows"],
)
def test_no_range_without_a_spread_to_scale(values: list[float]) -> None:
    assert numeric_range(_profile(x=[float(v) for v in values])["x"]) is None  # type: ignore[arg-type]


def test_the_data_always_validates_against_its_own_schema() -> None:
    rng = np.random.default_rng(9)
    for rows in (20, 57, 300):
        table = _sample(rng, rows, 0)
        assert not _failing_columns(table, infer_schema(profile_table(table)))


def test_labels_and_ratings_keep_their_observed_range_decaying_counts_do_not() -> None:
    labels = _profile(y=[0, 1] * 30)["y"]
    ratings = _profile(r=[1, 2, 3, 4, 5] * 12)["r"]
    assert numeric_range(labels) == (0.0, 1.0)  # type: ignore[arg-type]
    assert numeric_range(ratings) == (1.0, 5.0)  # type: ignore[arg-type]
    # 45 zeros and 5 ones: a tail that goes on past 1
    rare = numeric_range(_profile(n=[0] * 45 + [1] * 5)["n"])  # type: ignore[arg-type]
    assert rare is None or rare[1] is None or rare[1] > 1


def test_a_column_never_negative_keeps_zero_as_its_lower_bound() -> None:
    rng = np.random.default_rng(8)
    ages = _profile(age=rng.integers(18, 90, 1_000))["age"]
    bounds = numeric_range(ages)  # type: ignore[arg-type]
    assert bounds is not None and bounds[0] == 0.0 and bounds[1] is not None and bounds[1] > 89
    # a normal column close to zero may go negative: no such floor
    near_zero = rng.normal(3.0, 1.0, 1_000)
    near = numeric_range(_profile(x=near_zero[near_zero >= 0])["x"])  # type: ignore[arg-type]
    assert near is not None and near[0] is not None and near[0] < 0
