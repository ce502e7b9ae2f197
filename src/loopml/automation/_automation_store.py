"""Stored automations and their attempts: :class:`AutomationStore`.

An attempt is a row whose ``state`` and JSON ``data`` are all there is of it: the
scheduler keeps nothing in memory, so a restarted (or another) scheduler resumes it.
Each transition is one transaction: the attempt's new state and data, guarded by its
``version`` (a writer that read an older one changes nothing), and the
``automation_step`` row recording it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml._identity import current_identity
from loopml._names import closest
from loopml.automation._automations import AutomationSpec
from loopml.errors import AutomationNotFound, InvalidParameter
from loopml.store import Store, now_ms, tables

__all__ = [
    "FINAL_STATES",
    "Attempt",
    "Automation",
    "AutomationStore",
    "Step",
    "record_transition",
]

_automation = tables.AUTOMATION
_attempt = tables.AUTOMATION_ATTEMPT
_step = tables.AUTOMATION_STEP
_MAX_LIST = 10_000

FINAL_STATES = ("promoted", "rolled_back", "inconclusive", "failed", "stopped")
"""States an attempt ends in."""

Fence = Callable[[Connection], None]


@dataclass(frozen=True)
class Automation:
    """A stored automation."""

    id: int
    project: str
    spec: AutomationSpec
    paused: bool
    created_by: str | None
    created_at: int
    updated_at: int

    @property
    def name(self) -> str:
        """The automation's name."""
        return self.spec.name


@dataclass(frozen=True)
class Attempt:
    """One run of an automation, where it is and what it knows."""

    id: int
    automation_id: int
    key: str
    state: str
    data: dict[str, Any]
    version: int
    created_at: int
    updated_at: int
    finished_at: int | None

    @property
    def finished(self) -> bool:
        """Whether the attempt ended."""
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class Step:
    """One recorded transition of an attempt."""

    id: int
    at: int
    from_state: str
    to_state: str
    reason: str
    inputs: dict[str, Any]
    outcome: dict[str, Any]


class AutomationStore:
    """Automations and their attempts in a metadata store.

    Args:
        store: the metadata store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, spec: AutomationSpec, *, project: str, replace: bool = False) -> Automation:
        """Store ``spec`` in ``project`` (replacing one of the same name when ``replace``).

        Raises:
            InvalidParameter: one of that name exists and ``replace`` is false.
        """
        if not isinstance(spec, AutomationSpec):
            raise InvalidParameter(f"create takes an AutomationSpec; got {type(spec).__name__}.")
        now = now_ms()
        with self.store.write() as connection:
            project_id = self.store.project_id(connection, project)
            existing = connection.execute(
                select(_automation.c.id).where(
                    _automation.c.project_id == project_id, _automation.c.name == spec.name
                )
            ).scalar()
            values = {"spec": spec.to_dict(), "updated_at": now, "created_by": current_identity()}
            if existing is None:
                connection.execute(
                    _automation.insert().values(
                        project_id=project_id,
                        name=spec.name,
                        paused=False,
                        created_at=now,
                        **values,
                    )
                )
            elif not replace:
                raise InvalidParameter(
                    f"Project {project!r} already has an automation named {spec.name!r} "
                    "(replace it with replace=True)."
                )
            else:
                connection.execute(
                    update(_automation).where(_automation.c.id == existing).values(**values)
                )
        return self.get(spec.name, project=project)

    def get(self, name: str, *, project: str) -> Automation:
        """The automation ``name`` of ``project``.

        Raises:
            ProjectNotFound: no such project.
            AutomationNotFound: no such automation (the message names the closest).
        """
        with self.store.read() as connection:
            return _automation_of(_row(self.store, connection, name, project), project)

    def get_by_id(self, automation_id: int) -> Automation:
        """The automation with id ``automation_id``."""
        with self.store.read() as connection:
            row = connection.execute(
                select(_automation, tables.PROJECT.c.name.label("project_name"))
                .join(tables.PROJECT, tables.PROJECT.c.id == _automation.c.project_id)
                .where(_automation.c.id == automation_id)
            ).one()
        return _automation_of(row, str(row.project_name))

    def list(self, *, project: str) -> builtins.list[Automation]:
        """The automations of ``project``, by name."""
        with self.store.read() as connection:
            project_id = self.store.require_project(connection, project)
            rows = connection.execute(
                select(_automation)
                .where(_automation.c.project_id == project_id)
                .order_by(_automation.c.name)
                .limit(_MAX_LIST)
            ).all()
        return [_automation_of(r, project) for r in rows]

    def set_paused(self, name: str, paused: bool, *, project: str) -> Automation:
        """Pause (no attempt starts or advances) or resume an automation."""
        with self.store.write() as connection:
            row = _row(self.store, connection, name, project)
            connection.execute(
                update(_automation)
                .where(_automation.c.id == row.id)
                .values(paused=paused, updated_at=now_ms())
            )
        return self.get(name, project=project)

    def start(
        self,
        name: str,
        *,
        project: str,
        key: str,
        events: builtins.list[Mapping[str, Any]] | None = None,
    ) -> Attempt:
        """Start an attempt of ``name`` for ``key`` (once: a key started before is returned).

        Args:
            name: the automation.
            project: its project.
            key: what started it (a trigger firing: ``firing-12``); unique per automation.
            events: the triggering events; the newest one's data fill the pipeline's
                ``{event.FIELD}`` parameters.
        """
        if not isinstance(key, str) or not 0 < len(key) <= 200:
            raise InvalidParameter(f"An attempt key must be 1 to 200 characters; got {key!r}.")
        now = now_ms()
        data = {"events": [dict(e) for e in events or []]}
        with self.store.write() as connection:
            row = _row(self.store, connection, name, project)
            factory = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
            connection.execute(
                factory(_attempt)
                .values(
                    automation_id=row.id,
                    key=key,
                    state="retrain",
                    data=data,
                    version=0,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["automation_id", "key"])
            )
            attempt = connection.execute(
                select(_attempt).where(_attempt.c.automation_id == row.id, _attempt.c.key == key)
            ).one()
        return attempt_of(attempt)

    def attempt(self, attempt_id: int) -> Attempt:
        """The attempt ``attempt_id``.

        Raises:
            InvalidParameter: no such attempt.
        """
        with self.store.read() as connection:
            row = connection.execute(select(_attempt).where(_attempt.c.id == attempt_id)).first()
        if row is None:
            raise InvalidParameter(f"No automation attempt has the id {attempt_id!r}.")
        return attempt_of(row)

    def attempts(self, name: str, *, project: str) -> builtins.list[Attempt]:
        """The automation's attempts, newest first."""
        with self.store.read() as connection:
            row = _row(self.store, connection, name, project)
            rows = connection.execute(
                select(_attempt)
                .where(_attempt.c.automation_id == row.id)
                .order_by(_attempt.c.id.desc())
                .limit(_MAX_LIST)
            ).all()
        return [attempt_of(r) for r in rows]

    def steps(self, attempt_id: int) -> builtins.list[Step]:
        """Every recorded transition of an attempt, oldest first."""
        with self.store.read() as connection:
            rows = connection.execute(
                select(_step).where(_step.c.attempt_id == attempt_id).order_by(_step.c.id)
            ).all()
        return [
            Step(int(r.id), int(r.at), r.from_state, r.to_state, r.reason, r.inputs, r.outcome)
            for r in rows
        ]

    def unfinished(self) -> builtins.list[Attempt]:
        """Every attempt not ended, of automations not paused, oldest first."""
        with self.store.read() as connection:
            rows = connection.execute(
                select(_attempt)
                .join(_automation, _automation.c.id == _attempt.c.automation_id)
                .where(_attempt.c.state.not_in(FINAL_STATES), _automation.c.paused.is_(False))
                .order_by(_attempt.c.id)
                .limit(_MAX_LIST)
            ).all()
        return [attempt_of(r) for r in rows]

    def cancel(self, attempt_id: int, *, reason: str = "cancelled") -> bool:
        """Stop an unfinished attempt where it is (what it set up stays as it is).

        Returns:
            Whether it was stopped (False: it had ended).
        """
        attempt = self.attempt(attempt_id)
        if attempt.finished:
            return False
        return record_transition(
            self.store, attempt, "stopped", reason, {"by": current_identity()}, {}, attempt.data
        )


def record_transition(
    store: Store,
    attempt: Attempt,
    to_state: str,
    reason: str,
    inputs: Mapping[str, Any],
    outcome: Mapping[str, Any],
    data: Mapping[str, Any],
    fence: Fence | None = None,
) -> bool:
    """Move ``attempt`` to ``to_state`` with ``data`` and record the step, in one transaction.

    Returns:
        Whether it moved (False: the attempt changed since it was read).
    """
    now = now_ms()
    with store.write() as connection:
        if fence is not None:
            fence(connection)
        moved = connection.execute(
            update(_attempt)
            .where(_attempt.c.id == attempt.id, _attempt.c.version == attempt.version)
            .values(
                state=to_state,
                data=dict(data),
                version=attempt.version + 1,
                updated_at=now,
                finished_at=now if to_state in FINAL_STATES else None,
            )
        ).rowcount
        if not moved:
            return False
        connection.execute(
            _step.insert().values(
                attempt_id=attempt.id,
                at=now,
                from_state=attempt.state,
                to_state=to_state,
                reason=reason,
                inputs=dict(inputs),
                outcome=dict(outcome),
            )
        )
    return True


def save_data(
    store: Store, attempt: Attempt, data: Mapping[str, Any], fence: Fence | None
) -> Attempt:
    """Store ``data`` for ``attempt`` without a transition (what a step is about to start).

    Raises:
        InvalidParameter: the attempt changed since it was read.
    """
    with store.write() as connection:
        if fence is not None:
            fence(connection)
        moved = connection.execute(
            update(_attempt)
            .where(_attempt.c.id == attempt.id, _attempt.c.version == attempt.version)
            .values(data=dict(data), version=attempt.version + 1, updated_at=now_ms())
        ).rowcount
    if not moved:
        raise InvalidParameter(f"Automation attempt {attempt.id} changed while it was advanced.")
    return Attempt(
        attempt.id,
        attempt.automation_id,
        attempt.key,
        attempt.state,
        dict(data),
        attempt.version + 1,
        attempt.created_at,
        now_ms(),
        attempt.finished_at,
    )


def attempt_of(row: Any) -> Attempt:
    """An :class:`Attempt` from its row."""
    return Attempt(
        int(row.id),
        int(row.automation_id),
        str(row.key),
        str(row.state),
        dict(row.data or {}),
        int(row.version),
        int(row.created_at),
        int(row.updated_at),
        row.finished_at,
    )


def _row(store: Store, connection: Connection, name: str, project: str) -> Any:
    project_id = store.require_project(connection, project)
    row = connection.execute(
        select(_automation).where(
            _automation.c.project_id == project_id, _automation.c.name == name
        )
    ).first()
    if row is None:
        names = connection.execute(
            select(_automation.c.name).where(_automation.c.project_id == project_id)
        ).scalars()
        hint = closest(str(name), list(names))
        raise AutomationNotFound(
            f"No automation named {name!r} in project {project!r}"
            + (f"; did you mean {hint!r}?" if hint else ".")
        )
    return row


def _automation_of(row: Any, project: str) -> Automation:
    return Automation(
        int(row.id),
        project,
        AutomationSpec.from_dict(row.spec),
        bool(row.paused),
        row.created_by,
        int(row.created_at),
        int(row.updated_at),
    )
