"""Tests of the automatic run context (loopml.tracking._context)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml import _identity
from loopml.errors import SettingError
from loopml.tracking import _context
from loopml.tracking._context import (
    Environment,
    GitInfo,
    ResourceMeter,
    capture_environment,
    capture_git,
    clear_caches,
    entry_point,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    clear_caches()
    yield
    clear_caches()


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let git commit on a bare machine, unaffected by the user's own configuration."""
    for name in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{name}_NAME", "Test")
        monkeypatch.setenv(f"{name}_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    # Never find a repository above the test's folder (say, if /tmp is in one).
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, git_env: None) -> Path:
    """A repository with one commit on branch main: train.py, data.bin, .gitignore."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "symbolic-ref", "HEAD", "refs/heads/main")
    (root / "train.py").write_text("print('train')\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 4)
    (root / ".gitignore").write_text("*.log\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def fresh_git(path: Path) -> GitInfo | None:
    clear_caches()
    return capture_git(path)


# --- git -------------------------------------------------------------------


@needs_git
def test_clean_repository(repo: Path) -> None:
    info = capture_git(repo)
    assert info == GitInfo(
        root=str(repo.resolve()),
        commit=git(repo, "rev-parse", "HEAD"),
        branch="main",
        dirty=False,
        diff_sha256=None,
    )
    assert json.loads(json.dumps(info.to_dict())) == info.to_dict()


@needs_git
def test_file_and_subfolder_paths_find_the_same_repository(repo: Path) -> None:
    (repo / "pkg").mkdir()
    (repo / "pkg" / "mod.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pkg")
    by_root = capture_git(repo)
    assert by_root is not None
    assert capture_git(repo / "train.py") == by_root
    assert capture_git(repo / "pkg") == by_root
    assert capture_git(repo / "pkg" / "mod.py") == by_root


@needs_git
def test_modified_tracked_file_is_dirty_and_hashed(repo: Path) -> None:
    clean = capture_git(repo)
    (repo / "train.py").write_text("print('train harder')\n")
    first = fresh_git(repo)
    assert first is not None and clean is not None
    assert first.dirty
    assert first.diff_sha256 is not None and len(first.diff_sha256) == 64
    assert first.commit == clean.commit

    (repo / "train.py").write_text("print('train even harder')\n")
    second = fresh_git(repo)
    assert second is not None and second.diff_sha256 != first.diff_sha256

    (repo / "train.py").write_text("print('train harder')\n")
    again = fresh_git(repo)
    assert again is not None and again.diff_sha256 == first.diff_sha256  # a function of the tree

    (repo / "train.py").write_text("print('train')\n")
    assert fresh_git(repo) == clean


@needs_git
def test_binary_change_is_hashed(repo: Path) -> None:
    (repo / "data.bin").write_bytes(b"\xff\x00\xfe" * 100)
    first = fresh_git(repo)
    (repo / "data.bin").write_bytes(b"\xff\x00\xfd" * 100)
    second = fresh_git(repo)
    assert first is not None and second is not None
    assert first.dirty and second.dirty
    assert first.diff_sha256 != second.diff_sha256


@needs_git
def test_untracked_files_count_as_dirty(repo: Path) -> None:
    (repo / "notes.txt").write_text("one")
    first = fresh_git(repo)
    assert first is not None and first.dirty and first.diff_sha256 is not None

    (repo / "notes.txt").write_text("two")  # same name, new content
    second = fresh_git(repo)
    assert second is not None and second.diff_sha256 != first.diff_sha256

    (repo / "notes.txt").rename(repo / "other.txt")  # same content, new name
    third = fresh_git(repo)
    assert third is not None and third.diff_sha256 not in (first.diff_sha256, second.diff_sha256)

    (repo / "deep" / "er").mkdir(parents=True)
    (repo / "deep" / "er" / "file.txt").write_text("x")  # inside an untracked folder
    fourth = fresh_git(repo)
    assert fourth is not None and fourth.diff_sha256 != third.diff_sha256


@needs_git
def test_large_untracked_file_is_hashed_by_size(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_context, "_UNTRACKED_CONTENT_LIMIT", 10)
    (repo / "big.dat").write_bytes(b"a" * 100)
    first = fresh_git(repo)
    (repo / "big.dat").write_bytes(b"b" * 100)
    same_size = fresh_git(repo)
    (repo / "big.dat").write_bytes(b"b" * 101)
    other_size = fresh_git(repo)
    assert first is not None and same_size is not None and other_size is not None
    assert first.diff_sha256 == same_size.diff_sha256
    assert other_size.diff_sha256 != first.diff_sha256


@needs_git
def test_ignored_files_do_not_count(repo: Path) -> None:
    (repo / "train.log").write_text("noise")
    assert fresh_git(repo) == capture_git(repo)
    info = capture_git(repo)
    assert info is not None and not info.dirty


@needs_git
def test_staged_and_renamed_files_are_dirty(repo: Path) -> None:
    git(repo, "mv", "train.py", "fit.py")
    info = fresh_git(repo)
    assert info is not None and info.dirty and info.diff_sha256 is not None


@needs_git
def test_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    info = capture_git(repo)
    assert info is not None
    assert info.branch is None
    assert info.commit == git(repo, "rev-parse", "HEAD")
    assert not info.dirty


@needs_git
def test_other_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature/x")
    info = capture_git(repo)
    assert info is not None and info.branch == "feature/x"


@needs_git
def test_state_is_captured_once_per_process(repo: Path) -> None:
    before = capture_git(repo / "train.py")
    (repo / "train.py").write_text("changed\n")
    assert capture_git(repo) == before  # cached: documented behaviour
    clear_caches()
    after = capture_git(repo)
    assert after is not None and after.dirty


@needs_git
def test_cached_calls_are_fast(repo: Path) -> None:
    capture_git(repo)
    start = time.perf_counter()
    for _ in range(1000):
        capture_git(repo / "train.py")
    assert time.perf_counter() - start < 1.0  # hundreds of runs per second, with room


@needs_git
def test_outside_a_repository(tmp_path: Path, git_env: None) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "script.py").write_text("")
    assert capture_git(folder) is None
    assert capture_git(folder / "script.py") is None


@needs_git
def test_missing_path(tmp_path: Path, git_env: None) -> None:
    assert capture_git(tmp_path / "no" / "such" / "file.py") is None


@needs_git
def test_repository_without_commits(tmp_path: Path, git_env: None) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("")
    assert capture_git(tmp_path) is None


@needs_git
def test_git_missing_from_path(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert capture_git(repo) is None


def _fake_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = bin_dir / "git"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as git")
def test_slow_git_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_git(tmp_path, monkeypatch, "exec sleep 10")
    monkeypatch.setattr(_context, "_GIT_TIMEOUT", 0.2)
    start = time.perf_counter()
    assert capture_git(tmp_path) is None
    assert 0.2 <= time.perf_counter() - start < 5


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as git")
def test_garbled_git_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_git(tmp_path, monkeypatch, "printf '# branch.oid \\377\\0garbage'")
    assert capture_git(tmp_path) is None


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as git")
def test_failing_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_git(tmp_path, monkeypatch, "echo broken >&2; exit 128")
    assert capture_git(tmp_path) is None


# --- entry point -----------------------------------------------------------


def _run_python(*args: str, cwd: Path, stdin: str | None = None) -> tuple[str | None, str | None]:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    path, sha = json.loads(done.stdout.strip().splitlines()[-1])
    return path, sha


# Child processes load the module from its file: importing it as
# loopml.tracking._context would import the whole tracking stack (SQLAlchemy …),
# seconds per child on a slow machine, for nothing this module needs.
_LOAD_CONTEXT = textwrap.dedent(
    f"""
    import importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("_context", {_context.__file__!r})
    context = importlib.util.module_from_spec(spec)
    sys.modules["_context"] = context
    spec.loader.exec_module(context)
    """
)
_PRINT_ENTRY_POINT = _LOAD_CONTEXT + "print(json.dumps(context.entry_point()))\n"


def test_entry_point_of_a_script(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(_PRINT_ENTRY_POINT)
    path, sha = _run_python(str(script), cwd=tmp_path)
    assert path == str(script)
    assert sha == hashlib.sha256(script.read_bytes()).hexdigest()


def test_entry_point_of_a_script_named_relatively(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    script = tmp_path / "sub" / "run.py"
    script.write_text(_PRINT_ENTRY_POINT)
    path, sha = _run_python("sub/run.py", cwd=tmp_path)
    assert path is not None and Path(path) == script.absolute()
    assert sha == hashlib.sha256(script.read_bytes()).hexdigest()


def test_entry_point_of_python_c(tmp_path: Path) -> None:
    assert _run_python("-c", _PRINT_ENTRY_POINT, cwd=tmp_path) == (None, None)


def test_entry_point_of_stdin(tmp_path: Path) -> None:
    assert _run_python("-", cwd=tmp_path, stdin=_PRINT_ENTRY_POINT) == (None, None)


def _fake_main(monkeypatch: pytest.MonkeyPatch, file: str | None, argv0: str) -> None:
    main = types.ModuleType("__main__")
    if file is not None:
        main.__file__ = file
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", [argv0])


def test_entry_point_interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_main(monkeypatch, None, "")
    assert entry_point() == (None, None)


def test_entry_point_falls_back_to_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "job.py"
    script.write_text("pass\n")
    _fake_main(monkeypatch, None, str(script))
    assert entry_point() == (str(script), hashlib.sha256(b"pass\n").hexdigest())


def test_entry_point_unreadable_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tmp_path / "gone.py"
    _fake_main(monkeypatch, str(gone), str(gone))
    assert entry_point() == (str(gone), None)


def test_entry_point_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "job.py"
    script.write_text("one\n")
    _fake_main(monkeypatch, str(script), str(script))
    first = entry_point()
    script.write_text("two\n")
    assert entry_point() == first
    clear_caches()
    assert entry_point()[1] == hashlib.sha256(b"two\n").hexdigest()


# --- environment -----------------------------------------------------------


def test_environment() -> None:
    env = capture_environment()
    assert env.python_version == platform.python_version()
    assert env.implementation == platform.python_implementation()
    assert env.platform == platform.platform()
    assert env.packages["pytest"] == importlib.metadata.version("pytest")
    assert list(env.packages) == sorted(env.packages)
    assert all(name == name.lower() and "_" not in name for name in env.packages)
    lines = "".join(f"{n}=={v}\n" for n, v in env.packages.items())
    assert env.packages_sha256 == hashlib.sha256(lines.encode()).hexdigest()
    assert json.loads(json.dumps(env.to_dict())) == env.to_dict()


def test_environment_is_stable_and_independent() -> None:
    first = capture_environment()
    first.packages["pytest"] = "tampered"
    second = capture_environment()
    assert second.packages["pytest"] == importlib.metadata.version("pytest")
    assert second.packages_sha256 == first.packages_sha256


def test_packages_can_be_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_CAPTURE_PACKAGES", "false")
    env = capture_environment()
    assert env.packages == {}
    assert env.packages_sha256 is None
    assert env.python_version == platform.python_version()
    monkeypatch.setenv("LOOPML_CAPTURE_PACKAGES", "true")  # read on every call
    assert capture_environment().packages


def test_bad_capture_setting_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_CAPTURE_PACKAGES", "sometimes")
    with pytest.raises(SettingError, match="LOOPML_CAPTURE_PACKAGES"):
        capture_environment()


def test_unknown_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_identity, "_account_name", lambda: None)
    env = capture_environment()
    assert isinstance(env, Environment)
    assert env.user is None


def test_package_names_are_normalised() -> None:
    assert _context._normalise("Foo_Bar.baz--Qux") == "foo-bar-baz-qux"


# --- resources -------------------------------------------------------------


def test_resource_meter_counts_cpu() -> None:
    meter = ResourceMeter()
    deadline = time.process_time() + 0.3
    total = 0
    while time.process_time() < deadline:
        total += sum(range(1000))
    usage = meter.stop()
    assert total > 0
    assert usage.cpu_seconds >= 0.25
    assert usage.wall_seconds >= usage.cpu_seconds * 0.5
    assert meter.stop() is usage  # stopping again changes nothing
    assert json.loads(json.dumps(usage.to_dict())) == usage.to_dict()


def test_resource_meter_idle() -> None:
    meter = ResourceMeter()
    time.sleep(0.05)
    usage = meter.stop()
    assert usage.wall_seconds >= 0.05
    assert usage.cpu_seconds < usage.wall_seconds + 0.05


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
def test_resource_meter_peak_memory(tmp_path: Path) -> None:
    # A fresh process, so the lifetime peak is not already above the allocation; the
    # peak is compared with the resident size just before allocating (the peak so far
    # may be higher than that, if the imports freed memory).
    code = _LOAD_CONTEXT + textwrap.dedent(
        """
        import os
        meter = context.ResourceMeter()
        with open("/proc/self/statm") as statm:
            resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        block = b"x" * (50 * 1024 * 1024)
        print(json.dumps([resident, meter.stop().peak_memory_bytes, len(block)]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    resident, peak, _ = json.loads(done.stdout.strip().splitlines()[-1])
    assert resident > 1024 * 1024  # bytes, not KiB: any interpreter uses more than 1 MiB
    assert peak - resident >= 49 * 1024 * 1024
    assert peak < 4 * (resident + 50 * 1024 * 1024)  # converted once, not twice
