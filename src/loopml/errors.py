"""The one tree of loopml's errors.

Every error a user can meet derives from :class:`LoopmlError`, so one ``except``
catches them all; where a built-in exception names the same situation, the
error also derives from it (``RunNotFound`` is a ``KeyError``), so callers'
existing handlers keep working. Each docstring says who raises it.
"""

from __future__ import annotations

__all__ = [
    "AlertDeliveryFailed",
    "AlertNotFound",
    "ApprovalError",
    "ArtifactError",
    "ArtifactExists",
    "ArtifactIntegrityError",
    "ArtifactManifestError",
    "ArtifactNotFound",
    "AutomationError",
    "AutomationNotFound",
    "DataSourceError",
    "DataValidationError",
    "DatasetNotFound",
    "DatasetVersionDeleted",
    "DatasetVersionNotDeleted",
    "DatasetVersionReferenced",
    "DeploymentNotFound",
    "EmptyPolicyError",
    "EnvironmentNotCaptured",
    "FilterSyntaxError",
    "ForbiddenAddress",
    "GitBranchNotFound",
    "GitError",
    "GitFileTooLarge",
    "GitPathNotFound",
    "GitTimeout",
    "GitUnreachable",
    "InsufficientData",
    "InvalidGitSource",
    "InvalidParameter",
    "LeaseLost",
    "LoopmlError",
    "LoopmlWarning",
    "MaterializerError",
    "MetadataPathError",
    "ModelError",
    "ModelNotFound",
    "MonitorNotFound",
    "MonitoringError",
    "ParamConflict",
    "PipelineDefinitionError",
    "PipelineError",
    "PolicyWarning",
    "PortUnavailable",
    "PredictionLogUnavailable",
    "PredictionTooLarge",
    "ProjectNotFound",
    "PromotionRefused",
    "ReservedKeyError",
    "RoleNotHeld",
    "RunNotActive",
    "RunNotFound",
    "RunStateError",
    "SchemaError",
    "ServingError",
    "SettingError",
    "SignatureError",
    "StepFailed",
    "StoreError",
    "StoreNotFound",
    "StoreUnavailable",
    "StoreVersionError",
    "TagNotFound",
    "TriggerNotFound",
    "UnknownColumnError",
    "UntrustedCheckError",
    "UntrustedModelError",
    "UntrustedTypesError",
]


class LoopmlError(Exception):
    """Base of every error loopml raises on purpose."""


class SettingError(LoopmlError, ValueError):
    """Raised by ``loopml.settings`` when a ``LOOPML_*`` variable has a bad value."""


class InvalidParameter(LoopmlError, ValueError):
    """Raised by any public function given an argument it cannot accept.

    The message names the parameter, what was expected and what was got.
    """


# --- store -----------------------------------------------------------------


class StoreError(LoopmlError):
    """Base of the errors raised by the metadata store (``loopml.store``)."""


class StoreUnavailable(StoreError, ConnectionError):
    """Raised when the metadata store cannot be opened or reached.

    Unreachable database URLs, unwritable ``LOOPML_HOME`` folders and unknown
    URI schemes end here.
    """


class StoreVersionError(StoreError):
    """Raised when the database was migrated by a newer loopml than this one."""


# --- artifacts -------------------------------------------------------------


class ArtifactError(LoopmlError):
    """Base of the errors raised by the artifact store (``loopml.artifacts``)."""


class ArtifactNotFound(ArtifactError, FileNotFoundError):
    """Raised when a blob, a run artifact or a local path to log does not exist."""


class ArtifactIntegrityError(ArtifactError):
    """Raised when a blob's bytes no longer hash to its address (corruption)."""


# --- tracking --------------------------------------------------------------


class RunNotFound(LoopmlError, KeyError):
    """Raised by the tracking client when a run id is unknown."""

    def __str__(self) -> str:
        # KeyError quotes its argument; a readable message is worth more here.
        return str(self.args[0]) if self.args else "run not found"


class ProjectNotFound(LoopmlError, KeyError):
    """Raised when a call names a project that has never been used."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "project not found"


class RunNotActive(LoopmlError, RuntimeError):
    """Raised by the fluent API when a call needs an active run and none is."""


class ParamConflict(LoopmlError, ValueError):
    """Raised when a param is logged again with a different value (params are immutable)."""


class ReservedKeyError(InvalidParameter):
    """Raised when a run tag, param or metric key uses the ``loopml.`` namespace.

    Keys starting with ``loopml.`` are written by loopml itself (autolog's model
    digest, a pipeline step's cache source …); the public API refuses them so
    they cannot be forged.
    """


class FilterSyntaxError(LoopmlError, ValueError):
    """Raised by ``search_runs`` when a filter string does not parse.

    ``position`` is the 0-based offset of the offending token in ``text``.
    """

    def __init__(self, message: str, text: str, position: int) -> None:
        pointer = " " * position + "^"
        super().__init__(f"{message} at position {position}:\n  {text}\n  {pointer}")
        self.text = text
        self.position = position


# --- data ------------------------------------------------------------------


class DatasetNotFound(LoopmlError, KeyError):
    """Raised by ``loopml.data`` when a dataset name or version does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "dataset not found"


class DataSourceError(LoopmlError, ValueError):
    """Raised by ``loopml.data``, and batch scoring, when a source cannot be read.

    Unreadable, truncated or empty files, unknown formats and columns of mixed
    types end here; the message names the file and, where known, the column.
    """


class SchemaError(LoopmlError, ValueError):
    """Raised by ``loopml.data`` when a schema or expectation file does not parse or is invalid."""


class UntrustedCheckError(SchemaError, PermissionError):
    """Raised by ``loopml.data`` validation when a stored custom check names code by import path.

    Stored checks run only functions registered in the running process
    (``loopml.data.register_check``); a ``module:function`` path is imported only
    when the caller passes ``trust=True``. The message names the check and both ways out.
    """


class DataValidationError(LoopmlError, ValueError):
    """Raised by strict ``loopml.data.register`` when the data fails its checks.

    The version is kept as *quarantined*; ``report`` holds the validation report,
    ``version`` the quarantined version's reference (``name:N``) and ``existing``
    says whether that version was stored earlier (identical data registered again).
    """

    def __init__(
        self,
        message: str,
        report: object = None,
        version: str | None = None,
        existing: bool = False,
    ) -> None:
        super().__init__(message)
        self.report = report
        self.version = version
        self.existing = existing


# --- pipelines and approvals -------------------------------------------------


class PipelineError(LoopmlError):
    """Base of the errors raised by ``loopml.pipelines``."""


class PipelineDefinitionError(PipelineError, ValueError):
    """Raised before any step runs when a pipeline cannot be built or started.

    A cycle, a step called outside a pipeline, a missing or mistyped parameter, an
    unknown ``MODULE:PIPELINE`` or an executor that is not installed end here.
    """


class MaterializerError(PipelineError, TypeError):
    """Raised when a step's value cannot be stored or loaded (names the step and the type)."""


class StepFailed(PipelineError):
    """Raised by ``Pipeline.run`` when a step failed; ``run_id`` is the pipeline run."""

    def __init__(self, message: str, run_id: str, step: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step = step


class ApprovalError(LoopmlError, ValueError):
    """Raised by ``loopml.approvals`` for unknown approvals and decisions that are not allowed."""


# --- registry ------------------------------------------------------------------


class ModelError(LoopmlError):
    """Base of the errors raised by the model registry (``loopml.registry``)."""


class ModelNotFound(ModelError, KeyError):
    """Raised when a model, version or alias does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "model not found"


class SignatureError(ModelError, ValueError):
    """Raised when prediction input does not match the model's signature.

    The message names the column and the expected type.
    """


class UntrustedModelError(ModelError, PermissionError):
    """Raised when loading a flavor that executes code (pickles) that is not trusted."""


class UntrustedTypesError(UntrustedModelError):
    """Raised when a skops file (a scikit-learn model or pipeline value) names untrusted types.

    ``types`` lists the refused type names; the message says how to trust them.
    """

    def __init__(self, message: str, types: list[str] | None = None) -> None:
        super().__init__(message)
        self.types = list(types or [])


class MetadataPathError(ModelError, ValueError):
    """Raised when a model's metadata names a file outside its own verified folder."""


class PromotionRefused(ModelError):
    """Raised by ``promote`` when the version fails its promotion policy.

    ``failures`` lists the failing checks (name and reason).
    """

    def __init__(self, message: str, failures: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


# --- serving -------------------------------------------------------------------


class ServingError(LoopmlError):
    """Raised when an inference server cannot be started, reached or stopped as asked."""


class DeploymentNotFound(LoopmlError, KeyError):
    """Raised when an endpoint or one of its revisions does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "deployment not found"


# --- artifacts: materialising ----------------------------------------------------


class ArtifactExists(ArtifactError, FileExistsError):
    """Raised when a file or folder to materialise already exists.

    Raised by ``ArtifactStore.get_file``/``get_dir`` and ``download_artifact``
    (``loopml artifacts get``) unless ``overwrite`` was asked for; nothing is written.
    """


class ArtifactManifestError(ArtifactError, ValueError):
    """Raised when a stored directory manifest cannot be trusted.

    Raised by ``ArtifactStore.read_manifest``/``get_dir`` (and so every download or
    model load) before anything is written, when a manifest lists a path that would
    leave its folder (absolute, ``..``, a backslash or drive letter, NUL), the same
    path twice, a path that is both a file and a folder, two paths this file system
    cannot tell apart, or exceeds a limit (entries, path length, depth, size).
    """


# --- approvals: roles ------------------------------------------------------------


class RoleNotHeld(ApprovalError, PermissionError):
    """Raised by ``loopml.approvals`` (and the registry's ``approve``) when the current
    identity decides with a role that the approver-roles file does not give it.

    ``identity`` and ``role`` name who tried and with which role.
    """

    def __init__(self, message: str, identity: str, role: str) -> None:
        super().__init__(message)
        self.identity = identity
        self.role = role


class PredictionTooLarge(InvalidParameter):
    """Raised by the prediction log when a prediction's record exceeds the largest WAL frame.

    Nothing of such a record is logged, so the server refuses the request (413)
    instead of answering it. ``request_ids`` names the records refused.
    """

    def __init__(self, message: str, request_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.request_ids = request_ids


class PredictionLogUnavailable(LoopmlError, OSError):
    """Raised by the prediction log while it cannot write durably (a write or sync failed).

    The record is not logged; the log retries in the background and accepts
    records again once a fresh WAL file could be created and synced.
    """


class PortUnavailable(ServingError, OSError):
    """Raised by ``loopml serve`` (:func:`loopml.serving._listen.bind_socket`) when the
    address and port asked for cannot be bound: in use by another process, not an
    address of this machine, or a port this user may not bind.
    """


class EmptyPolicyError(ModelError, ValueError):
    """Raised by the registry's ``set_policy`` (and ``loopml models policy --set``) when the
    policy holds no check: an empty file, ``[]`` or only comments.

    Stored, such a policy would let any version be promoted, so it is refused;
    ``clear_policy`` (``--clear --reason``) removes a policy on purpose, recorded.
    Nothing is changed.
    """


class LoopmlWarning(UserWarning):
    """The base of loopml's warnings: something worked, but probably not as meant.

    Filter them all with ``warnings.filterwarnings("ignore", category=LoopmlWarning)``.
    """


class PolicyWarning(LoopmlWarning):
    """Warned by the registry's ``set_policy`` when a check names a metric that no version
    of the model has reported and that evaluation does not compute (a typo, often).

    The policy is stored all the same; the message names the metric, the metrics
    the versions do report and the closest of them.
    """


class UnknownColumnError(SchemaError, KeyError):
    """Raised by ``loopml.data.save_schema`` when an expectation names a column the dataset lacks.

    Such a check could only fail every validation, so nothing is saved.
    ``columns`` holds the unknown names and ``known`` the dataset's columns.
    Also raised by ``loopml.serving.prediction_rows`` for a column that is no input
    feature of the rows read (``known``: the features there are).
    """

    def __init__(self, message: str, columns: tuple[str, ...], known: tuple[str, ...]) -> None:
        super().__init__(message)
        self.columns = columns
        self.known = known

    def __str__(self) -> str:
        # KeyError would quote the message; keep it as written.
        return str(self.args[0])


class RunStateError(LoopmlError, ValueError):
    """Raised by the tracking client when a run is not in a state the operation needs.

    Deleting a run that is still running (without ``force``), restoring a run that
    is not deleted, marking a finished run failed: the message names the run, its
    state and what to do instead. Nothing is changed.
    """


class TagNotFound(LoopmlError, KeyError):
    """Raised by the tracking client's ``delete_tag`` when the run has no such tag."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "tag not found"


class EnvironmentNotCaptured(LoopmlError, LookupError):
    """Raised by the tracking client's ``get_environment`` for a run with no package list.

    Runs started with ``capture_context=False`` or ``LOOPML_CAPTURE_PACKAGES=0``
    have none.
    """


class DatasetVersionDeleted(DatasetNotFound):
    """Raised by ``loopml.data`` when a deleted dataset version's data is asked for
    (``load``, ``as_arrow``, ``split``, a ``parents`` reference) or it is deleted again.

    Its metadata stays readable (``get``, ``show``, ``diff``); the message says when it
    was deleted and how to restore it. ``ref`` is ``name:N``, ``deleted_at`` in ms.
    A subclass of :class:`DatasetNotFound`: for using data, a deleted version is gone.
    """

    def __init__(self, message: str, *, ref: str, deleted_at: int) -> None:
        super().__init__(message)
        self.ref = ref
        self.deleted_at = deleted_at


class DatasetVersionNotDeleted(LoopmlError, ValueError):
    """Raised by ``loopml.data.restore`` (``loopml data restore``) when the version is live.

    Nothing is changed. ``ref`` is the version, ``name:N``.
    """

    def __init__(self, message: str, *, ref: str) -> None:
        super().__init__(message)
        self.ref = ref


class DatasetVersionReferenced(LoopmlWarning):
    """Warned by ``loopml.data.delete`` when live runs, pipeline steps, model versions or
    derived dataset versions still refer to the deleted version through lineage.

    The version is deleted all the same; garbage collection keeps its data while
    they live. The returned :class:`~loopml.data.DatasetDeletion` lists them.
    """


class StoreNotFound(StoreError):
    """Raised when a read finds no metadata store where the settings point.

    Reading (``loopml runs list``, ``loopml.search_runs``, ``loopml.get_run`` …)
    never creates a store: a missing SQLite file under ``LOOPML_HOME`` (or named by
    ``LOOPML_STORE_URI``) raises this, and nothing is created. Writes create the
    store as before. ``uri`` is the store URI that was looked at.
    """

    def __init__(self, message: str, uri: str = "") -> None:
        super().__init__(message)
        self.uri = uri


class MonitoringError(LoopmlError):
    """The base of the errors raised by ``loopml.monitoring`` (monitors, checks, alerts)."""


class MonitorNotFound(MonitoringError, KeyError):
    """Raised by ``loopml.monitoring`` when no monitor has the name asked for.

    The message names the closest monitor, if any.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "monitor not found"


class AlertNotFound(MonitoringError, KeyError):
    """Raised by ``loopml.monitoring.ack_alert`` (``loopml alerts ack``) for an unknown alert id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "alert not found"


class InsufficientData(MonitoringError, ValueError):
    """Raised by a monitoring check called directly on data too small to judge.

    An empty window, a reference without rows, fewer labelled rows than the check's
    minimum. A stored monitor does not raise it: its result gets the status
    ``no_data`` instead, never a silent pass. ``needed`` and ``got`` are row counts.
    """

    def __init__(self, message: str, *, needed: int = 0, got: int = 0) -> None:
        super().__init__(message)
        self.needed = needed
        self.got = got


class ForbiddenAddress(MonitoringError, PermissionError):
    """Raised by an alert webhook whose URL is not http(s), or resolves to a loopback,
    link-local, private or otherwise reserved address that the settings do not allow
    (``LOOPML_WEBHOOK_ALLOW_PRIVATE``). Nothing is sent; ``url`` is the URL refused.
    """

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class AlertDeliveryFailed(MonitoringError, ConnectionError):
    """Raised by an alert sink (``loopml.monitoring.WebhookSink``, ``CommandSink``) that
    could not deliver an event: the webhook kept failing after its retries or answered
    with a status that retrying cannot fix, or the command failed, timed out or could
    not start. ``attempts`` is how many times delivery was tried.
    """

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


# --- automation ----------------------------------------------------------------


class AutomationError(LoopmlError):
    """The base of the errors raised by ``loopml.automation`` (triggers, the scheduler)."""


class TriggerNotFound(AutomationError, KeyError):
    """Raised by ``loopml.automation`` (``loopml triggers ...``) when no trigger has the
    name asked for in the project. The message names the closest trigger, if any."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "trigger not found"


class AutomationNotFound(AutomationError, KeyError):
    """Raised by ``loopml.automation`` (:class:`AutomationStore`) when no automation has
    the name asked for in the project. The message names the closest one, if any."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "automation not found"


class LeaseLost(AutomationError):
    """Raised inside a scheduler that no longer holds the scheduler lease (another one
    took it over after it expired): what it was about to write is not written."""


class GitError(AutomationError):
    """The base of the errors raised by the git watcher behind git triggers
    (``loopml.automation._git``). ``url`` is the repository's URL with any credentials
    redacted; messages name it and end with the last line git wrote, when git ran.
    """

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class InvalidGitSource(GitError, ValueError):
    """Raised by ``GitSource`` and the git watcher's functions for input they refuse before
    running git: a URL that is not a local path or an https/http/ssh/git/file/scp-like
    address (transport helpers such as ``ext::``, option-like values, control characters),
    a branch name git would refuse, a bad glob pattern, commit id or file path.
    """


class GitUnreachable(GitError, ConnectionError):
    """Raised by the git watcher when the repository cannot be listed or fetched (no such
    repository, connection refused, authentication needed, a commit the server lacks).
    """


class GitTimeout(GitUnreachable, TimeoutError):
    """Raised by the git watcher when git did not finish within its timeout (git and the
    processes it started are killed), or another process held the cache that long.
    """


class GitBranchNotFound(GitError, LookupError):
    """Raised by the git watcher when the repository has no branch of the name watched."""


class GitPathNotFound(GitError, FileNotFoundError):
    """Raised by the git watcher's ``read_file`` when the commit has no regular file at the
    path (missing, a folder, a symbolic link or a submodule).
    """


class GitFileTooLarge(GitError, ValueError):
    """Raised by the git watcher's ``read_file`` when the file is larger than the limit
    asked for; nothing of it is read.
    """
