"""Attribution drift: a ranking flip alerts, a no-change control passes (SHAP, permutations)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import InsufficientData, InvalidParameter, UnknownColumnError
from loopml.monitoring import CheckResult, MonitorResult
from loopml.monitoring._attribution import MIN_ROWS, attribution_drift, ndcg

FEATURES = ["x0", "x1", "x2", "x3"]


def _window(n: int, scales: tuple[float, ...], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f: rng.normal(0.0, s, n) for f, s in zip(FEATURES, scales, strict=True)})


# The model uses x0 and x3 alike; which one matters depends on which one varies. On the
# reference x0 varies and x3 hardly does; in the drifted window it is the other way round.
REFERENCE = (1.0, 0.4, 0.2, 0.05)
DRIFTED = (0.05, 0.4, 0.2, 1.0)


@pytest.fixture(scope="module")
def train() -> tuple[pd.DataFrame, pd.Series[Any]]:
    x = _window(2000, (1.0, 1.0, 1.0, 1.0), seed=0)
    return x, 2 * x["x0"] + x["x1"] + 0.5 * x["x2"] + 2 * x["x3"]


@pytest.fixture(scope="module")
def regressor(train: tuple[pd.DataFrame, pd.Series[Any]]) -> RandomForestRegressor:
    x, y = train
    return RandomForestRegressor(n_estimators=15, max_depth=6, random_state=0).fit(x, y)


@pytest.fixture(scope="module")
def classifier(train: tuple[pd.DataFrame, pd.Series[Any]]) -> RandomForestClassifier:
    x, y = train
    return RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(x, y > 0)


@pytest.fixture(scope="module")
def windows() -> dict[str, pd.DataFrame]:
    return {
        "reference": _window(3000, REFERENCE, seed=1),
        "same": _window(3000, REFERENCE, seed=2),
        "drifted": _window(3000, DRIFTED, seed=3),
    }


@pytest.mark.parametrize("method", ["shap", "permutation"])
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_a_ranking_flip_alerts_and_a_control_passes(
    request: pytest.FixtureRequest, windows: dict[str, pd.DataFrame], method: str, kind: str
) -> None:
    model = request.getfixturevalue(kind)
    kwargs: dict[str, Any] = {"method": method, "sample": 500}
    control = attribution_drift(model, windows["reference"], windows["same"], **kwargs)
    drifted = attribution_drift(model, windows["reference"], windows["drifted"], **kwargs)
    score, flip = control[0], drifted[0]
    assert (score.check, score.method, score.column) == ("attribution_drift", "ndcg", "")
    assert score.status == "ok" and score.statistic is not None and score.statistic >= 0.9
    assert flip.status == "alert" and flip.statistic is not None and flip.statistic < 0.9
    assert flip.threshold == 0.9 and flip.interval is not None
    assert flip.detail["method"] == method
    assert flip.detail["reference_ranking"][0] == "x0"
    assert flip.detail["current_ranking"][0] == "x3"
    assert "'x0' on the reference, 'x3' now" in flip.message


def test_per_feature_results_hold_the_share_change_and_both_rankings(
    regressor: RandomForestRegressor, windows: dict[str, pd.DataFrame]
) -> None:
    results = attribution_drift(regressor, windows["reference"], windows["drifted"], sample=500)
    per_feature = {r.column: r for r in results[1:]}
    assert set(per_feature) == set(FEATURES)
    x0, x3 = per_feature["x0"], per_feature["x3"]
    assert x0.method == "attribution_change" and x0.status == "ok" and x0.threshold is None
    assert x0.statistic is not None and x0.statistic < -0.5  # x0 lost most of its share
    assert x3.statistic is not None and x3.statistic > 1.0
    share_before, share_now = x3.detail["reference_share"], x3.detail["current_share"]
    assert x3.statistic == pytest.approx((share_now - share_before) / share_before)
    assert (x3.detail["reference_rank"], x3.detail["current_rank"]) == (
        x3.detail["reference_ranking"].index("x3") + 1,
        1,
    )
    assert sorted(x3.detail["current_ranking"]) == sorted(FEATURES)
    assert "reference" not in x3.detail  # the importance maps are the ndcg result's
    assert set(results[0].detail["reference"]) == set(results[0].detail["current"]) == set(FEATURES)


def test_auto_uses_shap_for_tree_models_and_permutations_otherwise(
    regressor: RandomForestRegressor, windows: dict[str, pd.DataFrame]
) -> None:
    ref, cur = windows["reference"], windows["same"]
    assert attribution_drift(regressor, ref, cur, sample=200)[0].detail["method"] == "shap"
    x = ref.assign(y=ref["x0"] > 0)
    linear = LogisticRegression().fit(x[FEATURES], x["y"])
    assert attribution_drift(linear, ref, cur, sample=200)[0].detail["method"] == "permutation"
    with pytest.raises(InvalidParameter, match="not a tree model"):
        attribution_drift(linear, ref, cur, method="shap")


@pytest.mark.slow  # imports XGBoost and LightGBM
@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosted_trees_are_explained_with_shap(
    library: str, train: tuple[pd.DataFrame, pd.Series[Any]], windows: dict[str, pd.DataFrame]
) -> None:
    x, y = train
    if library == "xgboost":
        import xgboost

        model: Any = xgboost.XGBClassifier(n_estimators=20, max_depth=4).fit(x, y > 0)
    else:
        import lightgbm

        model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, y > 0)
    drifted = attribution_drift(model, windows["reference"], windows["drifted"], sample=300)
    assert drifted[0].detail["method"] == "shap"
    assert drifted[0].status == "alert"


@pytest.mark.slow  # opens a store and registers a model
def test_a_registered_model_is_explained_through_what_the_registry_loaded(
    classifier: RandomForestClassifier,
    train: tuple[pd.DataFrame, pd.Series[Any]],
    windows: dict[str, pd.DataFrame],
) -> None:
    x, _ = train
    loopml.models.register(classifier, "attr", input_example=x.head(5))
    loaded = loopml.models.load("attr/1")
    ref, cur = windows["reference"].assign(extra="ignored"), windows["drifted"]
    by_shap = attribution_drift(loaded, ref, cur, sample=300)
    assert by_shap[0].detail["method"] == "shap" and by_shap[0].status == "alert"
    assert [r.column for r in by_shap[1:]] == FEATURES  # the signature's inputs, not "extra"
    direct = attribution_drift(classifier, ref, cur, sample=300, features=FEATURES)
    assert by_shap[0].statistic == pytest.approx(direct[0].statistic)
    by_permutation = attribution_drift(loaded, ref, cur, method="permutation", sample=300)
    assert by_permutation[0].status == "alert"


class _Labeller:
    """A model with labels only (no probabilities): "high" when x0 + x3 > 0."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return np.where(frame["x0"] + frame["x3"] > 0, "high", "low")


def test_label_only_models_count_changed_predictions(windows: dict[str, pd.DataFrame]) -> None:
    results = attribution_drift(_Labeller(), windows["reference"], windows["drifted"])
    assert results[0].detail["method"] == "permutation"
    assert results[0].status == "alert"
    assert results[0].detail["reference"]["x1"] == 0.0  # never moves the prediction


class _Constant:
    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return np.zeros(len(frame))


def test_a_model_that_ignores_its_features_is_no_data(windows: dict[str, pd.DataFrame]) -> None:
    (result,) = attribution_drift(_Constant(), windows["reference"], windows["same"])
    assert result.status == "no_data" and result.statistic is None
    assert "does not change with any feature" in result.message


def test_arrow_tables_seeds_and_json(
    regressor: RandomForestRegressor, windows: dict[str, pd.DataFrame]
) -> None:
    ref, cur = windows["reference"], windows["drifted"]
    kwargs: dict[str, Any] = {"method": "permutation", "sample": 300}
    frames = attribution_drift(regressor, ref, cur, **kwargs)
    tables = attribution_drift(
        regressor, pa.Table.from_pandas(ref), pa.Table.from_pandas(cur), **kwargs
    )
    assert frames == tables
    assert attribution_drift(regressor, ref, cur, seed=1, **kwargs) != frames
    result = MonitorResult("m", "alert", 0, "frame", "frame", len(ref), len(cur), tuple(frames))
    assert MonitorResult.from_dict(result.to_dict()).checks[0] == CheckResult.from_dict(
        frames[0].to_dict()
    )
    assert result.to_json()


def test_clarify_example_and_ties() -> None:
    # SageMaker Clarify's college admission example: SAT 0.70, GPA 0.50, rank 0.05 in
    # training; 0.10, 0.20, 0.70 live. DCG = 0.05 + 0.5/log2(3) + 0.7/2.
    dcg = 0.05 + 0.5 / np.log2(3) + 0.35
    ideal = 0.7 + 0.5 / np.log2(3) + 0.025
    assert ndcg([0.70, 0.50, 0.05], [0.10, 0.20, 0.70]) == pytest.approx(dcg / ideal)
    assert ndcg([0.5, 0.3, 0.2], [1.0, 1.0, 1.0]) == ndcg([0.5, 0.3, 0.2], [2.0, 2.0, 2.0])
    assert np.isnan(ndcg([0.0, 0.0], [1.0, 2.0]))


_importances = st.lists(st.floats(0.0, 1e3, allow_nan=False), min_size=1, max_size=12)


@given(_importances, st.randoms(use_true_random=False))
def test_ndcg_is_one_for_the_same_ranking_and_within_bounds(
    reference: list[float], random: Any
) -> None:
    if sum(reference) == 0:
        return
    assert ndcg(reference, [2 * v for v in reference]) == pytest.approx(1.0)  # same order
    shuffled = list(reference)
    random.shuffle(shuffled)
    assert 0.0 <= ndcg(reference, shuffled) <= 1.0 + 1e-12


def test_a_missing_feature_names_the_columns_there_are(
    regressor: RandomForestRegressor, windows: dict[str, pd.DataFrame]
) -> None:
    current = windows["same"].drop(columns="x2")
    with pytest.raises(
        UnknownColumnError, match="current window has no feature column 'x2'"
    ) as info:
        attribution_drift(regressor, windows["reference"], current)
    assert info.value.known == ("x0", "x1", "x3")


def test_a_window_too_small_is_insufficient_data(
    regressor: RandomForestRegressor, windows: dict[str, pd.DataFrame]
) -> None:
    with pytest.raises(InsufficientData, match=f"at least {MIN_ROWS} rows") as info:
        attribution_drift(regressor, windows["reference"], windows["same"].head(3))
    assert (info.value.needed, info.value.got) == (MIN_ROWS, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "lime"}, "'method' parameter of attribution_drift"),
        ({"ndcg_threshold": 0.0}, "'ndcg_threshold' parameter"),
        ({"sample": 10**9}, "'sample' parameter of attribution_drift must be an int in"),
        ({"seed": -1}, "'seed' parameter"),
        ({"features": "x0"}, "'features' parameter"),
    ],
)
def test_bad_parameters_are_named(
    regressor: RandomForestRegressor,
    windows: dict[str, pd.DataFrame],
    kwargs: dict[str, Any],
    match: str,
) -> None:
    with pytest.raises(InvalidParameter, match=match):
        attribution_drift(regressor, windows["reference"], windows["same"], **kwargs)


def test_shap_needs_numeric_features(
    regressor: RandomForestRegressor, windows: dict[str, pd.DataFrame]
) -> None:
    x = windows["reference"].assign(x1=windows["reference"]["x1"].astype(str))
    with pytest.raises(InvalidParameter, match="a feature is not numeric"):
        attribution_drift(regressor, x, x, method="shap")


def test_without_shap_auto_falls_back_to_permutations(
    monkeypatch: pytest.MonkeyPatch,
    regressor: RandomForestRegressor,
    windows: dict[str, pd.DataFrame],
) -> None:
    monkeypatch.setitem(sys.modules, "shap", None)  # what an environment without shap sees
    ref, cur = windows["reference"], windows["drifted"]
    results = attribution_drift(regressor, ref, cur, sample=300)
    assert results[0].detail["method"] == "permutation" and results[0].status == "alert"
    with pytest.raises(ImportError, match=r"pip install loopml\[monitoring\]"):
        attribution_drift(regressor, ref, cur, method="shap")


class _ByColour:
    """Needs its categorical column to stay categorical (as LightGBM does)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        assert isinstance(frame["colour"].dtype, pd.CategoricalDtype)
        return np.where(frame["colour"] == "red", 1.0, 0.0) + 0.1 * frame["x0"].to_numpy()


def test_permuted_columns_keep_their_dtype(windows: dict[str, pd.DataFrame]) -> None:
    rng = np.random.default_rng(5)
    ref = windows["reference"].assign(
        colour=pd.Categorical(rng.choice(["red", "blue"], len(windows["reference"])))
    )
    results = attribution_drift(_ByColour(), ref, ref, features=["x0", "colour"], sample=300)
    assert results[0].detail["method"] == "permutation"
    assert results[0].detail["reference_ranking"] == ["colour", "x0"]
