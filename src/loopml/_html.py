"""Short reprs and small HTML tables: how loopml's records show in a REPL and a notebook.

Records carry stored values (names, params, messages written by whoever logged
them), so a repr clips every value to a short single line, and the HTML for
Jupyter (``_repr_html_``) escapes every value and caps cells and rows: a record
shows as a compact, self-contained table with its own scoped style, no script and nothing
loaded from the network.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["MAX_CELL", "MAX_ROWS", "Section", "clip", "html_table", "number", "when"]

MAX_CELL = 200
"""Characters kept of one value in an HTML cell."""

MAX_ROWS = 50
"""Rows shown of one section; the rest are counted."""

_STYLE = (
    "<style>.loopml-record table{border-collapse:collapse;margin:0 0 .6em 0;font-size:12px}"
    ".loopml-record caption{text-align:left;font-weight:bold;padding:2px 0}"
    ".loopml-record th,.loopml-record td{text-align:left;vertical-align:top;padding:2px 8px;"
    "border-bottom:1px solid #ddd}</style>"
)


def clip(value: object, width: int = 40) -> str:
    """``value`` as one line of at most ``width`` characters (cut with ``…``)."""
    text = " ".join(_text(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def number(value: int) -> str:
    """An integer with thousands separators: ``1,000``."""
    return f"{value:,}"


def when(ms: int | None) -> str:
    """Epoch milliseconds as ``YYYY-MM-DD HH:MM:SS UTC`` (empty for None)."""
    if ms is None:
        return ""
    try:
        moment = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Section:
    """A titled sub-table of a record: a header row and one row per item."""

    title: str
    headers: tuple[str, ...]
    rows: Sequence[Sequence[object]]


def html_table(title: str, fields: Iterable[tuple[str, object]], *sections: Section) -> str:
    """Render a record as HTML: a two-column table of its fields, then its sections.

    Fields whose value is None are left out. Every title, header and value is
    HTML-escaped and clipped to :data:`MAX_CELL` characters; a section shows its
    first :data:`MAX_ROWS` rows and says how many more there are.

    Args:
        title: the caption of the record, e.g. ``"DatasetVersion credit:3"``.
        fields: ``(label, value)`` pairs, in display order.
        *sections: sub-tables, e.g. the checks of a report.

    Returns:
        One ``<div>`` of HTML.
    """
    rows = "".join(
        f"<tr><th>{_cell(label)}</th><td>{_cell(value)}</td></tr>"
        for label, value in fields
        if value is not None
    )
    parts = [_STYLE, f"<table><caption>{_cell(title)}</caption><tbody>{rows}</tbody></table>"]
    parts.extend(_section(s) for s in sections if s.rows)
    return f'<div class="loopml-record">{"".join(parts)}</div>'


def _section(section: Section) -> str:
    head = "".join(f"<th>{_cell(h)}</th>" for h in section.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
        for row in section.rows[:MAX_ROWS]
    )
    more = len(section.rows) - MAX_ROWS
    caption = f"{section.title} ({number(len(section.rows))})"
    note = f"<p>… and {number(more)} more</p>" if more > 0 else ""
    return (
        f"<table><caption>{_cell(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
    )


def _cell(value: object) -> str:
    text = _text(value)
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    return html.escape(text, quote=True)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)
