"""Fixtures of the serving tests: a store on each back-end and a local artifact store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.artifacts import ArtifactStore
from loopml.store import Store, open_store


@pytest.fixture
def store(store_uri: str) -> Iterator[Store]:
    """An open metadata store on each back-end (``store_uri``), closed afterwards."""
    opened = open_store(store_uri)
    yield opened
    opened.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    """An artifact store in a folder of this test's own."""
    return ArtifactStore.from_uri(str(tmp_path / "artifacts"))
