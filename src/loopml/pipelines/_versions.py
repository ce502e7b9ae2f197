"""Installed distribution versions, looked up fast and kept fresh.

Cache keys and code fingerprints name library code by ``distribution==version``.
A lookup through ``importlib.metadata`` costs about half a millisecond and the
top-level-name map about 100 ms, so versions are remembered until an import
folder on ``sys.path`` changes (an install, upgrade or removal), checked at most
once a second.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from loopml.errors import InvalidParameter

__all__ = ["VERSIONS", "Versions", "dist_name", "package_version"]

_RECHECK_SECONDS: Final = 1.0
_REQUIREMENT_NAME: Final = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def package_version(name: str) -> str:
    """Installed version of a distribution, looked up now (tests replace this)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"


def import_path_signature() -> tuple[tuple[str, int], ...]:
    """Modification times of the import folders.

    Installing, upgrading or removing a distribution adds or removes a
    ``*.dist-info`` entry in one of them, which changes its mtime.
    """
    signature = []
    for entry in sys.path:
        try:
            signature.append((entry, Path(entry or ".").stat().st_mtime_ns))
        except OSError:
            continue
    return tuple(signature)


class Versions:
    """Distribution versions, remembered until an import folder changes.

    A lookup through ``importlib.metadata`` costs about half a millisecond and
    the top-level-name map about 100 ms; checking the folders' mtimes (at most
    once a second) costs microseconds, and keeps a ``pip install -U`` in a
    long-lived process (a notebook kernel) from leaving stale versions in keys.
    """

    def __init__(self) -> None:
        self._signature: tuple[tuple[str, int], ...] | None = None
        self._versions: dict[str, str] = {}
        self._libraries: dict[str, list[str]] = {}
        self._distributions: Mapping[str, list[str]] | None = None
        self._checked = -float("inf")

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < _RECHECK_SECONDS:  # a pipeline run asks many times a second
            return
        self._checked = now
        signature = import_path_signature()
        if signature != self._signature:
            self._signature = signature
            self._versions.clear()
            self._libraries.clear()
            self._distributions = None

    def version(self, name: str) -> str:
        found = self._versions.get(name)
        if found is None:
            found = self._versions[name] = package_version(name)
        return found

    def distributions(self) -> Mapping[str, list[str]]:
        if self._distributions is None:
            self._distributions = importlib.metadata.packages_distributions()
        return self._distributions

    def library(self, top: str) -> list[str]:
        """``dist==version`` for the distributions providing a top-level package."""
        found = self._libraries.get(top)
        if found is None:
            dists = sorted(set(self.distributions().get(top, ())))
            found = [f"{dist}=={self.version(dist)}" for dist in dists] or [f"{top}==unknown"]
            self._libraries[top] = found
        return found


VERSIONS = Versions()


def dist_name(requirement: str) -> str:
    match = _REQUIREMENT_NAME.match(requirement) if isinstance(requirement, str) else None
    if match is None:
        raise InvalidParameter(
            "The 'packages' parameter of cache_key must hold distribution names. "
            f"Got {requirement!r} instead."
        )
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()
