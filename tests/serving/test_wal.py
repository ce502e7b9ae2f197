"""The WAL: group commit loses nothing, failures refuse then recover, damage is skipped."""

from __future__ import annotations

import errno
import os
import random
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import PredictionLogUnavailable, PredictionTooLarge
from loopml.serving._wal import (
    MAGIC,
    MAX_FRAME,
    WalWriter,
    decode_wal,
    encode_frame,
    read_wal,
    wal_files,
)


def test_mixed_waiting_and_queued_appends_land_once_and_in_order(tmp_path: Path) -> None:
    closed: list[Path] = []
    writer = WalWriter(tmp_path, 1, rotate_rows=7, rotate_seconds=0.02, on_rotate=closed.append)
    threads, each = 8, 60

    def work(t: int) -> None:
        chance = random.Random(t)
        for i in range(each):
            draw = chance.random()  # lead, wait for the writer thread, or only queue
            writer.append([encode_frame({"t": t, "i": i})], wait=draw < 0.7, lead=draw < 0.35)
            if chance.random() < 0.05:
                time.sleep(0.03)  # let a file age past rotate_seconds

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    writer.close()

    assert [p for _, p in wal_files(tmp_path)] == closed  # every file was closed and handed on
    seen: dict[int, list[int]] = {t: [] for t in range(threads)}
    for path in closed:
        records = read_wal(path)
        assert len(records) >= 1
        for record in records:
            seen[record["t"]].append(record["i"])
    assert seen == {t: list(range(each)) for t in range(threads)}
    assert writer.syncs <= threads * each


def test_a_leading_caller_writes_its_own_frames_and_the_others_hand_them_over(
    tmp_path: Path,
) -> None:
    closed: list[Path] = []
    writer = WalWriter(tmp_path, 1, rotate_rows=100, rotate_seconds=60, on_rotate=closed.append)
    writers: list[str] = []
    original = writer._write

    def noting(batch: list[bytes]) -> None:
        writers.append(threading.current_thread().name)
        original(batch)

    writer._write = noting  # type: ignore[method-assign]
    writer.append([encode_frame({"i": 0})], wait=True, lead=True)
    writer.append([encode_frame({"i": 1})], wait=True)
    writer.append([encode_frame({"i": 2})], wait=False)
    writer.close()
    assert writers[0] == threading.current_thread().name  # no hand-over to the WAL thread
    assert writers[1:] == ["loopml-predlog-wal", "loopml-predlog-wal"]
    assert [r["i"] for r in read_wal(closed[0])] == [0, 1, 2]


def test_a_file_only_leading_callers_wrote_is_still_closed_on_time(tmp_path: Path) -> None:
    closed: list[Path] = []
    writer = WalWriter(tmp_path, 1, rotate_rows=100, rotate_seconds=0.05, on_rotate=closed.append)
    writer.append([encode_frame({"i": 0})], wait=True, lead=True)
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(closed) == 1  # the writer thread learnt of the new file's deadline
    writer.append([encode_frame({"i": 1})], wait=True, lead=True)
    writer.close()
    assert [[r["i"] for r in read_wal(path)] for path in closed] == [[0], [1]]


class _FailingDisk:
    """``os.fdatasync`` and ``os.fsync`` that fail with EIO while ``failing`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.failing = False
        self.calls_failed = 0
        for name in ("fdatasync", "fsync"):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, self._wrap(real))

    def _wrap(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def sync(fd: int) -> None:
            if self.failing:
                self.calls_failed += 1
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real(fd)

        return sync


def _wait_until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not become true in time"
        time.sleep(0.01)


def test_one_failed_fsync_refuses_until_a_fresh_file_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 3: a failed sync fails its callers, refuses appends while the disk
    fails, starts a new file, and accepts appends again once a sync works (no restart)."""
    disk = _FailingDisk(monkeypatch)
    closed: list[Path] = []
    writer = WalWriter(tmp_path, 1, rotate_rows=100, rotate_seconds=60, on_rotate=closed.append)
    writer.append([encode_frame({"i": 0})], wait=True, lead=True)
    disk.failing = True
    with pytest.raises(PredictionLogUnavailable, match="Input/output error") as failed:
        writer.append([encode_frame({"i": 1})], wait=True, lead=True)
    assert str(tmp_path) not in str(failed.value)
    assert not writer.healthy
    # The file that failed is handed on with what was acknowledged; record 1 is not in it.
    assert [[r["i"] for r in read_wal(path)] for path in closed] == [[0]]
    with pytest.raises(PredictionLogUnavailable):
        writer.append([encode_frame({"i": 2})], wait=True)  # refused at once
    _wait_until(lambda: disk.calls_failed >= 3)  # the writer keeps trying a fresh file
    assert not writer.healthy
    disk.failing = False
    _wait_until(lambda: writer.healthy)
    writer.append([encode_frame({"i": 3})], wait=True, lead=True)
    writer.append([encode_frame({"i": 4})], wait=True)
    writer.close()
    assert [[r["i"] for r in read_wal(path)] for path in closed] == [[0], [3, 4]]
    assert closed[0] != closed[1]  # a new file after the failure
    assert [p for _, p in wal_files(tmp_path)] == closed  # no empty or half-made file left


def test_frames_queued_during_a_failed_sync_are_refused_not_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = _FailingDisk(monkeypatch)
    closed: list[Path] = []
    writer = WalWriter(tmp_path, 1, rotate_rows=1000, rotate_seconds=60, on_rotate=closed.append)
    disk.failing = True
    outcomes: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            writer.append([encode_frame({"i": i})], wait=True, lead=i % 2 == 0)
        except PredictionLogUnavailable:
            outcome = "refused"
        else:
            outcome = "acked"
        with lock:
            outcomes.append(outcome)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert outcomes == ["refused"] * 16
    disk.failing = False
    _wait_until(lambda: writer.healthy)
    writer.close()
    assert all(read_wal(path) == [] for path in closed)  # nothing unacknowledged is kept


_RECORDS = st.lists(
    st.dictionaries(
        st.text(max_size=5),
        st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20)),
        max_size=4,
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(records=_RECORDS, data=st.data())
def test_a_damaged_frame_costs_only_itself(records: list[dict[str, Any]], data: Any) -> None:
    """Issue 12 item 2: frames after a damaged one are still read; the damage is counted."""
    frames = [encode_frame(r) for r in records]
    damaged = data.draw(st.sets(st.integers(0, len(frames) - 1)))
    garbage = data.draw(st.binary(max_size=40))
    body = bytearray(MAGIC)
    expected_unreadable = 0
    for index, frame in enumerate(frames):
        if index in damaged:
            where = data.draw(st.integers(0, len(frame) - 1))
            frame = frame[:where] + bytes([frame[where] ^ 0x5A]) + frame[where + 1 :]
            expected_unreadable += len(frame)
        body += frame
        if index == 0:
            body += garbage
            expected_unreadable += len(garbage)
    contents = decode_wal(bytes(body))
    kept = [r for i, r in enumerate(records) if i not in damaged]
    assert [record for record, _ in contents.records] == kept
    assert contents.unreadable_bytes == expected_unreadable


@settings(max_examples=50, deadline=None)
@given(records=_RECORDS, cut=st.integers(1, 200))
def test_a_torn_tail_is_counted_not_hidden(records: list[dict[str, Any]], cut: int) -> None:
    frames = [encode_frame(r) for r in records]
    body = (MAGIC + b"".join(frames))[: -min(cut, sum(map(len, frames)))]
    whole, size = 0, len(MAGIC)
    while whole < len(frames) and size + len(frames[whole]) <= len(body):
        size += len(frames[whole])
        whole += 1
    contents = decode_wal(body)
    assert [r for r, _ in contents.records] == records[:whole]
    assert contents.unreadable_bytes == len(body) - size


def _v1_frame(record: dict[str, Any]) -> bytes:
    """A frame as loopml wrote it before frames had a sync marker."""
    payload = orjson.dumps(record)
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def test_files_of_the_previous_format_are_read_past_a_damaged_frame() -> None:
    frames = [_v1_frame({"i": i, "nested": {"x": [i]}}) for i in range(4)]
    broken = bytearray(frames[1])
    broken[-3] ^= 0xFF
    contents = decode_wal(b"LMWAL01\n" + frames[0] + bytes(broken) + frames[2] + frames[3])
    assert [r["i"] for r, _ in contents.records] == [0, 2, 3]
    assert contents.unreadable_bytes == len(broken)


def test_a_file_with_a_damaged_magic_keeps_its_frames_and_counts_the_magic() -> None:
    body = b"XXWAL02\n" + encode_frame({"i": 1}) + encode_frame({"i": 2})
    contents = decode_wal(body)
    assert [r["i"] for r, _ in contents.records] == [1, 2]
    assert contents.unreadable_bytes == 8
    assert decode_wal(MAGIC[:3]) == decode_wal(b"")  # a crash while the file was created


def test_writer_and_reader_share_the_frame_limit() -> None:
    """Issue 12 item 1: a frame the writer accepts is one the reader reads back."""
    big = {"x": "a" * 5000}
    with pytest.raises(PredictionTooLarge, match="limit of 1000 bytes"):
        encode_frame(big, limit=1000)
    frame = encode_frame(big, limit=len(orjson.dumps(big)))
    assert decode_wal(MAGIC + frame).records == [(big, len(frame))]
    # A frame over the old reader's 64 MiB cap (what a 10 MB request could produce).
    huge = {"x": "b" * (65 * 1024 * 1024)}
    assert decode_wal(MAGIC + encode_frame(huge)).records[0][0] == huge
    assert MAX_FRAME >= 65 * 1024 * 1024
