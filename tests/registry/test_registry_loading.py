"""Loading registered models: every flavor through register → load, ONNX parity,
signature enforcement, tamper detection and the refusal of untrusted pickles.

Flavor-level save/load round trips are in ``test_flavors.py``; here every model
goes through the registry and the artifact store. SQLite only.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sqlalchemy import update

from loopml.data import DataClient
from loopml.errors import (
    ArtifactIntegrityError,
    InvalidParameter,
    ModelError,
    SignatureError,
    UntrustedModelError,
)
from loopml.registry import ModelVersion, RegistryClient
from loopml.store import tables
from loopml.tracking import TrackingClient

P = "p"


@pytest.fixture
def artifacts_root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def tracking(tmp_path: Path, artifacts_root: Path) -> Iterator[TrackingClient]:
    client = TrackingClient(f"sqlite:///{tmp_path / 'store' / 'loopml.db'}", str(artifacts_root))
    yield client
    client.close()


@pytest.fixture
def registry(tracking: TrackingClient) -> RegistryClient:
    return RegistryClient(tracking.store, tracking.artifacts)


def _data(rows: int = 200, seed: int = 0) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": rng.normal(0.0, 1.0, rows),
            "debt": rng.normal(0.0, 1.0, rows),
        }
    )
    logit = 2.0 * frame["income"] - 1.5 * frame["debt"] + 0.03 * (frame["age"] - 50)
    labels: npt.NDArray[np.int64] = (
        (logit + rng.logistic(size=rows) > 0).to_numpy().astype(np.int64)
    )
    return frame, labels


class ThresholdModel:
    """A plain Python model: stored as a pyfunc (cloudpickle)."""

    def __init__(self, column: str, cut: float) -> None:
        self.column = column
        self.cut = cut

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[np.int64]:
        return (frame[self.column].to_numpy() > self.cut).astype(np.int64)


def _state(registry: RegistryClient) -> tuple[object, ...]:
    return (
        registry.list_versions("credit", project=P),
        registry.get_model("credit", project=P),
        registry.alias_history("credit", project=P),
    )


# --- round trip per flavor ------------------------------------------------------------------


def _sklearn(X: pd.DataFrame, y: npt.NDArray[np.int64]) -> Any:
    return RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)


def _xgboost(X: pd.DataFrame, y: npt.NDArray[np.int64]) -> Any:
    xgb = pytest.importorskip("xgboost")
    return xgb.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1).fit(X, y)


def _lightgbm(X: pd.DataFrame, y: npt.NDArray[np.int64]) -> Any:
    lgb = pytest.importorskip("lightgbm")
    return lgb.LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1, n_jobs=1).fit(X, y)


def _pyfunc(X: pd.DataFrame, y: npt.NDArray[np.int64]) -> Any:
    return ThresholdModel("income", 0.1)


@pytest.mark.parametrize(
    ("flavor", "build"),
    [
        pytest.param("sklearn", _sklearn, id="sklearn"),
        pytest.param("xgboost", _xgboost, id="xgboost"),
        pytest.param("lightgbm", _lightgbm, id="lightgbm"),
        pytest.param("pyfunc", _pyfunc, id="pyfunc"),
    ],
)
def test_every_flavor_predicts_the_same_after_register_and_load(
    registry: RegistryClient, flavor: str, build: Any
) -> None:
    X, y = _data()
    model = build(X, y)
    version = registry.register(model, "credit", project=P, input_example=X.head(10))
    assert (version.flavor, version.executable) == (flavor, flavor == "pyfunc")

    loaded = registry.load("credit/1", project=P)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-7)
    else:
        with pytest.raises(ModelError, match="has no predict_proba"):
            loaded.predict_proba(X)


def test_an_onnx_model_round_trips(registry: RegistryClient) -> None:
    pytest.importorskip("skl2onnx")
    import onnx

    from loopml.registry._onnx import convert_to_onnx

    X, y = _data()
    model = LogisticRegression(max_iter=5000).fit(X, y)
    proto = onnx.load_from_string(convert_to_onnx(model, X.head(20)))
    version = registry.register(proto, "credit", project=P, input_example=X.head(5))
    assert version.flavor == "onnx"
    loaded = registry.load("credit/1", project=P)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-5)


def test_a_regressor_round_trips(registry: RegistryClient) -> None:
    X, y = _data()
    target = X["income"] * 2.0 + y
    model = LinearRegression().fit(X, target)
    registry.register(model, "credit", project=P, input_example=X.head(5))
    loaded = registry.load("credit", project=P)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=0, atol=0)
    assert loaded.signature is not None
    assert [(c.name, c.type) for c in loaded.signature.outputs] == [("prediction", "float")]


def test_a_model_that_no_flavor_can_store_is_refused(registry: RegistryClient) -> None:
    with pytest.raises(ModelError, match=r"No flavor can store a builtins\.object"):
        registry.register(object(), "credit", project=P)
    with pytest.raises(ModelError, match="not the class"):
        registry.register(LogisticRegression, "credit", project=P)
    assert registry.list_models(project=P) == []


# --- ONNX conversion parity ---------------------------------------------------------------


def test_onnx_conversion_predicts_like_the_original(registry: RegistryClient) -> None:
    pytest.importorskip("skl2onnx")
    X, y = _data()
    model = LogisticRegression(max_iter=5000).fit(X, y)
    version = registry.register(
        model, "credit", project=P, input_example=X.head(20), convert_onnx=True
    )
    assert version.onnx_digest is not None and version.flavor == "sklearn"

    onnx_model = registry.load_onnx("credit/1", project=P)
    np.testing.assert_array_equal(onnx_model.predict(X), model.predict(X))
    np.testing.assert_allclose(onnx_model.predict_proba(X), model.predict_proba(X), atol=1e-5)
    # The signature is enforced on the ONNX path too (columns reordered, ints widened).
    shuffled = X[["debt", "age", "income"]]
    np.testing.assert_array_equal(onnx_model.predict(shuffled), model.predict(X))
    with pytest.raises(SignatureError, match="'income'"):
        onnx_model.predict(X.drop(columns=["income"]))


def test_onnx_needs_an_example_and_a_conversion(registry: RegistryClient) -> None:
    X, y = _data()
    model = LogisticRegression(max_iter=5000).fit(X, y)
    with pytest.raises(InvalidParameter, match="needs an input_example"):
        registry.register(model, "credit", project=P, convert_onnx=True)
    with pytest.raises(ModelError, match="converts scikit-learn models"):
        registry.register(
            ThresholdModel("income", 0.0), "credit", project=P, input_example=X, convert_onnx=True
        )
    assert registry.list_models(project=P) == []  # a failed registration leaves no version
    registry.register(model, "credit", project=P)
    with pytest.raises(ModelError, match="has no ONNX conversion"):
        registry.load_onnx("credit/1", project=P)


# --- signature enforcement ----------------------------------------------------------------


@pytest.fixture
def credit(registry: RegistryClient) -> tuple[LogisticRegression, pd.DataFrame]:
    X, y = _data()
    model = LogisticRegression(max_iter=5000).fit(X, y)
    registry.register(model, "credit", project=P, input_example=X.head(5))
    return model, X


def test_predict_on_a_frame_missing_a_column_names_it_and_its_type(
    registry: RegistryClient, credit: tuple[LogisticRegression, pd.DataFrame]
) -> None:
    _, X = credit
    loaded = registry.load("credit@latest", project=P)
    with pytest.raises(SignatureError, match=r"'income' is missing.*a float column 'income'"):
        loaded.predict(X.drop(columns=["income"]))
    with pytest.raises(SignatureError, match=r"'age'.*an integer column 'age'"):
        loaded.predict_proba(X.drop(columns=["age"]))


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        ("income", ["high", "low", "mid"], "a float column 'income'"),
        ("age", [31.5, 40.0, 50.0], "an integer column 'age'"),
        ("age", ["31", "40", "50"], "an integer column 'age'"),
        ("debt", [True, False, True], "a float column 'debt'"),
        ("debt", [0.1, None, 0.3], "a float column 'debt' without missing values"),
    ],
)
def test_predict_on_a_column_of_the_wrong_type_names_it_and_the_expected_type(
    registry: RegistryClient,
    credit: tuple[LogisticRegression, pd.DataFrame],
    column: str,
    values: list[Any],
    expected: str,
) -> None:
    _, X = credit
    frame = X.head(3).copy()
    frame[column] = pd.Series(values, index=frame.index, dtype=object)
    with pytest.raises(SignatureError, match=f"Input column '{column}'") as caught:
        registry.load("credit/1", project=P).predict(frame)
    assert expected in str(caught.value)


def test_inputs_that_fit_the_signature_are_accepted_in_any_shape(
    registry: RegistryClient, credit: tuple[LogisticRegression, pd.DataFrame]
) -> None:
    model, X = credit
    expected = model.predict(X.head(3))
    loaded = registry.load("credit/1", project=P)
    reordered = X.head(3)[["debt", "income", "age"]].assign(extra="ignored")
    np.testing.assert_array_equal(loaded.predict(reordered), expected)
    np.testing.assert_array_equal(loaded.predict(X.head(3).to_dict(orient="list")), expected)
    np.testing.assert_array_equal(loaded.predict(X.head(3).to_dict(orient="records")), expected)
    np.testing.assert_array_equal(loaded.predict(X.head(3).to_numpy()), expected)
    with pytest.raises(SignatureError, match="expects 3 columns"):
        loaded.predict(X.head(3).to_numpy()[:, :2])


# --- tamper detection -----------------------------------------------------------------------


def _flip_a_byte(root: Path, registry: RegistryClient, manifest: str, name: str | None) -> None:
    """Corrupt the file ``name`` of a stored folder in place (``None``: its manifest)."""
    digest = manifest
    if name is not None:
        [entry] = [e for e in registry.artifacts.read_manifest(manifest) if e.path == name]
        digest = entry.digest
    blob = root / "blobs" / digest[:2] / digest
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.skops", "loopml-model.json", None])
def test_a_tampered_model_blob_is_refused_and_nothing_changes(
    registry: RegistryClient,
    credit: tuple[LogisticRegression, pd.DataFrame],
    artifacts_root: Path,
    name: str | None,
) -> None:
    _, X = credit
    version = registry.get_version("credit/1", project=P)
    _flip_a_byte(artifacts_root, registry, version.digest, name)
    before = _state(registry)
    with pytest.raises(ArtifactIntegrityError):
        registry.load("credit/1", project=P)
    with pytest.raises(ArtifactIntegrityError):
        registry.load("credit", project=P)
    test = DataClient(registry.store, registry.artifacts).register(
        "credit-test", X.assign(default=0), project=P
    )
    with pytest.raises(ArtifactIntegrityError):
        registry.evaluate("credit/1", test.ref, project=P, target="default")
    assert _state(registry) == before
    assert registry.policy_results(version) == []


def test_a_tampered_onnx_conversion_is_refused(
    registry: RegistryClient, artifacts_root: Path
) -> None:
    pytest.importorskip("skl2onnx")
    X, y = _data()
    model = LogisticRegression(max_iter=5000).fit(X, y)
    version = registry.register(
        model, "credit", project=P, input_example=X.head(20), convert_onnx=True
    )
    assert version.onnx_digest is not None
    _flip_a_byte(artifacts_root, registry, version.onnx_digest, "model.onnx")
    with pytest.raises(ArtifactIntegrityError):
        registry.load_onnx("credit/1", project=P)
    np.testing.assert_array_equal(
        registry.load("credit/1", project=P).predict(X), model.predict(X)
    )  # the native model is untouched


# --- untrusted pickles -----------------------------------------------------------------------


def _forget_who_registered(registry: RegistryClient, version: ModelVersion) -> None:
    """What an imported artifact looks like: no identity of this store registered it."""
    with registry.store.write() as conn:
        conn.execute(
            update(tables.MODEL_VERSION)
            .where(tables.MODEL_VERSION.c.id == version.id)
            .values(registered_by=None)
        )


def test_a_pyfunc_nobody_known_registered_is_refused_unless_trusted(
    registry: RegistryClient,
) -> None:
    X, _ = _data()
    model = ThresholdModel("income", 0.0)
    version = registry.register(model, "credit", project=P, input_example=X.head(5))
    np.testing.assert_array_equal(
        registry.load("credit/1", project=P).predict(X), model.predict(X)
    )  # registered here by a known identity: trusted

    _forget_who_registered(registry, version)
    before = _state(registry)
    with pytest.raises(UntrustedModelError, match="trust=True") as refused:
        registry.load("credit/1", project=P)
    assert isinstance(refused.value, PermissionError)
    assert "pyfunc" in str(refused.value)
    assert _state(registry) == before

    trusted = registry.load("credit/1", project=P, trust=True)
    np.testing.assert_array_equal(trusted.predict(X), model.predict(X))


def test_a_non_executable_flavor_loads_whoever_registered_it(registry: RegistryClient) -> None:
    X, y = _data()
    model = LogisticRegression(max_iter=5000).fit(X, y)
    version = registry.register(model, "credit", project=P, input_example=X.head(5))
    _forget_who_registered(registry, version)
    loaded = registry.load("credit/1", project=P)  # skops: no code runs on load
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def _build_and_mark(marker: str) -> ThresholdModel:
    """Runs while unpickling: proof that loading executed code from the artifact."""
    Path(marker).write_text("code from the pickle ran")
    return ThresholdModel("income", 0.0)


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _build_and_mark, (self.marker,)


def test_registering_a_hand_made_pickle_from_a_run_is_refused_unless_trusted(
    registry: RegistryClient, tracking: TrackingClient, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(_Payload(str(marker))))
    (folder / "loopml-model.json").write_text(json.dumps({"flavor": "sklearn"}))
    run_id = tracking.create_run(project=P, name="upload", capture_context=False)
    tracking.log_artifact(run_id, folder, "model")
    tracking.end_run(run_id)
    with pytest.raises(UntrustedModelError, match="trust=True"):
        registry.register(f"runs:/{run_id}/model", "credit", project=P)
    assert not marker.exists()  # refused before anything was unpickled
    assert registry.list_models(project=P) == []

    version = registry.register(f"runs:/{run_id}/model", "credit", project=P, trust=True)
    assert marker.exists()
    assert (version.flavor, version.source_run_id) == ("pyfunc", run_id)
