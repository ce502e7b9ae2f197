"""What a trigger is: :class:`TriggerSpec` — its kind and source, its hygiene rules, its action.

Kinds and what each watches (``source``):

==================  ==============================================================
kind                source options
==================  ==============================================================
``schedule``        ``cron`` (five fields or ``@daily``), ``timezone`` (IANA, UTC)
``dataset``         ``dataset`` (name); ``passed_only`` (default true: only
                    versions whose expectations passed, never quarantined ones)
``monitor_alert``   ``monitor`` (name); ``checks`` (default: any check)
``git``             ``url``, ``branch`` (default ``main``), ``paths`` (globs a
                    change must touch; default: any)
``pipeline``        ``pipeline`` (name); ``status`` (``succeeded``, ``failed``,
                    ``any``; default ``succeeded``)
``model``           ``model`` (name); ``event`` (``registered`` or ``promoted``);
                    ``alias`` (for ``promoted``, default ``champion``)
``manual``          nothing: ``loopml triggers fire NAME``
==================  ==============================================================

Hygiene (:class:`Hygiene`), every rule optional, defaults documented on the class:
a **cooldown** after a firing, a **debounce** quiet period that folds a burst into one
firing, a **minimum evidence** (the events' rows, labels or commits since the last
firing), a **dedup key** template, a **catch-up** policy for missed schedule ticks, a
**max concurrent** cap on unfinished firings, and whether a burst **folds** into one
firing.

The action (:class:`Action`) is one of: run a pipeline (``pipeline``: ``MODULE:NAME`` or
``path.py:NAME``, with ``params`` whose text may name the event's fields as
``{event.FIELD}``), or call a webhook (``webhook``: an http(s) URL, SSRF-checked as
monitoring's alert webhooks are).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from loopml._names import check_name
from loopml.errors import InvalidParameter

__all__ = [
    "CATCH_UP",
    "KINDS",
    "Action",
    "Hygiene",
    "TriggerSpec",
]

KINDS = ("schedule", "dataset", "monitor_alert", "git", "pipeline", "model", "manual")
"""The kinds of trigger, by what they watch."""

CATCH_UP = ("skip", "once", "all")
"""What a schedule does with ticks missed while no scheduler ran."""

_SOURCE_OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "schedule": {"cron": str, "timezone": str},
    "dataset": {"dataset": str, "passed_only": bool},
    "monitor_alert": {"monitor": str, "checks": list},
    "git": {"url": str, "branch": str, "paths": list},
    "pipeline": {"pipeline": str, "status": str},
    "model": {"model": str, "event": str, "alias": str},
    "manual": {},
}
_REQUIRED = {
    "schedule": ("cron",),
    "dataset": ("dataset",),
    "monitor_alert": ("monitor",),
    "git": ("url",),
    "pipeline": ("pipeline",),
    "model": ("model", "event"),
    "manual": (),
}
_MAX_SECONDS = 366 * 24 * 3600
_MAX_TEXT = 1024
_MAX_PARAMS = 64
_FIELD = re.compile(r"event\.[A-Za-z][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class Hygiene:
    """When a trigger that saw events fires.

    Attributes:
        cooldown: seconds after a firing during which it does not fire again; the
            events that arrive meanwhile wait and fire together once it is over
            (default 0; a ``monitor_alert`` trigger: 3600).
        debounce: seconds without a new event before the waiting events fire, so a
            burst becomes one firing (default 0; ``dataset``, ``git``,
            ``monitor_alert``: 30).
        min_evidence: events fire only once their evidence adds up to this: rows of
            new dataset versions, current rows of alerting monitor runs, commits;
            one per event of the other kinds (default 0).
        dedup_key: a template of the firing's key from its newest event's fields
            (``{dataset}:{version}``); a key that fired once never fires again.
            Default: the event's own key (its dataset version, alert, commit, tick).
        catch_up: for a ``schedule``, the ticks missed while no scheduler ran:
            ``skip`` them, fire ``once`` for all of them, or fire ``all``
            (at most 100) — default ``once``.
        max_concurrent: at most this many of the trigger's firings unfinished at once;
            more wait (default 1).
        fold: fire the waiting events as one firing (default), or one firing each
            (default for ``manual`` triggers: each request is its own firing).
    """

    cooldown: float | None = None
    debounce: float | None = None
    min_evidence: int = 0
    dedup_key: str | None = None
    catch_up: Literal["skip", "once", "all"] = "once"
    max_concurrent: int = 1
    fold: bool | None = None

    def __post_init__(self) -> None:
        for name in ("cooldown", "debounce"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= _MAX_SECONDS
            ):
                raise InvalidParameter(
                    f"The {name!r} parameter of a trigger must be a number of seconds in "
                    f"[0, {_MAX_SECONDS}]. Got {value!r} instead."
                )
        for name, low in (("min_evidence", 0), ("max_concurrent", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10**9:
                raise InvalidParameter(
                    f"The {name!r} parameter of a trigger must be an int in [{low}, 10**9]. "
                    f"Got {value!r} instead."
                )
        if self.catch_up not in CATCH_UP:
            raise InvalidParameter(
                f"The 'catch_up' parameter of a trigger must be one of {', '.join(CATCH_UP)}. "
                f"Got {self.catch_up!r} instead."
            )
        if self.dedup_key is not None:
            _check_template(self.dedup_key, "dedup_key", fields_only=True)
        if self.fold is not None and not isinstance(self.fold, bool):
            raise InvalidParameter(
                f"The 'fold' parameter of a trigger must be true or false. Got {self.fold!r}."
            )

    def fold_for(self, kind: str) -> bool:
        """Whether waiting events fire as one firing (its default depends on the kind)."""
        return self.fold if self.fold is not None else kind != "manual"

    def cooldown_for(self, kind: str) -> float:
        """The cooldown in seconds (its default depends on the kind)."""
        if self.cooldown is not None:
            return float(self.cooldown)
        return 3600.0 if kind == "monitor_alert" else 0.0

    def debounce_for(self, kind: str) -> float:
        """The debounce quiet period in seconds (its default depends on the kind)."""
        if self.debounce is not None:
            return float(self.debounce)
        return 30.0 if kind in ("dataset", "git", "monitor_alert") else 0.0


@dataclass(frozen=True)
class Action:
    """What a firing does: run a pipeline, or call a webhook.

    Attributes:
        pipeline: ``MODULE:NAME`` or ``path/to/file.py:NAME`` of a ``@loopml.pipeline``.
        params: the pipeline's parameters; text may hold ``{event.FIELD}``, replaced by
            that field of the firing's newest event (``{event.version}``).
        webhook: an http(s) URL that gets the firing as JSON.
        automation: the name of an automation (same project) to start an attempt of,
            with the firing's events as its trigger data.
        timeout: seconds the action may take before it is stopped and failed.
    """

    pipeline: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    webhook: str | None = None
    automation: str | None = None
    timeout: float = 3600.0

    def __post_init__(self) -> None:
        chosen = [x for x in (self.pipeline, self.webhook, self.automation) if x is not None]
        if len(chosen) != 1:
            raise InvalidParameter(
                "A trigger's action must be exactly one of 'pipeline' (MODULE:NAME), "
                "'webhook' (an http(s) URL) or 'automation' (a name). Got "
                f"pipeline={self.pipeline!r}, webhook={self.webhook!r}, "
                f"automation={self.automation!r}."
            )
        if self.automation is not None:
            check_name("automation", self.automation)
        if self.pipeline is not None:
            _check_text(self.pipeline, "action.pipeline")
            if ":" not in self.pipeline or self.pipeline.startswith("-"):
                raise InvalidParameter(
                    "The 'action.pipeline' parameter of a trigger must be MODULE:NAME or "
                    f"path/to/file.py:NAME. Got {self.pipeline!r} instead."
                )
        if self.webhook is not None:
            _check_text(self.webhook, "action.webhook")
            if not self.webhook.lower().startswith(("http://", "https://")):
                raise InvalidParameter(
                    "The 'action.webhook' parameter of a trigger must be an http(s) URL. "
                    f"Got {self.webhook!r} instead."
                )
        if not isinstance(self.params, Mapping) or len(self.params) > _MAX_PARAMS:
            raise InvalidParameter(
                f"The 'action.params' parameter of a trigger must be a mapping of at most "
                f"{_MAX_PARAMS} parameters. Got {self.params!r} instead."
            )
        for key, value in self.params.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise InvalidParameter(
                    f"A pipeline parameter name must be an identifier. Got {key!r} instead."
                )
            if isinstance(value, str):
                _check_template(value, f"action.params.{key}", fields_only=False)
            elif not (value is None or isinstance(value, bool | int | float)):
                raise InvalidParameter(
                    f"The pipeline parameter {key!r} must be text, a number, a bool or null. "
                    f"Got {type(value).__name__} instead."
                )
        timeout = self.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            timeout = -1
        if not 1 <= timeout <= 7 * 24 * 3600:
            raise InvalidParameter(
                "The 'action.timeout' parameter of a trigger must be a number of seconds in "
                f"[1, 604800]. Got {self.timeout!r} instead."
            )

    def to_dict(self) -> dict[str, Any]:
        """The action as JSON-able data (what is stored)."""
        data = asdict(self)
        data["params"] = dict(self.params)
        return {k: v for k, v in data.items() if v is not None and v != {}}


@dataclass(frozen=True)
class TriggerSpec:
    """A trigger: what it watches, when it fires, what it does.

    Attributes:
        name: unique in its project.
        kind: one of :data:`KINDS`.
        source: the kind's options (see the module docstring).
        action: what a firing does.
        hygiene: when events fire (cooldown, debounce, minimum evidence, ...).
        description: free text for people.
    """

    name: str
    kind: str
    action: Action
    source: Mapping[str, Any] = field(default_factory=dict)
    hygiene: Hygiene = field(default_factory=Hygiene)
    description: str = ""

    def __post_init__(self) -> None:
        check_name("trigger", self.name)
        if self.kind not in KINDS:
            raise InvalidParameter(
                f"Trigger {self.name!r}: unknown kind {self.kind!r}; kinds: {', '.join(KINDS)}."
            )
        if not isinstance(self.action, Action):
            raise InvalidParameter(f"Trigger {self.name!r}: 'action' must be an Action.")
        if not isinstance(self.hygiene, Hygiene):
            raise InvalidParameter(f"Trigger {self.name!r}: 'hygiene' must be a Hygiene.")
        _check_text(self.description, "description", limit=4096)
        _check_source(self.name, self.kind, self.source)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-able data (what is stored, and :meth:`from_dict` reads)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "source": dict(self.source),
            "action": self.action.to_dict(),
            "hygiene": {k: v for k, v in asdict(self.hygiene).items() if v is not None},
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: object) -> TriggerSpec:
        """Build a spec from :meth:`to_dict`'s shape (a YAML file's, or a stored row's).

        Raises:
            InvalidParameter: not a mapping, an unknown key, or a bad value.
        """
        if not isinstance(data, Mapping):
            raise InvalidParameter(f"A trigger must be a mapping; got {type(data).__name__}.")
        known = {"name", "kind", "source", "action", "hygiene", "description"}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise InvalidParameter(
                f"Unknown trigger field(s) {unknown}; the fields are {', '.join(sorted(known))}."
            )
        action, hygiene = data.get("action"), data.get("hygiene") or {}
        for part, value, names in (
            ("action", action, {"pipeline", "params", "webhook", "automation", "timeout"}),
            ("hygiene", hygiene, set(Hygiene.__dataclass_fields__)),
        ):
            if not isinstance(value, Mapping):
                raise InvalidParameter(f"A trigger's {part!r} must be a mapping; got {value!r}.")
            extra = sorted(map(str, set(value) - names))
            if extra:
                raise InvalidParameter(
                    f"Unknown trigger {part} field(s) {extra}; the fields are "
                    f"{', '.join(sorted(names))}."
                )
        source = data.get("source") or {}
        return cls(
            name=cast(str, data.get("name")),
            kind=cast(str, data.get("kind")),
            source=source,
            action=Action(**cast(Mapping[str, Any], action)),
            hygiene=Hygiene(**cast(Mapping[str, Any], hygiene)),
            description=cast(str, data.get("description") or ""),
        )


def _check_source(name: str, kind: str, source: object) -> None:
    """Refuse a source with unknown or missing options, or values of the wrong type."""
    if not isinstance(source, Mapping):
        raise InvalidParameter(f"Trigger {name!r}: 'source' must be a mapping; got {source!r}.")
    allowed = _SOURCE_OPTIONS[kind]
    unknown = sorted(map(str, set(source) - set(allowed)))
    if unknown:
        raise InvalidParameter(
            f"Trigger {name!r} ({kind}): unknown source option(s) {unknown}; options: "
            f"{', '.join(allowed) or 'none'}."
        )
    missing = [o for o in _REQUIRED[kind] if source.get(o) in (None, "")]
    if missing:
        raise InvalidParameter(
            f"Trigger {name!r} ({kind}) needs the source option(s) {', '.join(missing)}."
        )
    for option, value in source.items():
        if not isinstance(value, allowed[option]) or isinstance(value, bool) != (
            allowed[option] is bool
        ):
            raise InvalidParameter(
                f"Trigger {name!r}: source option {option!r} must be of type "
                f"{getattr(allowed[option], '__name__', allowed[option])}; got {value!r}."
            )
        if isinstance(value, str):
            _check_text(value, f"source.{option}")
        if isinstance(value, list):
            if len(value) > 100 or not all(isinstance(v, str) and v for v in value):
                raise InvalidParameter(
                    f"Trigger {name!r}: source option {option!r} must be a list of at most "
                    f"100 non-empty strings; got {value!r}."
                )
            for item in value:
                _check_text(item, f"source.{option}")
    _check_kind_values(name, kind, source)


def _check_kind_values(name: str, kind: str, source: Mapping[str, Any]) -> None:
    """The checks of one kind's values: a cron that parses, a known status or event."""
    if kind == "schedule":
        from loopml.automation._schedule import check_timezone
        from loopml.monitoring._spec import check_cron

        check_cron(source["cron"], "source.cron")
        check_timezone(source.get("timezone", "UTC"))
    elif kind == "pipeline" and source.get("status", "succeeded") not in (
        "succeeded",
        "failed",
        "any",
    ):
        raise InvalidParameter(
            f"Trigger {name!r}: 'status' must be succeeded, failed or any; "
            f"got {source.get('status')!r}."
        )
    elif kind == "model" and source["event"] not in ("registered", "promoted"):
        raise InvalidParameter(
            f"Trigger {name!r}: 'event' must be registered or promoted; got {source['event']!r}."
        )
    elif kind == "git":
        from loopml.automation._git import GitSource

        GitSource(source["url"], source.get("branch", "main"), tuple(source.get("paths", ())))


def _check_text(value: object, name: str, *, limit: int = _MAX_TEXT) -> None:
    if (
        not isinstance(value, str)
        or len(value) > limit
        or any(ord(c) < 32 and c not in "\t" for c in value)
    ):
        raise InvalidParameter(
            f"The {name!r} parameter of a trigger must be text of at most {limit} characters "
            f"without control characters. Got {value!r:.80} instead."
        )


def _check_template(text: str, name: str, *, fields_only: bool) -> None:
    """Refuse a template whose ``{...}`` are not plain field names (no attribute access,
    indexing or format specs: a template is data, never code)."""
    _check_text(text, name)
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InvalidParameter(f"The {name!r} template {text!r} does not parse: {exc}.") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        plain = field_name.isidentifier() if fields_only else bool(_FIELD.fullmatch(field_name))
        if not plain or spec or conversion:
            wanted = "{FIELD}" if fields_only else "{event.FIELD}"
            raise InvalidParameter(
                f"The {name!r} template {text!r} may only name fields as {wanted}; "
                f"got {{{field_name}}}."
            )
