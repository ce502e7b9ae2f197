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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loopml._html import clip, number, when
from loopml.errors import InvalidParameter
from loopml.monitoring._report_view import MAX_TABLE_ROWS, MAX_TEXT, build_view, number_text
from loopml.monitoring._results import MonitorResult

__all__ = ["check_report_target", "render_html", "write_report"]


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
            order; the latest :data:`~loopml.monitoring._report_view.MAX_HISTORY` are drawn).
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
    view = build_view(result, history, title)
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

    Raises:
        InvalidParameter: ``path`` is a link, a folder or a device, or its folder is missing.
    """
    import tempfile  # only writing needs it

    target = check_report_target(Path(path), "path")
    page = render_html(result, history=history, title=title)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".report-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(page)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def check_report_target(path: Path, parameter: str) -> Path:
    """Return ``path`` if a report may be written there: a new or existing regular file.

    The report replaces its target by renaming a temporary file over it, which would
    also replace a device, a FIFO or a socket (as root, ``/dev/null``).

    Raises:
        InvalidParameter: naming ``parameter`` and what ``path`` is.
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "link" if path.is_symlink() else "folder or device"
        raise InvalidParameter(
            f"The {parameter!r} option must name a regular file (new or to replace). "
            f"Got {str(path)!r}, which is a {kind}."
        )
    if not path.parent.is_dir():
        raise InvalidParameter(
            f"The {parameter!r} option must name a file in an existing folder. Got "
            f"{str(path)!r}; folder {str(path.parent)!r} does not exist."
        )
    return path


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
    env.filters["num"] = number_text
    env.filters["when"] = when
    env.filters["count"] = number
    env.filters["clip"] = lambda text: clip(text, MAX_TEXT)
    env.globals["max_rows"] = MAX_TABLE_ROWS
    # The charts escape every text they hold (see _charts); they go in as markup.
    env.filters["svg"] = Markup
    return env.from_string(text)
