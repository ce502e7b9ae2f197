"""Bring a database to the schema this code expects, safely and quickly.

Opening a store reads one row (the schema revision). Only when it differs from
:data:`HEAD_REVISION` is Alembic imported and run, under a lock that makes
concurrent first opens from several processes take turns.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from loopml._private_fs import create_private_file
from loopml.errors import StoreVersionError

__all__ = ["HEAD_REVISION", "MIGRATIONS", "current_revision", "migrate"]

HEAD_REVISION = "0013"
MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x100F_0001  # any constant: loopml's advisory-lock id for migrations


def current_revision(connection: Connection) -> str | None:
    """Return the schema revision stored in the database, or None when it has none."""
    try:
        with connection.begin_nested():
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    except DBAPIError:
        return None
    return None if row is None else str(row[0])


def migrate(engine: Engine, sqlite_lock_path: Path | None) -> None:
    """Upgrade the database behind ``engine`` to :data:`HEAD_REVISION` if needed.

    Raises:
        StoreVersionError: the database carries a revision this code does not know,
            i.e. it was migrated by a newer loopml.
    """
    if _revision(engine) == HEAD_REVISION:
        return
    with _migration_lock(engine, sqlite_lock_path):
        revision = _revision(engine)
        if revision == HEAD_REVISION:
            return
        _check_known(revision)
        _upgrade(engine)


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        revision = current_revision(connection)
        connection.rollback()
    return revision


def _check_known(revision: str | None) -> None:
    if revision is None:
        return
    from alembic.script import ScriptDirectory

    known = {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if revision not in known:
        raise StoreVersionError(
            f"The database schema is at revision {revision!r}, which this loopml does not "
            f"know (it knows up to {HEAD_REVISION!r}): it was upgraded by a newer loopml. "
            "Upgrade loopml to use this store."
        )


def _upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def _migration_lock(engine: Engine, sqlite_lock_path: Path | None) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                connection.commit()
    elif sqlite_lock_path is not None:
        create_private_file(sqlite_lock_path)
        with sqlite_lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield
