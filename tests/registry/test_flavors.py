"""Flavors: every kind of model survives save → load with the same predictions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidParameter, ModelError, SignatureError
from loopml.registry._flavors import (
    FLAVORS,
    Flavor,
    LightGBMClassifierModel,
    LightGBMFlavor,
    OnnxModel,
    SklearnFlavor,
    XGBoostFlavor,
    convert_to_onnx,
    flavor_for,
    get_flavor,
)

sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    """150 rows and 6 columns of the breast-cancer data, with identifier-like names."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:150, :6]
    X.columns = [c.replace(" ", "_") for c in X.columns]
    return X, y.iloc[:150]


def roundtrip(model: object, folder: Path) -> tuple[Flavor, object]:
    """Save with the model's flavor, load back, and delete the folder (loading must not need it)."""
    flavor = flavor_for(model)
    folder.mkdir()
    flavor.save(model, folder)
    loaded = flavor.load(folder)
    shutil.rmtree(folder)
    return flavor, loaded


def assert_same(flavor: Flavor, model: object, loaded: object, X: pd.DataFrame) -> None:
    expected = flavor.predict(model, X)
    got = flavor.predict(loaded, X)
    assert got.ndim == 1 and len(got) == len(X)
    np.testing.assert_array_equal(got, expected)
    proba = flavor.predict_proba(model, X)
    if proba is None:
        assert flavor.predict_proba(loaded, X) is None
    else:
        loaded_proba = flavor.predict_proba(loaded, X)
        assert loaded_proba is not None and loaded_proba.ndim == 2
        np.testing.assert_array_equal(loaded_proba, proba)


# --- scikit-learn ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_pipeline(StandardScaler(), LogisticRegression()),
        lambda: RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
    ],
    ids=["logistic-regression", "random-forest"],
)
def test_sklearn_round_trip(data: Any, make: Any, tmp_path: Path) -> None:
    X, y = data
    model = make().fit(X, y)
    flavor, loaded = roundtrip(model, tmp_path / "m")
    assert flavor.name == "sklearn" and not flavor.executable
    assert type(loaded) is type(model)
    assert_same(flavor, model, loaded, X)


def test_sklearn_model_fitted_on_an_array_is_given_the_values(data: Any, tmp_path: Path) -> None:
    X, y = data
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(X.to_numpy(), y)
    flavor, loaded = roundtrip(model, tmp_path / "m")
    # A frame with names would warn "X has feature names" (an error under filterwarnings).
    np.testing.assert_array_equal(flavor.predict(loaded, X), model.predict(X.to_numpy()))
    assert flavor.predict_proba(loaded, X) is None


def test_sklearn_files_are_skops_not_pickle(data: Any, tmp_path: Path) -> None:
    X, y = data
    SklearnFlavor().save(LogisticRegression().fit(StandardScaler().fit_transform(X), y), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]


# --- XGBoost ---------------------------------------------------------------------------


def test_xgboost_classifier_round_trip(data: Any, tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = data
    model = xgb.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y)
    flavor, loaded = roundtrip(model, tmp_path / "m")
    assert flavor.name == "xgboost"
    assert type(loaded) is xgb.XGBClassifier
    assert_same(flavor, model, loaded, X)


def test_xgboost_regressor_round_trip(data: Any, tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = data
    model = xgb.XGBRegressor(n_estimators=5, max_depth=3).fit(X, y * 2.5)
    flavor, loaded = roundtrip(model, tmp_path / "m")
    assert type(loaded) is xgb.XGBRegressor
    assert flavor.predict_proba(loaded, X) is None
    assert_same(flavor, model, loaded, X)


def test_xgboost_booster_round_trip(data: Any, tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = data
    booster = xgb.XGBRegressor(n_estimators=5).fit(X, y).get_booster()
    flavor, loaded = roundtrip(booster, tmp_path / "m")
    assert isinstance(loaded, xgb.Booster)
    np.testing.assert_array_equal(flavor.predict(loaded, X), booster.predict(xgb.DMatrix(X)))


# --- LightGBM --------------------------------------------------------------------------


def test_lightgbm_classifier_round_trip_keeps_class_labels(data: Any, tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    X, y = data
    labels = y.map({0: "malignant", 1: "benign"})
    model = lgb.LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1).fit(X, labels)
    flavor, loaded = roundtrip(model, tmp_path / "m")
    assert flavor.name == "lightgbm"
    assert isinstance(loaded, LightGBMClassifierModel)
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    assert loaded.classes_.dtype == model.classes_.dtype
    assert set(flavor.predict(loaded, X)) <= {"malignant", "benign"}
    assert_same(flavor, model, loaded, X)
    # A loaded model can be registered again.
    assert flavor_for(loaded) is flavor
    again = tmp_path / "again"
    again.mkdir()
    flavor.save(loaded, again)
    assert_same(flavor, model, flavor.load(again), X)


def test_lightgbm_multiclass_and_regressor_round_trip(data: Any, tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    X, y = data
    three = (X["mean_radius"] > X["mean_radius"].median()).astype(int) + y
    classifier = lgb.LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1).fit(X, three)
    flavor, loaded = roundtrip(classifier, tmp_path / "c")
    assert_same(flavor, classifier, loaded, X)
    regressor = lgb.LGBMRegressor(n_estimators=5, num_leaves=7, verbose=-1).fit(X, y * 3.0)
    flavor, loaded = roundtrip(regressor, tmp_path / "r")
    assert not hasattr(loaded, "predict_proba")
    assert_same(flavor, regressor, loaded, X)
    flavor, loaded = roundtrip(regressor.booster_, tmp_path / "b")
    assert isinstance(loaded, lgb.Booster)
    np.testing.assert_array_equal(flavor.predict(loaded, X), regressor.predict(X))


def test_lightgbm_refuses_an_unfitted_model(tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    with pytest.raises(ModelError, match="unfitted LGBMClassifier"):
        LightGBMFlavor().save(lgb.LGBMClassifier(), tmp_path)


# --- ONNX ------------------------------------------------------------------------------


def test_onnx_round_trip_of_a_converted_classifier(data: Any, tmp_path: Path) -> None:
    pytest.importorskip("skl2onnx")
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    onnx_bytes = convert_to_onnx(model, X)
    assert isinstance(onnx_bytes, bytes)
    flavor = get_flavor("onnx")
    folder = tmp_path / "m"
    folder.mkdir()
    flavor.save(onnx_bytes, folder)
    loaded = flavor.load(folder)
    shutil.rmtree(folder)
    assert isinstance(loaded, OnnxModel)
    assert loaded.layout["inputs"] == "tensor"
    assert loaded.layout["columns"] == list(X.columns)
    # Columns are picked by name, so their order in the frame does not matter.
    shuffled = X[X.columns[::-1]]
    np.testing.assert_array_equal(flavor.predict(loaded, shuffled), model.predict(X))
    proba = flavor.predict_proba(loaded, X)
    assert proba is not None
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)
    with pytest.raises(SignatureError, match="'mean_area' is missing"):
        flavor.predict(loaded, X.drop(columns="mean_area"))


def test_onnx_proto_is_handled_and_regressor_converts(data: Any) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("skl2onnx")
    X, y = data
    model = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X, y * 10)
    proto = onnx.load_from_string(convert_to_onnx(model, X))
    flavor = flavor_for(proto)
    assert flavor.name == "onnx"
    got = flavor.predict(proto, X)
    assert got.shape == (len(X),)
    np.testing.assert_allclose(got, model.predict(X), rtol=1e-5, atol=1e-5)
    assert flavor.predict_proba(proto, X) is None


def test_onnx_model_with_one_input_per_column(data: Any, tmp_path: Path) -> None:
    pytest.importorskip("skl2onnx")
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer

    X, y = data
    X = X.iloc[:, :3]
    model = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), list(X.columns))]),
        RandomForestClassifier(n_estimators=5, random_state=0),
    ).fit(X, y)
    proto = convert_sklearn(
        model,
        initial_types=[(c, FloatTensorType([None, 1])) for c in X.columns],
        options={id(model): {"zipmap": False}},
    )
    flavor, loaded = roundtrip(proto, tmp_path / "m")
    assert isinstance(loaded, OnnxModel) and loaded.layout["inputs"] == "columns"
    np.testing.assert_array_equal(flavor.predict(loaded, X), model.predict(X))


def test_onnx_conversion_refuses_non_numeric_columns(data: Any) -> None:
    pytest.importorskip("skl2onnx")
    X, y = data
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    example = X.assign(city="Oslo")
    with pytest.raises(ModelError, match="column 'city' is"):
        convert_to_onnx(model, example)


def test_onnx_conversion_reports_the_largest_difference(data: Any) -> None:
    pytest.importorskip("skl2onnx")
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    # float32 inference cannot match float64 probabilities exactly.
    with pytest.raises(ModelError, match=r"differ(s)? .*by up to [0-9.e-]+ \(row"):
        convert_to_onnx(model, X, tolerance=0.0)


def test_onnx_conversion_checks_its_arguments(data: Any) -> None:
    pytest.importorskip("skl2onnx")
    xgb = pytest.importorskip("xgboost")
    X, y = data
    with pytest.raises(ModelError, match="converts scikit-learn models; got XGBClassifier"):
        convert_to_onnx(xgb.XGBClassifier(n_estimators=2).fit(X, y), X)
    model = RandomForestClassifier(n_estimators=2).fit(X, y)
    with pytest.raises(InvalidParameter, match="'tolerance'"):
        convert_to_onnx(model, X, tolerance=-1.0)
    with pytest.raises(InvalidParameter, match="'example'"):
        convert_to_onnx(model, X.iloc[:0])


# --- pyfunc ----------------------------------------------------------------------------


class Doubler:
    """A user model: not any library's."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame.sum(axis=1).to_numpy() * self.factor


class Thresholder(Doubler):
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.predict(frame) / 1000))
        return np.column_stack([1 - p, p])


def test_pyfunc_round_trip(data: Any, tmp_path: Path) -> None:
    X, _ = data
    for i, model in enumerate([Doubler(2.0), Thresholder(0.5)]):
        flavor, loaded = roundtrip(model, tmp_path / str(i))
        assert flavor.name == "pyfunc" and flavor.executable
        assert type(loaded) is type(model)
        assert_same(flavor, model, loaded, X)
    assert get_flavor("pyfunc").predict_proba(Doubler(1.0), X) is None


# --- choosing a flavor -----------------------------------------------------------------


def test_flavor_for_picks_the_right_flavor(data: Any) -> None:
    xgb = pytest.importorskip("xgboost")
    lgb = pytest.importorskip("lightgbm")
    X, y = data
    xgb_model = xgb.XGBClassifier(n_estimators=2).fit(X, y)
    lgb_model = lgb.LGBMRegressor(n_estimators=2, verbose=-1).fit(X, y)
    assert flavor_for(xgb_model).name == "xgboost"
    assert flavor_for(xgb_model.get_booster()).name == "xgboost"
    assert flavor_for(lgb_model).name == "lightgbm"
    assert flavor_for(lgb_model.booster_).name == "lightgbm"
    assert flavor_for(LogisticRegression()).name == "sklearn"
    assert flavor_for(Doubler(1.0)).name == "pyfunc"
    # XGBoost and LightGBM wrappers are scikit-learn estimators too, but not skops material.
    assert not SklearnFlavor().handles(xgb_model)
    assert not SklearnFlavor().handles(lgb_model)
    assert not XGBoostFlavor().handles(lgb_model)
    assert [f.name for f in FLAVORS] == ["xgboost", "lightgbm", "onnx", "sklearn", "pyfunc"]
    assert all(get_flavor(f.name) is f for f in FLAVORS)


def test_flavor_for_names_what_it_cannot_store() -> None:
    with pytest.raises(ModelError, match=r"builtins\.object: a model needs a predict method"):
        flavor_for(object())
    with pytest.raises(ModelError, match="not the class Doubler"):
        flavor_for(Doubler)
    from sklearn.preprocessing import MinMaxScaler

    with pytest.raises(ModelError, match="MinMaxScaler"):
        flavor_for(MinMaxScaler())  # a transformer cannot predict


def test_unknown_flavor_name() -> None:
    with pytest.raises(ModelError, match="Unknown model flavor 'tensorflow'; known flavors: "):
        get_flavor("tensorflow")


@pytest.mark.parametrize("name", ["sklearn", "xgboost", "lightgbm", "onnx", "pyfunc"])
def test_loading_a_folder_of_another_flavor_fails_clearly(name: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="holds no"):
        get_flavor(name).load(tmp_path)


def test_handles_imports_no_library() -> None:
    # Other modules (pandas, pyarrow, the registry package) may import some of these;
    # what matters is that asking a flavor whether it handles a model imports none.
    code = (
        "import sys\n"
        "from loopml.registry._flavors import FLAVORS, flavor_for\n"
        "heavy = {'sklearn', 'xgboost', 'lightgbm', 'onnx', 'onnxruntime', 'skl2onnx',\n"
        "         'cloudpickle', 'skops'}\n"
        "before = heavy & set(sys.modules)\n"
        "class M:\n"
        "    def predict(self, x): return x\n"
        "assert flavor_for(M()).name == 'pyfunc'\n"
        "assert not any(f.handles(object()) for f in FLAVORS)\n"
        "assert heavy & set(sys.modules) == before, heavy & set(sys.modules) - before\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
