"""ORM tables of the metadata store.

Times are integer milliseconds since the epoch. A metric value of SQL ``NULL``
means NaN: SQLite turns NaN into NULL on its own, so every back-end stores it
the same way and reads it back as ``float("nan")``. Columns that hold an
artifact-store digest carry ``info={"blob": True}`` so garbage collection can
find every reference without knowing the tables.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ALIAS_EVENT",
    "APPROVAL",
    "AUTOMATION",
    "AUTOMATION_ATTEMPT",
    "AUTOMATION_STEP",
    "DATASET",
    "DATASET_SCHEMA",
    "DATASET_VERSION",
    "DEPLOYMENT",
    "DEPLOYMENT_REVISION",
    "ENVIRONMENT",
    "FEEDBACK",
    "FEEDBACK_EVENT",
    "LATEST_METRIC",
    "LINEAGE_EDGE",
    "METRIC",
    "MODEL",
    "MODEL_ALIAS",
    "MODEL_EVENT",
    "MODEL_VERSION",
    "MONITOR",
    "MONITOR_ALERT",
    "MONITOR_CHECK",
    "MONITOR_REFERENCE",
    "MONITOR_RESULT",
    "NOTE",
    "PARAM",
    "PIPELINE_RUN",
    "POLICY_RESULT",
    "PREDICTION_SEGMENT",
    "PROJECT",
    "RUN",
    "RUN_ARTIFACT",
    "SCHEDULER_LEASE",
    "SERVING_SECRET",
    "STEP_OUTPUT",
    "STEP_RUN",
    "TAG",
    "TRIGGER",
    "TRIGGER_EVALUATION",
    "TRIGGER_EVENT",
    "TRIGGER_FIRING",
    "AliasEventRow",
    "ApprovalRow",
    "Base",
    "DatasetRow",
    "DatasetSchemaRow",
    "DatasetVersionRow",
    "DeploymentRevisionRow",
    "DeploymentRow",
    "EnvironmentRow",
    "FeedbackEventRow",
    "FeedbackRow",
    "LatestMetricRow",
    "LineageEdgeRow",
    "MetricRow",
    "ModelAliasRow",
    "ModelEventRow",
    "ModelRow",
    "ModelVersionRow",
    "MonitorAlertRow",
    "MonitorCheckRow",
    "MonitorReferenceRow",
    "MonitorResultRow",
    "MonitorRow",
    "NoteRow",
    "ParamRow",
    "PipelineRunRow",
    "PolicyResultRow",
    "PredictionSegmentRow",
    "ProjectRow",
    "RunArtifactRow",
    "RunRow",
    "SchedulerLeaseRow",
    "ServingSecretRow",
    "StepOutputRow",
    "StepRunRow",
    "TagRow",
    "TriggerEvaluationRow",
    "TriggerEventRow",
    "TriggerFiringRow",
    "TriggerRow",
    "blob_columns",
]

# SQLite only aliases the rowid for INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

KEY_LENGTH = 250

# Child tables read by run id are clustered on their primary key in SQLite (no rowid
# indirection): loading the params of many runs is one B-tree range scan per run.
_CLUSTERED: dict[str, Any] = {"sqlite_with_rowid": False}


class Base(DeclarativeBase):
    """Declarative base of every loopml table."""


class ProjectRow(Base):
    """A namespace for runs (and later datasets, models, deployments)."""

    __tablename__ = "project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class EnvironmentRow(Base):
    """A set of installed packages, stored once however many runs share it."""

    __tablename__ = "environment"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    packages: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)


class RunRow(Base):
    """One tracked execution: an experiment, a pipeline, a step, a monitor check."""

    __tablename__ = "run"
    __table_args__ = (Index("ix_run_project_start", "project_id", "start_time"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    name: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))  # up to ``waiting_for_approval``
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("run.id"), index=True)
    user: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    heartbeat_at: Mapped[int] = mapped_column(BigInteger)
    failure_type: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    failure_message: Mapped[str | None] = mapped_column(Text)
    failure_traceback: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    environment_sha256: Mapped[str | None] = mapped_column(ForeignKey("environment.sha256"))
    # Copies of the run's params and tags as JSON objects, kept in step with the
    # ``param`` and ``tag`` tables in the same transaction: search reads them with the
    # run row instead of one row per param (the tables stay the source for filters).
    params_json: Mapped[str] = mapped_column(Text)
    tags_json: Mapped[str] = mapped_column(Text)
    cpu_seconds: Mapped[float | None] = mapped_column(Float)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    # When the run was soft-deleted (NULL while live): searches skip it, restore clears it.
    deleted_at: Mapped[int | None] = mapped_column(BigInteger)


class ParamRow(Base):
    """An immutable run parameter (stored as text, as given)."""

    __tablename__ = "param"
    __table_args__ = (_CLUSTERED,)

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class TagRow(Base):
    """A mutable run label."""

    __tablename__ = "tag"
    __table_args__ = (_CLUSTERED,)

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MetricRow(Base):
    """One metric point; the full history of a key is every row of it."""

    __tablename__ = "metric"
    __table_args__ = (Index("ix_metric_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"))
    key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)


class LatestMetricRow(Base):
    """The latest point (highest step, then newest) of each run's metric, kept for search."""

    __tablename__ = "latest_metric"
    __table_args__ = (Index("ix_latest_metric_key_value", "key", "value"), _CLUSTERED)

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)


class RunArtifactRow(Base):
    """A file or directory logged to a run, by its digest in the artifact store."""

    __tablename__ = "run_artifact"
    __table_args__ = (_CLUSTERED,)

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), info={"blob": True})
    size: Mapped[int] = mapped_column(BigInteger)
    is_dir: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[int] = mapped_column(BigInteger)


class NoteRow(Base):
    """A Markdown note on any object (run, project, …)."""

    __tablename__ = "note"
    __table_args__ = (Index("ix_note_object", "object_kind", "object_id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    object_kind: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(KEY_LENGTH))
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)


class LineageEdgeRow(Base):
    """A directed edge between any two objects: (src) --relation--> (dst)."""

    __tablename__ = "lineage_edge"
    __table_args__ = (
        UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "relation"),
        Index("ix_lineage_dst", "dst_kind", "dst_id"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    src_kind: Mapped[str] = mapped_column(String(32))
    src_id: Mapped[str] = mapped_column(String(KEY_LENGTH))
    dst_kind: Mapped[str] = mapped_column(String(32))
    dst_id: Mapped[str] = mapped_column(String(KEY_LENGTH))
    relation: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)


class DatasetRow(Base):
    """A named, versioned dataset of a project."""

    __tablename__ = "dataset"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    name: Mapped[str] = mapped_column(String(KEY_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    key_columns: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    creator: Mapped[str | None] = mapped_column(String(KEY_LENGTH))


class DatasetVersionRow(Base):
    """An immutable snapshot of a dataset: Parquet blob, schema, profile and status."""

    __tablename__ = "dataset_version"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version"),
        Index("ix_dataset_version_hash", "dataset_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), info={"blob": True})
    row_count: Mapped[int] = mapped_column(BigInteger)
    column_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[list[str]]] = mapped_column(JSON)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    parents: Mapped[list[str]] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    report_digest: Mapped[str | None] = mapped_column(String(64), info={"blob": True})
    report_passed: Mapped[bool | None] = mapped_column(Boolean)
    schema_revision: Mapped[int | None] = mapped_column(Integer)
    creator: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)
    # When the version was soft-deleted (NULL while live): resolving skips it.
    deleted_at: Mapped[int | None] = mapped_column(BigInteger)


class DatasetSchemaRow(Base):
    """A revision of a dataset's schema (pandera YAML) and expectations (YAML)."""

    __tablename__ = "dataset_schema"
    __table_args__ = (UniqueConstraint("dataset_id", "revision"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"))
    revision: Mapped[int] = mapped_column(Integer)
    schema_yaml: Mapped[str] = mapped_column(Text)
    expectations_yaml: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)


class PipelineRunRow(Base):
    """A run of kind ``pipeline``: what was run, with which parameters, as which DAG."""

    __tablename__ = "pipeline_run"

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(KEY_LENGTH))
    reference: Mapped[str | None] = mapped_column(String(1024))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    graph: Mapped[dict[str, Any]] = mapped_column(JSON)
    executor: Mapped[str] = mapped_column(String(32))
    use_cache: Mapped[bool] = mapped_column(Boolean)
    git_commit: Mapped[str | None] = mapped_column(String(64))
    resumed_from: Mapped[str | None] = mapped_column(String(32))


class StepRunRow(Base):
    """One step execution of a pipeline run (its own child run holds metrics and logs)."""

    __tablename__ = "step_run"
    __table_args__ = (
        UniqueConstraint("pipeline_run_id", "step"),
        Index("ix_step_run_cache_key", "cache_key"),
    )

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"), primary_key=True)
    pipeline_run_id: Mapped[str] = mapped_column(ForeignKey("run.id"))
    step: Mapped[str] = mapped_column(String(KEY_LENGTH))
    status: Mapped[str] = mapped_column(String(32))
    cache_key: Mapped[str | None] = mapped_column(String(64))
    cached_from: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)


class StepOutputRow(Base):
    """A stored output of a step execution (the cache's result store points here)."""

    __tablename__ = "step_output"
    __table_args__ = (_CLUSTERED,)

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(KEY_LENGTH))
    materializer: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), info={"blob": True})
    content_hash: Mapped[str] = mapped_column(String(64))
    type_name: Mapped[str] = mapped_column(String(KEY_LENGTH))
    executable: Mapped[bool] = mapped_column(Boolean)


class ApprovalRow(Base):
    """A request for a human decision (pipeline gates, model promotions)."""

    __tablename__ = "approval"
    __table_args__ = (
        UniqueConstraint("object_kind", "object_id", "gate"),
        Index("ix_approval_status", "status"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    object_kind: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(KEY_LENGTH))
    gate: Mapped[str] = mapped_column(String(KEY_LENGTH))
    message: Mapped[str] = mapped_column(Text)
    approvers_role: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    requested_at: Mapped[int] = mapped_column(BigInteger)
    decided_by: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    decided_at: Mapped[int | None] = mapped_column(BigInteger)
    comment: Mapped[str | None] = mapped_column(Text)


class ModelRow(Base):
    """A named model of a project, with its promotion policy."""

    __tablename__ = "model"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    name: Mapped[str] = mapped_column(String(KEY_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    policy: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    intended_use: Mapped[str | None] = mapped_column(Text)
    limitations: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    creator: Mapped[str | None] = mapped_column(String(KEY_LENGTH))


class ModelVersionRow(Base):
    """An immutable model version: artifact, flavor, signature and where it came from."""

    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    flavor: Mapped[str] = mapped_column(String(32))
    executable: Mapped[bool] = mapped_column(Boolean)
    digest: Mapped[str] = mapped_column(String(64), info={"blob": True})
    onnx_digest: Mapped[str | None] = mapped_column(String(64), info={"blob": True})
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    example_digest: Mapped[str | None] = mapped_column(String(64), info={"blob": True})
    source_run_id: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    datasets: Mapped[list[str]] = mapped_column(JSON)
    git_commit: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON)
    registered_by: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)
    # pip requirement lines captured at registration; NULL for versions from before 0008
    requirements: Mapped[list[str] | None] = mapped_column(JSON)


class ModelAliasRow(Base):
    """A named pointer (``champion``, ``challenger`` …) to a version of a model."""

    __tablename__ = "model_alias"

    model_id: Mapped[int] = mapped_column(ForeignKey("model.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AliasEventRow(Base):
    """Every move of an alias: who, when, from which version to which, and why."""

    __tablename__ = "alias_event"
    __table_args__ = (Index("ix_alias_event_model_alias", "model_id", "alias"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id"))
    alias: Mapped[str] = mapped_column(String(64))
    from_version_id: Mapped[int | None] = mapped_column(BigInteger)
    to_version_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(16))
    forced: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    at: Mapped[int] = mapped_column(BigInteger)


class PolicyResultRow(Base):
    """The outcome of one promotion-policy check for a version, on one evaluation."""

    __tablename__ = "policy_result"
    __table_args__ = (Index("ix_policy_result_version", "version_id", "evaluation"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"))
    evaluation: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    name: Mapped[str] = mapped_column(String(KEY_LENGTH))
    kind: Mapped[str] = mapped_column(String(32))
    passed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    evaluated_at: Mapped[int] = mapped_column(BigInteger)


class DeploymentRow(Base):
    """An endpoint name; what it serves is its latest revision."""

    __tablename__ = "deployment"
    __table_args__ = (UniqueConstraint("project_id", "endpoint"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    endpoint: Mapped[str] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)


class DeploymentRevisionRow(Base):
    """An immutable set of routes of an endpoint; the newest revision is live."""

    __tablename__ = "deployment_revision"
    __table_args__ = (UniqueConstraint("deployment_id", "revision"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"))
    revision: Mapped[int] = mapped_column(Integer)
    routes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)


class PredictionSegmentRow(Base):
    """A Parquet segment of the prediction log in the artifact store."""

    __tablename__ = "prediction_segment"
    __table_args__ = (Index("ix_prediction_segment_endpoint_time", "endpoint", "first_at"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(KEY_LENGTH))
    digest: Mapped[str] = mapped_column(String(64), info={"blob": True}, unique=True)
    rows: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)


class FeedbackRow(Base):
    """Ground truth that arrived for a prediction (by request id), possibly much later."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("endpoint", "request_id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(KEY_LENGTH))
    request_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[int] = mapped_column(BigInteger)


class FeedbackEventRow(Base):
    """Every label accepted for a request, first and corrections: the audit of ``feedback``.

    ``feedback`` holds the label in force (the last one); this table keeps each value
    with when it arrived and who sent it.
    """

    __tablename__ = "feedback_event"
    __table_args__ = (Index("ix_feedback_event_request", "endpoint", "request_id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(KEY_LENGTH))
    request_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(KEY_LENGTH))


class ServingSecretRow(Base):
    """A secret shared by every inference server of this store, by name.

    ``request_ids`` keys the MAC in each request id a server answers with, so that
    feedback is taken only for ids some server of the endpoint really answered.
    """

    __tablename__ = "serving_secret"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger)


def blob_columns() -> list[tuple[str, str]]:
    """Return ``(table, column)`` for every column that references an artifact blob."""
    return [
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.info.get("blob")
    ]


# Core ``Table`` handles for fast bulk statements (the ORM classes type them loosely).
PROJECT = cast(Table, ProjectRow.__table__)
ENVIRONMENT = cast(Table, EnvironmentRow.__table__)
RUN = cast(Table, RunRow.__table__)
PARAM = cast(Table, ParamRow.__table__)
TAG = cast(Table, TagRow.__table__)
METRIC = cast(Table, MetricRow.__table__)
LATEST_METRIC = cast(Table, LatestMetricRow.__table__)
RUN_ARTIFACT = cast(Table, RunArtifactRow.__table__)
NOTE = cast(Table, NoteRow.__table__)
LINEAGE_EDGE = cast(Table, LineageEdgeRow.__table__)
DATASET = cast(Table, DatasetRow.__table__)
DATASET_VERSION = cast(Table, DatasetVersionRow.__table__)
DATASET_SCHEMA = cast(Table, DatasetSchemaRow.__table__)
PIPELINE_RUN = cast(Table, PipelineRunRow.__table__)
STEP_RUN = cast(Table, StepRunRow.__table__)
STEP_OUTPUT = cast(Table, StepOutputRow.__table__)
APPROVAL = cast(Table, ApprovalRow.__table__)
MODEL = cast(Table, ModelRow.__table__)
MODEL_VERSION = cast(Table, ModelVersionRow.__table__)
MODEL_ALIAS = cast(Table, ModelAliasRow.__table__)
ALIAS_EVENT = cast(Table, AliasEventRow.__table__)
POLICY_RESULT = cast(Table, PolicyResultRow.__table__)
DEPLOYMENT = cast(Table, DeploymentRow.__table__)
DEPLOYMENT_REVISION = cast(Table, DeploymentRevisionRow.__table__)
PREDICTION_SEGMENT = cast(Table, PredictionSegmentRow.__table__)
FEEDBACK = cast(Table, FeedbackRow.__table__)
FEEDBACK_EVENT = cast(Table, FeedbackEventRow.__table__)
SERVING_SECRET = cast(Table, ServingSecretRow.__table__)


class ModelEventRow(Base):
    """A change to a model's gates or housekeeping: who, when, what and why.

    ``action`` is ``policy_set`` (``policy`` holds the checks, ``policy_text`` the
    text given, ``revision`` counts the model's policy changes), ``policy_clear``
    (a deliberate removal of every check, with its ``reason``), ``archive`` or
    ``unarchive`` of the version ``version_id`` (``status_before`` is what an
    unarchive restores).
    """

    __tablename__ = "model_event"
    __table_args__ = (Index("ix_model_event_model", "model_id", "id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))
    action: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int | None] = mapped_column(Integer)
    policy: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    policy_text: Mapped[str | None] = mapped_column(Text)
    status_before: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    at: Mapped[int] = mapped_column(BigInteger)


MODEL_EVENT = cast(Table, ModelEventRow.__table__)


class MonitorRow(Base):
    """A stored monitor: what it watches, against what, which checks, how it alerts.

    ``spec`` is the monitor's configuration as JSON (``loopml.monitoring.MonitorSpec``);
    ``schedule`` its cron text, kept apart so a scheduler can list due monitors.
    """

    __tablename__ = "monitor"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    name: Mapped[str] = mapped_column(String(KEY_LENGTH))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    schedule: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class MonitorResultRow(Base):
    """One run of a monitor. The whole result (every check's detail) is the JSON blob
    ``digest`` in the artifact store; its checks' numbers are also rows of ``monitor_check``.
    """

    __tablename__ = "monitor_result"
    __table_args__ = (Index("ix_monitor_result_monitor", "monitor_id", "started_at"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitor.id"))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(Text)
    current: Mapped[str] = mapped_column(Text)
    reference_rows: Mapped[int] = mapped_column(BigInteger)
    current_rows: Mapped[int] = mapped_column(BigInteger)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64), info={"blob": True})


class MonitorCheckRow(Base):
    """One check of one monitor run: the time series ``loopml monitor history`` reads."""

    __tablename__ = "monitor_check"
    __table_args__ = (
        Index("ix_monitor_check_series", "monitor_id", "check", "column", "at"),
        Index("ix_monitor_check_result", "result_id"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("monitor_result.id"))
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitor.id"))
    at: Mapped[int] = mapped_column(BigInteger)
    check: Mapped[str] = mapped_column(String(32))
    column: Mapped[str] = mapped_column(String(KEY_LENGTH))
    method: Mapped[str] = mapped_column(String(64))
    segment: Mapped[str] = mapped_column(String(KEY_LENGTH))
    statistic: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))


class MonitorAlertRow(Base):
    """An alert: opened when a check of a monitor goes to ``alert``, resolved when it is
    judged ``ok`` again. ``open_key`` is set while the alert fires and cleared when it is
    resolved; being unique, it keeps at most one open alert per monitor and check.
    """

    __tablename__ = "monitor_alert"
    __table_args__ = (Index("ix_monitor_alert_monitor", "monitor_id", "opened_at"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitor.id"))
    open_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    check: Mapped[str] = mapped_column(String(32))
    column: Mapped[str] = mapped_column(String(KEY_LENGTH))
    method: Mapped[str] = mapped_column(String(64))
    segment: Mapped[str] = mapped_column(String(KEY_LENGTH))
    state: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[int] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    first_result_id: Mapped[int] = mapped_column(ForeignKey("monitor_result.id"))
    last_result_id: Mapped[int] = mapped_column(ForeignKey("monitor_result.id"))
    statistic: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    acked_at: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    ack_note: Mapped[str | None] = mapped_column(Text)


class MonitorReferenceRow(Base):
    """A cached sketch of a reference (a dataset version's columns), so monitors do not
    re-read the reference each run. ``key`` says what was sketched and how."""

    __tablename__ = "monitor_reference"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    digest: Mapped[str] = mapped_column(String(64), info={"blob": True})
    rows: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


MONITOR = cast(Table, MonitorRow.__table__)
MONITOR_RESULT = cast(Table, MonitorResultRow.__table__)
MONITOR_CHECK = cast(Table, MonitorCheckRow.__table__)
MONITOR_ALERT = cast(Table, MonitorAlertRow.__table__)
MONITOR_REFERENCE = cast(Table, MonitorReferenceRow.__table__)


# The automation tables live in their own module (this one grew past 900 lines); they
# are imported here, after Base, so ``loopml.store.tables`` names them like any other.
from loopml.store._tables_automation import (  # noqa: E402
    AUTOMATION,
    AUTOMATION_ATTEMPT,
    AUTOMATION_STEP,
    SCHEDULER_LEASE,
    TRIGGER,
    TRIGGER_EVALUATION,
    TRIGGER_EVENT,
    TRIGGER_FIRING,
    SchedulerLeaseRow,
    TriggerEvaluationRow,
    TriggerEventRow,
    TriggerFiringRow,
    TriggerRow,
)
