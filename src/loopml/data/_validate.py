"""Streaming validation of batches against a schema (pandera) and expectations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopml.data._expectations import CheckRun, Custom, Expectation, Unique
from loopml.data._report import (
    DEFAULT_SAMPLE_SIZE,
    CheckResult,
    FailureTally,
    SchemaDiff,
    ValidationReport,
)
from loopml.data._schema import ColumnSchema, DatasetSchema

if TYPE_CHECKING:
    import pandera.pandas as pa_pandas

__all__ = ["COMPATIBLE_TYPES", "schema_diff", "to_frame", "validate_batches"]

_TYPES_MAPPER: dict[pa.DataType, Any] = {
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def to_frame(batch: pa.RecordBatch, offset: int = 0) -> pd.DataFrame:
    """Convert a normalised batch to the pandas frame checks see.

    Integers and booleans keep their type when values are missing (pandas'
    nullable ``Int64``/``boolean``); the index holds global row numbers from ``offset``.
    """
    frame: pd.DataFrame = batch.to_pandas(types_mapper=_TYPES_MAPPER.get)
    frame.index = pd.RangeIndex(offset, offset + len(frame))
    return frame


#: (schema type, data type) pairs checked by converting the data rather than
#: reported as retyped: integers where floats are expected, and floats where
#: integers are expected (integers with missing values often arrive as floats;
#: each value that is not a whole number fails the column's type check).
COMPATIBLE_TYPES = frozenset({("double", "int64"), ("int64", "double")})


def schema_diff(schema: DatasetSchema, data_schema: pa.Schema) -> SchemaDiff:
    """Compare the data's Arrow schema with ``schema``: missing, extra and retyped columns.

    Type pairs in :data:`COMPATIBLE_TYPES` are not differences: their values are
    checked one by one instead.
    """
    expected = schema.columns
    got = {f.name: str(f.type) for f in data_schema}
    return SchemaDiff(
        missing=tuple(n for n in expected if n not in got),
        extra=tuple(n for n in got if n not in expected),
        retyped={
            n: {"expected": t, "got": got[n]}
            for n, t in expected.items()
            if n in got and got[n] != t and (t, got[n]) not in COMPATIBLE_TYPES
        },
    )


def _as_integers(series: pd.Series) -> tuple[pd.Series, np.ndarray[Any, Any]]:
    """A float column as pandas ``Int64`` and the mask of values that are not whole numbers.

    Values that are not whole numbers (or beyond int64) become missing in the
    result, so that the column's other rules judge only the convertible ones.
    """
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    present = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values) & (values == np.trunc(values)) & (np.abs(values) < 2.0**63)
    failing = present & ~whole
    kept = np.where(whole, values, np.nan)
    converted = pd.Series(pd.array(kept, dtype="Float64"), index=series.index).astype("Int64")
    return converted, failing


class _SchemaRun:
    """Runs the pandera schema batch by batch and tallies its failures per rule."""

    def __init__(self, schema: DatasetSchema, sample_size: int) -> None:
        self.schema = schema
        self.sample_size = sample_size
        self.diff: SchemaDiff | None = None
        self.converted: dict[str, str] = {}
        self.pandera: pa_pandas.DataFrameSchema | None = None
        self.tallies: dict[tuple[str, str], FailureTally] = {}
        self.errors: dict[tuple[str, str], str] = {}
        keys: list[tuple[str, ...]] = [(c.name,) for c in schema.column_schemas if c.unique]
        keys += list(schema.unique_together)
        self.unique_runs: list[CheckRun] = [Unique(columns=k).start(sample_size) for k in keys]

    def start(self, data_schema: pa.Schema) -> None:
        self.diff = schema_diff(self.schema, data_schema)
        types = {f.name: str(f.type) for f in data_schema}
        self.converted = {
            n: t for n, t in self.schema.columns.items() if (t, types.get(n)) in COMPATIBLE_TYPES
        }
        # Missing and retyped columns are reported by the diff; pandera checks the rest,
        # so that one absent column does not stop the others from being checked.
        comparable = [
            n
            for n in self.schema.columns
            if n not in self.diff.missing and n not in self.diff.retyped
        ]
        self.pandera = self.schema.pandera_for(comparable)

    def update(self, frame: pd.DataFrame) -> None:
        # pandera's own validate(lazy=True) builds its failure report row by row in
        # Python (about 40 s for 1M rows x 25 columns when half the values fail), so
        # the schema's pandera checks are called directly on each column: they are
        # vectorised, and only counts and a bounded sample are kept.
        assert self.pandera is not None
        for name, column in self.pandera.columns.items():
            series = self._converted(name, frame[name])
            if not column.nullable:
                self._tally((name, "not_nullable"), series, np.asarray(series.isna(), dtype=bool))
            for number, check in enumerate(column.checks):
                try:
                    output = check(series).check_output
                except Exception as exc:  # e.g. a range on a text column, from an edited schema
                    self.errors.setdefault((name, str(number)), f"{type(exc).__name__}: {exc}")
                    continue
                if isinstance(output, pd.Series):
                    passed = np.asarray(output.fillna(True), dtype=bool)
                    self._tally((name, str(number)), series, ~passed, output.index)
                elif not bool(output):
                    self._tally((name, str(number)), series, np.ones(len(series), dtype=bool))
        for run in self.unique_runs:
            run.update(frame)

    def _converted(self, name: str, series: pd.Series) -> pd.Series:
        """The column as the schema's type (see :data:`COMPATIBLE_TYPES`)."""
        target = self.converted.get(name)
        if target == "double":
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            return pd.Series(values, index=series.index, name=name)
        if target == "int64":
            converted, failing = _as_integers(series)
            self._tally((name, "integral"), series, failing)
            return converted
        return series

    def _tally(
        self,
        key: tuple[str, str],
        series: pd.Series,
        failing: np.ndarray[Any, Any],
        index: pd.Index | None = None,
    ) -> None:
        count = int(failing.sum())
        if not count:
            return
        tally = self.tallies.setdefault(key, FailureTally(self.sample_size))
        rows = (series.index if index is None else index)[failing][: self.sample_size]
        tally.add(count, zip(rows, series.loc[rows], strict=True))

    def finish(self, rows: int) -> list[CheckResult]:
        diff = self.diff or SchemaDiff(missing=tuple(self.schema.columns))
        results: list[CheckResult] = []
        for name in diff.missing:
            results.append(
                CheckResult(
                    f"{name}: present",
                    "column_present",
                    name,
                    False,
                    rows,
                    [],
                    f"column {name!r} is missing",
                )
            )
        for name, types in diff.retyped.items():
            results.append(
                CheckResult(
                    f"{name}: type {types['expected']}",
                    "type",
                    name,
                    False,
                    rows,
                    [],
                    f"expected {types['expected']}, got {types['got']}",
                )
            )
        if self.schema.strict:
            for name in diff.extra:
                results.append(
                    CheckResult(
                        f"{name}: not in schema",
                        "no_extra_column",
                        name,
                        False,
                        rows,
                        [],
                        f"column {name!r} is not in the (strict) schema",
                    )
                )
        skipped = set(diff.missing) | set(diff.retyped)
        for spec in self.schema.column_schemas:
            if spec.name not in skipped:
                results.extend(self._column_results(spec))
        results.extend(run.finish() for run in self.unique_runs)
        return results

    def _column_results(self, spec: ColumnSchema) -> list[CheckResult]:
        rules: list[tuple[str, str, str]] = []
        if self.converted.get(spec.name) == "int64":
            rules.append(("integral", "type", f"{spec.name}: type int64 (whole numbers)"))
        if not spec.nullable:
            rules.append(("not_nullable", "not_nullable", f"{spec.name}: not null"))
        number = 0
        if spec.min is not None or spec.max is not None:
            rules.append(
                (str(number), "in_range", f"{spec.name}: in_range({spec.min}, {spec.max})")
            )
            number += 1
        if spec.allowed is not None:
            shown = ", ".join(map(repr, spec.allowed[:5])) + (
                ", …" if len(spec.allowed) > 5 else ""
            )
            rules.append((str(number), "isin", f"{spec.name}: isin([{shown}])"))
            number += 1
        if spec.pattern is not None:
            rules.append((str(number), "pattern", f"{spec.name}: pattern {spec.pattern!r}"))
        results = []
        for key, kind, name in rules:
            tally = self.tallies.get((spec.name, key), FailureTally(0))
            error = self.errors.get((spec.name, key))
            message = f"{tally.count} row(s) fail" if tally.count else ""
            message = f"could not be evaluated: {error}" if error else message
            passed = tally.count == 0 and error is None
            results.append(
                CheckResult(name, kind, spec.name, passed, tally.count, tally.sample, message)
            )
        return results


def validate_batches(
    batches: Iterable[pa.RecordBatch],
    schema: DatasetSchema | None,
    expectations: Sequence[Expectation],
    source: str,
    against: str | None = None,
    *,
    data_schema: pa.Schema | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    trust: bool = False,
) -> ValidationReport:
    """Check batches against a schema and expectations, one batch in memory at a time.

    Schema rules run through pandera on each batch; uniqueness, row counts,
    not-null rates and freshness are aggregated across batches, so the result does
    not depend on how the data was split.

    Args:
        batches: Normalised Arrow record batches (see ``loopml.data._sources``).
        schema: The schema to check against, or ``None`` for expectations only.
        expectations: Further checks (``loopml.data.expect``).
        source: What is being validated, for the report (``Source.description``).
        against: The dataset reference validated against, for the report.
        data_schema: The batches' Arrow schema; needed for the schema diff when
            ``batches`` may be empty (otherwise taken from the first batch).
        sample_size: How many failing rows each check keeps.
        trust: Import custom checks that name a ``module:function`` path (only
            for schemas whose authors the caller trusts); registered names are
            always looked up.

    Returns:
        The report; ``report.passed`` is ``True`` when every check passed.

    Raises:
        SchemaError: a custom check names a function not registered in this process.
        UntrustedCheckError: a custom check names an import path and ``trust`` is false.
    """
    # Every custom check is resolved before any data is read: a refusal costs nothing.
    expectations = [e.resolved(trust=trust) if isinstance(e, Custom) else e for e in expectations]
    schema_run = _SchemaRun(schema, sample_size) if schema is not None else None
    runs = [e.start(sample_size) for e in expectations]
    rows = 0
    started = False
    for batch in batches:
        if not started:
            if schema_run is not None:
                schema_run.start(batch.schema if data_schema is None else data_schema)
            started = True
        frame = to_frame(batch, rows)
        rows += batch.num_rows
        if schema_run is not None:
            schema_run.update(frame)
        for run in runs:
            run.update(frame)
    if schema_run is not None and not started and data_schema is not None:
        schema_run.start(data_schema)
    checks: list[CheckResult] = schema_run.finish(rows) if schema_run is not None else []
    checks.extend(run.finish() for run in runs)
    diff = schema_run.diff if schema_run is not None and schema_run.diff else SchemaDiff()
    return ValidationReport(
        passed=all(c.passed for c in checks),
        checks=tuple(checks),
        schema_diff=diff,
        row_count=rows,
        source=source,
        against=against,
    )
