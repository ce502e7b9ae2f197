"""Sending one webhook request: to a checked address, with a timeout on the whole answer.

Loaded on the first delivery, not when ``loopml.monitoring`` is imported. The host is
resolved and every address checked (:func:`loopml.monitoring._addresses.resolve`);
the TCP connection goes to a checked address, while the Host header and the TLS
server name stay the URL's host. Redirects are not followed (``http.client`` never
does). Uses the standard library only: loopml's runtime does not depend on an HTTP
client.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import socket
import ssl
import threading
import time
from typing import NamedTuple

from loopml.monitoring._addresses import SocketAddress, WebhookTarget, resolve

__all__ = ["MAX_ANSWER_BYTES", "Answer", "Unreachable", "post"]

MAX_ANSWER_BYTES = 64 * 1024
"""Most bytes of a webhook's answer read (the rest is dropped unread)."""


class Answer(NamedTuple):
    """The receiver's answer: its status, ``Retry-After`` in seconds, the start of its body."""

    status: int
    retry_after: float | None
    text: str


class Unreachable(Exception):
    """No answer: a connection error or timeout (``final`` False, worth retrying), or a
    TLS certificate that does not verify (``final`` True)."""

    def __init__(self, problem: str, *, final: bool = False) -> None:
        super().__init__(problem)
        self.final = final


def post(
    target: WebhookTarget,
    payload: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    allow_private: bool,
) -> Answer:
    """POST ``payload`` to ``target`` and read the answer.

    Raises:
        ForbiddenAddress: the host resolves to a forbidden address (nothing is sent).
        Unreachable: no answer came (see its ``final``).
    """
    try:
        addresses = resolve(target, allow_private=allow_private)
    except socket.gaierror as exc:
        raise Unreachable(f"{target.host} does not resolve ({exc.strerror})") from None
    except OSError as exc:
        if isinstance(exc, PermissionError):  # ForbiddenAddress is one
            raise
        raise Unreachable(str(exc)) from None
    tls = ssl.create_default_context() if target.scheme == "https" else None
    problem = ""
    for family, address in addresses:
        connection = _PinnedConnection(target, family, address, timeout, tls)
        try:
            connection.connect()
        except ssl.SSLCertVerificationError as exc:
            connection.close()
            raise Unreachable(
                f"its TLS certificate was refused ({exc.reason})", final=True
            ) from None
        except OSError as exc:
            connection.close()
            problem = _problem(exc)
            continue  # try the host's next address, as browsers do
        try:
            return _exchange(connection, target.path, payload, headers, timeout)
        finally:
            connection.close()
    raise Unreachable(problem)


def _exchange(
    connection: _PinnedConnection,
    path: str,
    payload: bytes,
    headers: dict[str, str],
    timeout: float,
) -> Answer:
    # The socket timeout bounds each read; a receiver that trickles its answer a byte
    # at a time would pass every one of them. The timer bounds the whole answer.
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        connection.abort()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        connection.request("POST", path, body=payload, headers=headers)
        response = connection.getresponse()
        body = response.read(MAX_ANSWER_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise Unreachable(f"TimeoutError: no whole answer within {timeout:g} s") from None
        raise Unreachable(_problem(exc)) from None
    finally:
        timer.cancel()
    if expired.is_set():
        raise Unreachable(f"TimeoutError: no whole answer within {timeout:g} s")
    return Answer(response.status, _retry_after(response.getheader("Retry-After")), _clip(body))


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to an address resolved and checked beforehand."""

    def __init__(
        self,
        target: WebhookTarget,
        family: int,
        address: SocketAddress,
        timeout: float,
        tls: ssl.SSLContext | None,
    ) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        if tls is not None:
            self.default_port = 443  # so the Host header leaves out a default https port
        self._family = family
        self._address = address
        self._tls = tls

    def connect(self) -> None:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def abort(self) -> None:
        """Cut the connection from another thread: a blocked read returns at once."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _problem(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _clip(body: bytes) -> str:
    text = " ".join(body[:400].decode("utf-8", "replace").split())
    text = "".join(c for c in text if c.isprintable())
    return text if len(text) <= 200 else text[:199] + "…"


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
