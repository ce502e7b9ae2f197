"""The HTML report of a monitor result: self-contained, escaped, ordered, small."""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.errors import InvalidParameter
from loopml.monitoring import CheckResult, MonitorResult, render_html, write_report
from loopml.monitoring._report_view import MAX_BINS, MAX_TABLE_ROWS, MAX_TEXT

DAY = 86_400_000
START = 1_733_000_000_000

# What the page may contain: text, tables, inline SVG. No script, link, image, frame,
# form or event handler can come from the data.
TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table", "tr",
    "th", "td", "span", "code", "div", "br", "svg", "path", "text", "polygon", "polyline",
    "circle",
}  # fmt: skip
ATTRIBUTES = {
    "lang", "charset", "name", "content", "class", "title", "viewbox", "role", "d", "x", "y",
    "text-anchor", "points", "cx", "cy", "r",
}  # fmt: skip
VOID = {"meta", "br"}


class Page(HTMLParser):
    """Collects tags, attributes and text, and checks that elements are balanced."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()
        assert self.stack == [], f"unclosed elements {self.stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shares(rng: random.Random, count: int, tilt: float = 0.0) -> list[float]:
    raw = [rng.random() + tilt * i / count for i in range(count)]
    total = sum(raw)
    return [x / total for x in raw]


def numeric(
    column: str, statistic: float, *, bins: int = 20, seed: int = 0, **options: Any
) -> CheckResult:
    rng = random.Random(seed)
    status = "alert" if statistic > 0.2 else "ok"
    detail = {
        "kind": "numeric",
        "edges": [float("-inf"), *(float(i) for i in range(1, bins)), float("inf")],
        "reference": shares(rng, bins),
        "current": shares(rng, bins, tilt=statistic * 5),
        "raw_p_value": 0.001,
        "adjusted": True,
        "reference_missing": 0.0,
        "current_missing": 0.02,
        "reference_rows": 10_000,
        "current_rows": 8_000,
    }
    return CheckResult(
        "drift", column, "psi", statistic, 0.2, status, p_value=0.01, detail=detail, **options
    )


def categorical(column: str, statistic: float, categories: list[str]) -> CheckResult:
    rng = random.Random(1)
    detail = {
        "kind": "categorical",
        "categories": categories,
        "reference": shares(rng, len(categories)),
        "current": shares(rng, len(categories), tilt=1.0),
        "raw_p_value": 0.2,
        "adjusted": True,
        "reference_missing": 0.0,
        "current_missing": 0.0,
        "reference_rows": 100,
        "current_rows": 100,
    }
    status = "alert" if statistic > 0.1 else "ok"
    return CheckResult("drift", column, "jensen_shannon", statistic, 0.1, status, detail=detail)


def performance(day: int, accuracy: float | None, share: float) -> CheckResult:
    status = "no_data" if accuracy is None else ("alert" if accuracy < 0.85 else "ok")
    interval = None if accuracy is None else (accuracy - 0.02, accuracy + 0.02)
    detail = {
        "labelled": int(share * 1000),
        "predicted": 1000,
        "labelled_fraction": share,
        "window_start": START + (day - 1) * DAY,
        "window_end": START + day * DAY,
        "estimated": False,
    }
    return CheckResult(
        "performance", "label", "accuracy", accuracy, 0.85, status, interval=interval, detail=detail
    )


def result(*checks: CheckResult, day: int = 10, **options: Any) -> MonitorResult:
    status = "alert" if any(c.status == "alert" for c in checks) else "ok"
    return MonitorResult(
        monitor=options.pop("monitor", "credit"),
        status=options.pop("status", status),
        started_at=START + day * DAY,
        reference="dataset:credit:3",
        current="endpoint:credit[1733000000000,1733086400000)",
        reference_rows=10_000,
        current_rows=8_000,
        checks=checks,
        **options,
    )


FULL = result(
    numeric("income", 0.45, seed=1),
    numeric("age", 0.02, seed=2),
    numeric("tenure", 0.31, seed=3),
    categorical("region", 0.3, ["north", "south", "east", "west", "(other)"]),
    CheckResult("missing_rate", "income", "missing_rate", 0.02, 0.01, "alert",
                detail={"reference": 0.0, "current": 0.02, "raw_p_value": 1e-9}),
    CheckResult("unseen_category", "region", "unseen_share", 0.0, 0.01, "ok",
                detail={"reference": 0.0, "current": 0.0, "raw_p_value": 1.0}),
    CheckResult("dataset_drift", "", "share_drifted", 0.6, 0.5, "alert",
                detail={"columns": 4, "drifted": ["income", "tenure", "region"]}),
    CheckResult("multivariate_drift", "", "domain_auc", 0.71, 0.55, "alert",
                interval=(0.69, 0.73), detail={"auc": 0.71, "folds": [0.7, 0.72], "rows": 16000}),
    performance(10, 0.82, 0.4),
    CheckResult("estimated_performance", "label", "accuracy", 0.83, 0.85, "alert",
                detail={"labelled": 0, "predicted": 1000, "labelled_fraction": 0.0,
                        "window_start": START + 9 * DAY, "window_end": START + 10 * DAY,
                        "estimated": True}),
    CheckResult("fairness", "sex", "demographic_parity_difference", 0.18, 0.1, "alert",
                detail={"groups": {"female": {"n": 400, "selection_rate": 0.31, "accuracy": 0.84},
                                   "male": {"n": 600, "selection_rate": 0.49, "accuracy": None}}}),
    CheckResult("attribution_drift", "", "ndcg", 0.82, 0.9, "alert",
                detail={"reference": {"income": 0.5, "age": 0.3, "tenure": 0.1},
                        "current": {"tenure": 0.4, "income": 0.35, "region": 0.1},
                        "method": "permutation"}),
    CheckResult("data_quality", "age", "out_of_range", None, 0.0, "no_data",
                message="no rows in the window"),
    lineage={"model_version": "credit/3", "segments": ["ab12", "cd34"]},
    id=42,
)  # fmt: skip
HISTORY = [result(performance(day, acc, share), day=day) for day, acc, share in (
    (3, 0.91, 0.9), (1, 0.93, 1.0), (2, 0.92, 0.95), (5, None, 0.0), (4, 0.9, 0.8),
)]  # fmt: skip


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(FULL, history=HISTORY)


def test_the_page_is_self_contained_and_well_formed(page: str) -> None:
    parsed = Page(page)
    assert parsed.tags <= TAGS and parsed.attributes <= ATTRIBUTES
    for outside in ("http://", "https://", "src=", "href=", "url(", "@import", "<script"):
        assert outside not in page
    assert "@media (prefers-color-scheme: dark)" in page
    assert page.startswith("<!DOCTYPE html>")


def test_the_summary_names_the_monitor_both_sides_and_their_rows(page: str) -> None:
    text = " ".join(" ".join(Page(page).text).split())
    assert "Monitor credit" in text and "result 42" in text
    assert "Reference dataset:credit:3 (10,000 rows) vs current endpoint:credit[" in text
    assert "(8,000 rows)" in text and "13 checks, 10 alerting" in text
    assert "credit/3" in text and "ab12, cd34" in text


def sections(page: str) -> dict[str, str]:
    parts = re.split(r"<h2>(.*?)</h2>", page)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_alerting_checks_come_first_then_the_checks_without_data(page: str) -> None:
    order = list(sections(page))
    assert order[0] == "Needs attention"
    attention = sections(page)["Needs attention"]
    badges = re.findall(r'<span class="badge (\w+)">', attention)
    assert badges == ["alert"] * 10 + ["no_data"]
    assert "no rows in the window" in attention
    assert 'class="badge ok"' not in attention


def test_the_drift_table_is_sorted_by_effect_size(page: str) -> None:
    table = sections(page)["Drift, by effect size"]
    columns = re.findall(r'<td class="text">([^<]*)</td><td><code>', table)
    # income 0.45/0.2, region 0.3/0.1, tenure 0.31/0.2, missing 0.02/0.01, age 0.02/0.2, unseen 0
    assert columns == ["region", "income", "income", "tenure", "age", "region"]


def test_drifting_columns_get_large_charts_and_the_others_thumbnails(page: str) -> None:
    charts = sections(page)["Distributions"]
    drifting, others = charts.split("<h3>Other columns</h3>")
    assert drifting.count('<svg class="chart"') == 3  # income, tenure, region
    assert others.count('<svg class="chart small"') == 1  # age
    assert "income: reference and current distributions" in drifting
    assert ">missing</text>" in drifting  # missing values drawn as a slot of their own
    for name in ("north", "(other)"):
        assert f">{name}</text>" in drifting


def test_performance_is_drawn_over_time_with_the_labelled_share(page: str) -> None:
    perf = sections(page)["Performance over time"]
    assert perf.count("<svg") == 2
    accuracy = perf.split("<svg")[1]
    assert accuracy.count('<circle class="dot') == 5  # days 1-4 and the current day 10
    assert accuracy.count('<circle class="nodata"') == 1  # day 5 had no labels
    assert '<polygon class="band"' in accuracy and '<path class="limit"' in accuracy
    assert "400 of 1,000 predictions labelled" in perf
    assert "estimated before labels arrive" in perf


def test_fairness_and_attribution_are_drawn_per_group_and_feature(page: str) -> None:
    fairness = sections(page)["Fairness per group"]
    assert ">male (n=600)</text>" in fairness and ">female (n=400)</text>" in fairness
    attribution = sections(page)["Attribution ranking, before and after"]
    for label in ("income #1→#2", "tenure #3→#1", "age #2→gone", "region new→#3"):
        assert f">{label}</text>" in attribution
    assert "ndcg = 0.82, threshold 0.9; importance by permutation" in attribution
    assert "demographic_parity_difference = 0.18, threshold 0.1" in fairness


def test_whole_table_drift_shows_the_drifted_columns_and_folds(page: str) -> None:
    table = sections(page)["Whole-table drift"]
    assert "drifted: income, tenure, region" in table and "folds: 0.7, 0.72" in table


@pytest.mark.parametrize("drifting", [10, 100])
def test_a_result_with_100_columns_stays_under_2_mb(drifting: int) -> None:
    checks = [
        numeric(f"feature_{i:03d}", 0.5 if i < drifting else 0.01, bins=50, seed=i)
        for i in range(100)
    ]
    checks += [
        CheckResult("missing_rate", f"feature_{i:03d}", "missing_rate", 0.0, 0.01, "ok")
        for i in range(100)
    ]
    page = render_html(
        result(*checks), history=[result(performance(d, 0.9, 0.5), day=d) for d in range(1, 60)]
    )
    assert len(page.encode()) < 2_000_000
    Page(page)
    for i in range(100):
        assert f"feature_{i:03d}" in page


awkward_text = st.lists(
    st.sampled_from(
        [*"<>&\"'/=:;(){}[]\\ \n\tab1é€", "<script>", "</svg>", "{{", "{%", "<b onload=x>"]
    ),
    max_size=12,
).map("".join)


@given(column=awkward_text, message=awkward_text, name=awkward_text, category=awkward_text)
def test_every_stored_text_is_escaped(column: str, message: str, name: str, category: str) -> None:
    check = categorical(column, 0.3, [category, "b"])
    checks = (
        CheckResult(**{**check.to_dict(), "message": message, "segment": name, "interval": None}),
        CheckResult("fairness", column, "demographic_parity_difference", 0.2, 0.1, "alert",
                    detail={"groups": {name: {"n": 3, "selection_rate": 0.5}}}),
        CheckResult("attribution_drift", "", "ndcg", 0.5, 0.9, "alert",
                    detail={"reference": {category: 1.0}, "current": {name: 1.0}}),
    )  # fmt: skip
    page = render_html(result(*checks, monitor=name, lineage={name: message}), title=message)
    parsed = Page(page)
    assert parsed.tags <= TAGS and parsed.attributes <= ATTRIBUTES
    assert "<script" not in page


@pytest.mark.parametrize(
    "detail",
    [
        {"kind": "numeric", "edges": [0, 1], "reference": [0.5, 0.5], "current": [0.5, 0.5]},
        {"kind": "numeric", "edges": [0, 1, 2], "reference": ["a", 1], "current": [0.5, 0.5]},
        {"kind": "categorical", "categories": "ab", "reference": [1.0], "current": [1.0]},
        {"kind": "sketch", "reference": [1.0], "current": [1.0]},
        {"kind": "numeric", "edges": None, "reference": None, "current": {}},
    ],
)
def test_a_detail_off_the_conventions_is_listed_but_not_drawn(detail: dict[str, Any]) -> None:
    page = render_html(result(CheckResult("drift", "odd", "psi", 0.5, 0.2, "alert", detail=detail)))
    assert "<h2>Distributions</h2>" not in page
    assert "odd" in sections(page)["Needs attention"]


def test_huge_details_are_cut_to_the_limits() -> None:
    many = 10_000
    check = CheckResult(
        "drift", "wide", "chi2", 0.5, 0.1, "alert",
        detail={"kind": "categorical", "categories": [f"c{i}" for i in range(many)],
                "reference": [1 / many] * many, "current": [1 / many] * many},
    )  # fmt: skip
    page = render_html(result(check))
    reference_bars = re.search(r'<path class="ref" d="([^"]*)"', page)
    assert reference_bars is not None and reference_bars.group(1).count("z") == MAX_BINS
    assert len(page) < 100_000


def test_no_data_results_say_so() -> None:
    check = CheckResult("drift", "age", "psi", None, 0.2, "no_data", message="window empty")
    page = render_html(result(check, status="no_data"), title="Nightly <check>")
    assert "<title>Nightly &lt;check&gt;</title>" in page
    assert '<span class="badge no_data">no data</span>' in page


def test_write_report_writes_the_page_atomically(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    assert write_report(FULL, target, history=HISTORY) == target
    assert target.read_text(encoding="utf-8") == render_html(FULL, history=HISTORY)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.parametrize(
    ("args", "options", "match"),
    [
        (("not a result",), {}, "'result' parameter of render_html"),
        ((FULL,), {"history": [FULL, "x"]}, "'history' parameter of render_html"),
        ((FULL,), {"history": "x"}, "'history' parameter of render_html"),
        ((FULL,), {"title": 3}, "'title' parameter of render_html"),
    ],
)
def test_bad_arguments_are_named(
    args: tuple[Any, ...], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidParameter, match=match):
        render_html(*args, **options)


def test_tables_and_texts_are_cut_to_the_limits() -> None:
    count = MAX_TABLE_ROWS + 7
    checks = [
        CheckResult("data_quality", f"c{i}", "null_rate", 0.5, 0.1, "alert", message="x" * 10_000)
        for i in range(count)
    ]
    page = render_html(result(*checks, lineage={"segments": ["d" * 64] * 1000}))
    attention = sections(page)["Needs attention"]
    assert attention.count("<tr>") == MAX_TABLE_ROWS + 1  # and the header
    assert "… and 7 more; the result's JSON has them all." in attention
    assert "x" * MAX_TEXT not in page and "x" * (MAX_TEXT - 1) + "…" in page
    assert (
        ("d" * 64 + ", ") * 5 in page
        and "d" * 64 * 8 not in page.replace(", ", "")
        and len(page) < 3 * MAX_TABLE_ROWS * (MAX_TEXT + 600)
    )
