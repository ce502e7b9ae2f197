"""Streaming validation against an inferred schema and expectations."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.data._expect import expect
from loopml.data._expectations import Expectation
from loopml.data._normalize import normalize_table
from loopml.data._profile import profile_table
from loopml.data._report import ValidationReport
from loopml.data._schema import ColumnSchema, DatasetSchema, infer_schema
from loopml.data._validate import validate_batches


def report_for(
    table: pa.Table,
    schema: DatasetSchema | None,
    chunk: int | None = None,
    expectations: Sequence[Expectation] = (),
) -> ValidationReport:
    batches = table.to_batches(max_chunksize=chunk) if chunk else table.to_batches()
    return validate_batches(batches, schema, expectations, "t", "credit@latest")


def failing(report: ValidationReport) -> dict[str, int]:
    return {c.name: c.failing_count for c in report.checks if not c.passed}


# --- inference -> validation -----------------------------------------------

# Finite floats are kept moderate: the profile's moments overflow (a RuntimeWarning)
# near 1e154; infinities are still drawn (they must not yield a range).
_floats = st.floats(-1e12, 1e12) | st.sampled_from([float("inf"), float("-inf"), -0.0])
_COLUMN_KINDS = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": _floats,
    "str": st.text(max_size=6),
    "cat": st.sampled_from(["a", "b", "<c>", ""]),
    "bool": st.booleans(),
}


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(1, 30))
    kinds = draw(st.lists(st.sampled_from(sorted(_COLUMN_KINDS)), min_size=1, max_size=5))
    data = {}
    for i, kind in enumerate(kinds):
        values = draw(st.lists(_COLUMN_KINDS[kind], min_size=rows, max_size=rows))
        if draw(st.booleans()):  # make the column nullable
            mask = draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
            values = [None if m else v for v, m in zip(values, mask, strict=True)]
        dtype = {"int": "Int64", "bool": "boolean", "float": "float64"}.get(kind, "object")
        data[f"{kind}{i}"] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frames(), chunk=st.integers(1, 7), key=st.booleans())
def test_data_validates_against_the_schema_inferred_from_it(
    frame: pd.DataFrame, chunk: int, key: bool
) -> None:
    table = normalize_table(pa.Table.from_pandas(frame, preserve_index=False))
    keys = ["row_id"] if key else []
    if key:
        table = table.append_column("row_id", pa.array(range(table.num_rows), pa.int64()))
    schema = infer_schema(profile_table(table), key_columns=keys)
    schema = DatasetSchema.from_yaml(schema.to_yaml())

    report = report_for(table, schema, chunk)

    assert report.passed, failing(report)
    assert report.schema_diff.empty and report.row_count == table.num_rows


# --- schema checks ------------------------------------------------------------


@pytest.fixture
def reference() -> pa.Table:
    return normalize_table(
        pa.table(
            {
                "id": list(range(1, 21)),
                "age": [20 + i for i in range(20)],
                "state": ["CA", "NY"] * 10,
                "score": [i / 20 for i in range(20)],
            }
        )
    )


@pytest.fixture
def schema() -> DatasetSchema:
    """Rules like those inferred from ``reference``, written out (inference is tested apart)."""
    return DatasetSchema(
        (
            ColumnSchema("id", "int64", nullable=False, unique=True),
            ColumnSchema("age", "int64", nullable=False, min=20, max=39),
            ColumnSchema("state", "large_string", nullable=False, allowed=("CA", "NY")),
            ColumnSchema("score", "double", nullable=False, min=0.0, max=0.95),
        )
    )


def test_failures_are_counted_with_samples(schema: DatasetSchema) -> None:
    bad = normalize_table(
        pa.table(
            {
                "id": [1, 2, 2, None, 5],
                "age": [20, 99, None, 30, 5],
                "state": ["CA", "<script>alert(1)</script>", "NY", "TX", "CA"],
                "score": [0.1, 0.2, 0.3, 0.4, 2.0],
            }
        )
    )
    report = report_for(bad, schema, chunk=2)
    assert not report.passed
    assert failing(report) == {
        "id: not null": 1,
        "age: not null": 1,
        "age: in_range(20, 39)": 2,
        "state: isin(['CA', 'NY'])": 2,
        "score: in_range(0.0, 0.95)": 1,
        "unique(id)": 1,
    }
    by_name = {c.name: c for c in report.checks}
    assert by_name["age: in_range(20, 39)"].failing_sample == [
        {"row": 1, "value": 99},
        {"row": 4, "value": 5},
    ]
    assert by_name["unique(id)"].failing_sample == [{"row": 2, "value": 2}]
    assert by_name["id: not null"].failing_sample == [{"row": 3, "value": None}]
    assert by_name["score: in_range(0.0, 0.95)"].kind == "in_range"


def test_streaming_gives_the_same_counts_as_one_batch(schema: DatasetSchema) -> None:
    rng = np.random.default_rng(7)
    n = 5_000
    bad = normalize_table(
        pa.table(
            {
                "id": rng.integers(0, 4_000, n),
                "age": rng.integers(0, 60, n),
                "state": rng.choice(["CA", "NY", "WA"], n),
                "score": rng.normal(0.5, 0.5, n),
            }
        )
    )
    expectations = [expect.unique("id", "state"), expect.not_null_rate("age", 1.0)]
    whole = report_for(bad, schema, expectations=expectations)
    for chunk in (1_000, 333, 4_999):
        split = report_for(bad, schema, chunk, expectations=expectations)
        assert [c.to_dict() for c in split.checks] == [c.to_dict() for c in whole.checks]
    assert all(len(c.failing_sample) <= 10 for c in whole.checks)
    assert failing(whole)["unique(id)"] > 0


def test_missing_extra_and_retyped_columns(schema: DatasetSchema) -> None:
    other = normalize_table(
        pa.table(
            {"id": [1, 2, 3], "age": ["x", "y", "z"], "score": [5.0, 0.1, 0.2], "new": [1, 2, 3]}
        )
    )
    report = report_for(other, schema)
    diff = report.schema_diff
    assert diff.missing == ("state",)
    assert diff.extra == ("new",)
    assert diff.retyped == {"age": {"expected": "int64", "got": "large_string"}}
    kinds = {(c.kind, c.column) for c in report.failed_checks}
    assert ("column_present", "state") in kinds and ("type", "age") in kinds
    # the other columns are still checked
    assert failing(report)["score: in_range(0.0, 0.95)"] == 1
    assert all(c.column != "new" for c in report.checks)  # extra columns pass unless strict
    strict = dataclasses.replace(schema, strict=True)
    assert ("no_extra_column", "new") in {
        (c.kind, c.column) for c in report_for(other, strict).checks
    }


def test_passing_data_and_expectations_only(reference: pa.Table, schema: DatasetSchema) -> None:
    report = report_for(reference, schema, chunk=3)
    assert report.passed and report.row_count == 20 and report.against == "credit@latest"
    only = report_for(reference, None, expectations=[expect.row_count(min=10)])
    assert only.passed and only.schema_diff.empty and len(only.checks) == 1


def test_empty_input_uses_the_given_arrow_schema(
    reference: pa.Table, schema: DatasetSchema
) -> None:
    data_schema = reference.schema.remove(reference.schema.get_field_index("state"))
    report = validate_batches([], schema, [], "empty", None, data_schema=data_schema)
    assert report.row_count == 0 and report.schema_diff.missing == ("state",)
    assert not report.passed


def test_pattern_and_unique_together_rules() -> None:
    schema = DatasetSchema(
        (ColumnSchema("email", "large_string", pattern="@"), ColumnSchema("n", "int64")),
        unique_together=(("email", "n"),),
    )
    table = normalize_table(pa.table({"email": ["a@b", "nope", "a@b"], "n": [1, 2, 1]}))
    assert failing(report_for(table, schema, chunk=1)) == {
        "email: pattern '@'": 1,
        "unique(email, n)": 1,
    }


def test_a_schema_rule_that_cannot_be_evaluated_fails_with_a_reason() -> None:
    schema = DatasetSchema((ColumnSchema("s", "large_string", min=0, max=1),))
    table = normalize_table(pa.table({"s": ["a", "b"]}))
    (result,) = report_for(table, schema).checks
    assert not result.passed and result.message.startswith("could not be evaluated")
