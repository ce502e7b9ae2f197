"""Who may talk to the inference server: the Host allow-list, a bearer token, content types.

:class:`RequestGuard` checks every HTTP request before anything else runs, the
predict route that skips Starlette included, at the cost of a set lookup, a bytes
prefix check and, with a token configured, one constant-time compare:

* **Host** must be one of the allowed names, any port (default: the loopback names
  and the bound address). A web page that rebinds its own DNS name to 127.0.0.1 still
  sends its own name as Host, so it cannot read ``/metrics``, the signature or
  predictions from a server on the loopback interface. ``*`` allows any Host.
* **Authorization: Bearer <token>** when the server has a token.
* **Content-Type** of a request with a body must be JSON (``application/json``,
  ``application/*+json``) or CSV (``text/csv``, ``application/csv``): a web page may
  post ``text/plain`` or a form to any address without asking, but not JSON.

Only ``/v2/health/live`` and ``/v2/health/ready`` are open to any Host and without
a token: probes rarely send either, and the answers say no more than whether the
process runs and can take traffic.

Example:
    >>> guard = RequestGuard(LOOPBACK_HOSTS, token=None)
    >>> guard.check("GET", "/metrics", b"localhost:8080", None, None) is None
    True
    >>> guard.check("GET", "/metrics", b"evil.example:8080", None, None).status
    421
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from loopml.errors import InvalidParameter

__all__ = ["LOOPBACK_HOSTS", "Refusal", "RequestGuard", "is_loopback"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""Host names allowed by default (with any port), besides the bound address."""

_OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BODY_TYPES = (b"application/json", b"text/csv", b"application/csv")
_BEARER = b"bearer "
_SHOWN = 80


@dataclass(frozen=True)
class Refusal:
    """An answer given instead of the route's: status, error code, message, headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class RequestGuard:
    """Checks the Host, the token and the content type of a request (see the module doc).

    Args:
        allowed_hosts: host names or addresses, with or without a port (any port is
            allowed); ``*`` allows any Host.
        token: the bearer token every request but health probes must carry; None: none.

    Raises:
        InvalidParameter: no host, an empty host name, or an empty token.
    """

    def __init__(self, allowed_hosts: Iterable[str], token: str | None) -> None:
        hosts = list(allowed_hosts)
        if not hosts or not all(
            isinstance(h, str) and h.strip() and h.isascii() and h.isprintable() for h in hosts
        ):
            raise InvalidParameter(
                f"allowed_hosts must be non-empty ASCII host names (or '*'); got {hosts!r}."
            )
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise InvalidParameter("The server token must be a non-empty string.")
        self.any_host = "*" in hosts
        self._hosts = frozenset(host_name(h.strip().encode("ascii")) for h in hosts if h != "*")
        self._token = None if token is None else token.encode()

    def check(
        self,
        method: str,
        path: str,
        host: bytes | None,
        authorization: bytes | None,
        content_type: bytes | None,
    ) -> Refusal | None:
        """None when the request may go on, else what to answer instead."""
        if path in _OPEN_PATHS:
            return None
        if not self.any_host and (host is None or host_name(host) not in self._hosts):
            shown = "none" if host is None else repr(host.decode("latin-1")[:_SHOWN])
            return Refusal(
                421,
                "host_not_allowed",
                f"This server does not answer to the Host {shown}; start it with "
                "--allowed-hosts naming the host clients use.",
            )
        if self._token is not None and not _authorized(authorization, self._token):
            return Refusal(
                401,
                "unauthorized",
                "This server needs the header 'Authorization: Bearer <token>' with its token.",
                {"WWW-Authenticate": "Bearer"},
            )
        if method not in _NO_BODY_METHODS and not _takes(content_type):
            shown = "none" if content_type is None else repr(content_type.decode("latin-1"))
            return Refusal(
                415,
                "unsupported_media_type",
                f"The Content-Type must be application/json or text/csv; got {shown[:_SHOWN]}.",
            )
        return None


def host_name(host: bytes) -> bytes:
    """A Host header value without its port, lower case: ``b"[::1]:80"`` → ``b"[::1]"``."""
    host = host.strip().lower()
    if host.startswith(b"["):
        return host[: host.find(b"]") + 1]
    if host.count(b":") > 1:  # a bare IPv6 address, as an allow-list may spell it
        return b"[" + host + b"]"
    return host.partition(b":")[0]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` listens on the loopback interface only."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _authorized(authorization: bytes | None, token: bytes) -> bool:
    if authorization is None or authorization[: len(_BEARER)].lower() != _BEARER:
        return False
    return hmac.compare_digest(authorization[len(_BEARER) :].strip(), token)


def _takes(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    kind = content_type.partition(b";")[0].strip().lower()
    return kind in _BODY_TYPES or (kind.startswith(b"application/") and kind.endswith(b"+json"))
