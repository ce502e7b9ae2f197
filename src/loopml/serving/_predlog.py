"""The prediction log: every answered prediction, durable locally, then in Parquet.

Life of a record:

1. :meth:`PredictionLog.append` frames it into the current WAL file; with
   ``wait=True`` it returns once the record is on disk (group commit, see
   :mod:`loopml.serving._wal`), so a server answers only logged predictions.
2. The WAL file is closed after ``segment_rows`` records or ``flush_interval``
   seconds. The flusher thread converts it to one Parquet segment per endpoint,
   staged in ``wal-N.segments/`` next to it (published by an atomic rename), and
   only then deletes the WAL file.
3. Each staged segment is put into the artifact store and indexed by a
   ``prediction_segment`` row whose unique ``digest`` makes the step idempotent;
   only then is the staged folder removed.

A crash at any point leaves a WAL file or a staged folder behind, and
:meth:`PredictionLog.recover` finishes the job: staged segments are uploaded again
(the same bytes, so the same digest: no duplicate rows), WAL files are converted.
Staging the Parquet bytes before deleting the WAL is what makes a retry produce
the *same* digest, independently of whether the Parquet writer is byte-for-byte
deterministic.

Nothing that cannot be read is deleted. Every readable, well-formed record of a
WAL file is converted; when any byte of the file belongs to no valid frame (a torn
tail, corruption) or a frame's record lacks a field or has one of the wrong type,
the file is moved intact into ``quarantine/`` (:data:`QUARANTINE`) instead of
being deleted, an ERROR line says how many records and bytes were set aside, and
listeners (the server's metrics) are told (:meth:`PredictionLog.on_quarantine`).
A staged segment that is not a Parquet file of :data:`SEGMENT_SCHEMA` is set
aside the same way. So a damaged file never stops recovery, nor the server.

Every file and folder the log creates is its owner's only (0o600 / 0o700).
"""

from __future__ import annotations

import base64
import binascii
import collections
import fcntl
import logging
import os
import shutil
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml._private_fs import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    make_private_dirs,
    open_private_file,
)
from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter, PredictionTooLarge
from loopml.registry._signature import Signature
from loopml.serving._payloads import FloatRows
from loopml.serving._predlog_columns import (
    ROWS_COLUMN,
    SignatureTypes,
    check_typed,
    is_typed_column,
    probability_columns,
    stored_signature,
    typed_columns,
)
from loopml.serving._wal import (
    MAX_FRAME,
    WalContents,
    WalWriter,
    encode_frame,
    fsync_dir,
    scan_wal,
    wal_files,
)
from loopml.store import Store, now_ms, tables

__all__ = [
    "QUARANTINE",
    "SEGMENT_SCHEMA",
    "SHADOW_MARK",
    "STAGED_SUFFIX",
    "PredictionLog",
    "PredictionRecord",
    "SetAside",
    "rows_to_table",
    "valid_rows",
]

_log = logging.getLogger(__name__)
_segment = tables.PREDICTION_SEGMENT

SEGMENT_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("ts", pa.int64()),
        ("endpoint", pa.string()),
        ("route", pa.string()),
        ("model_version", pa.string()),
        ("latency_ms", pa.float64()),
        ("inputs", pa.string()),
        ("output", pa.string()),
    ]
)
"""Columns of a Parquet segment; ``ts`` is ms since the epoch, inputs/output JSON text."""

SHADOW_MARK = ":shadow:"
"""A shadow's prediction is logged as ``<answered request id>:shadow:<model ref>``."""

QUARANTINE = "quarantine"
"""The sub-folder of a log folder where files that could not be fully read are kept."""

STAGED_SUFFIX = ".segments"
"""The suffix of a WAL file's staged folder of segments, waiting to be stored."""
_STAGING = ".segments.tmp"
_LOCK = "LOCK"
_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One answered prediction.

    Attributes:
        request_id: unique id of the request (the key feedback joins on).
        endpoint: the endpoint that answered.
        route: the route (e.g. ``champion``, ``challenger``) that answered.
        model_version: the model version that answered (e.g. ``fraud/3``).
        inputs: the input features: any JSON value, or :class:`FloatRows` (logged as
            the columns it holds).
        output: the prediction (any JSON value).
        latency_ms: time taken to answer, in milliseconds.
        ts: when the request was answered, in ms since the epoch.
        probabilities: each row's class probabilities, columns named by class key
            (see :mod:`loopml.serving._probabilities`), when the route logs them.
    """

    request_id: str
    endpoint: str
    route: str
    model_version: str
    inputs: Any
    output: Any
    latency_ms: float
    ts: int = field(default_factory=now_ms)
    probabilities: FloatRows | None = None


_FIELDS = tuple(f.name for f in fields(PredictionRecord))
_ENCODED_FIELDS = ("inputs", "output", "probabilities")


@dataclass(frozen=True, slots=True)
class SetAside:
    """A file moved into ``quarantine/`` because not all of it could be logged.

    Attributes:
        name: its file name in the quarantine folder.
        records: frames that were intact but whose record was not well-formed (for
            a staged segment: its rows, if readable).
        unreadable_bytes: bytes set aside: those in no valid frame plus the frames
            of those records (for a staged segment: its size).
    """

    name: str
    records: int
    unreadable_bytes: int


class PredictionLog:
    """A durable, background-flushed log of predictions for one serving process.

    Args:
        folder: local folder for the WAL files; one process owns it at a time.
        store: the metadata store that indexes segments.
        artifacts: where segments are stored.
        source: who wrote the segments (e.g. the server's host name), stored per segment.
        segment_rows: close a WAL file (and write a segment) after this many records.
        flush_interval: ... or this many seconds after its first record.
        max_record_bytes: the largest record logged, as WAL frame payload bytes (at
            most, and by default, :data:`~loopml.serving._wal.MAX_FRAME`); a larger
            one is refused with :class:`~loopml.errors.PredictionTooLarge`.

    Raises:
        InvalidParameter: a bad argument, or another process owns ``folder``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from loopml.store import open_store
        >>> folder = Path(tempfile.mkdtemp())
        >>> store = open_store("sqlite://")
        >>> artifacts = ArtifactStore.from_uri(str(folder / "artifacts"))
        >>> with PredictionLog(folder / "wal", store, artifacts, "host-1") as log:
        ...     _ = log.recover()
        ...     log.append(PredictionRecord("r1", "fraud", "champion", "fraud/3",
        ...                                 {"amount": 12.5}, 0.93, 4.2))
        >>> len(read_predictions(store, artifacts, "fraud"))
        1
    """

    def __init__(
        self,
        folder: Path,
        store: Store,
        artifacts: ArtifactStore,
        source: str,
        segment_rows: int = 10_000,
        flush_interval: float = 2.0,
        max_record_bytes: int = MAX_FRAME,
    ) -> None:
        if segment_rows < 1:
            raise InvalidParameter(
                "The 'segment_rows' parameter of PredictionLog must be an int >= 1. "
                f"Got {segment_rows!r} instead."
            )
        if not flush_interval > 0:
            raise InvalidParameter(
                "The 'flush_interval' parameter of PredictionLog must be a number > 0. "
                f"Got {flush_interval!r} instead."
            )
        if isinstance(max_record_bytes, bool) or not (
            isinstance(max_record_bytes, int) and 1 <= max_record_bytes <= MAX_FRAME
        ):
            raise InvalidParameter(
                "The 'max_record_bytes' parameter of PredictionLog must be an int from 1 to "
                f"{MAX_FRAME}. Got {max_record_bytes!r} instead."
            )
        self.folder = Path(folder)
        self._store = store
        self._artifacts = artifacts
        self._source = source
        self._segment_rows = segment_rows
        self._flush_interval = flush_interval
        self._max_record_bytes = max_record_bytes
        _private_folder(self.folder)
        self._lock_fd: int | None = _lock_folder(self.folder)
        existing = wal_files(self.folder)
        self._next_number = existing[-1][0] + 1 if existing else 1
        self._queue: collections.deque[Path] = collections.deque()
        self._queue_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._writer: WalWriter | None = None
        self._flusher: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._listeners: list[Callable[[SetAside], None]] = []
        self._signatures: dict[str, dict[str, str] | None] = {}

    # -- writing -----------------------------------------------------------------

    def append(self, record: PredictionRecord, *, wait: bool = True) -> None:
        """Log ``record``.

        Args:
            record: the prediction.
            wait: return only once the record is durable on local disk.

        Raises:
            InvalidParameter: ``inputs`` or ``output`` is not JSON-serialisable.
            OSError: the WAL could not be written; the record is not logged.
            RuntimeError: the log is closed.
        """
        self.append_many([record], wait=wait)

    def append_many(
        self, records: Sequence[PredictionRecord], *, wait: bool = True, lead: bool = False
    ) -> None:
        """Log ``records`` together: with ``wait``, one wait covers them all.

        With ``wait`` and ``lead``, this thread writes and syncs them itself when no
        write is under way, instead of waking the WAL thread and waiting for it
        (see :mod:`loopml.serving._wal`): for a lone request, answered sooner.

        Raises:
            PredictionTooLarge: records over ``max_record_bytes`` (named by its
                ``request_ids``) are not logged; the others are.
            InvalidParameter: one record does not serialise; none is logged.
            PredictionLogUnavailable: the WAL could not be written, or cannot be
                now; the records are not logged.
            RuntimeError: the log is closed.
        """
        frames = []
        too_large: list[str] = []
        for record in records:
            try:
                frames.append(encode_frame(_frame_fields(record), self._max_record_bytes))
            except PredictionTooLarge:
                too_large.append(record.request_id)
            except (TypeError, ValueError) as exc:
                raise InvalidParameter(
                    f"The inputs and output of prediction {record.request_id!r} must be JSON "
                    f"values: {exc}."
                ) from None
        if frames:
            writer = self._writer or self._start()
            writer.append(frames, wait=wait, lead=lead)
        if too_large:
            raise PredictionTooLarge(
                "The prediction is too large for the prediction log (over "
                f"{self._max_record_bytes} bytes as a record), so it is not answered; "
                "send fewer rows per request.",
                tuple(too_large),
            )

    def _start(self) -> WalWriter:
        with self._start_lock:
            if self._closed:
                raise RuntimeError("The prediction log is closed.")
            if self._writer is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="loopml-predlog-flusher", daemon=True
                )
                self._flusher.start()
                self._writer = WalWriter(
                    self.folder,
                    self._next_number,
                    self._segment_rows,
                    self._flush_interval,
                    self._enqueue,
                )
            return self._writer

    @property
    def ready(self) -> bool:
        """Whether predictions can be logged now.

        False once closed, and from a failed WAL write or sync until a fresh WAL
        file could be created and synced (retried in the background).
        """
        writer = self._writer
        return not self._closed and (writer is None or writer.healthy)

    def note_signature(self, model_version: str, signature: Signature | None) -> None:
        """Type the inputs ``model_version`` answers by ``signature`` in the segments.

        The server notes each version it loads; a version not noted (a crashed
        server's log, recovered) is looked up in the store.
        """
        self._signatures[model_version] = (
            None if signature is None else {c.name: c.type for c in signature.inputs}
        )

    def _signature_types(self, model_version: str) -> dict[str, str] | None:
        if model_version not in self._signatures:
            self._signatures[model_version] = stored_signature(self._store, model_version)
        return self._signatures[model_version]

    def on_quarantine(self, listener: Callable[[SetAside], None]) -> None:
        """Call ``listener`` with each file set aside from now on (from the flushing thread)."""
        self._listeners.append(listener)

    @property
    def syncs(self) -> int:
        """How many ``fdatasync`` calls the WAL made so far (one per group commit)."""
        return self._writer.syncs if self._writer is not None else 0

    # -- flushing ----------------------------------------------------------------

    def recover(self) -> int:
        """Flush whatever a previous process left in the folder; call at start-up.

        What cannot be read is set aside in ``quarantine/`` and reported (an ERROR
        log line, :meth:`on_quarantine` listeners), never raised.

        Returns:
            The number of records recovered from WAL files and staged segments.
        """
        for leftover in self.folder.glob(f"*{_STAGING}"):
            shutil.rmtree(leftover)
        current = self._writer_path()
        found: list[Path] = [p for _, p in wal_files(self.folder) if p != current]
        staged = {p.name[: -len(STAGED_SUFFIX)] for p in self.folder.glob(f"*{STAGED_SUFFIX}")}
        found += [self.folder / f"{stem}.log" for stem in sorted(staged)]
        with self._flush_lock:
            return sum(self._flush_file(path) for path in dict.fromkeys(found))

    def flush(self) -> None:
        """Close the current WAL file and write every closed one as segments now.

        Raises:
            Exception: whatever stopped a segment from being stored; its WAL file
                or staged segment stays in the folder and is retried.
        """
        if self._writer is not None:
            self._writer.rotate()
        self._drain()

    def close(self) -> None:
        """Write everything logged as segments and stop the background threads."""
        with self._start_lock:
            self._closed = True
        try:
            if self._writer is not None:
                self._writer.close()
            self._wake.set()
            if self._flusher is not None:
                self._flusher.join()
            self._drain()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _writer_path(self) -> Path | None:
        writer = self._writer
        return writer.current_path if writer is not None else None

    def _enqueue(self, path: Path) -> None:
        with self._queue_lock:
            self._queue.append(path)
        self._wake.set()

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            try:
                self._drain()
            except Exception:
                _log.exception("loopml could not store a prediction segment; will retry")
                self._wake.wait(_RETRY_SECONDS)
                self._wake.set()

    def _drain(self) -> None:
        with self._flush_lock:
            while True:
                with self._queue_lock:
                    if not self._queue:
                        return
                    path = self._queue[0]
                self._flush_file(path)
                with self._queue_lock:
                    self._queue.popleft()

    def _flush_file(self, wal: Path) -> int:
        """Turn WAL file ``wal`` (or its staged segments) into stored segments."""
        staged = wal.with_suffix(STAGED_SUFFIX)
        if not staged.exists():
            if not wal.exists():
                return 0
            self._remove_wal(wal, *_stage(wal, staged, self._signature_types))
        elif wal.exists():
            # Crashed after staging, before removing the WAL (or setting it aside): the
            # staged copy is complete; whether the WAL must be kept is decided again.
            _, refused, unreadable = valid_rows(scan_wal(wal))
            self._remove_wal(wal, refused, unreadable)
        rows = 0
        for segment in sorted(staged.glob("*.parquet")):
            rows += self._store_segment(segment)
        shutil.rmtree(staged)
        fsync_dir(self.folder)
        return rows

    def _remove_wal(self, wal: Path, refused: int, unreadable: int) -> None:
        """Delete ``wal``, now staged, or set it aside when not all of it was."""
        if refused or unreadable:
            self._set_aside(wal, wal.name, refused, unreadable)
        else:
            wal.unlink()
        fsync_dir(self.folder)

    def _set_aside(self, path: Path, name: str, records: int, unreadable: int) -> None:
        """Move ``path`` intact into the quarantine folder (as ``name``), say so, count it."""
        folder = self.folder / QUARANTINE
        make_private_dirs(folder)
        target, number = folder / name, 1
        while target.exists():
            target = folder / f"{Path(name).stem}.{number}{Path(name).suffix}"
            number += 1
        path.rename(target)
        fsync_dir(folder)
        _log.error(
            "loopml set aside %s of the prediction log in %s: %d bytes could not be read "
            "and %d records were not well-formed; everything readable in it is logged, and "
            "the file is kept intact as %s.",
            path.name,
            self.folder,
            unreadable,
            records,
            target,
        )
        found = SetAside(target.name, records, unreadable)
        for listener in self._listeners:
            listener(found)

    def _store_segment(self, path: Path) -> int:
        table = _segment_index(path)
        if table is None:
            rows = _readable_rows(path)
            self._set_aside(path, f"{path.parent.stem}-{path.name}", rows, path.stat().st_size)
            return 0
        if table.num_rows == 0:
            return 0
        endpoints = table.column("endpoint").unique().to_pylist()
        ts = table.column("ts")
        digest = self._artifacts.put_file(path)
        row = {
            "endpoint": str(endpoints[0]),
            "digest": digest,
            "rows": table.num_rows,
            "first_at": int(pc.min(ts).as_py()),
            "last_at": int(pc.max(ts).as_py()),
            "source": self._source,
            "created_at": now_ms(),
        }
        with self._store.write() as connection:
            factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
            connection.execute(
                factory(_segment).on_conflict_do_nothing(index_elements=[_segment.c.digest]),
                [row],
            )
        return int(table.num_rows)


def _private_folder(folder: Path) -> None:
    """Create ``folder`` (owner-only), or make an existing one owner-only."""
    make_private_dirs(folder)
    if stat.S_IMODE(folder.stat().st_mode) != PRIVATE_DIR_MODE:
        folder.chmod(PRIVATE_DIR_MODE)


def _segment_index(path: Path) -> pa.Table | None:
    """The columns of staged segment ``path``; None if it is not a valid one.

    Valid: the columns of :data:`SEGMENT_SCHEMA` (a segment staged by an earlier
    version), then typed columns that pass :func:`check_typed`, one endpoint, no
    null time.
    """
    try:
        schema = pq.read_schema(path)
        base = pa.schema([schema.field(i) for i in range(min(len(schema), len(SEGMENT_SCHEMA)))])
        if not base.equals(SEGMENT_SCHEMA):
            return None
        typed = len(schema) > len(SEGMENT_SCHEMA)
        if typed and check_typed(schema) is not None:
            return None
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError):
        return None
    if typed:
        if any(not is_typed_column(n) for n in schema.names[len(SEGMENT_SCHEMA) :]):
            return None
        problem = check_typed(schema, table.select(schema.names[len(SEGMENT_SCHEMA) :]))
        if problem is not None:
            _log.warning("A staged prediction segment has bad typed columns: %s", problem)
            return None
    endpoint, ts = table.column("endpoint"), table.column("ts")
    if endpoint.null_count or ts.null_count or len(endpoint.unique()) > 1:
        return None
    return table


def _readable_rows(path: Path) -> int:
    try:
        return int(pq.read_metadata(path).num_rows)
    except pa.ArrowInvalid:
        return 0


def _lock_folder(folder: Path) -> int:
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InvalidParameter(
            f"The 'folder' parameter of PredictionLog names {str(folder)!r}, which another "
            "prediction log (this process or another) is using."
        ) from None
    return fd


def _frame_fields(record: PredictionRecord) -> dict[str, Any]:
    """A record as written to the WAL: inputs and output already as the segment's JSON text.

    The flusher then copies the text into the segment instead of parsing and
    re-encoding every value, work that competes with the requests being served.
    :class:`FloatRows` inputs are the exception: they are written as their float64
    bytes (``inputs_f64``), exact and several times faster to write than decimal
    text, which matters for a request of thousands of rows; the flusher writes
    their JSON text, off the request's path. Class probabilities, when logged, are
    written the same way (``proba_f64``).
    """
    fields = {f: getattr(record, f) for f in _FIELDS if f not in _ENCODED_FIELDS}
    if isinstance(record.inputs, FloatRows):
        fields["inputs_f64"] = _float_rows_fields(record.inputs)
    else:
        fields["inputs_json"] = _json_text(record.inputs)
    fields["output_json"] = _json_text(record.output)
    if record.probabilities is not None:
        fields["proba_f64"] = _float_rows_fields(record.probabilities)
    return fields


def _float_rows_fields(rows: FloatRows) -> dict[str, Any]:
    """``rows`` as JSON fields: names, and the values' little-endian float64 bytes in base64."""
    data = rows.values.astype(_F64, copy=False).tobytes(order="C")
    return {"names": list(rows.names), "b64": base64.b64encode(data).decode("ascii")}


def _float_rows_from(fields: Any, name: str) -> FloatRows:
    """The :class:`FloatRows` that :func:`_float_rows_fields` wrote as field ``name``.

    Raises:
        ValueError: ``fields`` is not such a record (a corrupt or foreign WAL).
    """
    if not isinstance(fields, dict):
        raise ValueError(f"{name} is not an object")
    names, text = fields.get("names"), fields.get("b64")
    if not (
        isinstance(names, list)
        and names
        and all(isinstance(n, str) for n in names)
        and len(set(names)) == len(names)
        and isinstance(text, str)
    ):
        raise ValueError(f"{name} needs a 'names' list of distinct strings and a 'b64' string")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{name}'s 'b64' is not base64: {exc}") from None
    if len(data) % _F64.itemsize:
        raise ValueError(f"{name}'s 'b64' holds {len(data)} bytes, not whole float64 values")
    values = np.frombuffer(data, dtype=_F64)
    if not values.size or values.size % len(names):
        raise ValueError(f"{name}: {values.size} values do not fill rows of {len(names)} columns")
    return FloatRows(tuple(names), values.reshape(-1, len(names)))


_F64 = np.dtype("<f8")


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


_Row = tuple[str, int, str, str, str, float, str, str]  # a segment row, in SEGMENT_SCHEMA order
# A segment row, with its inputs as FloatRows when they came so, and its class probabilities.
_Parsed = tuple[_Row, FloatRows | None, FloatRows | None]
_TEXT_FIELDS = ("request_id", "endpoint", "route", "model_version")
_INT64 = (-(2**63), 2**63 - 1)


def _segment_row(record: dict[str, Any]) -> _Parsed:
    """The segment row of a WAL record, with its FloatRows inputs and its class
    probabilities (or None).

    Raises:
        ValueError: a field is missing or of the wrong type, or the inputs or output
            are not JSON text (a damaged or foreign WAL).
    """
    for name in _TEXT_FIELDS:
        if not isinstance(record.get(name), str):
            raise ValueError(f"'{name}' must be a string")
    ts, latency = record.get("ts"), record.get("latency_ms")
    if type(ts) is not int or not _INT64[0] <= ts <= _INT64[1]:
        raise ValueError("'ts' must be a 64-bit integer")
    if isinstance(latency, bool) or not isinstance(latency, int | float):
        raise ValueError("'latency_ms' must be a number")
    floats = None
    if "inputs_f64" in record:
        floats = _float_rows_from(record["inputs_f64"], "inputs_f64")
        inputs_text = _json_text(floats.columns_json())
    else:
        inputs_text = _text(record, "inputs")
        _check_json(inputs_text, "inputs")
    output_text = _text(record, "output")
    _check_json(output_text, "output")
    probabilities = None
    if "proba_f64" in record:
        probabilities = _float_rows_from(record["proba_f64"], "proba_f64")
    row = (
        record["request_id"],
        ts,
        record["endpoint"],
        record["route"],
        record["model_version"],
        float(latency),
        inputs_text,
        output_text,
    )
    return row, floats, probabilities


def _check_json(text: str, name: str) -> None:
    """Refuse text that is not JSON: the typed columns are made from it."""
    try:
        orjson.loads(text)  # dropped at once: no object outlives the check
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"'{name}' is not JSON text: {exc}") from None


def _text(record: dict[str, Any], name: str) -> str:
    """The JSON text of ``inputs`` or ``output``; earlier versions wrote the value itself."""
    if f"{name}_json" in record:
        encoded = record[f"{name}_json"]
        if not isinstance(encoded, str):
            raise ValueError(f"'{name}_json' must be a string")
        return encoded
    if name not in record:
        raise ValueError(f"'{name}_json' is missing")
    return _json_text(record[name])


def valid_rows(contents: WalContents) -> tuple[list[_Parsed], int, int]:
    """The segment rows of a WAL file's records, how many were refused, and bytes set aside.

    The bytes set aside are those in no valid frame plus the frames of refused records.
    """
    rows: list[_Parsed] = []
    refused, unreadable = 0, contents.unreadable_bytes
    for record, size in contents.records:
        try:
            rows.append(_segment_row(record))
        except ValueError as exc:
            if not refused:
                _log.warning("A prediction WAL record is not well-formed: %s", exc)
            refused += 1
            unreadable += size
    return rows, refused, unreadable


def rows_to_table(
    parsed: list[_Parsed], signature_types: SignatureTypes | None = None, *, typed: bool = True
) -> pa.Table:
    """A segment: the columns of :data:`SEGMENT_SCHEMA`, then (``typed``) the typed ones."""
    rows = [row for row, _, _ in parsed]
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(SEGMENT_SCHEMA)
    table = pa.table(
        {name: list(values) for name, values in zip(SEGMENT_SCHEMA.names, columns, strict=True)},
        schema=SEGMENT_SCHEMA,
    )
    if not typed:
        return table
    columns_, _ = typed_columns(
        [row[6] if floats is None else floats for row, floats, _ in parsed],
        [row[7] for row in rows],
        [row[4] for row in rows],
        signature_types,
    )
    counts = columns_[ROWS_COLUMN].to_numpy().astype(np.int64)
    columns_.update(probability_columns([p for _, _, p in parsed], counts))
    for name, column in columns_.items():
        table = table.append_column(name, column)
    return table


def _stage(
    wal: Path, staged: Path, signature_types: SignatureTypes | None = None
) -> tuple[int, int]:
    """Write the well-formed records of ``wal`` as one Parquet file per endpoint in ``staged``.

    Returns:
        How many records were refused, and how many bytes of ``wal`` were not staged.
    """
    rows, refused, unreadable = valid_rows(scan_wal(wal))
    by_endpoint: dict[str, list[_Parsed]] = {}
    for parsed in rows:
        by_endpoint.setdefault(parsed[0][2], []).append(parsed)
    staging = wal.with_suffix(_STAGING)
    if staging.exists():
        shutil.rmtree(staging)
    make_private_dirs(staging)
    for index, (_, group) in enumerate(sorted(by_endpoint.items())):
        path = staging / f"{index:04d}.parquet"
        fd = open_private_file(path, os.O_WRONLY)
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(rows_to_table(group, signature_types), handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
    fsync_dir(staging)
    staging.rename(staged)
    fsync_dir(wal.parent)
    return refused, unreadable
