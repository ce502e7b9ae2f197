"""Extract the runnable blocks of a Markdown page and run them, in order, in one folder.

A page's ```python and ```bash blocks are what a reader pastes; the tests run
them exactly so. An HTML comment on the line before a block changes that:

- ``<!-- readme-test: skip (why) -->``: not run (an excerpt, or a command that sets
  up this repository itself).
- ``<!-- readme-test: background (why) -->``: a server; it is started, the run waits
  for its ``Serving on`` line and for its port to accept connections, goes on with
  the next blocks and stops it (Ctrl-C) at the end.

Two liberties are taken, both to share a busy machine: the port ``8080`` the pages
use becomes a free one, and ``loopml`` and ``python`` are this virtual
environment's.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "PageRunner", "blocks"]

_FENCE = re.compile(
    r"(?:^<!--\s*readme-test:\s*(?P<mode>skip|background)\b(?P<why>[^>]*)-->\s*\n)?"
    r"^```(?P<lang>python|bash)[ \t]*\n(?P<code>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_PAGE_PORT = "8080"
_SERVER_READY = "Serving on "
_BLOCK_TIMEOUT = 600.0
_SERVER_START_TIMEOUT = 180.0


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    lang: str
    code: str
    line: int
    mode: str  # "run", "skip" or "background"
    why: str

    def describe(self, page: Path) -> str:
        """Where the block is, for failure messages."""
        return f"{page.name}:{self.line} ({self.lang})"


def blocks(page: Path) -> list[Block]:
    """Every ```python and ```bash block of ``page``, in order."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        found.append(
            Block(
                lang=match["lang"],
                code=match["code"],
                line=text.count("\n", 0, match.start("lang")) + 1,
                mode=match["mode"] or "run",
                why=(match["why"] or "").strip(" ()"),
            )
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PageRunner:
    """Runs a page's blocks in ``folder`` as a reader would, in a fresh environment."""

    def __init__(self, page: Path, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.port = str(free_port())
        venv_bin = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPML_", "PYTEST_"))}
        # LOOPML_HOME is left unset on purpose: the pages rely on the default ./.loopml.
        env.update(PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1")
        env.update(COLUMNS="200", PYTHONUNBUFFERED="1")
        self.env = env
        self._servers: list[subprocess.Popen[str]] = []
        self._count = 0
        self.timings: list[tuple[str, float]] = []
        """Each block run and how long it took (printed by the test, for slow runs)."""

    def run(self, block: Block) -> None:
        """Run one block; raise AssertionError with its output when it fails."""
        code = block.code.replace(_PAGE_PORT, self.port)
        if block.mode == "background":
            self._start_server(block, code)
            return
        self._count += 1
        if block.lang == "python":
            script = self.folder / f"page_block_{self._count}.py"
            script.write_text(code, encoding="utf-8")
            argv = [sys.executable, script.name]
        else:
            argv = ["bash", "-euo", "pipefail", "-c", code]
        started = time.monotonic()
        done = subprocess.run(
            argv,
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=_BLOCK_TIMEOUT,
            check=False,
        )
        self.timings.append((block.describe(self.page), time.monotonic() - started))
        assert done.returncode == 0, (
            f"{block.describe(self.page)} exited {done.returncode}\n--- block\n{code}"
            f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
        )

    def _start_server(self, block: Block, code: str) -> None:
        server = subprocess.Popen(
            ["bash", "-c", f"exec {code.strip().splitlines()[0]}"],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._servers.append(server)
        assert server.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + _SERVER_START_TIMEOUT
        # readline blocks, but the server prints its line or dies (EOF) well before then.
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            seen.append(line)
            if _SERVER_READY in line:
                # The line comes before the socket listens: wait for a connection to succeed.
                while time.monotonic() < deadline and server.poll() is None:
                    with socket.socket() as probe:
                        if probe.connect_ex(("127.0.0.1", int(self.port))) == 0:
                            return
                    time.sleep(0.1)
                break
        raise AssertionError(
            f"{block.describe(self.page)}: no {_SERVER_READY!r} line; it printed:\n" + "".join(seen)
        )

    def stop_servers(self) -> None:
        """Stop the servers started from background blocks (Ctrl-C, as a reader would)."""
        for server in self._servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGINT)
                try:
                    server.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
            if server.stdout is not None:
                server.stdout.close()


@contextmanager
def page_runner(page: Path, folder: Path) -> Iterator[PageRunner]:
    """A :class:`PageRunner` whose servers are stopped however the run ends."""
    runner = PageRunner(page, folder)
    try:
        yield runner
    finally:
        runner.stop_servers()
