"""Reading never creates a store: open_store(create=False), defer_store and the SDK reads."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import loopml
import loopml.data
import loopml.models
import loopml.pipelines
from loopml import settings
from loopml.errors import ProjectNotFound, StoreNotFound, StoreUnavailable
from loopml.store import defer_store, open_store, read_only
from loopml.tracking import TrackingClient


def _everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_open_without_create_refuses_a_missing_sqlite_store_and_creates_nothing(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'home' / 'deeper' / 'loopml.db'}"
    with pytest.raises(StoreNotFound) as caught:
        open_store(uri, create=False)
    message = str(caught.value)
    assert str(tmp_path / "home" / "deeper" / "loopml.db") in message
    assert "LOOPML_HOME" in message
    assert "loopml demo" in message
    assert caught.value.uri == uri
    assert _everything_under(tmp_path) == []


def test_open_without_create_opens_an_existing_store(store_uri: str) -> None:
    created = open_store(store_uri)
    with created.write() as conn:
        created.project_id(conn, "kept")
    created.close()
    store = open_store(store_uri, create=False)
    try:
        with store.read() as conn:
            assert store.require_project(conn, "kept") > 0
    finally:
        store.close()


def test_a_deferred_store_opened_read_only_creates_nothing_and_a_write_creates_it(
    store_uri: str, tmp_path: Path
) -> None:
    store = defer_store(store_uri)
    try:
        if store.dialect == "sqlite":
            assert _everything_under(tmp_path) == []
            with read_only():
                with pytest.raises(StoreNotFound), store.read():
                    pass
                with pytest.raises(StoreNotFound), store.write():
                    pass  # inside read_only even a write creates nothing
            assert _everything_under(tmp_path) == []
        with store.write() as conn:
            project_id = store.project_id(conn, "p")
        with read_only(), store.read() as conn:
            assert store.require_project(conn, "p") == project_id
    finally:
        store.close()


def test_a_deferred_store_read_outside_read_only_is_created_as_before(tmp_path: Path) -> None:
    store = defer_store(f"sqlite:///{tmp_path / 'home' / 'loopml.db'}")
    try:
        assert not (tmp_path / "home").exists()
        with store.read() as conn:  # a write path that looks before it writes
            assert conn.exec_driver_sql("SELECT count(*) FROM project").scalar() == 0
        assert (tmp_path / "home" / "loopml.db").is_file()
    finally:
        store.close()


def test_read_only_is_a_decorator_too_and_ends_with_its_block(tmp_path: Path) -> None:
    store = defer_store(f"sqlite:///{tmp_path / 'home' / 'loopml.db'}")

    @read_only()
    def count() -> int:
        with store.read() as conn:
            return len(conn.exec_driver_sql("SELECT id FROM project").all())

    with pytest.raises(StoreNotFound):
        count()
    with store.write() as conn:
        store.project_id(conn, "p")
    assert count() == 1
    store.close()


def test_concurrent_first_writes_of_a_deferred_store_open_it_once(tmp_path: Path) -> None:
    store = defer_store(f"sqlite:///{tmp_path / 'home' / 'loopml.db'}")
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            with store.write() as conn:
                store.project_id(conn, name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"p{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with store.read() as conn:
            names = {store.require_project(conn, f"p{i}") for i in range(4)}
        assert len(names) == 4
    finally:
        store.close()


def test_a_bad_uri_still_fails_clearly_when_deferred() -> None:
    store = defer_store("not a url")
    with pytest.raises(StoreUnavailable, match="not a database URL"):
        _ = store.dialect
    with pytest.raises(StoreUnavailable, match="not a database URL"), store.read():
        pass
    with read_only(), pytest.raises(StoreUnavailable, match="not a database URL"), store.read():
        pass


def test_require_project_names_the_closest_project(store_uri: str) -> None:
    store = open_store(store_uri)
    try:
        with store.write() as conn:
            store.project_id(conn, "vision")
        with store.read() as conn, pytest.raises(ProjectNotFound, match="did you mean 'vision'"):
            store.require_project(conn, "visoin")
        with store.read() as conn, pytest.raises(ProjectNotFound) as caught:
            store.require_project(conn, "zzz")
        assert "'zzz'" in str(caught.value)
        assert "loopml projects list" in str(caught.value)
        with store.read() as conn:
            assert [r[0] for r in conn.exec_driver_sql("SELECT name FROM project")] == ["vision"]
    finally:
        store.close()


# --- the SDK ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "read",
    [
        lambda: loopml.search_runs(),
        lambda: loopml.search_runs(project="nope", filter="metrics.auc > 0"),
        lambda: loopml.get_run("abcdef12"),
        lambda: loopml.get_metric_history("abcdef12", "auc"),
        lambda: loopml.data.datasets(),
        lambda: loopml.data.get("credit:1"),
        lambda: loopml.models.list_models(),
        lambda: loopml.pipelines.list_pipeline_runs(),
    ],
    ids=[
        "search_runs",
        "search_runs_project",
        "get_run",
        "metric_history",
        "datasets",
        "data_get",
        "list_models",
        "list_pipeline_runs",
    ],
)
def test_sdk_reads_on_a_missing_home_raise_and_create_nothing(
    read: object, loopml_home: Path
) -> None:
    assert callable(read)
    with pytest.raises(StoreNotFound, match=str(loopml_home / "loopml.db")):
        read()
    assert not loopml_home.exists()


def test_sdk_writes_still_create_the_home(loopml_home: Path) -> None:
    with loopml.start_run(project="p") as run:
        loopml.log_metric("auc", 0.9)
    assert (loopml_home / "loopml.db").exists()
    assert [r.id for r in loopml.search_runs(project="p")] == [run.id]
    with pytest.raises(ProjectNotFound, match="'nope'"):
        loopml.search_runs(project="nope")


def test_a_client_reading_then_writing_works(loopml_home: Path) -> None:
    client = TrackingClient()
    try:
        with pytest.raises(StoreNotFound):
            client.search_runs("p")
        run_id = client.create_run(project="p")
        assert [r.id for r in client.search_runs("p")] == [run_id]
    finally:
        client.close()
    assert settings.store_uri().endswith(str(loopml_home / "loopml.db"))
    assert os.stat(loopml_home).st_mode & 0o777 == 0o700
