"""The prediction write-ahead log: record framing and the group-commit writer.

A WAL file is an 8-byte magic followed by frames; a frame is a 4-byte big-endian
payload length, the 4-byte CRC32 of the payload, then the payload (UTF-8 JSON of
one record). A reader stops at the first frame that is short or whose CRC does
not match: a torn tail left by a crash is ignored, everything before it is kept.

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
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "MAGIC",
    "WalWriter",
    "decode_frames",
    "encode_frame",
    "fsync_dir",
    "read_wal",
    "wal_files",
    "wal_name",
]

_log = logging.getLogger(__name__)

MAGIC = b"LMWAL01\n"
_HEADER = struct.Struct(">II")
# A frame longer than this is a corrupt length field, not a record.
_MAX_FRAME = 64 * 1024 * 1024
_PREFIX = "wal-"
_SUFFIX = ".log"


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


def encode_frame(record: dict[str, Any]) -> bytes:
    """Return the frame (length, CRC32, JSON payload) of one record.

    NumPy scalars and arrays are written as JSON numbers and lists; NaN and
    infinities, which JSON cannot hold, as ``null``.

    Raises:
        TypeError: a value is not JSON-serialisable.
    """
    payload = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_frames(data: bytes) -> Iterator[dict[str, Any]]:
    """Yield the records of a WAL file's bytes, up to its last complete, valid frame."""
    if not data.startswith(MAGIC):
        return
    offset = len(MAGIC)
    end = len(data)
    while offset + _HEADER.size <= end:
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if length > _MAX_FRAME or start + length > end:
            return
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            return
        try:
            record = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(record, dict):
            return
        yield record
        offset = start + length


def read_wal(path: Path) -> list[dict[str, Any]]:
    """Return the records of the WAL file at ``path`` (a torn tail is ignored)."""
    return list(decode_frames(path.read_bytes()))


def fsync_dir(folder: Path) -> None:
    """Make the creation, rename or removal of entries in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WalWriter:
    """Appends frames to numbered WAL files in ``folder`` with group commit.

    Args:
        folder: where WAL files are written; owned by this writer.
        first_number: the number of the first file to create.
        rotate_rows: close the current file once it holds this many records.
        rotate_seconds: close the current file this long after its first record.
        on_rotate: called with the path of each closed, durable file that holds at
            least one record (from whichever thread closed it).
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
        self._pending: list[bytes] = []
        self._queued = 0  # sequence number of the last frame handed to us
        self._durable = 0  # sequence number of the last frame on disk
        self._writing = False  # someone holds the turn to write (the file is theirs)
        self._error: BaseException | None = None
        self._rotate_now = False
        self._stopped = False
        self._fd: int | None = None
        self._path: Path | None = None
        self._rows = 0
        self._opened_at = 0.0
        self.syncs = 0
        """Number of ``fdatasync`` calls made (each covers one batch)."""
        self._thread = threading.Thread(target=self._loop, name="loopml-predlog-wal", daemon=True)
        self._thread.start()

    @property
    def current_path(self) -> Path | None:
        """The WAL file being written, if one is open."""
        return self._path

    def append(self, frames: Sequence[bytes], *, wait: bool, lead: bool = False) -> None:
        """Queue ``frames`` (in order); with ``wait``, return only once they are on disk.

        With ``wait`` and ``lead``, the frames are written and synced in this thread
        when no write is under way (else the writer thread writes them): for a lone
        caller, which then waits for no other thread.

        Raises:
            OSError: the WAL could not be written (the record is not durable).
            RuntimeError: the writer is closed.
        """
        with self._cond:
            if self._stopped:
                raise RuntimeError("The prediction log is closed.")
            if self._error is not None:
                raise self._error
            self._pending.extend(frames)
            self._queued += len(frames)
            sequence = self._queued
            if not (wait and lead):
                self._work.notify()  # the writer thread's turn
            if not wait:
                return
            while self._durable < sequence and self._error is None:
                if lead and not self._writing:
                    self._write_turn(close=False)
                else:
                    self._cond.wait()
            if self._durable < sequence and self._error is not None:
                raise self._error

    def rotate(self) -> None:
        """Write what is queued, close the current file and return when done."""
        with self._cond:
            target = self._queued
            self._rotate_now = True
            self._work.notify()
            while (self._rotate_now or self._durable < target) and self._error is None:
                if not self._thread.is_alive():
                    break
                self._cond.wait(0.1)
            if self._error is not None:
                raise self._error

    def close(self) -> None:
        """Write what is queued, close the current file and stop the thread."""
        with self._cond:
            self._stopped = True
            self._work.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        with self._cond:
            while self._error is None:
                if self._writing:  # a caller's turn; its end wakes us
                    self._turn_wanted = True
                    self._work.wait()
                    continue
                timeout = None
                if self._rows:
                    timeout = max(0.0, self._opened_at + self._rotate_seconds - time.monotonic())
                asked = self._pending or self._stopped or self._rotate_now
                if not (asked or timeout == 0.0):
                    self._work.wait(timeout)
                    continue
                stopping, rotate_now = self._stopped, self._rotate_now
                self._write_turn(close=stopping or rotate_now)
                if rotate_now:
                    self._rotate_now = False
                    self._cond.notify_all()
                if stopping and not self._pending:
                    return

    def _write_turn(self, *, close: bool) -> None:
        """Take the turn: write and sync what is pending, close the file if due or ``close``.

        Called holding ``self._cond`` with nobody writing; the lock is released while
        the file is written, so others can queue frames meanwhile.
        """
        self._writing = True
        batch, self._pending = self._pending, []
        upto = self._queued
        fresh = self._fd is None  # a file opened now has a new rotation deadline
        self._cond.release()
        failure: BaseException | None = None
        try:
            if batch:
                self._write(batch)
            due = self._rows and (
                self._rows >= self._rotate_rows
                or time.monotonic() - self._opened_at >= self._rotate_seconds
            )
            if due or close:
                self._close_file()
        except BaseException as exc:  # handed to every waiting caller
            failure = exc
        finally:
            self._cond.acquire()
            self._writing = False
            self._cond.notify_all()
            # The writer thread is woken only when it has something to do: waking it
            # after every lone request's turn would cost that request a GIL hand-over.
            if self._turn_wanted or self._pending or self._stopped or self._rotate_now or fresh:
                self._turn_wanted = False
                self._work.notify()
        if failure is not None:
            _log.error("loopml could not write the prediction WAL", exc_info=failure)
            self._error = failure
            self._rotate_now = False
        else:
            self._durable = upto

    def _write(self, batch: list[bytes]) -> None:
        if self._fd is None:
            self._open_file()
        assert self._fd is not None
        data = b"".join(batch)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fdatasync(self._fd)
        self.syncs += 1
        if self._rows == 0:
            self._opened_at = time.monotonic()
        self._rows += len(batch)

    def _open_file(self) -> None:
        path = self._folder / wal_name(self._number)
        self._number += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(fd, MAGIC)
        os.fsync(fd)
        # The file's directory entry must be durable before any record in it is acked.
        fsync_dir(self._folder)
        self._fd, self._path, self._rows = fd, path, 0

    def _close_file(self) -> None:
        if self._fd is None or self._path is None:
            return
        os.close(self._fd)
        path, rows = self._path, self._rows
        self._fd, self._path, self._rows = None, None, 0
        if rows:
            self._on_rotate(path)
        else:
            path.unlink(missing_ok=True)
