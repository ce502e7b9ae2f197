"""Stored triggers: :class:`TriggerStore` creates, lists, pauses, fires by hand and reads
the history of triggers (the evaluations, fired or not, and the firings)."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml._identity import current_identity
from loopml._names import closest
from loopml.automation._sources import Watched, initial_cursor
from loopml.automation._spec import TriggerSpec
from loopml.errors import InvalidParameter, TriggerNotFound
from loopml.store import Store, now_ms, tables

__all__ = ["Evaluation", "Firing", "Trigger", "TriggerStore"]

_trigger = tables.TRIGGER
_firing = tables.TRIGGER_FIRING
_evaluation = tables.TRIGGER_EVALUATION
_inbox = tables.TRIGGER_EVENT
_MAX_LIST = 10_000
UNFINISHED = ("pending", "running")


@dataclass(frozen=True)
class Trigger:
    """A stored trigger and where it is."""

    id: int
    project: str
    spec: TriggerSpec
    paused: bool
    created_by: str | None
    created_at: int
    updated_at: int
    state: Mapping[str, Any]

    @property
    def name(self) -> str:
        """The trigger's name."""
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the spec and the stored facts."""
        return {
            **self.spec.to_dict(),
            "id": self.id,
            "project": self.project,
            "paused": self.paused,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "waiting": len(self.state.get("pending", [])),
            "last_fired_at": self.state.get("last_fired_at"),
        }


@dataclass(frozen=True)
class Evaluation:
    """One evaluation that saw events: fired, waiting or skipped, and why."""

    id: int
    at: int
    outcome: str
    reason: str
    events: int
    firing_id: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Firing:
    """One firing and its action's progress."""

    id: int
    trigger_id: int
    dedup_key: str
    fired_at: int
    events: list[dict[str, Any]]
    action: dict[str, Any]
    status: str
    attempts: int
    holder: str | None
    started_at: int | None
    finished_at: int | None
    result: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return dict(self.__dict__)


class TriggerStore:
    """Triggers in a metadata store.

    Args:
        store: the metadata store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, spec: TriggerSpec, *, project: str, replace: bool = False) -> Trigger:
        """Store ``spec`` in ``project`` (replacing one of the same name when ``replace``).

        A new trigger starts after everything that exists now: it does not fire for
        dataset versions, alerts or runs older than itself. Replacing keeps the state
        when the kind and source are unchanged.

        Raises:
            InvalidParameter: a trigger of that name exists and ``replace`` is false.
        """
        if not isinstance(spec, TriggerSpec):
            raise InvalidParameter(f"create takes a TriggerSpec; got {type(spec).__name__}.")
        now = now_ms()
        with self.store.write() as connection:
            project_id = self.store.project_id(connection, project)
            existing = connection.execute(
                select(_trigger).where(
                    _trigger.c.project_id == project_id, _trigger.c.name == spec.name
                )
            ).first()
            if existing is not None and not replace:
                raise InvalidParameter(
                    f"Project {project!r} already has a trigger named {spec.name!r} "
                    "(replace it with replace=True, or --replace)."
                )
            same_source = existing is not None and (
                existing.kind == spec.kind and existing.spec.get("source") == dict(spec.source)
            )
            values = {
                "kind": spec.kind,
                "spec": spec.to_dict(),
                "updated_at": now,
                "created_by": current_identity(),
            }
            if existing is None:
                inserted = connection.execute(
                    _trigger.insert().values(
                        project_id=project_id,
                        name=spec.name,
                        paused=False,
                        created_at=now,
                        state={},
                        state_version=0,
                        **values,
                    )
                ).inserted_primary_key
                trigger_id = int(inserted[0]) if inserted is not None else 0
            else:
                trigger_id = existing.id
                if not same_source:
                    values.update(state={}, state_version=existing.state_version + 1)
                connection.execute(
                    update(_trigger).where(_trigger.c.id == trigger_id).values(**values)
                )
            state = connection.execute(
                select(_trigger.c.state).where(_trigger.c.id == trigger_id)
            ).scalar_one()
        if not state:
            self._start(int(trigger_id), project_id, spec, now)
        return self.get(spec.name, project=project)

    def _start(self, trigger_id: int, project_id: int, spec: TriggerSpec, now: int) -> None:
        watched = Watched(trigger_id, project_id, spec.kind, spec.source)
        cursor = initial_cursor(self.store, watched, now)
        with self.store.write() as connection:
            connection.execute(
                update(_trigger)
                .where(_trigger.c.id == trigger_id)
                .values(
                    state={"cursor": cursor, "pending": []},
                    state_version=_trigger.c.state_version + 1,
                )
            )

    def get(self, name: str, *, project: str) -> Trigger:
        """The trigger ``name`` of ``project``.

        Raises:
            ProjectNotFound: no such project.
            TriggerNotFound: no such trigger (the message names the closest).
        """
        with self.store.read() as connection:
            return _trigger_of(_row(self.store, connection, name, project), project)

    def list(self, *, project: str) -> builtins.list[Trigger]:
        """The triggers of ``project``, by name."""
        with self.store.read() as connection:
            project_id = self.store.require_project(connection, project)
            rows = connection.execute(
                select(_trigger)
                .where(_trigger.c.project_id == project_id)
                .order_by(_trigger.c.name)
                .limit(_MAX_LIST)
            ).all()
            return [_trigger_of(r, project) for r in rows]

    def set_paused(self, name: str, paused: bool, *, project: str) -> Trigger:
        """Pause (it is not evaluated; its source is read on resume) or resume a trigger."""
        with self.store.write() as connection:
            row = _row(self.store, connection, name, project)
            connection.execute(
                update(_trigger)
                .where(_trigger.c.id == row.id)
                .values(paused=paused, updated_at=now_ms())
            )
        return self.get(name, project=project)

    def delete(self, name: str, *, project: str) -> None:
        """Delete a trigger with its history; an unfinished firing keeps it from going.

        Raises:
            InvalidParameter: a firing of it is still pending or running.
        """
        with self.store.write() as connection:
            row = _row(self.store, connection, name, project)
            running = connection.execute(
                select(func.count())
                .select_from(_firing)
                .where(_firing.c.trigger_id == row.id, _firing.c.status.in_(UNFINISHED))
            ).scalar_one()
            if running:
                raise InvalidParameter(
                    f"Trigger {name!r} has {running} unfinished firing(s); pause it and wait "
                    "for them before deleting it."
                )
            for table in (_evaluation, _firing, _inbox):
                connection.execute(delete(table).where(table.c.trigger_id == row.id))
            connection.execute(delete(_trigger).where(_trigger.c.id == row.id))

    def fire(
        self,
        name: str,
        *,
        project: str,
        key: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> bool:
        """Ask a ``manual`` trigger to fire (the scheduler fires it at its next tick).

        Args:
            name: the trigger.
            project: its project.
            key: makes the request idempotent: a key asked before is not asked again.
            data: fields of the event, for the action's ``{event.FIELD}`` templates.

        Returns:
            Whether the request is new (False: ``key`` was asked before).

        Raises:
            InvalidParameter: the trigger is not a manual one, or a bad key or data.
        """
        chosen = key if key is not None else uuid.uuid4().hex
        if not isinstance(chosen, str) or not 0 < len(chosen) <= 200:
            raise InvalidParameter(f"A firing key must be 1 to 200 characters; got {key!r}.")
        fields = dict(data or {})
        if len(fields) > 64 or not all(
            isinstance(k, str) and (v is None or isinstance(v, str | int | float | bool))
            for k, v in fields.items()
        ):
            raise InvalidParameter(
                "Firing data must map at most 64 names to text, numbers, booleans or null."
            )
        with self.store.write() as connection:
            row = _row(self.store, connection, name, project)
            if row.kind != "manual":
                raise InvalidParameter(
                    f"Trigger {name!r} is a {row.kind} trigger; only manual triggers are "
                    "fired by hand."
                )
            factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
            added = connection.execute(
                factory(_inbox)
                .values(
                    trigger_id=row.id,
                    key=chosen,
                    at=now_ms(),
                    data=fields,
                    created_by=current_identity(),
                )
                .on_conflict_do_nothing(index_elements=["trigger_id", "key"])
                .returning(_inbox.c.id)
            ).scalar()
        return added is not None

    def evaluations(
        self, name: str, *, project: str, limit: int = 100
    ) -> builtins.list[Evaluation]:
        """The trigger's recorded evaluations, newest first."""
        with self.store.read() as connection:
            row = _row(self.store, connection, name, project)
            rows = connection.execute(
                select(_evaluation)
                .where(_evaluation.c.trigger_id == row.id)
                .order_by(_evaluation.c.id.desc())
                .limit(_limit(limit))
            ).all()
        return [Evaluation(r.id, r.at, r.outcome, r.reason, r.events, r.firing_id) for r in rows]

    def firings(self, name: str, *, project: str, limit: int = 100) -> builtins.list[Firing]:
        """The trigger's firings, newest first."""
        with self.store.read() as connection:
            row = _row(self.store, connection, name, project)
            rows = connection.execute(
                select(_firing)
                .where(_firing.c.trigger_id == row.id)
                .order_by(_firing.c.id.desc())
                .limit(_limit(limit))
            ).all()
        return [firing_of(r) for r in rows]


def firing_of(row: Any) -> Firing:
    """A :class:`Firing` from its row."""
    return Firing(
        int(row.id),
        int(row.trigger_id),
        str(row.dedup_key),
        int(row.fired_at),
        list(row.events),
        dict(row.action),
        str(row.status),
        int(row.attempts),
        row.holder,
        row.started_at,
        row.finished_at,
        row.result,
    )


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _MAX_LIST:
        raise InvalidParameter(f"limit must be an int from 1 to {_MAX_LIST}; got {limit!r}.")
    return limit


def _row(store: Store, connection: Connection, name: str, project: str) -> Any:
    project_id = store.require_project(connection, project)
    row = connection.execute(
        select(_trigger).where(_trigger.c.project_id == project_id, _trigger.c.name == name)
    ).first()
    if row is None:
        names = connection.execute(
            select(_trigger.c.name).where(_trigger.c.project_id == project_id).limit(_MAX_LIST)
        ).scalars()
        hint = closest(str(name), list(names))
        raise TriggerNotFound(
            f"No trigger named {name!r} in project {project!r}"
            + (f"; did you mean {hint!r}?" if hint else " (see `loopml triggers list`).")
        )
    return row


def _trigger_of(row: Any, project: str) -> Trigger:
    try:
        spec = TriggerSpec.from_dict(row.spec)
    except (InvalidParameter, TypeError) as exc:
        raise InvalidParameter(
            f"Trigger {row.name!r} of project {project!r} is stored damaged ({exc}); "
            "create it again with --replace, or delete it."
        ) from None
    return Trigger(
        int(row.id),
        project,
        spec,
        bool(row.paused),
        row.created_by,
        int(row.created_at),
        int(row.updated_at),
        dict(row.state or {}),
    )
