"""Promotion policies: a list of checks evaluated against one model version.

Each check kind is saved under a stable alias (``metric_threshold``,
``beats_champion``, ``data_quality``, ``fairness``, ``latency``, ``approvals``),
never its import path, so stored policies and their results survive refactors.
Every check returns a :class:`CheckOutcome` with a readable ``reason``; the
registry stores one outcome per check as the version's ``policy_result``.

A policy in YAML is a list of entries, each ``{kind: ..., <fields>}``; a bare
string entry is a metric threshold::

    - auc >= 0.85
    - {kind: beats_champion, metric: auc, margin: 0.01}
    - {kind: approvals, count: 1, separation_of_duties: true}

Example:
    >>> import numpy as np
    >>> policy = Policy(
    ...     [
    ...         MetricThreshold.parse("accuracy >= 0.5"),
    ...         BeatsChampion("accuracy", margin=0.01),
    ...         Approvals(count=1, separation_of_duties=True),
    ...     ]
    ... )
    >>> data = EvaluationData(
    ...     y_true=np.array([0, 1, 1, 0]),
    ...     candidate_pred=np.array([0, 1, 1, 1]),
    ...     approvals=[("bob", "reviewer")],
    ...     registered_by="alice",
    ... )
    >>> [o.passed for o in policy.evaluate(data)]
    [True, True, True]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from loopml.errors import InvalidParameter, ModelError
from loopml.registry._checks import (
    CHECK_KINDS,
    Approvals,
    BeatsChampion,
    DataQuality,
    Fairness,
    Latency,
    MetricThreshold,
    parse_threshold,
)
from loopml.registry._evaluation import Check, CheckOutcome, EvaluationData, PolicyCheck, fail

__all__ = [
    "CHECK_KINDS",
    "Approvals",
    "BeatsChampion",
    "Check",
    "CheckOutcome",
    "DataQuality",
    "EvaluationData",
    "Fairness",
    "Latency",
    "MetricThreshold",
    "Policy",
    "PolicyCheck",
    "parse_threshold",
]


# --- the policy ------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class Policy:
    """The promotion policy of a model: checks that must all pass.

    Args:
        checks: The checks; their names must be unique.

    Raises:
        InvalidParameter: When a check is not a :class:`Check` or two share a name.
    """

    checks: tuple[Check, ...]

    def __init__(self, checks: Iterable[Check] = ()) -> None:
        items = tuple(checks)
        seen: set[str] = set()
        for check in items:
            if not isinstance(check, Check):
                raise fail("checks", "a list of policy checks", check)
            if check.name in seen:
                raise InvalidParameter(
                    f"Two checks of the policy are named {check.name!r}; give one a 'name'."
                )
            seen.add(check.name)
        object.__setattr__(self, "checks", items)

    def evaluate(self, data: EvaluationData) -> list[CheckOutcome]:
        """Evaluate every check on one version's data, in order.

        Args:
            data: The version's evaluation data, reports and approvals.

        Returns:
            One outcome per check.
        """
        return [check.evaluate(data) for check in self.checks]

    @staticmethod
    def passed(outcomes: Iterable[CheckOutcome]) -> bool:
        """Whether every outcome passed (an empty policy passes)."""
        return all(o.passed for o in outcomes)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"checks": [{kind: ..., ...}, ...]}``."""
        return {"checks": [check.to_dict() for check in self.checks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Any]) -> Policy:
        """Build a policy from :meth:`to_dict`'s output, or from a bare list of entries.

        Raises:
            ModelError: When an entry is invalid; the message names the entry.
        """
        return cls._from_data(data, text=None)

    def to_yaml(self) -> str:
        """Return the policy as a YAML list of ``{kind: ..., ...}`` entries."""
        return yaml.safe_dump(self.to_dict()["checks"], sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str) -> Policy:
        """Parse a policy from YAML: a list of entries (or a mapping with ``checks``).

        Each entry is ``{kind: <alias>, <fields>}``; a string entry such as
        ``auc >= 0.85`` is a metric threshold. An empty document is an empty policy.

        Raises:
            ModelError: When the text does not parse, or an entry has no or an
                unknown kind, unknown or missing fields or bad values; the message
                names the entry (``#1`` is the first) and its line.
        """
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ModelError(f"The policy YAML does not parse{where}: {problem}.") from exc
        return cls._from_data([] if data is None else data, text=text)

    @classmethod
    def _from_data(cls, data: object, text: str | None) -> Policy:
        nested = isinstance(data, Mapping)
        if isinstance(data, Mapping):
            unknown = sorted(set(map(str, data)) - {"checks"})
            if unknown:
                raise ModelError(f"A policy mapping holds only 'checks'; got the keys {unknown}.")
            data = data.get("checks") or []
        if not isinstance(data, list | tuple):
            raise ModelError(
                "A policy must be a list of checks ({kind: ..., ...} entries). "
                f"Got {type(data).__name__} instead."
            )
        lines = _entry_lines(text, nested)
        checks = [
            _check_from_entry(entry, i, lines[i] if i < len(lines) else None)
            for i, entry in enumerate(data)
        ]
        try:
            return cls(checks)
        except InvalidParameter as exc:
            raise ModelError(f"Invalid policy: {exc}") from exc


def _entry_lines(text: str | None, nested: bool) -> list[int]:
    """1-based line of each entry of the policy list in ``text`` (best effort)."""
    if not text:
        return []
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if nested and isinstance(node, yaml.MappingNode):
        node = next((v for k, v in node.value if k.value == "checks"), None)
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def _check_from_entry(entry: object, index: int, line: int | None) -> PolicyCheck:
    where = f"Policy entry #{index + 1}" + (f" (line {line})" if line else "")
    if isinstance(entry, str):
        try:
            return parse_threshold(entry)
        except InvalidParameter as exc:
            raise ModelError(f"{where}: {exc}") from exc
    if not isinstance(entry, Mapping) or "kind" not in entry:
        raise ModelError(f"{where} must be a mapping with a 'kind'. Got {entry!r}.")
    kind = entry["kind"]
    cls = CHECK_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ModelError(
            f"{where} has unknown kind {kind!r}; expected one of {sorted(CHECK_KINDS)}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, entry)) - set(fields) - {"kind"})
    if unknown:
        raise ModelError(
            f"{where} ({kind}) has unknown field(s) {unknown}; expected {sorted(fields)}."
        )
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in entry
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ModelError(f"{where} ({kind}) is missing the field(s) {missing}.")
    kwargs = {str(k): v for k, v in entry.items() if k != "kind"}
    try:
        return cls(**kwargs)
    except InvalidParameter as exc:
        raise ModelError(f"{where} ({kind}) is invalid: {exc}") from exc
