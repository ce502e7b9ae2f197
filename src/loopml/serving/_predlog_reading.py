"""Reading the prediction log back: what an endpoint answered, joined with its feedback.

:func:`read_predictions` reads the stored Parquet segments of a window (found by
:func:`segment_digests`) and, from local log folders, what a running server has not
flushed yet (:func:`local_tables`); the columnar, row-level reader monitors use is
:mod:`loopml.serving._prediction_rows`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, select

from loopml.artifacts import ArtifactStore
from loopml.serving._feedback import labels_for
from loopml.serving._predlog import (
    SEGMENT_SCHEMA,
    SHADOW_MARK,
    STAGED_SUFFIX,
    rows_to_table,
    valid_rows,
)
from loopml.serving._wal import scan_wal, wal_files
from loopml.store import Store, tables

__all__ = ["local_tables", "read_predictions", "segment_digests"]

_segment = tables.PREDICTION_SEGMENT


def read_predictions(
    store: Store,
    artifacts: ArtifactStore,
    endpoint: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
    with_feedback: bool = False,
    wal_folders: Sequence[Path] = (),
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
        wal_folders: also read records not flushed yet from these local WAL folders.

    Returns:
        One row per request id, with the columns of :data:`SEGMENT_SCHEMA`
        (``inputs`` and ``output`` as JSON text).
    """
    with store.read() as connection:
        digests = segment_digests(connection, endpoint, since_ms, until_ms)
    tables_: list[pa.Table] = [
        pq.read_table(io.BytesIO(artifacts.get_bytes(d)), schema=SEGMENT_SCHEMA) for d in digests
    ]
    for folder in wal_folders:
        tables_ += local_tables(Path(folder))
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


def segment_digests(
    connection: Connection, endpoint: str, since_ms: int | None, until_ms: int | None
) -> list[str]:
    """The digests of ``endpoint``'s stored segments that overlap ``[since_ms, until_ms)``.

    Args:
        connection: an open connection to the metadata store.
        endpoint: the endpoint name.
        since_ms: leave out segments that end before this time (ms); ``None``: no bound.
        until_ms: leave out segments that start at or after this time (ms); ``None``: no bound.

    Returns:
        The digests, oldest segment first. A segment may also hold rows outside the
        window: the caller filters its rows by time.
    """
    query = select(_segment.c.digest).where(_segment.c.endpoint == endpoint)
    if since_ms is not None:
        query = query.where(_segment.c.last_at >= since_ms)
    if until_ms is not None:
        query = query.where(_segment.c.first_at < until_ms)
    return [str(d) for d in connection.execute(query.order_by(_segment.c.first_at)).scalars()]


def local_tables(folder: Path, schema: pa.Schema | None = SEGMENT_SCHEMA) -> list[pa.Table]:
    """What ``folder`` holds that is not in the store yet: staged segments, then WAL records.

    Args:
        folder: a prediction log's folder.
        schema: read only these columns; None reads staged segments whole and gives
            WAL records their typed columns too.
    """
    found: list[pa.Table] = []
    for staged in sorted(folder.glob(f"*{STAGED_SUFFIX}")):
        for path in sorted(staged.glob("*.parquet")):
            with contextlib.suppress(OSError, pa.ArrowInvalid):  # flushed and removed meanwhile
                found.append(pq.read_table(path, schema=schema))
    for _, wal in wal_files(folder):
        with contextlib.suppress(OSError):
            rows, _, _ = valid_rows(scan_wal(wal))
            if rows:
                table = rows_to_table(rows, typed=schema is None)
                found.append(table if schema is None else table.select(schema.names))
    return found


def _empty() -> pd.DataFrame:
    frame: pd.DataFrame = SEGMENT_SCHEMA.empty_table().to_pandas()
    return frame
