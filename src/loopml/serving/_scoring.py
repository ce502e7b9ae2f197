"""Batch scoring: stream a file through a registered model into a Parquet file.

:func:`score_file` reads its input a chunk at a time — Parquet by row group, CSV
and JSON-lines by block, a folder of Parquet files file after file (the readers of
:mod:`loopml.data`, so columns arrive in loopml's canonical Arrow types) — predicts
each chunk with a :class:`~loopml.registry.LoadedModel`, which checks it against
the version's signature first, and writes the input columns plus ``prediction``
(and ``proba_<class>`` columns on request) with one ``ParquetWriter``, a row group
per chunk. Memory holds one chunk plus the block the reader last decoded (a Parquet
batch of at most about 32 MiB, a CSV block of 8 MiB), whatever the size of the input.

The output goes to a hidden temporary file beside the destination, is flushed to
disk and only then renamed over the destination, so a failure (or Ctrl-C) removes
the temporary file and never leaves a half-written output nor touches an existing
one.

What is scored, given ``model_or_endpoint``:

* a model reference — ``credit/7``, ``credit@champion``, ``models:/credit`` — is
  that version (``credit@latest`` and ``models:/credit`` are the newest usable one);
* a bare name that names an endpoint of the project is the endpoint: the primary
  route with the largest weight in its live revision (the first listed on a tie).
  Canary and shadow routes are never used; an endpoint with no primary is refused;
* any other bare name is a model (its newest usable version).

Example:
    >>> result = score_file("input.parquet", "scored.parquet", "credit@champion",
    ...                     store=store, artifacts=artifacts, project="p")  # doctest: +SKIP
    >>> result.rows, result.model_version                                   # doctest: +SKIP
    (120000, 'credit/7')
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.artifacts import ArtifactStore
from loopml.data._sources import open_source
from loopml.errors import (
    DataSourceError,
    DeploymentNotFound,
    InvalidParameter,
    LoopmlError,
    ModelError,
    ModelNotFound,
    SignatureError,
)
from loopml.registry._client import RegistryClient
from loopml.registry._loaded import LoadedModel
from loopml.registry._refs import parse_model_ref
from loopml.serving._deployments import DeploymentClient
from loopml.serving._probabilities import class_labels
from loopml.serving._routes import Route
from loopml.store import Store

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "PARQUET_SUFFIXES",
    "ProgressCallback",
    "ScoringResult",
    "score_file",
]

DEFAULT_CHUNK_ROWS = 50_000
"""Rows predicted (and held in memory) at a time unless ``chunk_rows`` says otherwise."""

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
"""Suffixes the destination may have: the output is always Parquet."""

ProgressCallback = Callable[[int, "int | None"], None]
"""``on_progress(rows_done, total_rows)``; ``total_rows`` is None when unknown (CSV)."""


@dataclass(frozen=True)
class ScoringResult:
    """What :func:`score_file` did.

    Attributes:
        destination: the Parquet file written.
        rows: rows scored.
        chunks: chunks predicted (at most ``chunk_rows`` rows each).
        model_version: the version used, ``name/N``.
        endpoint: the endpoint whose primary route chose the version, or None.
        revision: the endpoint's live revision used, or None.
        seconds: wall-clock time of the whole call.
    """

    destination: Path
    rows: int
    chunks: int
    model_version: str
    endpoint: str | None
    revision: int | None
    seconds: float


def score_file(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    model_or_endpoint: str,
    *,
    store: Store,
    artifacts: ArtifactStore,
    project: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    proba: bool = False,
    trust: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ScoringResult:
    """Score every row of ``source`` and write it with its predictions to ``destination``.

    Args:
        source: a ``.parquet`` or ``.csv`` (``.csv.gz``, ``.jsonl``) file, a folder of
            Parquet files, or an fsspec URL of one.
        destination: the Parquet file to write (replaced atomically if it exists).
        model_or_endpoint: a model reference or an endpoint name (see the module
            docstring for how it is resolved).
        store: the metadata store.
        artifacts: the artifact store holding the models.
        project: the project of the model or endpoint.
        chunk_rows: rows predicted, and held in memory, at a time.
        proba: also write one ``proba_<class>`` column per class.
        trust: load executable (pickled) flavors registered by another identity.
        on_progress: called with ``(rows_done, total_rows)`` before the first chunk
            and after each chunk is written.

    Returns:
        Rows, chunks, the version used and the time taken.

    Raises:
        InvalidParameter: a bad ``chunk_rows``; a destination that is not a
            ``.parquet`` path, is a folder, sits in a missing folder, or is the input
            (or inside the input folder); an endpoint without a primary route; an
            input column named like an output column.
        DataSourceError: the input is missing, unreadable or has no rows (the
            message names the path).
        ModelNotFound: no such model, version or alias; for a bare name, no endpoint
            and no model of that name.
        SignatureError: a chunk does not match the signature; the message names the
            chunk, its rows and the column.
        ModelError: ``proba`` for a model without probabilities, or the model failed
            on a chunk (named in the message).
    """
    started = time.perf_counter()
    rows_per_chunk = _check_chunk_rows(chunk_rows)
    output = _check_destination(Path(destination), source)
    data = open_source(source)
    registry = RegistryClient(store, artifacts)
    model, endpoint, revision = _load(model_or_endpoint, registry, project, trust=trust)
    if proba and not model.has_proba:
        raise ModelError(
            f"Model {model.version.ref} ({model.version.flavor}) has no predict_proba; "
            "score it without probabilities."
        )
    rows = chunks = 0
    if on_progress is not None:
        on_progress(0, data.num_rows)
    with _AtomicParquet(output) as writer:
        for table in _chunks(data.batches(), rows_per_chunk):
            chunks += 1
            where = f"{data.description}: chunk {chunks}, rows {rows}-{rows + len(table) - 1}"
            writer.write(_scored(table, model, proba=proba, first_row=rows, where=where))
            rows += len(table)
            if on_progress is not None:
                on_progress(rows, data.num_rows)
        if rows == 0:
            raise DataSourceError(f"{data.description}: the input has no rows; nothing to score.")
    return ScoringResult(
        destination=output,
        rows=rows,
        chunks=chunks,
        model_version=model.version.ref,
        endpoint=endpoint,
        revision=revision,
        seconds=time.perf_counter() - started,
    )


# -- checks -----------------------------------------------------------------------------------


def _check_chunk_rows(chunk_rows: object) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidParameter(f"The chunk size must be an int >= 1 row; got {chunk_rows!r}.")
    return chunk_rows


def _check_destination(destination: Path, source: str | os.PathLike[str]) -> Path:
    if destination.suffix.lower() not in PARQUET_SUFFIXES:
        raise InvalidParameter(
            "The output is written as Parquet, so its name must end in .parquet, .pq or "
            f".parq; got {str(destination)!r}."
        )
    if destination.is_dir():
        raise InvalidParameter(f"The output {str(destination)!r} is a folder; name a file.")
    folder = destination.parent
    if not folder.is_dir():
        raise InvalidParameter(
            f"The output folder {str(folder)!r} does not exist; create it first."
        )
    text = os.fspath(source)
    if "://" not in text:  # a local input: never read and replace the same file
        inside = Path(text).resolve()
        target = destination.resolve()
        if target == inside or (inside.is_dir() and target.is_relative_to(inside)):
            raise InvalidParameter(
                f"The output {str(destination)!r} would overwrite the input {text!r}; "
                "write the scores to another file."
            )
    return destination


# -- what is scored ---------------------------------------------------------------------------


def _load(
    target: str, registry: RegistryClient, project: str, *, trust: bool
) -> tuple[LoadedModel, str | None, int | None]:
    """The model to score with, and the endpoint and revision that chose it (if any)."""
    ref = parse_model_ref(target)
    if target.strip() != ref.name:  # name/N, name@alias, models:/name …: a model
        return registry.load(target, project=project, trust=trust), None, None
    try:
        deployment = DeploymentClient(registry.store, registry).get(ref.name, project=project)
    except DeploymentNotFound:
        try:
            registry.get_model(ref.name, project=project)
        except ModelNotFound:
            raise ModelNotFound(
                f"No endpoint or model named {ref.name!r} in project {project!r}."
            ) from None
        return registry.load(ref.name, project=project, trust=trust), None, None
    route = _primary_route(deployment.routes, deployment.endpoint, deployment.revision)
    model = registry.load(route.model, project=project, trust=trust)
    return model, deployment.endpoint, deployment.revision


def _primary_route(routes: Iterable[Route], endpoint: str, revision: int) -> Route:
    """The primary route with the largest weight (the first listed on a tie)."""
    primaries = [r for r in routes if r.mode == "primary"]
    if not primaries:
        raise InvalidParameter(
            f"Endpoint {endpoint!r} (revision {revision}) has no primary route, and batch "
            "scoring never uses a canary or a shadow; score with a model reference instead."
        )
    return max(primaries, key=lambda r: r.weight)  # max keeps the first of equals


# -- streaming --------------------------------------------------------------------------------


def _chunks(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Regroup ``batches`` into tables of exactly ``rows`` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(rows - count, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            offset += take
            count += take
            if count == rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)


def _scored(
    table: pa.Table, model: LoadedModel, *, proba: bool, first_row: int, where: str
) -> pa.Table:
    """``table`` plus its prediction (and probability) columns."""
    frame = table.to_pandas()
    # Rows keep their number in the whole input, so a signature error names the real row.
    frame.index = pd.RangeIndex(first_row, first_row + len(frame))
    try:
        columns = _prediction_columns(model, model.predict(frame))
        if proba:
            columns.extend(_proba_columns(model, model.predict_proba(frame)))
    except SignatureError as exc:
        raise SignatureError(f"{where}: {exc}") from None
    except LoopmlError:
        raise
    except Exception as exc:  # a model's own error: say which chunk it failed on
        raise ModelError(
            f"{where}: model {model.version.ref} failed: {type(exc).__name__}: {exc}"
        ) from exc
    for name, values in columns:
        if name in table.column_names:
            raise InvalidParameter(
                f"The input already has a column {name!r}, which the output adds; rename it."
            )
        table = table.append_column(name, pa.array(values))
    return table


def _prediction_columns(model: LoadedModel, predictions: Any) -> list[tuple[str, Any]]:
    array = np.asarray(predictions)
    if array.ndim == 1:
        return [("prediction", array)]
    outputs = model.signature.outputs if model.signature is not None else ()
    names = [c.name for c in outputs]
    if len(names) != array.shape[1]:
        names = [str(j) for j in range(array.shape[1])]
    return [(f"prediction_{name}", array[:, j]) for j, name in enumerate(names)]


def _proba_columns(model: LoadedModel, probabilities: Any) -> list[tuple[str, Any]]:
    array = np.asarray(probabilities, dtype=np.float64)
    labels = class_labels(model, array.shape[1])
    return [(f"proba_{label}", array[:, j]) for j, label in enumerate(labels)]


class _AtomicParquet:
    """A ``ParquetWriter`` on a hidden file beside ``destination``, renamed over it on success.

    The writer is made with the schema of the first table written; later tables are
    cast to it. Leaving the ``with`` block by an exception (Ctrl-C included) deletes
    the temporary file and leaves ``destination`` as it was.
    """

    def __init__(self, destination: Path) -> None:
        self.destination = destination
        self.temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.tmp")
        self._handle: Any = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> _AtomicParquet:
        self._handle = self.temporary.open("xb")
        return self

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (a row group) to the temporary file."""
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._handle, table.schema, compression="zstd")
        elif not table.schema.equals(self._writer.schema):
            try:
                table = table.cast(self._writer.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise ModelError(
                    f"The output columns changed type between chunks: {table.schema} "
                    f"cannot be written as {self._writer.schema} ({exc})."
                ) from exc
        self._writer.write_table(table)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        committed = False
        try:
            if self._writer is not None:
                self._writer.close()
            if kind is None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._handle.close()
                self.temporary.replace(self.destination)
                committed = True
        finally:
            if not committed:
                self._handle.close()
                self.temporary.unlink(missing_ok=True)
