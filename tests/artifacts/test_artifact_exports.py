"""The public surface of ``loopml.artifacts`` is pinned here; change it on purpose."""

from __future__ import annotations

import loopml.artifacts as artifacts


def test_exported_names() -> None:
    assert artifacts.__all__ == [
        "CHUNK_SIZE",
        "MANIFEST_MARKER",
        "MANIFEST_VERSION",
        "ArtifactStore",
        "Backend",
        "FsspecBackend",
        "LocalBackend",
        "ManifestEntry",
        "StagedWrite",
        "is_digest",
    ]


def test_exported_members_are_defined_and_public() -> None:
    for name in artifacts.__all__:
        member = getattr(artifacts, name)
        module = getattr(member, "__module__", "loopml.artifacts._")
        assert module.startswith("loopml.artifacts"), name


def test_backends_satisfy_the_protocol(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(artifacts.LocalBackend(tmp_path), artifacts.Backend)
    assert isinstance(artifacts.FsspecBackend("memory://loopml-proto"), artifacts.Backend)
    assert isinstance(artifacts.LocalBackend(tmp_path).open_write(), artifacts.StagedWrite)
