"""The block extractor behind the README test: languages, markers, line numbers."""

from __future__ import annotations

from pathlib import Path

from doc_blocks import blocks

_PAGE = """\
# Title

```python
print("one")
```

<!-- readme-test: skip (an excerpt) -->
```bash
make demo
```

```text
not run
```

<!-- readme-test: background (a server) -->
```bash
loopml serve credit --port 8080
```

```bash
echo "two"
```
"""


def test_blocks_keep_their_order_language_marker_and_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(_PAGE, encoding="utf-8")
    found = blocks(page)
    assert [(b.lang, b.mode, b.why, b.line) for b in found] == [
        ("python", "run", "", 3),
        ("bash", "skip", "an excerpt", 8),
        ("bash", "background", "a server", 17),
        ("bash", "run", "", 21),
    ]
    assert found[0].code == 'print("one")\n'
    assert found[2].code == "loopml serve credit --port 8080\n"


def test_a_marker_applies_only_to_the_block_right_after_it(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- readme-test: skip (far) -->\n\ntext\n\n```bash\ntrue\n```\n")
    assert [b.mode for b in blocks(page)] == ["run"]
