"""Run housekeeping: soft delete and restore, marking a lost run failed, removing tags,
reading a run's captured environment back.

Deleting is soft: ``run.deleted_at`` is set and searches skip the run; ``loopml gc``
removes it for good once it has been deleted longer than ``LOOPML_GC_DELETED_GRACE``.
A run's children (pipeline steps, optuna trials) are deleted and restored with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, select, update

from loopml import settings
from loopml._html import when
from loopml._identity import current_identity
from loopml.errors import (
    EnvironmentNotCaptured,
    InvalidParameter,
    RunNotFound,
    RunStateError,
    TagNotFound,
)
from loopml.store import now_ms, tables
from loopml.tracking._client_base import ClientBase, refresh_json
from loopml.tracking._reserved import check_not_reserved
from loopml.tracking._validate import check_key

__all__ = ["MARKED_FAILED_TYPE", "AdminOps"]

_run = tables.RUN
_tag = tables.TAG
_env = tables.ENVIRONMENT
_step_run = tables.STEP_RUN

MARKED_FAILED_TYPE = "loopml.MarkedFailed"
"""The ``failure.type`` of a run that ``mark_run_failed`` ended."""

_ACTIVE_STATUSES = ("running", "waiting_for_approval")


class AdminOps(ClientBase):
    """Delete, restore and mark runs; remove tags; read environments."""

    # -- delete and restore -----------------------------------------------------------

    def delete_run(self, run_id: str, *, force: bool = False) -> list[str]:
        """Soft-delete a run and its child runs; return the ids deleted (the run first).

        A deleted run is skipped by ``search_runs`` (unless ``view="deleted"`` or
        ``"all"``), still read by ``get_run`` (``Run.deleted_at`` says when) and
        comes back with :meth:`restore_run`. ``loopml gc`` removes it for good once
        it has been deleted longer than ``LOOPML_GC_DELETED_GRACE`` (30 days).

        Args:
            run_id: the run.
            force: also delete a run (or child) that is still active: running with a
                recent heartbeat, or waiting for approval. Its process, if any, keeps
                logging to a deleted run.

        Raises:
            RunNotFound: unknown run id.
            RunStateError: the run is already deleted, or it (or a child) is still
                active and ``force`` is not given.

        Example:
            >>> client.delete_run(run_id)
            ['4f1c…']
            >>> client.get_run(run_id).deleted
            True
        """
        return self.delete_runs([run_id], force=force)

    def delete_runs(self, run_ids: Sequence[str], *, force: bool = False) -> list[str]:
        """Soft-delete several runs (and their children) at once: all of them or none.

        Returns:
            Every run id deleted, each named run followed by its children.

        Raises:
            RunNotFound: an unknown run id (nothing is deleted).
            RunStateError: a run is already deleted, or active without ``force``, or
                it is a step of a pipeline run not deleted with it (delete the
                pipeline run instead: a step is part of its record).
        """
        cutoff = _lost_cutoff()
        stamp = now_ms()
        with self.store.write() as conn:
            deleted: list[str] = []
            for run_id in _unique(run_ids):
                row = _run_state(conn, run_id)
                if row.deleted_at is not None:
                    raise RunStateError(
                        f"Run {run_id} is already deleted (since {when(row.deleted_at)}); "
                        "'loopml runs restore' brings it back."
                    )
                tree = [run_id, *_descendants(conn, run_id)]
                if not force:
                    _refuse_active(conn, tree, cutoff)
                deleted.extend(r for r in tree if r not in deleted)
            _refuse_lone_steps(conn, deleted)
            states = conn.execute(
                select(_run.c.id, _run.c.deleted_at).where(_run.c.id.in_(deleted))
            ).all()
            live = [r.id for r in states if r.deleted_at is None]
            # restore_run brings back the children deleted *with* a run by their equal
            # stamps, so this delete's stamp must differ from any earlier one below it.
            earlier = [r.deleted_at for r in states if r.deleted_at is not None]
            stamp = max([stamp, *(when + 1 for when in earlier)])
            conn.execute(update(_run).where(_run.c.id.in_(live)).values(deleted_at=stamp))
        return [r for r in deleted if r in set(live)]

    def restore_run(self, run_id: str) -> list[str]:
        """Undo :meth:`delete_run`: the run and the children deleted with it come back.

        Children deleted on their own before the run stay deleted.

        Returns:
            Every run id restored, the run first.

        Raises:
            RunNotFound: unknown run id (or one ``loopml gc`` already removed).
            RunStateError: the run is not deleted, or its parent is deleted (restore
                the parent instead).
        """
        return self.restore_runs([run_id])

    def restore_runs(self, run_ids: Sequence[str]) -> list[str]:
        """Restore several deleted runs at once: all of them or none.

        The order of ``run_ids`` does not matter: a run named with its parent comes
        back after (or with) the parent.

        Raises:
            RunNotFound: an unknown run id (nothing is restored).
            RunStateError: a run is not deleted, or its parent is deleted.
        """
        with self.store.write() as conn:
            restored: list[str] = []
            for run_id in _parents_first(conn, _unique(run_ids)):
                if run_id in restored:
                    continue  # came back with a parent named in the same call
                row = _run_state(conn, run_id, lock=True)
                if row.deleted_at is None:
                    raise RunStateError(
                        f"Run {run_id} is not deleted; there is nothing to restore."
                    )
                if row.parent_id is not None and row.parent_id not in restored:
                    parent = _run_state(conn, row.parent_id)
                    if parent.deleted_at is not None:
                        raise RunStateError(
                            f"Run {run_id} is part of run {row.parent_id}, which is deleted "
                            f"too; restore {row.parent_id} (its children come back with it)."
                        )
                tree = [run_id, *_descendants(conn, run_id, deleted_at=row.deleted_at)]
                conn.execute(update(_run).where(_run.c.id.in_(tree)).values(deleted_at=None))
                restored.extend(r for r in tree if r not in restored)
        return restored

    # -- status -------------------------------------------------------------------------

    def mark_run_failed(self, run_id: str, reason: str | None = None) -> None:
        """End a run that is still marked running but whose process is gone, as failed.

        Sets the status to ``failed``, the end time to now and the failure to
        ``loopml.MarkedFailed: <reason>``. Meant for lost runs (no heartbeat for
        ``LOOPML_HEARTBEAT_TIMEOUT``); a run whose process is in fact alive may still
        end itself later and overwrite this.

        Args:
            run_id: the run.
            reason: why, kept as the failure message (default: who marked it).

        Raises:
            RunNotFound: unknown run id.
            RunStateError: the run is not running (finished, failed, killed, …).
            InvalidParameter: ``reason`` is not a str.
        """
        if reason is not None and not isinstance(reason, str):
            raise InvalidParameter(
                f"The 'reason' parameter of mark_run_failed must be a str; "
                f"got {type(reason).__name__}."
            )
        who = current_identity() or "a user"
        message = reason if reason and reason.strip() else f"marked failed by {who}"
        with self.store.write() as conn:
            done = conn.execute(
                update(_run)
                .where(_run.c.id == run_id, _run.c.status == "running")
                .values(
                    status="failed",
                    end_time=now_ms(),
                    failure_type=MARKED_FAILED_TYPE,
                    failure_message=message,
                    failure_traceback="",
                )
            )
            if done.rowcount == 0:
                row = _run_state(conn, run_id)
                raise RunStateError(
                    f"Run {run_id} is {row.status}, not running; only a running (or lost) "
                    "run can be marked failed."
                )
        if self._writer is not None:
            self._writer.untrack(run_id)

    # -- tags ---------------------------------------------------------------------------

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag from a run.

        Raises:
            RunNotFound: unknown run id.
            TagNotFound: the run has no tag ``key``.
            ReservedKeyError: ``key`` starts with ``loopml.`` (written by loopml only).
            InvalidParameter: a malformed key.
        """
        self.delete_tags(run_id, [key])

    def delete_tags(self, run_id: str, keys: Sequence[str]) -> None:
        """Remove several tags from a run: all of them or, if one is missing, none.

        Raises:
            RunNotFound: unknown run id.
            TagNotFound: the run lacks one of the keys (the message names it).
            ReservedKeyError: a key starts with ``loopml.``.
            InvalidParameter: a malformed key.
        """
        if isinstance(keys, str):
            raise InvalidParameter(
                "The 'keys' parameter of delete_tags must be a list of keys, not one str."
            )
        wanted = [check_not_reserved("tag", check_key("tag", key)) for key in keys]
        if not wanted:
            return
        with self.store.write() as conn:
            self._require_run(conn, run_id, lock=True)
            present = set(conn.execute(select(_tag.c.key).where(_tag.c.run_id == run_id)).scalars())
            missing = [key for key in wanted if key not in present]
            if missing:
                public = sorted(k for k in present if not k.casefold().startswith("loopml."))
                listing = ", ".join(public) if public else "none"
                raise TagNotFound(
                    f"Run {run_id} has no tag {missing[0]!r}; its tags are: {listing}."
                )
            conn.execute(delete(_tag).where(_tag.c.run_id == run_id, _tag.c.key.in_(wanted)))
            refresh_json(conn, run_id, _tag, "tags_json")

    # -- environment --------------------------------------------------------------------

    def get_environment(self, run_id: str) -> dict[str, str]:
        """Return the packages installed when the run started: name → version, sorted.

        Raises:
            RunNotFound: unknown run id.
            EnvironmentNotCaptured: the run has no package list (started with
                ``capture_context=False`` or ``LOOPML_CAPTURE_PACKAGES=0``).
        """
        with self.store.read() as conn:
            found = conn.execute(
                select(_run.c.environment_sha256).where(_run.c.id == run_id)
            ).first()
            if found is None:
                raise RunNotFound(f"No run with id {run_id!r}.")
            packages = None
            if found.environment_sha256 is not None:
                packages = conn.execute(
                    select(_env.c.packages).where(_env.c.sha256 == found.environment_sha256)
                ).scalar()
        if not packages:
            raise EnvironmentNotCaptured(
                f"Run {run_id} has no captured environment: it was started with "
                "capture_context=False or LOOPML_CAPTURE_PACKAGES=0."
            )
        return {str(name): str(packages[name]) for name in sorted(packages)}


def _unique(run_ids: Sequence[str]) -> list[str]:
    if isinstance(run_ids, str):
        raise InvalidParameter("Pass a list of run ids, not one str.")
    seen: list[str] = []
    for run_id in run_ids:
        if not isinstance(run_id, str):
            raise InvalidParameter(f"A run id must be a str; got {type(run_id).__name__}.")
        if run_id not in seen:
            seen.append(run_id)
    return seen


def _run_state(conn: Connection, run_id: str, *, lock: bool = False) -> Any:
    """The run's state; ``lock`` holds its row until commit (PostgreSQL), so a
    concurrent ``loopml gc`` purging it finishes first (and this raises RunNotFound)."""
    query = select(
        _run.c.id,
        _run.c.status,
        _run.c.parent_id,
        _run.c.deleted_at,
        _run.c.heartbeat_at,
    ).where(_run.c.id == run_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise RunNotFound(f"No run with id {run_id!r}.")
    return row


def _parents_first(conn: Connection, run_ids: list[str]) -> list[str]:
    """``run_ids`` reordered so that a run comes after every ancestor named with it."""
    wanted = set(run_ids)
    depth: dict[str, int] = {}
    for run_id in run_ids:
        level, current, seen = 0, run_id, {run_id}
        while True:
            parent = conn.execute(select(_run.c.parent_id).where(_run.c.id == current)).scalar()
            if parent is None or parent in seen:
                break
            seen.add(parent)
            if parent in wanted:
                level += 1
            current = parent
        depth[run_id] = level
    return sorted(run_ids, key=lambda r: depth[r])


def _refuse_lone_steps(conn: Connection, run_ids: list[str]) -> None:
    """Refuse to delete a pipeline's step run unless its pipeline run goes too."""
    for start in range(0, len(run_ids), 500):
        rows = conn.execute(
            select(_step_run.c.run_id, _step_run.c.step, _step_run.c.pipeline_run_id).where(
                _step_run.c.run_id.in_(run_ids[start : start + 500])
            )
        ).all()
        for row in rows:
            if row.pipeline_run_id not in run_ids:
                raise RunStateError(
                    f"Run {row.run_id} is step {row.step!r} of pipeline run "
                    f"{row.pipeline_run_id}; a step is part of its pipeline run's record. "
                    f"Delete pipeline run {row.pipeline_run_id} instead (its steps go with it)."
                )


def _descendants(conn: Connection, run_id: str, *, deleted_at: int | None = None) -> list[str]:
    """Every run below ``run_id`` (children, their children …), breadth first.

    With ``deleted_at``, only those deleted at that very moment (deleted with it),
    and only below them.
    """
    found: list[str] = []
    frontier = [run_id]
    while frontier:
        query = select(_run.c.id).where(_run.c.parent_id.in_(frontier))
        if deleted_at is not None:
            query = query.where(_run.c.deleted_at == deleted_at)
        frontier = [r for r in conn.execute(query).scalars() if r not in found]
        found.extend(frontier)
    return found


def _refuse_active(conn: Connection, run_ids: list[str], cutoff: int) -> None:
    rows = conn.execute(
        select(_run.c.id, _run.c.status, _run.c.heartbeat_at).where(
            _run.c.id.in_(run_ids),
            _run.c.status.in_(_ACTIVE_STATUSES),
            _run.c.deleted_at.is_(None),
        )
    ).all()
    active = [r for r in rows if r.status != "running" or r.heartbeat_at >= cutoff]
    if active:
        first = active[0]
        whose = "" if first.id == run_ids[0] else f" (part of run {run_ids[0]})"
        raise RunStateError(
            f"Run {first.id}{whose} is still {first.status.replace('_', ' ')}; deleting it "
            "would leave its process logging to a deleted run. Wait for it to end, mark it "
            "failed if its process is gone ('loopml runs mark-failed'), or force the delete "
            "(--force, force=True)."
        )


def _lost_cutoff() -> int:
    timeout: float = settings.get("LOOPML_HEARTBEAT_TIMEOUT")
    return now_ms() - int(timeout * 1000)
