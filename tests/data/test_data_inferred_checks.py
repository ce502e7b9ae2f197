"""Issue 13: the checks a dataset gets from its first version don't cry wolf.

Against real stores: a second delivery from the same distribution registers
strictly, expectations on absent columns are refused when saved, key columns
never drift, and integers with missing values (floats) count as integers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.artifacts import ArtifactStore
from loopml.data import ColumnSchema, DataClient, expect
from loopml.errors import DataValidationError, SchemaError, UnknownColumnError
from loopml.store import open_store


@pytest.fixture
def data(store_uri: str, tmp_path: Path) -> Iterator[DataClient]:
    store = open_store(store_uri)
    yield DataClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


def _delivery(rng: np.random.Generator, rows: int, first_id: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + rows),
            "x": rng.normal(0.0, 1.0, rows),
            "income": rng.lognormal(10.0, 0.8, rows),
            "visits": rng.poisson(2.0, rows),
            "segment": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
        }
    )


def test_deliveries_from_the_same_distribution_register_strictly(data: DataClient) -> None:
    """The issue's report: ``x: in_range(-3.8994, 3.066): 1 row(s) fail`` on a second sample,
    and an unkeyed id column failing on every new row."""
    rng = np.random.default_rng(13)
    data.register("d", _delivery(rng, 1_000, 0), project="p")
    for number in range(2, 7):
        delivery = _delivery(rng, 1_000, number * 1_000)
        version = data.register("d", delivery, project="p", strict=True)
        assert (version.version, version.status, version.report_passed) == (number, "ready", True)
    _, schema, _ = data.get_schema("d", project="p")
    assert (schema.column("id").min, schema.column("id").max) == (None, None)
    assert schema.column("segment").allowed == ("a", "b", "c")


def test_a_real_shift_is_still_quarantined(data: DataClient) -> None:
    rng = np.random.default_rng(14)
    data.register("d", _delivery(rng, 1_000, 0), project="p")
    shifted = _delivery(rng, 1_000, 1_000)
    shifted["x"] = shifted["x"] * 10
    shifted.loc[::50, "segment"] = "z"
    with pytest.raises(DataValidationError) as raised:
        data.register("d", shifted, project="p", strict=True)
    report = raised.value.report
    assert report is not None
    assert {c.column for c in report.failed_checks} == {"x", "segment"}


# -- expectations on columns that do not exist ------------------------------------------------


@pytest.mark.parametrize(
    ("expectation", "unknown"),
    [
        (expect.between("incme", 0, 1), "incme"),
        (expect.not_null_rate("Income"), "Income"),
        (expect.unique("id", "segmnt"), "segmnt"),
        (expect.rule("x <= ceiling"), "ceiling"),
        (expect.fresh("updated_at", "1d"), "updated_at"),
    ],
)
def test_an_expectation_on_an_unknown_column_is_refused_when_saved(
    data: DataClient, expectation: object, unknown: str
) -> None:
    data.register("d", _delivery(np.random.default_rng(1), 50, 0), project="p")
    good = expect.between("income", 0, None)
    with pytest.raises(UnknownColumnError) as raised:
        data.save_schema("d", project="p", expectations=[good, expectation])  # type: ignore[list-item]
    message = str(raised.value)
    assert "Expectation #2" in message and repr(unknown) in message
    assert "['id', 'x', 'income', 'visits', 'segment']" in message
    assert raised.value.columns == (unknown,)
    assert isinstance(raised.value, SchemaError | KeyError)
    assert data.get_schema("d", project="p")[0] == 1  # nothing saved


def test_unknown_columns_in_expectation_yaml_are_refused_too(data: DataClient) -> None:
    data.register("d", _delivery(np.random.default_rng(2), 50, 0), project="p")
    with pytest.raises(UnknownColumnError, match=r"\['agee'\]"):
        data.save_schema("d", project="p", expectations="- {kind: range, column: agee, min: 0}\n")
    assert data.get_schema("d", project="p")[0] == 1


def test_dropping_a_column_that_an_expectation_reads_is_refused(data: DataClient) -> None:
    data.register("d", pd.DataFrame({"a": [1, 2], "b": [3, 4]}), project="p")
    data.save_schema("d", project="p", expectations=[expect.between("b", 0, 10)])
    _, schema, _ = data.get_schema("d", project="p")
    # b is still in the data's newest version, so a schema without it may still check it
    assert data.save_schema("d", project="p", schema=schema.without_column("b")) == 3
    renamed = schema.with_column(ColumnSchema("c", "int64"))
    data.register("d", pd.DataFrame({"a": [5], "c": [6]}), project="p")
    with pytest.raises(UnknownColumnError, match=r"\['b'\].*its columns are \['a', 'c'\]"):
        data.save_schema("d", project="p", schema=renamed.without_column("b"))


def test_table_wide_and_custom_expectations_need_no_column(data: DataClient) -> None:
    data.register("d", pd.DataFrame({"a": [1, 2]}), project="p")
    checks = [expect.row_count(min=1), expect.custom("math:isfinite")]
    assert data.save_schema("d", project="p", expectations=checks) == 2


# -- key columns in diffs -------------------------------------------------------------------


@pytest.mark.parametrize("key", [["id"], None], ids=["declared", "id-like"])
def test_diff_does_not_report_key_columns_as_drifted(
    data: DataClient, key: list[str] | None
) -> None:
    rng = np.random.default_rng(3)
    data.register("d", _delivery(rng, 2_000, 0), project="p", key=key)
    data.register("d", _delivery(rng, 2_000, 2_000), project="p")
    diff = data.diff("d:1", "d:2", project="p")
    column = diff.columns["id"]
    assert column.key and column.psi is None and not column.drifted
    assert "id" not in diff.drifted_columns
    assert not diff.columns["x"].key and diff.columns["x"].psi is not None
    assert diff.to_dict()["columns"][0]["key"] is True


# -- integers with missing values -----------------------------------------------------------


def test_integers_with_missing_values_are_integers(data: DataClient) -> None:
    rng = np.random.default_rng(4)
    counts = rng.poisson(3.0, 500).astype(float)
    counts[::10] = np.nan  # pandas stores integers with gaps as floats
    data.register("d", pd.DataFrame({"n": counts}), project="p")
    _, schema, _ = data.get_schema("d", project="p")
    n = schema.column("n")
    assert n.type == "double" and n.nullable
    assert n.min is not None and n.max is not None and n.min == int(n.min) and n.max == int(n.max)

    complete = pd.DataFrame({"n": rng.poisson(3.0, 500)})  # the same counts, now int64
    version = data.register("d", complete, project="p", strict=True)
    assert version.columns == (("n", "int64"),) and version.report_passed

    # and an int64 schema accepts whole-number floats, failing each fraction
    narrow = schema.with_column(ColumnSchema("n", "int64", min=0, max=20))
    data.save_schema("d", project="p", schema=narrow)
    report = data.validate(pd.DataFrame({"n": [1.0, None, 2.5, 30.0]}), against="d", project="p")
    failed = {c.name: (c.failing_count, c.failing_sample) for c in report.failed_checks}
    assert failed == {
        "n: type int64 (whole numbers)": (1, [{"row": 2, "value": 2.5}]),
        "n: in_range(0, 20)": (1, [{"row": 3, "value": 30}]),
    }
    assert report.schema_diff.empty
