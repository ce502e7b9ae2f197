"""The README and the quickstart page run as written, block after block, in an empty folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from doc_blocks import blocks, page_runner

_ROOT = Path(__file__).resolve().parents[2]
_PAGES = [_ROOT / "README.md", _ROOT / "docs" / "quickstart.md"]


@pytest.mark.slow
@pytest.mark.parametrize("page", _PAGES, ids=lambda page: page.name)
def test_every_block_runs_in_order(page: Path, tmp_path: Path) -> None:
    found = blocks(page)
    if any("curl " in block.code for block in found) and shutil.which("curl") is None:
        pytest.skip(f"{page.name} sends requests with curl, which is not installed here")
    with page_runner(page, tmp_path) as runner:
        for block in found:
            if block.mode != "skip":
                runner.run(block)
    print("\n".join(f"{where}: {seconds:.1f}s" for where, seconds in runner.timings))


@pytest.mark.parametrize("page", _PAGES, ids=lambda page: page.name)
def test_blocks_are_found_and_skips_stay_rare(page: Path) -> None:
    found = blocks(page)
    assert sum(block.mode == "run" for block in found) >= 3
    skipped = [block for block in found if block.mode == "skip"]
    assert len(skipped) <= 2, [block.describe(page) for block in skipped]
    assert all(block.why for block in found if block.mode != "run"), "say why a block is special"
