"""``loopml serve`` starts on a damaged prediction log, recovers what it can and says so."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pandas as pd
from process_support import serving
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LinearRegression

from loopml.artifacts import ArtifactStore
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient
from loopml.serving._predlog import QUARANTINE, PredictionRecord, _frame_fields
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._wal import MAGIC, encode_frame, wal_files, wal_name
from loopml.store import open_store


def _frame(i: int, **change: object) -> bytes:
    record = PredictionRecord(f"old-{i}", "pairs", "primary", "pairs/1", {"a": [1.0]}, [2.0], 1.0)
    return encode_frame({**_frame_fields(record), **change})


def test_serve_starts_on_a_poisoned_log_and_reports_what_it_set_aside(tmp_path: Path) -> None:
    """Issue 12 item 2: a frame with an ill-typed field, a bad frame in the middle and
    a file with a wrong magic no longer stop ``loopml serve``: every readable record
    is recovered, the files are kept in quarantine/, logged and counted."""
    store_uri = f"sqlite:///{tmp_path / 'loopml.db'}"
    artifact_uri = str(tmp_path / "artifacts")
    store, artifacts = open_store(store_uri), ArtifactStore.from_uri(artifact_uri)
    registry = RegistryClient(store, artifacts)
    example = pd.DataFrame({"a": [0.0, 1.0, 2.0]})
    registry.register(
        LinearRegression().fit(example, example["a"]), "pairs", project="p", input_example=example
    )
    DeploymentClient(store, registry).set("pairs", ["pairs/1:100"], project="p")
    folder = tmp_path / "predictions"
    folder.mkdir()
    damaged = bytearray(_frame(2))
    damaged[-2] ^= 0xFF
    poisoned = {
        wal_name(1): MAGIC + _frame(1) + _frame(90, ts="now") + bytes(damaged) + _frame(3),
        wal_name(2): b"LMWAL99\n" + _frame(4),
    }
    for name, data in poisoned.items():
        (folder / name).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update(
        LOOPML_HOME=str(tmp_path / "home"),
        LOOPML_STORE_URI=store_uri,
        LOOPML_ARTIFACT_URI=artifact_uri,
        LOOPML_PROJECT="p",
        NO_COLOR="1",
    )
    try:
        with serving(["pairs"], folder, env, tmp_path / "serve.out") as server:
            metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
            server.stop()
        output = server.output()
        logged = read_predictions(store, artifacts, "pairs")
    finally:
        store.close()
    assert sorted(logged["request_id"]) == ["old-1", "old-3", "old-4"]
    assert {p.name: p.read_bytes() for p in (folder / QUARANTINE).iterdir()} == poisoned
    assert wal_files(folder) == []
    assert output.count("set aside") == 2, output
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    files = families["loopml_prediction_log_set_aside_files"].samples
    assert [s.value for s in files if s.name.endswith("_total")] == [2.0]
