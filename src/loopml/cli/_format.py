"""Small formatters for tables: ids, times, durations, sizes, values and statuses."""

from __future__ import annotations

import math
import time
from datetime import datetime

from rich.text import Text

__all__ = [
    "STATUS_STYLES",
    "elapsed_since",
    "fmt_bytes",
    "fmt_duration",
    "fmt_time",
    "fmt_value",
    "short_id",
    "status_text",
]

STATUS_STYLES = {
    "running": "bold cyan",
    "finished": "green",
    "failed": "bold red",
    "killed": "yellow",
    "lost": "magenta",
}


def short_id(run_id: str) -> str:
    """The first 8 characters of a run id, as shown in tables."""
    return run_id[:8]


def fmt_time(epoch_ms: int | None, *, short: bool = False) -> str:
    """Local time of an epoch-milliseconds timestamp, to the second (``short``: minute)."""
    if epoch_ms is None:
        return "-"
    pattern = "%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S"
    return datetime.fromtimestamp(epoch_ms / 1000).strftime(pattern)


def fmt_duration(seconds: float | None) -> str:
    """``0.42s``, ``12.3s``, ``4m05s``, ``2h03m``; ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def elapsed_since(epoch_ms: int) -> float:
    """Seconds from ``epoch_ms`` until now."""
    return max(0.0, time.time() - epoch_ms / 1000)


def fmt_bytes(size: int | float) -> str:
    """A human size: ``512 B``, ``1.5 KiB``, ``3.2 MiB`` …"""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def fmt_value(value: float | None) -> str:
    """A metric value with 4 significant digits (``nan``, ``inf`` as such)."""
    if value is None:
        return "-"
    return f"{value:.4g}"


def status_text(status: str) -> Text:
    """The status, coloured."""
    return Text(status, style=STATUS_STYLES.get(status, ""))
