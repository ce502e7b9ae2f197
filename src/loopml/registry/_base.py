"""What the registry's parts share: the stores, look-ups and row → record conversion."""

from __future__ import annotations

import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, select

from loopml.approvals import current_identity
from loopml.artifacts import ArtifactStore
from loopml.errors import ModelError, ModelNotFound, UntrustedModelError
from loopml.registry._flavors import get_flavor
from loopml.registry._loaded import LoadedModel
from loopml.registry._records import ModelVersion
from loopml.registry._refs import ModelRef, parse_model_ref
from loopml.registry._signature import Signature
from loopml.store import Store, tables

__all__ = ["RegistryBase", "current_identity", "version_record", "versions_query"]

_project = tables.PROJECT
_model = tables.MODEL
_version = tables.MODEL_VERSION
_alias = tables.MODEL_ALIAS


class RegistryBase:
    """The stores of a registry client, and how versions are found."""

    def __init__(self, store: Store, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    def get_version(self, ref: str, *, project: str) -> ModelVersion:
        """Resolve ``name``, ``name/N``, ``name@alias`` or ``models:/name/N``.

        ``name`` alone is the newest version that is not rejected or archived.

        Raises:
            ModelNotFound: no such model, version or alias.
        """
        parsed = parse_model_ref(ref)
        with self.store.read() as conn:
            model_id = self._require_model(conn, parsed.name, project)
            query = versions_query().where(_version.c.model_id == model_id)
            if parsed.version is not None:
                query = query.where(_version.c.version == parsed.version)
            elif parsed.alias is not None:
                target = conn.execute(
                    select(_alias.c.version_id).where(
                        _alias.c.model_id == model_id, _alias.c.alias == parsed.alias
                    )
                ).scalar()
                if target is None:
                    raise ModelNotFound(_no_alias(parsed, self._aliases_of(conn, model_id)))
                query = query.where(_version.c.id == target)
            else:
                query = query.where(_version.c.status.in_(("candidate", "approved")))
                query = query.order_by(_version.c.version.desc())
            row = conn.execute(query.limit(1)).first()
            if row is None:
                raise ModelNotFound(_no_version(parsed, project))
            return self._record(conn, row)

    def load(
        self,
        ref: str,
        *,
        project: str,
        trust: bool = False,
        trusted_types: Collection[str] = (),
    ) -> LoadedModel:
        """Load a version, verifying every file against its digest.

        Flavors that execute code on load (``pyfunc``) load without ``trust=True``
        only when the version's ``registered_by`` is the identity loading it: a
        teammate's pickle on a shared store is never run by accident. Identities
        are self-declared (the OS user name) and ``registered_by`` is a stored
        column, so this guards against accidents, not against whoever can write
        the store. scikit-learn models restore only allow-listed types (see
        :mod:`loopml._skops`) plus ``trusted_types``.

        Args:
            ref: ``name``, ``name/N``, ``name@alias`` or ``models:/name/N``.
            project: project.
            trust: run an executable flavor's code whoever registered it.
            trusted_types: more type names a scikit-learn model's skops file may
                restore (also ``LOOPML_TRUSTED_TYPES``).

        Raises:
            ModelNotFound: unknown model, version or alias.
            ArtifactIntegrityError: the stored model was tampered with.
            UntrustedModelError: an executable flavor registered by someone else
                (or nobody known) and ``trust`` not given.
            UntrustedTypesError: a skops file naming types outside the allow-list.
            MetadataPathError: the model's metadata names a file outside its folder.
        """
        version = self.get_version(ref, project=project)
        flavor = get_flavor(version.flavor)
        if flavor.executable and not trust:
            _check_own_executable(version)
        with tempfile.TemporaryDirectory(prefix="loopml-model-") as folder:
            local = self.artifacts.get_dir(version.digest, Path(folder) / "model")
            native = flavor.load(local, trusted_types)
        return LoadedModel(version, flavor, native)

    def load_onnx(self, ref: str, *, project: str) -> LoadedModel:
        """Load a version's verified ONNX conversion (run with onnxruntime).

        Raises:
            ModelError: the version has no ONNX conversion.
        """
        version = self.get_version(ref, project=project)
        if version.onnx_digest is None:
            raise ModelError(
                f"Model {version.ref} has no ONNX conversion; register with convert_onnx=True."
            )
        flavor = get_flavor("onnx")
        with tempfile.TemporaryDirectory(prefix="loopml-model-") as folder:
            native = flavor.load(self.artifacts.get_dir(version.onnx_digest, Path(folder) / "m"))
        return LoadedModel(version, flavor, native)

    def _store_onnx(self, onnx_bytes: bytes) -> str:
        with tempfile.TemporaryDirectory(prefix="loopml-model-") as folder:
            get_flavor("onnx").save(onnx_bytes, Path(folder))
            return self.artifacts.put_dir(Path(folder))

    def _require_model(self, conn: Connection, name: str, project: str) -> int:
        model_id = conn.execute(
            select(_model.c.id)
            .join(_project, _project.c.id == _model.c.project_id)
            .where(_project.c.name == project, _model.c.name == name)
        ).scalar()
        if model_id is None:
            raise ModelNotFound(f"No model named {name!r} in project {project!r}.")
        return int(model_id)

    def _aliases_of(self, conn: Connection, model_id: int) -> dict[str, int]:
        rows = conn.execute(
            select(_alias.c.alias, _version.c.version)
            .join(_version, _version.c.id == _alias.c.version_id)
            .where(_alias.c.model_id == model_id)
        )
        return {alias: int(version) for alias, version in rows}

    def _record(self, conn: Connection, row: Row[Any]) -> ModelVersion:
        aliases = tuple(
            sorted(
                conn.execute(select(_alias.c.alias).where(_alias.c.version_id == row.id)).scalars()
            )
        )
        return version_record(row, aliases)


def _check_own_executable(version: ModelVersion) -> None:
    """Refuse an executable version that the current identity did not register.

    Raises:
        UntrustedModelError: ``registered_by`` is unknown or another identity.
    """
    me = current_identity()
    if version.registered_by is not None and version.registered_by == me:
        return
    who = (
        f"registered by {version.registered_by!r}, not by you ({me!r})"
        if version.registered_by
        else "registered by no known identity"
    )
    raise UntrustedModelError(
        f"Model {version.ref} is a {version.flavor} model {who}: loading it runs pickled "
        "code, which can do anything its author wanted. Load it with trust=True (CLI: "
        "--trust) only if you trust whoever registered it."
    )


def version_record(row: Row[Any], aliases: tuple[str, ...] = ()) -> ModelVersion:
    """A :class:`ModelVersion` from a row of :func:`_versions_query`."""
    return ModelVersion(
        id=row.id,
        name=row.model_name,
        version=row.version,
        project=row.project_name,
        status=row.status,
        flavor=row.flavor,
        executable=row.executable,
        digest=row.digest,
        onnx_digest=row.onnx_digest,
        signature=None if row.signature is None else Signature.from_dict(row.signature),
        source_run_id=row.source_run_id,
        params=dict(row.params or {}),
        metrics=dict(row.metrics or {}),
        datasets=tuple(row.datasets or ()),
        git_commit=row.git_commit,
        description=row.description,
        tags=dict(row.tags or {}),
        registered_by=row.registered_by,
        created_at=row.created_at,
        aliases=aliases,
        requirements=None if row.requirements is None else tuple(row.requirements),
    )


def versions_query() -> Any:
    """Select model versions with their model's and project's names."""
    return (
        select(_version, _model.c.name.label("model_name"), _project.c.name.label("project_name"))
        .join(_model, _model.c.id == _version.c.model_id)
        .join(_project, _project.c.id == _model.c.project_id)
    )


def _no_alias(ref: ModelRef, aliases: dict[str, int]) -> str:
    known = ", ".join(f"@{a} → {v}" for a, v in sorted(aliases.items())) or "none"
    return f"Model {ref.name!r} has no alias {ref.alias!r} (aliases: {known})."


def _no_version(ref: ModelRef, project: str) -> str:
    if ref.version is not None:
        return f"Model {ref.name!r} in project {project!r} has no version {ref.version}."
    return (
        f"Model {ref.name!r} in project {project!r} has no usable (candidate or approved) version."
    )
