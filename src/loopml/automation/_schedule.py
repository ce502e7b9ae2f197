"""Cron ticks in a time zone: which ticks of a schedule fell in a span of time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loopml.errors import InvalidParameter

__all__ = ["MAX_TICKS", "check_timezone", "ticks_between"]

MAX_TICKS = 100
"""At most this many ticks are listed at once (a schedule every minute missed for a
week would otherwise list ten thousand)."""


def check_timezone(name: object) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Paris``, ``UTC``).

    Raises:
        InvalidParameter: not a time zone this machine knows.
    """
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")):
        raise InvalidParameter(f"The 'timezone' of a schedule must be an IANA name; got {name!r}.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidParameter(
            f"Unknown time zone {name!r}; use an IANA name such as 'UTC' or 'Europe/Paris'."
        ) from None


def ticks_between(cron: str, timezone: str, after_ms: int, until_ms: int) -> tuple[list[int], bool]:
    """The ticks of ``cron`` in ``timezone`` in ``(after_ms, until_ms]``, oldest first.

    Returns:
        The ticks (ms since the epoch, at most :data:`MAX_TICKS`: the newest ones),
        and whether older ones were left out.
    """
    from croniter import croniter

    zone = check_timezone(timezone)
    # Walked back from the end: bounded whatever the gap (a year of a minute's ticks).
    iterator = croniter(cron, datetime.fromtimestamp(until_ms / 1000, tz=zone))
    found: list[int] = []
    if croniter.match(cron, datetime.fromtimestamp(until_ms / 1000, tz=zone)) and (
        until_ms % 60_000 == 0
    ):
        found.append(until_ms)
    while len(found) <= MAX_TICKS:
        tick = int(iterator.get_prev(float) * 1000)
        if tick <= after_ms:
            break
        found.append(tick)
    more = len(found) > MAX_TICKS
    return sorted(found[:MAX_TICKS]), more
