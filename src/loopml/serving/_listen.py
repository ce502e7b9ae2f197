"""The listening socket of ``loopml serve``, bound before anything else is started.

Binding first (before models load) makes a busy port fail at once, with one
:class:`~loopml.errors.PortUnavailable` line instead of uvicorn's log of a failed
start, and tells which port ``--port 0`` got, so it can be announced.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

import uvicorn

from loopml.errors import PortUnavailable

__all__ = ["AnnouncingServer", "bind_socket", "server_url"]


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that calls ``announce`` once it has started and listens.

    Args:
        config: the uvicorn configuration.
        announce: called once, when the app has started and the socket accepts.
    """

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, then announce (unless the start failed)."""
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._announce()


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: any free port), inheritable by workers.

    ``SO_REUSEADDR`` is set, as uvicorn does, so a server restarted right after
    another stopped is not refused for the old connections in TIME_WAIT.

    Raises:
        PortUnavailable: the address cannot be bound (the port is in use, the address
            is not this machine's, or binding it is not allowed).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = host.strip("[]")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise PortUnavailable(_reason(exc, host, port)) from None
    except (OverflowError, ValueError, UnicodeError):
        sock.close()
        raise PortUnavailable(
            f"Cannot listen on {host!r} port {port}: not an address and port "
            "(the port must be 0 to 65535)."
        ) from None
    sock.set_inheritable(True)
    return sock


def server_url(host: str, port: int) -> str:
    """The URL of a server bound to ``host``:``port`` (an IPv6 address in brackets)."""
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _reason(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"Port {port} on {host} is already in use; stop the process using it, "
            "choose another with --port, or use --port 0 for any free port."
        )
    if exc.errno == errno.EACCES:
        return f"Port {port} on {host} may not be bound by this user; choose a port above 1023."
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"Cannot listen on {host}: it is not an address of this machine."
    return f"Cannot listen on {host} port {port}: {exc.strerror or exc}."
