"""The git watcher behind git triggers: a branch's head, what changed since, a file's bytes.

A git trigger names a repository by a URL that comes from a user's configuration
(``loopml.yaml``, the CLI), and the scheduler runs git on it unattended, so the URL is
checked before git sees it and git runs boxed in:

* only a local path or an ``https``, ``http``, ``ssh``, ``git``, ``file`` or scp-like
  (``user@host:path``) address is accepted; transport helpers (``ext::``, ``fd::``,
  ``<helper>://``), values that start with ``-`` (git would read them as options) and
  control characters are refused, as are branch names ``git check-ref-format --branch``
  refuses;
* git is called without a shell, with ``protocol.allow=never`` and only the source's
  own protocol allowed (``file`` only for local and ``file://`` sources), in a new
  session (no terminal to prompt on, and the whole process group is killed at the
  timeout), with ``GIT_TERMINAL_PROMPT=0`` and no ``GIT_*`` variable but the ssh and
  certificate ones, which could otherwise point it at another repository or inject
  configuration;
* fetched history lives in a private (``0o700``) bare cache per URL under a folder the
  caller gives, fetched shallow (at most ``max_commits`` deep) and locked against a
  concurrent fetch; the URL itself is not written into it.

Example:
    >>> source = GitSource("https://example.com/team/models.git", "main", ("loopml.yaml",))
    >>> source.protocol
    'https'
    >>> GitChange("b" * 40, "a" * 40, (), ("src/train.py",)).matches(["src/**"])
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import signal
import subprocess
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from loopml._private_fs import PRIVATE_FILE_MODE, make_private_dirs
from loopml._urls import redact_text, redact_url, url_secrets
from loopml.errors import (
    GitBranchNotFound,
    GitError,
    GitFileTooLarge,
    GitPathNotFound,
    GitTimeout,
    GitUnreachable,
    InvalidGitSource,
    InvalidParameter,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_COMMITS",
    "DEFAULT_TIMEOUT",
    "GitChange",
    "GitCommit",
    "GitSource",
    "changes",
    "head",
    "read_file",
]

#: Seconds one watcher call (all the git commands it runs) may take.
DEFAULT_TIMEOUT = 60.0
#: Commits listed, and fetched deep, per call to :func:`changes`.
DEFAULT_MAX_COMMITS = 200
#: Largest file :func:`read_file` returns (``loopml.yaml`` is far smaller).
DEFAULT_MAX_BYTES = 1 << 20

_MAX_URL = 4096
_MAX_PATTERN = 1024
_MAX_SUBJECT = 1000
_MAX_COMMITS_LIMIT = 100_000
# Schemes git handles itself; any other "<scheme>://" runs a git-remote-<scheme> helper.
_PROTOCOLS = {"https": "https", "http": "http", "ssh": "ssh", "git": "git", "file": "file"}
# "<transport>::<address>" runs git-remote-<transport> (ext:: runs any command).
_HELPER = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.\-]*::")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_SCP = re.compile(r"(?:(?P<user>[^@/]*)@)?(?P<host>\[[^\]/]*\]|[^:/]+):(?P<path>.*)", re.DOTALL)
_COMMIT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Kept from the caller's environment: how to run ssh and which certificates to trust.
# Every other GIT_* variable (GIT_DIR, GIT_CONFIG_*, GIT_PROXY_COMMAND, GIT_ASKPASS, ...)
# could point git at another repository, inject configuration or run a program.
_KEPT_GIT_VARIABLES = frozenset(
    {"GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH"}
)
_NO_REMOTE_REF = "couldn't find remote ref"


# -- the source ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GitSource:
    """A branch of a repository to watch, checked when made.

    Args:
        url: a local path, or an ``https://``, ``http://``, ``ssh://``, ``git://``,
            ``file://`` or scp-like ``user@host:path`` address.
        branch: the branch name (as ``git check-ref-format --branch`` accepts it).
        paths: glob patterns of the files whose changes matter to the trigger (empty:
            any new commit), matched by :meth:`GitChange.matches`.

    Raises:
        InvalidGitSource: the URL, branch or a pattern is refused (the message says why).
    """

    url: str
    branch: str = "main"
    paths: tuple[str, ...] = ()
    _location: str = field(init=False, repr=False, compare=False)
    _protocol: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        location, protocol = _check_url(self.url)
        _check_branch(self.branch, self.url)
        if isinstance(self.paths, str) or not isinstance(self.paths, tuple):
            raise InvalidGitSource(
                f"paths of the git source {redact_url(self.url)} must be a tuple of glob "
                f"patterns; got {type(self.paths).__name__}.",
                url=redact_url(self.url),
            )
        for pattern in self.paths:
            _compile_pattern(pattern)
        object.__setattr__(self, "_location", location)
        object.__setattr__(self, "_protocol", protocol)

    def __repr__(self) -> str:
        # The URL may carry a token; a repr lands in logs and tracebacks.
        return f"GitSource(url={self.shown!r}, branch={self.branch!r}, paths={self.paths!r})"

    @property
    def shown(self) -> str:
        """The URL with any credentials replaced by ``***``, for messages and records."""
        return redact_url(self.url)

    @property
    def protocol(self) -> str:
        """The git protocol this source uses (``file`` for a local path)."""
        return self._protocol


def _refuse(url: str, why: str) -> InvalidGitSource:
    shown = redact_url(url)
    return InvalidGitSource(f"Git URL {shown!r} refused: {why}.", url=shown)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def _check_url(url: object) -> tuple[str, str]:
    """The location to hand git and its protocol, or :class:`InvalidGitSource`."""
    if not isinstance(url, str) or not url:
        raise InvalidGitSource(f"A git URL must be a non-empty string; got {url!r}.")
    if len(url) > _MAX_URL:
        raise _refuse(url[:80] + "...", f"longer than {_MAX_URL} characters")
    if _has_control(url):
        raise _refuse(url, "it contains control characters (a newline, a tab, ...)")
    if url.startswith("-"):
        raise _refuse(url, "it starts with '-', which git would read as an option")
    if _HELPER.match(url):
        raise _refuse(url, "'<transport>::' runs a git remote helper (ext:: runs commands)")
    scheme = _SCHEME.match(url)
    if scheme is not None:
        return _check_scheme_url(url, scheme.group(1).lower())
    before_colon = url.partition(":")[0]
    if ":" in url and "/" not in before_colon:
        # git's own rule: a ':' with no '/' before it makes an scp-like ssh address.
        scp = _SCP.fullmatch(url)
        if scp is None:
            raise _refuse(url, "not a host:path address")
        _check_ssh_parts(url, scp.group("user"), scp.group("host"), scp.group("path"))
        return url, "ssh"
    # A local path; absolute, so that git never reads it as the name of a remote.
    return str(Path(url).absolute()), "file"


def _check_scheme_url(url: str, scheme: str) -> tuple[str, str]:
    if scheme not in _PROTOCOLS:
        allowed = ", ".join(f"{name}://" for name in _PROTOCOLS)
        raise _refuse(url, f"scheme {scheme!r} is not one of {allowed}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise _refuse(url, f"it does not parse ({exc})") from None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _refuse(url, "a file:// URL names a folder on this machine (file:///path)")
        return url, "file"
    if not parts.hostname:
        raise _refuse(url, "it names no host")
    _check_ssh_parts(url, parts.username, parts.hostname, parts.path)
    return url, _PROTOCOLS[scheme]


def _check_ssh_parts(url: str, user: str | None, host: str, path: str) -> None:
    # ssh reads a host or user starting with '-' as an option (-oProxyCommand=...), and
    # the remote shell may do the same with the path.
    for name, value in (("user", user or ""), ("host", host), ("path", path)):
        if value.startswith("-"):
            raise _refuse(url, f"its {name} starts with '-', which ssh would read as an option")
    if not host:
        raise _refuse(url, "it names no host")
    if not path:
        raise _refuse(url, "it names no repository path")


def _check_branch(branch: object, url: str) -> None:
    """Refuse what ``git check-ref-format --branch`` refuses (git's rules, in Python)."""
    shown = redact_url(url)
    if not isinstance(branch, str) or not branch:
        raise InvalidGitSource(
            f"The branch of git source {shown!r} must be a non-empty string; got {branch!r}.",
            url=shown,
        )
    why = _branch_problem(branch)
    if why is not None:
        raise InvalidGitSource(
            f"Branch name {branch!r} of git source {shown!r} is not valid: {why}.", url=shown
        )


def _branch_problem(branch: str) -> str | None:
    if branch.startswith("-"):
        return "it starts with '-'"
    if branch in ("HEAD", "@"):
        return f"{branch!r} is not a branch"
    if len(branch.encode("utf-8", "surrogatepass")) > 255:
        return "longer than 255 bytes"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in branch):
        return "it contains control characters"
    bad = sorted(set(branch) & set(" ~^:?*[\\"))
    if bad:
        return f"it contains {' '.join(repr(char) for char in bad)}"
    if ".." in branch or "@{" in branch:
        return "it contains '..' or '@{'"
    if branch.endswith(".") or branch.endswith("/") or branch.startswith("/"):
        return "it starts or ends with '/', or ends with '.'"
    for component in branch.split("/"):
        if not component:
            return "it has an empty component ('//')"
        if component.startswith(".") or component.endswith(".lock"):
            return f"component {component!r} starts with '.' or ends with '.lock'"
    return None


def _check_commit(commit: object, source: GitSource, what: str) -> str:
    if not isinstance(commit, str) or _COMMIT_ID.fullmatch(commit) is None:
        raise InvalidGitSource(
            f"The {what} for git source {source.shown!r} must be a full commit id "
            f"(40 or 64 lower-case hex digits); got {commit!r}.",
            url=source.shown,
        )
    return commit


# -- glob patterns -------------------------------------------------------------------------


def _compile_pattern(pattern: object) -> re.Pattern[str]:
    """A glob over whole paths: ``*`` and ``?`` stay in one folder, ``**`` spans folders."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > _MAX_PATTERN:
        raise InvalidGitSource(
            f"A path pattern must be a non-empty string of at most {_MAX_PATTERN} "
            f"characters; got {pattern!r}."
        )
    components = pattern.split("/")
    if _has_control(pattern) or pattern.startswith("/") or ".." in components:
        raise InvalidGitSource(
            f"Path pattern {pattern!r} is not valid: patterns are relative to the "
            "repository's root, without '..' or control characters."
        )
    regex = ""
    for index, component in enumerate(components):
        last = index == len(components) - 1
        if component == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _glob_component(component, pattern) + ("" if last else "/")
    return re.compile(regex, re.DOTALL)


def _glob_component(component: str, pattern: str) -> str:
    regex, index = "", 0
    while index < len(component):
        char = component[index]
        index += 1
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[":
            end = component.find(
                "]", index + 1 if component[index : index + 1] in ("!", "^") else index
            )
            if end < 0:
                raise InvalidGitSource(f"Path pattern {pattern!r} has an unclosed '['.")
            body = component[index:end]
            index = end + 1
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            escaped = body.replace("\\", "\\\\").replace("[", "\\[").replace("^", "\\^")
            regex += f"[^/{escaped}]" if negate else f"(?!/)[{escaped}]"
        else:
            regex += re.escape(char)
    return regex


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitCommit:
    """One commit of the branch: its id, author (``Name <email>``), commit time (UTC) and
    subject line (control characters replaced, at most 1,000 characters)."""

    id: str
    author: str
    time: datetime
    subject: str


@dataclass(frozen=True)
class GitChange:
    """What a branch gained since the commit last seen.

    Attributes:
        commit: the branch's commit now.
        previous: the commit last seen (``since``), or None on a first look.
        commits: the new commits, newest first, at most ``max_commits`` (on a first look,
            only ``commit``).
        paths: every file path that differs between ``previous`` and ``commit``; on a first
            look, or when ``previous`` can no longer be fetched, every file of ``commit``.
        forced: ``previous`` is not an ancestor of ``commit`` (a force-push rewrote the
            branch); None when that cannot be told: ``previous`` can no longer be fetched,
            or the history linking them is deeper than ``max_commits``.
        truncated: more new commits exist than ``commits`` lists.
    """

    commit: str
    previous: str | None
    commits: tuple[GitCommit, ...]
    paths: tuple[str, ...]
    forced: bool | None = False
    truncated: bool = False

    @property
    def changed(self) -> bool:
        """The branch moved since ``previous`` (always True on a first look)."""
        return self.commit != self.previous

    def matches(self, patterns: Iterable[str]) -> bool:
        """Whether a changed path matches one of ``patterns`` (any new commit when empty).

        Patterns match the whole path from the repository's root: ``loopml.yaml`` is the
        file at the root, ``*`` and ``?`` stay within a folder (``*.py`` is top-level
        only), ``**`` spans folders (``src/**``, ``**/*.py``), ``[abc]`` is a class.

        Raises:
            InvalidGitSource: a pattern is empty, absolute, holds ``..`` or does not parse.
        """
        compiled = [_compile_pattern(pattern) for pattern in patterns]
        if not compiled:
            return self.changed
        return any(regex.fullmatch(path) for path in self.paths for regex in compiled)


# -- running git ---------------------------------------------------------------------------


class _Git:
    """git commands for one source, sharing one deadline."""

    def __init__(self, source: GitSource, timeout: float, git_dir: Path | None = None) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidParameter(f"timeout must be a positive number of seconds; got {timeout!r}")
        self.source = source
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.git_dir = git_dir

    def argv(self, args: Sequence[str]) -> list[str]:
        protocols = {self.source.protocol}
        if self.source.protocol == "http":
            protocols.add("https")  # http:// servers commonly redirect to https://
        config = [
            "protocol.allow=never",
            "protocol.ext.allow=never",
            *(f"protocol.{name}.allow=always" for name in sorted(protocols)),
            f"core.hooksPath={os.devnull}",
            # No detached `gc`/`maintenance` outliving the call (and the cache's lock).
            "gc.auto=0",
            "maintenance.auto=false",
            "fetch.recurseSubmodules=false",
            "init.defaultBranch=main",
        ]
        argv = ["git"]
        for item in config:
            argv += ["-c", item]
        if self.git_dir is not None:
            argv.append(f"--git-dir={self.git_dir}")
        return argv + list(args)

    def run(self, *args: str, ok: Sequence[int] = (0,)) -> tuple[int, bytes]:
        """Run git; return its exit status (one of ``ok``) and output, or raise GitError."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self._timeout()
        try:
            process = subprocess.Popen(
                self.argv(args),
                # Not inside any repository: one there could configure git (core.sshCommand).
                cwd=os.sep if self.git_dir is None else self.git_dir,
                env=_environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise GitUnreachable(
                f"Cannot run git for {self.source.shown}: {exc}", url=self.source.shown
            ) from None
        try:
            out, err = process.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise self._timeout() from None
        if process.returncode not in ok:
            raise self._failure(args[0], err)
        return process.returncode, out

    def _timeout(self) -> GitTimeout:
        return GitTimeout(
            f"git did not finish within {self.timeout:g} s for {self.source.shown}",
            url=self.source.shown,
        )

    def _failure(self, command: str, stderr: bytes) -> GitError:
        lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
        last = redact_text(
            next((line for line in reversed(lines) if line), "no message"),
            url_secrets(self.source.url),
        )
        shown, branch = self.source.shown, self.source.branch
        if _NO_REMOTE_REF in last and f"refs/heads/{branch}" in last:
            return GitBranchNotFound(
                f"Repository {shown} has no branch {branch!r} (git: {last})", url=shown
            )
        verb = {"ls-remote": "list", "fetch": "fetch"}.get(command, f"run git {command} for")
        return GitUnreachable(f"Cannot {verb} {shown}: {last}", url=shown)


def _environment() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GIT_") or name in _KEPT_GIT_VARIABLES
    }
    # Never wait for a password nobody will type; read paths literally, not as
    # pathspec magic; and messages in English, so failures can be told apart.
    env.update(GIT_TERMINAL_PROMPT="0", GIT_LITERAL_PATHSPECS="1", LC_ALL="C")
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    # ssh and git-remote-https hold the pipes too: kill the whole session's group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # A helper that left the group (setsid) still holds the pipes: stop reading them.
        process.kill()
        process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


# -- the cache -----------------------------------------------------------------------------


@contextlib.contextmanager
def _cache(source: GitSource, cache_dir: Path, timeout: float) -> Iterator[_Git]:
    """The source's private bare cache, locked for this process, as a :class:`_Git`."""
    probe = _Git(source, timeout)  # checks the timeout before anything touches the disk
    root = make_private_dirs(cache_dir)
    key = hashlib.sha256(source._location.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    handle = os.open(root / f"{key}.lock", flags, PRIVATE_FILE_MODE)
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= probe.deadline:
                    raise GitTimeout(
                        f"The cache of {source.shown} stayed busy for {timeout:g} s "
                        "(another fetch of the same repository)",
                        url=source.shown,
                    ) from None
                time.sleep(0.05)
        folder = make_private_dirs(root / key)
        git = _Git(source, timeout, folder)
        git.deadline = probe.deadline
        if not (folder / "HEAD").is_file():
            git.run("init", "--quiet", "--bare", "--template=", str(folder))
        yield git
    finally:
        os.close(handle)  # also releases the lock


def _has_commit(git: _Git, commit: str) -> bool:
    status, _ = git.run("cat-file", "-e", f"{commit}^{{commit}}", ok=(0, 1, 128))
    return status == 0


def _fetch_branch(git: _Git, depth: int) -> str:
    ref = f"refs/loopml/heads/{git.source.branch}"
    git.run(
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        f"--depth={depth}",
        "--",
        git.source._location,
        f"+refs/heads/{git.source.branch}:{ref}",
    )
    _, out = git.run("rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}")
    return out.decode().strip()


def _fetch_commit(git: _Git, commit: str) -> bool:
    """Fetch one commit by id (when the branch no longer has it); False if the server can't."""
    if _has_commit(git, commit):
        return True
    try:
        git.run(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--depth=1",
            "--",
            git.source._location,
            commit,
        )
    except GitTimeout:
        raise
    except GitError:
        return False
    return _has_commit(git, commit)


def _shallow(git: _Git) -> frozenset[str]:
    assert git.git_dir is not None
    try:
        return frozenset((git.git_dir / "shallow").read_text().split())
    except FileNotFoundError:
        return frozenset()


def _rev_list(git: _Git, *args: str) -> list[str]:
    _, out = git.run("rev-list", *args, "--")
    return out.decode().split()


def _commits(git: _Git, commit: str, since: str | None, limit: int) -> list[GitCommit]:
    # rev-list, not log: plumbing that user configuration (log.showSignature) leaves alone.
    exclude = [] if since is None else [f"^{since}"]
    _, out = git.run(
        "rev-list",
        "--no-commit-header",
        f"--max-count={limit}",
        "--format=%H%x00%an <%ae>%x00%ct%x00%s%x1e",
        commit,
        *exclude,
        "--",
    )
    found = []
    for record in out.decode("utf-8", "replace").split("\x1e"):
        fields = record.strip("\n").split("\x00")
        if len(fields) == 4:
            id_, author, seconds, subject = fields
            found.append(
                GitCommit(
                    id=id_,
                    author=_printable(author),
                    time=datetime.fromtimestamp(int(seconds or 0), UTC),
                    subject=_printable(subject)[:_MAX_SUBJECT],
                )
            )
    return found


def _printable(text: str) -> str:
    # Commit text is the pusher's to choose; escape sequences must not reach a terminal.
    return "".join("\ufffd" if unicodedata.category(c) == "Cc" else c for c in text)


def _paths(git: _Git, old: str | None, new: str) -> tuple[str, ...]:
    if old is None:
        _, out = git.run("ls-tree", "-r", "-z", "--name-only", "--full-tree", new)
    else:
        _, out = git.run("diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new)
    return tuple(os.fsdecode(name) for name in out.split(b"\x00") if name)


# -- the watcher's operations --------------------------------------------------------------


def head(source: GitSource, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The commit id the source's branch points at now (``git ls-remote``; nothing fetched).

    Args:
        source: the branch to ask about.
        timeout: seconds git may take.

    Returns:
        The full commit id.

    Raises:
        GitBranchNotFound: the repository has no such branch.
        GitUnreachable: the repository cannot be listed.
        GitTimeout: git took longer than ``timeout``.
    """
    ref = f"refs/heads/{source.branch}"
    _, out = _Git(source, timeout).run("ls-remote", "--", source._location, ref)
    for line in out.decode("utf-8", "replace").splitlines():
        commit, _, name = line.partition("\t")
        if name == ref:
            return commit
    raise GitBranchNotFound(
        f"Repository {source.shown} has no branch {source.branch!r}", url=source.shown
    )


def changes(
    source: GitSource,
    since: str | None,
    cache_dir: str | os.PathLike[str],
    *,
    max_commits: int = DEFAULT_MAX_COMMITS,
    timeout: float = DEFAULT_TIMEOUT,
) -> GitChange:
    """Fetch the branch into the cache and describe what it gained since ``since``.

    Args:
        source: the branch to watch.
        since: the commit seen last time (the trigger's cursor), or None on a first look.
        cache_dir: the folder holding the private bare caches (created ``0o700``).
        max_commits: how many new commits to list, and how deep to fetch.
        timeout: seconds for the whole call, waiting for the cache's lock included.

    Returns:
        The new commit, the commits since ``since``, the changed paths, and whether the
        branch was force-pushed. A force-push is reported, not raised.

    Raises:
        InvalidGitSource: ``since`` is not a full commit id.
        GitBranchNotFound: the repository has no such branch.
        GitUnreachable: the repository cannot be fetched.
        GitTimeout: the call took longer than ``timeout``.
    """
    if since is not None:
        since = _check_commit(since, source, "previous commit (since)")
    if isinstance(max_commits, bool) or not isinstance(max_commits, int):
        raise InvalidParameter(f"max_commits must be an int; got {max_commits!r}")
    if not 1 <= max_commits <= _MAX_COMMITS_LIMIT:
        raise InvalidParameter(
            f"max_commits must be in [1, {_MAX_COMMITS_LIMIT}]; got {max_commits}"
        )
    with _cache(source, Path(cache_dir), timeout) as git:
        # One deeper than listed: then a complete list shows that `since` was reached.
        commit = _fetch_branch(git, 1 if since is None else max_commits + 1)
        if since is None:
            return GitChange(
                commit, None, tuple(_commits(git, commit, None, 1)), _paths(git, None, commit)
            )
        if since == commit:
            return GitChange(commit, since, (), ())
        known = _fetch_commit(git, since)
        listed = _commits(git, commit, since if known else None, max_commits + 1)
        shallow = _shallow(git)
        cut = len(listed) > max_commits or any(entry.id in shallow for entry in listed)
        forced: bool | None = None  # `since` is gone from the server: cannot tell
        if known:
            forced = True
            status, _ = git.run("merge-base", "--is-ancestor", since, commit, ok=(0, 1))
            if status == 0:
                forced = False
            elif shallow & set(_rev_list(git, commit)):
                forced = None  # the history that could hold `since` was not fetched
        return GitChange(
            commit,
            since,
            tuple(listed[:max_commits]),
            _paths(git, since if known else None, commit),
            forced=forced,
            truncated=cut,
        )


def read_file(
    source: GitSource,
    commit: str,
    path: str,
    cache_dir: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> bytes:
    """The bytes of the regular file ``path`` at ``commit`` (fetched into the cache if needed).

    Args:
        source: the repository.
        commit: the full commit id.
        path: a relative path inside the repository (``/``-separated, no ``..``).
        cache_dir: the folder holding the private bare caches, as for :func:`changes`.
        max_bytes: the largest size accepted.
        timeout: seconds for the whole call.

    Returns:
        The file's bytes.

    Raises:
        InvalidGitSource: ``commit`` is not a full commit id, or ``path`` is absolute,
            holds ``..`` or is otherwise not a plain relative path.
        GitPathNotFound: the commit has no regular file there.
        GitFileTooLarge: the file is larger than ``max_bytes``.
        GitUnreachable: the commit cannot be fetched.
        GitTimeout: the call took longer than ``timeout``.
    """
    commit = _check_commit(commit, source, "commit")
    _check_file_path(path, source)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise InvalidParameter(f"max_bytes must be a non-negative int; got {max_bytes!r}")
    with _cache(source, Path(cache_dir), timeout) as git:
        if not _fetch_commit(git, commit):
            raise GitUnreachable(
                f"Cannot fetch commit {commit[:12]} of {source.shown}", url=source.shown
            )
        _, out = git.run("ls-tree", "-z", "--long", "--full-tree", commit, "--", path)
        wanted = os.fsencode(path)
        entry = next((e for e in out.split(b"\x00") if e.partition(b"\t")[2] == wanted), None)
        if entry is None:
            raise GitPathNotFound(
                f"Commit {commit[:12]} of {source.shown} has no file {path!r}", url=source.shown
            )
        mode, kind, blob, size = entry.split(b"\t", 1)[0].split()
        if kind != b"blob" or mode == b"120000":
            what = "a symbolic link" if mode == b"120000" else f"a {kind.decode()}"
            raise GitPathNotFound(
                f"{path!r} at commit {commit[:12]} of {source.shown} is {what}, not a file",
                url=source.shown,
            )
        if int(size) > max_bytes:
            raise GitFileTooLarge(
                f"{path!r} at commit {commit[:12]} of {source.shown} has {int(size)} bytes; "
                f"the limit is {max_bytes}",
                url=source.shown,
            )
        _, data = git.run("cat-file", "blob", blob.decode())
        return data


def _check_file_path(path: object, source: GitSource) -> None:
    parts = path.split("/") if isinstance(path, str) else []
    if (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or "\\" in path
        or _has_control(path)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise InvalidGitSource(
            f"File path {path!r} in git source {source.shown!r} is not valid: a path is "
            "relative to the repository's root, '/'-separated, without '.', '..', "
            "empty components, backslashes or control characters.",
            url=source.shown,
        )
