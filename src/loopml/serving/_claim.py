"""Which prediction-log folder a server process writes to, so servers never share one.

Every ``loopml serve`` process (each ``--workers`` process too) writes its
write-ahead log in a folder of its own under one base folder (default
``LOOPML_HOME/predictions``): it claims the first ``worker-N`` sub-folder whose
lock no running process holds. So a second server started in the same home takes
``worker-1`` while the first keeps ``worker-0``, with nothing to configure.

A server that crashed leaves its folder unlocked (the lock is an ``flock``, which
the kernel drops with the process). A server starting later either claims that
very folder or finds it unheld among the others; either way its app recovers it
when it starts: what a crashed server logged reaches the store whichever server
starts next. WAL files written straight into the base
folder (by loopml versions before per-server folders) are recovered the same way.
"""

from __future__ import annotations

from pathlib import Path

from loopml.artifacts import ArtifactStore
from loopml.errors import InvalidParameter
from loopml.serving._predlog import PredictionLog
from loopml.store import Store

__all__ = ["FOLDER_PREFIX", "claim_log", "default_log_base", "local_log_folders"]

FOLDER_PREFIX = "worker-"
"""Per-process log folders are ``worker-0``, ``worker-1`` … under the base folder."""


def claim_log(
    base: Path, store: Store, artifacts: ArtifactStore, source: str
) -> tuple[PredictionLog, list[PredictionLog]]:
    """Open the first ``worker-N`` folder of ``base`` no running process holds.

    Every other folder no process holds (the base folder itself included) is
    opened too, and so held until the caller closes it: a crashed server's log to
    recover (the server's start-up does, see ``create_app(orphans=...)``).

    Args:
        base: the base folder of the prediction log (created if needed).
        store: the metadata store.
        artifacts: the artifact store.
        source: who writes the segments (the host name).

    Returns:
        The claimed log and the orphaned ones, none recovered yet.
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
    orphans: list[PredictionLog] = []
    for folder in [base, *sorted(base.glob(f"{FOLDER_PREFIX}*"))]:
        if folder == claimed.folder or not folder.is_dir():
            continue
        orphan = open_log(folder)
        if orphan is not None:
            orphans.append(orphan)
    return claimed, orphans


def default_log_base() -> Path:
    """The base folder of this home's prediction logs: ``LOOPML_HOME/predictions``."""
    from loopml import settings

    return settings.home() / "predictions"


def local_log_folders(base: Path | None = None) -> list[Path]:
    """Every folder under ``base`` (default :func:`default_log_base`) a server logs into.

    Readers add what these hold but has not reached the store yet, so a prediction is
    visible from the moment it is answered.
    """
    base = default_log_base() if base is None else base
    if not base.is_dir():
        return []
    return [base, *(f for f in sorted(base.glob(f"{FOLDER_PREFIX}*")) if f.is_dir())]
