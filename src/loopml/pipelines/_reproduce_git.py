"""The git side of reproduction: find the repository, check a commit out, map imports."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from loopml.errors import InvalidParameter

__all__ = ["GIT_LOCATION_VARIABLES", "find_repository", "git", "map_reference", "worktree"]

# Variables that would point git at another repository than the one we name.
GIT_LOCATION_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_PREFIX",
)


def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION_VARIABLES}
    env["GIT_TERMINAL_PROMPT"] = "0"
    completed = subprocess.run(
        # No hooks: checking out a worktree must not run the repository's post-checkout.
        ["git", "-c", f"core.hooksPath={os.devnull}", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout


def find_repository(commit: str, recorded: Mapping[str, Any], reference: str) -> Path:
    """The repository holding ``commit``: the recorded root, else the reference's folder."""
    candidates: list[Path] = []
    if recorded.get("root"):
        candidates.append(Path(str(recorded["root"])))
    script = _reference_file(reference)
    if script is not None:
        candidates.append(script.parent)
    candidates.append(Path.cwd())
    tried: list[str] = []
    for candidate in candidates:
        if not candidate.is_dir():
            continue
        try:
            root = Path(git(candidate, "rev-parse", "--show-toplevel").strip())
            git(root, "cat-file", "-e", f"{commit}^{{commit}}")
        except (OSError, subprocess.CalledProcessError):
            tried.append(str(candidate))
            continue
        return root
    raise InvalidParameter(
        f"Commit {commit[:12]} of the run is not in any repository found "
        f"(tried {', '.join(tried) or 'none: the recorded folders no longer exist'}); "
        "fetch it, or run reproduce from inside a clone that has it."
    )


@contextlib.contextmanager
def worktree(repository: Path, commit: str, *, keep: bool) -> Iterator[Path]:
    """Check ``commit`` out into a temporary worktree; remove it afterwards unless ``keep``."""
    # git checks out into an existing empty folder, and `worktree remove` deletes it.
    worktree = Path(tempfile.mkdtemp(prefix=f"loopml-reproduce-{commit[:12]}-"))
    try:
        git(repository, "worktree", "add", "--detach", str(worktree), commit)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(worktree, ignore_errors=True)
        raise InvalidParameter(
            f"Cannot check out commit {commit[:12]} of {repository}: {exc.stderr.strip()}"
        ) from None
    try:
        yield worktree
    finally:
        if not keep:
            _removeworktree(repository, worktree)


def _removeworktree(repository: Path, worktree: Path) -> None:
    try:
        git(repository, "worktree", "remove", "--force", str(worktree))
    except (OSError, subprocess.CalledProcessError):
        # Removing by hand and pruning leaves git's list as clean as `remove` would.
        shutil.rmtree(worktree, ignore_errors=True)
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            git(repository, "worktree", "prune")


# -- the recorded code in the worktree -----------------------------------------------------


def _reference_file(reference: str) -> Path | None:
    target = reference.rpartition(":")[0]
    if target.endswith(".py") or "/" in target or os.sep in target:
        return Path(target)
    return None


def map_reference(
    reference: str, recorded_root: Path, repository: Path, worktree: Path
) -> tuple[str, list[Path]]:
    """The reference as it reads inside ``worktree``, and the folders to import from."""
    target, _, attribute = reference.rpartition(":")
    script = _reference_file(reference)
    if script is not None:
        relative = _relative(script, recorded_root) or _relative(script, repository)
        if relative is None:
            raise InvalidParameter(
                f"The pipeline file {script} of the run is outside its repository "
                f"{recorded_root}, so it is not part of the recorded commit."
            )
        mapped = worktree / relative
        return f"{mapped}:{attribute}", _unique([mapped.parent, worktree])
    entry = _module_entry(target.partition(".")[0], recorded_root, repository, worktree)
    if entry is None:
        raise InvalidParameter(
            f"Module {target!r} of the run's reference {reference!r} is not in its repository "
            "at the recorded commit; reproduce re-runs code that lives in the repository."
        )
    return reference, _unique([entry, worktree])


def _module_entry(top: str, recorded_root: Path, repository: Path, worktree: Path) -> Path | None:
    """The folder inside ``worktree`` from which the package ``top`` imports."""
    candidates: list[Path] = []
    # Where the package imports from here, when that is inside the repository (src
    # layouts, editable installs), mapped into the worktree.
    for location in _import_locations(top):
        for root in (recorded_root, repository):
            relative = _relative(location.parent, root)
            if relative is not None:
                candidates.append(worktree / relative)
    candidates += [worktree, worktree / "src"]
    for entry in candidates:
        if (entry / top).is_dir() or (entry / f"{top}.py").is_file():
            return entry
    return None


def _import_locations(top: str) -> list[Path]:
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [Path(p) for p in spec.submodule_search_locations]
    return [] if spec.origin is None else [Path(spec.origin)]


def _relative(path: Path, root: Path) -> Path | None:
    for left, right in ((path, root), (path.resolve(), root.resolve())):
        with contextlib.suppress(ValueError):
            return left.relative_to(right)
    return None


def _unique(paths: Sequence[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


# -- the child process -----------------------------------------------------------------------
