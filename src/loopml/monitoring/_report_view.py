"""What the monitoring report shows, read from a result: rows, charts, notes.

``detail`` comes from stored rows, so it is read defensively: a value off the
conventions (``CheckResult.detail`` in the house rules) leaves its chart out instead
of failing the page, and every list is cut to an explicit limit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopml._html import clip, when
from loopml.errors import InvalidParameter
from loopml.monitoring import _charts
from loopml.monitoring._results import CheckResult, MonitorResult

__all__ = [
    "MAX_BINS",
    "MAX_COLUMNS_DRAWN",
    "MAX_HISTORY",
    "MAX_TABLE_ROWS",
    "MAX_TEXT",
    "View",
    "build_view",
    "number_text",
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
class View:
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


def build_view(result: object, history: object, title: object) -> View:
    """Read ``result`` (and ``history``) into what the page shows; validates the arguments."""
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
    return View(
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
        parts.append("folds: " + ", ".join(number_text(f) for f in folds[:_MAX_ROWS_SHOWN]))
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
        labels = [f"{number_text(lo)} to {number_text(hi)}" for lo, hi in itertools.pairwise(edges)]
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
    return (
        f"{check.method} = {number_text(check.statistic)}, threshold {number_text(check.threshold)}"
    )


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


def number_text(value: float | None) -> str:
    """A number as the page writes it: 4 significant digits, ``-`` for None."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _plain(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)
