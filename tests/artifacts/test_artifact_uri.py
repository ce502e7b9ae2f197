"""Picking a back-end from a URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.artifacts import ArtifactStore, FsspecBackend, LocalBackend
from loopml.errors import InvalidParameter


def test_plain_path_is_local_and_creates_nothing(tmp_path: Path) -> None:
    store = ArtifactStore.from_uri(str(tmp_path / "not" / "yet"))

    assert isinstance(store.backend, LocalBackend)
    assert store.uri == str(tmp_path / "not" / "yet")
    assert not (tmp_path / "not").exists()
    assert list(store.iter_blobs()) == []


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    store = ArtifactStore.from_uri("arts")

    assert store.uri == str(tmp_path / "arts")


def test_file_uri_is_local(tmp_path: Path) -> None:
    folder = tmp_path / "with space"

    store = ArtifactStore.from_uri(folder.as_uri())

    assert isinstance(store.backend, LocalBackend)
    assert store.backend.root == folder
    assert ArtifactStore.from_uri(f"file://localhost{folder}").uri == str(folder)


def test_other_schemes_use_fsspec() -> None:
    store = ArtifactStore.from_uri("memory://loopml-uri-test/prefix/")

    assert isinstance(store.backend, FsspecBackend)
    assert store.uri == "memory://loopml-uri-test/prefix"


def test_first_write_creates_the_folder(tmp_path: Path) -> None:
    store = ArtifactStore.from_uri(str(tmp_path / "a" / "b"))

    digest = store.put_bytes(b"x")

    assert (tmp_path / "a" / "b" / "blobs" / digest[:2] / digest).read_bytes() == b"x"


@pytest.mark.parametrize("uri", ["", "   "])
def test_empty_uri_is_invalid(uri: str) -> None:
    with pytest.raises(InvalidParameter, match="'uri' parameter"):
        ArtifactStore.from_uri(uri)


def test_unknown_scheme_is_invalid() -> None:
    with pytest.raises(InvalidParameter, match="nosuchproto://x"):
        ArtifactStore.from_uri("nosuchproto://x")
