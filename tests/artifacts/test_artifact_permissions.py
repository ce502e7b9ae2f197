"""Issue 12 item 15: artifact stores and downloads are owner-only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.artifacts import ArtifactStore, FsspecBackend
from loopml.maintenance import collect_garbage
from loopml.tracking import TrackingClient


@pytest.fixture(autouse=True, params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def permissive_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under a umask that would leave new files readable by others."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    """The permission bits of ``root`` and everything below it."""
    found = {".": stat.S_IMODE(os.lstat(root).st_mode)}
    for path in root.rglob("*"):
        found[path.relative_to(root).as_posix()] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def owner_only(found: dict[str, int], root: Path) -> dict[str, int]:
    return {key: 0o700 if (root / key).is_dir() else 0o600 for key in found}


def fill(store: ArtifactStore, tmp_path: Path) -> str:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "inputs.csv").write_text("ssn,income\n")
    (source / "model.bin").write_bytes(b"m")
    store.put_bytes(b"prediction segment")
    return store.put_dir(source)


@pytest.mark.parametrize("kind", ["local", "fsspec-file"])
def test_a_new_artifact_store_is_owner_only(tmp_path: Path, kind: str) -> None:
    """Issue 12 item 15: the store root (and its new parents), its blob and tmp
    folders are 0o700, every blob and manifest 0o600, on the local back-end and on
    fsspec's local filesystem."""
    root = tmp_path / "new-parent" / "artifacts"
    if kind == "local":
        store = ArtifactStore.from_uri(str(root))
    else:
        store = ArtifactStore(FsspecBackend(root.as_uri()))

    fill(store, tmp_path)

    found = modes(root)
    assert len([key for key in found if key.startswith("blobs/") and key.count("/") == 2]) == 4
    assert found == owner_only(found, root)
    assert stat.S_IMODE(os.lstat(root.parent).st_mode) == 0o700


def test_downloads_are_owner_only(tmp_path: Path) -> None:
    """Issue 12 item 15: files and folders materialised from the store are 0o600 and
    0o700 (like a copy of the store's own files), whatever the umask."""
    store = ArtifactStore.from_uri(str(tmp_path / "store"))
    digest = fill(store, tmp_path)

    folder = store.get_dir(digest, tmp_path / "out" / "model")
    file = store.get_file(store.put_bytes(b"x"), tmp_path / "out" / "x.bin")

    found = modes(folder)
    assert found == owner_only(found, folder)
    assert stat.S_IMODE(os.lstat(file).st_mode) == 0o600


def test_gc_leaves_the_kept_blobs_owner_only(tmp_path: Path) -> None:
    """Issue 12 item 15: garbage collection deletes and never copies: what it keeps
    keeps its 0o600/0o700 modes."""
    client = TrackingClient(
        store_uri=f"sqlite:///{tmp_path / 'home' / 'loopml.db'}",
        artifact_uri=str(tmp_path / "home" / "artifacts"),
    )
    try:
        run_id = client.create_run(project="p", capture_context=False)
        client.log_text(run_id, "kept", "kept.txt")
        client.artifacts.put_bytes(b"orphan")
        report = collect_garbage(client.store, client.artifacts, dry_run=False, grace_seconds=0)
        assert len(report.unreferenced) == 1
    finally:
        client.close()
    root = tmp_path / "home" / "artifacts"
    found = modes(root)
    assert found == owner_only(found, root)
