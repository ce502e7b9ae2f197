"""The domain-classifier multivariate drift check: joint changes, controls, sampling, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from loopml.errors import InsufficientData, InvalidParameter
from loopml.monitoring import CheckResult
from loopml.monitoring._multivariate import (
    MAX_CATEGORIES,
    MIN_ROWS,
    delong_interval,
    domain_classifier_drift,
)

ROWS = 4_000


def correlated(rows: int, rho: float, seed: int) -> pd.DataFrame:
    """Two standard normal columns with correlation ``rho``, a noise column and a category."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=rows)
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "noise": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", "blue"], size=rows),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return correlated(ROWS, 0.8, seed=1)


@pytest.fixture(scope="module")
def flipped() -> pd.DataFrame:
    return correlated(ROWS, -0.8, seed=2)


@pytest.fixture(scope="module")
def control() -> pd.DataFrame:
    return correlated(ROWS, 0.8, seed=3)


@pytest.fixture(scope="module")
def flipped_result(reference: pd.DataFrame, flipped: pd.DataFrame) -> CheckResult:
    return domain_classifier_drift(reference, flipped)


def test_a_correlation_that_flips_sign_is_drift_no_single_column_shows(
    reference: pd.DataFrame, flipped: pd.DataFrame, flipped_result: CheckResult
) -> None:
    # The marginals are the same: a per-column test sees nothing.
    for column in ("x", "y", "noise"):
        assert ks_2samp(reference[column], flipped[column]).pvalue > 0.01
    result = flipped_result
    assert result.check == "multivariate_drift"
    assert result.method == "domain_auc"
    assert result.status == "alert"
    assert result.statistic is not None and result.statistic > 0.75
    assert result.interval is not None
    assert result.threshold is not None and result.interval[0] > result.threshold
    assert result.p_value is not None and result.p_value < 0.025
    assert "can tell" in result.message


def test_no_shift_control_is_ok(reference: pd.DataFrame, control: pd.DataFrame) -> None:
    result = domain_classifier_drift(reference, control)
    assert result.status == "ok"
    assert result.interval is not None
    assert result.interval[0] <= 0.5 <= result.interval[1] + 0.01
    assert result.p_value is not None and result.p_value > 0.5
    assert "cannot tell" in result.message


def test_detail_follows_the_conventions_and_round_trips(flipped_result: CheckResult) -> None:
    detail = flipped_result.detail
    assert detail["auc"] == flipped_result.statistic
    assert len(detail["folds"]) == 5
    assert all(0.5 < auc <= 1.0 for auc in detail["folds"])
    assert detail["rows"] == 2 * ROWS
    assert (detail["reference_rows"], detail["current_rows"]) == (ROWS, ROWS)
    assert detail["columns"] == ["x", "y", "noise", "colour"]
    assert detail["skipped"] == []
    assert CheckResult.from_dict(json.loads(json.dumps(flipped_result.to_dict()))) == (
        flipped_result
    )


def test_arrow_tables_give_the_same_result_as_pandas(
    reference: pd.DataFrame, flipped: pd.DataFrame, flipped_result: CheckResult
) -> None:
    as_arrow = domain_classifier_drift(
        pa.Table.from_pandas(reference, preserve_index=False),
        pa.Table.from_pandas(flipped, preserve_index=False),
    )
    assert as_arrow == flipped_result


def test_samples_are_balanced_capped_and_deterministic(
    reference: pd.DataFrame, control: pd.DataFrame
) -> None:
    smaller = control.iloc[:1_500]
    first = domain_classifier_drift(reference, smaller, sample=1_000, folds=3, seed=7)
    again = domain_classifier_drift(reference, smaller, sample=1_000, folds=3, seed=7)
    other_seed = domain_classifier_drift(reference, smaller, sample=1_000, folds=3, seed=8)
    assert first == again
    assert first.detail["rows"] == 2_000
    assert len(first.detail["folds"]) == 3
    assert other_seed.statistic != first.statistic
    uncapped = domain_classifier_drift(reference, smaller, folds=3)
    assert uncapped.detail["rows"] == 3_000


def test_a_change_in_missing_rate_alone_is_drift(reference: pd.DataFrame) -> None:
    rng = np.random.default_rng(4)
    current = correlated(ROWS, 0.8, seed=5)
    current.loc[rng.random(ROWS) < 0.3, "noise"] = np.nan
    result = domain_classifier_drift(reference, current, columns=["noise", "colour"])
    assert result.status == "alert"
    assert result.detail["columns"] == ["noise", "colour"]


def test_a_category_only_the_current_data_has_is_drift(reference: pd.DataFrame) -> None:
    current = correlated(ROWS, 0.8, seed=6)
    current.loc[current.index[: ROWS // 4], "colour"] = "purple"
    result = domain_classifier_drift(reference, current, columns=["colour"])
    assert result.status == "alert"


def test_many_categories_and_pandas_categoricals_are_encoded_safely() -> None:
    rng = np.random.default_rng(8)
    names = np.array([f"c{i}" for i in range(3 * MAX_CATEGORIES)])
    reference = pd.DataFrame({"city": pd.Categorical(rng.choice(names, size=3_000))})
    current = pd.DataFrame({"city": pd.Categorical(rng.choice(names, size=3_000))})
    reference.loc[::7, "city"] = None
    assert domain_classifier_drift(reference, current).status == "ok"
    # The same categories, the current rows drawn from a tenth of them: drift.
    narrow = pd.DataFrame({"city": rng.choice(names[: len(names) // 10], size=3_000)})
    assert domain_classifier_drift(reference, narrow).status == "alert"


def test_columns_of_other_types_are_skipped_by_default_and_refused_by_name(
    reference: pd.DataFrame, control: pd.DataFrame
) -> None:
    stamps = pd.date_range("2026-01-01", periods=ROWS, freq="s")
    ref = reference.assign(at=stamps, flag=reference["x"] > 0)
    cur = control.assign(at=stamps + pd.Timedelta(days=30), flag=control["x"] > 0)
    result = domain_classifier_drift(ref, cur, folds=3)
    assert result.status == "ok"
    assert result.detail["skipped"] == ["at"]
    assert "flag" in result.detail["columns"]
    with pytest.raises(InvalidParameter, match=r"must name numeric.*'at'"):
        domain_classifier_drift(ref, cur, columns=["x", "at"])


def test_too_few_rows_is_insufficient_data(reference: pd.DataFrame) -> None:
    with pytest.raises(InsufficientData, match=r"at least 50 rows.*current has 49") as caught:
        domain_classifier_drift(reference, reference.iloc[: MIN_ROWS - 1])
    assert (caught.value.needed, caught.value.got) == (MIN_ROWS, MIN_ROWS - 1)
    with pytest.raises(InsufficientData, match="reference has 0"):
        domain_classifier_drift(reference.iloc[:0], reference)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample": 10}, r"'sample' parameter .* int in the range \[50, 500000\]. Got 10"),
        ({"sample": 1.5}, r"'sample' parameter .* Got 1.5 instead"),
        ({"folds": 1}, r"'folds' parameter .* \[2, 20\]. Got 1 instead"),
        ({"folds": True}, r"'folds' parameter .* Got True instead"),
        ({"seed": -1}, r"'seed' parameter .* Got -1 instead"),
        ({"threshold": 0.5}, r"'threshold' parameter .* \(0.5, 1.0\). Got 0.5 instead"),
        ({"threshold": "high"}, r"'threshold' parameter .* Got 'high' instead"),
        ({"columns": "x"}, r"'columns' parameter .* sequence of column names"),
        ({"columns": ["x", "nope"]}, r"must name columns of both tables. Got \['nope'\]"),
        ({"columns": []}, r"at least one numeric"),
    ],
)
def test_bad_parameters_are_refused_with_a_message_naming_them(
    reference: pd.DataFrame, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        domain_classifier_drift(reference, reference, **kwargs)  # type: ignore[arg-type]


def test_inputs_that_are_not_tables_are_refused(reference: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameter, match=r"'current' parameter .* Got dict instead"):
        domain_classifier_drift(reference, {"x": [1.0]})  # type: ignore[arg-type]
    mixed = pd.DataFrame({"x": [1.0] * 60, "odd": ["a", 1] * 30})
    with pytest.raises(InvalidParameter, match="one type per column"):
        domain_classifier_drift(mixed, mixed)


@given(
    st.lists(st.integers(0, 5), min_size=2, max_size=40),
    st.lists(st.integers(0, 5), min_size=2, max_size=40),
)
def test_delong_auc_equals_the_rank_auc_and_its_interval_contains_it(
    positive: list[int], negative: list[int]
) -> None:
    pos, neg = np.array(positive, dtype=float), np.array(negative, dtype=float)
    auc, low, high = delong_interval(pos, neg)
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    assert auc == pytest.approx(roc_auc_score(labels, np.r_[pos, neg]))
    assert 0.0 <= low <= auc <= high <= 1.0


def test_delong_interval_covers_the_true_auc_about_95_percent_of_the_time() -> None:
    # Scores N(1, 1) against N(0, 1): the true AUC is Φ(1/√2) = 0.7602.
    rng = np.random.default_rng(9)
    covered = 0
    for _ in range(400):
        _, low, high = delong_interval(rng.normal(1, 1, 200), rng.normal(0, 1, 200))
        covered += low <= 0.7602 <= high
    assert 0.91 <= covered / 400 <= 0.99


def test_importing_the_check_does_not_import_scikit_learn() -> None:
    code = (
        "import sys, loopml.monitoring._multivariate; "
        "print('sklearn' in sys.modules, 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_column_of_another_kind_in_the_current_data_is_refused(
    reference: pd.DataFrame,
) -> None:
    as_text = reference.assign(x=reference["x"].astype(str))
    with pytest.raises(InvalidParameter, match=r"column 'x' .* the same kind on both sides"):
        domain_classifier_drift(reference, as_text)
    as_time = reference.assign(x=pd.date_range("2026-01-01", periods=ROWS, freq="s"))
    with pytest.raises(InvalidParameter, match=r"column 'x' .* Got double in the reference"):
        domain_classifier_drift(reference, as_time)


def test_infinite_values_are_compared_not_refused(reference: pd.DataFrame) -> None:
    current = correlated(ROWS, 0.8, seed=10)
    current.loc[current.index[: ROWS // 5], "noise"] = np.inf
    result = domain_classifier_drift(reference, current, columns=["noise"], folds=3)
    assert result.status == "alert"
