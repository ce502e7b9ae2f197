"""Garbage collection keeps every referenced blob and removes the rest."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from loopml.errors import InvalidParameter
from loopml.maintenance import collect_garbage
from loopml.tracking import TrackingClient


def _age(artifacts_root: Path, seconds: float) -> None:
    past = time.time() - seconds
    for blob in (artifacts_root / "blobs").rglob("*"):
        if blob.is_file():
            os.utime(blob, (past, past))


def test_gc_removes_only_unreferenced_old_blobs(client: TrackingClient, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w" * 100)
    run_id = client.create_run(project="p")
    kept_dir = client.log_artifact(run_id, folder)
    kept_file = client.log_dict(run_id, {"a": 1}, "cfg.json")
    orphan = client.artifacts.put_bytes(b"orphan bytes")
    _age(Path(client.artifacts.uri), 7200)
    young_orphan = client.artifacts.put_bytes(b"just written")

    report = collect_garbage(client.store, client.artifacts, dry_run=True, grace_seconds=3600)
    assert report.dry_run and [d for d, _ in report.unreferenced] == [orphan]
    assert report.reclaimable_bytes == len(b"orphan bytes")
    assert report.kept_young == 1
    assert client.artifacts.exists(orphan)  # a dry run deletes nothing

    collect_garbage(client.store, client.artifacts, dry_run=False, grace_seconds=3600)
    assert not client.artifacts.exists(orphan)
    assert client.artifacts.exists(young_orphan)
    for digest in (kept_dir.digest, kept_file.digest):
        assert client.artifacts.exists(digest)
    entries = client.artifacts.read_manifest(kept_dir.digest)
    assert all(client.artifacts.exists(entry.digest) for entry in entries)
    restored = client.download_artifact(run_id, "model", tmp_path / "restored")
    assert (restored / "weights.bin").read_bytes() == b"w" * 100


def test_gc_refuses_a_negative_grace(client: TrackingClient) -> None:
    with pytest.raises(InvalidParameter, match="grace_seconds"):
        collect_garbage(client.store, client.artifacts, grace_seconds=-1)
