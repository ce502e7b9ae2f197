"""Where a monitor's data comes from: the current window and the reference.

The current data of an endpoint monitor is a window of its prediction log, read
through serving's public columnar reader (one row per predicted row, typed input
columns, ``prediction``, ``label``); of a dataset monitor, the dataset's latest
version. The reference is resolved from the monitor's ``reference`` text (see
:mod:`loopml.monitoring._spec`): by default the dataset version the served model
version was trained on, found in the registry's lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InvalidParameter, ModelNotFound, UnknownColumnError
from loopml.monitoring._spec import MonitorSpec, window_reference_ms

if TYPE_CHECKING:
    from loopml.artifacts import ArtifactStore
    from loopml.data import DataClient, DatasetVersion
    from loopml.registry import ModelVersion, RegistryClient
    from loopml.store import Store

__all__ = [
    "META_COLUMNS",
    "Data",
    "PredictionWindow",
    "Readers",
    "input_columns",
    "load_current",
    "load_reference",
    "model_version_of",
]

META_COLUMNS = frozenset(
    {"request_id", "row", "ts", "route", "model_version", "label", "feedback_at", "prediction"}
)
"""Columns of prediction rows that are not model inputs (``proba_*`` columns neither)."""


class Data:
    """Data a monitor judges; a dataset version's rows are read only when a check needs them.

    Args:
        table: The rows, or a function that reads them (called at most once).
        description: How results name it (``dataset:credit:3``, ``endpoint:credit[a,b)``).
        lineage: JSON-able references to what was read.
        dataset: The dataset version, if the data is one.
        columns: The column names, when known without reading the rows.
        rows: The row count, when known without reading the rows.
    """

    def __init__(
        self,
        table: pa.Table | Callable[[], pa.Table],
        description: str,
        lineage: dict[str, Any] | None = None,
        dataset: DatasetVersion | None = None,
        *,
        columns: list[str] | None = None,
        rows: int | None = None,
    ) -> None:
        self._table = table if isinstance(table, pa.Table) else None
        self._read = None if isinstance(table, pa.Table) else table
        self.description = description
        self.lineage = dict(lineage or {})
        self.dataset = dataset
        self._columns = columns
        self._rows = rows

    @property
    def table(self) -> pa.Table:
        """The rows (read now if they were not yet)."""
        if self._table is None:
            assert self._read is not None
            self._table = self._read()
        return self._table

    @property
    def columns(self) -> list[str]:
        """The column names."""
        if self._columns is not None and self._table is None:
            return list(self._columns)
        return list(self.table.column_names)

    @property
    def rows(self) -> int:
        """How many rows."""
        if self._rows is not None and self._table is None:
            return self._rows
        return int(self.table.num_rows)


@dataclass(frozen=True)
class PredictionWindow:
    """Prediction rows of a window, and the digests of the log segments they came from."""

    table: pa.Table
    segments: tuple[str, ...] = ()


class Readers:
    """The service clients a monitor reads through (data, registry, prediction rows).

    Args:
        store: The metadata store.
        artifacts: The artifact store.
        data: The data client.
        registry: The registry client.
        prediction_rows: ``(endpoint, since_ms, until_ms, route, model_version)`` →
            :class:`PredictionWindow`.
    """

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        data: DataClient,
        registry: RegistryClient,
        prediction_rows: Callable[[str, int, int, str | None, str | None], PredictionWindow],
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.data = data
        self.registry = registry
        self.prediction_rows = prediction_rows


def load_current(
    spec: MonitorSpec,
    readers: Readers,
    *,
    project: str,
    now_ms: int,
    window: tuple[int, int] | None = None,
) -> Data:
    """The current data of ``spec``: its window of the prediction log, or its dataset.

    ``window`` (``[since, until)`` in ms) replaces the spec's window back from ``now_ms``.

    Raises:
        DeploymentNotFound: the endpoint is unknown.
        DatasetNotFound: the dataset has no usable version.
    """
    if spec.dataset is not None:
        version = readers.data.get_version(f"{spec.dataset}@latest", project=project)
        table = readers.data.load_table(version.ref, project=project)
        return Data(
            table,
            f"dataset:{version.ref}",
            {"current_dataset": version.ref, "current_dataset_id": version.id},
            version,
        )
    assert spec.endpoint is not None
    since, until = window if window is not None else (now_ms - spec.window_ms, now_ms)
    rows: PredictionWindow = readers.prediction_rows(
        spec.endpoint, since, until, spec.route, spec.model_version
    )
    selected = "".join(
        f" {k}={v}" for k, v in (("route", spec.route), ("version", spec.model_version)) if v
    )
    return Data(
        rows.table,
        f"endpoint:{spec.endpoint}[{since},{until}){selected}",
        {"window": [since, until], "segments": list(rows.segments)},
    )


def model_version_of(
    spec: MonitorSpec, current: Data, readers: Readers, *, project: str
) -> ModelVersion | None:
    """The model version the monitor is about: the spec's, else the one that answered most.

    Raises:
        ModelNotFound: the spec names a version the registry does not hold.
    """
    ref = spec.model_version
    if ref is None and "model_version" in current.table.column_names:
        counts = pc.value_counts(current.table.column("model_version").drop_null())
        if len(counts):
            top = int(np.argmax(counts.field("counts").to_numpy()))
            ref = str(counts.field("values")[top].as_py())
    if ref is None:
        return None
    try:
        return readers.registry.get_version(ref, project=project)
    except ModelNotFound:
        if spec.model_version is not None:
            raise
        # The log names a version this project's registry does not hold (another
        # project's, or deleted): judge the data all the same, without its lineage.
        return None


def load_reference(
    spec: MonitorSpec,
    readers: Readers,
    *,
    project: str,
    now_ms: int,
    model: ModelVersion | None,
    trust: bool = False,
) -> Data:
    """The reference of ``spec`` (see :mod:`loopml.monitoring._spec`).

    Raises:
        InvalidParameter: ``training`` was asked for, but no model version is known or it
            was trained on no recorded dataset (the message says what to set instead).
        DatasetNotFound: a ``dataset:`` reference names no usable version.
        DataSourceError: a ``file:`` reference cannot be read.
    """
    reference = spec.reference
    if reference == "training":
        if model is None:
            raise InvalidParameter(
                f"Monitor {spec.name!r} compares with the training data of the model that "
                "answered, but no model version is known (no predictions in the window and "
                "no 'model_version' set). Set 'reference' to 'dataset:NAME:N'."
            )
        if not model.datasets:
            raise InvalidParameter(
                f"Model version {model.ref} records no training dataset (its run used none "
                "through loopml.data), so monitor {spec.name!r} has no default reference. "
                "Set 'reference' to 'dataset:NAME:N', 'file:PATH' or 'window:7d@-7d'."
            )
        reference = f"dataset:{model.datasets[0]}"
    if reference.startswith("dataset:"):
        ref = reference.removeprefix("dataset:")
        version = readers.data.get_version(ref if ":" in ref else f"{ref}@latest", project=project)
        return Data(
            lambda: readers.data.load_table(version.ref, project=project),
            f"dataset:{version.ref}",
            {"reference_dataset": version.ref, "reference_dataset_id": version.id},
            version,
            columns=[name for name, _ in version.columns],
            rows=version.row_count,
        )
    if reference.startswith("file:"):
        from loopml.data._sources import open_source

        if not trust:
            # Whoever saved the monitor chose the path; its values end up in the stored
            # result. Reading a file of the runner's machine is the runner's decision.
            raise InvalidParameter(
                f"Monitor {spec.name!r} takes its reference from a file ({reference!r}); a "
                "stored monitor reads local files only in a trusted run "
                "(run_monitor(trust=True), `loopml monitor run --trust`)."
            )

        source = open_source(reference.removeprefix("file:"))
        table = pa.Table.from_batches(list(source.batches()), schema=source.schema)
        return Data(table, f"file:{source.description}", {"reference_file": source.description})
    if spec.endpoint is None:
        raise InvalidParameter(f"A window reference needs an endpoint monitor: {reference!r}.")
    since, until = window_reference_ms(reference, now_ms)
    rows: PredictionWindow = readers.prediction_rows(
        spec.endpoint, since, until, spec.route, spec.model_version
    )
    return Data(
        rows.table,
        f"endpoint:{spec.endpoint}[{since},{until})",
        {"reference_window": [since, until], "reference_segments": list(rows.segments)},
    )


def input_columns(
    spec: MonitorSpec, reference: Data, current: Data, model: ModelVersion | None
) -> list[str]:
    """The input columns to judge: the spec's, else the model's signature, else shared ones.

    Raises:
        UnknownColumnError: a column of the spec is in neither data.
    """
    reference_columns = set(reference.columns)
    shared = [
        c
        for c in current.columns
        if c in reference_columns and c not in META_COLUMNS and not c.startswith("proba_")
    ]
    if spec.columns is not None:
        missing = [c for c in spec.columns if c not in shared]
        if missing:
            raise UnknownColumnError(
                f"Monitor {spec.name!r} names column(s) {', '.join(map(repr, missing))} that the "
                f"reference and the current data do not both have; they share: "
                f"{', '.join(shared) or 'nothing'}.",
                tuple(missing),
                tuple(shared),
            )
        return list(spec.columns)
    if model is not None and model.signature is not None and model.signature.inputs:
        named = [c for c in model.signature.input_names if c in shared]
        if named:
            return named
    return shared
