"""Issue 12 item 10: downloads land in a new DEST/NAME and never outside it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from loopml.artifacts import ArtifactStore
from loopml.artifacts._manifest import MAX_DEPTH, MAX_ENTRIES, MAX_NAME_BYTES, MAX_PATH_BYTES
from loopml.errors import ArtifactExists, ArtifactManifestError, InvalidParameter
from loopml.store import now_ms, tables
from loopml.tracking import TrackingClient


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TrackingClient]:
    tracking = TrackingClient(
        store_uri=f"sqlite:///{tmp_path / 'home' / 'loopml.db'}",
        artifact_uri=str(tmp_path / "home" / "artifacts"),
    )
    yield tracking
    tracking.close()


def _crafted_manifest(store: ArtifactStore, paths: list[str]) -> str:
    payload = store.put_bytes(b"evil")
    entries = [{"path": path, "digest": payload, "size": 4} for path in paths]
    document = {"loopml_manifest": 1, "entries": entries}
    return store.put_bytes(json.dumps(document, separators=(",", ":")).encode())


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry below ``root``, without following links: file bytes, link targets."""
    found: dict[str, bytes | str] = {}
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(folder) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = f"-> {os.readlink(path)}"
            elif path.is_file():
                found[key] = path.read_bytes()
            else:
                found[key] = "dir"
    return found


def test_a_downloaded_folder_never_overwrites_git_config_in_the_destination(
    client: TrackingClient, tmp_path: Path
) -> None:
    """Issue 12 item 10: a folder artifact holding ``.git/config`` (code execution at
    the next ``git`` command) is written into ``dest/<name>``, not over ``dest/.git``."""
    evil = tmp_path / "evil"
    (evil / ".git").mkdir(parents=True)
    (evil / ".git" / "config").write_text("[core]\n\tfsmonitor = touch /tmp/pwned\n")
    (evil / "weights.bin").write_bytes(b"w")
    run_id = client.create_run(project="p", capture_context=False)
    client.log_artifact(run_id, evil, "model")
    dest = tmp_path / "checkout"
    (dest / ".git").mkdir(parents=True)
    (dest / ".git" / "config").write_text("[core]\n\tbare = false\n")
    before = _snapshot(dest)

    got = client.download_artifact(run_id, "model", dest)

    assert got == dest / "model"
    assert (dest / ".git" / "config").read_text() == "[core]\n\tbare = false\n"
    assert _snapshot(dest) == {
        **before,
        "model": "dir",
        "model/.git": "dir",
        "model/.git/config": (evil / ".git" / "config").read_bytes(),
        "model/weights.bin": b"w",
    }


def test_a_symlinked_subfolder_in_the_destination_is_not_followed(
    client: TrackingClient, tmp_path: Path
) -> None:
    """Issue 12 item 10: a symlink already in the destination, named like one of the
    artifact's folders (or like the artifact itself), never takes a write outside."""
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "payload.txt").write_text("payload")
    run_id = client.create_run(project="p", capture_context=False)
    client.log_artifact(run_id, source, "model")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    (dest / "model").symlink_to(outside, target_is_directory=True)

    with pytest.raises(ArtifactExists, match="already exists"):
        client.download_artifact(run_id, "model", dest)
    assert list(outside.iterdir()) == []

    got = client.download_artifact(run_id, "model", dest, overwrite=True)

    assert list(outside.iterdir()) == []
    assert not got.is_symlink()
    assert (got / "sub" / "payload.txt").read_text() == "payload"
    assert sorted(p.name for p in dest.iterdir()) == ["model", "sub"]  # nothing left over
    assert (dest / "sub").is_symlink()


@pytest.mark.parametrize(
    "paths",
    [
        ["../x"],
        ["/etc/x"],
        ["a/../../x"],
        ["a\\..\\x"],
        ["C:/x"],
        ["c:x"],
        ["a//x"],
        ["./x"],
        ["a/./x"],
        ["x\x00y"],
        [""],
        ["ok", "ok"],
        ["a", "a/b"],
        ["n" * (MAX_NAME_BYTES + 1)],
        ["/".join(["d"] * MAX_DEPTH) + "/x"],
        ["/".join(["long" * 50] * 6)[: MAX_PATH_BYTES + 1]],
    ],
    ids=repr,
)
def test_a_crafted_manifest_is_refused_with_a_typed_error_and_nothing_written(
    tmp_path: Path, paths: list[str]
) -> None:
    """Issue 12 item 10: manifest entry paths are untrusted; unsafe ones, duplicates, a
    path that is both a file and a folder, and paths beyond the limits are refused
    before anything is written."""
    store = ArtifactStore.from_uri(str(tmp_path / "store"))
    digest = _crafted_manifest(store, paths)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()

    with pytest.raises(ArtifactManifestError, match="cannot be trusted"):
        store.get_dir(digest, sandbox / "dest" / "out")

    assert list(sandbox.iterdir()) == []


def test_a_manifest_with_too_many_entries_is_refused(tmp_path: Path) -> None:
    """Issue 12 item 10: the entry count of a manifest is bounded (MAX_ENTRIES)."""
    store = ArtifactStore.from_uri(str(tmp_path / "store"))
    digest = _crafted_manifest(store, [f"f{i}" for i in range(MAX_ENTRIES + 1)])

    with pytest.raises(ArtifactManifestError, match=f"limit of {MAX_ENTRIES}"):
        store.get_dir(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_crafted_manifest_logged_as_a_run_artifact_is_refused_by_download(
    client: TrackingClient, tmp_path: Path
) -> None:
    """Issue 12 item 10: ``download_artifact`` refuses a teammate's crafted folder
    artifact with a typed error, and writes nothing."""
    run_id = client.create_run(project="p", capture_context=False)
    digest = _crafted_manifest(client.artifacts, ["../../escaped.txt"])
    with client.store.write() as conn:
        conn.execute(
            insert(tables.RUN_ARTIFACT).values(
                run_id=run_id, path="model", digest=digest, size=4, is_dir=True,
                created_at=now_ms(),
            )
        )  # fmt: skip
    dest = tmp_path / "dest"

    with pytest.raises(ArtifactManifestError, match="leaves its directory"):
        client.download_artifact(run_id, "model", dest)

    assert not (tmp_path / "escaped.txt").exists()
    assert not dest.exists()


def test_a_file_artifact_refuses_an_existing_file_and_overwrite_replaces_it(
    client: TrackingClient, tmp_path: Path
) -> None:
    """Issue 12 item 10: ``dest/<name>`` is refused if it exists, unless overwrite."""
    run_id = client.create_run(project="p", capture_context=False)
    client.log_text(run_id, "new", "reports/summary.txt")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "summary.txt").write_text("mine")

    with pytest.raises(ArtifactExists, match=r"summary\.txt"):
        client.download_artifact(run_id, "reports/summary.txt", dest)
    assert (dest / "summary.txt").read_text() == "mine"

    got = client.download_artifact(run_id, "reports/summary.txt", dest, overwrite=True)

    assert got == dest / "summary.txt"
    assert got.read_text() == "new"
    assert [p.name for p in dest.iterdir()] == ["summary.txt"]


def test_overwrite_never_turns_a_folder_into_a_file(client: TrackingClient, tmp_path: Path) -> None:
    """Issue 12 item 10: overwrite replaces a file with a file, a folder with a folder;
    a file artifact named like an existing folder is refused and the folder kept."""
    run_id = client.create_run(project="p", capture_context=False)
    client.log_text(run_id, "x", "model")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("keep")

    with pytest.raises(InvalidParameter, match="existing folder"):
        client.download_artifact(run_id, "model", tmp_path, overwrite=True)
    assert (tmp_path / "model" / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("dest", [".", "..", "/"])
def test_get_dir_needs_a_name_to_create(tmp_path: Path, dest: str) -> None:
    """Issue 12 item 10: get_dir and get_file create one named entry, never "." itself."""
    store = ArtifactStore.from_uri(str(tmp_path / "store"))
    (tmp_path / "src").mkdir()

    with pytest.raises(InvalidParameter, match="must name the folder to create"):
        store.get_dir(store.put_dir(tmp_path / "src"), dest)
    with pytest.raises(InvalidParameter, match="must name the file to create"):
        store.get_file(store.put_bytes(b"x"), dest)


_SEGMENT = st.sampled_from(["a", "A", "b", ".", "..", "", "C:", "x\\y", "\x00", "é", "link"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    paths=st.lists(
        st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join), min_size=1, max_size=5
    ),
    absolute=st.booleans(),
)
def test_no_manifest_ever_writes_outside_its_destination(paths: list[str], absolute: bool) -> None:
    """Issue 12 item 10: whatever paths a manifest lists, and with a symlink to an
    outside folder already beside the destination, nothing lands outside ``dest``:
    the download either completes inside it or is refused with nothing written."""
    if absolute:
        paths = ["/" + paths[0], *paths[1:]]
    with tempfile.TemporaryDirectory(prefix="loopml-prop-") as folder:
        root = Path(folder)
        store = ArtifactStore.from_uri(str(root / "store"))
        digest = _crafted_manifest(store, paths)
        outside = root / "outside"
        outside.mkdir()
        parent = root / "parent"
        parent.mkdir()
        (parent / "link").symlink_to(outside, target_is_directory=True)
        before = _snapshot(parent)

        try:
            got = store.get_dir(digest, parent / "dest")
        except ArtifactManifestError:
            assert _snapshot(parent) == before
        else:
            assert got == parent / "dest"
            written = {k: v for k, v in _snapshot(parent).items() if k not in before}
            assert all(key == "dest" or key.startswith("dest/") for key in written)
            assert sorted(k[5:] for k, v in written.items() if v == b"evil") == sorted(paths)
        assert list(outside.iterdir()) == []


def test_a_name_of_the_longest_allowed_length_still_downloads(tmp_path: Path) -> None:
    """The staging entry beside a 255-byte name stays within the file system's limit."""
    store = ArtifactStore.from_uri(str(tmp_path / "store"))
    name = "n" * MAX_NAME_BYTES
    source = tmp_path / "source"
    source.mkdir()
    (source / name).write_bytes(b"x")

    file = store.get_file(store.put_bytes(b"x"), tmp_path / "out" / name)
    folder = store.get_dir(store.put_dir(source), tmp_path / "dirs" / name)

    assert file.read_bytes() == (folder / name).read_bytes() == b"x"
