"""``loopml.models``: register, evaluate, approve, promote and load model versions.

This module is the model registry's public face for scripts and notebooks: it
re-exports :mod:`loopml.registry`'s public names, so ``import loopml.models``,
``from loopml.models import register`` and ``loopml.models.register`` all reach
the same functions. Importing it loads the registry (SQLAlchemy and friends);
``import loopml`` alone does not.

Example:
    >>> from loopml.models import load, register
    >>> version = register(clf, "credit", input_example=X[:5])  # doctest: +SKIP
    >>> load("credit@champion").predict(X)                       # doctest: +SKIP
"""

from __future__ import annotations

from loopml.registry import (
    AliasEvent,
    Approvals,
    BeatsChampion,
    CheckOutcome,
    ColumnSpec,
    DataQuality,
    EvaluationResult,
    Fairness,
    Latency,
    LoadedModel,
    MetricThreshold,
    Model,
    ModelEvent,
    ModelVersion,
    Policy,
    PolicyResult,
    RegistryClient,
    Signature,
    alias_history,
    approve,
    archive,
    clear_policy,
    evaluate,
    get,
    get_client,
    infer_signature,
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
