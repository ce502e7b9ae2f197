"""The model registry: versions, flavors, signatures, aliases, policies, approvals.

Scripts reach it as ``loopml.models`` (:mod:`loopml.models` re-exports this module's
public names).

Example:
    >>> import loopml
    >>> version = loopml.models.register(clf, "credit", input_example=X[:5])  # doctest: +SKIP
    >>> loopml.models.load("credit@champion").predict(X)                     # doctest: +SKIP
"""

from __future__ import annotations

from loopml.registry._api import (
    alias_history,
    approve,
    archive,
    clear_policy,
    evaluate,
    get,
    get_client,
    list_models,
    load,
    policy_history,
    promote,
    register,
    reject,
    rollback,
    set_policy,
    unarchive,
    versions,
)
from loopml.registry._client import RegistryClient
from loopml.registry._loaded import LoadedModel
from loopml.registry._policy import (
    Approvals,
    BeatsChampion,
    CheckOutcome,
    DataQuality,
    Fairness,
    Latency,
    MetricThreshold,
    Policy,
)
from loopml.registry._records import (
    AliasEvent,
    EvaluationResult,
    Model,
    ModelEvent,
    ModelVersion,
    PolicyResult,
)
from loopml.registry._signature import ColumnSpec, Signature, infer_signature

__all__ = [
    "AliasEvent",
    "Approvals",
    "BeatsChampion",
    "CheckOutcome",
    "ColumnSpec",
    "DataQuality",
    "EvaluationResult",
    "Fairness",
    "Latency",
    "LoadedModel",
    "MetricThreshold",
    "Model",
    "ModelEvent",
    "ModelVersion",
    "Policy",
    "PolicyResult",
    "RegistryClient",
    "Signature",
    "alias_history",
    "approve",
    "archive",
    "clear_policy",
    "evaluate",
    "get",
    "get_client",
    "infer_signature",
    "list_models",
    "load",
    "policy_history",
    "promote",
    "register",
    "reject",
    "rollback",
    "set_policy",
    "unarchive",
    "versions",
]
