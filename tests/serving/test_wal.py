"""The WAL writer's group commit: nothing is lost or reordered, and failures are reported."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from loopml.serving._wal import WalWriter, encode_frame, read_wal, wal_files


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


def test_a_failed_write_fails_its_caller_and_every_later_one(tmp_path: Path) -> None:
    writer = WalWriter(tmp_path, 1, rotate_rows=100, rotate_seconds=60, on_rotate=lambda _: None)
    writer.append([encode_frame({"i": 0})], wait=True)

    def broken(batch: list[bytes]) -> None:
        raise OSError(28, "No space left on device")

    writer._write = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        writer.append([encode_frame({"i": 1})], wait=True, lead=True)
    with pytest.raises(OSError, match="No space left"):
        writer.append([encode_frame({"i": 2})], wait=False)
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert [r["i"] for r in read_wal(wal_files(tmp_path)[0][1])] == [0]  # what was durable stays
