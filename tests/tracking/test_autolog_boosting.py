"""loopml.autolog() for XGBoost and LightGBM: native ``train`` and scikit-learn wrappers.

Real libraries, a real store; models logged by autolog are registered from the
run (``runs:/RUN/model``) and must predict what the trained model predicts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from hypothesis import given
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import loopml
from loopml.errors import InvalidParameter, ProjectNotFound, StoreNotFound
from loopml.tracking import _fluent
from loopml.tracking._autolog import _boosting, _common, autolog
from loopml.tracking._records import Run

PROJECT = "boosting-tests"


@pytest.fixture(autouse=True)
def autolog_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test sees its first warning, and autolog is always switched off afterwards."""
    monkeypatch.setattr(_common, "_reported", set())
    try:
        yield
    finally:
        autolog(disable=True)
        for run in reversed(list(_fluent._stack)):
            run.end()


def _frame(rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "income": rng.normal(50, 10, rows),
            "debt": rng.normal(20, 5, rows),
            "age": rng.integers(18, 80, rows).astype("float64"),
        }
    )
    score = (X["income"] - 2 * X["debt"]) / 10 + rng.normal(0, 0.5, rows)
    return X, (score > score.median()).astype("int64").rename("default")


def _runs() -> list[Run]:
    try:
        runs = _fluent.search_runs(project=PROJECT)
    except (StoreNotFound, ProjectNotFound):
        return []  # nothing was ever logged (searching creates neither)
    assert isinstance(runs, list)
    return runs


def _only_run() -> Run:
    runs = _runs()
    assert len(runs) == 1, [run.name for run in runs]
    return runs[0]


def _artifact_json(run_id: str, path: str, dest: Path) -> Any:
    local = _fluent.get_client().download_artifact(run_id, path, dest / path)
    return json.loads(local.read_text())


def _history(run_id: str, key: str) -> list[float]:
    points = _fluent.get_metric_history(run_id, key)
    assert [p.step for p in points] == list(range(len(points))), key
    return [p.value for p in points]


# --- XGBoost -----------------------------------------------------------------------------


def test_xgboost_train_logs_params_history_best_importance_and_a_loadable_model(
    fluent_store: str, tmp_path: Path
) -> None:
    X, y = _frame()
    dtrain = xgb.DMatrix(X[:200], label=y[:200])
    dvalid = xgb.DMatrix(X[200:], label=y[200:])
    autolog(project=PROJECT)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "eval_metric": "logloss"},
        dtrain,
        num_boost_round=60,
        evals=[(dtrain, "train"), (dvalid, "valid")],
        early_stopping_rounds=5,
        verbose_eval=False,
    )

    run = _only_run()
    assert (run.name, run.status) == ("xgboost.train", "finished")
    assert run.params["max_depth"] == "2"
    assert run.params["num_boost_round"] == "60"
    assert run.params["early_stopping_rounds"] == "5"
    assert run.tags["estimator_class"] == "xgboost.core.Booster"
    assert (run.tags["input_rows"], run.tags["input_columns"]) == ("200", "3")
    rounds = booster.num_boosted_rounds()
    train_loss = _history(run.id, "train-logloss")
    assert len(train_loss) == rounds
    assert len(_history(run.id, "valid-logloss")) == rounds
    assert train_loss[-1] < train_loss[0]
    assert run.metrics["best_iteration"] == booster.best_iteration
    assert run.metrics["best_score"] == pytest.approx(booster.best_score)

    importance = _artifact_json(run.id, "feature_importance.json", tmp_path)
    assert importance["features"] == ["income", "debt", "age"]
    assert set(importance["importance"]) == {"weight", "gain"}
    assert importance["importance"]["gain"]["income"] > 0
    schema = _artifact_json(run.id, "input_schema.json", tmp_path)
    assert [column["name"] for column in schema["schema"]] == ["income", "debt", "age"]

    version = loopml.models.register(f"runs:/{run.id}/model", "xgb-native", project=PROJECT)
    assert version.source_run_id == run.id
    assert version.flavor == "xgboost"
    loaded = loopml.models.load(version.ref, project=PROJECT)
    np.testing.assert_allclose(loaded.predict(X[200:]), booster.predict(dvalid), rtol=1e-6)


def test_xgboost_train_fills_the_callers_own_evals_result_and_keeps_an_active_run() -> None:
    X, y = _frame(rows=80)
    dtrain = xgb.DMatrix(X, label=y)
    results: dict[str, Any] = {}
    autolog(frameworks=["xgboost"])
    with loopml.start_run(name="mine", project=PROJECT) as active:
        xgb.train({"max_depth": 1}, dtrain, 4, evals=[(dtrain, "train")], evals_result=results)
        assert _fluent.active_run() is active
    run = _only_run()
    assert run.id == active.id
    assert _history(run.id, "train-rmse") == pytest.approx(results["train"]["rmse"])
    assert "best_iteration" not in run.metrics  # no early stopping


def test_a_failing_xgboost_train_fails_its_run_and_raises_the_original_error() -> None:
    X, y = _frame(rows=40)
    autolog(frameworks=["xgboost"], project=PROJECT)
    with pytest.raises(xgb.core.XGBoostError, match="no-such-objective") as raised:
        xgb.train({"objective": "no-such-objective"}, xgb.DMatrix(X, label=y), 2)
    run = _only_run()
    assert run.status == "failed"
    assert run.failure is not None
    assert run.failure["type"] == "xgboost.core.XGBoostError"
    assert "no-such-objective" in str(raised.value)


def test_xgb_classifier_logs_once_with_its_eval_set_and_registers_from_the_run() -> None:
    X, y = _frame()
    autolog(project=PROJECT)  # scikit-learn too: the wrapper's inner work must not log
    model = xgb.XGBClassifier(n_estimators=15, max_depth=2, eval_metric="logloss").fit(
        X[:200], y[:200], eval_set=[(X[200:], y[200:])], verbose=False
    )

    run = _only_run()
    assert run.name == "XGBClassifier"
    assert run.params["n_estimators"] == "15"
    assert run.tags["estimator_class"] == "xgboost.sklearn.XGBClassifier"
    history = _history(run.id, "validation_0-logloss")
    assert history == pytest.approx(model.evals_result()["validation_0"]["logloss"])
    assert run.metrics["training_accuracy"] > 0.7
    assert {"model", "input_schema.json", "feature_importance.json"} <= {
        artifact.path for artifact in run.artifacts
    }

    version = loopml.models.register(f"runs:/{run.id}/model", "xgb-clf", project=PROJECT)
    loaded = loopml.models.load(version.ref, project=PROJECT)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_pipeline_around_an_xgb_regressor_logs_once_as_the_pipeline() -> None:
    X, y = _frame()
    autolog(project=PROJECT)
    Pipeline([("scale", StandardScaler()), ("xgb", xgb.XGBRegressor(n_estimators=5))]).fit(X, y)
    run = _only_run()
    assert run.name == "Pipeline"
    assert run.params["xgb__n_estimators"] == "5"


# --- LightGBM ----------------------------------------------------------------------------


def test_lightgbm_train_logs_history_best_iteration_and_a_loadable_model(tmp_path: Path) -> None:
    X, y = _frame()
    train_set = lgb.Dataset(X[:200], label=y[:200])
    valid_set = lgb.Dataset(X[200:], label=y[200:], reference=train_set)
    autolog(frameworks=["lightgbm"], project=PROJECT)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 4, "verbose": -1},
        train_set,
        num_boost_round=80,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(5, verbose=False)],
    )

    run = _only_run()
    assert (run.name, run.status) == ("lightgbm.train", "finished")
    assert run.params["num_leaves"] == "4"
    assert run.params["num_boost_round"] == "80"
    history = _history(run.id, "valid-binary_logloss")
    assert len(history) > booster.best_iteration  # it ran past the best, then stopped
    assert run.metrics["best_iteration"] == booster.best_iteration
    best = history[booster.best_iteration - 1]
    assert run.metrics["best_valid-binary_logloss"] == pytest.approx(best)
    assert (run.tags["input_rows"], run.tags["input_columns"]) == ("200", "3")
    importance = _artifact_json(run.id, "feature_importance.json", tmp_path)
    assert importance["features"] == ["income", "debt", "age"]
    assert set(importance["importance"]) == {"split", "gain"}

    version = loopml.models.register(f"runs:/{run.id}/model", "lgb-native", project=PROJECT)
    loaded = loopml.models.load(version.ref, project=PROJECT)
    np.testing.assert_allclose(
        loaded.predict(X), booster.predict(X, num_iteration=booster.best_iteration), rtol=1e-9
    )


def test_lgbm_classifier_with_its_own_labels_logs_once_and_registers_from_the_run() -> None:
    X, y = _frame()
    labels = np.where(y == 1, 7, 3)
    autolog(project=PROJECT)  # scikit-learn too: LGBMClassifier fits a LabelEncoder inside
    model = lgb.LGBMClassifier(n_estimators=12, num_leaves=4, verbose=-1).fit(
        X[:200], labels[:200], eval_X=(X[200:],), eval_y=(labels[200:],)
    )

    run = _only_run()
    assert run.name == "LGBMClassifier"
    assert run.params["n_estimators"] == "12"
    history = _history(run.id, "valid_0-binary_logloss")
    assert history == pytest.approx(model.evals_result_["valid_0"]["binary_logloss"])
    assert "training_accuracy" in run.metrics

    version = loopml.models.register(f"runs:/{run.id}/model", "lgb-clf", project=PROJECT)
    loaded = loopml.models.load(version.ref, project=PROJECT)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_boosters_models_and_input_info_can_be_left_out() -> None:
    X, y = _frame(rows=60)
    autolog(log_models=False, log_input_info=False, project=PROJECT)
    lgb.train({"verbose": -1}, lgb.Dataset(X, label=y), 3)
    run = _only_run()
    assert {artifact.path for artifact in run.artifacts} == {"feature_importance.json"}
    assert "input_rows" not in run.tags
    assert run.tags["estimator_class"] == "lightgbm.basic.Booster"


# --- choosing frameworks ------------------------------------------------------------------


def test_frameworks_choose_what_is_logged_and_disable_restores_the_originals() -> None:
    originals = (xgb.train, lgb.train, lgb.LGBMModel.__dict__["fit"], xgb.XGBModel.fit)
    X, y = _frame(rows=60)
    autolog(frameworks=["xgboost"], project=PROJECT)
    assert lgb.train is originals[1]
    lgb.LGBMRegressor(n_estimators=2, verbose=-1).fit(X, y)
    assert _runs() == []

    autolog(frameworks=["lightgbm"], project=PROJECT)
    autolog(frameworks=["xgboost"], disable=True)
    assert xgb.train is originals[0]
    xgb.XGBRegressor(n_estimators=2).fit(X, y)
    assert _runs() == []
    lgb.LGBMRegressor(n_estimators=2, verbose=-1).fit(X, y)
    assert _only_run().name == "LGBMRegressor"

    autolog(disable=True)
    assert (xgb.train, lgb.train, lgb.LGBMModel.__dict__["fit"], xgb.XGBModel.fit) == originals


def test_autolog_without_frameworks_enables_every_installed_one() -> None:
    autolog()
    assert xgb.train.__wrapped__ is not None  # type: ignore[attr-defined]
    assert lgb.LGBMModel.__dict__["fit"].__wrapped__ is not None
    assert set(_common.CONFIGS) == {"sklearn", "xgboost", "lightgbm"}


@pytest.mark.parametrize(
    ("frameworks", "message"),
    [
        (["torch"], r"among sklearn, xgboost, lightgbm; got 'torch'"),
        ("xgboost", r"a list of names; got the string 'xgboost'"),
    ],
)
def test_bad_framework_names_are_refused_and_nothing_is_patched(
    frameworks: Any, message: str
) -> None:
    original = xgb.train
    with pytest.raises(InvalidParameter, match=message):
        autolog(frameworks=frameworks)
    assert xgb.train is original
    assert _common.CONFIGS == {}


def test_a_framework_that_is_not_installed_is_named_with_its_extra() -> None:
    program = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lightgbm':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "import loopml\n"
        "loopml.autolog()\n"  # every installed one: lightgbm is skipped quietly
        "from loopml.tracking._autolog import _common\n"
        "print(sorted(_common.CONFIGS))\n"
        "try:\n"
        "    loopml.autolog(frameworks=['lightgbm'])\n"
        "except loopml.errors.InvalidParameter as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=300
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "['sklearn', 'xgboost']"
    assert "lightgbm: not installed" in lines[1]
    assert "pip install 'loopml[lightgbm]'" in lines[1]


_NAMES = st.text(st.characters(blacklist_characters="-"), min_size=1, max_size=8)


@given(
    st.dictionaries(
        _NAMES,
        st.dictionaries(
            _NAMES,
            st.lists(
                st.one_of(
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-5, 5),
                    st.tuples(st.floats(0, 1), st.floats(0, 1)),
                    st.none(),
                ),
                max_size=5,
            ),
            max_size=3,
        ),
        max_size=3,
    )
)
def test_eval_history_keeps_exactly_the_all_finite_series(results: dict[str, Any]) -> None:
    expected = {
        f"{data_name}-{metric_name}": [float(value) for value in values]
        for data_name, metrics in results.items()
        for metric_name, values in metrics.items()
        if all(_common.is_number(value) for value in values)
    }
    assert _boosting.eval_history(results) == expected
