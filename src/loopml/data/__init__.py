"""Versioned, content-addressed datasets with schemas, expectations and profiles.

Example:
    >>> import loopml.data
    >>> v1 = loopml.data.register("credit", frame, key=["id"])       # doctest: +SKIP
    >>> report = loopml.data.validate("delivery.csv", against="credit@latest")  # doctest: +SKIP
    >>> train = loopml.data.load("credit:1")                            # doctest: +SKIP
    >>> loopml.data.delete("credit:1")                                   # doctest: +SKIP
"""

from __future__ import annotations

from loopml.data._api import (
    as_arrow,
    as_polars,
    datasets,
    delete,
    diff,
    get,
    get_client,
    get_schema,
    load,
    register,
    report,
    restore,
    save_schema,
    split,
    validate,
    versions,
)
from loopml.data._checks import register_check
from loopml.data._client import DataClient
from loopml.data._diff import ProfileDiff
from loopml.data._expect import expect, expectations_from_yaml, expectations_to_yaml
from loopml.data._expectations import Expectation
from loopml.data._profile import ColumnProfile, Histogram, Profile
from loopml.data._records import Dataset, DatasetDeletion, DatasetVersion, VersionReference
from loopml.data._report import CheckResult, SchemaDiff, ValidationReport
from loopml.data._schema import ColumnSchema, DatasetSchema, infer_schema

__all__ = [
    "CheckResult",
    "ColumnProfile",
    "ColumnSchema",
    "DataClient",
    "Dataset",
    "DatasetDeletion",
    "DatasetSchema",
    "DatasetVersion",
    "Expectation",
    "Histogram",
    "Profile",
    "ProfileDiff",
    "SchemaDiff",
    "ValidationReport",
    "VersionReference",
    "as_arrow",
    "as_polars",
    "datasets",
    "delete",
    "diff",
    "expect",
    "expectations_from_yaml",
    "expectations_to_yaml",
    "get",
    "get_client",
    "get_schema",
    "infer_schema",
    "load",
    "register",
    "register_check",
    "report",
    "restore",
    "save_schema",
    "split",
    "validate",
    "versions",
]
