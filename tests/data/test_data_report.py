"""Validation reports: JSON round trip and the self-contained, escaped HTML page."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pyarrow as pa
import pytest

from loopml.data._expect import expect
from loopml.data._normalize import normalize_table
from loopml.data._profile import profile_table
from loopml.data._report import CheckResult, SchemaDiff, ValidationReport, jsonable
from loopml.data._schema import infer_schema
from loopml.data._validate import validate_batches

EVIL = "<script>alert('x')</script>"


@pytest.fixture
def data() -> pa.Table:
    return normalize_table(
        pa.table(
            {
                "id": list(range(40)),
                "amount": [float(i) * 1.5 for i in range(40)],
                "state": ["CA", "NY", "TX", "WA"] * 10,
                EVIL: ["a", "b"] * 20,
            }
        )
    )


@pytest.fixture
def report(data: pa.Table) -> ValidationReport:
    schema = infer_schema(profile_table(data.slice(0, 20)), key_columns=["id"])
    new = data.set_column(2, "state", pa.array(["CA", EVIL] * 20, pa.large_string()))
    return validate_batches(
        new.to_batches(max_chunksize=16),
        schema,
        [expect.in_set("state", ["CA"]), expect.row_count(min=1)],
        source=f"DataFrame {EVIL}",
        against="credit@latest",
    )


def test_dict_and_json_round_trip(report: ValidationReport) -> None:
    assert not report.passed
    assert ValidationReport.from_dict(report.to_dict()) == report
    again = ValidationReport.from_json(report.to_json())
    assert again == report
    parsed = json.loads(report.to_json())
    assert parsed["against"] == "credit@latest" and parsed["row_count"] == 40
    assert {"passed", "checks", "schema_diff", "created_at", "source"} <= set(parsed)


def test_json_is_standard_for_odd_values() -> None:
    check = CheckResult(
        "x",
        "range",
        "x",
        False,
        2,
        [{"row": 0, "value": jsonable(float("inf"))}, {"row": 1, "value": jsonable(float("nan"))}],
    )
    report = ValidationReport(False, (check,), SchemaDiff(), 2, "s")
    assert '"inf"' in report.to_json() and "NaN" not in report.to_json()


class _Page(HTMLParser):
    """Collects tags and checks they nest properly."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr"})
    SELF_CLOSING_SVG = frozenset({"rect", "path", "line"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    assert page.stack == []
    return page


def test_html_is_self_contained_and_parses(report: ValidationReport, data: pa.Table) -> None:
    html = report.to_html(profile_table(data))
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html and "https://" not in html
    page = parse(html)
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert not [a for a, v in page.attributes if a in ("src", "href")]
    assert page.tags.count("svg") == 4  # one chart per column
    assert "rect" in page.tags and "style" in page.tags


def test_html_escapes_values_from_data(report: ValidationReport, data: pa.Table) -> None:
    html = report.to_html(profile_table(data))
    assert EVIL not in html
    assert "&lt;script&gt;" in html
    # the failing sample, the source, a column name and a top-k label all carry it
    assert html.count("&lt;script&gt;") >= 4


def test_html_without_profile_and_for_passing_report(data: pa.Table) -> None:
    schema = infer_schema(profile_table(data))
    report = validate_batches(data.to_batches(), schema, [], "ok")
    html = report.to_html()
    page = parse(html)
    assert "svg" not in page.tags and "passed" in html and "None: the columns match" in html


def test_html_shows_schema_differences(data: pa.Table) -> None:
    schema = infer_schema(profile_table(data))
    other = data.drop_columns(["amount"]).append_column("extra", pa.array(range(40)))
    html = validate_batches(other.to_batches(), schema, [], "x").to_html()
    assert "missing" in html and "extra" in html
    parse(html)
