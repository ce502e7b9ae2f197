"""Checks shared by the tests of records' reprs and ``_repr_html_`` (notebook display)."""

from __future__ import annotations

from html.parser import HTMLParser

EVIL = "<script>alert('x')</script>&\"x\"\n" + "long " * 100
"""A stored value that must neither break a repr's single line nor inject HTML."""

ALLOWED_TAGS = {"div", "style", "table", "caption", "thead", "tbody", "tr", "th", "td", "p"}


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text.append(data)


def check_repr(text: str, *parts: str) -> None:
    """A short single line, ``<Class …>``, holding every one of ``parts``."""
    assert text.startswith("<") and text.endswith(">"), text
    assert "\n" not in text, text
    assert len(text) <= 200, (len(text), text)
    for part in parts:
        assert part in text, (part, text)


def check_html(markup: str, *cells: str) -> list[str]:
    """Self-contained, escaped HTML showing every one of ``cells``; returns its text pieces.

    Only table markup (no script, no link, no event handler, no URL); every value
    stored with :data:`EVIL` in it shows as text, never as markup.
    """
    parser = _Markup()
    parser.feed(markup)
    parser.close()
    assert set(parser.tags) <= ALLOWED_TAGS, set(parser.tags) - ALLOWED_TAGS
    assert parser.attributes == [("class", "loopml-record")]
    assert "<script>" not in markup
    for cell in cells:
        assert cell in parser.text, (cell, parser.text)
    return parser.text
