"""One contract for every artifact back-end: the same tests over each of them.

Back-ends: a local folder opened by path and by ``file://`` URL, and fsspec's
real ``memory://`` and ``file://`` filesystems behind :class:`FsspecBackend`.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from loopml.artifacts import ArtifactStore, FsspecBackend, LocalBackend, ManifestEntry
from loopml.errors import (
    ArtifactExists,
    ArtifactIntegrityError,
    ArtifactNotFound,
    InvalidParameter,
)

BACKENDS = ["local-path", "local-file-uri", "fsspec-memory", "fsspec-file"]


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ArtifactStore]:
    # Apart from tmp_path, so tests can check what appears in their own folder.
    root = tmp_path_factory.mktemp("artifact-store")
    kind = request.param
    if kind == "local-path":
        yield ArtifactStore.from_uri(str(root))
    elif kind == "local-file-uri":
        yield ArtifactStore.from_uri(root.as_uri())
    elif kind == "fsspec-file":
        yield ArtifactStore(FsspecBackend(root.as_uri()))
    else:
        uri = f"memory://loopml-contract-{uuid.uuid4().hex}"
        yield ArtifactStore.from_uri(uri)
        fs = fsspec.filesystem("memory")
        root = fs._strip_protocol(uri)
        if fs.exists(root):
            fs.rm(root, recursive=True)


def blob_bytes(store: ArtifactStore, digest: str) -> bytes:
    with store.backend.open_read(f"blobs/{digest[:2]}/{digest}") as handle:
        return handle.read()


def overwrite_blob(store: ArtifactStore, digest: str, data: bytes) -> None:
    """Change a stored blob behind the store's back, as disk rot would."""
    backend = store.backend
    key = f"blobs/{digest[:2]}/{digest}"
    if isinstance(backend, LocalBackend):
        (backend.root / key).write_bytes(data)
    else:
        assert isinstance(backend, FsspecBackend)
        backend.fs.pipe_file(backend.path_of(key), data)


def corrupt(store: ArtifactStore, digest: str) -> None:
    data = bytearray(blob_bytes(store, digest))
    data[len(data) // 2] ^= 0x01
    overwrite_blob(store, digest, bytes(data))


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "model.bin": b"\x00\x01" * 5000,
        "empty.txt": b"",
        "conf/params.json": b'{"lr": 0.1}',
        "conf/deep/er/notes.md": "h\u00e9llo \u2603".encode(),
        "d\u00e9j\u00e0 vu.txt": b"again",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- round trips -------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"x", b"hello world" * 1000, bytes(range(256)) * 9000])
def test_bytes_round_trip(store: ArtifactStore, data: bytes) -> None:
    digest = store.put_bytes(data)

    assert digest == hashlib.sha256(data).hexdigest()
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    assert store.get_bytes(digest) == data
    assert store.verify(digest)


def test_stream_round_trip(store: ArtifactStore) -> None:
    data = bytes(range(256)) * 10_000  # > 2 chunks

    digest = store.put_stream(io.BytesIO(data))

    assert digest == hashlib.sha256(data).hexdigest()
    with store.open(digest) as stream:
        assert stream.read() == data
    with store.open(digest) as stream:
        parts = iter(lambda: stream.read(1000), b"")
        assert b"".join(parts) == data


def test_file_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x42" * 3_000_000)

    digest = store.put_file(source)
    dest = store.get_file(digest, tmp_path / "out" / "nested" / "weights.bin")

    assert dest == tmp_path / "out" / "nested" / "weights.bin"
    assert dest.read_bytes() == source.read_bytes()
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()


def test_get_file_refuses_an_existing_file_unless_overwrite(
    store: ArtifactStore, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    digest = store.put_bytes(b"new")

    with pytest.raises(ArtifactExists, match=r"out\.bin"):
        store.get_file(digest, dest)
    assert dest.read_bytes() == b"old"

    store.get_file(digest, dest, overwrite=True)

    assert dest.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no staging left


def test_dir_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    (tmp_path / "src" / "empty-folder").mkdir()

    digest = store.put_dir(tmp_path / "src")
    out = store.get_dir(digest, tmp_path / "out" / "copy")

    assert out == tmp_path / "out" / "copy"
    assert read_tree(out) == files
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["copy"]  # no staging left
    assert store.is_manifest(digest)
    entries = store.read_manifest(digest)
    assert [e.path for e in entries] == sorted(files)
    for entry in entries:
        assert isinstance(entry, ManifestEntry)
        assert entry.size == len(files[entry.path])
        assert store.get_bytes(entry.digest) == files[entry.path]


def test_get_dir_never_merges_into_an_existing_folder(store: ArtifactStore, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    digest = store.put_dir(tmp_path / "src")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"mine")
    (dest / "model.bin").write_bytes(b"stale")

    with pytest.raises(ArtifactExists, match="dest"):
        store.get_dir(digest, dest)
    assert read_tree(dest) == {"keep.txt": b"mine", "model.bin": b"stale"}

    store.get_dir(digest, dest, overwrite=True)

    assert read_tree(dest) == files  # replaced whole, not merged
    assert [p.name for p in tmp_path.iterdir() if p.name != "src"] == ["dest"]


def test_empty_dir_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()

    digest = store.put_dir(tmp_path / "src")

    assert store.read_manifest(digest) == []
    assert store.get_dir(digest, tmp_path / "out").is_dir()


def test_same_tree_same_digest(store: ArtifactStore, tmp_path: Path) -> None:
    make_tree(tmp_path / "a")
    make_tree(tmp_path / "b")

    assert store.put_dir(tmp_path / "a") == store.put_dir(tmp_path / "b")


def test_manifest_is_recognisable_json(store: ArtifactStore, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    digest = store.put_dir(tmp_path / "src")

    assert store.get_bytes(digest).startswith(b'{"loopml_manifest":1,')
    assert not store.is_manifest(store.put_bytes(b"plain"))
    assert not store.is_manifest(store.put_bytes(b'{"loopml_manifest":1, broken'))


def test_read_manifest_of_a_plain_blob_is_invalid(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"not a manifest")

    with pytest.raises(InvalidParameter, match="read_manifest"):
        store.read_manifest(digest)
    with pytest.raises(InvalidParameter):
        store.get_dir(digest, "never-created")


def test_uri_reopens_the_same_store(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"shared")

    assert ArtifactStore.from_uri(store.uri).get_bytes(digest) == b"shared"


# --- dedup, listing, deleting ------------------------------------------------


def test_identical_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"same bytes" * 100_000
    source = tmp_path / "f.bin"
    source.write_bytes(data)

    digests = {
        store.put_bytes(data),
        store.put_bytes(data),
        store.put_stream(io.BytesIO(data)),
        store.put_file(source),
    }

    assert len(digests) == 1
    assert [d for d, _ in store.iter_blobs()] == list(digests)


def test_iter_blobs_lists_blobs_with_mtime(store: ArtifactStore, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    before = time.time()
    expected = {store.put_bytes(b"one"), store.put_bytes(b"two"), store.put_dir(tmp_path / "src")}
    expected |= {e.digest for e in store.read_manifest(store.put_dir(tmp_path / "src"))}

    listed = dict(store.iter_blobs())

    assert set(listed) == expected
    for mtime in listed.values():
        assert before - 5 <= mtime <= time.time() + 5


def test_storing_again_refreshes_mtime(store: ArtifactStore, tmp_path: Path) -> None:
    """A re-used blob must look fresh to a garbage collector's grace period."""
    backend = store.backend
    if isinstance(backend, FsspecBackend) and isinstance(backend.fs, MemoryFileSystem):
        pytest.skip("memory:// cannot change a file's time, like object stores")
    data = b"reused" * 1000
    digest = store.put_bytes(data)
    key = f"blobs/{digest[:2]}/{digest}"
    path = backend.root / key if isinstance(backend, LocalBackend) else Path(backend.path_of(key))
    os.utime(path, (1_000_000, 1_000_000))
    (tmp_path / "f").write_bytes(data)

    for put in (
        lambda: store.put_bytes(data),
        lambda: store.put_stream(io.BytesIO(data)),
        lambda: store.put_file(tmp_path / "f"),
    ):
        os.utime(path, (1_000_000, 1_000_000))
        assert put() == digest
        assert dict(store.iter_blobs())[digest] > time.time() - 60


def test_empty_store_lists_nothing(store: ArtifactStore) -> None:
    assert list(store.iter_blobs()) == []
    assert not store.exists("0" * 64)


def test_delete(store: ArtifactStore) -> None:
    keep, gone = store.put_bytes(b"keep"), store.put_bytes(b"gone")

    store.delete(gone)

    assert not store.exists(gone)
    assert [d for d, _ in store.iter_blobs()] == [keep]
    with pytest.raises(ArtifactNotFound):
        store.delete(gone)
    store.delete(gone, missing_ok=True)
    assert store.put_bytes(b"gone") == gone  # can be stored again
    assert store.get_bytes(gone) == b"gone"


def test_missing_blob(store: ArtifactStore, tmp_path: Path) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()

    for call in (
        lambda: store.get_bytes(missing),
        lambda: store.open(missing),
        lambda: store.size(missing),
        lambda: store.verify(missing),
        lambda: store.is_manifest(missing),
        lambda: store.read_manifest(missing),
        lambda: store.get_file(missing, tmp_path / "f"),
        lambda: store.get_dir(missing, tmp_path / "d"),
    ):
        with pytest.raises(ArtifactNotFound, match=missing):
            call()
    with pytest.raises(FileNotFoundError):  # callers' built-in handlers work too
        store.get_bytes(missing)
    assert list(tmp_path.iterdir()) == []


# --- corruption --------------------------------------------------------------


@pytest.fixture
def corrupted(store: ArtifactStore) -> tuple[ArtifactStore, str]:
    digest = store.put_bytes(bytes(range(256)) * 20_000)  # several chunks
    corrupt(store, digest)
    return store, digest


def test_corruption_detected_by_get_bytes(corrupted: tuple[ArtifactStore, str]) -> None:
    store, digest = corrupted

    with pytest.raises(ArtifactIntegrityError, match=digest):
        store.get_bytes(digest)
    assert store.verify(digest) is False


def test_corruption_detected_by_get_file(
    corrupted: tuple[ArtifactStore, str], tmp_path: Path
) -> None:
    store, digest = corrupted
    dest = tmp_path / "out" / "blob.bin"

    with pytest.raises(ArtifactIntegrityError):
        store.get_file(digest, dest)

    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no staging file left


def test_corruption_detected_at_end_of_stream(corrupted: tuple[ArtifactStore, str]) -> None:
    store, digest = corrupted

    with store.open(digest) as stream, pytest.raises(ArtifactIntegrityError):
        while stream.read(100_000):
            pass


def test_truncated_blob_detected(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"complete content")
    overwrite_blob(store, digest, b"complete")

    with pytest.raises(ArtifactIntegrityError):
        store.get_bytes(digest)
    with store.open(digest) as stream, pytest.raises(ArtifactIntegrityError):
        stream.read()


def test_corrupted_dir_file_leaves_no_dest(store: ArtifactStore, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    digest = store.put_dir(tmp_path / "src")
    victim = next(e for e in store.read_manifest(digest) if e.path == "conf/params.json")
    corrupt(store, victim.digest)

    with pytest.raises(ArtifactIntegrityError):
        store.get_dir(digest, tmp_path / "out")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_corrupted_manifest_detected(store: ArtifactStore, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    digest = store.put_dir(tmp_path / "src")
    corrupt(store, digest)

    with pytest.raises(ArtifactIntegrityError):
        store.is_manifest(digest)
    with pytest.raises(ArtifactIntegrityError):
        store.read_manifest(digest)


# --- bad input ---------------------------------------------------------------

BAD_DIGESTS = [
    "../../etc/passwd",
    "A" * 64,
    "a" * 63,
    "a" * 65,
    "g" * 64,
    "",
    "ab/" + "a" * 61,
    None,
    b"a" * 64,
]
DIGEST_METHODS = [
    "exists",
    "size",
    "get_bytes",
    "open",
    "verify",
    "is_manifest",
    "read_manifest",
    "delete",
]


def test_bad_digest_is_an_invalid_parameter(store: ArtifactStore) -> None:
    for method in DIGEST_METHODS:
        for bad in BAD_DIGESTS:
            with pytest.raises(InvalidParameter, match=rf"'digest' parameter of {method}.*Got"):
                getattr(store, method)(bad)


@pytest.mark.parametrize("bad", ["../../../tmp/x", "Z" * 64])
def test_bad_digest_to_get_file_and_get_dir(store: ArtifactStore, tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidParameter, match="get_file"):
        store.get_file(bad, tmp_path / "f")
    with pytest.raises(InvalidParameter, match="get_dir"):
        store.get_dir(bad, tmp_path / "d")
    assert list(tmp_path.iterdir()) == []
