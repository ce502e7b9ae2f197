"""Helpers of the prediction-log tests: log records, read the stored segments, default stores."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from loopml.artifacts import ArtifactStore
from loopml.registry import Signature
from loopml.serving._predlog import PredictionLog, PredictionRecord
from loopml.store import Store, tables
from loopml.tracking import TrackingClient, get_client

__all__ = ["log_records", "stored_segments", "use_default_stores"]


def log_records(
    store: Store,
    artifacts: ArtifactStore,
    folder: Path,
    records: Sequence[PredictionRecord],
    signatures: Mapping[str, Signature | None] | None = None,
) -> None:
    """Log ``records`` through a prediction log in ``folder`` and flush them to segments.

    ``signatures`` are noted first (model version -> signature), as the server notes
    the signature of each model version it loads.
    """
    with PredictionLog(folder, store, artifacts, "h") as log:
        for version, signature in (signatures or {}).items():
            log.note_signature(version, signature)
        log.append_many(records)
        log.flush()


def stored_segments(store: Store, artifacts: ArtifactStore) -> list[pa.Table]:
    """Every segment the store lists, read from the artifact store as written."""
    with store.read() as connection:
        digests = connection.execute(select(tables.PREDICTION_SEGMENT.c.digest)).scalars().all()
    return [pq.read_table(io.BytesIO(artifacts.get_bytes(d))) for d in digests]


def use_default_stores(
    monkeypatch: pytest.MonkeyPatch, store_uri: str, tmp_path: Path
) -> TrackingClient:
    """Point the default stores at ``store_uri`` and ``tmp_path / "artifacts"``, project ``p``.

    Returns:
        The default client, with the project ``p`` created.
    """
    monkeypatch.setenv("LOOPML_STORE_URI", store_uri)
    monkeypatch.setenv("LOOPML_ARTIFACT_URI", str(tmp_path / "artifacts"))
    monkeypatch.setenv("LOOPML_PROJECT", "p")
    tracking = get_client()
    with tracking.store.write() as connection:
        tracking.store.project_id(connection, "p")
    return tracking
