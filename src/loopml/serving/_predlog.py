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
(the same bytes, so the same digest: no duplicate rows), WAL files are read up to
their last valid record and converted. Staging the Parquet bytes before deleting
the WAL is what makes a retry produce the *same* digest, independently of whether
the Parquet writer is byte-for-byte deterministic.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import fcntl
import io
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter
from loopml.serving._feedback import labels_for
from loopml.serving._payloads import FloatRows
from loopml.serving._wal import WalWriter, encode_frame, fsync_dir, read_wal, wal_files
from loopml.store import Store, now_ms, tables

__all__ = ["SEGMENT_SCHEMA", "SHADOW_MARK", "PredictionLog", "PredictionRecord", "predictions"]

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

_STAGED = ".segments"
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
    """

    request_id: str
    endpoint: str
    route: str
    model_version: str
    inputs: Any
    output: Any
    latency_ms: float
    ts: int = field(default_factory=now_ms)


_FIELDS = tuple(f.name for f in fields(PredictionRecord))
_JSON_FIELDS = ("inputs", "output")


class PredictionLog:
    """A durable, background-flushed log of predictions for one serving process.

    Args:
        folder: local folder for the WAL files; one process owns it at a time.
        store: the metadata store that indexes segments.
        artifacts: where segments are stored.
        source: who wrote the segments (e.g. the server's host name), stored per segment.
        segment_rows: close a WAL file (and write a segment) after this many records.
        flush_interval: ... or this many seconds after its first record.

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
        >>> len(predictions(store, artifacts, "fraud"))
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
        self.folder = Path(folder)
        self._store = store
        self._artifacts = artifacts
        self._source = source
        self._segment_rows = segment_rows
        self._flush_interval = flush_interval
        self.folder.mkdir(parents=True, exist_ok=True)
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
            InvalidParameter: one record does not serialise; none is logged.
            OSError: the WAL could not be written; the records are not logged.
            RuntimeError: the log is closed.
        """
        frames = []
        for record in records:
            try:
                frames.append(encode_frame(_frame_fields(record)))
            except (TypeError, ValueError) as exc:
                raise InvalidParameter(
                    f"The inputs and output of prediction {record.request_id!r} must be JSON "
                    f"values: {exc}."
                ) from None
        writer = self._writer or self._start()
        writer.append(frames, wait=wait, lead=lead)

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
    def syncs(self) -> int:
        """How many ``fdatasync`` calls the WAL made so far (one per group commit)."""
        return self._writer.syncs if self._writer is not None else 0

    # -- flushing ----------------------------------------------------------------

    def recover(self) -> int:
        """Flush whatever a previous process left in the folder; call at start-up.

        Returns:
            The number of records recovered from WAL files and staged segments.
        """
        for leftover in self.folder.glob(f"*{_STAGING}"):
            shutil.rmtree(leftover)
        current = self._writer_path()
        found: list[Path] = [p for _, p in wal_files(self.folder) if p != current]
        staged = {p.name[: -len(_STAGED)] for p in self.folder.glob(f"*{_STAGED}")}
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
        staged = wal.with_suffix(_STAGED)
        if not staged.exists():
            if wal.exists():
                _stage(wal, staged)
                wal.unlink()
                fsync_dir(self.folder)
            else:
                return 0
        elif wal.exists():
            # Crashed after staging, before deleting the WAL: the staged copy is complete.
            wal.unlink()
        rows = 0
        for segment in sorted(staged.glob("*.parquet")):
            rows += self._store_segment(segment)
        shutil.rmtree(staged)
        fsync_dir(self.folder)
        return rows

    def _store_segment(self, path: Path) -> int:
        table = pq.read_table(path, columns=["endpoint", "ts"])
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


def _lock_folder(folder: Path) -> int:
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
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
    their JSON text, off the request's path.
    """
    fields = {f: getattr(record, f) for f in _FIELDS if f not in _JSON_FIELDS}
    if isinstance(record.inputs, FloatRows):
        fields["inputs_f64"] = _float_rows_fields(record.inputs)
    else:
        fields["inputs_json"] = _json_text(record.inputs)
    fields["output_json"] = _json_text(record.output)
    return fields


def _float_rows_fields(rows: FloatRows) -> dict[str, Any]:
    """``rows`` as JSON fields: names, and the values' little-endian float64 bytes in base64."""
    data = rows.values.astype(_F64, copy=False).tobytes(order="C")
    return {"names": list(rows.names), "b64": base64.b64encode(data).decode("ascii")}


def _float_rows_from(fields: Any) -> FloatRows:
    """The :class:`FloatRows` that :func:`_float_rows_fields` wrote.

    Raises:
        ValueError: ``fields`` is not such a record (a corrupt or foreign WAL).
    """
    if not isinstance(fields, dict):
        raise ValueError("inputs_f64 is not an object")
    names, text = fields.get("names"), fields.get("b64")
    if not (isinstance(names, list) and names and isinstance(text, str)):
        raise ValueError("inputs_f64 needs a non-empty 'names' list and a 'b64' string")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"inputs_f64's 'b64' is not base64: {exc}") from None
    values = np.frombuffer(data, dtype=_F64)
    if values.size % len(names):
        raise ValueError(f"{values.size} values do not fill rows of {len(names)} columns")
    return FloatRows(tuple(map(str, names)), values.reshape(-1, len(names)))


_F64 = np.dtype("<f8")


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _rows_to_table(records: list[dict[str, Any]]) -> pa.Table:
    def text(record: dict[str, Any], name: str) -> str:
        encoded = record.get(f"{name}_json")  # absent from WAL files written by earlier versions
        return encoded if isinstance(encoded, str) else _json_text(record.get(name))

    def inputs_text(record: dict[str, Any]) -> str:
        floats = record.get("inputs_f64")
        if floats is None:
            return text(record, "inputs")
        return _json_text(_float_rows_from(floats).columns_json())

    return pa.table(
        {
            "request_id": [str(r["request_id"]) for r in records],
            "ts": [int(r["ts"]) for r in records],
            "endpoint": [str(r["endpoint"]) for r in records],
            "route": [str(r["route"]) for r in records],
            "model_version": [str(r["model_version"]) for r in records],
            "latency_ms": [float(r["latency_ms"]) for r in records],
            "inputs": [inputs_text(r) for r in records],
            "output": [text(r, "output") for r in records],
        },
        schema=SEGMENT_SCHEMA,
    )


def _stage(wal: Path, staged: Path) -> None:
    """Write the records of ``wal`` as one Parquet file per endpoint in ``staged``."""
    by_endpoint: dict[str, list[dict[str, Any]]] = {}
    for record in read_wal(wal):
        by_endpoint.setdefault(str(record.get("endpoint")), []).append(record)
    staging = wal.with_suffix(_STAGING)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    for index, (_, records) in enumerate(sorted(by_endpoint.items())):
        path = staging / f"{index:04d}.parquet"
        pq.write_table(_rows_to_table(records), path, compression="zstd")
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(staging)
    staging.rename(staged)
    fsync_dir(wal.parent)


# -- reading ---------------------------------------------------------------------


def predictions(
    store: Store,
    artifacts: ArtifactStore,
    endpoint: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
    with_feedback: bool = False,
    wal_folder: Path | None = None,
) -> pd.DataFrame:
    """Return the logged predictions of ``endpoint``, oldest first.

    Args:
        store: the metadata store.
        artifacts: the artifact store holding the segments.
        endpoint: the endpoint name.
        since_ms: only predictions answered at or after this time (ms since the epoch).
        until_ms: only predictions answered before this time (ms since the epoch).
        with_feedback: add ``label`` and ``feedback_at`` columns (``None``/``<NA>``
            where no feedback arrived yet); a shadow's row gets the label of the
            request it copied.
        wal_folder: also read records not flushed yet from this local WAL folder.

    Returns:
        One row per request id, with the columns of :data:`SEGMENT_SCHEMA`
        (``inputs`` and ``output`` as JSON text).
    """
    query = select(_segment.c.digest).where(_segment.c.endpoint == endpoint)
    if since_ms is not None:
        query = query.where(_segment.c.last_at >= since_ms)
    if until_ms is not None:
        query = query.where(_segment.c.first_at < until_ms)
    with store.read() as connection:
        digests = [
            str(d) for d in connection.execute(query.order_by(_segment.c.first_at)).scalars()
        ]
    tables_: list[pa.Table] = [
        pq.read_table(io.BytesIO(artifacts.get_bytes(d)), schema=SEGMENT_SCHEMA) for d in digests
    ]
    if wal_folder is not None:
        tables_ += _local_tables(Path(wal_folder))
    frame = pa.concat_tables(tables_).to_pandas() if tables_ else _empty()
    mask = frame["endpoint"] == endpoint
    if since_ms is not None:
        mask &= frame["ts"] >= since_ms
    if until_ms is not None:
        mask &= frame["ts"] < until_ms
    frame = frame[mask].drop_duplicates("request_id", keep="first")
    frame = frame.sort_values(["ts", "request_id"], kind="stable").reset_index(drop=True)
    if with_feedback:
        # A shadow's copy (``<id>:shadow:<model>``) takes the label of the request it copied.
        answered = [str(r).split(SHADOW_MARK, 1)[0] for r in frame["request_id"]]
        with store.read() as connection:
            labels = labels_for(connection, endpoint, list(dict.fromkeys(answered)))
        frame["label"] = pd.Series(
            [labels[r][0] if r in labels else None for r in answered], dtype=object
        )
        frame["feedback_at"] = pd.array(
            [labels[r][1] if r in labels else None for r in answered], dtype="Int64"
        )
    return frame


def _local_tables(folder: Path) -> list[pa.Table]:
    found: list[pa.Table] = []
    for staged in sorted(folder.glob(f"*{_STAGED}")):
        for path in sorted(staged.glob("*.parquet")):
            with contextlib.suppress(OSError):  # flushed and removed meanwhile
                found.append(pq.read_table(path, schema=SEGMENT_SCHEMA))
    for _, wal in wal_files(folder):
        with contextlib.suppress(OSError):
            records = read_wal(wal)
            if records:
                found.append(_rows_to_table(records))
    return found


def _empty() -> pd.DataFrame:
    frame: pd.DataFrame = SEGMENT_SCHEMA.empty_table().to_pandas()
    return frame
