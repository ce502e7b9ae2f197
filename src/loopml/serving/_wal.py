"""The prediction write-ahead log: record framing and the group-commit writer.

A WAL file is an 8-byte magic (:data:`MAGIC`) followed by frames; a frame is a
16-byte header, then the payload (UTF-8 JSON of one record). The header holds a
sync marker (:data:`SYNC`), the payload's length and CRC32 (big-endian), and the
CRC32 of those first 12 header bytes. A reader that meets a frame it cannot read
(torn by a crash, corrupted) skips to the next sync marker whose header checks
out, so one bad frame costs only itself; the header's own CRC keeps that scan
from trusting a length it found in garbage. Every byte that is not part of a
valid frame is counted (:attr:`WalContents.unreadable_bytes`) so the caller can
set the file aside instead of deleting it. Files written before the sync marker
(magic ``LMWAL01``: length, CRC32, payload) are still read, resynchronising on
the next offset where a length, a CRC and a JSON object agree.

Both sides share one limit: :func:`encode_frame` refuses a payload over the
limit it is given (at most :data:`MAX_FRAME`), and readers accept frames up to
:data:`MAX_FRAME`, so whatever was written can be read back.

Durability is by *group commit*: callers hand encoded frames to :class:`WalWriter`
and whoever holds the turn to write writes every frame waiting at that moment in
one ``os.write``, makes them durable with one ``fdatasync`` and wakes the callers
whose frames that covered. While one batch is being synced the next one gathers,
so the cost of a sync is shared by every concurrent caller, and a lone caller pays
one sync, not more. The turn is normally the writer thread's; a waiting caller
that asks to *lead* and finds nobody writing takes it itself, which spares a lone
request the hand-over to the writer thread and back (two thread wake-ups, about
as long as the sync itself). The writer thread also closes files that are due
and serves :meth:`WalWriter.rotate` and :meth:`WalWriter.close`.

A failed write or sync fails the callers of that batch and of every frame queued
meanwhile: none of them is acknowledged. The file is abandoned (cut back to its
last synced length, best effort, then handed on like a closed file, since after a
failed ``fdatasync`` Linux may have dropped its dirty pages and a later sync can
report success without them), and the writer is *failing*: appends are refused
at once with :class:`~loopml.errors.PredictionLogUnavailable` while the writer
thread tries, with exponential backoff, to create and sync a fresh file. Once that
works, appends are accepted again (:attr:`WalWriter.healthy`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loopml._private_fs import open_private_file
from loopml.errors import PredictionLogUnavailable, PredictionTooLarge

__all__ = [
    "MAGIC",
    "MAX_FRAME",
    "SYNC",
    "WalContents",
    "WalWriter",
    "decode_wal",
    "encode_frame",
    "fsync_dir",
    "read_wal",
    "scan_wal",
    "wal_files",
    "wal_name",
]

_log = logging.getLogger(__name__)

MAGIC = b"LMWAL02\n"
"""The first bytes of a WAL file written by this version."""

SYNC = b"\xd7LMF"
"""The first bytes of every frame (what a reader looks for after a bad frame)."""

MAX_FRAME = 256 * 1024 * 1024
"""The largest frame payload written or read, in bytes."""

_MAGIC_V1 = b"LMWAL01\n"
_HEADER = struct.Struct(">4sIII")  # sync, payload length, payload CRC32, CRC32 of the 12 before
_HEAD = struct.Struct(">4sII")  # the part of the header its own CRC covers
_HEADER_V1 = struct.Struct(">II")  # payload length, payload CRC32
_MAX_FRAME_V1 = 64 * 1024 * 1024
_PREFIX = "wal-"
_SUFFIX = ".log"
_RETRY_FIRST = 0.05  # seconds before the first attempt at a fresh file after a failure
_RETRY_MAX = 2.0


def wal_name(number: int) -> str:
    """Return the file name of WAL file ``number`` (names sort in number order)."""
    return f"{_PREFIX}{number:012d}{_SUFFIX}"


def wal_files(folder: Path) -> list[tuple[int, Path]]:
    """Return ``(number, path)`` of every WAL file in ``folder``, oldest first."""
    found = []
    for path in folder.glob(f"{_PREFIX}*{_SUFFIX}"):
        digits = path.name[len(_PREFIX) : -len(_SUFFIX)]
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found)


def encode_frame(record: dict[str, Any], limit: int = MAX_FRAME) -> bytes:
    """Return the frame (header, JSON payload) of one record.

    NumPy scalars and arrays are written as JSON numbers and lists; NaN and
    infinities, which JSON cannot hold, as ``null``.

    Args:
        record: the record.
        limit: the largest payload accepted, in bytes (at most :data:`MAX_FRAME`).

    Raises:
        TypeError: a value is not JSON-serialisable.
        PredictionTooLarge: the payload is longer than ``limit``.
    """
    payload = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY)
    if len(payload) > min(limit, MAX_FRAME):
        raise PredictionTooLarge(
            f"A record of {len(payload)} bytes is over the prediction log's limit of "
            f"{min(limit, MAX_FRAME)} bytes per record."
        )
    head = _HEAD.pack(SYNC, len(payload), zlib.crc32(payload))
    return head + zlib.crc32(head).to_bytes(4, "big") + payload


@dataclass(frozen=True, slots=True)
class WalContents:
    """What a WAL file holds.

    Attributes:
        records: every record of a valid frame, in file order, with the size of its
            frame in bytes.
        unreadable_bytes: bytes that belong to no valid frame (a torn tail, a
            corrupted frame, a damaged magic); 0 for a file read to its end.
    """

    records: list[tuple[dict[str, Any], int]]
    unreadable_bytes: int


def decode_wal(data: bytes) -> WalContents:
    """Return the records of a WAL file's bytes, skipping frames that cannot be read."""
    if MAGIC.startswith(data):  # empty, or a crash while the magic was being written
        return WalContents([], 0)
    if data.startswith(_MAGIC_V1):
        return _scan(data, len(_MAGIC_V1), _frame_v1_at, _next_v1)
    start = len(MAGIC) if data.startswith(MAGIC) else 0  # a damaged magic: frames may survive
    return _scan(data, start, _frame_at, _next_sync)


def scan_wal(path: Path) -> WalContents:
    """Return what the WAL file at ``path`` holds (see :func:`decode_wal`)."""
    return decode_wal(path.read_bytes())


def read_wal(path: Path) -> list[dict[str, Any]]:
    """Return the records of the WAL file at ``path`` (unreadable frames are skipped)."""
    return [record for record, _ in scan_wal(path).records]


_FrameAt = Callable[[bytes, int], tuple[dict[str, Any], int] | None]


def _scan(
    data: bytes, offset: int, frame_at: _FrameAt, next_candidate: Callable[[bytes, int], int]
) -> WalContents:
    records: list[tuple[dict[str, Any], int]] = []
    unreadable = 0
    end = len(data)
    gap_from: int | None = None
    while offset < end:
        found = frame_at(data, offset)
        if found is None:
            if gap_from is None:
                gap_from = offset
            offset = next_candidate(data, offset)
            continue
        if gap_from is not None:
            unreadable += offset - gap_from
            gap_from = None
        record, after = found
        records.append((record, after - offset))
        offset = after
    if gap_from is not None:
        unreadable += end - gap_from
    return WalContents(records, unreadable)


def _frame_at(data: bytes, offset: int) -> tuple[dict[str, Any], int] | None:
    """The record of the frame at ``offset`` and where the frame ends, or None."""
    if len(data) - offset < _HEADER.size or not data.startswith(SYNC, offset):
        return None
    _, length, crc, head_crc = _HEADER.unpack_from(data, offset)
    if zlib.crc32(data[offset : offset + _HEAD.size]) != head_crc:
        return None
    return _payload(data, offset + _HEADER.size, length, crc, MAX_FRAME)


def _next_sync(data: bytes, offset: int) -> int:
    found = data.find(SYNC, offset + 1)
    return len(data) if found < 0 else found


def _frame_v1_at(data: bytes, offset: int) -> tuple[dict[str, Any], int] | None:
    if len(data) - offset < _HEADER_V1.size + 2:
        return None
    length, crc = _HEADER_V1.unpack_from(data, offset)
    return _payload(data, offset + _HEADER_V1.size, length, crc, _MAX_FRAME_V1)


def _next_v1(data: bytes, offset: int) -> int:
    # A payload is a JSON object: only offsets 8 bytes before a "{" can start a frame.
    found = data.find(b"{", offset + 1 + _HEADER_V1.size)
    return len(data) if found < 0 else found - _HEADER_V1.size


def _payload(
    data: bytes, start: int, length: int, crc: int, limit: int
) -> tuple[dict[str, Any], int] | None:
    end = start + length
    if length > limit or end > len(data) or data[start : start + 1] != b"{":
        return None
    payload = data[start:end]
    if zlib.crc32(payload) != crc:
        return None
    try:
        record = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return (record, end) if isinstance(record, dict) else None


def fsync_dir(folder: Path) -> None:
    """Make the creation, rename or removal of entries in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def failure_reason(exc: BaseException) -> str:
    """What went wrong, without the file names an ``OSError`` may carry."""
    if isinstance(exc, OSError) and exc.errno:
        return f"[Errno {exc.errno}] {os.strerror(exc.errno)}"
    return type(exc).__name__


class _Batch:
    """The frames one turn writes together (one group commit) and how that went."""

    __slots__ = ("done", "error", "frames")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.done = False
        self.error: BaseException | None = None


class WalWriter:
    """Appends frames to numbered WAL files in ``folder`` with group commit.

    Args:
        folder: where WAL files are written; owned by this writer.
        first_number: the number of the first file to create.
        rotate_rows: close the current file once it holds this many records.
        rotate_seconds: close the current file this long after its first record.
        on_rotate: called with the path of each closed file that holds at least
            one acknowledged record (from whichever thread closed it).
    """

    def __init__(
        self,
        folder: Path,
        first_number: int,
        rotate_rows: int,
        rotate_seconds: float,
        on_rotate: Callable[[Path], None],
    ) -> None:
        self._folder = folder
        self._number = first_number
        self._rotate_rows = rotate_rows
        self._rotate_seconds = rotate_seconds
        self._on_rotate = on_rotate
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # callers wait here for their frames
        self._work = threading.Condition(lock)  # the writer thread waits here for work
        self._turn_wanted = False  # the writer thread waits for a caller's turn to end
        self._gathering = _Batch()  # the frames the next turn writes
        self._writing = False  # someone holds the turn to write (the file is theirs)
        self._failure: PredictionLogUnavailable | None = None  # set while failing
        self._retry_delay = _RETRY_FIRST
        self._retry_at = 0.0
        self._rotate_now = False
        self._stopped = False
        self._fd: int | None = None
        self._path: Path | None = None
        self._rows = 0
        self._synced = 0  # bytes of the current file known to be on disk
        self._opened_at = 0.0
        self.syncs = 0
        """Number of ``fdatasync`` calls made (each covers one batch)."""
        self._thread = threading.Thread(target=self._loop, name="loopml-predlog-wal", daemon=True)
        self._thread.start()

    @property
    def current_path(self) -> Path | None:
        """The WAL file being written, if one is open."""
        return self._path

    @property
    def healthy(self) -> bool:
        """Whether appends are accepted (False from a failed write until a fresh file works)."""
        return self._failure is None

    def append(self, frames: Sequence[bytes], *, wait: bool, lead: bool = False) -> None:
        """Queue ``frames`` (in order); with ``wait``, return only once they are on disk.

        With ``wait`` and ``lead``, the frames are written and synced in this thread
        when no write is under way (else the writer thread writes them): for a lone
        caller, which then waits for no other thread.

        Raises:
            PredictionLogUnavailable: the WAL could not be written (the frames are
                not durable), or cannot be now (a recent failure; retried in the
                background).
            RuntimeError: the writer is closed.
        """
        with self._cond:
            if self._stopped:
                raise RuntimeError("The prediction log is closed.")
            if self._failure is not None:
                raise self._failure
            batch = self._gathering
            batch.frames.extend(frames)
            if not (wait and lead):
                self._work.notify()  # the writer thread's turn
            if not wait:
                return
            while not batch.done:
                if lead and not self._writing:
                    self._write_turn(close=False)
                else:
                    self._cond.wait()
            if batch.error is not None:
                raise batch.error

    def rotate(self) -> None:
        """Write what is queued, close the current file and return when done.

        Frames that cannot be written are refused to their callers, not raised here.
        """
        with self._cond:
            target = self._gathering
            self._rotate_now = True
            self._work.notify()
            while self._rotate_now or (target.frames and not target.done):
                if not self._thread.is_alive():
                    break
                self._cond.wait(0.1)

    def close(self) -> None:
        """Write what is queued, close the current file and stop the thread."""
        with self._cond:
            self._stopped = True
            self._work.notify()
        self._thread.join()

    def _loop(self) -> None:
        with self._cond:
            while True:
                if self._writing:  # a caller's turn; its end wakes us
                    self._turn_wanted = True
                    self._work.wait()
                    continue
                if self._failure is not None:
                    if self._stopped:
                        return
                    if self._rotate_now:  # the file was abandoned: nothing to close
                        self._rotate_now = False
                        self._cond.notify_all()
                    delay = self._retry_at - time.monotonic()
                    if delay > 0:
                        self._work.wait(delay)
                    else:
                        self._try_fresh_file()
                    continue
                timeout = None
                if self._rows:
                    timeout = max(0.0, self._opened_at + self._rotate_seconds - time.monotonic())
                asked = self._gathering.frames or self._stopped or self._rotate_now
                if not (asked or timeout == 0.0):
                    self._work.wait(timeout)
                    continue
                stopping, rotate_now = self._stopped, self._rotate_now
                self._write_turn(close=stopping or rotate_now)
                if rotate_now:
                    self._rotate_now = False
                    self._cond.notify_all()
                if stopping and not self._gathering.frames:
                    return

    def _write_turn(self, *, close: bool) -> None:
        """Take the turn: write and sync what is gathered, close the file if due or ``close``.

        Called holding ``self._cond`` with nobody writing; the lock is released while
        the file is written, so others can queue frames meanwhile.
        """
        self._writing = True
        batch, self._gathering = self._gathering, _Batch()
        fresh = self._rows == 0  # this batch starts the file's clock: a new rotation deadline
        self._cond.release()
        failure: BaseException | None = None
        try:
            if batch.frames:
                self._write(batch.frames)
            due = self._rows and (
                self._rows >= self._rotate_rows
                or time.monotonic() - self._opened_at >= self._rotate_seconds
            )
            if due or close:
                self._close_file()
        except BaseException as exc:  # handed to every waiting caller
            failure = exc
            self._abandon_file()
        finally:
            self._cond.acquire()
            self._writing = False
            if failure is not None:
                self._fail(failure)
                batch.error = self._failure
            batch.done = True
            self._cond.notify_all()
            # The writer thread is woken only when it has something to do: waking it
            # after every lone request's turn would cost that request a GIL hand-over.
            if (
                self._turn_wanted
                or self._gathering.frames
                or self._stopped
                or self._rotate_now
                or fresh
                or failure is not None
            ):
                self._turn_wanted = False
                self._work.notify()

    def _fail(self, failure: BaseException) -> None:
        """Enter the failing state (holding the lock): refuse what waits, retry later."""
        _log.error(
            "loopml could not write the prediction WAL in %s; predictions are refused "
            "until a fresh WAL file can be written and synced",
            self._folder,
            exc_info=failure,
        )
        self._failure = PredictionLogUnavailable(
            f"The prediction log cannot be written ({failure_reason(failure)}); "
            "predictions are refused until it can."
        )
        # Frames queued during the failed write are refused too: none was acknowledged.
        waiting, self._gathering = self._gathering, _Batch()
        waiting.error, waiting.done = self._failure, True
        self._retry_delay = _RETRY_FIRST
        self._retry_at = time.monotonic() + self._retry_delay

    def _try_fresh_file(self) -> None:
        """While failing (holding the lock, nobody writing): create and sync a new file."""
        self._writing = True
        self._cond.release()
        try:
            self._open_file()
        except Exception as exc:
            error: Exception | None = exc
        else:
            error = None
        finally:
            self._cond.acquire()
            self._writing = False
        if error is None:
            self._failure = None
            self._retry_delay = _RETRY_FIRST
            _log.warning("loopml's prediction WAL in %s can be written again.", self._folder)
        else:
            _log.debug("The prediction WAL is still failing: %s", failure_reason(error))
            self._retry_delay = min(_RETRY_MAX, self._retry_delay * 2)
            self._retry_at = time.monotonic() + self._retry_delay
        self._cond.notify_all()

    def _write(self, frames: list[bytes]) -> None:
        if self._fd is None:
            self._open_file()
        assert self._fd is not None
        data = b"".join(frames)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fdatasync(self._fd)
        self.syncs += 1
        self._synced += len(data)
        if self._rows == 0:
            self._opened_at = time.monotonic()
        self._rows += len(frames)

    def _open_file(self) -> None:
        path = self._folder / wal_name(self._number)
        self._number += 1
        fd = open_private_file(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, MAGIC)
            os.fsync(fd)
            # The file's directory entry must be durable before any record in it is acked.
            fsync_dir(self._folder)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self._fd, self._path, self._rows, self._synced = fd, path, 0, len(MAGIC)

    def _close_file(self) -> None:
        if self._fd is None or self._path is None:
            return
        fd, path, rows = self._fd, self._path, self._rows
        self._fd, self._path, self._rows = None, None, 0
        try:
            os.close(fd)  # even when this fails, the descriptor is released
        finally:
            if rows:
                self._on_rotate(path)
            else:
                path.unlink(missing_ok=True)

    def _abandon_file(self) -> None:
        """After a failure: cut the file back to what was synced, close it, hand it on."""
        fd, path, rows = self._fd, self._path, self._rows
        self._fd, self._path, self._rows = None, None, 0
        if fd is None or path is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, self._synced)  # frames never acknowledged are not recovered
        with contextlib.suppress(OSError):
            os.close(fd)
        if rows:
            self._on_rotate(path)  # its acknowledged records must still be logged
        else:
            with contextlib.suppress(OSError):
                path.unlink()
