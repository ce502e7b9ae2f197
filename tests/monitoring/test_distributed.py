"""Partition sketches merged locally and on Ray give the decisions of one pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.errors import InvalidParameter
from loopml.monitoring import detect_drift, make_frame, sketch
from loopml.monitoring._distributed import sketch_partitions


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, pa.Table, list[str]]:
    reference = sketch(make_frame(20_000, seed=1))
    current = pa.Table.from_pandas(
        make_frame(20_000, seed=2, shifts=["mean", "category_mix", "missing"]),
        preserve_index=False,
    )
    folder = tmp_path_factory.mktemp("partitions")
    paths = []
    for index, start in enumerate(range(0, current.num_rows, 6_000)):
        path = folder / f"part-{index}.parquet"
        pq.write_table(current.slice(start, 6_000), path)
        paths.append(str(path))
    return reference, current, paths


def _decisions(report: Any) -> list[tuple[str, str, str, float | None]]:
    """Each check's decision and effect (moments may differ in the last bits; counts not)."""
    return [(c.check, c.column, c.status, c.statistic) for c in report.checks]


def test_local_partitions_merge_into_the_one_pass_sketch(
    partitioned: tuple[Any, pa.Table, list[str]],
) -> None:
    reference, current, paths = partitioned
    merged = sketch_partitions(paths, reference.layout)
    whole = sketch(current, reference.layout)
    assert merged.rows == whole.rows == current.num_rows
    report = detect_drift(reference, merged)
    assert _decisions(report) == _decisions(detect_drift(reference, whole))
    assert report.drifted_columns == ("num_00", "num_03", "cat_0")


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_partitions_decide_like_local_ones(
    partitioned: tuple[Any, pa.Table, list[str]], ray_session: Any
) -> None:
    reference, _, paths = partitioned
    on_ray = sketch_partitions(paths, reference.layout, executor="ray")
    local = sketch_partitions(paths, reference.layout)
    assert on_ray.rows == local.rows
    assert _decisions(detect_drift(reference, on_ray)) == _decisions(detect_drift(reference, local))


def test_bad_partition_requests_are_named(tmp_path: Path) -> None:
    layout = sketch(make_frame(100, seed=1)).layout
    with pytest.raises(InvalidParameter, match="'partitions'"):
        sketch_partitions([], layout)
    with pytest.raises(InvalidParameter, match="'executor'"):
        sketch_partitions([str(tmp_path)], layout, executor="dask")
