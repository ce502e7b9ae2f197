"""The webhook alert sink: a JSON POST, generic or Slack-shaped, with retries.

This module holds what is configured and decided: the URL's checks, the body, the
retries. Sending is :mod:`loopml.monitoring._http`'s, loaded on the first delivery.
Redirects are never followed: a 3xx answer is a failure, so a checked URL cannot
forward the alert to an unchecked one. Connection errors, timeouts, 5xx and 429
answers are retried with exponential backoff (``Retry-After`` is obeyed up to
``max_wait``); other answers, and a refused TLS certificate, are final.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from loopml import settings
from loopml._urls import redact_text
from loopml._version import __version__
from loopml.errors import AlertDeliveryFailed, InvalidParameter
from loopml.monitoring._addresses import WebhookTarget, parse_webhook_url
from loopml.monitoring._events import AlertEvent

__all__ = ["WebhookFormat", "WebhookSink"]

WebhookFormat = Literal["generic", "slack"]

_MAX_HEADERS = 50
_MAX_HEADER_VALUE = 8192
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})

logger = logging.getLogger("loopml.monitoring.alerts")


class WebhookSink:
    """Posts each alert event as JSON to an http(s) URL.

    Args:
        url: Where to post. Credentials in it (``https://user:pass@host/``) are sent
            as Basic authentication and never shown: messages and logs show only the
            scheme, host and port.
        format: ``generic`` posts the event's fields (:meth:`AlertEvent.to_dict` plus
            ``title``); ``slack`` posts ``{"text": ..., "blocks": [...]}`` for a Slack
            (or Mattermost, Rocket.Chat) incoming webhook.
        headers: Extra request headers (an ``Authorization`` token ...).
        timeout: Seconds to wait to connect, and then for the whole answer; default
            ``LOOPML_WEBHOOK_TIMEOUT``.
        retries: Retries after a connection error, a 5xx or a 429; default
            ``LOOPML_WEBHOOK_RETRIES``.
        allow_private: Reach loopback, private, link-local and other non-public
            addresses; default ``LOOPML_WEBHOOK_ALLOW_PRIVATE`` (off).
        backoff: Seconds before the first retry; each next one waits twice as long.
        max_wait: The longest pause between two attempts, ``Retry-After`` included.

    Raises:
        InvalidParameter: an argument is malformed.
        ForbiddenAddress: the URL is not http(s) or names a forbidden literal address.

    Example:
        >>> sink = WebhookSink("https://hooks.slack.com/services/T0/B0/secret", format="slack")
        >>> sink
        WebhookSink('https://hooks.slack.com/…', format='slack')
    """

    def __init__(
        self,
        url: str,
        *,
        format: WebhookFormat = "generic",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        allow_private: bool | None = None,
        backoff: float = 0.5,
        max_wait: float = 30.0,
    ) -> None:
        if format not in ("generic", "slack"):
            raise InvalidParameter(
                "The 'format' parameter of WebhookSink must be 'generic' or 'slack'. "
                f"Got {format!r} instead."
            )
        if allow_private is None:
            allow_private = bool(settings.get("LOOPML_WEBHOOK_ALLOW_PRIVATE"))
        elif not isinstance(allow_private, bool):
            raise InvalidParameter(
                "The 'allow_private' parameter of WebhookSink must be a bool or None. "
                f"Got {allow_private!r} instead."
            )
        self.format: WebhookFormat = format
        self.allow_private = allow_private
        self.timeout = _positive(
            "timeout", settings.get("LOOPML_WEBHOOK_TIMEOUT") if timeout is None else timeout
        )
        self.retries = _retries(
            settings.get("LOOPML_WEBHOOK_RETRIES") if retries is None else retries
        )
        self.backoff = _positive("backoff", backoff)
        self.max_wait = _positive("max_wait", max_wait)
        self._target: WebhookTarget = parse_webhook_url(url, allow_private=allow_private)
        self._headers = _headers(headers)

    def __repr__(self) -> str:
        return f"WebhookSink({self._target.shown!r}, format={self.format!r})"

    @property
    def shown_url(self) -> str:
        """The URL as it may be shown: scheme, host and port, never a path or credentials."""
        return self._target.shown

    def body(self, event: AlertEvent) -> dict[str, Any]:
        """The JSON document posted for ``event``, in this sink's format."""
        if self.format == "slack":
            return _slack(event)
        return {**event.to_dict(), "title": event.title}

    def deliver(self, event: AlertEvent) -> None:
        """Post ``event``, retrying transient failures.

        Raises:
            ForbiddenAddress: the host resolves to a forbidden address (nothing is sent).
            AlertDeliveryFailed: the retries ran out, or the answer was final (a 3xx,
                a 4xx other than 429) or the server's TLS certificate is invalid.
        """
        self.send(self.body(event))

    def send(self, body: dict[str, Any]) -> None:
        """Post ``body`` as JSON, retrying transient failures (what :meth:`deliver` does
        with an alert's body; automation's webhook actions send their own).

        Raises:
            ForbiddenAddress: the host resolves to a forbidden address (nothing is sent).
            AlertDeliveryFailed: see :meth:`deliver`.
        """
        from loopml.monitoring import _http  # the HTTP stack loads on the first alert only

        payload = orjson.dumps(body)
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                status, retry_after, answer = _http.post(
                    self._target,
                    payload,
                    self._request_headers(),
                    timeout=self.timeout,
                    allow_private=self.allow_private,
                )
            except _http.Unreachable as exc:
                if exc.final:
                    raise AlertDeliveryFailed(
                        f"The webhook {self.shown_url} cannot be reached: {exc}; not retried.",
                        attempts=attempt,
                    ) from None
                problem = str(exc)
                wait = self._backoff_wait(attempt)
            else:
                if 200 <= status < 300:
                    return
                problem = f"HTTP {status}" + (f" ({self._scrub(answer)})" if answer else "")
                if status != 429 and status < 500:
                    why = "redirects are not followed" if 300 <= status < 400 else "not retried"
                    raise AlertDeliveryFailed(
                        f"The webhook {self.shown_url} answered {problem}; {why}.",
                        attempts=attempt,
                    )
                wait = (
                    min(retry_after, self.max_wait)
                    if retry_after is not None
                    else self._backoff_wait(attempt)
                )
            if attempt < attempts:
                logger.warning(
                    "Alert webhook %s failed (%s); retry %d of %d in %.2f s.",
                    self.shown_url,
                    problem,
                    attempt,
                    self.retries,
                    wait,
                )
                time.sleep(wait)
        raise AlertDeliveryFailed(
            f"The webhook {self.shown_url} failed {attempts} time(s); the last error: {problem}.",
            attempts=attempts,
        )

    def _scrub(self, text: str) -> str:
        # A receiver's error page may echo the request's path, which holds the secret
        # of most webhook URLs (Slack's), or its credentials: none of it may be shown.
        target = self._target
        pieces = [target.path, *re.split(r"[/?&=;]", target.path), *target.secrets]
        return redact_text(text, sorted({p for p in pieces if len(p) >= 3}, key=len, reverse=True))

    def _backoff_wait(self, attempt: int) -> float:
        return min(self.backoff * 2.0 ** (attempt - 1), self.max_wait)

    def _request_headers(self) -> dict[str, str]:
        target = self._target
        return {
            "Content-Type": "application/json",
            "User-Agent": f"loopml/{__version__}",
            **({"Authorization": target.authorization} if target.authorization else {}),
            **self._headers,
        }


def _slack(event: AlertEvent) -> dict[str, Any]:
    firing = event.state == "firing"
    icon = ":rotating_light:" if firing else ":white_check_mark:"
    facts = [
        ("Monitor", event.monitor),
        ("Check", event.check),
        ("Column", event.column),
        ("Method", event.method),
        ("Segment", event.segment),
        ("Statistic", "" if event.statistic is None else f"{event.statistic:.4g}"),
        ("Threshold", "" if event.threshold is None else f"{event.threshold:.4g}"),
        ("Started", event.when),
    ]
    blocks: list[dict[str, Any]] = [
        # Slack caps a header at 150 characters, a section's text at 3,000 and a field at 2,000.
        {"type": "header", "text": {"type": "plain_text", "text": _cut(event.title, 150)}},
    ]
    if event.message:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(_mrkdwn(event.message), 3000)},
            }
        )
    blocks.append(
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _cut(f"*{name}*\n{_mrkdwn(value)}", 2000)}
                for name, value in facts
                if value
            ],
        }
    )
    if event.report:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": _cut(f"Report: {_mrkdwn(event.report)}", 3000)}
                ],
            }
        )
    return {"text": f"{icon} {_mrkdwn(event.title)}", "blocks": blocks}


def _mrkdwn(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>): stored text must not make them.
    return text.translate(_SLACK_ESCAPES)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InvalidParameter(
            f"The '{name}' parameter of WebhookSink must be a finite number of seconds > 0. "
            f"Got {value!r} instead."
        )
    return float(value)


def _retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidParameter(
            "The 'retries' parameter of WebhookSink must be an int in [0, 100]. "
            f"Got {value!r} instead."
        )
    return value


def _headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping) or len(headers) > _MAX_HEADERS:
        raise InvalidParameter(
            f"The 'headers' parameter of WebhookSink must be a mapping of at most "
            f"{_MAX_HEADERS} header names to values. Got {type(headers).__name__} instead."
        )
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidParameter(
                "The 'headers' parameter of WebhookSink must have header names made of "
                f"letters, digits and !#$%&'*+-.^_`|~. Got {name!r} instead."
            )
        if name.lower() in _RESERVED_HEADERS:
            raise InvalidParameter(
                f"The 'headers' parameter of WebhookSink must not set {name}; "
                "loopml sets it from the URL and the body."
            )
        if (
            not isinstance(value, str)
            or len(value) > _MAX_HEADER_VALUE
            or any(c in value for c in "\r\n\0")
        ):
            # The value is not shown: headers carry tokens.
            raise InvalidParameter(
                f"The 'headers' parameter of WebhookSink must map {name} to a str of at most "
                f"{_MAX_HEADER_VALUE} characters without line breaks or NUL."
            )
        checked[name] = value
    return checked
