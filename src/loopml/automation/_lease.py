"""The scheduler lease: one active scheduler per store, and a fencing token.

Several schedulers may run against one store (on several machines against one
PostgreSQL); the one holding the ``scheduler_lease`` row works, the others wait. The
holder renews it every ``ttl / 3`` seconds; once it has not been renewed for ``ttl``
seconds (a crash, a SIGKILL, a partition), the first standby to try takes it over and
the row's ``epoch`` grows by one.

Every write a scheduler makes as holder goes through :meth:`Lease.fence` in the same
transaction: it re-checks (and renews) the holder and epoch, and raises
:class:`~loopml.errors.LeaseLost` when another scheduler took the lease meanwhile (a
holder paused longer than ``ttl``, say). On PostgreSQL the ``UPDATE`` locks the row
until the transaction ends, so a takeover cannot interleave with a fenced write.

Defaults: ``ttl`` 15 s, so a standby takes over within 15 s plus one of its polling
intervals (``ttl / 3`` = 5 s) after the holder stopped renewing.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml.errors import InvalidParameter, LeaseLost
from loopml.store import Store, now_ms, tables

__all__ = ["DEFAULT_TTL", "Lease", "LeaseState", "new_holder"]

DEFAULT_TTL = 15.0
"""Seconds a lease lasts without renewal."""

_NAME = "scheduler"
_lease = tables.SCHEDULER_LEASE


def new_holder() -> str:
    """A name for this scheduler, unique across restarts: ``host:pid:random``."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseState:
    """Who holds the lease (as stored)."""

    holder: str
    epoch: int
    acquired_at: int
    renewed_at: int
    expires_at: int


class Lease:
    """This scheduler's side of the lease.

    Args:
        store: the metadata store.
        holder: this scheduler's name (:func:`new_holder`).
        ttl: seconds the lease lasts without renewal.
    """

    def __init__(self, store: Store, holder: str, ttl: float = DEFAULT_TTL) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1 <= ttl <= 3600:
            raise InvalidParameter(f"The lease ttl must be 1 to 3600 seconds; got {ttl!r}.")
        self.store = store
        self.holder = holder
        self.ttl_ms = int(ttl * 1000)
        self.epoch: int | None = None

    def acquire(self) -> bool:
        """Take or renew the lease; whether this scheduler holds it now."""
        now = now_ms()
        with self.store.write() as connection:
            factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
            connection.execute(
                factory(_lease)
                .values(
                    name=_NAME,
                    holder=self.holder,
                    epoch=1,
                    acquired_at=now,
                    renewed_at=now,
                    expires_at=now + self.ttl_ms,
                )
                .on_conflict_do_nothing(index_elements=["name"])
            )
            mine = connection.execute(
                update(_lease)
                .where(_lease.c.name == _NAME, _lease.c.holder == self.holder)
                .values(renewed_at=now, expires_at=now + self.ttl_ms)
            ).rowcount
            if not mine:
                mine = connection.execute(
                    update(_lease)
                    .where(_lease.c.name == _NAME, _lease.c.expires_at < now)
                    .values(
                        holder=self.holder,
                        epoch=_lease.c.epoch + 1,
                        acquired_at=now,
                        renewed_at=now,
                        expires_at=now + self.ttl_ms,
                    )
                ).rowcount
            state = _read(connection)
        held = bool(mine) and state is not None and state.holder == self.holder
        self.epoch = state.epoch if held and state is not None else None
        return held

    def fence(self, connection: Connection) -> None:
        """Within a write transaction: check (and renew) that this scheduler still holds
        the lease under the same epoch.

        Raises:
            LeaseLost: it does not; the transaction must not commit.
        """
        now = now_ms()
        if self.epoch is None:
            raise LeaseLost(f"Scheduler {self.holder} does not hold the scheduler lease.")
        held = connection.execute(
            update(_lease)
            .where(
                _lease.c.name == _NAME,
                _lease.c.holder == self.holder,
                _lease.c.epoch == self.epoch,
                _lease.c.expires_at >= now,
            )
            .values(renewed_at=now, expires_at=now + self.ttl_ms)
        ).rowcount
        if not held:
            self.epoch = None
            raise LeaseLost(
                f"Scheduler {self.holder} lost the scheduler lease (it expired or another "
                "scheduler took it over); nothing was written."
            )

    def release(self) -> None:
        """Give the lease up (on a clean stop), so a standby takes over at once."""
        with self.store.write() as connection:
            connection.execute(
                update(_lease)
                .where(_lease.c.name == _NAME, _lease.c.holder == self.holder)
                .values(expires_at=0)
            )
        self.epoch = None

    def current(self) -> LeaseState | None:
        """Who holds the lease now, if anyone ever did."""
        with self.store.read() as connection:
            return _read(connection)


def _read(connection: Connection) -> LeaseState | None:
    row = connection.execute(select(_lease).where(_lease.c.name == _NAME)).first()
    if row is None:
        return None
    return LeaseState(
        str(row.holder),
        int(row.epoch),
        int(row.acquired_at),
        int(row.renewed_at),
        int(row.expires_at),
    )
