"""How dataset versions and validation reports show: one-line reprs, escaped HTML tables."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import loopml.data
from display_support import EVIL, check_html, check_repr
from loopml.data import DatasetVersion, ValidationReport
from loopml.errors import DataValidationError


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {f"x{i}": rng.normal(size=rows) for i in range(6)}
    return pd.DataFrame({"id": range(rows), **columns, EVIL: ["a", "b"] * (rows // 2)})


def test_a_dataset_versions_repr_is_short_and_its_html_escaped(fluent_store: str) -> None:
    version = loopml.data.register("credit", _frame(1000), key=["id"], description=EVIL)
    assert isinstance(version, DatasetVersion)

    assert len(repr(dataclasses.asdict(version))) > 2000  # what the default repr printed
    check_repr(repr(version), "<DatasetVersion credit:1 1,000 rows x 8 cols sha256:", "…>")
    text = check_html(
        version._repr_html_(), "DatasetVersion credit:1", "1,000", "8", "Columns (8)", "x0"
    )
    assert f"sha256:{version.content_hash}" in text
    assert sum(t.startswith("<script>alert") for t in text) == 2  # description, column name
    assert loopml.data.get("credit:1") == dataclasses.replace(version, is_new=False)


def test_a_quarantined_version_says_so_in_its_repr(fluent_store: str) -> None:
    loopml.data.register("credit", _frame(100), key=["id"])
    shifted = _frame(100, seed=1).assign(x0=lambda f: f.x0 * 1000)
    with pytest.raises(DataValidationError):
        loopml.data.register("credit", shifted, key=["id"], strict=True)
    version = loopml.data.get("credit:2")

    assert version.status == "quarantined"
    check_repr(repr(version), "<DatasetVersion credit:2 quarantined 100 rows x 8 cols")
    check_html(version._repr_html_(), "quarantined", "failed")


def test_a_validation_reports_repr_names_its_failures_and_its_html_lists_checks(
    fluent_store: str,
) -> None:
    loopml.data.register("credit", _frame(100), key=["id"])
    good = loopml.data.validate(_frame(100), against="credit")
    bad = loopml.data.validate(
        _frame(100).assign(x0=lambda f: f.x0 * 1000).drop(columns=["x5"]), against="credit"
    )
    assert isinstance(bad, ValidationReport)

    check_repr(repr(good), f"<ValidationReport passed {len(good.checks)} checks, 100 rows")
    failed = len(bad.failed_checks)
    check_repr(repr(bad), f"<ValidationReport failed {failed} of {len(bad.checks)} checks (")
    text = check_html(bad._repr_html_(), "ValidationReport", f"{failed} failed", "x5", "FAILED")
    # Failing checks come first.
    outcomes = [t for t in text if t in ("passed", "FAILED")]
    assert outcomes == sorted(outcomes)
    assert ValidationReport.from_dict(bad.to_dict()) == bad
