"""The tracking client a command works with, opened from the ``LOOPML_*`` settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopml.tracking import TrackingClient

__all__ = ["READ_COMMANDS", "open_client", "require_project"]

#: Commands that only read the stores, or change only what must exist already (a run,
#: a dataset version): run inside :func:`loopml.store.read_only`, they fail with one
#: line naming the missing store instead of creating an empty home. Every other
#: command may create the home (it records something new).
READ_COMMANDS = frozenset(
    {
        "runs list",
        "runs show",
        "runs compare",
        "runs history",
        "runs env",
        "runs delete",
        "runs restore",
        "runs mark-failed",
        "runs tag",
        "runs untag",
        "artifacts list",
        "artifacts get",
        "projects list",
        "data list",
        "data versions",
        "data show",
        "data diff",
        "data schema",  # --set needs the dataset, which needs a store
        "data delete",
        "data restore",
        "pipelines list",
        "pipelines show",
        "approvals list",
        "models list",
        "models versions",
        "models show",
        "models history",
        "models policy",  # --set/--clear need the model, which needs a store
        "models card",
        "models requirements",
        "deployments list",
        "deployments show",
        "deployments history",
        "deployments compare",
        "monitor list",
        "monitor show",
        "monitor history",
        "monitor report",
        "monitor delete",
        "alerts list",
        "alerts ack",
        "gc",
    }
)


def require_project(project: str | None) -> str:
    """Return the project a listing command names (``-p`` or ``LOOPML_PROJECT``) if it exists.

    Listing an unknown project is an error, not an empty answer: a typo in ``-p``
    would otherwise look like a project without runs, datasets or models.

    Raises:
        ProjectNotFound: no project has that name (the message names the closest).
    """
    from loopml import settings
    from loopml.tracking import get_client

    name = settings.project(project)
    store = get_client().store
    with store.read() as conn:
        store.require_project(conn, name)
    return name


@contextmanager
def open_client() -> Iterator[TrackingClient]:
    """Yield a :class:`~loopml.tracking.TrackingClient` and close it afterwards."""
    from loopml.tracking import TrackingClient

    client = TrackingClient()
    try:
        yield client
    finally:
        client.close()
