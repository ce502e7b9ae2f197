"""Engine creation: SQLite tuned for many writers, PostgreSQL as it comes.

SQLite runs in WAL mode (readers never block the writer) and every write
transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front,
so two processes never deadlock upgrading read locks, and the busy timeout
queues writers instead of failing them with "database is locked".

A new SQLite store is owner-only: its folder ``0o700``, the database (and so its
``-wal`` and ``-shm`` files, which copy its mode) ``0o600``.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from loopml._private_fs import create_private_file, make_private_dirs
from loopml._urls import redact_url
from loopml.errors import StoreUnavailable

__all__ = [
    "NUMBER_PATTERN",
    "WRITE_OPTION",
    "create_store_engine",
    "missing_sqlite_file",
    "redacted",
]

WRITE_OPTION = "loopml_write"
_BUSY_TIMEOUT_MS = 120_000

#: The texts that count as numbers when a filter compares a text column (params,
#: tags) to a number: ASCII decimals with an optional exponent of at most three
#: digits, surrounding blanks allowed. Both back-ends use it (PostgreSQL in a
#: ``CASE`` guarding its cast, SQLite in ``loopml_float``), so they agree on which
#: values are numbers; ``nan``, ``inf``, ``1_000`` and non-ASCII digits are not.
NUMBER_PATTERN = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?\s*$"
_NUMBER = re.compile(NUMBER_PATTERN.replace("\\s", "[ \\t\\n\\r\\f\\v]"))


def redacted(uri: str) -> str:
    """Return ``uri`` with its credentials hidden (password, token, secret query values)."""
    return redact_url(uri)


def create_store_engine(uri: str) -> Engine:
    """Create the SQLAlchemy engine for a store URI.

    Raises:
        StoreUnavailable: the URI is malformed, names an unknown back-end, or
            (SQLite) its folder cannot be created.
    """
    try:
        url = make_url(uri)
    except ArgumentError:
        raise StoreUnavailable(
            f"The store URI {redacted(uri)!r} is not a database URL "
            "(expected sqlite:///path or postgresql+psycopg://…)."
        ) from None
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(uri, url.database)
    try:
        return create_engine(uri, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreUnavailable(
            f"No driver for the store URI {redacted(uri)} ({exc}); "
            "for PostgreSQL install loopml[postgres] and use postgresql+psycopg://."
        ) from None


def missing_sqlite_file(uri: str) -> Path | None:
    """The database file of a SQLite ``uri`` when it does not exist, else None.

    None also for in-memory databases, ``file:`` URIs (SQLite's own business),
    PostgreSQL and URIs that do not parse (opening them reports the problem).
    """
    try:
        url = make_url(uri)
    except ArgumentError:
        return None
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    path = Path(database).expanduser().absolute()
    return None if path.exists() else path


def _sqlite_engine(uri: str, database: str | None) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser().absolute()
        try:
            make_private_dirs(path.parent)
        except OSError as exc:
            raise StoreUnavailable(
                f"Cannot create the store folder {path.parent}: {exc.strerror}."
            ) from None
        try:
            # SQLite would create the file 0o644; its -wal and -shm files copy
            # the database's mode, so creating it owner-only covers all three.
            create_private_file(path)
        except OSError as exc:
            raise StoreUnavailable(
                f"Cannot open the store {redacted(uri)}: cannot create its database "
                f"file {path} ({exc.strerror})."
            ) from None
    engine = create_engine(
        uri,
        connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Take transaction control away from the driver so "begin" below decides.
    dbapi_connection.isolation_level = None
    dbapi_connection.create_function("loopml_float", 1, _text_to_float, deterministic=True)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _text_to_float(value: object) -> float | None:
    """SQL ``loopml_float(text)``: the number a text spells (see :data:`NUMBER_PATTERN`), or NULL.

    SQLite's own CAST would turn any text into a number (``'abc'`` is 0).
    """
    if value is None:
        return None
    text = str(value)
    if _NUMBER.match(text) is None:
        return None
    return float(text)


def _on_sqlite_begin(connection: Connection) -> None:
    if connection.get_execution_options().get(WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
