"""Hiding the credentials a URL may carry, before it is stored or shown.

A URL can hold secrets in two places: its user information
(``postgresql://user:PASSWORD@host/db``, ``https://TOKEN@host/repo``) and its query
string (presigned ``?X-Amz-Signature=…``, Azure ``?sig=…``, ``?token=…``). loopml
keeps the real URL only where it opens the data or the store; what it stores
about a URL and every message that shows one uses :func:`redact_url`. The rules
follow common practice (pip, SQLAlchemy): a password becomes ``***`` and the user
name stays; a user name without a password is itself a token and becomes ``***``
(except in database URLs, where it is a role: ``postgresql://postgres@host/db``);
the value of a query parameter whose name suggests a secret becomes ``***``.

Example:
    >>> redact_url("postgresql+psycopg://loopml:hunter2@db:5432/loopml")
    'postgresql+psycopg://loopml:***@db:5432/loopml'
    >>> redact_url("s3://bucket/x.csv?X-Amz-Signature=abc&versionId=3")
    's3://bucket/x.csv?X-Amz-Signature=***&versionId=3'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["REDACTED", "redact_text", "redact_url", "url_secrets"]

REDACTED = "***"

# A URL: scheme "://" authority, then anything up to white space or a quote.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# Schemes (before any "+driver") whose lone user name is a database role, not a token.
_DATABASES = frozenset({"postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle", "sqlite"})
_HEAD = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)(.*)$", re.DOTALL)
# Query parameter names that carry secrets (matched anywhere in the name, any case):
# token, sig/signature (S3, GCS, Azure SAS), secret, password/passwd/pwd, key
# (api_key, access_key, sshkey), credential (X-Amz-Credential), auth, session
# (X-Amz-Security-Token is caught by "token").
_SECRET_NAME = re.compile(
    r"token|sig|secret|passw|pwd|key|credential|auth|session|cookie", re.IGNORECASE
)


@dataclass(frozen=True)
class _Parts:
    head: str  # scheme://
    userinfo: str | None
    rest: str  # host, port and path
    query: str | None
    fragment: str  # with its '#', or ""


def _parse(url: str) -> _Parts | None:
    match = _HEAD.match(url)
    if match is None:
        return None
    head, rest = match.groups()
    rest, hash_sign, fragment = rest.partition("#")
    main, question, query = rest.partition("?")
    first = main.split("/", 1)[0]
    userinfo = None
    if "@" in first:
        userinfo, _, host = first.rpartition("@")
        main = host + main[len(first) :]
    else:
        # A raw secret with a '/' in it (AWS secret keys have them) splits the
        # authority early: "KEY:SE/CRET@bucket". A ':' not followed by a port
        # number, then an '@', means user information all the same.
        _, colon, after = first.partition(":")
        if colon and not after.isdigit() and "@" in main:
            userinfo, _, main = main.rpartition("@")
    return _Parts(head, userinfo, main, query if question else None, hash_sign + fragment)


def redact_url(url: str) -> str:
    """Return ``url`` with its password, lone user token and secret query values as ``***``.

    Text that is not a ``scheme://`` URL (a local path, a description) is returned
    unchanged.
    """
    parts = _parse(url)
    if parts is None:
        return url
    shown = parts.head
    if parts.userinfo is not None:
        user, colon, _password = parts.userinfo.partition(":")
        if colon:
            shown += f"{user}:{REDACTED}@"
        else:
            shown += f"{user}@" if _is_database(parts.head) else f"{REDACTED}@"
    shown += parts.rest
    if parts.query is not None:
        shown += "?" + _redact_query(parts.query)
    return shown + parts.fragment


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret pieces of ``url`` (as written and percent-decoded), longest first.

    Messages that quote a URL in another form (a filesystem path made from it)
    are cleaned with these by :func:`redact_text`.
    """
    parts = _parse(url)
    if parts is None:
        return ()
    found: set[str] = set()
    if parts.userinfo is not None:
        user, colon, password = parts.userinfo.partition(":")
        if colon or not _is_database(parts.head):
            found.add(password if colon else user)
    for pair in (parts.query or "").split("&"):
        name, equals, value = pair.partition("=")
        if equals and _SECRET_NAME.search(unquote(name)):
            found.add(value)
    found |= {unquote(secret) for secret in found}
    found.discard("")
    return tuple(sorted(found, key=len, reverse=True))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every URL in it redacted and every one of ``secrets`` hidden."""
    text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _is_database(head: str) -> bool:
    return head[: -len("://")].split("+", 1)[0].lower() in _DATABASES


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        secret = equals and _SECRET_NAME.search(unquote(name))
        pairs.append(f"{name}={REDACTED}" if secret else pair)
    return "&".join(pairs)
