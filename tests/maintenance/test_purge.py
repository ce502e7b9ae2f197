"""gc purges runs and dataset versions deleted longer ago than the grace, on every back-end:
their rows in every table and then the blobs only they used; what is recent, live or
still used stays."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, update

from loopml import settings
from loopml.data import DataClient, DatasetVersion
from loopml.errors import DatasetVersionReferenced, InvalidParameter, SettingError
from loopml.maintenance import PurgeReport, collect_garbage
from loopml.maintenance._purge import purge_deleted
from loopml.pipelines import PipelineRun
from loopml.store import Node, tables
from loopml.tracking import TrackingClient, get_client

_PROJECT = str(Path(__file__).parents[1] / "pipelines" / "project")
if _PROJECT not in sys.path:  # at collection, before a forkserver copies sys.path
    sys.path.insert(0, _PROJECT)

_DAY_MS = 86_400_000


def _age_blobs(client: TrackingClient) -> None:
    """Make every blob look written long ago (so only references keep them)."""
    past = time.time() - 7200
    for blob in (Path(client.artifacts.uri) / "blobs").rglob("*"):
        if blob.is_file():
            os.utime(blob, (past, past))


def _deleted_days_ago(client: TrackingClient, run_ids: list[str], days: float) -> None:
    with client.store.write() as conn:
        conn.execute(
            update(tables.RUN)
            .where(tables.RUN.c.id.in_(run_ids))
            .values(deleted_at=tables.RUN.c.deleted_at - int(days * _DAY_MS))
        )


def _rows(client: TrackingClient, run_id: str) -> dict[str, int]:
    """How many rows of each run-keyed table (and notes, edges) mention the run."""
    counts: dict[str, int] = {}
    with client.store.read() as conn:
        for table in (
            tables.RUN,
            tables.PARAM,
            tables.TAG,
            tables.METRIC,
            tables.LATEST_METRIC,
            tables.RUN_ARTIFACT,
        ):
            column = table.c.id if table is tables.RUN else table.c.run_id
            counts[table.name] = conn.execute(
                select(func.count()).select_from(table).where(column == run_id)
            ).scalar_one()
        note = tables.NOTE
        counts["note"] = conn.execute(
            select(func.count()).select_from(note).where(note.c.object_id == run_id)
        ).scalar_one()
        edge = tables.LINEAGE_EDGE
        counts["lineage_edge"] = conn.execute(
            select(func.count())
            .select_from(edge)
            .where((edge.c.src_id == run_id) | (edge.c.dst_id == run_id))
        ).scalar_one()
    return counts


def _full_run(client: TrackingClient, tmp_path: Path, content: bytes, **kwargs: object) -> str:
    run_id = client.create_run(
        project="p", params={"lr": 0.1}, tags={"team": "x"}, capture_context=False, **kwargs
    )  # type: ignore[arg-type]
    client.log_metric(run_id, "loss", 0.5)
    source = tmp_path / f"{run_id}.bin"
    source.write_bytes(content)
    client.log_artifact(run_id, source, "weights.bin")
    client.log_note("run", run_id, "a note")
    client.end_run(run_id)
    return run_id


def test_old_deleted_runs_go_with_their_rows_and_blobs(
    client: TrackingClient, tmp_path: Path
) -> None:
    old = _full_run(client, tmp_path, b"only the old run has this")
    child = _full_run(client, tmp_path, b"and its child this", parent_id=old)
    recent = _full_run(client, tmp_path, b"recently deleted")
    live = _full_run(client, tmp_path, b"alive")
    shared = _full_run(client, tmp_path, b"alive")  # the same bytes as the live run
    client.delete_runs([old, recent, shared])
    _deleted_days_ago(client, [old, child, shared], 31)
    _age_blobs(client)
    digests = {r: client.get_run(r).artifacts[0].digest for r in (old, child, recent, live)}

    dry = collect_garbage(client.store, client.artifacts, grace_seconds=0)
    assert dry.dry_run and sorted(dry.purged.runs) == sorted([old, child, shared])
    assert {d for d, _ in dry.unreferenced} == {digests[old], digests[child]}
    assert _rows(client, old)["run"] == 1 and client.artifacts.exists(digests[old])

    done = collect_garbage(client.store, client.artifacts, dry_run=False, grace_seconds=0)
    assert sorted(done.purged.runs) == sorted(dry.purged.runs)
    assert {d for d, _ in done.unreferenced} == {d for d, _ in dry.unreferenced}
    for run_id in (old, child, shared):
        assert set(_rows(client, run_id).values()) == {0}, run_id
    assert not client.artifacts.exists(digests[old])
    assert not client.artifacts.exists(digests[child])
    # Recently deleted and live runs are untouched, and so is the blob the live run shares.
    assert client.get_run(recent).deleted and client.artifacts.exists(digests[recent])
    assert client.artifacts.exists(digests[live])
    assert client.download_artifact(live, "weights.bin", tmp_path / "back").read_bytes() == (
        b"alive"
    )
    again = collect_garbage(client.store, client.artifacts, dry_run=False, grace_seconds=0)
    assert again.purged.runs == [] and again.unreferenced == []


def test_the_grace_decides_what_is_old_enough(client: TrackingClient, tmp_path: Path) -> None:
    run_id = _full_run(client, tmp_path, b"x")
    client.delete_run(run_id)
    _deleted_days_ago(client, [run_id], 2)
    kept = collect_garbage(
        client.store,
        client.artifacts,
        dry_run=False,
        grace_seconds=0,
        deleted_grace_seconds=3 * 86400,
    )
    assert kept.purged.runs == [] and client.get_run(run_id).deleted
    default = collect_garbage(client.store, client.artifacts, dry_run=False, grace_seconds=0)
    assert default.deleted_grace_seconds == 30 * 86400 and default.purged.runs == []
    gone = collect_garbage(
        client.store,
        client.artifacts,
        dry_run=False,
        grace_seconds=0,
        deleted_grace_seconds=86400,
    )
    assert gone.purged.runs == [run_id]


def test_a_run_with_a_child_that_stays_is_kept(client: TrackingClient, tmp_path: Path) -> None:
    parent = _full_run(client, tmp_path, b"p")
    child = _full_run(client, tmp_path, b"c", parent_id=parent)
    client.delete_run(parent)
    client.restore_run(parent)
    client.delete_run(child)  # deleted on its own ...
    client.delete_run(parent)
    _deleted_days_ago(client, [parent], 40)  # ... and more recently than its parent's grace
    report = collect_garbage(
        client.store,
        client.artifacts,
        dry_run=False,
        grace_seconds=0,
        deleted_grace_seconds=30 * 86400,
    )
    assert report.purged.runs == []
    [kept] = report.purged.kept
    assert (kept.kind, kept.id) == ("run", parent)
    assert f"child run {child}" in kept.reason


def _deleted_version(
    client: TrackingClient, data: DataClient, name: str, days: float
) -> DatasetVersion:
    version = data.register(name, pd.DataFrame({"v": [name] * 3}), project="p")
    with client.store.write() as conn:
        conn.execute(
            update(tables.DATASET_VERSION)
            .where(tables.DATASET_VERSION.c.id == version.id)
            .values(deleted_at=int(time.time() * 1000) - int(days * _DAY_MS))
        )
    return version


def test_dataset_versions_go_unless_something_still_uses_them(
    client: TrackingClient, tmp_path: Path
) -> None:
    data = DataClient(client.store, client.artifacts)
    unused = _deleted_version(client, data, "unused", 40)
    recent = _deleted_version(client, data, "recent", 1)
    loaded = _deleted_version(client, data, "loaded", 40)
    trained = _deleted_version(client, data, "trained", 40)
    reader = client.create_run(project="p", capture_context=False)
    client.add_lineage(Node("dataset_version", str(loaded.id)), Node("run", reader), "input")
    client.end_run(reader)
    _registered_model_trained_on(client, str(trained.id))
    _age_blobs(client)

    dry = collect_garbage(client.store, client.artifacts, grace_seconds=0)
    assert [label for _, label in dry.purged.dataset_versions] == ["unused:1"]
    reasons = {item.label: item.reason for item in dry.purged.kept}
    assert reasons["loaded:1"] == f"run {reader} still references it (input)"
    assert reasons["trained:1"].startswith("model version m/1 was trained on it")
    assert unused.digest in {d for d, _ in dry.unreferenced}

    collect_garbage(client.store, client.artifacts, dry_run=False, grace_seconds=0)
    assert not client.artifacts.exists(unused.digest)
    for version in (recent, loaded, trained):
        assert client.artifacts.exists(version.digest)
    with client.store.read() as conn:
        left = set(conn.execute(select(tables.DATASET_VERSION.c.id)).scalars())
    assert left == {recent.id, loaded.id, trained.id}


def _registered_model_trained_on(client: TrackingClient, dataset_version_id: str) -> None:
    """A model version linked to the dataset version the way the registry links it."""
    from sklearn.dummy import DummyClassifier

    from loopml.registry import RegistryClient

    model = DummyClassifier().fit([[0], [1]], [0, 1])
    version = RegistryClient(client.store, client.artifacts).register(model, "m", project="p")
    client.add_lineage(
        Node("dataset_version", dataset_version_id),
        Node("model_version", str(version.id)),
        "trained_on",
    )


def test_a_run_a_model_was_trained_by_is_kept(client: TrackingClient, tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    from loopml.registry import RegistryClient

    run_id = _full_run(client, tmp_path, b"r")
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    RegistryClient(client.store, client.artifacts).register(model, "m", project="p", run_id=run_id)
    client.delete_run(run_id)
    _deleted_days_ago(client, [run_id], 40)
    report = collect_garbage(client.store, client.artifacts, dry_run=False, grace_seconds=0)
    assert report.purged.runs == []
    assert [(k.id, k.reason) for k in report.purged.kept] == [
        (run_id, "model version m/1 was trained by it")
    ]
    assert client.get_run(run_id).deleted


def test_gc_refuses_a_negative_deleted_grace(client: TrackingClient) -> None:
    with pytest.raises(InvalidParameter, match="deleted_grace_seconds"):
        collect_garbage(client.store, client.artifacts, grace_seconds=0, deleted_grace_seconds=-1)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("30d", 30 * 86400.0),
        ("12h", 43200.0),
        ("1.5m", 90.0),
        ("0s", 0.0),
        ("90", 90.0),
        ("2W", 1209600.0),
    ],
)
def test_the_deleted_grace_setting_reads_durations(
    monkeypatch: pytest.MonkeyPatch, raw: str, seconds: float
) -> None:
    monkeypatch.setenv("LOOPML_GC_DELETED_GRACE", raw)
    assert settings.get("LOOPML_GC_DELETED_GRACE") == seconds


@pytest.mark.parametrize("raw", ["soon", "-1d", "inf", "nan", "d", ""])
def test_a_bad_deleted_grace_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("LOOPML_GC_DELETED_GRACE", raw)
    with pytest.raises(SettingError, match=r"LOOPML_GC_DELETED_GRACE.*duration"):
        settings.get("LOOPML_GC_DELETED_GRACE")


# -- what a purge must keep ---------------------------------------------------------------


def _gc(client: TrackingClient, **kwargs: float) -> PurgeReport:
    return collect_garbage(
        client.store, client.artifacts, dry_run=False, grace_seconds=0, **kwargs
    ).purged


def _set_deleted(client: TrackingClient, run_ids: list[str], days: float) -> None:
    """Mark runs deleted ``days`` ago directly (as a store from before a refusal holds them)."""
    with client.store.write() as conn:
        conn.execute(
            update(tables.RUN)
            .where(tables.RUN.c.id.in_(run_ids))
            .values(deleted_at=int(time.time() * 1000) - int(days * _DAY_MS))
        )


def _chain(n: int) -> PipelineRun:
    from lp_project import flows

    run: PipelineRun = flows.chain.run(params={"n": n}, max_workers=1)
    assert run.status == "finished"
    return run


def _reload(run: PipelineRun) -> PipelineRun:
    from loopml.pipelines._state import load_pipeline_run

    return load_pipeline_run(get_client().store, run.id)


def test_a_step_run_deleted_alone_stays_with_its_live_pipeline_run(fluent_store: str) -> None:
    client = get_client()
    pipeline = _chain(3)
    step = pipeline.steps["load"].run_id
    assert step is not None
    _set_deleted(client, [step], 40)
    _age_blobs(client)

    purged = _gc(client)
    assert purged.runs == []
    [kept] = purged.kept
    assert kept.id == step and f"step of pipeline run {pipeline.id}" in kept.reason
    again = _reload(pipeline)
    assert again.steps["load"].status == "finished"
    assert again.output("load", trust_executable=True) == [0, 1, 2]


def test_the_runs_a_live_pipeline_run_reuses_or_resumed_from_stay(fluent_store: str) -> None:
    client = get_client()
    first = _chain(4)
    second = _chain(4)  # every step a cache hit of the first run's steps
    assert second.steps["total"].cached_from == first.steps["total"].run_id
    client.delete_run(first.id)
    _set_deleted(client, [first.id, *(s.run_id for s in first.steps.values() if s.run_id)], 40)
    _age_blobs(client)

    purged = _gc(client)
    assert purged.runs == []
    reasons = {item.id: item.reason for item in purged.kept}
    producer = first.steps["total"].run_id
    assert producer is not None and "reuses its outputs (cached)" in reasons[producer]
    assert "child run" in reasons[first.id]
    assert _reload(second).output("total", trust_executable=True) == 12

    # A pipeline run resumed from a deleted one keeps it (and so its steps) too.
    third = _chain(5)
    with client.store.write() as conn:
        conn.execute(
            update(tables.PIPELINE_RUN)
            .where(tables.PIPELINE_RUN.c.run_id == second.id)
            .values(resumed_from=third.id)
        )
    client.delete_run(third.id)
    _set_deleted(client, [third.id, *(s.run_id for s in third.steps.values() if s.run_id)], 40)
    reasons = {item.id: item.reason for item in _gc(client).kept}
    assert reasons[third.id] == f"pipeline run {second.id}, which stays, resumed from it"


def test_a_cached_output_whose_producer_is_gone_names_it(fluent_store: str) -> None:
    """A store purged before gc kept cache producers: the output says what is missing."""
    from lp_project import flows

    from loopml.errors import MaterializerError

    flows.round_trip.run(params={"n": 10}, max_workers=1)
    second = flows.round_trip.run(params={"n": 10}, max_workers=1)
    record = second.steps["centre"]
    assert record.status == "cached" and record.outputs[0].executable
    gone = "0" * 32
    with get_client().store.write() as conn:
        conn.execute(
            update(tables.STEP_RUN)
            .where(tables.STEP_RUN.c.run_id == record.run_id)
            .values(cached_from=gone)
        )
    again = _reload(second)
    with pytest.raises(MaterializerError, match=f"run {gone}, which produced it, no longer"):
        again.output("centre")
    assert again.output("centre", trust_executable=True) == second.output("centre")


def test_a_run_that_produced_a_version_that_stays_is_kept(
    client: TrackingClient, tmp_path: Path
) -> None:
    producer = _full_run(client, tmp_path, b"producer")
    data = DataClient(client.store, client.artifacts)
    out = data.register("out", pd.DataFrame({"b": [1, 2]}), project="p", run_id=producer)
    client.delete_run(producer)
    _deleted_days_ago(client, [producer], 40)

    purged = _gc(client)
    assert purged.runs == []
    assert [(k.id, k.reason) for k in purged.kept] == [
        (producer, "it produced dataset version out:1, which stays (output)")
    ]
    assert _rows(client, producer)["lineage_edge"] == 1

    # Deleted together and both old enough, the run and its version go together.
    data.delete(out.ref, project="p")
    with client.store.write() as conn:
        conn.execute(
            update(tables.DATASET_VERSION)
            .where(tables.DATASET_VERSION.c.id == out.id)
            .values(deleted_at=int(time.time() * 1000) - 40 * _DAY_MS)
        )
    purged = _gc(client)
    assert purged.runs == [producer]
    assert [label for _, label in purged.dataset_versions] == ["out:1"]


def test_an_active_run_is_never_purged(client: TrackingClient) -> None:
    running = client.create_run(project="p", capture_context=False)
    waiting = client.create_run(project="p", capture_context=False)
    client.set_run_status(waiting, "waiting_for_approval")
    client.delete_runs([running, waiting], force=True)
    _deleted_days_ago(client, [running, waiting], 40)

    purged = _gc(client)
    assert purged.runs == []
    reasons = {item.id: item.reason for item in purged.kept}
    assert reasons[running].startswith("it is still running")
    assert reasons[waiting] == "it is waiting for approval"
    client.log_metric(running, "after", 1.0)
    client.end_run(running)
    assert client.get_run(running).metrics["after"] == 1.0


def test_a_deleted_derived_version_goes_and_a_deleted_parent_stays_for_its_child(
    client: TrackingClient,
) -> None:
    data = DataClient(client.store, client.artifacts)
    raw = data.register("raw", pd.DataFrame({"a": [1, 2]}), project="p")
    der = data.register("der", pd.DataFrame({"a": [2, 4]}), project="p", parents=["raw:1"])
    data.delete(der.ref, project="p")
    old = int(time.time() * 1000) - 40 * _DAY_MS
    version = tables.DATASET_VERSION
    with client.store.write() as conn:
        conn.execute(update(version).where(version.c.id == der.id).values(deleted_at=old))
    purged = _gc(client)
    assert [label for _, label in purged.dataset_versions] == ["der:1"]

    child = data.register("der2", pd.DataFrame({"a": [3]}), project="p", parents=["raw:1"])
    with pytest.warns(DatasetVersionReferenced, match="der2:1"):
        data.delete(raw.ref, project="p")
    with client.store.write() as conn:
        conn.execute(update(version).where(version.c.id == raw.id).values(deleted_at=old))
    purged = _gc(client)
    assert purged.dataset_versions == []
    assert [(k.label, k.reason) for k in purged.kept] == [
        ("raw:1", f"dataset version {child.ref} stays and was derived from it")
    ]


# -- races (PostgreSQL: SQLite write transactions are exclusive, so none there) -----------


def _wait_for_a_lock_wait(client: TrackingClient, sessions: int = 1) -> None:
    """Block until ``sessions`` other sessions of this database wait on a row lock."""
    from sqlalchemy import text

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with client.store.read() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        if waiting >= sessions:
            return
        time.sleep(0.05)  # polling a condition, not a fixed wait
    raise AssertionError(f"fewer than {sessions} session(s) ever waited for a lock")


def _gc_in_thread(client: TrackingClient, found: list[PurgeReport]) -> threading.Thread:
    thread = threading.Thread(target=lambda: found.append(_gc(client)), daemon=True)
    thread.start()
    return thread


def test_a_run_restored_while_gc_runs_is_not_purged(
    client: TrackingClient, tmp_path: Path, store_uri: str
) -> None:
    if not store_uri.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: a restore cannot interleave with gc")
    run_id = _full_run(client, tmp_path, b"victim")
    client.delete_run(run_id)
    _deleted_days_ago(client, [run_id], 40)
    found: list[PurgeReport] = []
    with client.store.write() as conn:  # a restore, under way while gc starts
        conn.execute(update(tables.RUN).where(tables.RUN.c.id == run_id).values(deleted_at=None))
        thread = _gc_in_thread(client, found)
        _wait_for_a_lock_wait(client)
    thread.join(timeout=120)
    assert not thread.is_alive() and found
    assert found[0].runs == []
    assert not client.get_run(run_id).deleted
    assert client.get_run(run_id).metrics["loss"] == 0.5


def test_a_version_restored_while_gc_runs_is_not_purged(
    client: TrackingClient, store_uri: str
) -> None:
    if not store_uri.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: a restore cannot interleave with gc")
    data = DataClient(client.store, client.artifacts)
    version = _deleted_version(client, data, "ds", 40)
    found: list[PurgeReport] = []
    table = tables.DATASET_VERSION
    with client.store.write() as conn:
        conn.execute(update(table).where(table.c.id == version.id).values(deleted_at=None))
        thread = _gc_in_thread(client, found)
        _wait_for_a_lock_wait(client)
    thread.join(timeout=120)
    assert not thread.is_alive() and found
    assert found[0].dataset_versions == []
    assert len(data.load(version.ref, project="p")) == 3


def test_a_restore_waiting_on_gc_reports_what_gc_purged(
    client: TrackingClient, tmp_path: Path, store_uri: str
) -> None:
    """The other order: gc holds the rows first; the restores wait, then find nothing."""
    if not store_uri.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: a restore cannot interleave with gc")
    from loopml.errors import DatasetNotFound, RunNotFound

    data = DataClient(client.store, client.artifacts)
    version = _deleted_version(client, data, "ds", 40)
    run_id = _full_run(client, tmp_path, b"victim")
    client.delete_run(run_id)
    _deleted_days_ago(client, [run_id], 40)
    errors: list[Exception] = []

    def restore(action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:  # the test inspects it
            errors.append(exc)

    with client.store.write() as conn:  # gc, between choosing and deleting
        report = purge_deleted(conn, int(time.time() * 1000))
        assert report.runs == [run_id] and report.dataset_versions == [(str(version.id), "ds:1")]
        threads = [
            threading.Thread(target=restore, args=(lambda: client.restore_run(run_id),)),
            threading.Thread(
                target=restore, args=(lambda: data.restore(version.ref, project="p"),)
            ),
        ]
        for thread in threads:
            thread.start()
        _wait_for_a_lock_wait(client, sessions=2)
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(type(e).__name__ for e in errors) == ["DatasetNotFound", "RunNotFound"]
    assert any(isinstance(e, RunNotFound) for e in errors)
    assert any(isinstance(e, DatasetNotFound) for e in errors)
