"""Capture what a run ran: code version, entry point, environment and resources.

The run-start code calls these on every run, so two rules hold:

* **Cheap.** Run creation must sustain hundreds of runs per second, so the git
  state, the entry point and the environment are captured **once per process**
  (git: once per process per repository) and cached. A file edited while the
  process runs is therefore not seen by its later runs; :func:`clear_caches`
  forgets everything (tests, notebooks that want a fresh capture).
* **Never failing a run.** Missing git, a folder outside any repository, a slow or
  broken repository, an unreadable script or odd package metadata all degrade to
  None or an empty value; nothing here raises for them.

Every result is a frozen dataclass with ``to_dict()`` returning JSON-serialisable
data.

Example:
    >>> meter = ResourceMeter()
    >>> usage = meter.stop()
    >>> usage.wall_seconds >= 0 and usage.cpu_seconds >= 0
    True
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import os
import platform
import re
import socket
import stat
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loopml import settings
from loopml._identity import current_identity

if sys.platform != "win32":
    import resource

__all__ = [
    "Environment",
    "GitInfo",
    "ResourceMeter",
    "ResourceUsage",
    "capture_environment",
    "capture_git",
    "clear_caches",
    "entry_point",
]

_log = logging.getLogger(__name__)

#: Seconds one git command may take before the capture gives up (and returns None).
_GIT_TIMEOUT = 3.0
#: Untracked files larger than this enter the dirty hash by name and size only, so a
#: stray dataset in the working tree does not make the first run of a process slow.
_UNTRACKED_CONTENT_LIMIT = 1 << 20
# Variables that would point git at some other repository than the one holding
# the path (set, for instance, while running inside a git hook).
_GIT_LOCATION_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_PREFIX",
)


# --- git -------------------------------------------------------------------


@dataclass(frozen=True)
class GitInfo:
    """The state of the git repository a run's code lives in.

    Attributes:
        root: absolute path of the repository's working tree.
        commit: full sha of ``HEAD``.
        branch: the checked-out branch, or None on a detached ``HEAD``.
        dirty: True when tracked files differ from ``HEAD`` or untracked (not
            ignored) files exist.
        diff_sha256: when dirty, sha256 over ``git diff HEAD --binary`` and the
            names and contents of the untracked files (files over 1 MiB by name and
            size only); None when clean. Equal hashes mean equal working trees.
    """

    root: str
    commit: str
    branch: str | None
    dirty: bool
    diff_sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


def capture_git(path: Path) -> GitInfo | None:
    """Describe the git repository that contains ``path``.

    Captured once per process per repository (and the repository of a folder is
    looked up once per folder); see :func:`clear_caches`.

    Args:
        path: a file or folder inside the repository, typically the entry-point
            script or the working directory.

    Returns:
        The repository state, or None when ``path`` is not in a repository, the
        repository has no commit yet, git is not installed, or git fails or takes
        longer than a few seconds. Never raises.
    """
    try:
        resolved = Path(path).absolute()
        directory = resolved if resolved.is_dir() else resolved.parent
        root = _repository_root(directory)
        return None if root is None else _capture_repository(root)
    except Exception:  # a run must never fail for want of git metadata
        _log.debug("could not capture git state for %s", path, exc_info=True)
        return None


def _git(cwd: Path, *args: str) -> bytes:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARIABLES}
    # Read-only commands must not take index.lock and disturb the user's own git.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_TERMINAL_PROMPT"] = "0"
    completed = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=_GIT_TIMEOUT,
        check=True,
    )
    return completed.stdout


@functools.cache
def _repository_root(directory: Path) -> Path | None:
    try:
        out = _git(directory, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        # Not a repository, git missing or stuck: remember, so that every later
        # run of this process does not pay for another failing subprocess.
        return None
    return Path(os.fsdecode(out.rstrip(b"\r\n")))


@functools.cache
def _capture_repository(root: Path) -> GitInfo | None:
    try:
        status = _git(root, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all")
        commit, branch, dirty, untracked = _parse_status(status)
        if commit is None:
            return None
        diff_sha256 = None
        if dirty:
            diff = _git(root, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff")
            diff_sha256 = _dirty_hash(root, diff, untracked)
    except (OSError, subprocess.SubprocessError, ValueError):
        _log.debug("could not capture git state of %s", root, exc_info=True)
        return None
    return GitInfo(str(root), commit, branch, dirty, diff_sha256)


def _parse_status(out: bytes) -> tuple[str | None, str | None, bool, list[bytes]]:
    """Read ``git status --porcelain=v2 --branch -z``: commit, branch, dirty, untracked."""
    commit: str | None = None
    branch: str | None = None
    dirty = False
    untracked: list[bytes] = []
    fields = iter(out.split(b"\0"))
    for entry in fields:
        if entry.startswith(b"# branch.oid "):
            oid = entry[len(b"# branch.oid ") :].decode("ascii")
            commit = None if oid == "(initial)" else oid
        elif entry.startswith(b"# branch.head "):
            head = entry[len(b"# branch.head ") :].decode("utf-8", "surrogateescape")
            branch = None if head == "(detached)" else head
        elif entry.startswith(b"? "):
            dirty = True
            untracked.append(entry[2:])
        elif entry[:2] in (b"1 ", b"2 ", b"u "):
            dirty = True
            if entry.startswith(b"2 "):
                next(fields, None)  # a rename's original path is a field of its own
    return commit, branch, dirty, untracked


def _dirty_hash(root: Path, diff: bytes, untracked: list[bytes]) -> str:
    digest = hashlib.sha256()
    digest.update(len(diff).to_bytes(8, "big"))
    digest.update(diff)
    for name in sorted(untracked):
        digest.update(b"\0untracked\0" + name + b"\0" + _untracked_digest(root / os.fsdecode(name)))
    return digest.hexdigest()


def _untracked_digest(path: Path) -> bytes:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            return b"link:" + os.fsencode(path.readlink())
        if not stat.S_ISREG(info.st_mode):  # a nested repository shows as a folder
            return b"other"
        if info.st_size > _UNTRACKED_CONTENT_LIMIT:
            return b"size:%d" % info.st_size
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").digest()
    except OSError:
        return b"unreadable"


# --- entry point -----------------------------------------------------------


def entry_point() -> tuple[str | None, str | None]:
    """Return the running script and the sha256 of its source.

    The script is ``__main__.__file__`` (``sys.argv[0]`` when that is missing and
    names a ``.py`` file outside IPython). Captured once per process.

    Returns:
        ``(absolute path, sha256 hex)``; the hash is None when the file cannot be
        read, and both are None in an interactive session, a notebook or
        ``python -c``.
    """
    return _entry_point()


@functools.cache
def _entry_point() -> tuple[str | None, str | None]:
    try:
        script = _script_path()
        if script is None:
            return None, None
        try:
            with script.open("rb") as file:
                source_sha256 = hashlib.file_digest(file, "sha256").hexdigest()
        except OSError:
            source_sha256 = None
        return str(script), source_sha256
    except Exception:  # a run must never fail for want of its entry point
        _log.debug("could not capture the entry point", exc_info=True)
        return None, None


def _script_path() -> Path | None:
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if isinstance(main_file, str) and main_file:
        # "<stdin>" (python - < file) and the like name no file.
        is_pseudo = main_file.startswith("<") and main_file.endswith(">")
        return None if is_pseudo else Path(main_file).absolute()
    argv0 = sys.argv[0] if sys.argv else ""
    # Without __main__.__file__, argv[0] is "-c", "" or "-", or (in IPython and
    # Jupyter) the launcher, which is not the user's code.
    if argv0.endswith(".py") and "IPython" not in sys.modules and Path(argv0).is_file():
        return Path(argv0).absolute()
    return None


# --- environment -----------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """The interpreter, machine and installed packages a run ran with.

    Attributes:
        python_version: e.g. ``"3.11.9"``.
        implementation: e.g. ``"CPython"``.
        platform: ``platform.platform()``, e.g. ``"Linux-6.8.0-x86_64-with-glibc2.39"``.
        hostname: the machine's host name ("" when unknown).
        user: the login name, or None when it cannot be determined.
        packages: installed distributions, normalised name (PEP 503) to version,
            sorted by name; empty when ``LOOPML_CAPTURE_PACKAGES`` is off.
        packages_sha256: sha256 of the package set (``name==version`` lines), equal
            for equal sets so the store can keep one copy; None when packages are
            not captured.
    """

    python_version: str
    implementation: str
    platform: str
    hostname: str
    user: str | None
    packages: dict[str, str] = field(default_factory=dict)
    packages_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


def capture_environment() -> Environment:
    """Describe the interpreter, machine and installed packages.

    Captured once per process (``LOOPML_CAPTURE_PACKAGES`` is read on every call).

    Returns:
        The environment; a fresh object each call, whose ``packages`` the caller
        may keep or change freely.

    Raises:
        SettingError: ``LOOPML_CAPTURE_PACKAGES`` is set to something that is not a
            boolean (a configuration mistake, reported like every other setting).
    """
    capture_packages: bool = settings.get("LOOPML_CAPTURE_PACKAGES")
    python_version, implementation, platform_name, hostname, user = _machine()
    packages: dict[str, str] = {}
    packages_sha256 = None
    if capture_packages:
        installed, packages_sha256 = _packages()
        packages = dict(installed)
    return Environment(
        python_version, implementation, platform_name, hostname, user, packages, packages_sha256
    )


@functools.cache
def _machine() -> tuple[str, str, str, str, str | None]:
    try:
        hostname = socket.gethostname()
    except OSError:
        hostname = ""
    user = current_identity()
    return (
        platform.python_version(),
        platform.python_implementation(),
        platform.platform(),
        hostname,
        user,
    )


@functools.cache
def _packages() -> tuple[tuple[tuple[str, str], ...], str]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        try:
            # get_all, not [...]: a missing field is a DeprecationWarning on 3.12+.
            names = dist.metadata.get_all("Name") or []
            versions = dist.metadata.get_all("Version") or []
        except Exception:  # broken metadata of one distribution must not hide the rest
            _log.debug("skipping unreadable distribution metadata", exc_info=True)
            continue
        if names and versions:
            # The first on sys.path wins, as it does for import.
            found.setdefault(_normalise(str(names[0])), str(versions[0]))
    installed = tuple(sorted(found.items()))
    lines = "".join(f"{name}=={version}\n" for name, version in installed)
    return installed, hashlib.sha256(lines.encode()).hexdigest()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- resources -------------------------------------------------------------


@dataclass(frozen=True)
class ResourceUsage:
    """What a run cost its process.

    Attributes:
        cpu_seconds: user + system CPU time of this process (all its threads, not
            its children) between start and stop.
        peak_memory_bytes: peak resident set size of this process since it began,
            not since the run began (the OS keeps only a lifetime peak); 0 where
            unavailable (Windows).
        wall_seconds: elapsed time between start and stop.
    """

    cpu_seconds: float
    peak_memory_bytes: int
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


class ResourceMeter:
    """Measures a run's CPU time, peak memory and wall time; starts when created.

    Example:
        >>> meter = ResourceMeter()
        >>> meter.stop().peak_memory_bytes >= 0
        True
    """

    def __init__(self) -> None:
        self._cpu_start = time.process_time()
        self._wall_start = time.perf_counter()
        self._usage: ResourceUsage | None = None

    def stop(self) -> ResourceUsage:
        """Stop measuring and return the usage since the meter was created.

        Returns:
            The usage; later calls return the same value.
        """
        if self._usage is None:
            self._usage = ResourceUsage(
                cpu_seconds=max(0.0, time.process_time() - self._cpu_start),
                peak_memory_bytes=_peak_rss(),
                wall_seconds=max(0.0, time.perf_counter() - self._wall_start),
            )
        return self._usage


def _peak_rss() -> int:
    if sys.platform == "win32":
        return 0
    # Linux: VmHWM is this process's own high-water mark. ru_maxrss is not: Linux
    # carries the parent's peak over fork and exec, so a small child of a big
    # process would report the parent's memory.
    try:
        with open("/proc/self/status", encoding="ascii") as status:  # noqa: PTH123
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in bytes on macOS and KiB on Linux and the BSDs.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


# --- caches ----------------------------------------------------------------


def clear_caches() -> None:
    """Forget every captured value, so the next call captures afresh.

    Meant for tests and long-lived processes that know the code changed.
    """
    _repository_root.cache_clear()
    _capture_repository.cache_clear()
    _entry_point.cache_clear()
    _machine.cache_clear()
    _packages.cache_clear()
