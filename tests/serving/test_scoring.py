"""Batch scoring: ``score_file`` over real files, a real registry and real deployments.

Models are fitted on scikit-learn's breast-cancer data and registered in project
``p`` on every back-end (``store_uri``); inputs are Parquet, CSV and folders written
to the test's folder. Streaming is checked by the number of chunks (no memory or
timing measurements).
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.tree import DecisionTreeClassifier

from loopml.artifacts import ArtifactStore
from loopml.errors import (
    DataSourceError,
    InvalidParameter,
    ModelError,
    ModelNotFound,
    SignatureError,
)
from loopml.registry import RegistryClient
from loopml.serving._deployments import DeploymentClient
from loopml.serving._scoring import DEFAULT_CHUNK_ROWS, ScoringResult, score_file
from loopml.store import open_store

P = "p"
ROWS = 569  # rows of the breast-cancer data


@dataclass
class Setup:
    """The registry, the data, and the fitted models by version (``cancer/1`` …)."""

    registry: RegistryClient
    features: pd.DataFrame
    fitted: dict[str, Any]

    def score(self, source: Path | str, destination: Path, target: str, **kw: Any) -> ScoringResult:
        return score_file(
            source,
            destination,
            target,
            store=self.registry.store,
            artifacts=self.registry.artifacts,
            project=P,
            **kw,
        )

    def deploy(self, endpoint: str, *routes: str) -> None:
        DeploymentClient(self.registry.store, self.registry).set(endpoint, routes, project=P)


@pytest.fixture
def setup(store_uri: str, tmp_path: Path) -> Iterator[Setup]:
    """``cancer/1`` (logistic regression, string labels), ``cancer/2`` (a tree), ``cancer/3``."""
    store = open_store(store_uri)
    registry = RegistryClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    labels = np.where(target.to_numpy() == 1, "benign", "malignant")
    fitted = {
        "cancer/1": LogisticRegression(max_iter=5000).fit(features, labels),
        "cancer/2": DecisionTreeClassifier(max_depth=2, random_state=0).fit(features, labels),
        "cancer/3": DecisionTreeClassifier(max_depth=1, random_state=0).fit(features, labels),
    }
    for model in fitted.values():
        registry.register(model, "cancer", project=P, input_example=features.head())
    yield Setup(registry, features, fitted)
    store.close()


@pytest.fixture
def parquet(setup: Setup, tmp_path: Path) -> Path:
    """The features as a Parquet file of several row groups."""
    path = tmp_path / "input.parquet"
    pq.write_table(pa.Table.from_pandas(setup.features, preserve_index=False), path, 250)
    return path


def _unchanged_on_failure(output: Path) -> bytes:
    """Put sentinel bytes at ``output``; the caller checks they survive a failure."""
    output.write_bytes(b"previous scores")
    return output.read_bytes()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- round trips --------------------------------------------------------------------------------


def test_scores_equal_in_memory_predict_across_many_chunks(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scored.parquet"
    progress: list[tuple[int, int | None]] = []

    result = setup.score(
        parquet,
        output,
        "cancer/1",
        chunk_rows=100,
        on_progress=lambda d, t: progress.append((d, t)),
    )

    assert (result.rows, result.chunks, result.model_version) == (ROWS, 6, "cancer/1")
    assert (result.endpoint, result.revision, result.destination) == (None, None, output)
    assert result.seconds > 0
    assert progress == [(0, ROWS), *[(n, ROWS) for n in (100, 200, 300, 400, 500)], (ROWS, ROWS)]
    scored = pd.read_parquet(output)
    assert list(scored.columns) == [*setup.features.columns, "prediction"]
    pd.testing.assert_frame_equal(scored[setup.features.columns], setup.features)
    expected = setup.registry.load("cancer/1", project=P).predict(setup.features)
    assert scored["prediction"].tolist() == expected.tolist()
    assert expected.tolist() == setup.fitted["cancer/1"].predict(setup.features).tolist()
    assert pq.ParquetFile(output).metadata.num_row_groups == 6
    assert _leftovers(tmp_path) == []


def test_proba_columns_are_named_by_class_and_match_predict_proba(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scored.parquet"
    setup.score(parquet, output, "cancer/1", proba=True, chunk_rows=200)

    scored = pd.read_parquet(output)
    assert list(scored.columns[-3:]) == ["prediction", "proba_benign", "proba_malignant"]
    expected = setup.fitted["cancer/1"].predict_proba(setup.features)
    np.testing.assert_allclose(scored[["proba_benign", "proba_malignant"]], expected)


def test_csv_input_streams_and_scores_the_same(setup: Setup, tmp_path: Path) -> None:
    source = tmp_path / "input.csv"
    setup.features.to_csv(source, index=False)
    output = tmp_path / "scored.parquet"
    totals: set[int | None] = set()

    result = setup.score(
        source, output, "cancer/2", chunk_rows=64, on_progress=lambda d, t: totals.add(t)
    )

    assert (result.rows, result.chunks) == (ROWS, math.ceil(ROWS / 64))
    assert totals == {None}  # a CSV's row count is not known before reading it
    expected = setup.fitted["cancer/2"].predict(setup.features)
    assert pd.read_parquet(output)["prediction"].tolist() == expected.tolist()


def test_a_folder_of_parquet_files_is_read_file_after_file(setup: Setup, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, ROWS, 200)):
        setup.features.iloc[start : start + 200].to_parquet(folder / f"part-{i}.parquet")
    output = tmp_path / "scored.parquet"

    result = setup.score(folder, output, "cancer/1", chunk_rows=150)

    assert result.rows == ROWS
    scored = pd.read_parquet(output)
    pd.testing.assert_frame_equal(scored[setup.features.columns], setup.features)
    expected = setup.fitted["cancer/1"].predict(setup.features)
    assert scored["prediction"].tolist() == expected.tolist()


def test_a_multi_output_model_writes_one_prediction_column_per_output(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    targets = setup.features[["mean area", "mean perimeter"]].to_numpy()
    inputs = setup.features.drop(columns=["mean area", "mean perimeter"])
    model = KNeighborsRegressor(n_neighbors=3).fit(inputs, targets)
    setup.registry.register(model, "sizes", project=P, input_example=inputs.head())
    output = tmp_path / "scored.parquet"

    setup.score(parquet, output, "sizes", chunk_rows=300)

    scored = pd.read_parquet(output)
    np.testing.assert_allclose(
        scored[["prediction_0", "prediction_1"]], model.predict(inputs), rtol=1e-12
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.integers(1, 300), chunk_rows=st.integers(1, 400), row_group=st.integers(1, 300))
def test_any_chunking_gives_the_same_scores(
    setup: Setup, rows: int, chunk_rows: int, row_group: int
) -> None:
    data = setup.features.iloc[:rows]
    with tempfile.TemporaryDirectory() as folder:
        source, output = Path(folder) / "in.parquet", Path(folder) / "out.parquet"
        pq.write_table(pa.Table.from_pandas(data, preserve_index=False), source, row_group)

        result = setup.score(source, output, "cancer/3", chunk_rows=chunk_rows)

        assert (result.rows, result.chunks) == (rows, math.ceil(rows / chunk_rows))
        scored = pq.read_table(output)
        assert scored.num_rows == rows
        expected = setup.fitted["cancer/3"].predict(data).tolist()
        assert scored.column("prediction").to_pylist() == expected


def test_the_default_chunk_is_larger_than_this_data(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    assert DEFAULT_CHUNK_ROWS > ROWS
    assert setup.score(parquet, tmp_path / "scored.parquet", "cancer/1").chunks == 1


def test_an_existing_output_is_replaced_on_success(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scored.parquet"
    _unchanged_on_failure(output)
    setup.score(parquet, output, "cancer/1")
    assert pd.read_parquet(output).shape == (ROWS, setup.features.shape[1] + 1)


# -- what is scored -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("routes", "used"),
    [
        (("cancer/1:30", "cancer/2:70", "cancer/3:shadow"), "cancer/2"),
        (("cancer/1:60:canary", "cancer/2:40", "cancer/3:shadow"), "cancer/2"),
        (("cancer/1:50", "cancer/3:50"), "cancer/1"),
        (("cancer/3:50", "cancer/1:50"), "cancer/3"),
        (("cancer@champion:90", "cancer/1:10:canary"), "cancer/2"),
    ],
    ids=["largest-weight", "canary-never", "tie-first", "tie-first-again", "alias"],
)
def test_an_endpoint_scores_with_its_heaviest_primary_route(
    setup: Setup, parquet: Path, tmp_path: Path, routes: tuple[str, ...], used: str
) -> None:
    setup.registry.promote("cancer/2", project=P, force=True, reason="test setup")
    setup.deploy("triage", *routes)
    output = tmp_path / "scored.parquet"

    result = setup.score(parquet, output, "triage")

    assert (result.endpoint, result.revision, result.model_version) == ("triage", 1, used)
    expected = setup.fitted[used].predict(setup.features)
    assert pd.read_parquet(output)["prediction"].tolist() == expected.tolist()


def test_the_live_revision_is_used(setup: Setup, parquet: Path, tmp_path: Path) -> None:
    setup.deploy("triage", "cancer/1:100")
    setup.deploy("triage", "cancer/3:100")
    result = setup.score(parquet, tmp_path / "scored.parquet", "triage")
    assert (result.revision, result.model_version) == (2, "cancer/3")


def test_a_bare_name_is_the_endpoint_and_a_reference_is_the_model(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    setup.deploy("cancer", "cancer/1:100")
    output = tmp_path / "scored.parquet"

    assert setup.score(parquet, output, "cancer").model_version == "cancer/1"
    for ref in ("cancer@latest", "models:/cancer", "cancer/3"):
        result = setup.score(parquet, output, ref)
        assert (result.endpoint, result.model_version) == (None, "cancer/3")


def test_a_bare_name_without_an_endpoint_is_the_latest_model(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    result = setup.score(parquet, tmp_path / "scored.parquet", "cancer")
    assert (result.endpoint, result.model_version) == (None, "cancer/3")


def test_an_endpoint_with_only_canaries_is_refused(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    setup.deploy("triage", "cancer/1:100:canary")
    output = tmp_path / "scored.parquet"
    before = _unchanged_on_failure(output)

    with pytest.raises(InvalidParameter, match=r"'triage' .*no primary route"):
        setup.score(parquet, output, "triage")
    assert output.read_bytes() == before


# -- errors ---------------------------------------------------------------------------------------


def test_a_missing_column_names_the_column_chunk_and_rows(setup: Setup, tmp_path: Path) -> None:
    source = tmp_path / "input.parquet"
    setup.features.drop(columns=["mean radius"]).to_parquet(source)
    output = tmp_path / "scored.parquet"
    before = _unchanged_on_failure(output)

    with pytest.raises(SignatureError) as info:
        setup.score(source, output, "cancer/1", chunk_rows=100)

    message = str(info.value)
    assert "'mean radius' is missing" in message
    assert f"{source}: chunk 1, rows 0-99" in message
    assert output.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_a_bad_value_after_written_chunks_leaves_the_old_output(
    setup: Setup, tmp_path: Path
) -> None:
    data = setup.features.copy()
    data.loc[250, "mean texture"] = np.nan  # the signature allows no null there
    source = tmp_path / "input.parquet"
    data.to_parquet(source)
    output = tmp_path / "scored.parquet"
    before = _unchanged_on_failure(output)
    progress: list[int] = []

    with pytest.raises(SignatureError) as info:
        setup.score(
            source, output, "cancer/1", chunk_rows=100, on_progress=lambda d, t: progress.append(d)
        )

    assert "chunk 3, rows 200-299" in str(info.value)
    assert "'mean texture' has 1 missing value (first at row 250)" in str(info.value)
    assert progress == [0, 100, 200]  # two chunks were written to the temporary file
    assert output.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_a_missing_input_names_the_path(setup: Setup, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.parquet"
    with pytest.raises(DataSourceError, match=re.escape(f"{missing}: no such file")):
        setup.score(missing, tmp_path / "scored.parquet", "cancer/1")
    assert not (tmp_path / "scored.parquet").exists()


def test_an_unreadable_input_names_the_path(setup: Setup, tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"this is not parquet at all")
    output = tmp_path / "scored.parquet"
    before = _unchanged_on_failure(output)

    with pytest.raises(DataSourceError, match=re.escape(str(broken))):
        setup.score(broken, output, "cancer/1")
    assert output.read_bytes() == before


def test_an_input_without_rows_is_refused(setup: Setup, tmp_path: Path) -> None:
    source = tmp_path / "empty.parquet"
    setup.features.iloc[:0].to_parquet(source)
    output = tmp_path / "scored.parquet"
    before = _unchanged_on_failure(output)

    with pytest.raises(DataSourceError, match="no rows"):
        setup.score(source, output, "cancer/1")
    assert output.read_bytes() == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nothing", "No endpoint or model named 'nothing' in project 'p'"),
        ("cancer/9", "has no version 9"),
        ("cancer@champion", "no alias 'champion'"),
        ("models:/nothing/1", "No model named 'nothing'"),
    ],
)
def test_an_unknown_model_or_endpoint_is_model_not_found(
    setup: Setup, parquet: Path, tmp_path: Path, target: str, message: str
) -> None:
    output = tmp_path / "scored.parquet"
    before = _unchanged_on_failure(output)
    with pytest.raises(ModelNotFound, match=message):
        setup.score(parquet, output, target)
    assert output.read_bytes() == before


def test_the_output_cannot_be_the_input(
    setup: Setup, parquet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    link = tmp_path / "link.parquet"
    link.symlink_to(parquet)
    before = parquet.read_bytes()
    for source, output in [(parquet, parquet), ("input.parquet", parquet), (parquet, link)]:
        with pytest.raises(InvalidParameter, match="would overwrite the input"):
            setup.score(source, output, "cancer/1")
    assert parquet.read_bytes() == before
    assert link.is_symlink()


def test_the_output_cannot_be_inside_the_input_folder(setup: Setup, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    setup.features.to_parquet(folder / "part-0.parquet")
    with pytest.raises(InvalidParameter, match="would overwrite the input"):
        setup.score(folder, folder / "scored.parquet", "cancer/1")
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing/scored.parquet", r"output folder '.*missing' does not exist"),
        ("scored.csv", r"must end in \.parquet, \.pq or \.parq; got '.*scored\.csv'"),
        ("a-folder.parquet", "is a folder"),
    ],
)
def test_a_bad_output_path_is_refused(
    setup: Setup, parquet: Path, tmp_path: Path, name: str, message: str
) -> None:
    (tmp_path / "a-folder.parquet").mkdir()
    with pytest.raises(InvalidParameter, match=message):
        setup.score(parquet, tmp_path / name, "cancer/1")
    assert not (tmp_path / "missing").exists()
    assert not (tmp_path / "scored.csv").exists()


@pytest.mark.parametrize("chunk_rows", [0, -5, True, 2.5])
def test_a_bad_chunk_size_is_refused(
    setup: Setup, parquet: Path, tmp_path: Path, chunk_rows: Any
) -> None:
    with pytest.raises(
        InvalidParameter, match=rf"chunk size .*got {re.escape(repr(chunk_rows))}\."
    ):
        setup.score(parquet, tmp_path / "scored.parquet", "cancer/1", chunk_rows=chunk_rows)


def test_proba_needs_a_model_with_probabilities(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    area = setup.features["mean area"]
    inputs = setup.features.drop(columns=["mean area"])
    setup.registry.register(
        LinearRegression().fit(inputs, area), "area", project=P, input_example=inputs.head()
    )
    output = tmp_path / "scored.parquet"

    with pytest.raises(ModelError, match=r"area/1 .*has no predict_proba"):
        setup.score(parquet, output, "area/1", proba=True)
    assert not output.exists()
    assert setup.score(parquet, output, "area/1").rows == ROWS


def test_an_input_column_named_like_an_output_is_refused(setup: Setup, tmp_path: Path) -> None:
    source = tmp_path / "input.parquet"
    setup.features.assign(proba_benign=0.5).to_parquet(source)
    output = tmp_path / "scored.parquet"

    setup.score(source, output, "cancer/1")  # no proba asked: no clash
    with pytest.raises(InvalidParameter, match="already has a column 'proba_benign'"):
        setup.score(source, output, "cancer/1", proba=True)
    assert "proba_benign" in pd.read_parquet(output).columns  # the first output stays


# -- models of other shapes (pyfunc) --------------------------------------------------------------


class ShiftingTypes:
    """Integers for rows whose first ``mean radius`` is small, halves otherwise."""

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[Any]:
        radius = frame["mean radius"].to_numpy()
        return radius.astype(np.int64) if radius[0] < 15 else radius + 0.5


class Scores:
    """Probabilities without class labels (no ``classes_``), like an ONNX model."""

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[np.int64]:
        return (frame["mean radius"].to_numpy() > 15).astype(np.int64)

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        high = (frame["mean radius"].to_numpy() / 30).clip(0, 1)
        return np.column_stack([1 - high, high])


class Fragile:
    """Fails on any chunk holding a radius above 25."""

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        if (frame["mean radius"] > 25).any():
            raise RuntimeError("radius out of range")
        return frame["mean radius"].to_numpy()


def _sorted_by_radius(setup: Setup, tmp_path: Path, ascending: bool) -> Path:
    source = tmp_path / "sorted.parquet"
    setup.features.sort_values("mean radius", ascending=ascending).to_parquet(source)
    return source


def test_later_chunks_are_cast_to_the_first_chunks_types(setup: Setup, tmp_path: Path) -> None:
    setup.registry.register(
        ShiftingTypes(), "shifting", project=P, input_example=setup.features.head()
    )
    output = tmp_path / "scored.parquet"

    descending = _sorted_by_radius(setup, tmp_path, ascending=False)
    setup.score(descending, output, "shifting", chunk_rows=100)  # floats, then integers
    assert pq.read_schema(output).field("prediction").type == pa.float64()

    before = output.read_bytes()
    ascending = _sorted_by_radius(setup, tmp_path, ascending=True)
    with pytest.raises(ModelError, match="changed type between chunks"):
        setup.score(ascending, output, "shifting", chunk_rows=100)  # integers, then floats
    assert output.read_bytes() == before


def test_proba_columns_are_numbered_without_class_labels(
    setup: Setup, parquet: Path, tmp_path: Path
) -> None:
    setup.registry.register(Scores(), "scores", project=P, input_example=setup.features.head())
    output = tmp_path / "scored.parquet"

    setup.score(parquet, output, "scores", proba=True, chunk_rows=300)

    scored = pd.read_parquet(output)
    np.testing.assert_allclose(
        scored[["proba_0", "proba_1"]], Scores().predict_proba(setup.features)
    )


def test_a_model_failing_on_a_chunk_is_a_model_error_naming_the_chunk(
    setup: Setup, tmp_path: Path
) -> None:
    setup.registry.register(Fragile(), "fragile", project=P, input_example=setup.features.head())
    source = _sorted_by_radius(setup, tmp_path, ascending=True)
    output = tmp_path / "scored.parquet"

    with pytest.raises(ModelError) as info:
        setup.score(source, output, "fragile", chunk_rows=100)

    message = str(info.value)
    assert "chunk 6, rows 500-568" in message
    assert "fragile/1 failed: RuntimeError: radius out of range" in message
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not output.exists()
    assert _leftovers(tmp_path) == []
