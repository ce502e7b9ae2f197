"""Archiving model versions: out of use, kept, and back again when needed.

An archived version stays in the registry (its files, lineage and evaluations),
is listed by ``versions``, and loads by its number; it is skipped by a bare
model name, cannot be approved, promoted or aliased, and a rollback does not
return to it. A version an alias points at cannot be archived: the message
names the alias to move first. Every archive and unarchive is a ``model_event``
(who, when, why, and the status an unarchive restores).
"""

from __future__ import annotations

from sqlalchemy import select, update

from loopml.errors import ModelError
from loopml.registry._base import RegistryBase
from loopml.registry._events import check_reason, latest_event, record_event
from loopml.registry._records import ModelVersion
from loopml.store import tables

__all__ = ["ArchiveOps"]

_version = tables.MODEL_VERSION
_alias = tables.MODEL_ALIAS

_RESTORED_DEFAULT = "candidate"  # for versions archived before archiving was recorded


class ArchiveOps(RegistryBase):
    """Archive and unarchive versions, recorded."""

    def archive(self, ref: str, *, project: str, reason: str | None = None) -> ModelVersion:
        """Archive a version: it stays stored but can no longer be approved, promoted or aliased.

        Args:
            ref: ``credit/2``, ``credit@challenger`` or ``models:/credit/2``.
            project: project.
            reason: why (kept with the record).

        Raises:
            ModelError: the version is already archived, or an alias still points at
                it (the message names the alias and how to move it).
            ModelNotFound: no such model, version or alias.
            InvalidParameter: a reason that is not a string or is too long.
        """
        version = self.get_version(ref, project=project)
        why = check_reason(reason, what="archiving a version", required=False)
        with self.store.write() as conn:
            # Locked, so that a promotion cannot point an alias at it meanwhile (PostgreSQL).
            status = conn.execute(
                select(_version.c.status).where(_version.c.id == version.id).with_for_update()
            ).scalar_one()
            if status == "archived":
                raise ModelError(f"Model {version.ref} is already archived.")
            aliases = sorted(
                conn.execute(select(_alias.c.alias).where(_alias.c.version_id == version.id))
                .scalars()
                .all()
            )
            if aliases:
                raise ModelError(_aliased(version, aliases))
            model_id = conn.execute(
                select(_version.c.model_id).where(_version.c.id == version.id)
            ).scalar_one()
            conn.execute(
                update(_version).where(_version.c.id == version.id).values(status="archived")
            )
            record_event(
                conn, model_id, "archive", version_id=version.id, status_before=status, reason=why
            )
        return self.get_version(version.ref, project=project)

    def unarchive(self, ref: str, *, project: str, reason: str | None = None) -> ModelVersion:
        """Bring an archived version back, with the status it had before it was archived.

        Raises:
            ModelError: the version is not archived.
            ModelNotFound: no such model or version.
        """
        version = self.get_version(ref, project=project)
        why = check_reason(reason, what="unarchiving a version", required=False)
        with self.store.write() as conn:
            row = conn.execute(
                select(_version.c.status, _version.c.model_id)
                .where(_version.c.id == version.id)
                .with_for_update()
            ).one()
            if row.status != "archived":
                raise ModelError(f"Model {version.ref} is {row.status}, not archived.")
            archived = latest_event(conn, row.model_id, ("archive",), version_id=version.id)
            restored = (archived.status_before if archived else None) or _RESTORED_DEFAULT
            conn.execute(
                update(_version).where(_version.c.id == version.id).values(status=restored)
            )
            record_event(
                conn,
                row.model_id,
                "unarchive",
                version_id=version.id,
                status_before="archived",
                reason=why,
            )
        return self.get_version(version.ref, project=project)


def _aliased(version: ModelVersion, aliases: list[str]) -> str:
    first = aliases[0]
    named = ", ".join(f"@{a}" for a in aliases)
    return (
        f"Model {version.ref} is {named}; an archived version cannot hold an alias. Move "
        f"@{first} first: promote another version ('loopml models promote "
        f"{version.name}/N --alias {first}') or roll it back ('loopml models rollback "
        f"{version.name} --alias {first}'), then archive {version.ref}."
    )
