"""Soft delete and restore of dataset versions, on SQLite and PostgreSQL.

A deleted version is skipped by ``name``/``@latest``, hidden from listings unless
asked, its data refused with :class:`DatasetVersionDeleted`; its metadata stays
readable. Numbers are never reused; lineage references are reported, not blocking.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from loopml.data import DataClient, DatasetVersion
from loopml.errors import (
    DatasetNotFound,
    DatasetVersionDeleted,
    DatasetVersionNotDeleted,
    DatasetVersionReferenced,
    InvalidParameter,
)
from loopml.store import Node, tables
from loopml.tracking import TrackingClient

P = "p"


def _frame(rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"id": range(rows), "x": [i / 10 + shift for i in range(rows)]})


@pytest.fixture
def tracking(store_uri: str, tmp_path: Path) -> Iterator[TrackingClient]:
    client = TrackingClient(store_uri, str(tmp_path / "artifacts"))
    yield client
    client.close()


@pytest.fixture
def data(tracking: TrackingClient) -> DataClient:
    return DataClient(tracking.store, tracking.artifacts)


@pytest.fixture
def three(data: DataClient) -> list[DatasetVersion]:
    """Dataset ``ds`` with versions 1, 2 and 3 (all ready)."""
    return [data.register("ds", _frame(10 + i), project=P) for i in range(3)]


def _quiet_delete(data: DataClient, ref: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetVersionReferenced)
        data.delete(ref, project=P)


def test_a_deleted_latest_is_skipped_but_readable_by_number(
    data: DataClient, three: list[DatasetVersion]
) -> None:
    deletion = data.delete("ds:3", project=P)
    assert deletion.version.ref == "ds:3" and deletion.version.deleted
    assert deletion.references == ()
    assert data.get_version("ds", project=P).ref == "ds:2"
    assert data.get_version("ds@latest", project=P).ref == "ds:2"
    # Metadata of the deleted version: still there, and it says it is deleted.
    meta = data.get_version("ds:3", project=P)
    assert meta.deleted_at is not None and meta.row_count == 12
    assert "deleted" in repr(meta)
    assert "deleted" in meta._repr_html_()


def test_loading_a_deleted_version_is_refused_with_how_to_restore(
    data: DataClient, three: list[DatasetVersion]
) -> None:
    data.delete("ds:2", project=P)
    with pytest.raises(DatasetVersionDeleted) as caught:
        data.load("ds:2", project=P)
    message = str(caught.value)
    assert "ds:2" in message and "deleted" in message
    assert "loopml data restore ds:2 -p p" in message and "restore('ds:2')" in message
    assert caught.value.ref == "ds:2" and caught.value.deleted_at > 0
    # Still a DatasetNotFound (a KeyError) for callers that catch that.
    assert isinstance(caught.value, DatasetNotFound) and isinstance(caught.value, KeyError)
    with pytest.raises(DatasetVersionDeleted):
        data.load_table("ds:2", project=P)
    with pytest.raises(DatasetVersionDeleted):
        data.split("ds:2", {"a": 0.5, "b": 0.5}, project=P, seed=1)
    assert len(data.load("ds:1", project=P)) == 10


def test_listings_hide_deleted_versions_unless_asked(
    data: DataClient, three: list[DatasetVersion]
) -> None:
    data.delete("ds:3", project=P)
    assert [v.version for v in data.list_versions("ds", project=P)] == [1, 2]
    assert [v.version for v in data.list_versions("ds", project=P, deleted="show")] == [1, 2, 3]
    only = data.list_versions("ds", project=P, deleted="only")
    assert [(v.version, v.deleted) for v in only] == [(3, True)]
    with pytest.raises(InvalidParameter, match=r"'deleted' parameter .* got 'yes'"):
        data.list_versions("ds", project=P, deleted="yes")  # type: ignore[arg-type]
    (dataset,) = data.list_datasets(project=P)
    assert (dataset.latest_version, dataset.version_count, dataset.deleted_count) == (2, 2, 1)


def test_deleting_the_only_live_version_leaves_no_usable_one(data: DataClient) -> None:
    data.register("solo", _frame(5), project=P)
    data.delete("solo", project=P, version=1)
    with pytest.raises(DatasetNotFound) as caught:
        data.get_version("solo", project=P)
    message = str(caught.value)
    assert "no usable version" in message and "deleted: 1" in message
    assert "loopml data restore solo:1 -p p" in message
    (dataset,) = data.list_datasets(project=P)
    assert (dataset.latest_version, dataset.version_count, dataset.deleted_count) == (None, 0, 1)
    assert data.list_versions("solo", project=P) == []
    restored = data.restore("solo:1", project=P)
    assert not restored.deleted
    assert data.get_version("solo", project=P).ref == "solo:1"
    assert len(data.load("solo", project=P)) == 5


def test_deleted_and_quarantined_are_both_named(data: DataClient) -> None:
    data.register("q", _frame(5), project=P)
    data.save_schema("q", project=P, expectations="- {kind: row_count, min: 5, max: 5}")
    with pytest.raises(Exception, match="quarantined"):
        data.register("q", _frame(6), project=P, strict=True)
    data.delete("q:1", project=P)
    with pytest.raises(DatasetNotFound, match=r"deleted: 1; quarantined: 2"):
        data.get_version("q@latest", project=P)


def test_restoring_a_live_version_and_deleting_twice_are_clear_errors(
    data: DataClient, three: list[DatasetVersion]
) -> None:
    with pytest.raises(DatasetVersionNotDeleted, match=r"ds:1 in project 'p' is not deleted"):
        data.restore("ds:1", project=P)
    data.delete("ds:1", project=P)
    first = data.get_version("ds:1", project=P).deleted_at
    with pytest.raises(DatasetVersionDeleted, match="was deleted on"):
        data.delete("ds:1", project=P)
    assert data.get_version("ds:1", project=P).deleted_at == first  # unchanged


@pytest.mark.parametrize(
    ("ref", "version", "match"),
    [
        ("ds", None, "delete needs a version number: 'ds' names a dataset"),
        ("ds@latest", None, "delete needs a version number"),
        ("ds:2", 2, "Give the version of delete once"),
        ("ds@latest", 2, "Give the version of delete once"),
        ("ds", 0, "'version' parameter of delete must be a positive int; got 0"),
        ("ds", True, "'version' parameter of delete must be a positive int; got True"),
        ("ds@2", None, "not a dataset reference"),
    ],
)
def test_a_version_must_be_named_once_by_number(
    data: DataClient, three: list[DatasetVersion], ref: str, version: int | None, match: str
) -> None:
    with pytest.raises(InvalidParameter, match=match):
        data.delete(ref, project=P, version=version)
    assert [v.version for v in data.list_versions("ds", project=P)] == [1, 2, 3]


def test_unknown_versions_and_datasets(data: DataClient, three: list[DatasetVersion]) -> None:
    with pytest.raises(DatasetNotFound, match="has no version 9"):
        data.delete("ds:9", project=P)
    with pytest.raises(DatasetNotFound, match="No dataset named 'nope'"):
        data.restore("nope:1", project=P)


def test_numbers_are_never_reused(data: DataClient, three: list[DatasetVersion]) -> None:
    data.delete("ds:3", project=P)
    assert data.register("ds", _frame(50), project=P).version == 4
    # Data identical to a deleted version becomes a new live version; the twin stays deleted.
    again = data.register("ds", _frame(12), project=P)
    assert again.is_new and again.version == 5 and again.content_hash == three[2].content_hash
    assert data.get_version("ds:3", project=P).deleted
    # Identical to a live version: that version, as before.
    assert data.register("ds", _frame(10), project=P).ref == "ds:1"


def test_a_deleted_version_cannot_be_a_parent(
    data: DataClient, three: list[DatasetVersion]
) -> None:
    data.delete("ds:1", project=P)
    with pytest.raises(DatasetVersionDeleted, match="ds:1"):
        data.register("child", _frame(3), project=P, parents=["ds:1"])
    assert data.list_datasets(project=P)[0].name == "ds"  # nothing stored


def test_metadata_of_a_deleted_version_stays_readable(
    data: DataClient, three: list[DatasetVersion]
) -> None:
    data.delete("ds:1", project=P)
    diff = data.diff("ds:1", "ds:2", project=P)
    assert diff.row_count.old == 10 and diff.row_count.new == 11
    assert data.report("ds:1", project=P) is None  # the first version ran no checks
    report = data.report("ds:2", project=P)
    assert report is not None and report.passed
    revision, _schema, _expectations = data.schema_of_version("ds:1", project=P)
    assert revision == 1
    assert data.validate(_frame(10), against="ds:1", project=P).passed


def test_live_lineage_references_are_reported_not_blocking(
    tracking: TrackingClient, data: DataClient
) -> None:
    from sklearn.linear_model import LinearRegression

    from loopml.registry._client import RegistryClient

    source = data.register("src", _frame(20), project=P)
    used = tracking.create_run(project=P, name="fit", capture_context=False)
    data.load(source.ref, project=P, run_id=used)
    step = tracking.create_run(project=P, name="prepare", kind="step", capture_context=False)
    tracking.add_lineage(Node("run", step), Node("dataset_version", str(source.id)), "output")
    gone = tracking.create_run(project=P, name="old", capture_context=False)
    data.load(source.ref, project=P, run_id=gone)
    with tracking.store.write() as conn:  # a deleted run does not count
        conn.execute(update(tables.RUN).where(tables.RUN.c.id == gone).values(deleted_at=1))
    child = data.register("child", _frame(4), project=P, parents=[source.ref])
    dead = data.register("dead", _frame(6), project=P, parents=[source.ref])
    data.delete(dead.ref, project=P)  # a deleted child does not count
    frame = _frame(20)
    model = LinearRegression().fit(frame[["id"]], frame["x"])
    registry = RegistryClient(tracking.store, tracking.artifacts)
    registry.register(model, "m", project=P, run_id=used)

    with pytest.warns(DatasetVersionReferenced, match=r"src:1 is deleted but still referred"):
        deletion = data.delete(source.ref, project=P)
    assert deletion.version.deleted
    found = {(r.kind, r.relation, r.label) for r in deletion.references}
    assert found == {
        ("run", "input", f"experiment fit (run {used})"),
        ("run", "output", f"pipeline step prepare (run {step})"),
        ("model_version", "trained_on", "model version m/1 (candidate)"),
        ("dataset_version", "derived", f"dataset version {child.ref}"),
    }
    assert gone not in {r.id for r in deletion.references}
    assert data.references(source.ref, project=P) == list(deletion.references)


def test_a_version_without_references_deletes_without_warning(
    data: DataClient, three: list[DatasetVersion]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.delete("ds:2", project=P).references == ()


@settings(
    max_examples=15,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(
    steps=st.lists(st.tuples(st.sampled_from(["delete", "restore"]), st.integers(1, 3)), max_size=8)
)
def test_any_sequence_of_deletes_and_restores_matches_a_model(
    data: DataClient, steps: list[tuple[str, int]]
) -> None:
    name = "prop"  # one dataset for every example: each starts by restoring all three
    if not data.list_datasets(project=P):
        for i in range(3):
            data.register(name, _frame(3 + i), project=P)
    for version in range(1, 4):  # start from all live
        if data.get_version(f"{name}:{version}", project=P).deleted:
            data.restore(f"{name}:{version}", project=P)
    live = {1, 2, 3}
    for action, version in steps:
        ref = f"{name}:{version}"
        if action == "delete":
            if version in live:
                _quiet_delete(data, ref)
                live.discard(version)
            else:
                with pytest.raises(DatasetVersionDeleted):
                    data.delete(ref, project=P)
        elif version in live:
            with pytest.raises(DatasetVersionNotDeleted):
                data.restore(ref, project=P)
        else:
            assert not data.restore(ref, project=P).deleted
            live.add(version)
    assert [v.version for v in data.list_versions(name, project=P)] == sorted(live)
    hidden = data.list_versions(name, project=P, deleted="only")
    assert [v.version for v in hidden] == sorted({1, 2, 3} - live)
    if live:
        assert data.get_version(name, project=P).version == max(live)
    else:
        with pytest.raises(DatasetNotFound, match="no usable version"):
            data.get_version(name, project=P)
