"""The metadata store: one engine, read and write transactions, projects."""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError

from loopml.errors import ProjectNotFound, StoreNotFound, StoreUnavailable
from loopml.store._engine import (
    WRITE_OPTION,
    create_store_engine,
    missing_sqlite_file,
    redacted,
)
from loopml.store._migrate import migrate
from loopml.store._tables import PROJECT

__all__ = ["Store", "defer_store", "next_number", "now_ms", "open_store", "read_only"]


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

    A store made by :func:`defer_store` opens on its first transaction, which
    creates a missing SQLite store unless it runs inside :func:`read_only` (then
    ``StoreNotFound`` is raised and nothing is created).

    Example:
        >>> store = open_store("sqlite://")
        >>> with store.write() as conn:
        ...     project_id = store.project_id(conn, "demo")
        >>> isinstance(project_id, int)
        True
    """

    def __init__(self, uri: str, engine: Engine | None = None) -> None:
        self.uri = uri
        self._engine = engine
        self._project_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (a deferred store is opened here, see :func:`read_only`)."""
        return self._opened()

    @property
    def dialect(self) -> str:
        """The SQL dialect name: ``sqlite`` or ``postgresql``."""
        if self._engine is not None:
            return self._engine.dialect.name
        try:
            return make_url(self.uri).get_backend_name()
        except ArgumentError:
            return self.engine.dialect.name  # raises StoreUnavailable naming the URI

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Open a read transaction.

        Raises:
            StoreNotFound: a deferred store, opened inside :func:`read_only`, whose
                SQLite file does not exist.
        """
        with self._connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Open a write transaction (SQLite: takes the write lock at once)."""
        with self._connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                yield connection

    def _opened(self) -> Engine:
        if self._engine is None:
            with self._open_lock:
                if self._engine is None:
                    self._engine = _open_engine(self.uri, create=not _READ_ONLY.get())
        return self._engine

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        engine = self._opened()
        try:
            connection = engine.connect()
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

    def require_project(self, connection: Connection, name: str) -> int:
        """Return the id of the existing project ``name``; never creates one (for reads).

        Raises:
            ProjectNotFound: no project has that name; the message names the closest
                one and ``loopml projects list``.
        """
        cached = self._project_ids.get(name)
        if cached is not None:
            return cached
        table = PROJECT
        found = connection.execute(select(table.c.id).where(table.c.name == name)).scalar()
        if found is None:
            known = sorted(connection.execute(select(table.c.name)).scalars())
            close = difflib.get_close_matches(name, known, n=1)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
            elif 0 < len(known) <= 5:
                hint = f" (there are: {', '.join(repr(k) for k in known)})"
            else:
                hint = ""
            raise ProjectNotFound(
                f"No project named {name!r}{hint}; 'loopml projects list' shows the "
                "projects there are."
            )
        with self._lock:
            self._project_ids[name] = int(found)
        return int(found)

    def close(self) -> None:
        """Release every pooled connection."""
        if self._engine is not None:
            self._engine.dispose()


def open_store(uri: str, *, create: bool = True) -> Store:
    """Open (and if needed create and migrate) the store at ``uri``.

    Args:
        uri: ``sqlite:///path``, ``sqlite://`` (in memory) or ``postgresql+psycopg://…``.
        create: create a missing SQLite store (its folder and database file). With
            False a missing one raises :class:`~loopml.errors.StoreNotFound` and
            nothing is created; a PostgreSQL database is opened as it is either way.

    Raises:
        StoreNotFound: ``create`` is False and the SQLite file does not exist.
        StoreUnavailable: the database cannot be reached or created.
        StoreVersionError: the database was migrated by a newer loopml.

    Example:
        >>> import tempfile
        >>> try:
        ...     open_store(f"sqlite:///{tempfile.mkdtemp()}/none.db", create=False)
        ... except StoreNotFound:
        ...     print("not there")
        not there
    """
    return Store(uri, _open_engine(uri, create=create))


def defer_store(uri: str) -> Store:
    """Return the store at ``uri`` without opening it: it opens on its first transaction.

    That first transaction creates a missing SQLite store, unless it runs inside
    :func:`read_only`: then it raises :class:`~loopml.errors.StoreNotFound` and
    creates nothing (the store stays unopened, so a later write still creates it).
    Nothing is touched here.

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> store = defer_store(f"sqlite:///{folder}/home/loopml.db")
        >>> with read_only():
        ...     try:
        ...         with store.read() as conn:
        ...             pass
        ...     except StoreNotFound:
        ...         print("no store, nothing created:", not os.path.exists(f"{folder}/home"))
        no store, nothing created: True
        >>> with store.write() as conn:
        ...     _ = store.project_id(conn, "demo")
        >>> os.path.exists(f"{folder}/home/loopml.db")
        True
    """
    return Store(uri)


_READ_ONLY: ContextVar[bool] = ContextVar("loopml_store_read_only", default=False)


@contextmanager
def read_only() -> Iterator[None]:
    """Within this block (or decorated function), opening a store never creates it.

    Reading commands and SDK functions (``loopml runs list``, ``loopml.search_runs``,
    ``loopml.get_run`` …) run inside it, so a missing SQLite store raises
    :class:`~loopml.errors.StoreNotFound` instead of leaving an empty home behind.
    Stores already open are unaffected, and PostgreSQL databases are opened as
    they are. It holds for the current thread (a context variable).

    Example:
        >>> @read_only()
        ... def count_projects(store: Store) -> int:
        ...     with store.read() as conn:
        ...         return len(conn.execute(select(PROJECT.c.id)).all())
    """
    token = _READ_ONLY.set(True)
    try:
        yield
    finally:
        _READ_ONLY.reset(token)


def _open_engine(uri: str, *, create: bool) -> Engine:
    if not create:
        missing = missing_sqlite_file(uri)
        if missing is not None:
            raise StoreNotFound(
                f"No loopml store at {missing} (store URI {redacted(uri)}); reading "
                "creates nothing. Set LOOPML_HOME (or LOOPML_STORE_URI) to point at an "
                "existing store, or record something first: 'loopml demo' makes one with "
                "sample runs ('loopml quickstart' writes the README's sample data).",
                uri,
            )
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
    return engine


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
