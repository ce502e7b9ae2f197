"""Fixtures of the registry tests: a tracking client on a fresh SQLite store, and its registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.registry import RegistryClient
from loopml.tracking import TrackingClient


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[TrackingClient]:
    client = TrackingClient(f"sqlite:///{tmp_path / 'store' / 'loopml.db'}", str(tmp_path / "a"))
    yield client
    client.close()


@pytest.fixture
def registry(tracking: TrackingClient) -> RegistryClient:
    return RegistryClient(tracking.store, tracking.artifacts)
