"""Which addresses an alert webhook may reach, checked when it is made and at each send.

A webhook URL is stored configuration that whoever may edit a monitor writes, and the
monitor runs on a machine inside the network: without a check, a monitor could post
to ``http://169.254.169.254/`` (cloud credentials), a database on ``10.0.0.5`` or a
service on ``127.0.0.1``. The URL is parsed once, and that one parse is what is
checked and what is connected to, so no second parser can read it differently.
A literal address (any spelling the C resolver accepts: ``0x7f000001``,
``2130706433``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]``) is refused when the sink is
made; a host name is resolved at each send, every address it resolves to is
checked, and the connection goes to a checked address (never to a second lookup,
which DNS rebinding could answer differently).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from loopml.errors import ForbiddenAddress, InvalidParameter

__all__ = ["MAX_URL_LENGTH", "WebhookTarget", "forbidden_reason", "parse_webhook_url", "resolve"]

MAX_URL_LENGTH = 4096
"""Longest webhook URL accepted, in characters."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SocketAddress = tuple[str, int] | tuple[str, int, int, int]

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_ALLOW = "unless LOOPML_WEBHOOK_ALLOW_PRIVATE is on"


@dataclass(frozen=True)
class WebhookTarget:
    """A parsed webhook URL: where to connect and what to send in the request line.

    ``shown`` is the URL as messages and logs may show it: scheme, host and port
    only, because webhook URLs carry their secret in the path (Slack) or the query.
    """

    scheme: str
    host: str
    port: int
    path: str
    shown: str
    authorization: str | None
    secrets: tuple[str, ...] = ()


def parse_webhook_url(url: object, *, allow_private: bool) -> WebhookTarget:
    """Parse and check a webhook URL without any network access.

    Args:
        url: The URL, ``http`` or ``https``.
        allow_private: Accept loopback, private and other non-public literal addresses
            and ``localhost`` names.

    Returns:
        The target.

    Raises:
        InvalidParameter: ``url`` is not a well-formed http(s) URL with a host.
        ForbiddenAddress: the scheme is not http(s), or the host is a forbidden
            literal address or a ``localhost`` name.
    """
    if not isinstance(url, str):
        raise InvalidParameter(
            f"The 'url' parameter of WebhookSink must be a str. Got {type(url).__name__} instead."
        )
    if len(url) > MAX_URL_LENGTH or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise InvalidParameter(
            "The 'url' parameter of WebhookSink must be a URL of at most "
            f"{MAX_URL_LENGTH} characters without spaces or control characters. "
            f"Got {len(url)} characters instead."
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidParameter(
            f"The 'url' parameter of WebhookSink must be a well-formed URL ({exc})."
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ForbiddenAddress(
            f"The 'url' parameter of WebhookSink must be an http or https URL. "
            f"Got a {scheme or 'scheme-less'} URL instead.",
            url=f"{scheme}:…" if scheme else "…",
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidParameter(
            f"The 'url' parameter of WebhookSink must name a host. Got {scheme}://… instead."
        )
    port = port if port is not None else (443 if scheme == "https" else 80)
    literal = _literal_address(host, bracketed="[" in parts.netloc)
    host = str(literal) if literal is not None else _host_name(host)
    shown_host = f"[{host}]" if ":" in host else host
    explicit_port = f":{parts.port}" if parts.port is not None else ""
    more = "/…" if parts.path.strip("/") or parts.query else ""
    shown = f"{scheme}://{shown_host}{explicit_port}{more}"
    if not allow_private:
        if literal is not None and (reason := forbidden_reason(literal)):
            raise ForbiddenAddress(
                f"The webhook {shown} points at {literal}, a {reason} address; alert "
                f"webhooks may not reach it {_ALLOW}.",
                url=shown,
            )
        if host == "localhost" or host.endswith(".localhost"):
            raise ForbiddenAddress(
                f"The webhook {shown} points at a loopback host name; alert webhooks may "
                f"not reach it {_ALLOW}.",
                url=shown,
            )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    secrets = tuple(unquote(s) for s in (parts.username, parts.password) if s)
    return WebhookTarget(
        scheme, host, port, path, shown, _basic(parts.username, parts.password), secrets
    )


def resolve(target: WebhookTarget, *, allow_private: bool) -> list[tuple[int, SocketAddress]]:
    """Resolve the target's host and check every address it resolves to.

    Args:
        target: A parsed URL.
        allow_private: Accept non-public addresses.

    Returns:
        ``(family, socket address)`` pairs to connect to, in the resolver's order.

    Raises:
        ForbiddenAddress: any address is forbidden (all are refused then: a resolver
            that mixes a public and a private answer is not to be trusted).
        OSError: the name does not resolve (``socket.gaierror``), or to no IP address.
    """
    infos = socket.getaddrinfo(
        target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found: list[tuple[int, SocketAddress]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(sockaddr[0], str):
            continue
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not allow_private and (reason := forbidden_reason(address)):
            raise ForbiddenAddress(
                f"The webhook {target.shown} resolves to {address}, a {reason} address; "
                f"alert webhooks may not reach it {_ALLOW}.",
                url=target.shown,
            )
        found.append((family, sockaddr))
    if not found:
        raise OSError(f"{target.host} resolves to no IP address")
    return found


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a webhook may not reach ``address`` (``"loopback"``, ``"private"`` ...), or None.

    An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4,
    Teredo, NAT64) is judged by the IPv4 address too.
    """
    if isinstance(address, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(address):
            if reason := forbidden_reason(inner):
                return f"{reason} (as {address})"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    inner = [address.ipv4_mapped, address.sixtofour]
    if address.teredo is not None:
        inner.extend(address.teredo)
    if address in _NAT64:
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in inner if a is not None]


def _literal_address(host: str, *, bracketed: bool) -> IPAddress | None:
    if bracketed:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise InvalidParameter(
                f"The 'url' parameter of WebhookSink must hold a valid IPv6 address in "
                f"brackets. Got [{host}] instead."
            ) from None
    try:
        # inet_aton reads every legacy IPv4 spelling the resolver would connect to
        # (hex, octal, decimal, fewer than four parts), so none slips past as a "name".
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _host_name(host: str) -> str:
    try:
        ascii_name = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        ascii_name = ""
    if not ascii_name or not all(_LABEL.fullmatch(label) for label in ascii_name.split(".")):
        raise InvalidParameter(
            f"The 'url' parameter of WebhookSink must have a valid host name. Got {host!r} instead."
        )
    return ascii_name


def _basic(user: str | None, password: str | None) -> str | None:
    if user is None:
        return None
    pair = f"{unquote(user)}:{unquote(password or '')}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")
