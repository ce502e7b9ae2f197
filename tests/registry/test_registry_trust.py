"""What loading a registered model trusts (issue 12 items 4, 6 and 7).

- skops files restore only allow-listed types, never the list the file declares;
- paths read from a model's metadata stay inside its verified folder;
- executable flavors registered by another identity need ``trust=True``.

Malicious files are real: a skops file whose schema calls ``os.system``, pickles
that write a marker file, metadata pointing outside the folder. SQLite only.
"""

from __future__ import annotations

import copy
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import (
    calibration,
    compose,
    ensemble,
    naive_bayes,
    neighbors,
    neural_network,
    pipeline,
    preprocessing,
    svm,
    tree,
)
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LogisticRegression, Ridge
from sqlalchemy import update

from identity_support import act_as
from loopml._skops import SAFE_FUNCTIONS, SAFE_TYPES, is_safe_type
from loopml.errors import (
    InvalidParameter,
    MetadataPathError,
    ModelError,
    UntrustedModelError,
    UntrustedTypesError,
)
from loopml.registry import ModelVersion, RegistryClient
from loopml.registry._flavors import LightGBMFlavor, SklearnFlavor, XGBoostFlavor
from loopml.registry._onnx import OnnxFlavor
from loopml.serving import score_file
from loopml.store import tables
from loopml.tracking import TrackingClient
from skops_support import poison_skops

P = "p"


def _data(rows: int = 120) -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    return frame, (frame["a"] + frame["b"] > 0).astype(np.int64).to_numpy()


def _replace_files(
    registry: RegistryClient, version: ModelVersion, tmp_path: Path, change: Any
) -> None:
    """Point ``version`` at a copy of its files changed by ``change(folder)``.

    What someone who can write the store (or registers through another tool) can do;
    the artifact store then verifies the *new* files against the *new* digest.
    """
    folder = registry.artifacts.get_dir(version.digest, tmp_path / f"crafted-{version.id}")
    change(folder)
    digest = registry.artifacts.put_dir(folder)
    with registry.store.write() as conn:
        conn.execute(
            update(tables.MODEL_VERSION)
            .where(tables.MODEL_VERSION.c.id == version.id)
            .values(digest=digest)
        )


# --- item 4: skops allow-list ---------------------------------------------------------------


def test_a_skops_file_whose_schema_runs_code_is_refused_by_every_load_path(
    registry: RegistryClient, tmp_path: Path
) -> None:
    """Issue 12 item 4: a registered scikit-learn version whose skops file names
    ``os.system`` is refused by load, evaluate and batch scoring, and runs nothing."""
    X, y = _data()
    version = registry.register(
        LogisticRegression().fit(X, y), "credit", project=P, input_example=X.head(5)
    )
    marker = tmp_path / "pwned"
    _replace_files(
        registry, version, tmp_path, lambda folder: poison_skops(folder / "model.skops", marker)
    )

    with pytest.raises(UntrustedTypesError, match=r"os\.system") as refused:
        registry.load("credit/1", project=P)
    assert refused.value.types == ["os.system"]
    assert "trusted_types" in str(refused.value)
    assert "LOOPML_TRUSTED_TYPES" in str(refused.value)
    assert isinstance(refused.value, UntrustedModelError)

    from loopml.data import DataClient

    test = DataClient(registry.store, registry.artifacts).register(
        "credit-test", X.assign(target=y), project=P
    )
    with pytest.raises(UntrustedTypesError):
        registry.evaluate("credit/1", test.ref, project=P, target="target")

    source = tmp_path / "in.parquet"
    X.to_parquet(source)
    with pytest.raises(UntrustedTypesError):
        score_file(
            source,
            tmp_path / "out.parquet",
            "credit/1",
            store=registry.store,
            artifacts=registry.artifacts,
            project=P,
        )
    assert not marker.exists()
    assert not (tmp_path / "out.parquet").exists()


def test_the_caller_extends_the_skops_allow_list_by_name(
    registry: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 4: a function outside the allow-list loads only when the caller
    names it, per call (``trusted_types``) or for the process (``LOOPML_TRUSTED_TYPES``)."""
    X, y = _data()
    model = pipeline.make_pipeline(
        preprocessing.FunctionTransformer(copy.deepcopy), LogisticRegression()
    ).fit(X, y)
    registry.register(model, "credit", project=P)

    with pytest.raises(UntrustedTypesError, match=r"copy\.deepcopy"):
        registry.load("credit/1", project=P)
    loaded = registry.load("credit/1", project=P, trusted_types=["copy.deepcopy"])
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    with pytest.raises(InvalidParameter, match="list of type names"):
        registry.load("credit/1", project=P, trusted_types="copy.deepcopy")
    monkeypatch.setenv("LOOPML_TRUSTED_TYPES", "numpy.other, copy.deepcopy")
    np.testing.assert_array_equal(registry.load("credit/1", project=P).predict(X), model.predict(X))


def _estimators() -> list[tuple[str, Any, str]]:
    """(id, estimator, target kind) covering what real projects register."""
    columns = compose.ColumnTransformer(
        [
            ("num", preprocessing.StandardScaler(), ["a"]),
            ("cat", preprocessing.OneHotEncoder(handle_unknown="ignore"), ["c"]),
        ]
    )
    return [
        ("logistic", LogisticRegression(), "class"),
        ("ridge", Ridge(), "value"),
        ("tree", tree.DecisionTreeClassifier(max_depth=3), "class"),
        ("forest", ensemble.RandomForestClassifier(n_estimators=3), "class"),
        ("gbm", ensemble.GradientBoostingRegressor(n_estimators=3), "value"),
        ("hgb", ensemble.HistGradientBoostingClassifier(max_iter=3), "class"),
        ("hgb-reg", ensemble.HistGradientBoostingRegressor(max_iter=3), "value"),
        ("svc", svm.SVC(probability=True), "class"),
        ("knn", neighbors.KNeighborsClassifier(), "class"),
        ("knn-ball", neighbors.KNeighborsRegressor(algorithm="ball_tree"), "value"),
        ("nb", naive_bayes.GaussianNB(), "class"),
        ("mlp", neural_network.MLPClassifier(max_iter=20), "class"),
        ("calibrated", calibration.CalibratedClassifierCV(svm.LinearSVC(), cv=3), "class"),
        (
            "stack",
            ensemble.StackingClassifier(
                [("l", LogisticRegression()), ("n", naive_bayes.GaussianNB())]
            ),
            "class",
        ),
        ("columns", pipeline.make_pipeline(columns, LogisticRegression()), "class"),
        (
            "preprocessing",
            pipeline.make_pipeline(
                preprocessing.SplineTransformer(),
                preprocessing.KBinsDiscretizer(n_bins=3),
                LogisticRegression(),
            ),
            "class",
        ),
        ("select", pipeline.make_pipeline(SelectKBest(k=1), LogisticRegression()), "class"),
    ]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize(
    ("estimator", "kind"), [e[1:] for e in _estimators()], ids=[e[0] for e in _estimators()]
)
def test_real_estimators_load_without_naming_any_type(
    estimator: Any, kind: str, tmp_path: Path
) -> None:
    """Issue 12 item 4: the allow-list covers the estimators real projects register."""
    X, y = _data()
    X = X.assign(c=np.where(X["a"] > 0, "x", "y"))
    features = X if "ColumnTransformer" in repr(estimator) else X[["a", "b"]]
    target = y if kind == "class" else X["a"].to_numpy() * 2
    estimator.fit(features, target)
    flavor = SklearnFlavor()
    flavor.save(estimator, tmp_path)
    loaded = flavor.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict(features), estimator.predict(features))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "builtins.eval",
        "builtins.exec",
        "subprocess.Popen",
        "sklearn.utils._testing.assert_run_python_script_without_output",
        "sklearn.utils._testing.MinimalClassifier",
        "sklearn.datasets.fetch_openml",
        "sklearn.preprocessing._function_transformer._identity",
        "sklearn.utils.fixes.os",
        "sklearn.base.clone",
        "sklearn.utils._testing.SkipTest",
        "sklearn.no_such_module.Thing",
        "numpy.load",
        "scipy.io.loadmat",
    ],
)
def test_functions_modules_and_test_helpers_are_not_trusted(name: str) -> None:
    """Issue 12 item 4: only scikit-learn *classes* are trusted by prefix."""
    assert not is_safe_type(name)


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        *sorted(SAFE_FUNCTIONS | SAFE_TYPES),
    ],
)
def test_estimator_parts_are_trusted(name: str) -> None:
    assert is_safe_type(name)


@given(st.text(min_size=1, max_size=40).filter(lambda n: not n.startswith("sklearn.")))
def test_nothing_outside_sklearn_is_trusted_unless_listed(name: str) -> None:
    """Issue 12 item 4: outside ``sklearn.`` only the exact listed names are trusted."""
    assert is_safe_type(name) == (name in SAFE_FUNCTIONS or name in SAFE_TYPES)


# --- item 6: metadata paths -----------------------------------------------------------------


def _xgb_folder(tmp_path: Path) -> Path:
    xgb = pytest.importorskip("xgboost")
    X, y = _data()
    folder = tmp_path / "xgb"
    folder.mkdir()
    XGBoostFlavor().save(xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(X, y), folder)
    return folder


def _set_meta(folder: Path, name: str, **values: Any) -> None:
    meta = json.loads((folder / name).read_text())
    meta.update(values)
    (folder / name).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "file", ["../model.ubj", "/etc/hostname", "sub/../model.ubj", "./model.ubj", "", 3, None]
)
def test_xgboost_metadata_cannot_name_a_file_outside_the_model(
    tmp_path: Path, file: object
) -> None:
    """Issue 12 item 6: xgboost.json's ``file`` must be a plain path inside the folder."""
    folder = _xgb_folder(tmp_path)
    shutil.copy(folder / "model.ubj", tmp_path / "model.ubj")  # a real model outside
    _set_meta(folder, "xgboost.json", file=file)
    with pytest.raises(MetadataPathError, match=r"'file' of xgboost\.json"):
        XGBoostFlavor().load(folder)


def test_a_symlink_out_of_the_model_folder_is_refused_for_every_flavor(tmp_path: Path) -> None:
    """Issue 12 item 6: a file that resolves outside the folder is refused, whatever names it."""
    outside = tmp_path / "outside"
    outside.write_bytes(b"not yours")
    folder = _xgb_folder(tmp_path)
    (folder / "elsewhere.ubj").symlink_to(outside)
    _set_meta(folder, "xgboost.json", file="elsewhere.ubj")
    with pytest.raises(MetadataPathError, match="leads outside"):
        XGBoostFlavor().load(folder)
    for flavor, name in [
        (SklearnFlavor(), "model.skops"),
        (LightGBMFlavor(), "model.txt"),
        (OnnxFlavor(), "model.onnx"),
    ]:
        other = tmp_path / flavor.name
        other.mkdir()
        (other / name).symlink_to(outside)
        if flavor.name == "lightgbm":
            (other / "lightgbm.json").write_text(json.dumps({"class": "Booster"}))
        with pytest.raises(MetadataPathError, match="leads outside"):
            flavor.load(other)


def test_a_registered_xgboost_version_cannot_read_outside_its_folder(
    registry: RegistryClient, tmp_path: Path
) -> None:
    """Issue 12 item 6: through the registry, crafted metadata is refused with a typed error."""
    xgb = pytest.importorskip("xgboost")
    X, y = _data()
    version = registry.register(
        xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(X, y), "x", project=P
    )
    _replace_files(
        registry,
        version,
        tmp_path,
        lambda folder: _set_meta(folder, "xgboost.json", file="../../../../etc/hostname"),
    )
    with pytest.raises(MetadataPathError):
        registry.load("x/1", project=P)


def _build_and_mark(marker: str) -> LogisticRegression:
    Path(marker).write_text("code from the pickle ran")
    return LogisticRegression()


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _build_and_mark, (self.marker,)


def test_a_run_model_pickle_file_outside_the_artifact_is_refused_even_when_trusted(
    registry: RegistryClient, tracking: TrackingClient, tmp_path: Path
) -> None:
    """Issue 12 item 6: loopml-model.json's ``pickle_file`` stays inside the logged folder."""
    marker = tmp_path / "ran"
    (tmp_path / "outside.pkl").write_bytes(pickle.dumps(_Payload(str(marker))))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(LogisticRegression()))
    (folder / "loopml-model.json").write_text(json.dumps({"pickle_file": "../../outside.pkl"}))
    run_id = tracking.create_run(project=P, capture_context=False)
    tracking.log_artifact(run_id, folder, "model")
    with pytest.raises(MetadataPathError, match="pickle_file"):
        registry.register(f"runs:/{run_id}/model", "credit", project=P, trust=True)
    assert not marker.exists()
    assert registry.list_models(project=P) == []


def test_an_onnx_model_cannot_read_tensors_from_other_files(tmp_path: Path) -> None:
    """Issue 12 item 6: an ONNX graph naming external tensor data is refused."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    weights = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4])
    weights.data_location = TensorProto.EXTERNAL
    for key, value in {"location": str(secret), "offset": "0", "length": "16"}.items():
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(onnx.ModelProto.SerializeToString(model))
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        OnnxFlavor().load(folder)


# --- item 7: executable flavors and identities ----------------------------------------------


class ThresholdModel:
    def predict(self, frame: pd.DataFrame) -> Any:
        return (frame["a"].to_numpy() > 0).astype(np.int64)


def test_a_pyfunc_registered_by_someone_else_needs_trust(
    registry: RegistryClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 7: a teammate's pickle on a shared store never runs by accident:
    only the identity that registered it loads it without ``trust=True``."""
    X, y = _data()
    act_as(monkeypatch, "alice")
    version = registry.register(ThresholdModel(), "rule", project=P, input_example=X.head(3))
    assert version.registered_by == "alice"
    assert registry.load("rule/1", project=P).predict(X).shape == (len(X),)

    act_as(monkeypatch, "bob")
    with pytest.raises(UntrustedModelError, match="trust=True") as refused:
        registry.load("rule/1", project=P)
    assert "'alice'" in str(refused.value)
    assert "'bob'" in str(refused.value)
    source = tmp_path / "in.parquet"
    X.to_parquet(source)
    stores = {"store": registry.store, "artifacts": registry.artifacts, "project": P}
    with pytest.raises(UntrustedModelError):
        score_file(source, tmp_path / "out.parquet", "rule/1", **stores)

    from loopml.data import DataClient

    test = DataClient(registry.store, registry.artifacts).register(
        "rule-test", X.assign(target=y), project=P
    )
    with pytest.raises(UntrustedModelError):
        registry.evaluate("rule/1", test.ref, project=P, target="target")

    assert registry.load("rule/1", project=P, trust=True).predict(X).shape == (len(X),)
    result = score_file(source, tmp_path / "out.parquet", "rule/1", trust=True, **stores)
    assert result.rows == len(X)
    evaluated = registry.evaluate("rule/1", test.ref, project=P, target="target", trust=True)
    assert evaluated.metrics["accuracy"] > 0.5
