"""Behaviour specific to the local back-end: permissions, layout, temp files, memory."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
from pathlib import Path

import pytest

from loopml.artifacts import CHUNK_SIZE, ArtifactStore
from loopml.errors import ArtifactError, ArtifactManifestError, ArtifactNotFound, InvalidParameter


def test_blob_layout_is_two_char_fan_out(store: ArtifactStore, store_root: Path) -> None:
    digest = store.put_bytes(b"layout")

    assert (store_root / "blobs" / digest[:2] / digest).read_bytes() == b"layout"


def test_read_only_folder_gives_a_clear_error(read_only_folder: Path) -> None:
    store = ArtifactStore.from_uri(str(read_only_folder / "arts"))
    with pytest.raises(ArtifactError, match="Cannot write to the artifact store folder"):
        store.put_bytes(b"x")


def test_folder_under_a_file_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    store = ArtifactStore.from_uri(str(tmp_path / "file" / "arts"))

    with pytest.raises(ArtifactError, match=r"artifact store folder .*file/arts") as info:
        store.put_stream(io.BytesIO(b"x"))
    assert not isinstance(info.value, ArtifactNotFound)


def test_iter_blobs_ignores_temp_and_stray_files(store: ArtifactStore, store_root: Path) -> None:
    digest = store.put_bytes(b"real")
    (store_root / "tmp").mkdir(exist_ok=True)
    (store_root / "tmp" / "abc.part").write_bytes(b"half")
    stray = hashlib.sha256(b"misplaced").hexdigest()
    (store_root / "blobs" / "zz").mkdir()
    (store_root / "blobs" / "zz" / stray).write_bytes(b"misplaced")
    (store_root / "blobs" / digest[:2] / "notes.txt").write_bytes(b"junk")

    assert [d for d, _ in store.iter_blobs()] == [digest]


def test_no_temp_file_left_after_writes(store: ArtifactStore, store_root: Path) -> None:
    store.put_bytes(b"a")
    store.put_bytes(b"a")
    store.put_stream(io.BytesIO(b"b"))
    store.put_stream(io.BytesIO(b"b"))

    assert list((store_root / "tmp").iterdir()) == []


def test_failing_stream_leaves_nothing(store: ArtifactStore, store_root: Path) -> None:
    class Broken(io.RawIOBase):
        calls = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls > 2:
                raise OSError("network went away")
            buffer[:3] = b"abc"
            return 3

    with pytest.raises(OSError, match="network went away"):
        store.put_stream(Broken())

    assert list(store.iter_blobs()) == []
    assert list((store_root / "tmp").iterdir()) == []


def test_text_stream_is_invalid(store: ArtifactStore) -> None:
    with pytest.raises(InvalidParameter, match="binary mode"):
        store.put_stream(io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="'stream' parameter"):
        store.put_stream(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="'data' parameter"):
        store.put_bytes("text")  # type: ignore[arg-type]


def test_put_file_and_put_dir_check_their_path(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")

    with pytest.raises(ArtifactNotFound, match="missing"):
        store.put_file(tmp_path / "missing")
    with pytest.raises(ArtifactNotFound, match="missing"):
        store.put_dir(tmp_path / "missing")
    with pytest.raises(InvalidParameter, match="put_dir"):
        store.put_file(tmp_path)
    with pytest.raises(InvalidParameter, match="put_file"):
        store.put_dir(tmp_path / "f")


def test_get_file_onto_a_folder_is_invalid(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="'dest' parameter of get_file"):
        store.get_file(store.put_bytes(b"x"), tmp_path)


def test_get_dir_onto_a_file_is_invalid(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "file").write_bytes(b"")

    with pytest.raises(InvalidParameter, match="'dest' parameter of get_dir"):
        store.get_dir(store.put_dir(tmp_path / "src"), tmp_path / "file")


@pytest.mark.parametrize("evil", ["../escaped.txt", "/etc/evil", "a/../../b", "a\\..\\b", ""])
def test_manifest_paths_cannot_escape(store: ArtifactStore, tmp_path: Path, evil: str) -> None:
    payload = store.put_bytes(b"evil")
    entry = {"path": evil, "digest": payload, "size": 4}
    manifest = json.dumps({"loopml_manifest": 1, "entries": [entry]}, separators=(",", ":"))
    digest = store.put_bytes(manifest.encode())

    assert not store.is_manifest(digest)
    with pytest.raises(ArtifactManifestError, match="cannot be trusted"):
        store.get_dir(digest, tmp_path / "out" / "dest")
    assert list(tmp_path.rglob("*")) == []


def test_symlinked_files_are_stored_by_content(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "outside.txt").write_bytes(b"target")
    (src / "link.txt").symlink_to(tmp_path / "outside.txt")
    (src / "linked-dir").symlink_to(tmp_path, target_is_directory=True)

    entries = store.read_manifest(store.put_dir(src))

    assert [(e.path, e.size) for e in entries] == [("link.txt", 6)]


def test_large_file_streams_in_constant_memory(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    expected = hashlib.sha256()
    with source.open("wb") as out:
        for i in range(50):  # 50 MiB
            chunk = hashlib.sha256(str(i).encode()).digest() * (CHUNK_SIZE // 32)
            expected.update(chunk)
            out.write(chunk)
    limit = 8 * CHUNK_SIZE  # a few chunks in flight, never the whole file

    tracemalloc.start()
    try:
        digest = store.put_file(source)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        dest = store.get_file(digest, tmp_path / "copy.bin")
        _, get_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        streamed = hashlib.sha256()
        with store.open(digest) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                streamed.update(chunk)
        _, open_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with source.open("rb") as handle:
            assert store.put_stream(handle) == digest
        _, stream_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert digest == expected.hexdigest()
    assert store.size(digest) == 50 * CHUNK_SIZE
    assert streamed.hexdigest() == digest
    assert dest.stat().st_size == 50 * CHUNK_SIZE
    assert store.verify(digest)
    assert max(put_peak, get_peak, open_peak, stream_peak) < limit
