"""Which prediction-log folder a server process writes to, so servers never share one.

Every ``loopml serve`` process (each ``--workers`` process too) writes its
write-ahead log in a folder of its own under one base folder (default
``LOOPML_HOME/predictions``): it claims the first ``worker-N`` sub-folder whose
lock no running process holds. So a second server started in the same home takes
``worker-1`` while the first keeps ``worker-0``, with nothing to configure.

A server that crashed leaves its folder unlocked (the lock is an ``flock``, which
the kernel drops with the process). A server starting later either claims that
very folder, and recovers it when its app starts, or finds it unheld among the
others and recovers it on the spot: what a crashed server logged reaches the
store whichever server starts next. WAL files written straight into the base
folder (by loopml versions before per-server folders) are recovered the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter
from loopml.serving._predlog import PredictionLog
from loopml.store import Store

__all__ = ["FOLDER_PREFIX", "claim_log"]

FOLDER_PREFIX = "worker-"
"""Per-process log folders are ``worker-0``, ``worker-1`` … under the base folder."""

_log = logging.getLogger(__name__)


def claim_log(base: Path, store: Store, artifacts: ArtifactStore, source: str) -> PredictionLog:
    """Open the first ``worker-N`` folder of ``base`` no running process holds.

    Every other folder no process holds (the base folder itself included) is
    recovered now, its predictions written to the store.

    Args:
        base: the base folder of the prediction log (created if needed).
        store: the metadata store.
        artifacts: the artifact store.
        source: who writes the segments (the host name).

    Returns:
        The claimed log (not recovered yet: the server's start-up does it).
    """

    def open_log(folder: Path) -> PredictionLog | None:
        try:
            return PredictionLog(folder, store, artifacts, source)
        except InvalidParameter:
            return None  # another process holds it

    claimed = None
    index = 0
    while claimed is None:
        claimed = open_log(base / f"{FOLDER_PREFIX}{index}")
        index += 1
    for folder in [base, *sorted(base.glob(f"{FOLDER_PREFIX}*"))]:
        if folder == claimed.folder or not folder.is_dir():
            continue
        orphan = open_log(folder)
        if orphan is not None:
            with orphan:
                recovered = orphan.recover()
            if recovered:
                _log.info("Recovered %d logged predictions from %s.", recovered, folder)
    return claimed
