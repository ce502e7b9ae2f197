"""The metadata store: one engine, read and write transactions, projects."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from loopml.errors import StoreUnavailable
from loopml.store._engine import WRITE_OPTION, create_store_engine, redacted
from loopml.store._migrate import migrate
from loopml.store._tables import PROJECT

__all__ = ["Store", "next_number", "now_ms", "open_store"]


def now_ms() -> int:
    """Return the current time in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def next_number(connection: Connection, column: Any, *where: Any) -> int:
    """The next number in a per-parent sequence (versions, revisions): max + 1, or 1.

    Call it inside the write transaction that inserts the row; a unique constraint
    on (parent, number) turns a race between two writers into an IntegrityError
    the caller retries.
    """
    current = connection.execute(select(func.max(column)).where(*where)).scalar()
    return int(current or 0) + 1


class Store:
    """An opened, migrated metadata store.

    Use :meth:`read` for queries and :meth:`write` for changes; each is one
    transaction, committed when the block ends without an exception.

    Example:
        >>> store = open_store("sqlite://")
        >>> with store.write() as conn:
        ...     project_id = store.project_id(conn, "demo")
        >>> isinstance(project_id, int)
        True
    """

    def __init__(self, uri: str, engine: Engine) -> None:
        self.uri = uri
        self.engine = engine
        self._project_ids: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        """The SQL dialect name: ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Open a read transaction."""
        with self._connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Open a write transaction (SQLite: takes the write lock at once)."""
        with self._connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                yield connection

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            connection = self.engine.connect()
        except OperationalError as exc:
            raise StoreUnavailable(
                f"Cannot connect to the store {redacted(self.uri)}: {_first_line(exc)}"
            ) from None
        with connection:
            yield connection

    def project_id(self, connection: Connection, name: str) -> int:
        """Return the id of project ``name``, creating the project if needed.

        Safe when several processes create the same project at once.
        """
        cached = self._project_ids.get(name)
        if cached is not None:
            return cached
        table = PROJECT
        found = connection.execute(select(table.c.id).where(table.c.name == name)).scalar()
        if found is None:
            try:
                with connection.begin_nested():
                    found = connection.execute(
                        insert(table).values(name=name, created_at=now_ms()).returning(table.c.id)
                    ).scalar_one()
            except IntegrityError:
                found = connection.execute(
                    select(table.c.id).where(table.c.name == name)
                ).scalar_one()
        with self._lock:
            self._project_ids[name] = int(found)
        return int(found)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def open_store(uri: str) -> Store:
    """Open (and if needed create and migrate) the store at ``uri``.

    Raises:
        StoreUnavailable: the database cannot be reached or created.
        StoreVersionError: the database was migrated by a newer loopml.
    """
    engine = create_store_engine(uri)
    lock_path = None
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        lock_path = Path(str(engine.url.database)).expanduser().absolute().with_suffix(".lock")
    try:
        migrate(engine, lock_path)
    except (OperationalError, DBAPIError) as exc:
        engine.dispose()
        raise StoreUnavailable(
            f"Cannot open the store {redacted(uri)}: {_first_line(exc)}"
        ) from None
    except OSError as exc:
        engine.dispose()
        raise StoreUnavailable(f"Cannot open the store {redacted(uri)}: {exc}") from None
    except BaseException:
        engine.dispose()
        raise
    return Store(uri, engine)


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
