"""Validation reports: per-check results, schema differences, JSON and HTML renderings."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from loopml._html import Section, clip, html_table, number
from loopml._urls import redact_url

if TYPE_CHECKING:
    from loopml.data._profile import ColumnProfile, Profile

__all__ = [
    "DEFAULT_SAMPLE_SIZE",
    "CheckResult",
    "FailureTally",
    "SchemaDiff",
    "ValidationReport",
    "jsonable",
]

DEFAULT_SAMPLE_SIZE = 10
"""How many failing rows a check keeps as its sample."""

_REPORT_FORMAT = 1


def jsonable(value: object) -> Any:
    """Turn a value read from data into something ``json.dumps`` writes as standard JSON.

    Missing values (``None``, ``NaN``, ``pd.NA``, ``NaT``) become ``None``; NumPy
    scalars become Python numbers; infinities, timestamps and anything else become
    strings (``"inf"``, ISO 8601, ``str(value)``).
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else str(value)
    item = getattr(value, "item", None)  # NumPy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return jsonable(item())
    if _is_missing(value):
        return None
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _is_missing(value: object) -> bool:
    # NaT compares unequal to itself; pd.NA refuses to be a bool.
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return type(value).__name__ == "NAType"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check (a schema rule or an expectation).

    Attributes:
        name: A readable, unique-ish name, e.g. ``"age: in_range(0, 120)"``.
        kind: The check's stable kind, e.g. ``"in_range"``, ``"not_nullable"``, ``"regex"``.
        column: The column checked, or ``None`` for table-wide checks.
        passed: Whether the data satisfied the check.
        failing_count: How many rows failed (0 for table-wide checks like ``row_count``).
        failing_sample: Up to 10 failing rows: ``{"row": global row number, "value": ...}``
            for column checks, ``{"row": n, "values": {column: value}}`` for row rules.
        message: One line for people: why the check failed, or what it checked.
    """

    name: str
    kind: str
    column: str | None
    passed: bool
    failing_count: int = 0
    failing_sample: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "name": self.name,
            "kind": self.kind,
            "column": self.column,
            "passed": self.passed,
            "failing_count": self.failing_count,
            "failing_sample": [dict(row) for row in self.failing_sample],
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """Rebuild a result from :meth:`to_dict` output."""
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            column=data.get("column"),
            passed=bool(data["passed"]),
            failing_count=int(data.get("failing_count", 0)),
            failing_sample=[dict(row) for row in data.get("failing_sample", [])],
            message=str(data.get("message", "")),
        )


class FailureTally:
    """Counts failing rows of one check across batches and keeps the first few as a sample."""

    def __init__(self, sample_size: int = DEFAULT_SAMPLE_SIZE) -> None:
        self.count = 0
        self.sample: list[dict[str, Any]] = []
        self._room = sample_size

    @property
    def wants_sample(self) -> bool:
        """Whether more sample rows would still be kept."""
        return len(self.sample) < self._room

    def add(self, count: int, rows: Iterable[tuple[int, object]] = ()) -> None:
        """Add ``count`` failures; ``rows`` are ``(global row, value)`` pairs, in row order."""
        self.count += count
        for row, value in rows:
            if not self.wants_sample:
                break
            self.sample.append({"row": int(row), "value": jsonable(value)})

    def add_rows(self, count: int, rows: Iterable[tuple[int, Mapping[Any, object]]]) -> None:
        """Like :meth:`add`, for rules over several columns: values are ``{column: value}``."""
        self.count += count
        for row, values in rows:
            if not self.wants_sample:
                break
            self.sample.append(
                {"row": int(row), "values": {str(k): jsonable(v) for k, v in values.items()}}
            )


@dataclass(frozen=True)
class SchemaDiff:
    """How the data's columns differ from the schema's.

    Attributes:
        missing: Columns the schema has and the data lacks.
        extra: Columns the data has and the schema lacks.
        retyped: ``{column: {"expected": arrow type, "got": arrow type}}``.
    """

    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    retyped: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Whether the columns match exactly (names and types)."""
        return not (self.missing or self.extra or self.retyped)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "missing": list(self.missing),
            "extra": list(self.extra),
            "retyped": {k: dict(v) for k, v in self.retyped.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SchemaDiff:
        """Rebuild a diff from :meth:`to_dict` output."""
        return cls(
            missing=tuple(data.get("missing", ())),
            extra=tuple(data.get("extra", ())),
            retyped={str(k): dict(v) for k, v in data.get("retyped", {}).items()},
        )


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`loopml.data.validate` found.

    Attributes:
        passed: ``True`` when every check passed.
        checks: One result per schema rule and expectation, in a stable order.
        schema_diff: Missing, extra and retyped columns (empty without a schema).
        row_count: Rows read.
        source: What was validated (``Source.description``).
        against: The dataset reference validated against (``"credit@latest"``), if any.
        created_at: When the report was made, ISO 8601 in UTC.

    Example:
        >>> report = ValidationReport(passed=True, checks=(), schema_diff=SchemaDiff(),
        ...                           row_count=0, source="DataFrame(0 rows x 0 columns)")
        >>> ValidationReport.from_dict(report.to_dict()) == report
        True
    """

    passed: bool
    checks: tuple[CheckResult, ...]
    schema_diff: SchemaDiff
    row_count: int
    source: str
    against: str | None = None
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat())

    def __post_init__(self) -> None:
        # A report is stored and shown: a source URL never keeps its credentials in it
        # (reports stored before sources were redacted included).
        object.__setattr__(self, "source", redact_url(self.source))

    @property
    def failed_checks(self) -> tuple[CheckResult, ...]:
        """The checks that did not pass."""
        return tuple(c for c in self.checks if not c.passed)

    def __repr__(self) -> str:
        # Short: every check carries a sample of failing rows.
        failed = self.failed_checks
        against = f" against {clip(self.against)}" if self.against else ""
        if failed:
            names = clip(", ".join(c.name for c in failed))
            outcome = f"failed {len(failed)} of {len(self.checks)} checks ({names})"
        else:
            outcome = f"passed {len(self.checks)} checks"
        return f"<ValidationReport {outcome}, {number(self.row_count)} rows{against}>"

    def _repr_html_(self) -> str:
        diff = self.schema_diff
        checks = [
            (c.name, "passed" if c.passed else "FAILED", number(c.failing_count), c.message)
            for c in sorted(self.checks, key=lambda c: c.passed)  # failures first
        ]
        retyped = [f"{k} ({v.get('expected')} → {v.get('got')})" for k, v in diff.retyped.items()]
        return html_table(
            "ValidationReport",
            [
                ("outcome", "passed" if self.passed else f"{len(self.failed_checks)} failed"),
                ("rows", number(self.row_count)),
                ("source", self.source),
                ("against", self.against),
                ("missing columns", ", ".join(diff.missing) or None),
                ("extra columns", ", ".join(diff.extra) or None),
                ("retyped columns", ", ".join(retyped) or None),
                ("created", self.created_at),
            ],
            Section("Checks", ("check", "outcome", "failing rows", "message"), checks),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (see :meth:`from_dict`)."""
        return {
            "format": _REPORT_FORMAT,
            "passed": self.passed,
            "row_count": self.row_count,
            "source": self.source,
            "against": self.against,
            "created_at": self.created_at,
            "schema_diff": self.schema_diff.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        """Rebuild a report from :meth:`to_dict` (or parsed :meth:`to_json`) output."""
        return cls(
            passed=bool(data["passed"]),
            checks=tuple(CheckResult.from_dict(c) for c in data.get("checks", ())),
            schema_diff=SchemaDiff.from_dict(data.get("schema_diff", {})),
            row_count=int(data["row_count"]),
            source=str(data["source"]),
            against=data.get("against"),
            created_at=str(data["created_at"]),
        )

    def to_json(self, indent: int | None = 2) -> str:
        """Return the report as standard JSON text (no ``NaN``/``Infinity``)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ValidationReport:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def to_html(self, profile: Profile | None = None) -> str:
        """Render the report as one self-contained HTML page.

        The page carries its CSS inline and draws charts as inline SVG; it loads
        nothing from the network and runs no script. Values from the data are
        HTML-escaped.

        Args:
            profile: The profile of the validated data; when given, the page adds a
                section per column with statistics and a bar chart (histogram for
                numeric columns, most frequent values otherwise).

        Returns:
            The HTML document.
        """
        import jinja2  # imported here: only the HTML rendering needs it

        template_text = (
            resources.files("loopml.data")
            .joinpath("templates", "report.html.j2")
            .read_text(encoding="utf-8")
        )
        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        template = env.from_string(template_text)
        columns = [_column_view(c) for c in profile.columns.values()] if profile else []
        return template.render(report=self, columns=columns, profile=profile)


# --- charts ------------------------------------------------------------------

_CHART_W = 320
_CHART_H = 120
_LABEL_W = 110


def _column_view(column: ColumnProfile) -> dict[str, Any]:
    """Pre-compute what the template shows for one profiled column (stats and chart)."""
    stats: list[tuple[str, str]] = [
        ("type", column.arrow_type),
        ("kind", column.kind),
        ("values", str(column.count)),
        ("missing", str(column.missing)),
        ("distinct", f"{column.distinct}{'' if column.distinct_exact else ' (approx.)'}"),
    ]
    for label, value in (("min", column.min), ("max", column.max)):
        if value is not None:
            stats.append((label, _fmt(value)))
    for label, value in (("mean", column.mean), ("std", column.std)):
        if value is not None:
            stats.append((label, _fmt(value)))
    chart: dict[str, Any] | None = None
    if column.histogram is not None and column.histogram.counts:
        edges, counts = column.histogram.edges, column.histogram.counts
        chart = _vertical_bars(
            [f"{_fmt(edges[i])} to {_fmt(edges[i + 1])}: {c}" for i, c in enumerate(counts)],
            list(counts),
            first=_fmt(edges[0]),
            last=_fmt(edges[-1]),
        )
    elif column.top_k:
        chart = _horizontal_bars(column.top_k[:10])
    return {"name": column.name, "stats": stats, "chart": chart}


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _vertical_bars(titles: list[str], counts: list[int], first: str, last: str) -> dict[str, Any]:
    top = max(counts) or 1
    width = _CHART_W / len(counts)
    bars = []
    for i, (title, count) in enumerate(zip(titles, counts, strict=True)):
        height = (_CHART_H - 20) * count / top
        bars.append(
            {
                "x": round(i * width + 1, 2),
                "y": round(_CHART_H - 16 - height, 2),
                "w": round(max(width - 2, 1), 2),
                "h": round(height, 2),
                "title": title,
            }
        )
    return {
        "kind": "histogram",
        "width": _CHART_W,
        "height": _CHART_H,
        "bars": bars,
        "first": first,
        "last": last,
    }


def _horizontal_bars(top_k: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    top = max(count for _, count in top_k) or 1
    row_h = 16
    bars = []
    for i, (value, count) in enumerate(top_k):
        label = value if len(value) <= 16 else value[:15] + "…"
        bars.append(
            {
                "y": i * row_h,
                "w": round((_CHART_W - _LABEL_W - 40) * count / top, 2),
                "label": label,
                "count": count,
                "title": f"{value}: {count}",
            }
        )
    return {
        "kind": "top_k",
        "width": _CHART_W,
        "height": row_h * len(bars),
        "label_w": _LABEL_W,
        "row_h": row_h,
        "bars": bars,
    }
