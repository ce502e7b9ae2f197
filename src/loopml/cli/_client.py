"""The tracking client a command works with, opened from the ``LOOPML_*`` settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopml.tracking import TrackingClient

__all__ = ["open_client"]


@contextmanager
def open_client() -> Iterator[TrackingClient]:
    """Yield a :class:`~loopml.tracking.TrackingClient` and close it afterwards."""
    from loopml.tracking import TrackingClient

    client = TrackingClient()
    try:
        yield client
    finally:
        client.close()
