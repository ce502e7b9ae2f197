"""The prediction log: round trip, crash recovery, torn tails, idempotent re-flush."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sqlalchemy import func, select

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter, PredictionTooLarge
from loopml.serving import _predlog
from loopml.serving._payloads import FloatRows
from loopml.serving._predlog import QUARANTINE, PredictionLog, PredictionRecord, SetAside
from loopml.serving._predlog_reading import read_predictions
from loopml.serving._wal import MAGIC, MAX_FRAME, encode_frame, read_wal, wal_files, wal_name
from loopml.store import Store, open_store, tables


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'db' / 'loopml.db'}")
    yield opened
    opened.close()


def _record(i: int, endpoint: str = "fraud", ts: int | None = None) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"req-{i:05d}",
        endpoint=endpoint,
        route="champion" if i % 3 else "challenger",
        model_version=f"{endpoint}/{1 + i % 2}",
        inputs={"amount": i * 1.5, "country": "NL", "tags": [i, "ü"]},
        output={"score": i / 100},
        latency_ms=0.25 * i,
        ts=1_700_000_000_000 + i if ts is None else ts,
    )


def _segment_count(store: Store) -> int:
    with store.read() as conn:
        return int(
            conn.execute(select(func.count()).select_from(tables.PREDICTION_SEGMENT)).scalar_one()
        )


def test_round_trip(store: Store, artifacts: ArtifactStore, tmp_path: Path) -> None:
    records = [_record(i, "fraud" if i % 4 else "churn") for i in range(45)]
    with PredictionLog(tmp_path / "wal", store, artifacts, "host-1", segment_rows=10) as log:
        assert log.recover() == 0
        for record in records:
            log.append(record)
        log.flush()
        assert [p.name for p in (tmp_path / "wal").iterdir()] == ["LOCK"]
    frame = read_predictions(store, artifacts, "fraud")
    expected = [r for r in records if r.endpoint == "fraud"]
    assert list(frame.columns) == [
        "request_id",
        "ts",
        "endpoint",
        "route",
        "model_version",
        "latency_ms",
        "inputs",
        "output",
    ]
    got = [
        PredictionRecord(
            row.request_id,
            row.endpoint,
            row.route,
            row.model_version,
            _json(row.inputs),
            _json(row.output),
            row.latency_ms,
            row.ts,
        )
        for row in frame.itertuples()
    ]
    assert got == expected
    assert len(read_predictions(store, artifacts, "churn")) == 45 - len(expected)
    window = read_predictions(
        store, artifacts, "fraud", since_ms=1_700_000_000_010, until_ms=1_700_000_000_020
    )
    assert window["ts"].tolist() == [r.ts for r in expected if 10 <= r.ts - 1_700_000_000_000 < 20]
    assert read_predictions(store, artifacts, "nope").empty


def _json(text: str) -> object:
    import json

    return json.loads(text)


def test_unflushed_records_are_read_from_the_wal_folder(
    sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    folder = tmp_path / "wal"
    with PredictionLog(folder, sqlite_store, artifacts, "h", flush_interval=60) as log:
        for i in range(5):
            log.append(_record(i))
        assert read_predictions(sqlite_store, artifacts, "fraud").empty
        assert len(read_predictions(sqlite_store, artifacts, "fraud", wal_folders=[folder])) == 5
    assert len(read_predictions(sqlite_store, artifacts, "fraud", wal_folders=[folder])) == 5


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(1, 3)),
        elements=st.floats(allow_nan=False, allow_infinity=False),
    )
)
def test_float_rows_are_logged_as_bytes_and_read_back_as_their_columns(
    sqlite_store: Store,
    artifacts: ArtifactStore,
    tmp_path_factory: pytest.TempPathFactory,
    values: np.ndarray,
) -> None:
    folder = tmp_path_factory.mktemp("wal")
    endpoint = folder.name  # the store is shared by every example: an endpoint each
    rows = FloatRows(tuple(f"c{i}" for i in range(values.shape[1])), values)
    record = PredictionRecord("r", endpoint, "primary", "m/1", rows, [1] * len(values), 0.5)
    expected = {name: values[:, i].tolist() for i, name in enumerate(rows.names)}
    with PredictionLog(folder, sqlite_store, artifacts, "h", flush_interval=60) as log:
        log.append(record)
        (wal,) = folder.glob("wal-*.log")
        (written,) = read_wal(wal)
        assert "inputs_json" not in written  # the float64 bytes, not decimal text
        unflushed = read_predictions(sqlite_store, artifacts, endpoint, wal_folders=[folder])
        assert orjson.loads(unflushed["inputs"].iloc[0]) == expected
        log.flush()
    (flushed,) = read_predictions(sqlite_store, artifacts, endpoint)["inputs"]
    assert flushed == orjson.dumps(rows.columns_json(), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    assert orjson.loads(flushed) == expected


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ([], "not an object"),
        ({"names": [], "b64": ""}, "'names' list of distinct strings"),
        ({"names": ["a", "a"], "b64": ""}, "'names' list of distinct strings"),
        ({"names": [1], "b64": ""}, "'names' list of distinct strings"),
        ({"names": ["a"], "b64": "!!"}, "'b64' is not base64"),
        ({"names": ["a"], "b64": "AAAA"}, "3 bytes, not whole float64 values"),
        ({"names": ["a"], "b64": ""}, "0 values do not fill"),
        ({"names": ["a", "b"], "b64": "AAAAAAAAAAA="}, "do not fill rows of 2 columns"),
    ],
)
@pytest.mark.parametrize("name", ["inputs_f64", "proba_f64"])
def test_a_damaged_float_record_is_refused_by_name(fields: object, problem: str, name: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        _predlog._float_rows_from(fields, name)
    assert name in str(raised.value)


def test_group_commit_under_concurrency(
    sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    threads, each = 16, 40
    with PredictionLog(tmp_path / "wal", sqlite_store, artifacts, "h", segment_rows=100) as log:

        def work(t: int) -> None:
            for i in range(each):
                log.append(_record(t * 1000 + i))

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert log.syncs < threads * each  # appends shared their fdatasync
    frame = read_predictions(sqlite_store, artifacts, "fraud")
    assert len(frame) == threads * each
    assert frame["request_id"].is_unique


_CHILD = r"""
import sys, threading
from pathlib import Path
from loopml.artifacts import ArtifactStore
from loopml.serving._predlog import PredictionLog, PredictionRecord
from loopml.store import open_store

store = open_store(sys.argv[1])
log = PredictionLog(Path(sys.argv[3]), store, ArtifactStore.from_uri(sys.argv[2]), "child",
                    segment_rows=40, flush_interval=0.05)
lock = threading.Lock()

def work(t):
    i = 0
    while True:
        rid = f"t{t}-{i}"
        log.append(PredictionRecord(rid, "fraud", "champion", "fraud/1", {"i": i}, i, 1.0))
        with lock:
            sys.stdout.write(rid + "\n")
            sys.stdout.flush()
        i += 1

for t in range(4):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def test_sigkill_loses_no_acknowledged_prediction(
    sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    folder = tmp_path / "wal"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, sqlite_store.uri, artifacts.uri, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: list[str] = []
    deadline = time.monotonic() + 120  # generous: the machine may be busy
    try:
        assert child.stdout is not None
        # Kill once the child has acknowledged plenty AND flushed a segment itself, so
        # the kill lands with records both in segments and in the open WAL, however
        # slow the machine is (the child appends without pause until killed).
        for line in child.stdout:
            acked.append(line.strip())
            if len(acked) % 100 == 0 and len(acked) >= 600 and _segment_count(sqlite_store):
                break
            assert time.monotonic() < deadline, "the child flushed no segment in 120 s"
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    lines = rest.split("\n")
    acked += [line for line in lines[:-1] if line]  # the last piece may be a torn line
    assert child.returncode == -signal.SIGKILL
    assert _segment_count(sqlite_store) > 0  # the child flushed some segments itself
    with PredictionLog(folder, sqlite_store, artifacts, "restart") as log:
        assert log.recover() > 0  # the open WAL file held acknowledged records
    frame = read_predictions(sqlite_store, artifacts, "fraud")
    assert frame["request_id"].is_unique
    assert set(acked) <= set(frame["request_id"])
    # No duplicates across segments either (not just after de-duplication on read).
    with sqlite_store.read() as conn:
        stored_rows = conn.execute(select(func.sum(tables.PREDICTION_SEGMENT.c.rows))).scalar_one()
    assert stored_rows == len(frame)


def _write_wal(path: Path, records: list[PredictionRecord]) -> list[int]:
    """Write a WAL file by hand; return the end offset of each frame."""
    from dataclasses import asdict

    ends = []
    with path.open("wb") as handle:
        handle.write(MAGIC)
        for record in records:
            handle.write(encode_frame(asdict(record)))
            ends.append(handle.tell())
    return ends


def test_torn_tail_loses_only_the_partial_record(
    sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    folder = tmp_path / "wal"
    folder.mkdir()
    path = folder / wal_name(7)
    ends = _write_wal(path, [_record(i) for i in range(5)])
    with path.open("r+b") as handle:
        handle.truncate(ends[3] + 6)  # inside the 5th frame's header
    torn = path.read_bytes()
    assert len(read_wal(path)) == 4
    with PredictionLog(folder, sqlite_store, artifacts, "h") as log:
        assert log.recover() == 4
        log.append(_record(99))  # new files are numbered after the recovered ones
    ids = read_predictions(sqlite_store, artifacts, "fraud")["request_id"].tolist()
    assert ids == ["req-00000", "req-00001", "req-00002", "req-00003", "req-00099"]
    assert (folder / QUARANTINE / wal_name(7)).read_bytes() == torn  # kept aside, intact


def _frame_of(fields: dict[str, Any]) -> bytes:
    return encode_frame(fields)


def _fields(i: int) -> dict[str, Any]:
    return _predlog._frame_fields(_record(i))


def test_recovery_poison_is_set_aside_and_every_readable_record_recovered(
    store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    """Issue 12 item 2: a bad frame, an ill-formed record or a wrong magic never stops
    recovery, loses no readable record, and is kept aside (counted and reported)."""
    folder = tmp_path / "wal"
    folder.mkdir()
    good = [_frame_of(_fields(i)) for i in range(6)]
    ill_formed = [
        _frame_of({k: v for k, v in _fields(50).items() if k != "ts"}),  # missing field
        _frame_of({**_fields(51), "ts": "yesterday"}),  # ill-typed field
        _frame_of({**_fields(52), "inputs_f64": {"names": ["a"], "b64": "!!"}}),
        _frame_of({**_fields(53), "request_id": None}),
    ]
    damaged = bytearray(good[2])
    damaged[-3] ^= 0xFF  # CRC mismatch in the middle of the file
    files = {
        wal_name(1): MAGIC + good[0] + ill_formed[0] + good[1] + ill_formed[1],
        wal_name(2): MAGIC + bytes(damaged) + good[3] + ill_formed[2] + good[4],
        wal_name(3): b"NOTAWAL\n" + ill_formed[3] + good[5],  # wrong magic
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    seen: list[SetAside] = []
    with PredictionLog(folder, store, artifacts, "h") as log:
        log.on_quarantine(seen.append)
        assert log.recover() == 5  # every intact, well-formed record
    ids = read_predictions(store, artifacts, "fraud")["request_id"].tolist()
    assert sorted(ids) == [f"req-{i:05d}" for i in (0, 1, 3, 4, 5)]
    kept = folder / QUARANTINE
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == files  # intact
    assert wal_files(folder) == []
    by_name = {s.name: s for s in seen}
    assert by_name[wal_name(1)] == SetAside(wal_name(1), 2, len(ill_formed[0] + ill_formed[1]))
    assert by_name[wal_name(2)] == SetAside(wal_name(2), 1, len(damaged) + len(ill_formed[2]))
    assert by_name[wal_name(3)] == SetAside(wal_name(3), 1, 8 + len(ill_formed[3]))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    junk=st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "request_id",
                    "ts",
                    "endpoint",
                    "route",
                    "model_version",
                    "latency_ms",
                    "inputs_json",
                    "output_json",
                    "inputs_f64",
                    "inputs",
                    "output",
                ]
            ),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(2**63), 2**64 - 1),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=8),
                st.lists(st.integers(0, 3), max_size=2),
                st.fixed_dictionaries(
                    {
                        "names": st.lists(st.text(max_size=2), max_size=2),
                        "b64": st.sampled_from(["", "AAAAAAAAAAA=", "x"]),
                    }
                ),
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_no_intact_frame_can_stop_recovery(
    sqlite_store: Store,
    artifacts: ArtifactStore,
    tmp_path_factory: pytest.TempPathFactory,
    junk: list[dict[str, Any]],
) -> None:
    """Issue 12 item 2: whatever JSON object a CRC-valid frame holds, recovery goes on."""
    folder = tmp_path_factory.mktemp("wal")
    (folder / wal_name(1)).write_bytes(
        MAGIC + _frame_of(_fields(1)) + b"".join(map(_frame_of, junk)) + _frame_of(_fields(2))
    )
    with PredictionLog(folder, sqlite_store, artifacts, "h") as log:
        recovered = log.recover()
    assert recovered >= 2
    assert wal_files(folder) == []
    assert not list(folder.glob("*.segments*"))


def test_a_damaged_staged_segment_is_set_aside(
    sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    """Issue 12 item 2: a staged segment that is not a readable segment stops nothing."""
    folder = tmp_path / "wal"
    folder.mkdir()
    wal = folder / wal_name(1)
    _write_wal(wal, [_record(i) for i in range(3)] + [_record(9, "churn")])
    _predlog._stage(wal, wal.with_suffix(".segments"))
    wal.unlink()
    broken = sorted(wal.with_suffix(".segments").glob("*.parquet"))[0]  # churn's
    broken.write_bytes(b"PAR1 not really")
    with PredictionLog(folder, sqlite_store, artifacts, "h") as log:
        assert log.recover() == 3
    assert len(read_predictions(sqlite_store, artifacts, "fraud")) == 3
    assert [p.name for p in (folder / QUARANTINE).iterdir()] == [f"{wal.stem}-{broken.name}"]


def test_a_prediction_too_large_to_log_is_refused_and_the_others_are_logged(
    sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    """Issue 12 item 1: the writer refuses a record the reader could not read back."""
    small, big = _record(1), PredictionRecord("big", "fraud", "c", "1", {"x": "y" * 5000}, 1, 1.0)
    folder = tmp_path / "wal"
    with PredictionLog(folder, sqlite_store, artifacts, "h", max_record_bytes=2000) as log:
        with pytest.raises(PredictionTooLarge, match="fewer rows") as refused:
            log.append_many([small, big])
        assert refused.value.request_ids == ("big",)
        log.flush()
    assert read_predictions(sqlite_store, artifacts, "fraud")["request_id"].tolist() == [
        "req-00001"
    ]
    with pytest.raises(InvalidParameter, match="max_record_bytes"):
        PredictionLog(tmp_path / "b", sqlite_store, artifacts, "h", max_record_bytes=MAX_FRAME + 1)


def test_log_files_and_folders_are_owner_only(
    sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 15: WAL files, staged segments, set-aside files and their folders
    are their owner's only, whatever the umask."""
    folder = tmp_path / "wal"
    modes: dict[str, int] = {}

    def note() -> None:
        for path in [folder, *folder.rglob("*")]:
            modes[path.relative_to(folder).as_posix()] = path.stat().st_mode & 0o777

    def crash(self: PredictionLog, path: Path) -> int:
        raise _Crash

    previous = os.umask(0)
    try:
        log = PredictionLog(folder, sqlite_store, artifacts, "h", flush_interval=60)
        log.append(_record(1))
        note()  # the folder, its LOCK and the WAL file
        first = dict(modes)
        monkeypatch.setattr(PredictionLog, "_store_segment", crash)
        with pytest.raises(_Crash):
            log.flush()
        note()  # the staged segments
        first |= modes
        monkeypatch.undo()
        fd = os.open(folder / wal_name(50), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"garbage")  # a WAL file of the log, damaged
        os.close(fd)
        modes.clear()
        log.recover()
        note()  # set aside
        log.close()
    finally:
        os.umask(previous)
    staged = wal_name(1).replace(".log", ".segments")
    assert first | modes == {
        ".": 0o700,
        "LOCK": 0o600,
        wal_name(1): 0o600,
        staged: 0o700,
        f"{staged}/0000.parquet": 0o600,
        QUARANTINE: 0o700,
        f"{QUARANTINE}/{wal_name(50)}": 0o600,
    }


def test_an_existing_log_folder_is_made_owner_only(
    sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    folder = tmp_path / "wal"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with PredictionLog(folder, sqlite_store, artifacts, "h"):
        assert folder.stat().st_mode & 0o777 == 0o700


class _Crash(Exception):
    pass


def test_reflush_after_a_crash_does_not_duplicate(
    store: Store, artifacts: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = PredictionLog._store_segment

    def crash_after_storing(self: PredictionLog, path: Path) -> int:
        original(self, path)
        raise _Crash  # between the segment row insert and deleting the staged copy

    folder = tmp_path / "wal"
    log = PredictionLog(folder, store, artifacts, "h", flush_interval=60)
    for i in range(20):
        log.append(_record(i, "fraud" if i % 2 else "churn"))
    monkeypatch.setattr(PredictionLog, "_store_segment", crash_after_storing)
    with pytest.raises(_Crash):
        log.flush()
    assert _segment_count(store) == 1
    assert list(folder.glob("*.segments"))  # the staged copy survived the "crash"
    monkeypatch.undo()
    log.close()  # retries: the same bytes again, so the same digest
    assert _segment_count(store) == 2
    assert not list(folder.glob("*.segments"))
    assert len(read_predictions(store, artifacts, "fraud")) == 10
    assert len(read_predictions(store, artifacts, "churn")) == 10


def test_crash_after_staging_before_wal_removal(
    sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    folder = tmp_path / "wal"
    folder.mkdir()
    wal = folder / wal_name(1)
    _write_wal(wal, [_record(i) for i in range(6)])
    _predlog._stage(wal, wal.with_suffix(".segments"))  # WAL and staged copy both present
    with PredictionLog(folder, sqlite_store, artifacts, "h") as log:
        assert log.recover() == 6
        assert log.recover() == 0
    assert len(read_predictions(sqlite_store, artifacts, "fraud")) == 6
    assert _segment_count(sqlite_store) == 1


def test_one_log_per_folder(sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path) -> None:
    with (
        PredictionLog(tmp_path / "wal", sqlite_store, artifacts, "h"),
        pytest.raises(InvalidParameter, match="another"),
    ):
        PredictionLog(tmp_path / "wal", sqlite_store, artifacts, "h")


def test_bad_arguments(sqlite_store: Store, artifacts: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="'segment_rows'"):
        PredictionLog(tmp_path / "a", sqlite_store, artifacts, "h", segment_rows=0)
    with (
        PredictionLog(tmp_path / "wal", sqlite_store, artifacts, "h") as log,
        pytest.raises(InvalidParameter, match="JSON"),
    ):
        log.append(PredictionRecord("r", "fraud", "c", "1", {"x": object()}, 1, 1.0))
    with pytest.raises(RuntimeError, match="closed"):
        log.append(_record(1))
