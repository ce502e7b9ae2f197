"""A writer SIGKILLed mid-write never leaves a partial blob under an address."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopml.artifacts import ArtifactStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

# Writes distinct 4 MiB blobs in a loop, printing each digest once stored. With
# "pause", the fourth blob's stream stops after 2 MiB and says so: the parent
# then kills the child while the blob is certainly half written.
CHILD = r"""
import hashlib, io, sys, time
from loopml.artifacts import ArtifactStore

store = ArtifactStore.from_uri(sys.argv[1])
pause = sys.argv[2] == "pause"
CHUNK = 1024 * 1024

class Generated(io.RawIOBase):
    def __init__(self, seed, stop_after):
        self.seed, self.stop_after, self.sent = seed, stop_after, 0
    def readable(self):
        return True
    def readinto(self, buffer):
        if self.sent == 4:
            return 0
        if self.sent == self.stop_after:
            print("MID", flush=True)
            time.sleep(60)
        block = hashlib.sha256(f"{self.seed}-{self.sent}".encode()).digest() * (CHUNK // 32)
        n = min(len(buffer), len(block))
        buffer[:n] = block[:n]
        self.sent += 1
        return n

i = 0
while True:
    stop = 2 if pause and i == 3 else -1
    stream = io.BufferedReader(Generated(i, stop), buffer_size=CHUNK)
    print(store.put_stream(stream), flush=True)
    i += 1
"""


def _run_and_kill(root: Path, mode: str, blobs_before_kill: int) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    printed: list[str] = []
    try:
        assert child.stdout is not None
        while True:
            line = child.stdout.readline().strip()
            assert line, "child exited early"
            if line == "MID":
                break
            printed.append(line)
            if mode == "loop" and len(printed) >= blobs_before_kill:
                time.sleep(0.01)  # let the next blob get under way
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return printed


def _assert_store_sound(root: Path, printed: list[str]) -> ArtifactStore:
    store = ArtifactStore.from_uri(str(root))
    listed = [digest for digest, _ in store.iter_blobs()]
    assert set(printed) <= set(listed)
    for digest in listed:
        assert store.verify(digest), f"blob {digest} visible but not intact"
    blob_files = [p for p in (root / "blobs").rglob("*") if p.is_file()]
    assert sorted(p.name for p in blob_files) == sorted(listed)
    return store


def test_kill_in_the_middle_of_a_blob(tmp_path: Path) -> None:
    printed = _run_and_kill(tmp_path, "pause", blobs_before_kill=3)

    store = _assert_store_sound(tmp_path, printed)
    assert len(printed) == 3
    assert sorted(d for d, _ in store.iter_blobs()) == sorted(printed)
    partial = [p for p in (tmp_path / "tmp").iterdir()]
    assert len(partial) == 1  # the half-written blob stays in the temp area
    assert partial[0].stat().st_size >= 2 * 1024 * 1024
    assert all(store.size(d) == 4 * 1024 * 1024 for d in printed)


def test_kill_at_an_arbitrary_moment(tmp_path: Path) -> None:
    printed = _run_and_kill(tmp_path, "loop", blobs_before_kill=2)

    store = _assert_store_sound(tmp_path, printed)
    assert all(store.size(d) == 4 * 1024 * 1024 for d, _ in store.iter_blobs())
