"""Expectations: checks beyond the schema, declared in Python (``expect.*``) or YAML.

The kinds are here; the ``expect`` factories and the YAML form are in
:mod:`loopml.data._expect`.

Each kind is saved under a stable alias (``range``, ``in_set``, ``regex``, ``unique``,
``not_null_rate``, ``row_count``, ``freshness``, ``expression``, ``custom``), never
under its import path, so saved expectation files survive refactors. Checking is
streaming: :meth:`Expectation.start` returns a :class:`CheckRun` that is fed one
pandas frame per batch (its index holds the global row numbers) and then finished.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from loopml.data._checks import check_name_of, check_reference, import_path, resolve_check
from loopml.data._report import DEFAULT_SAMPLE_SIZE, CheckResult, FailureTally
from loopml.data._rules import rule_columns
from loopml.errors import InvalidParameter

__all__ = [
    "KINDS",
    "CheckRun",
    "Custom",
    "Expectation",
    "Expression",
    "Freshness",
    "InSet",
    "NotNullRate",
    "Range",
    "Regex",
    "RowCount",
    "Unique",
]

#: Every expectation kind by its stable alias; each subclass adds itself.
KINDS: dict[str, type[Expectation]] = {}


class CheckRun(Protocol):
    """One pass of a check over the batches of one dataset."""

    def update(self, frame: pd.DataFrame) -> None:
        """Look at one batch; ``frame.index`` holds the global row numbers."""

    def finish(self) -> CheckResult:
        """Return the result once every batch was seen."""


@dataclass(frozen=True, kw_only=True)
class Expectation(ABC):
    """Base of the expectation kinds; each subclass declares its stable ``kind`` alias."""

    kind: ClassVar[str]
    name: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            KINDS[cls.kind] = cls

    @property
    def checked_column(self) -> str | None:
        """The column checked, or ``None`` for table-wide checks."""
        column = getattr(self, "column", None)
        return column if isinstance(column, str) else None

    @property
    def columns_used(self) -> tuple[str, ...]:
        """The columns the check reads (empty for table-wide and custom checks)."""
        column = self.checked_column
        return () if column is None else (column,)

    @property
    def label(self) -> str:
        """The name shown in reports: ``name`` if given, else a description."""
        return self.name or self.describe()

    @abstractmethod
    def describe(self) -> str:
        """A short description, e.g. ``"range(age, 0, 120)"``."""

    @abstractmethod
    def start(self, sample_size: int = DEFAULT_SAMPLE_SIZE) -> CheckRun:
        """Begin checking a dataset."""

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML form: ``{"kind": alias, field: value, ...}`` (defaults left out)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def _result(
        self, passed: bool, tally: FailureTally | None = None, message: str = ""
    ) -> CheckResult:
        return CheckResult(
            name=self.label,
            kind=self.kind,
            column=self.checked_column,
            passed=passed,
            failing_count=tally.count if tally else 0,
            failing_sample=tally.sample if tally else [],
            message=message,
        )


class _RowRun:
    """Shared streaming logic for checks that judge each row on its own."""

    def __init__(self, owner: _RowExpectation, sample_size: int) -> None:
        self.owner = owner
        self.sample_size = sample_size
        self.tally = FailureTally(sample_size)
        self.absent: list[str] = []
        self.error = ""
        self.rows = 0

    def update(self, frame: pd.DataFrame) -> None:
        needed = self.owner.needed_columns(frame)
        absent = [c for c in needed if c not in frame.columns]
        if absent:
            self.absent = sorted(set(self.absent) | set(absent))
            return
        self.rows += len(frame)
        try:
            failing = np.asarray(self.owner.failing(frame), dtype=bool)
        except Exception as exc:  # a rule that cannot be evaluated fails; the report says why
            self.error = self.error or f"could not be evaluated: {type(exc).__name__}: {exc}"
            return
        count = int(failing.sum())
        if not count or not self.tally.wants_sample:
            self.tally.add(count)
            return
        rows = frame.index[failing][: self.sample_size]
        column = self.owner.checked_column
        if column is not None:
            self.tally.add(count, zip(rows, frame.loc[rows, column], strict=True))
        else:
            sub = frame.loc[rows, needed[:10]]
            self.tally.add_rows(count, zip(rows, sub.to_dict("records"), strict=True))

    def finish(self) -> CheckResult:
        if self.absent or self.error:
            problem = self.error or f"missing column(s): {self.absent}"
            return self.owner._result(False, self.tally, problem)
        passed = self.tally.count == 0
        return self.owner._result(passed, self.tally, self.owner.failure_message(self.tally.count))


@dataclass(frozen=True, kw_only=True)
class _RowExpectation(Expectation):
    def needed_columns(self, frame: pd.DataFrame) -> list[str]:
        column = self.checked_column
        return [] if column is None else [column]

    @abstractmethod
    def failing(self, frame: pd.DataFrame) -> Any:
        """A boolean array: ``True`` for rows that fail (missing values never fail)."""

    def failure_message(self, count: int) -> str:
        return f"{count} row(s) fail {self.describe()}" if count else ""

    def start(self, sample_size: int = DEFAULT_SAMPLE_SIZE) -> CheckRun:
        return _RowRun(self, sample_size)


def _present(series: pd.Series) -> np.ndarray[Any, Any]:
    return np.asarray(series.notna(), dtype=bool)


@dataclass(frozen=True, kw_only=True)
class Range(_RowExpectation):
    """Values of ``column`` lie in ``[min, max]`` (either bound may be ``None``)."""

    kind: ClassVar[str] = "range"
    column: str
    min: Any = None
    max: Any = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise InvalidParameter("A range expectation needs 'min', 'max' or both. Got neither.")

    def describe(self) -> str:
        return f"range({self.column}, {self.min}, {self.max})"

    def failing(self, frame: pd.DataFrame) -> Any:
        series = frame[self.column]
        ok = np.ones(len(series), dtype=bool)
        if self.min is not None:
            ok &= np.asarray((series >= self.min).fillna(True), dtype=bool)
        if self.max is not None:
            ok &= np.asarray((series <= self.max).fillna(True), dtype=bool)
        return ~ok & _present(series)


@dataclass(frozen=True, kw_only=True)
class InSet(_RowExpectation):
    """Values of ``column`` are among ``values``."""

    kind: ClassVar[str] = "in_set"
    column: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))

    def describe(self) -> str:
        shown = ", ".join(map(repr, self.values[:5])) + (", …" if len(self.values) > 5 else "")
        return f"in_set({self.column}, [{shown}])"

    def failing(self, frame: pd.DataFrame) -> Any:
        series = frame[self.column]
        return ~np.asarray(series.isin(list(self.values)), dtype=bool) & _present(series)


@dataclass(frozen=True, kw_only=True)
class Regex(_RowExpectation):
    """Values of ``column``, as text, contain a match of ``pattern`` (anchor it to match all)."""

    kind: ClassVar[str] = "regex"
    column: str
    pattern: str

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise InvalidParameter(
                f"The 'pattern' of a regex expectation must be a regular expression. "
                f"Got {self.pattern!r} instead ({exc})."
            ) from exc

    def describe(self) -> str:
        return f"regex({self.column}, {self.pattern!r})"

    def failing(self, frame: pd.DataFrame) -> Any:
        series = frame[self.column]
        present = _present(series)
        text = series.astype("str")
        matched = text.str.contains(self.pattern, regex=True, na=False)
        return ~np.asarray(matched, dtype=bool) & present


@dataclass(frozen=True, kw_only=True)
class Expression(_RowExpectation):
    """A rule across columns, e.g. ``"start_date <= end_date"``, evaluated vectorised.

    The rule is a pandas ``eval`` expression limited to columns (backtick-quote
    names with spaces), literals, arithmetic, comparisons and ``and``/``or``/``not``,
    with bounded size and cost (see :mod:`loopml.data._rules`).
    Rows where a column the rule uses is missing are not judged.
    """

    kind: ClassVar[str] = "expression"
    rule: str

    def __post_init__(self) -> None:
        rule_columns(self.rule)

    def describe(self) -> str:
        return f"rule({self.rule})"

    @property
    def columns_used(self) -> tuple[str, ...]:
        return tuple(rule_columns(self.rule))

    def needed_columns(self, frame: pd.DataFrame) -> list[str]:
        return rule_columns(self.rule)

    def failing(self, frame: pd.DataFrame) -> Any:
        names = self.needed_columns(frame)
        present = np.asarray(frame[names].notna().all(axis=1), dtype=bool)
        # DataFrame.eval resolves backtick-quoted names; empty dicts keep "@name" from
        # reaching the caller's variables.
        result = frame[names].eval(self.rule, engine="python", local_dict={}, global_dict={})
        if not isinstance(result, pd.Series):
            return np.full(len(frame), not bool(result)) & present
        ok = np.asarray(result.astype("boolean").fillna(True), dtype=bool)
        return ~ok & present


@dataclass(frozen=True, kw_only=True)
class Custom(_RowExpectation):
    """A Python function ``f(frame) -> bool Series | bool``, called once per batch.

    A Series marks failing rows with ``False``; a plain ``False`` fails the whole
    batch (all its rows count as failing). ``function`` is the function itself, or
    a reference to one: the name it was registered under
    (:func:`loopml.data.register_check`) or an import path ``"module:function"``.
    Saved to YAML by its registered name when it has one (else by import path).
    A reference is resolved only when checking starts, and an import path is
    imported only for callers that trust it (see :meth:`resolved`).
    """

    kind: ClassVar[str] = "custom"
    function: Callable[[pd.DataFrame], Any] | str

    def __post_init__(self) -> None:
        if isinstance(self.function, str):
            check_reference(self.function)
        elif not callable(self.function):
            raise InvalidParameter(
                "The 'function' of a custom expectation must be callable, a registered check "
                f"name or 'module:function'. Got {self.function!r} instead."
            )

    def describe(self) -> str:
        function = self.function
        if isinstance(function, str):
            return f"custom({function})"
        return f"custom({check_name_of(function) or getattr(function, '__name__', function)})"

    def resolved(self, *, trust: bool) -> Custom:
        """Return this check with its function looked up (a registered name) or imported.

        Raises:
            SchemaError: no check is registered under the name, or the path does not
                import to a callable.
            UntrustedCheckError: the function is an import path and ``trust`` is false.
        """
        if not isinstance(self.function, str):
            return self
        function = resolve_check(self.function, trust=trust)
        # The name keeps labelling the check in reports, whatever the function is called.
        return dataclasses.replace(self, function=function, name=self.name or self.describe())

    def needed_columns(self, frame: pd.DataFrame) -> list[str]:
        return list(frame.columns)

    def failing(self, frame: pd.DataFrame) -> Any:
        assert callable(self.function)
        result = self.function(frame)
        if isinstance(result, pd.Series):
            return ~np.asarray(result.astype("boolean").fillna(True), dtype=bool)
        return np.full(len(frame), not bool(result))

    def start(self, sample_size: int = DEFAULT_SAMPLE_SIZE) -> CheckRun:
        return _RowRun(self.resolved(trust=False), sample_size)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        function = self.function
        if not isinstance(function, str):
            out["function"] = check_name_of(function) or import_path(function)
        return out


class _UniqueRun:
    """Finds rows whose key already appeared, across batches, by keeping 64-bit key hashes.

    The hashes seen so far are kept as a few sorted runs of roughly doubling sizes
    (as in a log-structured merge): a batch is looked up in each run with a binary
    search, then added as a new run, merging runs of similar size. Each hash is
    merged O(log(rows / batch)) times, so 10M rows cost seconds, not minutes.
    """

    def __init__(self, owner: Unique, sample_size: int) -> None:
        self.owner = owner
        self.sample_size = sample_size
        self.tally = FailureTally(sample_size)
        self.runs: list[np.ndarray[Any, np.dtype[np.uint64]]] = []
        self.absent: list[str] = []

    def update(self, frame: pd.DataFrame) -> None:
        columns = list(self.owner.columns)
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            self.absent = sorted(set(self.absent) | set(absent))
            return
        keys = frame[columns]
        complete = np.asarray(keys.notna().all(axis=1), dtype=bool)
        if not complete.all():
            keys = keys[complete]
        hashes = np.asarray(pd.util.hash_pandas_object(keys, index=False), dtype=np.uint64)
        repeated = np.array(pd.Series(hashes).duplicated(keep="first"), dtype=bool)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]  # sorted queries make the binary searches cache-friendly
        seen = np.zeros(len(ordered), dtype=bool)
        for run in self.runs:
            pos = np.minimum(np.searchsorted(run, ordered), len(run) - 1)
            seen |= run[pos] == ordered
        repeated[order[seen]] = True
        count = int(repeated.sum())
        if count and not self.tally.wants_sample:
            self.tally.add(count)
        elif count:
            rows = keys.index[repeated][: self.sample_size]
            if len(columns) == 1:
                self.tally.add(count, zip(rows, keys.loc[rows, columns[0]], strict=True))
            else:
                records = keys.loc[rows].to_dict("records")
                self.tally.add_rows(count, zip(rows, records, strict=True))
        if len(ordered):
            run = ordered
            while self.runs and len(self.runs[-1]) <= 2 * len(run):
                # a stable sort of two sorted runs is a linear merge
                run = np.sort(np.concatenate([self.runs.pop(), run]), kind="stable")
            self.runs.append(run)

    def finish(self) -> CheckResult:
        if self.absent:
            return self.owner._result(False, self.tally, f"missing column(s): {self.absent}")
        count = self.tally.count
        message = f"{count} row(s) repeat a key seen in an earlier row" if count else ""
        return self.owner._result(count == 0, self.tally, message)


@dataclass(frozen=True, kw_only=True)
class Unique(Expectation):
    """No two rows share the same value of ``columns`` (combined when several).

    Rows with a missing key value are not compared. A duplicate's *repeats* fail
    (the first occurrence of a key does not), as in ``DataFrame.duplicated()``.
    """

    kind: ClassVar[str] = "unique"
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        columns = (self.columns,) if isinstance(self.columns, str) else tuple(self.columns)
        if not columns:
            raise InvalidParameter("A unique expectation needs at least one column. Got none.")
        object.__setattr__(self, "columns", columns)

    @property
    def checked_column(self) -> str | None:
        return self.columns[0] if len(self.columns) == 1 else None

    @property
    def columns_used(self) -> tuple[str, ...]:
        return self.columns

    def describe(self) -> str:
        return f"unique({', '.join(self.columns)})"

    def start(self, sample_size: int = DEFAULT_SAMPLE_SIZE) -> CheckRun:
        return _UniqueRun(self, sample_size)


class _NotNullRun(_RowRun):
    def finish(self) -> CheckResult:
        owner = self.owner
        assert isinstance(owner, NotNullRate)
        if self.absent or self.error:
            return super().finish()
        rate = 1.0 if self.rows == 0 else 1 - self.tally.count / self.rows
        passed = rate >= owner.min_rate
        message = f"not-null rate {rate:.4f} (minimum {owner.min_rate})"
        return owner._result(passed, self.tally, message)


@dataclass(frozen=True, kw_only=True)
class NotNullRate(_RowExpectation):
    """At least ``min_rate`` (0 to 1) of the values of ``column`` are present; missing ones fail."""

    kind: ClassVar[str] = "not_null_rate"
    column: str
    min_rate: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_rate <= 1.0:
            raise InvalidParameter(
                f"The 'min_rate' of a not_null_rate expectation must be within [0, 1]. "
                f"Got {self.min_rate!r} instead."
            )

    def describe(self) -> str:
        return f"not_null_rate({self.column}, >= {self.min_rate})"

    def failing(self, frame: pd.DataFrame) -> Any:
        return np.asarray(frame[self.column].isna(), dtype=bool)

    def start(self, sample_size: int = DEFAULT_SAMPLE_SIZE) -> CheckRun:
        return _NotNullRun(self, sample_size)


class _RowCountRun:
    def __init__(self, owner: RowCount) -> None:
        self.owner = owner
        self.rows = 0

    def update(self, frame: pd.DataFrame) -> None:
        self.rows += len(frame)

    def finish(self) -> CheckResult:
        low, high = self.owner.min, self.owner.max
        passed = (low is None or self.rows >= low) and (high is None or self.rows <= high)
        return self.owner._result(passed, message=f"{self.rows} rows (expected {low}..{high})")


@dataclass(frozen=True, kw_only=True)
class RowCount(Expectation):
    """The dataset has between ``min`` and ``max`` rows (inclusive; ``None`` = unbounded)."""

    kind: ClassVar[str] = "row_count"
    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        for bound in (self.min, self.max):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                raise InvalidParameter(
                    f"The bounds of a row_count expectation must be integers or None. "
                    f"Got {bound!r} instead."
                )

    def describe(self) -> str:
        return f"row_count({self.min}..{self.max})"

    def start(self, sample_size: int = DEFAULT_SAMPLE_SIZE) -> CheckRun:
        return _RowCountRun(self)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*$")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: str | _dt.timedelta) -> _dt.timedelta:
    """Parse ``"1d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"`` (or pass a timedelta through)."""
    if isinstance(value, _dt.timedelta):
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise InvalidParameter(
            f"The 'max_age' parameter must be a duration like '1d', '12h', '30m', '45s' or "
            f"'2w', or a timedelta. Got {value!r} instead."
        )
    return _dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class _FreshRun:
    def __init__(self, owner: Freshness) -> None:
        self.owner = owner
        self.latest: pd.Timestamp | None = None
        self.absent = False

    def update(self, frame: pd.DataFrame) -> None:
        if self.owner.column not in frame.columns:
            self.absent = True
            return
        latest: Any = pd.to_datetime(frame[self.owner.column]).max()
        if not pd.isna(latest):
            stamp = pd.Timestamp(latest)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
            self.latest = stamp if self.latest is None else max(self.latest, stamp)

    def finish(self) -> CheckResult:
        owner = self.owner
        if self.absent:
            return owner._result(False, message=f"missing column(s): {[owner.column]}")
        if self.latest is None:
            return owner._result(False, message=f"no values in {owner.column!r}")
        age = pd.Timestamp.now(tz="UTC") - self.latest
        passed = age <= pd.Timedelta(parse_duration(owner.max_age))
        message = f"latest value {self.latest.isoformat()} is {age} old (max {owner.max_age})"
        return owner._result(passed, message=message)


@dataclass(frozen=True, kw_only=True)
class Freshness(Expectation):
    """The newest value of timestamp ``column`` is at most ``max_age`` old (naive = UTC)."""

    kind: ClassVar[str] = "freshness"
    column: str
    max_age: str

    def __post_init__(self) -> None:
        age = parse_duration(self.max_age)
        if not isinstance(self.max_age, str):
            object.__setattr__(self, "max_age", f"{int(age.total_seconds())}s")

    def describe(self) -> str:
        return f"freshness({self.column}, {self.max_age})"

    def start(self, sample_size: int = DEFAULT_SAMPLE_SIZE) -> CheckRun:
        return _FreshRun(self)
