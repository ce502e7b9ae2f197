"""Issue 12 item 15: a new store and LOOPML_HOME are owner-only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml._private_fs import create_private_file, make_private_dirs
from loopml.store import open_store
from loopml.tracking import TrackingClient


@pytest.fixture(params=[0o022, 0o000, 0o277], ids=["umask-022", "umask-000", "umask-277"])
def permissive_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under a umask that would leave files group/world readable (or,
    for 0o277, not even writable by their owner), then restore the old one."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_sqlite_store_files_are_owner_only(permissive_umask: int, tmp_path: Path) -> None:
    """Issue 12 item 15: the store folder (with its new parents), the SQLite
    database, its -wal and -shm files and the migration lock are 0o700/0o600."""
    home = tmp_path / "a" / "b" / "home"
    database = home / "loopml.db"
    store = open_store(f"sqlite:///{database}")
    try:
        with store.write() as conn:
            store.project_id(conn, "demo")
        created = [home, home.parent, home.parent.parent]
        assert {str(p): mode(p) for p in created} == {str(p): 0o700 for p in created}
        files = [database, home / "loopml.db-wal", home / "loopml.db-shm", home / "loopml.lock"]
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        store.close()


def test_a_default_loopml_home_is_owner_only(permissive_umask: int, loopml_home: Path) -> None:
    """Issue 12 item 15: the first client in a fresh LOOPML_HOME creates it 0o700,
    its artifact folders 0o700 and every blob (files and manifests) 0o600."""
    client = TrackingClient()
    try:
        run_id = client.create_run(project="p", capture_context=False)
        client.log_text(run_id, "secret inputs", "inputs.txt")
        client.log_dict(run_id, {"a": 1}, "nested/params.json")
        assert mode(loopml_home) == 0o700
        artifacts = loopml_home / "artifacts"
        folders = [artifacts, *(p for p in artifacts.rglob("*") if p.is_dir())]
        blobs = [p for p in artifacts.rglob("*") if p.is_file()]
        assert len(blobs) >= 2
        assert {str(p): mode(p) for p in folders} == {str(p): 0o700 for p in folders}
        assert {str(p): mode(p) for p in blobs} == {str(p): 0o600 for p in blobs}
        assert mode(loopml_home / "loopml.db") == 0o600
    finally:
        client.close()


def test_existing_folders_and_files_keep_their_mode(permissive_umask: int, tmp_path: Path) -> None:
    """Issue 12 item 15: only what loopml creates is made owner-only; a folder or
    database an administrator prepared (and widened on purpose) is left as it is."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o750)
    database = shared / "loopml.db"
    database.touch()
    database.chmod(0o640)

    make_private_dirs(shared)
    assert not create_private_file(database)
    open_store(f"sqlite:///{database}").close()

    assert (mode(shared), mode(database)) == (0o750, 0o640)


def test_create_private_file_never_follows_a_symlink(tmp_path: Path) -> None:
    """Issue 12 item 15: a symlink planted where the database will be is not followed
    (its target is not created or changed)."""
    target = tmp_path / "elsewhere"
    link = tmp_path / "loopml.db"
    link.symlink_to(target)

    assert not create_private_file(link)

    assert not target.exists()
