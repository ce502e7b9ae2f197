"""Property tests: any bytes round-trip, and the address is their SHA-256."""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.artifacts import ArtifactStore, is_digest


@pytest.fixture(scope="module", params=["local", "memory"])
def shared_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ArtifactStore]:
    # Module scoped: hypothesis runs many examples per test function.
    if request.param == "local":
        yield ArtifactStore.from_uri(str(tmp_path_factory.mktemp("prop-store")))
        return
    uri = f"memory://loopml-prop-{uuid.uuid4().hex}"
    yield ArtifactStore.from_uri(uri)
    fs = fsspec.filesystem("memory")
    fs.rm(fs._strip_protocol(uri), recursive=True)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=4096))
def test_any_bytes_round_trip(shared_store: ArtifactStore, data: bytes) -> None:
    digest = shared_store.put_bytes(data)

    assert digest == hashlib.sha256(data).hexdigest()
    assert shared_store.get_bytes(digest) == data
    assert shared_store.size(digest) == len(data)
    assert shared_store.put_stream(io.BytesIO(data)) == digest
    with shared_store.open(digest) as stream:
        assert stream.read() == data


@settings(max_examples=20, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=64),
    repeat=st.integers(min_value=1, max_value=40_000),
)
def test_multi_chunk_bytes_round_trip(
    shared_store: ArtifactStore, data: bytes, repeat: int
) -> None:
    blob = data * repeat  # up to ~2.5 MiB: crosses chunk boundaries at odd offsets

    digest = shared_store.put_stream(io.BytesIO(blob))

    assert digest == hashlib.sha256(blob).hexdigest()
    assert shared_store.get_bytes(digest) == blob


@settings(max_examples=200)
@given(text=st.one_of(st.text(max_size=70), st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True)))
def test_is_digest_accepts_exactly_64_lowercase_hex(text: str) -> None:
    assert is_digest(text) == (re.fullmatch(r"[0-9a-f]{64}", text) is not None)


@settings(max_examples=25, deadline=None)
@given(
    files=st.dictionaries(
        keys=st.lists(
            st.text(
                alphabet=st.characters(
                    codec="utf-8", exclude_characters="/\\\x00", exclude_categories=["Cs"]
                ),
                min_size=1,
                max_size=8,
            ).filter(lambda part: part not in (".", "..")),
            min_size=1,
            max_size=3,
        )
        # A top-level 'C:' is a drive letter on Windows, refused by every manifest
        # (tests/artifacts/test_artifact_materialize.py covers that refusal).
        .filter(lambda parts: re.match(r"[A-Za-z]:", parts[0]) is None)
        .map(tuple),
        values=st.binary(max_size=64),
        max_size=6,
    )
)
def test_any_tree_round_trips(
    shared_store: ArtifactStore,
    tmp_path_factory: pytest.TempPathFactory,
    files: dict[tuple[str, ...], bytes],
) -> None:
    src = tmp_path_factory.mktemp("tree")
    written: dict[str, bytes] = {}
    for parts, data in files.items():
        path = src.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError:  # a file and a folder of the same name: skip this one
            continue
        written["/".join(parts)] = data
    written = {p: d for p, d in written.items() if src.joinpath(p).is_file()}

    out = shared_store.get_dir(shared_store.put_dir(src), Path(src.parent, src.name + "-out"))

    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == written
