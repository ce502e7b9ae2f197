"""What every part of the tracking client shares: the stores, the writer, run lookups."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any, Self

from sqlalchemy import Connection, select, update

from loopml import settings
from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter, RunNotFound
from loopml.store import Store, defer_store, tables
from loopml.tracking import _context
from loopml.tracking._writer import MetricWriter

__all__ = ["ClientBase", "json_object", "project_name", "refresh_json"]

_run = tables.RUN


class ClientBase:
    """The stores and writer of a tracking client, opened on first use.

    Args:
        store_uri: metadata store URL; default from ``LOOPML_STORE_URI``/``LOOPML_HOME``.
        artifact_uri: artifact store folder or URL; default from ``LOOPML_ARTIFACT_URI``.
    """

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        self._store_uri = store_uri or settings.store_uri()
        self._artifact_uri = artifact_uri or settings.artifact_uri()
        self._store: Store | None = None
        self._artifacts: ArtifactStore | None = None
        self._writer: MetricWriter | None = None
        self._open_lock = threading.RLock()
        self._known_environments: set[str] = set()
        self._meters: dict[str, _context.ResourceMeter] = {}

    @classmethod
    def over(cls, store: Store, artifacts: ArtifactStore) -> Self:
        """A client over stores another service already opened (sharing their pools)."""
        client = cls(store.uri, artifacts.uri)
        client._store = store
        client._artifacts = artifacts
        return client

    # -- plumbing ---------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The metadata store, opened (and migrated if needed) by its first transaction.

        That transaction creates a missing SQLite store, except inside
        :func:`loopml.store.read_only` (the reading methods), which raises
        ``StoreNotFound`` instead: reading never creates a home.
        """
        if self._store is None:
            with self._open_lock:
                if self._store is None:
                    self._store = defer_store(self._store_uri)
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store."""
        if self._artifacts is None:
            self._artifacts = ArtifactStore.from_uri(self._artifact_uri)
        return self._artifacts

    @property
    def writer(self) -> MetricWriter:
        """The background metric writer of this client."""
        if self._writer is None:
            with self._open_lock:
                if self._writer is None:
                    self._writer = MetricWriter(
                        self.store,
                        flush_interval=settings.get("LOOPML_FLUSH_INTERVAL"),
                        max_points=settings.get("LOOPML_FLUSH_MAX_POINTS"),
                        heartbeat_interval=settings.get("LOOPML_HEARTBEAT_INTERVAL"),
                    )
        return self._writer

    def flush(self) -> None:
        """Write every buffered metric point now."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush, stop the writer and release connections."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def _require_run(self, conn: Connection, run_id: str, lock: bool = False) -> int:
        """Return the project id of run ``run_id``; raise RunNotFound if there is none.

        ``lock`` holds the run's row until the transaction ends (PostgreSQL; SQLite
        write transactions are exclusive already), so read-modify-writes of the run
        row by concurrent writers take turns.
        """
        if not isinstance(run_id, str):
            raise InvalidParameter(f"A run id must be a str; got {type(run_id).__name__}.")
        query = select(_run.c.project_id).where(_run.c.id == run_id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        project_id = conn.execute(query).scalar()
        if project_id is None:
            raise RunNotFound(f"No run with id {run_id!r}.")
        return int(project_id)


def project_name(project: str | None) -> str:
    name = settings.project(project)
    if not isinstance(name, str) or not name.strip() or len(name) > 250:
        raise InvalidParameter(
            f"A project name must be a non-empty str of at most 250 characters; got {name!r}."
        )
    return str(name)


def json_object(pairs: Sequence[tuple[str, str]]) -> str:
    """The run row's JSON copy of its params or tags (sorted, compact)."""
    return json.dumps(dict(pairs), sort_keys=True, separators=(",", ":"))


def refresh_json(conn: Connection, run_id: str, table: Any, column: str) -> None:
    """Rewrite the run's JSON copy of its params or tags from the table."""
    pairs = conn.execute(select(table.c.key, table.c.value).where(table.c.run_id == run_id)).all()
    conn.execute(
        update(_run)
        .where(_run.c.id == run_id)
        .values({column: json_object([(k, v) for k, v in pairs])})
    )
