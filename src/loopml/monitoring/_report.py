"""A monitor result as one self-contained HTML page.

The page needs nothing but itself: inline CSS (light and dark, by
``prefers-color-scheme``), inline SVG charts drawn in Python (:mod:`._charts`), no
script, nothing loaded from the network. It shows, in order: the summary, the checks
that alert or lack data, the drift table sorted by effect size, each column's
distributions (large for drifting columns, thumbnails for the rest), table-level drift,
performance over time (from earlier results), fairness per group, the attribution
ranking before and after, and every check. ``detail`` comes from stored rows, so it
is read defensively: what does not follow the conventions is not drawn, and every
text is escaped. The JSON form of a result is :meth:`MonitorResult.to_json`.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml._html import clip, number, when
from loopml.errors import InvalidParameter
from loopml.monitoring import _charts
from loopml.monitoring._results import CheckResult, MonitorResult

__all__ = [
    "MAX_BINS",
    "MAX_COLUMNS_DRAWN",
    "MAX_HISTORY",
    "MAX_TABLE_ROWS",
    "MAX_TEXT",
    "render_html",
    "write_report",
]

MAX_BINS = 100
"""Most bins or categories drawn of one distribution (the rest are left out)."""

MAX_COLUMNS_DRAWN = 500
"""Most columns whose distributions are drawn in one report."""

MAX_HISTORY = 1000
"""Most earlier results drawn over time (the latest are kept)."""

MAX_TABLE_ROWS = 1000
"""Most rows of one table of checks (the JSON form of the result has them all)."""

MAX_TEXT = 500
"""Characters shown of one message or lineage value."""

_MAX_ROWS_SHOWN = 50  # groups, features
_DRIFT_CHECKS = ("drift", "missing_rate", "unseen_category")
_SEVERITY = {"alert": 0, "no_data": 1, "ok": 2}


@dataclass(frozen=True)
class _Row:
    check: CheckResult
    effect: float | None  # the statistic as a multiple of its threshold, when both exist
    note: str = ""


@dataclass(frozen=True)
class _Chart:
    column: str
    segment: str
    method: str
    status: str
    svg: str
    note: str = ""


@dataclass
class _View:
    result: MonitorResult
    title: str
    attention: list[_Row]
    drift: list[_Row]
    drifting: list[_Chart]
    steady: list[_Chart]
    undrawn: int
    table: list[_Row]
    performance: list[_Chart]
    fairness: list[_Chart]
    attribution: list[_Chart]
    checks: list[_Row]
    history_note: str = ""
    lineage: list[tuple[str, str]] = field(default_factory=list)


def render_html(
    result: MonitorResult,
    *,
    history: Sequence[MonitorResult] | None = None,
    title: str | None = None,
) -> str:
    """Render ``result`` as one self-contained HTML page.

    Args:
        result: The monitor run to show.
        history: Earlier runs of the same monitor, for performance over time (any
            order; the latest :data:`MAX_HISTORY` are drawn).
        title: The page's title; default ``Monitor NAME``.

    Returns:
        The HTML document.

    Raises:
        InvalidParameter: ``result`` is not a MonitorResult, ``history`` not a
            sequence of them, or ``title`` not a string.

    Example:
        >>> from loopml.monitoring import CheckResult, MonitorResult
        >>> check = CheckResult("drift", "age", "psi", 0.3, 0.2, "alert", message="age moved")
        >>> page = render_html(MonitorResult("credit", "alert", 0, "dataset:credit:3",
        ...                                  "frame", 1000, 1000, (check,)))
        >>> page.startswith("<!DOCTYPE html>")
        True
    """
    view = _view(result, history, title)
    return str(_template().render(view=view))


def write_report(
    result: MonitorResult,
    path: str | os.PathLike[str],
    *,
    history: Sequence[MonitorResult] | None = None,
    title: str | None = None,
) -> Path:
    """Write :func:`render_html`'s page to ``path``, atomically (temp file + rename).

    Args:
        result: The monitor run.
        path: The file to write; its folder must exist.
        history: Earlier runs, as for :func:`render_html`.
        title: The page's title.

    Returns:
        The path written.
    """
    import tempfile  # only writing needs it

    page = render_html(result, history=history, title=title)
    target = Path(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".report-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(page)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


@functools.cache
def _template() -> Any:
    """The compiled page template (compiled once per process)."""
    from importlib import resources

    import jinja2  # only the HTML rendering needs it
    from markupsafe import Markup  # jinja2's own dependency

    text = (
        resources.files("loopml.monitoring")
        .joinpath("templates", "report.html.j2")
        .read_text(encoding="utf-8")
    )
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = _number
    env.filters["when"] = when
    env.filters["count"] = number
    env.filters["clip"] = lambda text: clip(text, MAX_TEXT)
    env.globals["max_rows"] = MAX_TABLE_ROWS
    # The charts escape every text they hold (see _charts); they go in as markup.
    env.filters["svg"] = Markup
    return env.from_string(text)


def _view(result: object, history: object, title: object) -> _View:
    if not isinstance(result, MonitorResult):
        raise InvalidParameter(
            "The 'result' parameter of render_html must be a MonitorResult. "
            f"Got {type(result).__name__} instead."
        )
    if history is not None and (
        isinstance(history, str | bytes)
        or not isinstance(history, Sequence)
        or not all(isinstance(h, MonitorResult) for h in history)
    ):
        raise InvalidParameter(
            "The 'history' parameter of render_html must be a sequence of MonitorResult "
            f"or None. Got {type(history).__name__} instead."
        )
    if title is not None and not isinstance(title, str):
        raise InvalidParameter(
            f"The 'title' parameter of render_html must be a str or None. "
            f"Got {type(title).__name__} instead."
        )
    rows = [_Row(c, _effect(c)) for c in result.checks]
    attention = sorted(
        (r for r in rows if r.check.status != "ok"),
        key=lambda r: (_SEVERITY[r.check.status], -(r.effect or 0.0)),
    )
    drift = sorted(
        (r for r in rows if r.check.check in _DRIFT_CHECKS),
        key=lambda r: (r.effect is None, -(r.effect or 0.0), r.check.column),
    )
    drifting, steady, undrawn = _distributions(result.checks)
    earlier = sorted(history or [], key=lambda h: h.started_at)
    note = ""
    if len(earlier) > MAX_HISTORY:
        note = f"The latest {MAX_HISTORY:,} of {len(earlier):,} earlier results are drawn."
        earlier = earlier[-MAX_HISTORY:]
    return _View(
        result=result,
        title=title if title is not None else f"Monitor {result.monitor or '(ad hoc)'}",
        attention=attention,
        drift=drift,
        drifting=drifting,
        steady=steady,
        undrawn=undrawn,
        table=[
            _Row(r.check, r.effect, _table_note(r.check.detail))
            for r in rows
            if r.check.check in ("dataset_drift", "multivariate_drift")
        ],
        performance=_performance(result, earlier),
        fairness=[c for c in map(_fairness, result.checks) if c is not None],
        attribution=[c for c in map(_attribution, result.checks) if c is not None],
        checks=sorted(rows, key=lambda r: (_SEVERITY[r.check.status], r.check.key)),
        history_note=note,
        lineage=[(str(k), clip(_plain(v), MAX_TEXT)) for k, v in sorted(result.lineage.items())],
    )


def _table_note(detail: Mapping[str, Any]) -> str:
    parts = []
    drifted = detail.get("drifted")
    if isinstance(drifted, list) and drifted:
        names = ", ".join(str(name) for name in drifted[:_MAX_ROWS_SHOWN])
        more = len(drifted) - _MAX_ROWS_SHOWN
        parts.append(f"drifted: {names}" + (f" and {more:,} more" if more > 0 else ""))
    folds = _floats(detail.get("folds"))
    if folds:
        parts.append("folds: " + ", ".join(_number(f) for f in folds[:_MAX_ROWS_SHOWN]))
    return "; ".join(parts)


def _effect(check: CheckResult) -> float | None:
    s, t = check.statistic, check.threshold
    if s is None or not math.isfinite(s):
        return None
    if t is None or not math.isfinite(t) or t == 0:
        return abs(s)
    return abs(s) / abs(t)


def _distributions(checks: Sequence[CheckResult]) -> tuple[list[_Chart], list[_Chart], int]:
    # One chart per (column, segment): several methods judge the same distributions.
    chosen: dict[tuple[str, str], CheckResult] = {}
    for check in checks:
        if check.check != "drift" or _shares(check.detail) is None:
            continue
        key = (check.column, check.segment)
        if key not in chosen or (check.status == "alert" and chosen[key].status != "alert"):
            chosen[key] = check
    ordered = sorted(chosen.values(), key=lambda c: (c.status != "alert", -(_effect(c) or 0.0)))
    drawn = ordered[:MAX_COLUMNS_DRAWN]
    drifting: list[_Chart] = []
    steady: list[_Chart] = []
    for check in drawn:
        small = check.status != "alert"
        chart = _distribution(check, small=small)
        (steady if small else drifting).append(chart)
    return drifting, steady, len(ordered) - len(drawn)


def _distribution(check: CheckResult, *, small: bool) -> _Chart:
    detail = check.detail
    shares = _shares(detail)
    assert shares is not None
    labels, reference, current = shares
    missing = (_float(detail.get("reference_missing")), _float(detail.get("current_missing")))
    if any(m for m in missing):
        # Missing values are a slot of their own: a column that goes missing has drifted.
        labels = [*labels, "missing"]
        reference = [*reference, missing[0] or 0.0]
        current = [*current, missing[1] or 0.0]
    grouped = detail.get("kind") == "categorical"
    name = check.column + (f" [{check.segment}]" if check.segment else "")
    svg = _charts.bars(
        labels,
        reference,
        current,
        grouped=grouped,
        small=small,
        title=f"{name}: reference and current distributions",
    )
    note = ""
    rows = (_int(detail.get("reference_rows")), _int(detail.get("current_rows")))
    if rows[0] is not None and rows[1] is not None:
        note = f"{rows[0]:,} vs {rows[1]:,} rows"
    raw = _float(detail.get("raw_p_value"))
    if raw is not None:
        note += f"; raw p = {raw:.3g}"
    return _Chart(check.column, check.segment, check.method, check.status, svg, note.lstrip("; "))


def _shares(detail: Mapping[str, Any]) -> tuple[list[str], list[float], list[float]] | None:
    reference = _floats(detail.get("reference"))
    current = _floats(detail.get("current"))
    if reference is None or current is None or len(reference) != len(current) or not reference:
        return None
    count = len(reference)
    if detail.get("kind") == "numeric":
        edges = _floats(detail.get("edges"), finite=False)
        if edges is None or len(edges) != count + 1:
            return None
        labels = [f"{_number(lo)} to {_number(hi)}" for lo, hi in itertools.pairwise(edges)]
    elif detail.get("kind") == "categorical":
        names = detail.get("categories")
        if not isinstance(names, list) or len(names) != count:
            return None
        labels = [str(n) for n in names]
    else:
        return None
    return labels[:MAX_BINS], reference[:MAX_BINS], current[:MAX_BINS]


def _performance(result: MonitorResult, earlier: list[MonitorResult]) -> list[_Chart]:
    kinds = ("performance", "estimated_performance")
    charts = []
    for check in (c for c in result.checks if c.check in kinds):
        points = []
        for run in [*earlier, result]:
            match = next((c for c in run.checks if c.key == check.key), None)
            if match is None:
                continue
            detail = match.detail
            x = _float(detail.get("window_end"))
            low, high = match.interval if match.interval is not None else (None, None)
            points.append(
                _charts.Point(
                    x=x if x is not None else float(run.started_at),
                    y=match.statistic,
                    low=low if low is not None and math.isfinite(low) else None,
                    high=high if high is not None and math.isfinite(high) else None,
                    share=_float(detail.get("labelled_fraction")),
                    alert=match.status == "alert",
                )
            )
        points.sort(key=lambda p: p.x)
        first, last = points[0].x, points[-1].x
        name = f"{check.method} of {check.column}" if check.column else check.method
        if check.segment:
            name += f" [{check.segment}]"
        estimated = check.check == "estimated_performance" or check.detail.get("estimated") is True
        svg = _charts.series(
            points,
            title=f"{name} over time",
            threshold=check.threshold,
            x_labels=(when(int(first)), when(int(last))),
        )
        note = "estimated before labels arrive" if estimated else ""
        labelled = _int(check.detail.get("labelled"))
        predicted = _int(check.detail.get("predicted"))
        if labelled is not None and predicted is not None:
            note = ", ".join(
                filter(None, [note, f"{labelled:,} of {predicted:,} predictions labelled"])
            )
        charts.append(_Chart(name, check.segment, check.method, check.status, svg, note))
    return charts


def _fairness(check: CheckResult) -> _Chart | None:
    groups = check.detail.get("groups") if check.check == "fairness" else None
    if not isinstance(groups, Mapping) or not groups:
        return None
    items = sorted(
        ((str(g), v) for g, v in groups.items() if isinstance(v, Mapping)),
        key=lambda item: -(_int(item[1].get("n")) or 0),
    )[:_MAX_ROWS_SHOWN]
    labels = [f"{g} (n={_int(v.get('n')) or 0:,})" for g, v in items]
    svg = _charts.hbars(
        labels,
        [_float(v.get("selection_rate")) for _, v in items],
        [_float(v.get("accuracy")) for _, v in items],
        title=f"selection rate and accuracy per group of {check.column}",
        joiner=", ",
    )
    note = _judged(check)
    if len(groups) > len(items):
        note += f"; the {len(items)} largest of {len(groups):,} groups"
    return _Chart(check.column, check.segment, check.method, check.status, svg, note)


def _attribution(check: CheckResult) -> _Chart | None:
    if check.check != "attribution_drift":
        return None
    reference, current = check.detail.get("reference"), check.detail.get("current")
    if not isinstance(reference, Mapping) or not isinstance(current, Mapping):
        return None
    before = _ranking(reference)
    after = _ranking(current)
    rank_after = {name: i + 1 for i, (name, _) in enumerate(after)}
    features = [name for name, _ in before]
    features += [name for name, _ in after if name not in reference]
    features = features[:_MAX_ROWS_SHOWN]
    ref_values, cur_values = dict(before), dict(after)
    labels = []
    for i, name in enumerate(features):
        was = f"#{i + 1}" if name in ref_values else "new"
        now = f"#{rank_after[name]}" if name in rank_after else "gone"
        labels.append(f"{name} {was}→{now}")
    svg = _charts.hbars(
        labels,
        [ref_values.get(n) for n in features],
        [cur_values.get(n) for n in features],
        title=f"feature importance before and after ({check.detail.get('method', check.method)})",
    )
    method = check.detail.get("method")
    note = _judged(check) + (f"; importance by {method}" if isinstance(method, str) else "")
    name = check.column or "feature importance"
    return _Chart(name, check.segment, check.method, check.status, svg, note)


def _judged(check: CheckResult) -> str:
    return f"{check.method} = {_number(check.statistic)}, threshold {_number(check.threshold)}"


def _ranking(importances: Mapping[Any, Any]) -> list[tuple[str, float]]:
    pairs = [(str(k), v) for k, v in importances.items() if _float(v) is not None]
    return sorted(((k, float(v)) for k, v in pairs), key=lambda kv: -abs(kv[1]))


def _floats(value: object, *, finite: bool = True) -> list[float] | None:
    if not isinstance(value, list | tuple):
        return None
    out = [_float(v, finite=finite) for v in value]
    return None if any(v is None for v in out) else [v for v in out if v is not None]


def _float(value: object, *, finite: bool = True) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value) if math.isfinite(value) or not finite else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _plain(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)
