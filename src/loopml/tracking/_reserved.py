"""The ``loopml.`` key namespace: run tags, params and metrics only loopml writes.

loopml records facts about runs under ``loopml.`` tags (autolog's model digest,
which the registry checks before unpickling a ``runs:/`` model; a cached step's
source run; a reproduction's original run). Every public write path (client,
fluent API, ``create_run``/``start_run`` and ``log_batch``) refuses such keys
with :class:`~loopml.errors.ReservedKeyError`, so they cannot be forged through
the API; loopml's own code writes them through :func:`set_loopml_tags`.
Whoever can write the metadata store directly can still write anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidParameter, ReservedKeyError

if TYPE_CHECKING:
    from loopml.tracking._client import TrackingClient

__all__ = ["RESERVED_PREFIX", "check_not_reserved", "set_loopml_tags"]

RESERVED_PREFIX = "loopml."


def check_not_reserved(kind: str, key: str) -> str:
    """Return ``key`` unless it is in the reserved ``loopml.`` namespace (any case).

    Raises:
        ReservedKeyError: ``key`` starts with ``loopml.``.
    """
    if key.casefold().startswith(RESERVED_PREFIX):
        raise ReservedKeyError(
            f"The {kind} key {key!r} is reserved: keys starting with {RESERVED_PREFIX!r} "
            "are written by loopml itself. Choose another name."
        )
    return key


def set_loopml_tags(client: TrackingClient, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set ``loopml.`` tags on a run (loopml's own code only).

    Raises:
        InvalidParameter: a key is outside the ``loopml.`` namespace or malformed.
        RunNotFound: no run ``run_id``.
    """
    for key in tags:
        if not (isinstance(key, str) and key.startswith(RESERVED_PREFIX)):
            raise InvalidParameter(
                f"set_loopml_tags writes only {RESERVED_PREFIX!r} keys; got {key!r}."
            )
    client._write_tags(run_id, tags, public=False)
