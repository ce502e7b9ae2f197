"""The data service contract: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import loopml
import loopml.data
from loopml.artifacts import ArtifactStore
from loopml.data import DataClient, expect
from loopml.errors import (
    DatasetNotFound,
    DataSourceError,
    DataValidationError,
    InvalidParameter,
    SchemaError,
)
from loopml.store import Node, open_store


@pytest.fixture
def data(store_uri: str, tmp_path: Path) -> Iterator[DataClient]:
    store = open_store(store_uri)
    yield DataClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


def _credit(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(18, 90, rows),
            "income": rng.normal(50_000, 10_000, rows).round(2),
            "state": rng.choice(["CA", "NY", "TX"], rows),
            "default": rng.integers(0, 2, rows),
        }
    )


def test_register_versions_and_loads_back(data: DataClient) -> None:
    frame = _credit()
    v1 = data.register("credit", frame, project="p", key=["id"], description="first")
    assert (v1.ref, v1.status, v1.row_count, v1.column_count) == ("credit:1", "ready", 200, 5)
    assert v1.profile.columns["age"].min >= 18
    loaded = data.load("credit:1", project="p")
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    v2 = data.register("credit", _credit(seed=1), project="p")
    assert v2.version == 2
    assert data.get_version("credit@latest", project="p").version == 2
    assert data.get_version("credit", project="p").version == 2
    assert [v.version for v in data.list_versions("credit", project="p")] == [1, 2]
    [listed] = data.list_datasets(project="p")
    assert (listed.name, listed.latest_version, listed.version_count) == ("credit", 2, 2)
    assert listed.key_columns == ("id",)


def test_identical_data_returns_the_existing_version(data: DataClient) -> None:
    frame = _credit()
    v1 = data.register("credit", frame, project="p", key=["id"])
    shuffled = frame.sample(frac=1, random_state=3)[list(reversed(frame.columns))]
    assert data.register("credit", shuffled, project="p").ref == v1.ref
    assert data.register("credit", pa.Table.from_pandas(frame), project="p").ref == v1.ref
    assert len(data.list_versions("credit", project="p")) == 1


def test_without_a_key_row_order_makes_a_new_version(data: DataClient) -> None:
    frame = _credit()
    data.register("plain", frame, project="p")
    reordered = frame.iloc[::-1].reset_index(drop=True)
    assert data.register("plain", reordered, project="p").version == 2


def test_strict_registration_quarantines_bad_data_and_keeps_it(data: DataClient) -> None:
    data.register("credit", _credit(), project="p", key=["id"])
    # Inferred ranges are widened to tolerate new samples (an age of -1 passes the
    # inferred one): domain limits are expectations.
    checks = [expect.between("income", 0, 1_000_000), expect.between("age", 0, 120)]
    data.save_schema("credit", project="p", expectations=checks)
    bad = _credit(seed=5)
    bad.loc[3:9, "age"] = -1
    bad.loc[0, "income"] = -5.0
    with pytest.raises(DataValidationError) as caught:
        data.register("credit", bad, project="p", strict=True)
    message = str(caught.value)
    assert "credit:2" in message and "quarantined" in message
    assert "age" in message and "income" in message
    assert caught.value.version == "credit:2"

    versions = data.list_versions("credit", project="p")
    assert [(v.version, v.status) for v in versions] == [(1, "ready"), (2, "quarantined")]
    assert data.get_version("credit@latest", project="p").version == 1
    assert len(data.load("credit:2", project="p")) == 200  # kept, visible, loadable by number
    report = data.report("credit:2", project="p")
    assert report is not None and not report.passed
    failing = {c.column: c.failing_count for c in report.checks if not c.passed}
    assert failing["age"] == 7


def test_non_strict_registration_keeps_the_failed_report(data: DataClient) -> None:
    data.register("credit", _credit(), project="p")
    bad = _credit(seed=2)
    bad.loc[0, "age"] = 500
    version = data.register("credit", bad, project="p")
    assert (version.status, version.report_passed) == ("ready", False)


def test_missing_and_retyped_columns_are_reported(data: DataClient) -> None:
    data.register("credit", _credit(), project="p")
    changed = _credit(seed=4).drop(columns=["state"]).assign(age=lambda f: f["age"].astype(str))
    report = data.validate(changed, against="credit@latest", project="p")
    assert not report.passed
    assert report.schema_diff.missing == ("state",)
    assert "age" in report.schema_diff.retyped


def test_split_is_reproducible_and_records_lineage(data: DataClient) -> None:
    parent = data.register("credit", _credit(1000), project="p")
    parts = data.split("credit:1", {"train": 0.8, "test": 0.2}, project="p", seed=7)
    again = data.split("credit:1", {"train": 0.8, "test": 0.2}, project="p", seed=7)
    assert {k: v.content_hash for k, v in parts.items()} == {
        k: v.content_hash for k, v in again.items()
    }
    assert {k: v.version for k, v in again.items()} == {"train": 1, "test": 1}  # deduplicated
    assert parts["train"].row_count + parts["test"].row_count == 1000
    assert parts["train"].parents == ("credit:1",)
    stratified = data.split(
        "credit:1", {"a": 0.5, "b": 0.5}, project="p", seed=1, stratify="default"
    )
    rates = [data.load(v.ref, project="p")["default"].mean() for v in stratified.values()]
    assert abs(rates[0] - rates[1]) < 0.02
    with data.store.read() as conn:
        from loopml.store import walk

        downstream = walk(conn, Node("dataset_version", str(parent.id)), "downstream")
    assert {e.relation for e in downstream} == {"derived"}
    with pytest.raises(InvalidParameter, match="sum to 1"):
        data.split("credit:1", {"a": 0.5, "b": 0.6}, project="p", seed=1)


def test_bad_inputs_change_nothing(data: DataClient, tmp_path: Path) -> None:
    data.register("credit", _credit(), project="p")
    truncated = tmp_path / "cut.parquet"
    _credit().to_parquet(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    for source in (truncated, empty, tmp_path / "missing.csv", tmp_path / "data.xlsx"):
        with pytest.raises((DataSourceError, InvalidParameter)):
            data.register("credit", source, project="p")
    mixed = pd.DataFrame({"x": [1, "two", 3.0]})
    with pytest.raises(DataSourceError, match="x"):
        data.register("credit", mixed, project="p")
    with pytest.raises(SchemaError):
        data.save_schema("credit", project="p", schema="columns: [unclosed")
    with pytest.raises(DatasetNotFound):
        data.get_version("nope:1", project="p")
    with pytest.raises(DatasetNotFound, match="no version 9"):
        data.get_version("credit:9", project="p")
    with pytest.raises(DatasetNotFound):
        data.validate(_credit(), against="nope@latest", project="p")
    assert [v.version for v in data.list_versions("credit", project="p")] == [1]
    assert data.get_schema("credit", project="p")[0] == 1


def test_schema_edit_round_trip(data: DataClient) -> None:
    data.register("credit", _credit(), project="p")
    revision, schema, expectations = data.get_schema("credit", project="p")
    assert (revision, expectations) == (1, [])
    assert set(schema.columns) == {"id", "age", "income", "state", "default"}
    text = schema.to_yaml()
    assert data.save_schema("credit", project="p", schema=text) == 2
    assert data.get_schema("credit", project="p")[1].to_yaml() == text


def test_diff_between_versions(data: DataClient) -> None:
    data.register("credit", _credit(), project="p")
    shifted = _credit(seed=9).assign(income=lambda f: f["income"] + 30_000, extra=1)
    data.register("credit", shifted, project="p")
    diff = data.diff("credit:1", "credit:2", project="p")
    assert diff.has_changes
    assert [name for name, _ in diff.added] == ["extra"]
    assert "income" in diff.drifted_columns


def test_fluent_api_records_run_lineage(fluent_store: str) -> None:
    with loopml.start_run(project="p") as run:
        version = loopml.data.register("credit", _credit(), project="p")
        loopml.data.load("credit:1", project="p")
    client = loopml.tracking.get_client()
    downstream = client.lineage(Node("run", run.id), "downstream", max_depth=1)
    upstream = client.lineage(Node("run", run.id), "upstream", max_depth=1)
    node = Node("dataset_version", str(version.id))
    assert [(e.dst, e.relation) for e in downstream] == [(node, "output")]
    assert [(e.src, e.relation) for e in upstream] == [(node, "input")]
