"""Materializers: round trips, content hashes, registration and refusals."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import loopml.data
from loopml.artifacts import ArtifactStore
from loopml.data._hashing import content_hash
from loopml.errors import InvalidParameter, MaterializerError
from loopml.pipelines import _materializers
from loopml.pipelines._materializers import (
    VALUE_FILE,
    get_materializer,
    load_value,
    materializer_for,
    register_materializer,
    store_value,
)
from loopml.pipelines._task import StoredValue
from skops_support import poison_skops

BUILTIN_ALIASES = [
    "pandas.parquet",
    "pyarrow.parquet",
    "polars.parquet",
    "numpy.npy",
    "json",
    "sklearn.skops",
    "loopml.dataset_version",
    "cloudpickle",
]


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.from_uri(str(tmp_path / "artifacts"))


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registrations made by a test stay in that test."""
    monkeypatch.setattr(_materializers, "_user", [])
    yield


def round_trip(value: object, artifacts: ArtifactStore) -> tuple[StoredValue, Any]:
    stored = store_value(value, artifacts)
    return stored, load_value(stored, artifacts)


def rich_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "colour": pd.Categorical(["red", "blue", "red"], categories=["red", "blue", "green"]),
            "at": pd.date_range("2024-03-30", periods=3, freq="D", tz="Europe/Paris"),
            "x": [1.5, float("nan"), -0.0],
            "n": pd.array([1, None, 3], dtype="Int64"),
            "s": ["a", None, "c"],
        },
        index=pd.Index(["p", "q", "r"], name="key"),
    )


# --- round trips -------------------------------------------------------------------


def test_pandas_round_trip_keeps_dtypes_and_index(artifacts: ArtifactStore) -> None:
    frame = rich_frame()
    stored, back = round_trip(frame, artifacts)
    assert (stored.materializer, stored.executable) == ("pandas.parquet", False)
    assert stored.type_name == "pandas.DataFrame"
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert list(back["colour"].cat.categories) == ["red", "blue", "green"]
    assert str(back["at"].dtype) == str(frame["at"].dtype)


def test_pandas_range_index_round_trip(artifacts: ArtifactStore) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).iloc[1:]
    _, back = round_trip(frame, artifacts)
    pd.testing.assert_frame_equal(back, frame)
    assert isinstance(back.index, pd.RangeIndex) and back.index.start == 1


def test_pyarrow_and_polars_round_trips(artifacts: ArtifactStore) -> None:
    table = pa.table({"x": pa.array([1, 2], pa.int32()), "s": pa.array(["a", None])})
    table = table.replace_schema_metadata({"origin": "test"})
    stored, back = round_trip(table, artifacts)
    assert stored.materializer == "pyarrow.parquet"
    assert isinstance(back, pa.Table) and back.equals(table, check_metadata=True)

    frame = pl.DataFrame(
        {
            "c": pl.Series(["a", "b"], dtype=pl.Categorical),
            "at": pl.Series([1, 2]).cast(pl.Datetime("us", "Europe/Paris")),
            "l": [[1], [2, 3]],
        }
    )
    stored, back = round_trip(frame, artifacts)
    assert stored.materializer == "polars.parquet"
    assert isinstance(back, pl.DataFrame) and back.schema == frame.schema and back.equals(frame)


def test_numpy_round_trips(artifacts: ArtifactStore) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    stored, back = round_trip(array, artifacts)
    assert stored.materializer == "numpy.npy"
    assert back.dtype == np.float32 and back.shape == (3, 4)
    np.testing.assert_array_equal(back, array)

    _, back = round_trip(np.asfortranarray(array), artifacts)
    assert back.flags.f_contiguous
    stored, back = round_trip(np.float64(0.25), artifacts)
    assert stored.materializer == "numpy.npy"
    assert type(back) is np.float64 and back == 0.25


def test_object_arrays_are_never_saved_as_npy(artifacts: ArtifactStore) -> None:
    assert materializer_for(np.array([{"a": 1}], dtype=object)).name == "cloudpickle"


def test_json_round_trip(artifacts: ArtifactStore) -> None:
    value = {"b": [1, 2.5, None, True, {"deep": ["x", {"z": -0.0}]}], "a": "é", "n": 10**30}
    stored, back = round_trip(value, artifacts)
    assert (stored.materializer, stored.type_name) == ("json", "dict")
    assert back == value and list(back) == ["b", "a", "n"]
    assert math.copysign(1, back["b"][4]["deep"][1]["z"]) == -1

    _, back = round_trip({"t": (1, (2, 3)), "inf": float("inf"), "nan": float("nan")}, artifacts)
    assert back["t"] == [1, [2, 3]]  # JSON has no tuples
    assert back["inf"] == float("inf") and math.isnan(back["nan"])


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {("a", 1): 2}, [1, {2: 3}], 2 + 3j, {1, 2}],
    ids=["int-keys", "tuple-keys", "nested-int-keys", "complex", "set"],
)
def test_values_json_cannot_hold_go_to_cloudpickle(value: Any, artifacts: ArtifactStore) -> None:
    stored, back = round_trip(value, artifacts)
    assert (stored.materializer, stored.executable) == ("cloudpickle", True)
    assert back == value and type(back) is type(value)


def test_cyclic_list_is_not_json() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    assert materializer_for(cyclic).name == "cloudpickle"


def test_sklearn_round_trip_predicts_identically(artifacts: ArtifactStore) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    stored, back = round_trip(model, artifacts)
    assert (stored.materializer, stored.executable) == ("sklearn.skops", False)
    assert type(back) is LogisticRegression
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    np.testing.assert_array_equal(back.predict_proba(x), model.predict_proba(x))

    # skops files differ byte for byte between writes; the content hash does not.
    twin = LogisticRegression(max_iter=500).fit(x, y)
    assert store_value(twin, artifacts).content_hash == stored.content_hash
    other = LogisticRegression(max_iter=500, C=0.1).fit(x, y)
    assert store_value(other, artifacts).content_hash != stored.content_hash


def test_sklearn_with_types_outside_skops_defaults(artifacts: ArtifactStore) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(random_state=0).fit(x, y)  # holds sklearn.tree._tree.Tree
    _, back = round_trip(model, artifacts)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_a_stored_skops_value_cannot_run_code_on_load(
    artifacts: ArtifactStore, tmp_path: Path
) -> None:
    """Issue 12 item 4: a skops value whose schema names ``os.system`` is refused with
    a typed error even by a caller that trusts executable values, and runs nothing."""
    import dataclasses

    from sklearn.linear_model import LogisticRegression

    from loopml.errors import UntrustedTypesError

    stored = store_value(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), artifacts)
    folder = artifacts.get_dir(stored.digest, tmp_path / "value")
    marker = tmp_path / "pwned"
    poison_skops(folder / "model.skops", marker)
    crafted = dataclasses.replace(stored, digest=artifacts.put_dir(folder))
    with pytest.raises(UntrustedTypesError, match=r"os\.system") as refused:
        load_value(crafted, artifacts, trust_executable=True)
    assert refused.value.types == ["os.system"]
    assert not marker.exists()
    assert load_value(stored, artifacts, trust_executable=False).predict([[1.0]]) == [1]


def test_custom_class_round_trips_with_cloudpickle(artifacts: ArtifactStore) -> None:
    @dataclass
    class Local:  # defined in a function: cloudpickle must carry the class itself
        name: str
        weights: list[float]

    stored, back = round_trip(Local("m", [0.5]), artifacts)
    assert (stored.materializer, stored.executable) == ("cloudpickle", True)
    assert stored.type_name.endswith("Local")
    assert back == Local("m", [0.5])


def test_dataset_version_round_trip_keeps_the_record(artifacts: ArtifactStore) -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "v": [0.5, 1.5, 2.5]})
    version = loopml.data.register("scores", frame)
    stored, back = round_trip(version, artifacts)
    assert stored.materializer == "loopml.dataset_version"
    assert stored.content_hash == version.content_hash
    assert isinstance(back, loopml.data.DatasetVersion)
    assert (back.id, back.ref, back.project, back.content_hash) == (
        version.id,
        version.ref,
        version.project,
        version.content_hash,
    )
    # the same data as a frame has the same identity
    assert store_value(frame, artifacts).content_hash == version.content_hash


def test_stored_folder_carries_alias_and_type(artifacts: ArtifactStore, tmp_path: Path) -> None:
    stored = store_value([1, 2], artifacts)
    folder = artifacts.get_dir(stored.digest, tmp_path / "out")
    meta = json.loads((folder / VALUE_FILE).read_text())
    assert meta["materializer"] == "json" and meta["type_name"] == "list"
    assert StoredValue.from_dict(stored.to_dict()) == stored


# --- content hashes ----------------------------------------------------------------


def test_frames_hash_their_data_whatever_the_path(artifacts: ArtifactStore, tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1, 2, 3], "s": ["a", "b", None]})
    expected = content_hash(pa.table({"x": [1, 2, 3], "s": ["a", "b", None]}))
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"s": ["a", "b", None], "x": pa.array([1, 2, 3], pa.int32())}), path)
    same_data = [
        frame,
        pd.read_parquet(path),  # other column order, int32, written by another writer
        frame.astype({"x": "int32"}),
        pa.Table.from_pandas(frame),
        pl.from_pandas(frame),
    ]
    hashes = {store_value(v, artifacts).content_hash for v in same_data}
    assert hashes == {expected}

    different = [
        frame.assign(x=[1, 2, 4]),
        frame.set_index(pd.Index([10, 11, 12])),
        frame.iloc[::-1],
        frame.rename(columns={"x": "y"}),
    ]
    other_hashes = {store_value(v, artifacts).content_hash for v in different}
    assert expected not in other_hashes and len(other_hashes) == len(different)


def test_index_is_part_of_the_hash(artifacts: ArtifactStore) -> None:
    frame = rich_frame()
    assert (
        store_value(frame, artifacts).content_hash
        != store_value(frame.set_axis(["p", "q", "z"]), artifacts).content_hash
    )
    assert (
        store_value(frame.copy(), artifacts).content_hash
        == store_value(frame, artifacts).content_hash
    )


def test_array_and_json_hashes(artifacts: ArtifactStore) -> None:
    def h(value: object) -> str:
        return store_value(value, artifacts).content_hash

    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert h(array) == h(np.asfortranarray(array)) == h(array.copy())
    assert h(array) != h(array.astype(np.float64))
    assert h(array) != h(array.reshape(3, 2))
    assert h(np.float64(1.0)) != h(np.array(1.0))

    assert h({"a": 1, "b": [1, 2]}) == h({"b": [1, 2], "a": 1})
    assert len({h(1), h(1.0), h(True), h("1")}) == 4
    assert h({"a": (1, 2)}) == h({"a": [1, 2]})  # stored alike, loaded alike


# --- registration ------------------------------------------------------------------


class Celsius:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Celsius) and other.degrees == self.degrees

    __hash__ = None  # type: ignore[assignment]


class CelsiusMaterializer:
    name = "test.celsius"
    executable = False

    def handles(self, value: object) -> bool:
        return isinstance(value, Celsius)

    def save(self, value: object, folder: Path) -> str:
        assert isinstance(value, Celsius)
        (folder / "degrees.txt").write_text(repr(value.degrees))
        return f"celsius:{value.degrees!r}"

    def load(self, folder: Path) -> object:
        return Celsius(float((folder / "degrees.txt").read_text()))


class ArraysAsText:
    """Claims NumPy arrays, which a built-in also handles."""

    executable = False

    def __init__(self, name: str = "test.arrays") -> None:
        self.name = name

    def handles(self, value: object) -> bool:
        return isinstance(value, np.ndarray)

    def save(self, value: object, folder: Path) -> str:
        (folder / "a.txt").write_text(json.dumps(np.asarray(value).tolist()))
        return "text"

    def load(self, folder: Path) -> object:
        return np.array(json.loads((folder / "a.txt").read_text()))


def test_registered_materializer_stores_its_type(artifacts: ArtifactStore) -> None:
    register_materializer(CelsiusMaterializer())
    stored, back = round_trip(Celsius(21.5), artifacts)
    assert (stored.materializer, stored.content_hash) == ("test.celsius", "celsius:21.5")
    assert back == Celsius(21.5)
    assert get_materializer("test.celsius").name == "test.celsius"


def test_registered_materializers_come_first_and_replace_by_name(
    artifacts: ArtifactStore,
) -> None:
    register_materializer(ArraysAsText())
    register_materializer(CelsiusMaterializer())
    assert materializer_for(np.zeros(2)).name == "test.arrays"
    stored, back = round_trip(np.array([1, 2]), artifacts)
    assert stored.materializer == "test.arrays" and back.tolist() == [1, 2]

    replacement = ArraysAsText()
    register_materializer(replacement)
    assert [m.name for m in _materializers._user] == ["test.arrays", "test.celsius"]
    assert get_materializer("test.arrays") is replacement


@pytest.mark.parametrize("alias", BUILTIN_ALIASES)
def test_builtin_aliases_are_stable_and_reserved(alias: str) -> None:
    assert get_materializer(alias).name == alias
    with pytest.raises(InvalidParameter, match="built-in alias"):
        register_materializer(ArraysAsText(alias))


def test_register_rejects_what_is_not_a_materializer() -> None:
    with pytest.raises(InvalidParameter, match="lacking handles, save, load"):
        register_materializer(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="non-empty 'name'"):
        register_materializer(ArraysAsText(""))


def test_failing_user_materializer_names_itself(artifacts: ArtifactStore) -> None:
    class Broken(CelsiusMaterializer):
        def save(self, value: object, folder: Path) -> str:
            raise OSError("disk on fire")

    register_materializer(Broken())
    with pytest.raises(MaterializerError, match=r"'test.celsius' failed \(OSError: disk on fire"):
        store_value(Celsius(1.0), artifacts)


# --- errors and refusals ---------------------------------------------------------------


def test_unknown_alias(artifacts: ArtifactStore) -> None:
    with pytest.raises(MaterializerError, match="No materializer is named 'nope'"):
        get_materializer("nope")
    stored = store_value([1], artifacts)
    renamed = StoredValue("nope", stored.digest, stored.content_hash, "list")
    with pytest.raises(MaterializerError, match="'nope'"):
        load_value(renamed, artifacts)


def test_folder_written_by_another_materializer(artifacts: ArtifactStore) -> None:
    register_materializer(CelsiusMaterializer())
    stored = store_value([1], artifacts)
    wrong = StoredValue("test.celsius", stored.digest, stored.content_hash, "list")
    with pytest.raises(MaterializerError, match="written by the materializer 'json'"):
        load_value(wrong, artifacts)


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (lambda: (i for i in range(3)), "generator"),
        (threading.Lock, "_thread.lock"),
        (lambda: open(__file__), "_io.TextIOWrapper"),  # noqa: SIM115
    ],
    ids=["generator", "lock", "open-file"],
)
def test_unstorable_values_name_their_type(
    make: Any, type_name: str, artifacts: ArtifactStore
) -> None:
    value = make()
    try:
        with pytest.raises(MaterializerError, match=f"cannot store a value of type '{type_name}'"):
            store_value(value, artifacts)
    finally:
        if hasattr(value, "close"):
            value.close()
    assert list(artifacts.iter_blobs()) == []


def test_executable_values_are_refused_unless_trusted(artifacts: ArtifactStore) -> None:
    stored = store_value({1: "a"}, artifacts)
    assert stored.executable
    with pytest.raises(MaterializerError, match="runs pickled code"):
        load_value(stored, artifacts, trust_executable=False)
    assert load_value(stored, artifacts, trust_executable=True) == {1: "a"}
    plain = store_value({"1": "a"}, artifacts)
    assert load_value(plain, artifacts, trust_executable=False) == {"1": "a"}


def test_frame_parquet_cannot_hold_falls_back_to_cloudpickle(
    artifacts: ArtifactStore, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pd.DataFrame({"mixed": [1, "a"]})
    stored, back = round_trip(frame, artifacts)
    assert (stored.materializer, stored.executable) == ("cloudpickle", True)
    pd.testing.assert_frame_equal(back, frame)
    assert "storing it with cloudpickle instead" in caplog.text


def test_importing_and_choosing_import_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from loopml.pipelines._materializers import materializer_for\n"
        "names = [materializer_for(v).name for v in ({'a': 1}, object(), [1.5])]\n"
        "heavy = ('pandas', 'polars', 'sklearn', 'pyarrow', 'numpy', 'skops',"
        " 'loopml.data')\n"
        "print(names, [m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['json', 'cloudpickle', 'json'] []"


# --- properties ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=15,
)

_PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_PROPERTY
@given(value=json_values)
def test_json_values_round_trip(value: Any, artifacts: ArtifactStore) -> None:
    stored, back = round_trip(value, artifacts)
    assert stored.materializer == "json"
    assert back == value and type(back) is type(value)
    assert store_value(json.loads(json.dumps(value)), artifacts).content_hash == (
        stored.content_hash
    )


@_PROPERTY
@given(
    array=hnp.arrays(
        dtype=st.sampled_from(["int8", "<i4", ">i8", "float32", "float64", "bool", "U3", "M8[s]"]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
)
def test_numpy_arrays_round_trip(array: Any, artifacts: ArtifactStore) -> None:
    stored, back = round_trip(array, artifacts)
    assert stored.materializer == "numpy.npy"
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert store_value(array.copy(order="F"), artifacts).content_hash == stored.content_hash
