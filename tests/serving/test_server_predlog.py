"""The server and its prediction log: what is answered is logged, what cannot be is refused.

Real uvicorn servers on 127.0.0.1, real SQLite and files; the only stand-in is the
operating system's ``fsync``/``fdatasync``, made to fail with EIO for a while.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from loopml.artifacts import ArtifactStore
from loopml.registry import RegistryClient
from loopml.serving import DeploymentClient
from loopml.serving._payloads import PayloadLimits
from loopml.serving._predlog import QUARANTINE, PredictionLog
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._server import DEFAULT_MAX_BODY_BYTES, ServerOptions, create_app
from loopml.serving._wal import wal_files
from loopml.store import Store, open_store
from server_support import start_in_thread

ENDPOINT = "pairs"


@dataclass
class Served:
    url: str
    store: Store
    artifacts: ArtifactStore
    log: PredictionLog
    folder: Path

    def predict(self, body: bytes | dict[str, object]) -> httpx.Response:
        url = f"{self.url}/v1/endpoints/{ENDPOINT}/predict"
        if isinstance(body, bytes):
            headers = {"content-type": "application/json"}
            return httpx.post(url, content=body, headers=headers, timeout=300)
        return httpx.post(url, json=body, timeout=60)

    def logged(self) -> pd.DataFrame:
        self.log.flush()
        return read_predictions(self.store, self.artifacts, ENDPOINT)


def _serve(tmp_path: Path, **log_options: int) -> Iterator[Served]:
    store = open_store(f"sqlite:///{tmp_path / 'loopml.db'}")
    artifacts = ArtifactStore.from_uri(str(tmp_path / "artifacts"))
    registry = RegistryClient(store, artifacts)
    example = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 2.0]})
    # Answers of 16-17 significant digits: a long output text, as most models give.
    model = LinearRegression().fit(example, example["a"] / 7 + example["b"] / 3 + 0.1)
    registry.register(model, "pairs", project="p", input_example=example)
    DeploymentClient(store, registry).set(ENDPOINT, ["pairs/1:100"], project="p")
    folder = tmp_path / "wal"
    log = PredictionLog(folder, store, artifacts, "h", flush_interval=60, **log_options)
    # Rows beyond the default per-request cap (422 before anything is predicted), as an
    # operator raising LOOPML_SERVE_MAX_ROWS allows: the log must still hold every row.
    options = ServerOptions(payload=PayloadLimits(max_rows=2_000_000))
    url, stop = start_in_thread(create_app(store, artifacts, None, "p", log, options))
    try:
        yield Served(url, store, artifacts, log, folder)
    finally:
        stop()
        store.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(tmp_path)


@pytest.fixture
def served_small_records(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(tmp_path, max_record_bytes=20_000)


def _split_body(rows: int) -> bytes:
    """A dataframe_split body of ``rows`` rows of two small whole numbers."""
    data = ",".join(f"[{i % 10},{i % 7}]" for i in range(rows))
    return f'{{"dataframe_split":{{"columns":["a","b"],"data":[{data}]}}}}'.encode()


def test_oversized_request_is_never_acknowledged_then_dropped(served: Served) -> None:
    """Issue 12 item 1: a 10 MB dataframe_split (~1.75 M two-float rows) is answered
    only if every row of it is in read_predictions(...) after the flush."""
    rows = (DEFAULT_MAX_BODY_BYTES - 120) // 6
    body = _split_body(rows)
    assert 0.95 * DEFAULT_MAX_BODY_BYTES < len(body) <= DEFAULT_MAX_BODY_BYTES
    response = served.predict(body)
    assert response.status_code == 200, response.text[:500]
    answered = response.json()
    logged = served.logged()
    assert logged["request_id"].tolist() == [answered["request_id"]]
    inputs = json.loads(logged["inputs"][0])
    assert len(inputs["a"]) == len(inputs["b"]) == rows
    index = np.arange(rows)
    assert np.array_equal(inputs["a"], index % 10)
    assert np.array_equal(inputs["b"], index % 7)
    assert json.loads(logged["output"][0]) == answered["predictions"]
    # The record (float64 inputs in base64, output as JSON text) is over the 64 MiB a
    # frame could hold before, so this request was answered, then dropped at flush.
    record_bytes = rows * 2 * 8 * 4 / 3 + len(logged["output"][0])
    assert record_bytes > 64 * 1024 * 1024
    assert not (served.folder / QUARANTINE).exists()


def test_a_prediction_too_large_to_log_is_refused_before_it_is_answered(
    served_small_records: Served,
) -> None:
    """Issue 12 item 1: a request whose record could not be logged gets a 413 and
    nothing of it is logged; other requests are answered and logged as usual."""
    served = served_small_records
    refused = served.predict(_split_body(5_000))
    assert refused.status_code == 413
    error = refused.json()["error"]
    assert error["code"] == "prediction_too_large"
    assert "fewer rows" in error["message"]
    answered = served.predict(_split_body(3))
    assert answered.status_code == 200
    logged = served.logged()
    assert logged["request_id"].tolist() == [answered.json()["request_id"]]
    assert not (served.folder / QUARANTINE).exists()


class _FailingDisk:
    """``os.fdatasync`` and ``os.fsync`` that fail with EIO while ``failing`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.failing = False
        for name in ("fdatasync", "fsync"):
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name)))

    def _wrap(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def sync(fd: int) -> None:
            if self.failing:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real(fd)

        return sync


def _wait_for_status(url: str, status: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while httpx.get(url, timeout=10).status_code != status:
        assert time.monotonic() < deadline, f"{url} did not answer {status} in time"
        time.sleep(0.02)


def test_a_failed_fsync_makes_the_server_unready_until_the_log_recovers(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 12 item 3: after a failed sync, predictions get 503 (not 200), readiness
    says so, no error body shows a server path, and once syncs work again the
    server is ready and answers without a restart; exactly the answered are logged."""
    ready = f"{served.url}/v2/health/ready"
    model_ready = f"{served.url}/v2/models/{ENDPOINT}/ready"
    body = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}
    disk = _FailingDisk(monkeypatch)
    answered = [served.predict(body)]
    assert answered[0].status_code == 200
    disk.failing = True
    failed = [served.predict(body) for _ in range(3)]
    assert [r.status_code for r in failed] == [503] * 3
    for response in failed:
        assert response.json()["error"]["code"] == "log_unavailable"
        assert response.headers["retry-after"] == "1"
        assert str(tmp_path) not in response.text
        assert "wal-" not in response.text
    for url in (ready, model_ready):
        unready = httpx.get(url, timeout=10)
        assert unready.status_code == 503
        assert unready.json()["ready"] is False
        assert str(tmp_path) not in unready.text
    disk.failing = False
    _wait_for_status(ready, 200)
    assert httpx.get(model_ready, timeout=10).status_code == 200
    answered += [served.predict(body) for _ in range(3)]
    assert [r.status_code for r in answered] == [200] * 4
    logged = served.logged()
    assert sorted(logged["request_id"]) == sorted(r.json()["request_id"] for r in answered)
    assert wal_files(served.folder) == []
