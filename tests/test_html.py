"""loopml._html: clipped one-line reprs and escaped, capped HTML tables."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from display_support import EVIL, check_html
from loopml._html import MAX_CELL, MAX_ROWS, Section, clip, html_table, number, when

values = st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none())


@given(value=values, width=st.integers(min_value=2, max_value=300))
def test_clip_gives_one_line_of_at_most_width_characters(value: object, width: int) -> None:
    text = clip(value, width)
    assert len(text) <= width
    assert not any(c in text for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


@given(title=st.text(), fields=st.lists(st.tuples(st.text(), values), max_size=5))
def test_every_title_label_and_value_is_escaped_text(
    title: str, fields: list[tuple[str, object]]
) -> None:
    markup = html_table(title, fields, Section("rows", ("a", "b"), [(EVIL, 1)]))
    check_html(markup)


def test_values_show_as_text_and_long_ones_are_clipped() -> None:
    text = check_html(
        html_table("t", [("evil", EVIL), ("none", None), ("yes", True), ("x", 0.1234567891)])
    )
    assert EVIL[: MAX_CELL - 1] + "…" in text
    assert "none" not in text  # fields without a value are left out
    assert {"yes", "0.123457"} <= set(text)


def test_a_long_section_shows_its_first_rows_and_counts_the_rest() -> None:
    rows = [(str(i),) for i in range(MAX_ROWS + 7)]
    text = check_html(html_table("t", [], Section("Items", ("item",), rows)))
    assert f"Items ({MAX_ROWS + 7})" in text
    assert str(MAX_ROWS - 1) in text and str(MAX_ROWS) not in text
    assert "… and 7 more" in text
    assert "Empty" not in html_table("t", [], Section("Empty", ("x",), []))


def test_numbers_and_times() -> None:
    assert number(1000) == "1,000"
    assert when(0) == "1970-01-01 00:00:00 UTC"
    assert when(None) == ""
    assert when(10**30) == str(10**30)
