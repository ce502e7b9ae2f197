"""A git trigger's events: the new commits of its branch, read by the git watcher.

:func:`git_poller` makes the function the scheduler hands to
:func:`~loopml.automation._sources.poll`. A first look records the branch's commit and
fires nothing (a trigger does not fire for history older than itself). After that,
each poll asks the branch's head (``git ls-remote``: nothing fetched) and fetches only
when it moved; the new commits become one event, keyed by the new commit, unless the
trigger names ``paths`` and no changed path matches them (the cursor moves on; nothing
fires). A repository is asked at most once per ``min_interval`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.automation._git import GitSource, changes, head
from loopml.automation._sources import Event, GitPoll

__all__ = ["DEFAULT_GIT_INTERVAL", "git_poller"]

DEFAULT_GIT_INTERVAL = 30.0
"""Seconds between two looks at one repository's branch."""
_SHOWN_PATHS = 50


def git_poller(cache_dir: Path, *, min_interval: float = DEFAULT_GIT_INTERVAL) -> GitPoll:
    """The git reader of a scheduler whose repository caches live under ``cache_dir``."""
    last_look: dict[tuple[str, str], float] = {}
    lock = threading.Lock()

    def poll(options: Mapping[str, Any], since: str | None) -> tuple[list[Event], str | None]:
        source = GitSource(
            str(options["url"]), str(options.get("branch", "main")), tuple(options.get("paths", ()))
        )
        key = (source.url, source.branch)
        with lock:
            now = time.monotonic()
            if since is not None and now - last_look.get(key, -min_interval) < min_interval:
                return [], since
            last_look[key] = now
        current = head(source)
        if since is None or current == since:
            return [], current
        change = changes(source, since, cache_dir)
        if source.paths and not change.matches(source.paths):
            return [], change.commit
        newest = change.commits[0] if change.commits else None
        summary = (
            f"{len(change.commits)}{'+' if change.truncated else ''} new commit(s) on "
            f"{source.branch}" + (f": {newest.subject[:120]}" if newest else "")
        )
        event = Event(
            f"commit:{change.commit}",
            int(newest.time.timestamp() * 1000) if newest else int(time.time() * 1000),
            summary + (" (force-pushed)" if change.forced else ""),
            max(1, len(change.commits)),
            {
                "commit": change.commit,
                "previous": since,
                "branch": source.branch,
                "repository": source.shown,
                "forced": bool(change.forced),
                "paths": list(change.paths[:_SHOWN_PATHS]),
            },
        )
        return [event], change.commit

    return poll
