"""uvicorn's httptools protocol with explicit limits on the request head.

uvicorn's httptools protocol takes a request line and headers of any size and number
(an 8 MiB header and 100,000 headers were answered) and waits for them as long as
the client likes. :class:`LimitedHttpTools` counts what it is fed before the head is
complete and refuses, with 431 and a closed connection, a head over
``max_head_bytes`` or with more than ``max_headers`` headers, and answers 408 to a
head not complete within ``head_timeout`` seconds of its first byte (or of the
connection, for one that sends nothing). The memory a head can take is bounded by
``max_head_bytes`` plus one read (256 KiB). After a refusal the connection is closed
for writing and what the client still sends is read and dropped for up to
:data:`LINGER_SECONDS` (closing at once, with its data unread, would reset the
connection, and the client could lose the answer).

One class serves a process; :meth:`LimitedHttpTools.configure` sets its limits
(``loopml serve`` calls it in the server and in each ``--workers`` process, where
uvicorn imports the class by name).
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from loopml.errors import InvalidParameter

__all__ = ["LINGER_SECONDS", "PROTOCOL_PATH", "HttpLimits", "LimitedHttpTools"]

LINGER_SECONDS = 2.0
"""How long a refused connection's further bytes are read and dropped before it closes."""

PROTOCOL_PATH = f"{__name__}:LimitedHttpTools"
"""Where uvicorn imports the protocol from (``Config(http=...)``)."""


@dataclass(frozen=True)
class HttpLimits:
    """What a request head may be, and the connection limits handed to uvicorn.

    Attributes:
        max_head_bytes: bytes of the request line and headers together.
        max_headers: headers per request.
        head_timeout: seconds from a request's first byte (or the connection) until
            its head must be complete.
        max_connections: open connections (and requests) at once; beyond, 503.
        keep_alive: seconds an idle keep-alive connection stays open.
    """

    max_head_bytes: int = 64 * 1024
    max_headers: int = 100
    head_timeout: float = 10.0
    max_connections: int = 1024
    keep_alive: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_head_bytes", "max_headers", "max_connections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameter(f"{name} must be an int >= 1; got {value!r}.")
        for name in ("head_timeout", "keep_alive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidParameter(f"{name} must be a number of seconds > 0; got {value!r}.")

    def uvicorn_options(self) -> dict[str, Any]:
        """The ``uvicorn.Config`` options that apply these limits."""
        return {
            "http": LimitedHttpTools,
            "limit_concurrency": self.max_connections,
            "timeout_keep_alive": self.keep_alive,
        }


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop reading a head over the limits."""


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing heads over :class:`HttpLimits` (see module)."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    @classmethod
    def configure(cls, limits: HttpLimits) -> None:
        """Set the limits of every connection this process accepts from now on."""
        cls.limits = limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # reading a request line and headers
        self._head_bytes = 0  # bytes fed while the head was open
        self._head_size = 0  # bytes of the request line and headers parsed so far
        self._head_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # lingering: drop what the client still sends
            return
        self._unset_keepalive_if_required()
        if self._head_open:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431, str(exc.__context__))
                return
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        if self._head_open and self._head_bytes > self.limits.max_head_bytes:
            self._refuse(431, self._too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_size = self._head_count = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._add(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        if self._head_count > self.limits.max_headers:
            raise _HeadTooLarge(f"A request may have at most {self.limits.max_headers} headers.")
        self._add(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True
        self._head_bytes = 0

    def _add(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_head_bytes:
            raise _HeadTooLarge(self._too_large())

    def _too_large(self) -> str:
        return f"A request's line and headers may be at most {self.limits.max_head_bytes} bytes."

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._head_open or self.transport.is_closing():
            return
        if self._head_bytes:
            message = f"The request's headers did not arrive within {self.limits.head_timeout} s."
            self._refuse(408, message)
        else:  # nothing sent: nobody to tell
            self.transport.close()

    def _invalid(self) -> None:
        self.logger.warning("Invalid HTTP request received.")
        self._refuse(400, "Invalid HTTP request.")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with a JSON error, then close the connection (lingering)."""
        self._cancel_head_timer()
        self._refused = True
        code = http.HTTPStatus(status)
        body = orjson.dumps({"error": {"code": code.name.lower(), "message": message}})
        head = [f"HTTP/1.1 {status} {code.phrase}".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
