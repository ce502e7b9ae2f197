"""The columnar read API of the prediction log: one Arrow row per predicted row.

:func:`read_prediction_rows` (store-level, what monitors call) and
:func:`prediction_rows` (default stores) turn an endpoint's logged requests into
one row per row each request held — a request of 3 rows gives 3 rows — with one
typed column per input feature, the prediction and, joined by request id, the
label in force:

========================  ====================================================
column                    holds
========================  ====================================================
``request_id``            the request the row came in (a shadow's copy:
                          ``<id>:shadow:<model>``)
``row``                   its index within the request (int32)
``ts``                    when the request was answered (ms since the epoch)
``route``                 the route that answered
``model_version``         the model version that answered (``credit/7``)
one per input feature     its value (bool, int64, float64 or string; see
                          :mod:`loopml.serving._predlog_columns`); a feature
                          named like one of these columns is ``in.<name>``
``prediction``            the prediction for the row
``proba_<class>``         the row's probability of that class (float64), when
                          the endpoint logs class probabilities; null for
                          requests that logged none
``label``                 the label for the row, None until feedback arrives
``feedback_at``           when the request's label arrived (ms), null before
========================  ====================================================

An input feature named like one of these columns, or starting with ``proba_``, is
read as ``in.<name>``.

Segments with typed columns are read column by column (only the features asked
for); older segments, and typed columns that fail their check, are read from the
JSON text instead, by the same conversion, so both read alike (the JSON holds no
probabilities: such a segment's requests have none). A label pairs with
the rows as the route comparison pairs them: a list label gives row ``i`` its
``i``-th value when it is as long as the request; any other label gives the value
to a request of one row; a label that pairs with nothing leaves ``label`` None
(``feedback_at`` still says it arrived). A shadow's copy takes the label of the
request it copied.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, select

from loopml.errors import DeploymentNotFound, InvalidParameter, ProjectNotFound, UnknownColumnError
from loopml.serving._feedback import labels_for
from loopml.serving._predlog import SEGMENT_SCHEMA, SHADOW_MARK
from loopml.serving._predlog_columns import (
    INPUT_PREFIX,
    PREDICTION_COLUMN,
    PROBA_PREFIX,
    ROWS_COLUMN,
    cast_to,
    check_typed,
    common_type,
    is_typed_column,
    stored_signature,
    typed_columns,
    typed_values,
)
from loopml.serving._predlog_reading import local_tables, segment_digests
from loopml.serving._reading import TimeBound, time_bound_ms
from loopml.store import Store, tables

if TYPE_CHECKING:
    from loopml.artifacts import ArtifactStore

__all__ = ["BASE_COLUMNS", "PredictionRows", "prediction_rows", "read_prediction_rows"]

BASE_COLUMNS = ("request_id", "row", "ts", "route", "model_version")
"""The columns every row has before its features."""
_TAIL = ("prediction", "label", "feedback_at")
_PROBA_COLUMN = "proba_"  # proba_<class> in the rows read; proba.<class> in a segment
_REQUEST = ("request_id", "ts", "endpoint", "route", "model_version")
# Over this many requests, the endpoint's labels are read in one scan instead of by id.
_LABELS_BY_ID = 20_000

_log = logging.getLogger(__name__)
_segment = tables.PREDICTION_SEGMENT


@dataclass(frozen=True, slots=True)
class PredictionRows:
    """What :func:`read_prediction_rows` read.

    Attributes:
        table: one row per predicted row (see the module docstring).
        segments: digests of the stored segments read, oldest first (for lineage).
        unflushed: requests read from local folders, not in the store yet.
        damaged: requests whose logged inputs or output could not be decoded (their
            rows are there, with nulls).
    """

    table: pa.Table
    segments: tuple[str, ...]
    unflushed: int
    damaged: int


@dataclass(slots=True)
class _Part:
    """The requests of one segment (or local table) in the window, not yet one row per row."""

    requests: pa.Table  # request_id, ts, route, model_version
    rows: np.ndarray
    features: dict[str, pa.ChunkedArray | pa.Array]
    prediction: pa.ChunkedArray | pa.Array
    probabilities: dict[str, pa.ChunkedArray | pa.Array]  # class key -> list<float64>


def prediction_rows(
    endpoint: str,
    *,
    project: str | None = None,
    since: TimeBound | None = None,
    until: TimeBound | None = None,
    route: str | None = None,
    model_version: str | None = None,
    columns: Sequence[str] | None = None,
    with_feedback: bool = True,
) -> pa.Table:
    """Return what ``endpoint`` predicted, one typed row per predicted row, oldest first.

    Includes what a server on this machine answered but has not flushed yet. For
    the digests of the segments read (lineage), call :func:`read_prediction_rows`.

    Args:
        endpoint: the endpoint (a deployment's name, or the model name ``loopml serve
            -m MODEL`` served under).
        project: the project (default: ``LOOPML_PROJECT``).
        since: only requests answered at or after this moment (see :data:`TimeBound`).
        until: only requests answered before this moment.
        route: only this route's, as logged (``primary:credit@champion``) or by its
            model reference (``credit@champion``).
        model_version: only this model version's (``credit/7``).
        columns: only these input features (default: every feature logged).
        with_feedback: add ``label`` and ``feedback_at``.

    Returns:
        The table described in :mod:`loopml.serving._prediction_rows`.

    Raises:
        ProjectNotFound: ``project`` does not exist.
        DeploymentNotFound: ``endpoint`` is neither deployed in ``project`` nor in the log.
        InvalidParameter: a bad argument, or ``since`` not before ``until``.
        UnknownColumnError: a column of ``columns`` is no feature of the rows read.

    Example:
        >>> import loopml.serving
        >>> rows = loopml.serving.prediction_rows("credit", since="1d")  # doctest: +SKIP
        >>> rows.select(["age", "prediction", "label"]).to_pandas()  # doctest: +SKIP
    """
    from loopml import settings
    from loopml.serving._claim import local_log_folders
    from loopml.tracking import get_client

    name = settings.project(project)
    tracking = get_client()
    return read_prediction_rows(
        tracking.store,
        tracking.artifacts,
        endpoint,
        project=name,
        since=since,
        until=until,
        route=route,
        model_version=model_version,
        columns=columns,
        with_feedback=with_feedback,
        wal_folders=local_log_folders(),
    ).table


def read_prediction_rows(
    store: Store,
    artifacts: ArtifactStore,
    endpoint: str,
    *,
    project: str | None = None,
    since: TimeBound | int | None = None,
    until: TimeBound | int | None = None,
    route: str | None = None,
    model_version: str | None = None,
    columns: Sequence[str] | None = None,
    with_feedback: bool = True,
    wal_folders: Sequence[Path] = (),
) -> PredictionRows:
    """:func:`prediction_rows` on given stores, with the segments read.

    Args:
        store: the metadata store.
        artifacts: the artifact store holding the segments.
        endpoint: the endpoint.
        project: where ``endpoint`` must be deployed when it has no logged
            prediction (default: any project).
        since: see :func:`prediction_rows`; also an int of ms since the epoch.
        until: see :func:`prediction_rows`; also an int of ms since the epoch.
        route: see :func:`prediction_rows`.
        model_version: see :func:`prediction_rows`.
        columns: see :func:`prediction_rows`.
        with_feedback: see :func:`prediction_rows`.
        wal_folders: also read what these local prediction-log folders hold.

    Returns:
        The rows, the digests of the segments read, and counts of unflushed and
        damaged requests.

    Raises:
        ProjectNotFound: ``project`` does not exist.
        DeploymentNotFound: ``endpoint`` is neither deployed nor in the log.
        InvalidParameter: a bad argument, or ``since`` not before ``until``.
        UnknownColumnError: a column of ``columns`` is no feature of the rows read.
    """
    _check_text(endpoint, "endpoint", required=True)
    _check_text(route, "route")
    _check_text(model_version, "model_version")
    wanted = _check_columns(columns)
    since_ms, until_ms = _bound(since, "since"), _bound(until, "until")
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise InvalidParameter(
            "The 'since' parameter of read_prediction_rows must be before 'until'. "
            f"Got since={since!r} and until={until!r} instead."
        )
    window = _Window(endpoint, since_ms, until_ms, route, model_version)
    with store.read() as connection:
        known = _endpoint_known(connection, endpoint, project)
        digests = segment_digests(connection, endpoint, since_ms, until_ms)
    reader = _Reader(store, window, wanted)
    parts = [reader.segment(pq.ParquetFile(io.BytesIO(artifacts.get_bytes(d)))) for d in digests]
    stored = len(parts)
    for folder in wal_folders:
        parts += [reader.table(t) for t in local_tables(Path(folder), schema=None)]
    if not known and not any(len(p.rows) for p in parts):
        raise DeploymentNotFound(
            f"No endpoint named {endpoint!r}: it is not deployed"
            + ("" if project is None else f" in project {project!r}")
            + " and has no logged predictions (see `loopml deployments list`)."
        )
    parts = _first_of_each_request(parts)
    unflushed = sum(len(p.rows) for p in parts[stored:])
    table = _expand(parts, wanted, reader.features)
    if with_feedback:
        table = _with_labels(store, endpoint, table)
    table = table.sort_by([("ts", "ascending"), ("request_id", "ascending"), ("row", "ascending")])
    return PredictionRows(table, tuple(digests), unflushed, reader.damaged)


@dataclass(frozen=True, slots=True)
class _Window:
    endpoint: str
    since_ms: int | None
    until_ms: int | None
    route: str | None
    model_version: str | None

    def filter(self, table: pa.Table) -> pa.Table:
        """The requests of ``table`` (with the columns of :data:`_REQUEST`) in the window."""
        return table.filter(pa.array(self.mask(table)))

    def mask(self, requests: pa.Table) -> np.ndarray:
        """Which of ``requests`` fall in the window."""
        keep = np.asarray(pc.equal(requests.column("endpoint"), self.endpoint).fill_null(False))
        ts = requests.column("ts")
        if self.since_ms is not None:
            keep &= np.asarray(pc.greater_equal(ts, self.since_ms).fill_null(False))
        if self.until_ms is not None:
            keep &= np.asarray(pc.less(ts, self.until_ms).fill_null(False))
        if self.model_version is not None:
            same = pc.equal(requests.column("model_version"), self.model_version)
            keep &= np.asarray(same.fill_null(False))
        if self.route is not None:
            routes = requests.column("route")
            bare = pc.replace_substring_regex(routes, pattern=r"^[^:]*:", replacement="")
            same = pc.or_(pc.equal(routes, self.route), pc.equal(bare, self.route))
            keep &= np.asarray(same.fill_null(False))
        return keep


class _Reader:
    """Reads segments into :class:`_Part` s, noting every feature name and damage seen."""

    def __init__(self, store: Store, window: _Window, wanted: list[str] | None) -> None:
        self._store = store
        self._window = window
        self._wanted = wanted
        self._signatures: dict[str, dict[str, str] | None] = {}
        self.features: set[str] = set()
        self.damaged = 0

    def segment(self, file: pq.ParquetFile) -> _Part:
        """The part of a stored segment in the window: its typed columns, else its JSON."""
        schema = file.schema_arrow
        if not _has_base(schema):
            return self._empty()
        if ROWS_COLUMN in schema.names:
            problem = check_typed(schema)
            if problem is None:
                names = [n[len(INPUT_PREFIX) :] for n in schema.names if n.startswith(INPUT_PREFIX)]
                self.features.update(names)
                chosen = [n for n in names if self._wanted is None or n in self._wanted]
                read = [
                    *_REQUEST,
                    ROWS_COLUMN,
                    PREDICTION_COLUMN,
                    *(INPUT_PREFIX + n for n in chosen),
                    *(n for n in schema.names if n.startswith(PROBA_PREFIX)),
                ]
                part = self._typed_part(file.read(columns=read))
                if part is not None:
                    return part
            else:
                _warn_untrusted(problem)
        return self._from_json(
            self._window.filter(file.read(columns=[*_REQUEST, "inputs", "output"]))
        )

    def table(self, table: pa.Table) -> _Part:
        """The part of a whole segment table (a local one) in the window."""
        if not _has_base(table.schema):
            return self._empty()
        if ROWS_COLUMN in table.column_names:
            problem = check_typed(table.schema)
            if problem is None:
                typed = [n for n in table.column_names if is_typed_column(n)]
                part = self._typed_part(table.select([*_REQUEST, *typed]))
                if part is not None:
                    return part
            else:
                _warn_untrusted(problem)
        return self._from_json(self._window.filter(table))

    def _typed_part(self, table: pa.Table) -> _Part | None:
        """The part of typed columns read, None when their lengths are not to be trusted."""
        table = self._window.filter(table)
        problem = check_typed(table.schema, table.drop_columns(list(_REQUEST)))
        if problem is not None:
            _warn_untrusted(problem)
            return None
        return self._typed(table)

    def _typed(self, table: pa.Table) -> _Part:
        features = {
            n[len(INPUT_PREFIX) :]: table.column(n)
            for n in table.column_names
            if n.startswith(INPUT_PREFIX)
        }
        self.features.update(features)
        return _Part(
            table.select(list(_REQUEST)),
            table.column(ROWS_COLUMN).to_numpy().astype(np.int64),
            {n: c for n, c in features.items() if self._wanted is None or n in self._wanted},
            table.column(PREDICTION_COLUMN),
            {
                n[len(PROBA_PREFIX) :]: table.column(n)
                for n in table.column_names
                if n.startswith(PROBA_PREFIX)
            },
        )

    def _from_json(self, table: pa.Table) -> _Part:
        typed, damaged = typed_columns(
            table.column("inputs").to_pylist(),
            table.column("output").to_pylist(),
            [str(v) for v in table.column("model_version").to_pylist()],
            self._signature_types,
        )
        self.damaged += damaged
        requests = table.select(list(_REQUEST))
        for name, column in typed.items():
            requests = requests.append_column(name, column)
        return self._typed(requests)

    def _signature_types(self, version: str) -> dict[str, str] | None:
        if version not in self._signatures:
            self._signatures[version] = stored_signature(self._store, version)
        return self._signatures[version]

    def _empty(self) -> _Part:
        return _Part(
            pa.table({n: pa.array([], SEGMENT_SCHEMA.field(n).type) for n in _REQUEST}),
            np.zeros(0, dtype=np.int64),
            {},
            pa.array([], pa.list_(pa.null())),
            {},
        )


def _has_base(schema: pa.Schema) -> bool:
    """Whether ``schema`` has the request and JSON columns of :data:`SEGMENT_SCHEMA`."""
    for name in (*_REQUEST, "inputs", "output"):
        if name not in schema.names or schema.field(name).type != SEGMENT_SCHEMA.field(name).type:
            _log.warning("A prediction segment lacks the log's column %r; it is skipped.", name)
            return False
    return True


def _warn_untrusted(problem: str) -> None:
    _log.warning(
        "A prediction segment's typed columns are not trusted (%s); its JSON is read instead.",
        problem,
    )


def _first_of_each_request(parts: list[_Part]) -> list[_Part]:
    """``parts`` without the requests an earlier part holds (a segment and its WAL, say)."""
    ids = [p.requests.column("request_id").to_numpy(zero_copy_only=False) for p in parts]
    if not ids:
        return parts
    repeated = pd.Index(np.concatenate(ids)).duplicated(keep="first")
    if not repeated.any():
        return parts
    kept: list[_Part] = []
    start = 0
    for part, part_ids in zip(parts, ids, strict=True):
        keep = ~repeated[start : start + len(part_ids)]
        start += len(part_ids)
        mask = pa.array(keep)
        kept.append(
            _Part(
                part.requests.filter(mask),
                part.rows[keep],
                {n: c.filter(mask) for n, c in part.features.items()},
                part.prediction.filter(mask),
                {k: c.filter(mask) for k, c in part.probabilities.items()},
            )
        )
    return kept


def _expand(parts: list[_Part], wanted: list[str] | None, seen: set[str]) -> pa.Table:
    """One table of every part, one row per predicted row, features in one type each."""
    if wanted is not None and any(len(p.rows) for p in parts):
        unknown = [n for n in wanted if n not in seen]
        if unknown:
            raise UnknownColumnError(
                f"The columns {', '.join(map(repr, unknown))} asked of the prediction log are "
                f"no input features of the rows read; known ones: "
                f"{', '.join(map(repr, sorted(seen))) or 'none'}.",
                tuple(unknown),
                tuple(sorted(seen)),
            )
    names = sorted({n for p in parts for n in p.features}) if wanted is None else wanted
    classes = list(dict.fromkeys(k for p in parts for k in p.probabilities))
    pieces: list[dict[str, pa.Array | pa.ChunkedArray]] = []
    for part in parts:
        if not len(part.rows):
            continue
        total = int(part.rows.sum())
        request_of_row = np.repeat(np.arange(len(part.rows)), part.rows)
        starts = np.cumsum(part.rows) - part.rows
        piece: dict[str, pa.Array | pa.ChunkedArray] = {
            name: part.requests.column(name).take(pa.array(request_of_row)) for name in _REQUEST
        }
        piece["row"] = pa.array(np.arange(total) - starts[request_of_row], type=pa.int32())
        for name in names:
            column = part.features.get(name)
            piece[INPUT_PREFIX + name] = (
                pa.nulls(total) if column is None else _flat(column, part.rows)
            )
        piece["prediction"] = _flat(part.prediction, part.rows)
        for key in classes:
            column = part.probabilities.get(key)
            piece[PROBA_PREFIX + key] = (
                pa.nulls(total, pa.float64()) if column is None else _flat(column, part.rows)
            )
        pieces.append(piece)
    keys = [*BASE_COLUMNS, *(INPUT_PREFIX + n for n in names), "prediction"]
    keys += [PROBA_PREFIX + k for k in classes]
    output = [*BASE_COLUMNS, *(_plain(n) for n in names), "prediction"]
    output += [_PROBA_COLUMN + k for k in classes]
    columns: dict[str, pa.ChunkedArray] = {}
    for key, name in zip(keys, output, strict=True):
        arrays = [piece[key] for piece in pieces]
        if key in BASE_COLUMNS:
            kind = pa.int32() if key == "row" else SEGMENT_SCHEMA.field(key).type
        elif key.startswith(PROBA_PREFIX):
            kind = pa.float64()
        else:
            kind = common_type([a.type for a in arrays])
        columns[name] = pa.chunked_array(
            [c for a in arrays for c in _chunks(cast_to(a, kind))], type=kind
        )
    return pa.table(columns)


def _plain(name: str) -> str:
    """A feature's column name: itself, or ``in.<name>`` when it is one of the others'."""
    taken = name in BASE_COLUMNS or name in _TAIL or name.startswith(_PROBA_COLUMN)
    return INPUT_PREFIX + name if taken else name


def _chunks(array: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return array.chunks if isinstance(array, pa.ChunkedArray) else [array]


def _flat(column: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """A request-level list column as one value per row: each list's values, or nulls."""
    flat = pc.list_flatten(column)
    if isinstance(flat, pa.ChunkedArray):
        flat = flat.combine_chunks()
    if not column.null_count:
        return flat
    valid = np.asarray(column.is_valid())
    per_row = np.repeat(valid, rows)
    indices = np.full(len(per_row), -1, dtype=np.int64)
    indices[per_row] = np.arange(len(flat))
    return flat.take(pa.array(indices, mask=indices < 0))


def _with_labels(store: Store, endpoint: str, table: pa.Table) -> pa.Table:
    """``table`` with ``label`` and ``feedback_at`` (see the module docstring).

    Works per request, not per row: the request ids are dictionary-encoded once, and
    Python touches only the requests that have a label (a window of a million rows
    with no feedback yet costs a few vectorised passes).
    """
    encoded = pc.dictionary_encode(table.column("request_id")).combine_chunks()
    request_of_row = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ids = encoded.dictionary.to_pylist()
    answered = [str(r).split(SHADOW_MARK, 1)[0] for r in ids]
    with store.read() as connection:
        labels = _labels(connection, endpoint, list(dict.fromkeys(answered)))
    rows = table.column("row").to_numpy().astype(np.int64)
    count = np.zeros(len(ids), dtype=np.int64)
    np.maximum.at(count, request_of_row, rows + 1)
    values: list[Any] = [None] * table.num_rows
    arrived = np.zeros(table.num_rows, dtype=np.int64)
    has = np.zeros(table.num_rows, dtype=bool)
    labelled = [k for k, source in enumerate(answered) if source in labels]
    if labelled:
        order = np.argsort(request_of_row, kind="stable")
        bounds = np.searchsorted(request_of_row[order], np.arange(len(ids) + 1))
        for k in labelled:
            label, at = labels[answered[k]]
            positions = order[bounds[k] : bounds[k + 1]]
            has[positions], arrived[positions] = True, at
            if isinstance(label, list):
                if len(label) == count[k]:
                    for position in positions.tolist():
                        values[position] = label[rows[position]]
            elif count[k] == 1:
                for position in positions.tolist():
                    values[position] = label
    return table.append_column("label", typed_values(values)).append_column(
        "feedback_at", pa.array(arrived, type=pa.int64(), mask=~has)
    )


def _labels(connection: Connection, endpoint: str, ids: list[str]) -> dict[str, tuple[Any, int]]:
    """The labels in force of ``ids``: by id, or for many ids in one scan of the endpoint's."""
    if len(ids) <= _LABELS_BY_ID:
        return labels_for(connection, endpoint, ids)
    feedback = tables.FEEDBACK
    wanted = set(ids)
    rows = connection.execute(
        select(feedback.c.request_id, feedback.c.label, feedback.c.received_at).where(
            feedback.c.endpoint == endpoint
        )
    )
    return {str(r): (label, int(at)) for r, label, at in rows if r in wanted}


def _endpoint_known(connection: Connection, endpoint: str, project: str | None) -> bool:
    """Whether ``endpoint`` is deployed (in ``project``, or any) or has flushed segments.

    Raises:
        ProjectNotFound: there is no project named ``project``.
    """
    deployment = tables.DEPLOYMENT
    query = select(deployment.c.id).where(deployment.c.endpoint == endpoint)
    if project is not None:
        project_id = connection.execute(
            select(tables.PROJECT.c.id).where(tables.PROJECT.c.name == project)
        ).scalar()
        if project_id is None:
            raise ProjectNotFound(f"No project named {project!r}.")
        query = query.where(deployment.c.project_id == project_id)
    if connection.execute(query.limit(1)).first() is not None:
        return True
    logged = select(_segment.c.id).where(_segment.c.endpoint == endpoint).limit(1)
    return connection.execute(logged).first() is not None


def _bound(value: TimeBound | int | None, name: str) -> int | None:
    """``value`` in ms since the epoch: an int is taken as is, the rest as :data:`TimeBound`."""
    if value is None:
        return None
    if isinstance(value, datetime | timedelta | str):
        return time_bound_ms(value, name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidParameter(
        f"The {name!r} parameter of read_prediction_rows must be a datetime, a timedelta, a "
        f"duration or ISO 8601 text, or ms since the epoch. Got {value!r} instead."
    )


def _check_text(value: object, name: str, *, required: bool = False) -> None:
    if (value is None and not required) or (isinstance(value, str) and value):
        return
    raise InvalidParameter(
        f"The {name!r} parameter of read_prediction_rows must be a non-empty str"
        f"{'' if required else ' or None'}. Got {value!r} instead."
    )


def _check_columns(columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str) or not all(isinstance(c, str) and c for c in columns):
        raise InvalidParameter(
            "The 'columns' parameter of read_prediction_rows must be a sequence of non-empty "
            f"feature names or None. Got {columns!r:.200} instead."
        )
    return list(dict.fromkeys(columns))
