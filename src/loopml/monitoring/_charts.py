"""Small inline SVG charts for the monitoring report, drawn in Python.

Each function returns one ``<svg>`` element as text: no script, no external reference,
colours from the page's CSS classes (``ref``, ``cur``, ``band``, ``line``, ``limit``,
``axis``), so the same chart reads in light and dark mode. Every text placed in a
chart is HTML-escaped here. Each series is one ``<path>``, which keeps a page of a
hundred histograms small.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Point", "bars", "hbars", "series"]

_LABEL_CHARS = 14


@dataclass(frozen=True)
class Point:
    """One point of a series over time: a statistic, its interval and the labelled share."""

    x: float
    y: float | None
    low: float | None = None
    high: float | None = None
    share: float | None = None
    alert: bool = False


def bars(
    labels: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    grouped: bool,
    title: str,
    small: bool = False,
) -> str:
    """Two distributions as bars over the same slots: overlaid (bins) or side by side.

    Args:
        labels: One label per slot (bin edges, category names); the first, middle and
            last are written under a large numeric chart, all under a categorical one
            of up to 20 slots.
        reference: The reference share of each slot.
        current: The current share of each slot.
        grouped: Draw the two bars of a slot side by side (categories) instead of
            overlaid (histogram bins).
        title: The chart's accessible name.
        small: Draw a thumbnail without axis labels.

    Returns:
        The ``<svg>`` element.
    """
    width, height = (160.0, 48.0) if small else (480.0, 170.0)
    left, top, bottom = (2.0, 2.0, 2.0) if small else (40.0, 8.0, 34.0)
    plot_w, plot_h = width - left - 4.0, height - top - bottom
    count = max(len(labels), 1)
    peak = max([*reference, *current, 1e-12])
    slot = plot_w / count
    base = top + plot_h

    def path(values: Sequence[float], offset: float, bar: float) -> str:
        parts = []
        for i, value in enumerate(values):
            h = value / peak * plot_h
            if h > 0:
                x = left + i * slot + offset
                parts.append(f"M{x:.1f} {base:.1f}v{-h:.1f}h{bar:.1f}v{h:.1f}z")
        return "".join(parts)

    if grouped:
        bar = slot * 0.42
        ref_path, cur_path = path(reference, slot * 0.06, bar), path(current, slot * 0.52, bar)
    else:
        bar = slot * 0.92
        ref_path, cur_path = path(reference, slot * 0.04, bar), path(current, slot * 0.04, bar)
    parts = [_open(width, height, title, "chart small" if small else "chart")]
    parts.append(f'<path class="ref" d="{ref_path}"/><path class="cur" d="{cur_path}"/>')
    parts.append(f'<path class="axis" d="M{left:.1f} {base:.1f}h{plot_w:.1f}"/>')
    if not small:
        parts.append(
            _text(left - 4, top + 8, f"{peak:.0%}" if peak >= 0.01 else f"{peak:.1%}", "end")
        )
        parts.append(_text(left - 4, base, "0", "end"))
        shown = range(count) if grouped and count <= 20 else sorted({0, count // 2, count - 1})
        for i in shown:
            # The outer labels hug the plot's edges, so long ones are not cut by the frame.
            if i == 0 and not grouped:
                x, anchor = left, "start"
            elif i == count - 1 and not grouped:
                x, anchor = left + plot_w, "end"
            else:
                x, anchor = left + (i + 0.5) * slot, "middle"
            y = base + 14 + (i % 2) * 12 * (count > 8)
            parts.append(_text(x, y, _clip(labels[i]), anchor))
    parts.append("</svg>")
    return "".join(parts)


def series(
    points: Sequence[Point],
    *,
    title: str,
    threshold: float | None,
    x_labels: tuple[str, str],
) -> str:
    """A statistic over time, its 95 % interval as a band, the threshold as a dashed
    line and, under it, the labelled share of each window as bars.

    Args:
        points: The points, oldest first. A point without ``y`` (no data) is marked
            on the time axis.
        title: The chart's accessible name.
        threshold: Drawn as a dashed line when given.
        x_labels: The first and last times, written under the axis.

    Returns:
        The ``<svg>`` element.
    """
    width, height = 560.0, 220.0
    left, top, plot_w, plot_h = 48.0, 8.0, 500.0, 130.0
    share_top, share_h = top + plot_h + 22.0, 36.0
    ys = [v for p in points for v in (p.y, p.low, p.high) if v is not None and math.isfinite(v)]
    if threshold is not None:
        ys.append(threshold)
    low, high = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    xs = [p.x for p in points]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (x1 - x0) or 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / span * plot_w if len(points) > 1 else left + plot_w / 2

    def sy(y: float) -> float:
        return top + (high - y) / (high - low) * plot_h

    parts = [_open(width, height, title, "chart wide")]
    banded = [p for p in points if p.low is not None and p.high is not None and p.y is not None]
    if len(banded) > 1:
        upper = " ".join(f"{sx(p.x):.1f},{sy(p.high):.1f}" for p in banded if p.high is not None)
        lower = " ".join(
            f"{sx(p.x):.1f},{sy(p.low):.1f}" for p in reversed(banded) if p.low is not None
        )
        parts.append(f'<polygon class="band" points="{upper} {lower}"/>')
    if threshold is not None:
        parts.append(f'<path class="limit" d="M{left:.1f} {sy(threshold):.1f}h{plot_w:.1f}"/>')
    known = [p for p in points if p.y is not None]
    if len(known) > 1:
        line = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in known if p.y is not None)
        parts.append(f'<polyline class="line" points="{line}"/>')
    for p in points:
        if p.y is None:
            parts.append(
                f'<circle class="nodata" cx="{sx(p.x):.1f}" cy="{top + plot_h:.1f}" r="3"/>'
            )
        else:
            css = "dot alert" if p.alert else "dot"
            parts.append(f'<circle class="{css}" cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="3"/>')
    parts.append(f'<path class="axis" d="M{left:.1f} {top + plot_h:.1f}h{plot_w:.1f}"/>')
    parts.append(_text(left - 4, top + 8, f"{high:.3g}", "end"))
    parts.append(_text(left - 4, top + plot_h, f"{low:.3g}", "end"))
    bar = max(2.0, min(16.0, plot_w / max(len(points), 1) * 0.6))
    shares = "".join(
        f"M{sx(p.x) - bar / 2:.1f} {share_top + share_h:.1f}v{-p.share * share_h:.1f}h{bar:.1f}"
        f"v{p.share * share_h:.1f}z"
        for p in points
        if p.share is not None and 0 <= p.share <= 1
    )
    parts.append(f'<path class="ref" d="{shares}"/>')
    parts.append(f'<path class="axis" d="M{left:.1f} {share_top + share_h:.1f}h{plot_w:.1f}"/>')
    parts.append(_text(left - 4, share_top + 8, "100%", "end"))
    parts.append(_text(left - 4, share_top + share_h, "labelled", "end"))
    parts.append(_text(left, height - 2, x_labels[0], "start"))
    parts.append(_text(left + plot_w, height - 2, x_labels[1], "end"))
    parts.append("</svg>")
    return "".join(parts)


def hbars(
    labels: Sequence[str],
    reference: Sequence[float | None],
    current: Sequence[float | None],
    *,
    title: str,
    joiner: str = " → ",
) -> str:
    """Pairs of horizontal bars, one pair per label (groups, features), on a shared scale.

    Args:
        labels: One per row.
        reference: The first bar of each row (drawn in the reference colour); None
            leaves it out.
        current: The second bar of each row.
        title: The chart's accessible name.
        joiner: Between the two values written after a row's bars.

    Returns:
        The ``<svg>`` element.
    """
    row, left, plot_w = 22.0, 120.0, 300.0
    height = row * len(labels) + 6.0
    values = [abs(v) for v in (*reference, *current) if v is not None and math.isfinite(v)]
    peak = max([*values, 1e-12])
    parts = [_open(left + plot_w + 90.0, height, title, "chart")]
    for series_index, (css, values_of) in enumerate((("ref", reference), ("cur", current))):
        d = []
        for i, value in enumerate(values_of):
            if value is not None and math.isfinite(value):
                y = 4.0 + i * row + series_index * 9.0
                length = abs(value) / peak * plot_w
                d.append(f"M{left:.1f} {y:.1f}h{length:.1f}v8h{-length:.1f}z")
        parts.append(f'<path class="{css}" d="{"".join(d)}"/>')
    for i, label in enumerate(labels):
        parts.append(_text(left - 6, 4.0 + i * row + 13.0, _clip(label), "end"))
        shown = [v for v in (reference[i], current[i]) if v is not None and math.isfinite(v)]
        if shown:
            tail = joiner.join(f"{v:.3g}" for v in (reference[i], current[i]) if v is not None)
            parts.append(
                _text(
                    left + abs(max(shown, key=abs)) / peak * plot_w + 4,
                    4.0 + i * row + 13.0,
                    tail,
                    "start",
                )
            )
    parts.append(f'<path class="axis" d="M{left:.1f} 0v{height:.1f}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _open(width: float, height: float, title: str, css: str) -> str:
    return (
        f'<svg class="{css}" viewBox="0 0 {width:.0f} {height:.0f}" role="img">'
        f"<title>{html.escape(title)}</title>"
    )


def _text(x: float, y: float, text: str, anchor: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{html.escape(text)}</text>'


def _clip(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"
