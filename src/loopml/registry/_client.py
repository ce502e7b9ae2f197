"""The model registry: register versions, find and load them, promote and roll back.

Registration and loading live here; aliases, approvals, evaluation and promotion
in ``_promotion``. The SDK (``loopml.models``), the CLI and later the server are
faces over this one client.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from loopml._html import when
from loopml.errors import InvalidParameter, ModelError, RunStateError, UntrustedModelError
from loopml.registry._archive import ArchiveOps
from loopml.registry._base import current_identity, version_record, versions_query
from loopml.registry._flavors import flavor_for, get_flavor
from loopml.registry._onnx import convert_to_onnx
from loopml.registry._paths import model_file
from loopml.registry._promotion import PromotionOps
from loopml.registry._records import Model, ModelVersion
from loopml.registry._refs import check_model_name
from loopml.registry._requirements import (
    REQUIREMENTS_FILE,
    model_requirements,
    requirements_text,
)
from loopml.registry._signature import Signature, as_frame, infer_signature
from loopml.store import Node, add_edge, next_number, now_ms, tables, walk

__all__ = ["RegistryClient"]

_project = tables.PROJECT
_model = tables.MODEL
_version = tables.MODEL_VERSION
_alias = tables.MODEL_ALIAS
_run = tables.RUN
_dataset = tables.DATASET
_dataset_version = tables.DATASET_VERSION

NODE_KIND = "model_version"


class RegistryClient(PromotionOps, ArchiveOps):
    """Models and their versions over one metadata store and one artifact store.

    Example:
        >>> registry = RegistryClient(store, artifacts)                 # doctest: +SKIP
        >>> v = registry.register(clf, "credit", project="p", input_example=X[:5])  # doctest: +SKIP
        >>> registry.load("credit/1", project="p").predict(X)           # doctest: +SKIP
    """

    def register(
        self,
        model: object,
        name: str,
        *,
        project: str,
        run_id: str | None = None,
        signature: Signature | None = None,
        input_example: Any = None,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
        convert_onnx: bool = False,
        trust: bool = False,
        extra_pip: Sequence[str] = (),
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name``, linked to what produced it.

        The pip requirements the model needs (its flavor's packages, pinned to the
        versions installed here, plus ``extra_pip``) are stored with it, as
        ``requirements.txt`` in the model folder and as ``version.requirements``.

        Args:
            model: a model object (scikit-learn, XGBoost, LightGBM, ONNX bytes, or any
                object with ``predict``), or ``runs:/RUN_ID/PATH`` naming a model logged
                to a run (``loopml.autolog`` logs ``model``).
            name: model name.
            project: project.
            run_id: the run that trained it (default: the ``runs:/`` run); its params,
                metrics, code commit and input dataset versions are recorded, with
                lineage edges.
            signature: input/output schema; inferred from ``input_example`` if omitted.
            input_example: a few rows of input (stored, used to infer the signature
                and to verify an ONNX conversion).
            description: free text.
            tags: labels.
            convert_onnx: also store an ONNX conversion (scikit-learn), verified to
                predict the same on the input example.
            trust: unpickle a ``runs:/`` model that ``loopml.autolog`` did not log
                (by default only autolog's own pickles, checked by digest, are loaded).
            extra_pip: more pip requirement lines the model needs (``"pandas>=2"``);
                a line naming a captured package replaces its pin.

        Raises:
            ModelError: no flavor can store the model, or the ONNX conversion differs.
            RunNotFound: ``run_id`` names no run.
            RunStateError: ``run_id`` names a deleted run.
            InvalidParameter: an ``extra_pip`` line is not a pip requirement.
        """
        check_model_name(name)
        if isinstance(model, str) and model.startswith("runs:/"):
            run_id, model = self._load_run_artifact(model, trust=trust)
        flavor = flavor_for(model)
        requirements = model_requirements(flavor.name, model, extra_pip)
        example = None if input_example is None else as_frame(input_example, signature)
        if signature is None and example is not None:
            signature = infer_signature(example, flavor.predict(model, example))
        source = self._source_run(run_id) if run_id is not None else {}
        with tempfile.TemporaryDirectory(prefix="loopml-model-") as folder:
            root = Path(folder)
            (root / "model").mkdir()
            flavor.save(model, root / "model")
            (root / "model" / "loopml-model.json").write_text(
                json.dumps({"flavor": flavor.name, "executable": flavor.executable})
            )
            (root / "model" / REQUIREMENTS_FILE).write_text(
                requirements_text(requirements), encoding="utf-8"
            )
            digest = self.artifacts.put_dir(root / "model")
            example_digest = None
            if example is not None:
                example.to_parquet(root / "example.parquet")
                example_digest = self.artifacts.put_file(root / "example.parquet")
        onnx_digest = None
        if convert_onnx:
            if example is None:
                raise InvalidParameter("convert_onnx=True needs an input_example to verify with.")
            onnx_digest = self._store_onnx(convert_to_onnx(model, example))
        values = {
            "status": "candidate",
            "flavor": flavor.name,
            "executable": flavor.executable,
            "digest": digest,
            "onnx_digest": onnx_digest,
            "signature": None if signature is None else signature.to_dict(),
            "example_digest": example_digest,
            "source_run_id": run_id,
            "params": source.get("params", {}),
            "metrics": source.get("metrics", {}),
            "datasets": source.get("datasets", []),
            "git_commit": source.get("git_commit"),
            "description": description,
            "tags": dict(tags or {}),
            "registered_by": current_identity(),
            "requirements": requirements,
        }
        version = self._insert_version(name, project, values)
        self._link(version, run_id, source.get("dataset_ids", []))
        return version

    def _insert_version(self, name: str, project: str, values: dict[str, Any]) -> ModelVersion:
        for _attempt in range(5):
            try:
                with self.store.write() as conn:
                    model_id = conn.execute(
                        select(_model.c.id)
                        .join(_project, _project.c.id == _model.c.project_id)
                        .where(_project.c.name == project, _model.c.name == name)
                    ).scalar()
                    if model_id is None:
                        model_id = conn.execute(
                            _model.insert()
                            .values(
                                project_id=self.store.project_id(conn, project),
                                name=name,
                                created_at=now_ms(),
                                creator=current_identity(),
                            )
                            .returning(_model.c.id)
                        ).scalar_one()
                    number = next_number(conn, _version.c.version, _version.c.model_id == model_id)
                    version_id = conn.execute(
                        _version.insert()
                        .values(model_id=model_id, version=number, created_at=now_ms(), **values)
                        .returning(_version.c.id)
                    ).scalar_one()
                    row = conn.execute(versions_query().where(_version.c.id == version_id)).one()
                    return version_record(row)
            except IntegrityError:
                continue  # another writer took the number (PostgreSQL); take the next
        raise ModelError(f"Could not allocate a version number for model {name!r}.")

    def _source_run(self, run_id: str) -> dict[str, Any]:
        """Params, metrics, commit and input datasets of the run that trained a model."""
        from loopml.tracking import TrackingClient

        run = TrackingClient.over(self.store, self.artifacts).get_run(run_id)
        if run.deleted_at is not None:
            raise RunStateError(
                f"Run {run_id} is deleted (since {when(run.deleted_at)}); a model version "
                f"cannot come from a deleted run. Restore it first: loopml runs restore {run_id}"
            )
        git = run.context.get("git") or {}
        dataset_ids: list[str] = []
        with self.store.read() as conn:
            # Only what the run itself loaded: the data's own parents are not training data.
            for edge in walk(conn, Node("run", run_id), "upstream", max_depth=1):
                if (
                    edge.src.kind == "dataset_version"
                    and edge.relation == "input"
                    and edge.src.id not in dataset_ids
                ):
                    dataset_ids.append(edge.src.id)
            refs = _dataset_refs(conn, dataset_ids)
        return {
            "params": dict(run.params),
            "metrics": {k: v for k, v in run.metrics.items() if v == v},  # NaN is not JSON
            "git_commit": git.get("commit"),
            "datasets": refs,
            "dataset_ids": dataset_ids,
        }

    def _link(self, version: ModelVersion, run_id: str | None, dataset_ids: Sequence[str]) -> None:
        node = Node(NODE_KIND, str(version.id))
        with self.store.write() as conn:
            if run_id is not None:
                add_edge(conn, Node("run", run_id), node, "produced", now_ms())
            for dataset_id in dataset_ids:
                add_edge(conn, Node("dataset_version", dataset_id), node, "trained_on", now_ms())

    def _load_run_artifact(self, reference: str, *, trust: bool) -> tuple[str, object]:
        """``runs:/RUN/PATH`` → (run id, model object) for models logged by loopml.

        Unpickling runs code, so only the pickle autolog logged (its digest is the
        run's ``loopml.autolog.model_digest`` tag) is loaded without ``trust``. A
        folder whose ``loopml-model.json`` names a non-executable flavor (XGBoost's
        and LightGBM's autolog) is loaded by that flavor, without unpickling.
        """
        run_id, _, path = reference.removeprefix("runs:/").partition("/")
        if not run_id or not path:
            raise InvalidParameter(f"{reference!r} is not runs:/RUN_ID/PATH.")
        from loopml.tracking import TrackingClient
        from loopml.tracking._autolog import MODEL_DIGEST_TAG

        tracking = TrackingClient.over(self.store, self.artifacts)
        run_id = tracking.resolve_run_id(run_id)
        run = tracking.get_run(run_id)
        logged = {a.path: a.digest for a in run.artifacts}
        if path not in logged:
            raise ModelError(
                f"{reference!r} is not a model logged by loopml: run {run_id} has no "
                f"artifact {path!r}."
            )
        if not trust and run.tags.get(MODEL_DIGEST_TAG) != logged[path]:
            raise UntrustedModelError(
                f"{reference!r} was not logged by loopml.autolog, and loading it unpickles "
                "code; register it with trust=True only if you trust whoever logged it."
            )
        with tempfile.TemporaryDirectory(prefix="loopml-model-") as folder:
            local = tracking.download_artifact(run_id, path, Path(folder) / "artifact")
            meta_path = local / "loopml-model.json" if local.is_dir() else None
            if meta_path is None or not meta_path.is_file():
                raise ModelError(
                    f"{reference!r} is not a model logged by loopml (no loopml-model.json)."
                )
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict):
                raise ModelError(f"{reference!r} has a loopml-model.json that is not an object.")
            if meta.get("flavor", "sklearn") != "sklearn":
                # XGBoost/LightGBM autolog logs the flavor's own files: no pickle.
                flavor = get_flavor(meta["flavor"])
                if flavor.executable:
                    raise UntrustedModelError(
                        f"{reference!r} names the executable flavor {flavor.name!r}; "
                        "register the object itself instead."
                    )
                return run_id, flavor.load(local)
            pickled = model_file(
                local, meta.get("pickle_file", "model.pkl"), "'pickle_file' of loopml-model.json"
            )
            # Autolog's own pickle (or trusted by the caller); its bytes were verified
            # against their digest on download.
            with pickled.open("rb") as handle:
                model = pickle.load(handle)  # noqa: S301
        return run_id, model

    def input_example(self, ref: str, *, project: str) -> Any:
        """The stored input example of a version (a DataFrame), or None."""
        version = self.get_version(ref, project=project)
        with self.store.read() as conn:
            digest = conn.execute(
                select(_version.c.example_digest).where(_version.c.id == version.id)
            ).scalar()
        if digest is None:
            return None
        import pandas as pd

        with tempfile.TemporaryDirectory(prefix="loopml-model-") as folder:
            path = self.artifacts.get_file(digest, Path(folder) / "example.parquet")
            return pd.read_parquet(path)

    # -- listing -----------------------------------------------------------------------------

    def list_models(self, *, project: str) -> list[Model]:
        """Every model of a project, by name."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(_model)
                .join(_project, _project.c.id == _model.c.project_id)
                .where(_project.c.name == project)
                .order_by(_model.c.name)
            ).all()
            return [self._model_record(conn, row, project) for row in rows]

    def get_model(self, name: str, *, project: str) -> Model:
        """One model with its aliases and policy.

        Raises:
            ModelNotFound: no model ``name``.
        """
        with self.store.read() as conn:
            model_id = self._require_model(conn, check_model_name(name), project)
            row = conn.execute(select(_model).where(_model.c.id == model_id)).one()
            return self._model_record(conn, row, project)

    def list_versions(self, name: str, *, project: str) -> list[ModelVersion]:
        """Every version of a model, oldest first.

        Raises:
            ModelNotFound: no model ``name``.
        """
        with self.store.read() as conn:
            model_id = self._require_model(conn, check_model_name(name), project)
            rows = conn.execute(
                versions_query().where(_version.c.model_id == model_id).order_by(_version.c.version)
            ).all()
            return [self._record(conn, row) for row in rows]

    def describe(
        self,
        name: str,
        *,
        project: str,
        description: str | None = None,
        intended_use: str | None = None,
        limitations: str | None = None,
    ) -> Model:
        """Set the user-written parts of the model card (None keeps a field)."""
        values = {
            k: v
            for k, v in {
                "description": description,
                "intended_use": intended_use,
                "limitations": limitations,
            }.items()
            if v is not None
        }
        with self.store.write() as conn:
            model_id = self._require_model(conn, check_model_name(name), project)
            if values:
                conn.execute(_model.update().where(_model.c.id == model_id).values(**values))
        return self.get_model(name, project=project)

    def _model_record(self, conn: Any, row: Any, project: str) -> Model:
        latest = conn.execute(
            select(func.max(_version.c.version)).where(_version.c.model_id == row.id)
        ).scalar()
        return Model(
            name=row.name,
            project=project,
            description=row.description,
            latest_version=latest,
            aliases=self._aliases_of(conn, row.id),
            policy=row.policy,
            intended_use=row.intended_use,
            limitations=row.limitations,
            created_at=row.created_at,
            policy_event=self.last_policy_event(conn, row.id),
        )


def _dataset_refs(conn: Any, ids: Sequence[str]) -> list[str]:
    numeric = [int(i) for i in ids if i.isdigit()]
    if not numeric:
        return []
    rows = conn.execute(
        select(_dataset_version.c.id, _dataset.c.name, _dataset_version.c.version)
        .join(_dataset, _dataset.c.id == _dataset_version.c.dataset_id)
        .where(_dataset_version.c.id.in_(numeric))
    )
    by_id = {str(r.id): f"{r.name}:{r.version}" for r in rows}
    return [by_id[i] for i in ids if i in by_id]
