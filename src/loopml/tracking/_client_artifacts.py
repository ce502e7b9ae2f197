"""Run artifacts: files, folders, dicts, text and figures in the artifact store."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopml.errors import ArtifactNotFound, InvalidParameter
from loopml.store import now_ms, tables
from loopml.tracking._client_base import ClientBase
from loopml.tracking._records import RunArtifact

__all__ = ["ArtifactOps"]

_artifact = tables.RUN_ARTIFACT


class ArtifactOps(ClientBase):
    """Attach files and folders to runs, and get them back verified."""

    # -- artifacts -------------------------------------------------------------------

    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> RunArtifact:
        """Store a file or a directory in the artifact store and attach it to the run.

        Args:
            run_id: the run.
            local_path: file or folder to store.
            artifact_path: name within the run (default: the file or folder name).

        Raises:
            ArtifactNotFound: ``local_path`` does not exist.
        """
        source = Path(local_path)
        if not source.exists():
            raise ArtifactNotFound(f"Cannot log artifact: {source} does not exist.")
        name = _artifact_name(artifact_path or source.name)
        if source.is_dir():
            digest = self.artifacts.put_dir(source)
            size = sum(entry.size for entry in self.artifacts.read_manifest(digest))
        else:
            digest = self.artifacts.put_file(source)
            size = source.stat().st_size
        with self.store.write() as conn:
            self._require_run(conn, run_id)
            values = {
                "run_id": run_id,
                "path": name,
                "digest": digest,
                "size": size,
                "is_dir": source.is_dir(),
                "created_at": now_ms(),
            }
            factory = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            statement = factory(_artifact).values(**values)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[_artifact.c.run_id, _artifact.c.path],
                    set_={k: statement.excluded[k] for k in ("digest", "size", "is_dir")},
                )
            )
        return RunArtifact(name, digest, size, source.is_dir())

    def log_bytes(self, run_id: str, data: bytes, artifact_path: str) -> RunArtifact:
        """Attach ``data`` to the run as the file ``artifact_path``."""
        with tempfile.TemporaryDirectory(prefix="loopml-") as folder:
            target = Path(folder) / Path(_artifact_name(artifact_path)).name
            target.write_bytes(data)
            return self.log_artifact(run_id, target, artifact_path)

    def log_dict(self, run_id: str, data: Mapping[str, Any], artifact_path: str) -> RunArtifact:
        """Attach ``data`` to the run as a JSON file."""
        text = json.dumps(data, indent=2, sort_keys=True, default=str)
        return self.log_bytes(run_id, text.encode(), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_path: str) -> RunArtifact:
        """Attach ``text`` to the run as a UTF-8 file."""
        return self.log_bytes(run_id, text.encode(), artifact_path)

    def log_figure(self, run_id: str, figure: Any, artifact_path: str) -> RunArtifact:
        """Attach a matplotlib figure, rendered in the format ``artifact_path`` ends with."""
        if not hasattr(figure, "savefig"):
            raise InvalidParameter(
                "The 'figure' parameter of log_figure must be a matplotlib Figure; "
                f"got {type(figure).__name__}."
            )
        with tempfile.TemporaryDirectory(prefix="loopml-") as folder:
            target = Path(folder) / Path(_artifact_name(artifact_path)).name
            figure.savefig(target)
            return self.log_artifact(run_id, target, artifact_path)

    def download_artifact(
        self, run_id: str, artifact_path: str, dest: str | Path, *, overwrite: bool = False
    ) -> Path:
        """Copy a run artifact (file or folder) into the folder ``dest``, verified.

        The artifact becomes the new file or folder ``dest/<name>``, where
        ``<name>`` is the last part of ``artifact_path`` (``plots/loss.png`` →
        ``dest/loss.png``). It is built beside its final name and renamed into
        place, never merged into what is there; nothing is written outside it,
        whatever the stored manifest lists or symlinks ``dest`` already holds.

        Args:
            run_id: the run.
            artifact_path: the artifact's path within the run.
            dest: the folder to download into; created if missing.
            overwrite: replace an existing ``dest/<name>`` of the same kind.

        Returns:
            The path of the new file or folder.

        Raises:
            ArtifactNotFound: the run has no artifact at ``artifact_path``.
            ArtifactExists: ``dest/<name>`` exists and ``overwrite`` is false.
            ArtifactManifestError: a folder artifact's manifest lists unsafe paths.
            ArtifactIntegrityError: the stored bytes are corrupted.
        """
        with self.store.read() as conn:
            self._require_run(conn, run_id)
            row = conn.execute(
                select(_artifact).where(
                    _artifact.c.run_id == run_id, _artifact.c.path == artifact_path
                )
            ).first()
        if row is None:
            raise ArtifactNotFound(f"Run {run_id} has no artifact {artifact_path!r}.")
        # The stored path was checked when logged; take its last part again so a
        # row written by other means still cannot name a file outside ``dest``.
        target = Path(dest) / _artifact_name(str(row.path)).rsplit("/", 1)[-1]
        if row.is_dir:
            return self.artifacts.get_dir(row.digest, target, overwrite=overwrite)
        return self.artifacts.get_file(row.digest, target, overwrite=overwrite)


def _artifact_name(path: str) -> str:
    parts = [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidParameter(
            f"An artifact path must be a relative path inside the run; got {path!r}."
        )
    return "/".join(parts)
