"""Versioned, content-addressed datasets with schemas, expectations and profiles.

Example:
    >>> import loopml.data
    >>> v1 = loopml.data.register("credit", frame, key=["id"])       # doctest: +SKIP
    >>> report = loopml.data.validate("delivery.csv", against="credit@latest")  # doctest: +SKIP
    >>> train = loopml.data.load("credit:1")                            # doctest: +SKIP
    >>> loopml.data.delete("credit:1")                                   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

if TYPE_CHECKING:
    from loopml.data._api import as_arrow as as_arrow
    from loopml.data._api import as_polars as as_polars
    from loopml.data._api import datasets as datasets
    from loopml.data._api import delete as delete
    from loopml.data._api import diff as diff
    from loopml.data._api import get as get
    from loopml.data._api import get_client as get_client
    from loopml.data._api import get_schema as get_schema
    from loopml.data._api import load as load
    from loopml.data._api import register as register
    from loopml.data._api import report as report
    from loopml.data._api import restore as restore
    from loopml.data._api import save_schema as save_schema
    from loopml.data._api import split as split
    from loopml.data._api import validate as validate
    from loopml.data._api import versions as versions
    from loopml.data._checks import register_check as register_check
    from loopml.data._client import DataClient as DataClient
    from loopml.data._diff import ProfileDiff as ProfileDiff
    from loopml.data._expect import expect as expect
    from loopml.data._expect import expectations_from_yaml as expectations_from_yaml
    from loopml.data._expect import expectations_to_yaml as expectations_to_yaml
    from loopml.data._expectations import Expectation as Expectation
    from loopml.data._profile import ColumnProfile as ColumnProfile
    from loopml.data._profile import Histogram as Histogram
    from loopml.data._profile import Profile as Profile
    from loopml.data._records import Dataset as Dataset
    from loopml.data._records import DatasetDeletion as DatasetDeletion
    from loopml.data._records import DatasetVersion as DatasetVersion
    from loopml.data._records import VersionReference as VersionReference
    from loopml.data._report import CheckResult as CheckResult
    from loopml.data._report import SchemaDiff as SchemaDiff
    from loopml.data._report import ValidationReport as ValidationReport
    from loopml.data._schema import ColumnSchema as ColumnSchema
    from loopml.data._schema import DatasetSchema as DatasetSchema
    from loopml.data._schema import infer_schema as infer_schema

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

# Each name is imported from its module on first use: the monitoring sketches need
# only loopml.data._sketches, not the dataset store, its SQL tables and pandas.
_ORIGINS = {
    "_api": (
        "as_arrow",
        "as_polars",
        "datasets",
        "delete",
        "diff",
        "get",
        "get_client",
        "get_schema",
        "load",
        "register",
        "report",
        "restore",
        "save_schema",
        "split",
        "validate",
        "versions",
    ),
    "_checks": ("register_check",),
    "_client": ("DataClient",),
    "_diff": ("ProfileDiff",),
    "_expect": (
        "expect",
        "expectations_from_yaml",
        "expectations_to_yaml",
    ),
    "_expectations": ("Expectation",),
    "_profile": (
        "ColumnProfile",
        "Histogram",
        "Profile",
    ),
    "_records": (
        "Dataset",
        "DatasetDeletion",
        "DatasetVersion",
        "VersionReference",
    ),
    "_report": (
        "CheckResult",
        "SchemaDiff",
        "ValidationReport",
    ),
    "_schema": (
        "ColumnSchema",
        "DatasetSchema",
        "infer_schema",
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, _ORIGINS)
