"""Fixtures for the artifact store tests: a local store outside ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.artifacts import ArtifactStore


@pytest.fixture
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifact-store")


@pytest.fixture
def store(store_root: Path) -> ArtifactStore:
    return ArtifactStore.from_uri(str(store_root))
