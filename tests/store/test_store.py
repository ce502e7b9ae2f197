"""The metadata store: opening, migrating, refusing, and many openers at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from loopml.errors import StoreUnavailable, StoreVersionError
from loopml.store import HEAD_REVISION, current_revision, open_store, tables


def test_opening_creates_and_migrates_an_empty_store(store_uri: str) -> None:
    store = open_store(store_uri)
    try:
        with store.read() as conn:
            assert current_revision(conn) == HEAD_REVISION
            names = set(inspect(conn).get_table_names())
        assert {t.name for t in tables.Base.metadata.sorted_tables} <= names
    finally:
        store.close()
    open_store(store_uri).close()  # opening again is a no-op


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db' / 'loopml.db'}")
    try:
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_a_database_from_a_newer_loopml_is_refused_and_left_alone(store_uri: str) -> None:
    store = open_store(store_uri)
    with store.write() as conn:
        store.project_id(conn, "kept")
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()

    with pytest.raises(StoreVersionError, match=r"'9999'.*newer loopml"):
        open_store(store_uri)

    from sqlalchemy import create_engine

    engine = create_engine(store_uri)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM project")).scalars().all() == ["kept"]
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999"
    engine.dispose()


def test_an_unreachable_database_is_a_clear_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1") as caught:
        open_store("postgresql+psycopg://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
    assert "secret" not in str(caught.value)
    assert isinstance(caught.value, ConnectionError)


@pytest.mark.parametrize("uri", ["not a url", "mysql+nodriver://x/y"])
def test_malformed_or_unknown_uris_are_refused(uri: str) -> None:
    with pytest.raises(StoreUnavailable):
        open_store(uri)


def test_a_read_only_home_is_a_clear_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="Cannot create the store folder"):
        open_store(f"sqlite:///{blocker / 'home' / 'loopml.db'}")


def test_a_read_only_home_folder_is_a_clear_store_unavailable(read_only_folder: Path) -> None:
    with pytest.raises(StoreUnavailable, match="Cannot open the store"):
        open_store(f"sqlite:///{read_only_folder / 'loopml.db'}")


def test_many_processes_opening_a_new_store_at_once_migrate_it_once(store_uri: str) -> None:
    code = "import sys; from loopml.store import open_store; open_store(sys.argv[1]).close()"
    children = [
        subprocess.Popen([sys.executable, "-c", code, store_uri], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr.decode()
    store = open_store(store_uri)
    try:
        with store.read() as conn:
            assert current_revision(conn) == HEAD_REVISION
    finally:
        store.close()


def test_migrations_build_exactly_the_declared_tables(store_uri: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from loopml.store._migrate import MIGRATIONS

    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD_REVISION
    store = open_store(store_uri)
    try:
        with store.read() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, tables.Base.metadata) == []
    finally:
        store.close()
