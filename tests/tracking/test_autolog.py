"""loopml.autolog() for scikit-learn, against a real store in a temporary LOOPML_HOME."""

from __future__ import annotations

import inspect
import json
import logging
import math
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from loopml.tracking import _autolog, _fluent
from loopml.tracking._autolog import _common, autolog
from loopml.tracking._records import Run

PROJECT = "autolog-tests"


@pytest.fixture(autouse=True)
def tracking_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh store per test, and autolog always switched off afterwards."""
    home = tmp_path / "home"
    monkeypatch.setenv("LOOPML_HOME", str(home))
    for name in ("LOOPML_STORE_URI", "LOOPML_ARTIFACT_URI", "LOOPML_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_fluent, "_client", None)
    monkeypatch.setattr(_fluent, "_client_pid", None)
    monkeypatch.setattr(_fluent, "_stack", [])
    monkeypatch.setattr(_common, "_reported", set())  # each test sees its first warning
    try:
        yield home
    finally:
        autolog(disable=True)
        for run in reversed(list(_fluent._stack)):
            run.end()
        if _fluent._client is not None:
            _fluent._client.close()


@pytest.fixture
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def project_runs() -> list[Run]:
    runs = _fluent.search_runs(project=PROJECT)
    assert isinstance(runs, list)
    return runs


def only_run() -> Run:
    runs = project_runs()
    assert len(runs) == 1, [run.name for run in runs]
    return runs[0]


def download_model(run_id: str, dest: Path) -> tuple[Any, dict[str, Any]]:
    folder = _fluent.get_client().download_artifact(run_id, "model", dest)
    meta = json.loads((folder / "loopml-model.json").read_text())
    model = pickle.loads((folder / meta["pickle_file"]).read_bytes())
    return model, meta


def test_classifier_in_an_active_run_logs_everything_and_leaves_the_run_open(
    iris: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    X, y = iris
    autolog()
    with _fluent.start_run(name="iris", project=PROJECT) as run:
        model = LogisticRegression(C=0.5, max_iter=1000).fit(X, y)
        assert _fluent.active_run() is run
        assert _fluent.get_run(run.id).status == "running"

    logged = only_run()
    assert logged.id == run.id
    assert logged.status == "finished"
    assert logged.params["C"] == "0.5"
    assert logged.params["max_iter"] == "1000"
    assert logged.tags["estimator_class"] == ("sklearn.linear_model._logistic.LogisticRegression")
    assert logged.tags["input_rows"] == "150"
    assert logged.tags["input_columns"] == "4"
    for name in (
        "training_score",
        "training_accuracy",
        "training_f1",
        "training_precision",
        "training_recall",
        "training_log_loss",
        "training_roc_auc",
    ):
        assert name in logged.metrics, name
    assert logged.metrics["training_accuracy"] == pytest.approx(model.score(X, y))
    assert logged.metrics["training_accuracy"] > 0.9
    assert 0.9 < logged.metrics["training_roc_auc"] <= 1.0
    assert {artifact.path for artifact in logged.artifacts} == {"model", "input_schema.json"}

    schema_file = _fluent.get_client().download_artifact(
        run.id, "input_schema.json", tmp_path / "schema.json"
    )
    schema = json.loads(schema_file.read_text())
    assert schema["schema"][0] == {"name": "sepal length (cm)", "dtype": "float64"}
    assert schema["rows"] == 150
    assert schema["target"]["name"] == "target"

    restored, meta = download_model(run.id, tmp_path / "model")
    assert meta["flavor"] == "sklearn"
    assert meta["estimator_class"] == logged.tags["estimator_class"]
    assert meta["pickle_file"] == "model.pkl"
    assert {"sklearn_version", "python_version"} <= set(meta)
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))


def test_regressor_without_an_active_run_gets_a_finished_run_of_its_own() -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    autolog(project=PROJECT)
    Ridge(alpha=0.1).fit(X, y)

    assert _fluent.active_run() is None
    logged = only_run()
    assert logged.name == "Ridge"
    assert logged.status == "finished"
    assert logged.params["alpha"] == "0.1"
    metrics = logged.metrics
    assert {
        "training_score",
        "training_r2",
        "training_mae",
        "training_mse",
        "training_rmse",
    } <= set(metrics)
    assert metrics["training_r2"] == pytest.approx(metrics["training_score"])
    assert metrics["training_rmse"] == pytest.approx(math.sqrt(metrics["training_mse"]))
    assert "training_accuracy" not in metrics


def test_a_pipeline_logs_once_not_once_per_step(iris: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = iris
    autolog(project=PROJECT)
    Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)

    logged = only_run()
    assert logged.name == "Pipeline"
    assert logged.params["clf__C"] == "1.0"
    assert logged.params["scale"] == "StandardScaler"
    assert "StandardScaler" in logged.params["steps"]
    assert "training_accuracy" in logged.metrics


def test_a_grid_search_logs_once_with_its_best_params(
    iris: tuple[pd.DataFrame, pd.Series],
) -> None:
    X, y = iris
    autolog(project=PROJECT)
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, cv=3
    ).fit(X, y)

    logged = only_run()
    assert logged.name == "GridSearchCV"
    assert logged.params["estimator"] == "DecisionTreeClassifier"
    assert logged.params["best_max_depth"] == str(search.best_params_["max_depth"])
    assert logged.metrics["best_score"] == pytest.approx(search.best_score_)
    assert "training_accuracy" in logged.metrics


def test_a_failing_fit_marks_its_run_failed_and_raises_the_original_error() -> None:
    X = np.array([[0.0], [np.nan], [1.0]])
    autolog(project=PROJECT)
    with pytest.raises(ValueError, match="NaN") as raised:
        LogisticRegression().fit(X, [0, 1, 0])

    assert _fluent.active_run() is None
    logged = only_run()
    assert logged.status == "failed"
    assert logged.failure is not None
    assert logged.failure["type"] == "builtins.ValueError"
    assert logged.failure["message"] == str(raised.value)
    assert logged.params["C"] == "1.0"


def test_a_second_fit_with_other_params_goes_to_a_child_run(
    iris: tuple[pd.DataFrame, pd.Series],
) -> None:
    X, y = iris
    autolog()
    with _fluent.start_run(name="sweep", project=PROJECT) as run:
        DecisionTreeClassifier(max_depth=2).fit(X, y)
        DecisionTreeClassifier(max_depth=2).fit(X, y)  # same params: same run
        DecisionTreeClassifier(max_depth=3).fit(X, y)
        assert _fluent.active_run() is run

    runs = {r.id: r for r in project_runs()}
    assert len(runs) == 2
    child = next(r for r in runs.values() if r.id != run.id)
    assert child.parent_id == run.id
    assert child.status == "finished"
    assert runs[run.id].params["max_depth"] == "2"
    assert child.params["max_depth"] == "3"
    assert "training_accuracy" in child.metrics


def test_sample_weight_weights_the_metrics(iris: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = iris
    weights = np.where(y == 0, 5.0, 1.0)
    autolog(project=PROJECT)
    model = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y, sample_weight=weights)

    expected = accuracy_score(y, model.predict(X), sample_weight=weights)
    assert expected != pytest.approx(accuracy_score(y, model.predict(X)))
    assert only_run().metrics["training_accuracy"] == pytest.approx(expected)


def test_unsupervised_fit_on_numpy_logs_score_and_shape() -> None:
    X = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    autolog(project=PROJECT)
    model = KMeans(n_clusters=2, n_init=1, random_state=0).fit(X)

    logged = only_run()
    assert logged.metrics["training_score"] == pytest.approx(model.score(X), rel=1e-4)
    assert logged.tags["input_rows"] == "30"
    assert logged.tags["input_columns"] == "2"


def test_models_and_input_info_can_be_left_out(iris: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = iris
    autolog(log_models=False, log_input_info=False, project=PROJECT)
    DecisionTreeClassifier(max_depth=2).fit(X, y)

    logged = only_run()
    assert logged.artifacts == ()
    assert "input_rows" not in logged.tags
    assert "estimator_class" in logged.tags


def test_a_logging_failure_never_breaks_the_fit(
    iris: tuple[pd.DataFrame, pd.Series], caplog: pytest.LogCaptureFixture
) -> None:
    X, y = iris
    autolog(project=PROJECT)
    # A lambda cannot be pickled, so the model cannot be stored; the fit must not care.
    pipe = Pipeline(
        [("double", FunctionTransformer(lambda a: a * 2)), ("clf", DecisionTreeClassifier())]
    )
    with caplog.at_level(logging.WARNING, logger=_autolog.__name__):
        fitted = pipe.fit(X, y)

    assert fitted is pipe
    logged = only_run()
    assert logged.status == "finished"
    assert "training_accuracy" in logged.metrics
    assert "model" not in {artifact.path for artifact in logged.artifacts}
    assert any("log the model" in record.getMessage() for record in caplog.records)


def test_disable_restores_the_original_fit_exactly() -> None:
    originals = {cls: cls.__dict__["fit"] for cls in (LogisticRegression, BaseSearchCV, Pipeline)}
    autolog()
    for cls, original in originals.items():
        assert cls.__dict__["fit"] is not original
        assert cls.__dict__["fit"].__wrapped__ is original
        assert cls.fit.__name__ == "fit"
    assert "fit" not in GridSearchCV.__dict__  # inherited: wrapped where it is defined

    autolog(disable=True)
    for cls, original in originals.items():
        assert cls.__dict__["fit"] is original
    assert "fit" not in GridSearchCV.__dict__


def test_autolog_twice_does_not_wrap_twice(iris: tuple[pd.DataFrame, pd.Series]) -> None:
    original = LogisticRegression.__dict__["fit"]
    autolog()
    wrapped = LogisticRegression.__dict__["fit"]
    autolog(project=PROJECT)
    assert LogisticRegression.__dict__["fit"] is wrapped
    assert wrapped.__wrapped__ is original

    X, y = iris
    LogisticRegression(max_iter=1000).fit(X, y)
    logged = only_run()
    assert logged.name == "LogisticRegression"
    assert logged.status == "finished"

    autolog(disable=True)
    assert LogisticRegression.__dict__["fit"] is original


def test_user_subclass_overriding_fit_logs_once(iris: tuple[pd.DataFrame, pd.Series]) -> None:
    class Wrapped(DecisionTreeClassifier):
        def fit(self, X: Any, y: Any, **kwargs: Any) -> Wrapped:
            super().fit(X, y, **kwargs)
            return self

    X, y = iris
    autolog(project=PROJECT)
    Wrapped(max_depth=2).fit(X, y)

    logged = only_run()
    assert logged.name == "Wrapped"
    assert logged.params["max_depth"] == "2"


def test_importing_loopml_tracking_does_not_import_sklearn() -> None:
    code = "import sys, loopml.tracking._autolog; print('sklearn' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_estimators_stay_plain_estimators() -> None:
    autolog()
    assert isinstance(LogisticRegression(), BaseEstimator)
    assert "sample_weight" in inspect.signature(LogisticRegression.fit).parameters
