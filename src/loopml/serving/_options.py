"""How the inference server batches, bounds and follows the store: :class:`ServerOptions`."""

from __future__ import annotations

from dataclasses import dataclass, field

from loopml.errors import InvalidParameter
from loopml.serving._batching import BatchPolicy
from loopml.serving._guard import LOOPBACK_HOSTS
from loopml.serving._payloads import DEFAULT_LIMITS, PayloadLimits

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ServerOptions"]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
"""Requests with a larger body are refused with 413."""


@dataclass(frozen=True)
class ServerOptions:
    """How the server batches, bounds and follows the store.

    Attributes:
        max_body_bytes: larger request bodies are refused with 413.
        batch: the default batching of every route (an endpoint's deployment
            settings ``max_batch_size`` / ``max_wait_ms`` override it).
        poll_interval: seconds between checks of the store for new revisions and
            alias moves; 0 never checks (the loaded models are served until restart).
        source: who writes the prediction segments (default: the host name).
        trust: load executable (pickled) flavors registered by another identity.
        payload: rows, columns, cells and JSON depth one request may hold.
        allowed_hosts: the Host names (any port) the server answers to; ``*``: any.
            Add the bound address when it is not a loopback one.
        token: when set, every request but health probes needs ``Authorization: Bearer
            <token>``.
        log_probabilities: log class probabilities for every request to a model that
            has them (an endpoint's deployment setting ``log_probabilities`` overrides it).
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    poll_interval: float = 2.0
    source: str | None = None
    trust: bool = False
    payload: PayloadLimits = DEFAULT_LIMITS
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    token: str | None = field(default=None, repr=False)
    log_probabilities: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_body_bytes, bool) or not (
            isinstance(self.max_body_bytes, int) and self.max_body_bytes >= 1
        ):
            raise InvalidParameter(
                f"max_body_bytes must be an int >= 1; got {self.max_body_bytes!r}."
            )
        if not (isinstance(self.poll_interval, int | float) and self.poll_interval >= 0):
            raise InvalidParameter(
                f"poll_interval must be a number of seconds >= 0; got {self.poll_interval!r}."
            )
