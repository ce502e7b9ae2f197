"""Schema inference from a profile, and the schema's editable YAML form."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from loopml.data._normalize import normalize_table
from loopml.data._profile import profile_table
from loopml.data._schema import ColumnSchema, DatasetSchema, infer_schema, pandas_dtype
from loopml.errors import InvalidParameter, SchemaError


@pytest.fixture
def table() -> pa.Table:
    """200 rows: an id, ages with gaps, incomes with an infinity, states and flags."""
    rng = np.random.default_rng(3)
    n = 200
    ages = rng.integers(18, 65, n).tolist()
    ages[2] = None
    income = rng.lognormal(1.0, 0.5, n)
    income[3] = np.inf
    flags = rng.random(n) < 0.5
    return normalize_table(
        pa.table(
            {
                "id": list(range(1, n + 1)),
                "age": ages,
                "income": income,
                "state": rng.choice(["CA", "NY", "TX"], n),
                "flag": [None if i == 4 else bool(f) for i, f in enumerate(flags)],
            }
        )
    )


def test_infer_types_nullability_ranges_and_categories(table: pa.Table) -> None:
    schema = infer_schema(profile_table(table), key_columns=["id"])

    assert schema.columns == {
        "id": "int64",
        "age": "int64",
        "income": "double",
        "state": "large_string",
        "flag": "bool",
    }
    age = schema.column("age")
    # widened beyond the observed 18..64, to whole numbers
    assert age.nullable and isinstance(age.min, int) and isinstance(age.max, int)
    assert age.min < 18 and age.max > 64
    assert not schema.column("id").nullable and schema.column("id").unique
    # an infinite maximum gives no range rather than a wrong one
    assert schema.column("income").min is None and schema.column("income").max is None
    assert schema.column("state").allowed == ("CA", "NY", "TX")
    assert schema.column("flag").nullable and schema.column("flag").allowed is None
    assert schema.unique_together == ()


def test_small_samples_get_no_range() -> None:
    table = normalize_table(pa.table({"age": [18, 30, None, 64, 41, 22]}))
    age = infer_schema(profile_table(table)).column("age")
    assert (age.min, age.max) == (None, None)


def test_infer_multi_column_key_is_unique_together(table: pa.Table) -> None:
    schema = infer_schema(profile_table(table), key_columns=["state", "age"])
    assert schema.unique_together == (("state", "age"),)
    assert not any(c.unique for c in schema.column_schemas)


def test_infer_rejects_unknown_key_column(table: pa.Table) -> None:
    with pytest.raises(InvalidParameter, match=r"key_columns.*nope"):
        infer_schema(profile_table(table), key_columns=["nope"])


def test_text_column_gets_no_allowed_set() -> None:
    table = normalize_table(pa.table({"s": [f"v{i}" for i in range(200)]}))
    assert infer_schema(profile_table(table)).column("s").allowed is None


def test_yaml_round_trip_and_is_readable(table: pa.Table) -> None:
    schema = infer_schema(profile_table(table), key_columns=["id", "income"])
    text = schema.to_yaml()
    assert "age:" in text and "type: int64" in text and "allowed:" in text
    assert DatasetSchema.from_yaml(text) == schema


def test_key_columns_get_no_range_or_allowed_set(table: pa.Table) -> None:
    schema = infer_schema(profile_table(table), key_columns=["id", "state"])
    for key in ("id", "state"):
        column = schema.column(key)
        assert (column.min, column.max, column.allowed) == (None, None, None)
    assert schema.column("age").max is not None


def test_edited_yaml_is_read_back(table: pa.Table) -> None:
    schema = infer_schema(profile_table(table))
    text = schema.to_yaml().replace(f"max: {schema.column('age').max}\n", "max: 120\n")
    assert DatasetSchema.from_yaml(text).column("age").max == 120


def test_sdk_edit_round_trip(table: pa.Table) -> None:
    schema = infer_schema(profile_table(table))
    edited = schema.with_column(dataclasses.replace(schema.column("age"), min=0, max=120))
    edited = edited.with_column(ColumnSchema("email", "large_string", pattern="@"))
    edited = edited.without_column("flag")
    again = DatasetSchema.from_yaml(edited.to_yaml())
    assert again == edited
    assert list(again.columns) == ["id", "age", "income", "state", "email"]


def test_pandera_schema_mirrors_the_rules(table: pa.Table) -> None:
    schema = infer_schema(profile_table(table))
    pandera_schema = schema.pandera
    assert set(pandera_schema.columns) == set(schema.columns)
    assert pandera_schema.columns["age"].nullable
    assert [c.name for c in pandera_schema.columns["age"].checks] == ["in_range"]
    assert [c.name for c in pandera_schema.columns["state"].checks] == ["isin"]


def test_pandas_dtypes() -> None:
    assert pandas_dtype("int64") == "Int64"
    assert pandas_dtype("timestamp[ns, tz=UTC]") == "datetime64[ns, UTC]"
    assert pandas_dtype("large_list<item: int64>") is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("columns:\n  a: 1\n b: 2\n", r"does not parse at line 3"),
        ("columns:\n\ta: 1\n", r"does not parse at line 2"),
        ("- just\n- a list\n", "expected a mapping"),
        ("columns:\n  a:\n    nullable: true\n", r"line 3.*needs a 'type'"),
        ("columns:\n  a:\n    type: int64\n    maximum: 3\n", r"line 4.*unknown key.*maximum"),
        ("columns:\n  a:\n    type: int64\n    min: low\n", r"'min' of column 'a'"),
        ("columns:\n  a:\n    type: int64\n    nullable: maybe\n", r"line 4.*'nullable'"),
        ("columns:\n  a:\n    type: large_string\n    pattern: '('\n", "regular expression"),
        ("colums: {}\n", r"line 1.*unknown key.*colums"),
        ("version: 9\ncolumns: {}\n", "unsupported version"),
        ("columns: {a: {type: int64}}\nunique_together: [[b]]\n", "unique_together"),
    ],
)
def test_broken_yaml_raises_schema_error(text: str, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        DatasetSchema.from_yaml(text)


def test_duplicate_column_names_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="distinct"):
        DatasetSchema((ColumnSchema("a", "int64"), ColumnSchema("a", "double")))
