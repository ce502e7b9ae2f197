"""Sketches of reference dataset versions, computed once and kept in the stores.

A dataset version never changes, so the sketch of its columns (laid out by its
stored profile's means and standard deviations) is computed on the first monitor
run that needs it, put into the artifact store, and found again by a key naming
the version's content, the columns and the sketch format (``monitor_reference``).
Later runs read a few hundred kilobytes instead of the reference data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from loopml.monitoring._sketch import TableSketch, layout_from_profile, sketch
from loopml.store import now_ms, tables

if TYPE_CHECKING:
    from loopml.artifacts import ArtifactStore
    from loopml.data import DatasetVersion
    from loopml.store import Store

__all__ = ["reference_sketch"]

_reference = tables.MONITOR_REFERENCE
_FORMAT = "table-sketch-1"


def reference_sketch(
    store: Store,
    artifacts: ArtifactStore,
    version: DatasetVersion,
    columns: Sequence[str],
    read: Callable[[], pa.Table],
) -> TableSketch:
    """The sketch of ``columns`` of dataset ``version``, from the cache or computed now.

    Args:
        store: The metadata store (the cache's index).
        artifacts: The artifact store (the cached sketches).
        version: The reference dataset version.
        columns: The columns to sketch (numeric and categorical ones).
        read: Reads the version's rows, called only when the sketch is not cached.
    """
    text = "\x1f".join((_FORMAT, version.content_hash, *columns))
    key = hashlib.sha256(text.encode()).hexdigest()
    with store.read() as conn:
        digest = conn.execute(select(_reference.c.digest).where(_reference.c.key == key)).scalar()
    if digest is not None and artifacts.exists(str(digest)):
        return TableSketch.from_bytes(artifacts.get_bytes(str(digest)))
    layout = layout_from_profile(version.profile, columns=list(columns))
    built = sketch(read().select(list(layout)), layout)
    digest = artifacts.put_bytes(built.to_bytes())
    try:
        with store.write() as conn:
            conn.execute(_reference.delete().where(_reference.c.key == key))
            conn.execute(
                insert(_reference).values(
                    key=key, digest=digest, rows=built.rows, created_at=now_ms()
                )
            )
    except IntegrityError:  # another monitor cached the same sketch meanwhile
        pass
    return built
