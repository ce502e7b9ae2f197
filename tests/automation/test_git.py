"""The git watcher, on real repositories made here: a working clone pushing to a bare remote.

No test reaches the internet: unreachable repositories are a closed port and a port that
accepts connections but never answers, both on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.automation._git import (
    GitChange,
    GitSource,
    _branch_problem,
    changes,
    head,
    read_file,
)
from loopml.errors import (
    GitBranchNotFound,
    GitError,
    GitFileTooLarge,
    GitPathNotFound,
    GitTimeout,
    GitUnreachable,
    InvalidGitSource,
)

# The tests' own git calls ignore the machine's configuration; the watcher's do not
# (it keeps the user's, for credentials), which is why its tests vary the environment.
_GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=_GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass
class Repo:
    """A clone (``work``) of a bare repository (``remote``), pushing to it."""

    work: Path
    remote: Path

    def commit(self, files: dict[str, str | None], message: str) -> str:
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        git(self.work, "push", "-q", "--force", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    git(work, "remote", "add", "origin", str(remote))
    created = Repo(work, remote)
    created.commit({"loopml.yaml": "version: 1\n", "src/train.py": "print(1)\n"}, "Start")
    return created


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


# -- head ----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_head_is_the_branch_commit_for_a_path_and_a_file_url(repo: Repo, form: str) -> None:
    url = str(repo.remote) if form == "path" else repo.remote.as_uri()
    assert head(GitSource(url)) == git(repo.work, "rev-parse", "HEAD")
    moved = repo.commit({"loopml.yaml": "version: 2\n"}, "Bump")
    assert head(GitSource(url)) == moved


def test_head_of_a_branch_other_than_main(repo: Repo) -> None:
    git(repo.work, "push", "-q", "origin", "HEAD:refs/heads/release/1.0")
    git(repo.work, "push", "-q", "origin", "HEAD:refs/heads/other/release/1.0")
    expected = git(repo.work, "rev-parse", "HEAD")
    assert head(GitSource(str(repo.remote), "release/1.0")) == expected


def test_a_relative_path_is_made_absolute(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = GitSource("remote.git")
    assert source._location == str(tmp_path / "remote.git")
    assert head(source) == git(repo.work, "rev-parse", "HEAD")


def test_an_unknown_branch_is_a_typed_error(repo: Repo, cache: Path) -> None:
    source = GitSource(str(repo.remote), "nope")
    with pytest.raises(GitBranchNotFound, match="no branch 'nope'"):
        head(source)
    with pytest.raises(GitBranchNotFound, match="no branch 'nope'") as caught:
        changes(source, None, cache)
    assert caught.value.url == str(repo.remote)


# -- changes -------------------------------------------------------------------------------


def test_a_first_look_reports_the_head_and_every_file(repo: Repo, cache: Path) -> None:
    first = git(repo.work, "rev-parse", "HEAD")
    change = changes(GitSource(repo.remote.as_uri()), None, cache)
    assert change.commit == first
    assert change.previous is None
    assert [c.id for c in change.commits] == [first]
    assert change.commits[0].subject == "Start"
    assert change.commits[0].author == "Ada Lovelace <ada@example.com>"
    assert set(change.paths) == {"loopml.yaml", "src/train.py"}
    assert change.changed
    assert change.matches(["loopml.yaml"])
    assert (change.forced, change.truncated) == (False, False)


def test_new_commits_list_their_details_and_changed_paths(repo: Repo, cache: Path) -> None:
    source = GitSource(str(repo.remote))
    start = changes(source, None, cache).commit
    one = repo.commit({"src/train.py": "print(2)\n"}, "Train harder")
    two = repo.commit({"README.md": "hi\n", "docs/a.md": "a\n"}, "Docs\x1b[31m red")
    change = changes(source, start, cache)
    assert change.commit == two
    assert change.previous == start
    assert [c.id for c in change.commits] == [two, one]
    assert change.commits[0].subject == "Docs\ufffd[31m red"  # no escape reaches a terminal
    assert change.commits[0].time.tzinfo is not None
    assert set(change.paths) == {"src/train.py", "README.md", "docs/a.md"}
    assert change.matches(["src/**"])
    assert not change.matches(["loopml.yaml"])
    assert (change.forced, change.truncated) == (False, False)
    # Looking again from the new head: nothing new.
    again = changes(source, two, cache)
    assert (again.commits, again.paths, again.changed) == ((), (), False)
    assert not again.matches([])


def test_an_empty_commit_changes_no_path_but_is_a_change(repo: Repo, cache: Path) -> None:
    source = GitSource(str(repo.remote))
    start = changes(source, None, cache).commit
    repo.commit({}, "Empty")
    change = changes(source, start, cache)
    assert change.paths == ()
    assert change.matches([])  # no pattern: any new commit
    assert not change.matches(["**"])


def test_a_force_push_is_reported_not_raised(repo: Repo, cache: Path) -> None:
    source = GitSource(str(repo.remote))
    base = git(repo.work, "rev-parse", "HEAD")
    old = repo.commit({"loopml.yaml": "version: 2\n"}, "To be rewritten")
    assert changes(source, base, cache).commit == old
    git(repo.work, "reset", "-q", "--hard", base)
    new = repo.commit({"src/model.py": "x = 1\n"}, "Rewritten")
    change = changes(source, old, cache)
    assert change.commit == new
    assert change.forced is True
    assert [c.id for c in change.commits] == [new]
    # The paths are what differs from the commit seen last, the rewritten one included.
    assert set(change.paths) == {"loopml.yaml", "src/model.py"}


def test_more_commits_than_the_cap_are_truncated(repo: Repo, cache: Path) -> None:
    source = GitSource(str(repo.remote))
    start = changes(source, None, cache).commit
    made = [repo.commit({f"f{i}.txt": str(i)}, f"Commit {i}") for i in range(5)]
    change = changes(source, start, cache, max_commits=2)
    assert [c.id for c in change.commits] == made[::-1][:2]
    assert change.truncated
    assert change.forced is None  # `start` is deeper than the two commits fetched
    assert set(change.paths) == {f"f{i}.txt" for i in range(5)}  # still exact
    assert changes(source, start, cache, max_commits=10).forced is False


def test_an_empty_cache_fetches_the_commit_seen_last(repo: Repo, tmp_path: Path) -> None:
    source = GitSource(repo.remote.as_uri())
    start = git(repo.work, "rev-parse", "HEAD")
    new = repo.commit({"loopml.yaml": "version: 3\n"}, "Bump")
    change = changes(source, start, tmp_path / "fresh")
    assert (change.commit, change.paths, change.forced) == (new, ("loopml.yaml",), False)


def test_a_commit_gone_from_the_server_leaves_every_file_as_changed(
    repo: Repo, tmp_path: Path
) -> None:
    source = GitSource(str(repo.remote))
    gone = repo.commit({"tmp.txt": "x"}, "Pushed by mistake")
    git(repo.work, "reset", "-q", "--hard", "HEAD~1")
    new = repo.commit({"src/train.py": "print(3)\n"}, "Fix")
    git(repo.remote, "reflog", "expire", "--expire=now", "--all")
    git(repo.remote, "gc", "-q", "--prune=now")
    change = changes(source, gone, tmp_path / "fresh")
    assert change.commit == new
    assert change.forced is None
    assert set(change.paths) == {"loopml.yaml", "src/train.py"}


def test_the_cache_is_private_and_holds_no_url(repo: Repo, cache: Path) -> None:
    changes(GitSource(repo.remote.as_uri()), None, cache)
    for path in [cache, *cache.iterdir()]:
        if path.is_dir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
        else:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    assert str(repo.remote) not in (folder / "config").read_text()


def test_concurrent_calls_on_one_cache_wait_for_each_other(repo: Repo, cache: Path) -> None:
    source = GitSource(str(repo.remote))
    results: list[GitChange | BaseException] = []

    def look() -> None:
        try:
            results.append(changes(source, None, cache))
        except BaseException as exc:  # reported below, in the test's thread
            results.append(exc)

    threads = [threading.Thread(target=look) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.commit for r in results if isinstance(r, GitChange)] == [
        git(repo.work, "rev-parse", "HEAD")
    ] * 4, results


def test_since_must_be_a_full_commit_id(repo: Repo, cache: Path) -> None:
    source = GitSource(str(repo.remote))
    for since in ["HEAD", "main", "--output=/tmp/x", "abc123", "A" * 40, "a" * 40 + "\n"]:
        with pytest.raises(InvalidGitSource, match="full commit id"):
            changes(source, since, cache)
    assert not cache.exists()  # refused before anything touched the disk


# -- the environment and the current folder cannot redirect git --------------------------


def test_git_variables_of_the_caller_are_scrubbed(
    repo: Repo, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{tmp_path / 'missing'}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(repo.remote))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'protocol.file.allow'='never'")
    source = GitSource(str(repo.remote))
    assert head(source) == changes(source, None, cache).commit


def test_a_repository_in_the_current_folder_cannot_configure_git(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = tmp_path / "hostile"
    git(tmp_path, "init", "-q", str(hostile))
    git(hostile, "config", f"url.{tmp_path / 'missing'}.insteadOf", str(repo.remote))
    monkeypatch.chdir(hostile)
    assert head(GitSource(str(repo.remote))) == git(repo.work, "rev-parse", "HEAD")


# -- unreachable repositories --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "git://127.0.0.1:{port}/repo.git",
        "http://127.0.0.1:{port}/repo.git",
        "https://alice:s3cret-token@127.0.0.1:{port}/repo.git",
    ],
)
def test_a_url_that_cannot_be_fetched_is_a_typed_error(url: str, cache: Path) -> None:
    source = GitSource(url.format(port=closed_port()))
    for call in (lambda: head(source, timeout=30), lambda: changes(source, None, cache)):
        with pytest.raises(GitUnreachable) as caught:
            call()
        assert not isinstance(caught.value, GitTimeout)
        message = str(caught.value)
        assert "s3cret-token" not in message
        assert "127.0.0.1" in message
        assert caught.value.url == source.shown
    assert "s3cret-token" not in repr(source)


def test_a_missing_local_repository_is_a_typed_error(tmp_path: Path, cache: Path) -> None:
    source = GitSource(str(tmp_path / "nothing-here"))
    with pytest.raises(GitUnreachable, match="nothing-here"):
        head(source)
    with pytest.raises(GitUnreachable, match="nothing-here"):
        changes(source, None, cache)


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_a_server_that_never_answers_times_out(scheme: str, silent_port: int, cache: Path) -> None:
    # Over http git runs git-remote-http, which holds the pipes too: the whole process
    # group must go, or the call would wait for that helper's own (long) timeout.
    source = GitSource(f"{scheme}://127.0.0.1:{silent_port}/repo.git")
    with pytest.raises(GitTimeout, match="did not finish within 1 s"):
        head(source, timeout=1)
    with pytest.raises(GitTimeout):
        changes(source, None, cache, timeout=1)


def test_a_busy_cache_times_out(repo: Repo, cache: Path, silent_port: int) -> None:
    stuck = GitSource(f"git://127.0.0.1:{silent_port}/repo.git")
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            changes(stuck, None, cache, timeout=3)
        except GitError as exc:
            errors.append(exc)

    holder = threading.Thread(target=hold)
    holder.start()
    _wait_until_locked(cache)
    # The same URL shares the cache, so the second call waits for the first's lock.
    with pytest.raises(GitTimeout, match="stayed busy for 1 s"):
        changes(stuck, None, cache, timeout=1)
    holder.join()
    assert len(errors) == 1


def _wait_until_locked(cache: Path) -> None:
    for _ in range(1000):
        for lock in cache.glob("*.lock") if cache.is_dir() else ():
            with lock.open("rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
        time.sleep(0.01)
    raise AssertionError("the first call never took the cache's lock")


# -- hostile input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ext::sh -c touch% /tmp/loopml-pwned", "remote helper"),
        ("fd::3", "remote helper"),
        ("-oProxyCommand=touch /tmp/loopml-pwned", "starts with '-'"),
        ("--upload-pack=touch /tmp/loopml-pwned", "starts with '-'"),
        ("ssh://-oProxyCommand=touch%20x/repo", "host starts with '-'"),
        ("ssh://-alice@host/repo", "user starts with '-'"),
        ("-alice@host:repo", "starts with '-'"),
        ("alice@-oProxyCommand=x:repo", "host starts with '-'"),
        ("git@github.com:-repo", "path starts with '-'"),
        ("git@github.com:", "no repository path"),
        ("https://example.com/repo\nfoo", "control characters"),
        ("https://example.com/repo\rfoo", "control characters"),
        ("repo\x00.git", "control characters"),
        ("\x1b[31mrepo", "control characters"),
        ("gopher://example.com/repo", "scheme 'gopher'"),
        ("persistent-https://example.com/repo", "scheme 'persistent-https'"),
        ("file://evil.example.com/repo", "file:// URL names a folder"),
        ("https:///repo", "no host"),
        ("https://example.com:port/repo", "does not parse"),
        ("x" * 5000, "longer than"),
    ],
)
def test_dangerous_urls_are_refused_before_git_runs(url: str, why: str) -> None:
    with pytest.raises(InvalidGitSource, match="refused") as caught:
        GitSource(url)
    assert why in str(caught.value)
    assert not Path("/tmp/loopml-pwned").exists()


@pytest.mark.parametrize(
    ("url", "protocol"),
    [
        ("https://example.com/team/repo.git", "https"),
        ("http://example.com/team/repo.git", "http"),
        ("ssh://git@example.com:2222/team/repo.git", "ssh"),
        ("git://example.com/team/repo.git", "git"),
        ("file:///srv/git/repo.git", "file"),
        ("git@example.com:team/repo.git", "ssh"),
        ("example.com:repo.git", "ssh"),
        ("/srv/git/repo.git", "file"),
        ("./relative/a:b", "file"),
    ],
)
def test_the_accepted_forms(url: str, protocol: str) -> None:
    assert GitSource(url).protocol == protocol


def test_credentials_stay_out_of_the_repr() -> None:
    source = GitSource("https://bot:ghp_abcdefgh@example.com/team/repo.git")
    assert "ghp_abcdefgh" not in repr(source)
    assert source.shown == "https://bot:***@example.com/team/repo.git"


@pytest.mark.parametrize(
    "branch",
    [
        "",
        "-delete",
        "HEAD",
        "a..b",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "a\nb",
        "a@{1}",
        "/a",
        "a/",
        "a//b",
        "a.",
        ".a",
        "a/.b",
        "a.lock",
        "a/b.lock/c",
        "x" * 300,
    ],
)
def test_bad_branch_names_are_refused(branch: str) -> None:
    with pytest.raises(InvalidGitSource, match=r"[Bb]ranch"):
        GitSource("/srv/git/repo.git", branch)


@given(st.text(alphabet="ab/.-@{}~^:*?[\\ é\tlockHEAD", max_size=12))
def test_branch_rules_agree_with_git_check_ref_format(name: str) -> None:
    done = subprocess.run(
        ["git", "check-ref-format", "--branch", name],
        cwd="/",
        env=_GIT_ENV,
        capture_output=True,
        check=False,
    )
    ours = _branch_problem(name) is None if name else False
    # Stricter on purpose for "@" and "HEAD": git reads them as the current branch.
    assert ours == (done.returncode == 0 and name not in ("@", "HEAD")), name


@pytest.mark.parametrize("pattern", ["", "/etc/passwd", "../x", "src/../x", "a\nb", "a[b", 7])
def test_bad_patterns_are_refused(pattern: object) -> None:
    with pytest.raises(InvalidGitSource):
        GitSource("/srv/git/repo.git", "main", (pattern,))  # type: ignore[arg-type]
    with pytest.raises(InvalidGitSource):
        GitChange("a" * 40, None, (), ("x",)).matches([pattern])  # type: ignore[list-item]


def test_paths_must_be_a_tuple_of_patterns() -> None:
    with pytest.raises(InvalidGitSource, match="tuple"):
        GitSource("/srv/git/repo.git", "main", "src/**")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("loopml.yaml", "loopml.yaml", True),
        ("loopml.yaml", "sub/loopml.yaml", False),
        ("**/loopml.yaml", "sub/loopml.yaml", True),
        ("**/loopml.yaml", "loopml.yaml", True),
        ("src/**", "src/a/b/train.py", True),
        ("src/**", "srcs/train.py", False),
        ("*.py", "train.py", True),
        ("*.py", "src/train.py", False),
        ("src/*.py", "src/a/train.py", False),
        ("src/**/*.py", "src/a/b/train.py", True),
        ("src/**/*.py", "src/train.py", True),
        ("data/v?.csv", "data/v1.csv", True),
        ("data/v?.csv", "data/v10.csv", False),
        ("data/v[0-9].csv", "data/v7.csv", True),
        ("data/v[!0-9].csv", "data/vx.csv", True),
        ("data/v[!0-9].csv", "data/v7.csv", False),
        ("a.b", "axb", False),
        ("(x)+", "(x)+", True),
    ],
)
def test_patterns_match_whole_paths(pattern: str, path: str, expected: bool) -> None:
    assert GitChange("b" * 40, "a" * 40, (), (path,)).matches([pattern]) is expected


# -- read_file -----------------------------------------------------------------------------


def test_read_file_returns_the_bytes_at_a_commit(repo: Repo, cache: Path) -> None:
    source = GitSource(repo.remote.as_uri())
    first = git(repo.work, "rev-parse", "HEAD")
    second = repo.commit({"loopml.yaml": "version: 2\n"}, "Bump")
    assert read_file(source, second, "loopml.yaml", cache) == b"version: 2\n"
    assert read_file(source, first, "loopml.yaml", cache) == b"version: 1\n"
    assert read_file(source, first, "src/train.py", cache) == b"print(1)\n"


def test_read_file_refuses_what_is_not_a_small_regular_file(repo: Repo, cache: Path) -> None:
    (repo.work / "link.yaml").symlink_to("loopml.yaml")
    pinned = repo.commit({"big.bin": "x" * 2000}, "Odd files")
    # A submodule is a gitlink entry: a commit id where a file would be.
    git(repo.work, "update-index", "--add", "--cacheinfo", f"160000,{pinned},vendored")
    git(repo.work, "commit", "-q", "-m", "Submodule")
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    commit = git(repo.work, "rev-parse", "HEAD")
    source = GitSource(str(repo.remote))
    for path, error in [
        ("missing.yaml", "has no file"),
        ("src", "is a tree"),
        ("link.yaml", "is a symbolic link"),
        ("vendored", "is a commit"),
        ("src/train.py/x", "has no file"),
    ]:
        with pytest.raises(GitPathNotFound, match=error):
            read_file(source, commit, path, cache)
    with pytest.raises(GitFileTooLarge, match="2000 bytes; the limit is 1000"):
        read_file(source, commit, "big.bin", cache, max_bytes=1000)
    assert read_file(source, commit, "big.bin", cache, max_bytes=2000) == b"x" * 2000


@pytest.mark.parametrize(
    "path",
    ["", "../x", "a/../../x", "/etc/passwd", "./loopml.yaml", "a//b", "src/", "a\\b", "a\nb"],
)
def test_read_file_refuses_paths_that_leave_the_repository(
    repo: Repo, cache: Path, path: str
) -> None:
    commit = git(repo.work, "rev-parse", "HEAD")
    with pytest.raises(InvalidGitSource, match="File path"):
        read_file(GitSource(str(repo.remote)), commit, path, cache)


def test_read_file_of_a_commit_the_server_lacks(repo: Repo, cache: Path) -> None:
    with pytest.raises(GitUnreachable, match="Cannot fetch commit"):
        read_file(GitSource(str(repo.remote)), "0" * 40, "loopml.yaml", cache)
