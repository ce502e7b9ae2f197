"""Sketch data too large for one machine: one sketch per partition, merged.

Each partition (a Parquet file or folder that fsspec can read) is sketched where it
is read -- in this process, or in a Ray task -- and only the sketches, a few hundred
kilobytes each, come back to be merged. Sketches merge exactly (counts add up), so
the merged sketch is the one a single pass over all the rows would give, and so are
the decisions taken from it, however the rows were split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopml.errors import InvalidParameter
from loopml.monitoring._sketch import SketchLayout, TableSketch, sketch

__all__ = ["sketch_partitions"]

_MISSING_RAY = "Sketching on Ray needs the 'ray' package: pip install 'loopml[ray]'."


def sketch_partitions(
    partitions: Sequence[str],
    layout: Mapping[str, SketchLayout],
    *,
    executor: str = "local",
    address: str | None = None,
) -> TableSketch:
    """Sketch every partition with ``layout`` and merge the sketches.

    Args:
        partitions: Parquet files (or folders of them), paths or fsspec URLs.
        layout: The reference's layout (:attr:`TableSketch.layout`), so that the
            partitions' sketches share their bins and merge.
        executor: ``"local"`` (one after the other, here) or ``"ray"`` (one Ray task
            per partition; a running Ray is used, else one is started and left as is).
        address: The Ray cluster to connect to, for ``executor="ray"``.

    Returns:
        The merged sketch of every row of every partition.

    Raises:
        InvalidParameter: no partitions, or an unknown executor.
        ImportError: ``executor="ray"`` without Ray installed.
    """
    if not partitions:
        raise InvalidParameter("The 'partitions' parameter of sketch_partitions is empty.")
    layout_data = {name: lay.to_dict() for name, lay in layout.items()}
    if executor == "local":
        parts = [sketch_partition(p, layout_data) for p in partitions]
    elif executor == "ray":
        parts = _on_ray(partitions, layout_data, address)
    else:
        raise InvalidParameter(
            f"The 'executor' parameter of sketch_partitions must be 'local' or 'ray'. "
            f"Got {executor!r} instead."
        )
    merged = TableSketch.from_bytes(parts[0])
    for data in parts[1:]:
        merged = merged.merge(TableSketch.from_bytes(data))
    return merged


def sketch_partition(path: str, layout_data: Mapping[str, Any]) -> bytes:
    """The serialised sketch of one Parquet partition (what a Ray task returns)."""
    import pyarrow.dataset as ds

    layout = {
        name: SketchLayout(d["kind"], float(d["center"]), float(d["scale"]))
        for name, d in layout_data.items()
    }
    dataset = ds.dataset(path, format="parquet")
    columns = list(layout)

    def batches() -> Any:
        return dataset.to_batches(columns=columns)

    data: bytes = sketch(batches, layout).to_bytes()
    return data


def _on_ray(
    partitions: Sequence[str], layout_data: Mapping[str, Any], address: str | None
) -> list[bytes]:
    try:
        import ray
    except ImportError as error:
        raise ImportError(_MISSING_RAY) from error
    if not ray.is_initialized():
        ray.init(
            address=address,
            ignore_reinit_error=True,
            include_dashboard=False,
            log_to_driver=False,
        )
    remote = ray.remote(sketch_partition)
    shared: Mapping[str, Any] = dict(layout_data)
    layout_ref = ray.put(shared)
    return [bytes(b) for b in ray.get([remote.remote(p, layout_ref) for p in partitions])]
