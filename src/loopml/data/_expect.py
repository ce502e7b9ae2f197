"""The ``expect`` factories and the YAML form of expectation lists.

The expectation kinds themselves live in :mod:`loopml.data._expectations`; this
module builds them (``expect.between(...)``) and saves and loads them under their
stable aliases.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from loopml.data._expectations import (
    KINDS,
    Custom,
    Expectation,
    Expression,
    Freshness,
    InSet,
    NotNullRate,
    Range,
    Regex,
    RowCount,
    Unique,
)
from loopml.data._schema import dump_yaml, load_yaml, yaml_line
from loopml.errors import InvalidParameter, SchemaError, UnknownColumnError

__all__ = [
    "check_expectation_columns",
    "expect",
    "expectations_from_yaml",
    "expectations_to_yaml",
]

EXPECTATIONS_FORMAT = 1


class _Expect:
    """Factories for expectations, used as ``loopml.data.expect``.

    Example:
        >>> checks = [expect.between("age", 0, 120), expect.unique("id"), expect.rule("lo <= hi")]
        >>> expectations_from_yaml(expectations_to_yaml(checks)) == checks
        True
    """

    def between(
        self, column: str, min: Any = None, max: Any = None, *, name: str | None = None
    ) -> Range:
        """Values of ``column`` lie in ``[min, max]`` (missing values pass)."""
        return Range(column=column, min=min, max=max, name=name)

    def in_set(self, column: str, values: Sequence[Any], *, name: str | None = None) -> InSet:
        """Values of ``column`` are among ``values``."""
        return InSet(column=column, values=tuple(values), name=name)

    def matches(self, column: str, pattern: str, *, name: str | None = None) -> Regex:
        """Values of ``column`` contain a match of regex ``pattern`` (``re.search``)."""
        return Regex(column=column, pattern=pattern, name=name)

    def unique(self, *columns: str, name: str | None = None) -> Unique:
        """No two rows share the values of ``columns``."""
        return Unique(columns=columns, name=name)

    def not_null_rate(
        self, column: str, min_rate: float = 1.0, *, name: str | None = None
    ) -> NotNullRate:
        """At least ``min_rate`` of ``column``'s values are present."""
        return NotNullRate(column=column, min_rate=min_rate, name=name)

    def row_count(
        self, min: int | None = None, max: int | None = None, *, name: str | None = None
    ) -> RowCount:
        """The dataset has between ``min`` and ``max`` rows."""
        return RowCount(min=min, max=max, name=name)

    def fresh(
        self, column: str, max_age: str | _dt.timedelta, *, name: str | None = None
    ) -> Freshness:
        """The newest value of ``column`` is at most ``max_age`` old (``"1d"``, ``"6h"``…)."""
        return Freshness(column=column, max_age=max_age, name=name)  # type: ignore[arg-type]

    def rule(self, rule: str, *, name: str | None = None) -> Expression:
        """A vectorised rule across columns, e.g. ``"start_date <= end_date"``."""
        return Expression(rule=rule, name=name)

    def custom(
        self, function: Callable[[pd.DataFrame], Any] | str, *, name: str | None = None
    ) -> Custom:
        """A function ``f(frame) -> bool Series | bool`` (or its ``"module:function"`` path)."""
        return Custom(function=function, name=name)


expect = _Expect()
"""The expectation factories, e.g. ``expect.between("age", 0, 120)``."""


def expectations_to_yaml(expectations: Sequence[Expectation]) -> str:
    """Return YAML for a list of expectations (see :func:`expectations_from_yaml`).

    Raises:
        SchemaError: When a custom expectation's function has no import path.
    """
    entries = [e.to_dict() for e in expectations]
    data = {"version": EXPECTATIONS_FORMAT, "expectations": entries}
    return dump_yaml(data)


def expectations_from_yaml(text: str) -> list[Expectation]:
    """Parse a list of expectations from YAML.

    The text is either a list of entries or a mapping with an ``expectations`` list;
    each entry has a ``kind`` (a stable alias) and that kind's fields, e.g.
    ``{kind: range, column: age, min: 0, max: 120}``. Custom functions are imported
    from their ``module:function`` path.

    Raises:
        SchemaError: When the text does not parse, or an entry is invalid; the
            message names the entry (its position and line).
    """
    data = load_yaml(text, what="expectations")
    path: tuple[str | int, ...] = ()
    if isinstance(data, Mapping):
        if "expectations" not in data:
            raise SchemaError(
                "Expectations YAML must hold a list of entries or an 'expectations' list."
            )
        if data.get("version", EXPECTATIONS_FORMAT) != EXPECTATIONS_FORMAT:
            raise SchemaError(f"Unsupported expectations version {data.get('version')!r}.")
        data, path = data.get("expectations"), ("expectations",)
    if data is None:
        return []
    if not isinstance(data, list):
        raise SchemaError(f"Expectations YAML must hold a list of entries{yaml_line(text, path)}.")
    return [_from_entry(entry, i, text, path) for i, entry in enumerate(data)]


def _from_entry(entry: object, index: int, text: str, path: tuple[str | int, ...]) -> Expectation:
    where = f"Expectation #{index + 1}{yaml_line(text, (*path, index))}"
    if not isinstance(entry, Mapping) or "kind" not in entry:
        raise SchemaError(f"{where} must be a mapping with a 'kind'. Got {entry!r}.")
    kind = entry["kind"]
    cls = KINDS.get(kind)
    if cls is None:
        raise SchemaError(f"{where} has unknown kind {kind!r}; expected one of {sorted(KINDS)}.")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, entry)) - fields - {"kind"})
    if unknown:
        raise SchemaError(
            f"{where} ({kind}) has unknown field(s) {unknown}; expected {sorted(fields)}."
        )
    kwargs: dict[str, Any] = {
        str(k): tuple(v) if isinstance(v, list) else v for k, v in entry.items() if k != "kind"
    }
    try:
        return cls(**kwargs)
    except SchemaError as exc:
        raise SchemaError(f"{where} ({kind}): {exc}") from exc
    except (InvalidParameter, TypeError) as exc:
        raise SchemaError(f"{where} ({kind}) is invalid: {exc}") from exc


def check_expectation_columns(expectations: Sequence[Expectation], columns: Sequence[str]) -> None:
    """Refuse expectations that read a column not among ``columns``.

    Such a check could only fail every validation, so it is refused when saved.

    Args:
        expectations: The checks to save.
        columns: The dataset's columns.

    Raises:
        UnknownColumnError: An expectation names an unknown column; the message
            names the expectation, the column and the columns that exist.
    """
    known = set(columns)
    for number, expectation in enumerate(expectations, start=1):
        unknown = tuple(c for c in expectation.columns_used if c not in known)
        if unknown:
            raise UnknownColumnError(
                f"Expectation #{number} ({expectation.label}) names column(s) {list(unknown)} "
                f"that the dataset does not have; its columns are {list(columns)}.",
                columns=unknown,
                known=tuple(columns),
            )
