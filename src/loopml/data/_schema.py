"""Dataset schemas: inferred from a profile, kept as editable YAML, checked with pandera."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import yaml

from loopml.data._infer import NOT_NULL_MIN_ROWS, allowed_values, numeric_range
from loopml.errors import InvalidParameter, SchemaError

if TYPE_CHECKING:
    import pandera.pandas as pa_pandas

    from loopml.data._profile import Profile

__all__ = [
    "ColumnSchema",
    "DatasetSchema",
    "dump_yaml",
    "infer_schema",
    "load_yaml",
    "pandas_dtype",
]

SCHEMA_FORMAT = 1

_COLUMN_KEYS = frozenset({"type", "nullable", "unique", "min", "max", "allowed", "pattern"})
_TOP_KEYS = frozenset({"version", "strict", "unique_together", "columns"})
_TIMESTAMP_NS = re.compile(r"^timestamp\[ns(?:, tz=(?P<tz>.+))?\]$")


def pandas_dtype(arrow_type: str) -> str | None:
    """The pandas dtype a normalised Arrow type becomes when loopml validates a batch.

    Integers and booleans become pandas' nullable dtypes so that a missing value
    does not turn a column into floats; ``None`` means "no dtype rule" (the Arrow
    type is still compared by the schema diff).
    """
    simple = {"int64": "Int64", "double": "float64", "bool": "boolean", "large_string": "str"}
    if arrow_type in simple:
        return simple[arrow_type]
    match = _TIMESTAMP_NS.match(arrow_type)
    if match:
        tz = match.group("tz")
        return f"datetime64[ns, {tz}]" if tz else "datetime64[ns]"
    return None


@dataclass(frozen=True)
class ColumnSchema:
    """The rules for one column.

    Attributes:
        name: The column name.
        type: The normalised Arrow type as a string (``"int64"``, ``"double"``,
            ``"large_string"``, ``"timestamp[ns, tz=UTC]"`` …).
        nullable: Whether missing values are allowed.
        unique: Whether values must be unique across the whole dataset.
        min: Smallest allowed value (numeric columns), inclusive.
        max: Largest allowed value (numeric columns), inclusive.
        allowed: The allowed values (categorical columns).
        pattern: A regular expression every (string) value must contain a match of.
    """

    name: str
    type: str
    nullable: bool = True
    unique: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    pattern: str | None = None

    def __post_init__(self) -> None:
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise InvalidParameter(
                    f"The '{bound}' of column {self.name!r} must be a number or None. "
                    f"Got {value!r} instead."
                )
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise InvalidParameter(
                    f"The 'pattern' of column {self.name!r} must be a regular expression. "
                    f"Got {self.pattern!r} instead ({exc})."
                ) from exc
        if self.allowed is not None and not isinstance(self.allowed, tuple):
            object.__setattr__(self, "allowed", tuple(self.allowed))

    def to_dict(self) -> dict[str, Any]:
        """Return the column's YAML form (defaults left out)."""
        out: dict[str, Any] = {"type": self.type, "nullable": self.nullable}
        if self.unique:
            out["unique"] = True
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.allowed is not None:
            out["allowed"] = list(self.allowed)
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out


@dataclass(frozen=True)
class DatasetSchema:
    """The schema of a dataset: one :class:`ColumnSchema` per column, checked with pandera.

    Persisted as YAML that people can read and edit; :attr:`pandera` is the
    equivalent ``pandera.pandas.DataFrameSchema`` (without the uniqueness rules,
    which loopml checks across all batches itself).

    Attributes:
        column_schemas: The columns, in order.
        strict: When ``True``, columns the schema does not list fail validation.
        unique_together: Groups of columns whose combined values must be unique.

    Example:
        >>> schema = DatasetSchema((ColumnSchema("age", "int64", nullable=False, min=0, max=120),))
        >>> DatasetSchema.from_yaml(schema.to_yaml()) == schema
        True
        >>> schema.columns
        {'age': 'int64'}
    """

    column_schemas: tuple[ColumnSchema, ...]
    strict: bool = False
    unique_together: tuple[tuple[str, ...], ...] = field(default=())

    def __post_init__(self) -> None:
        names = [c.name for c in self.column_schemas]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise InvalidParameter(
                f"Schema columns must have distinct names; repeated: {duplicated}."
            )
        for group in self.unique_together:
            unknown = [c for c in group if c not in names]
            if unknown or not group:
                raise InvalidParameter(
                    f"Each 'unique_together' group must name schema columns. Got {list(group)!r}."
                )

    @property
    def columns(self) -> dict[str, str]:
        """Column name → normalised Arrow type string, in order."""
        return {c.name: c.type for c in self.column_schemas}

    def column(self, name: str) -> ColumnSchema:
        """Return the rules of column ``name`` (``KeyError`` when the schema has none)."""
        for column in self.column_schemas:
            if column.name == name:
                return column
        raise KeyError(name)

    def with_column(self, column: ColumnSchema) -> DatasetSchema:
        """Return a copy with ``column`` replacing the column of that name (or appended)."""
        replaced = [column if c.name == column.name else c for c in self.column_schemas]
        if column.name not in self.columns:
            replaced.append(column)
        return dataclasses.replace(self, column_schemas=tuple(replaced))

    def without_column(self, name: str) -> DatasetSchema:
        """Return a copy without column ``name`` (and without key groups that use it)."""
        return dataclasses.replace(
            self,
            column_schemas=tuple(c for c in self.column_schemas if c.name != name),
            unique_together=tuple(g for g in self.unique_together if name not in g),
        )

    @cached_property
    def pandera(self) -> pa_pandas.DataFrameSchema:
        """The pandera schema for a pandas frame made from a normalised batch."""
        return self.pandera_for(self.columns)

    def pandera_for(self, names: Iterable[str]) -> pa_pandas.DataFrameSchema:
        """A pandera schema restricted to columns ``names`` (used when some are missing)."""
        import pandera.pandas as pa_pandas

        wanted = set(names)
        columns = {}
        for spec in self.column_schemas:
            if spec.name not in wanted:
                continue
            checks = []
            if spec.min is not None or spec.max is not None:
                low = -math.inf if spec.min is None else spec.min
                high = math.inf if spec.max is None else spec.max
                checks.append(pa_pandas.Check.in_range(low, high))
            if spec.allowed is not None:
                checks.append(pa_pandas.Check.isin(list(spec.allowed)))
            if spec.pattern is not None:
                checks.append(pa_pandas.Check.str_contains(spec.pattern))
            columns[spec.name] = pa_pandas.Column(
                pandas_dtype(spec.type), checks=checks, nullable=spec.nullable, name=spec.name
            )
        return pa_pandas.DataFrameSchema(columns, strict=False, ordered=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the schema's YAML form as plain data."""
        out: dict[str, Any] = {"version": SCHEMA_FORMAT, "strict": self.strict}
        if self.unique_together:
            out["unique_together"] = [list(g) for g in self.unique_together]
        out["columns"] = {c.name: c.to_dict() for c in self.column_schemas}
        return out

    def to_yaml(self) -> str:
        """Return the schema as YAML for people to read, edit and save back."""
        header = (
            "# loopml dataset schema. Per column: type (Arrow), nullable, and optionally\n"
            "# unique, min, max (inclusive), allowed (a list) and pattern (a regex).\n"
        )
        body = dump_yaml(self.to_dict())
        return header + body

    @classmethod
    def from_dict(cls, data: object) -> DatasetSchema:
        """Build a schema from its YAML form as plain data.

        Raises:
            SchemaError: When the data is not a valid schema; the message names the problem.
        """
        return _schema_from_data(data, text=None)

    @classmethod
    def from_yaml(cls, text: str) -> DatasetSchema:
        """Parse a schema written by :meth:`to_yaml` (possibly edited by hand).

        Raises:
            SchemaError: When the text is not YAML or not a valid schema; the message
                names the problem and, where known, its line.
        """
        return _schema_from_data(load_yaml(text, what="schema"), text=text)


class _Dumper(yaml.SafeDumper):
    """Writes strings with line-break-like characters double-quoted (escaped).

    With ``allow_unicode`` PyYAML writes ``\\x85`` (NEL) raw, and reads it back as
    a line break; a value like that must survive the round trip.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    risky = any(ch in "\x85\u2028\u2029\ufeff" or not ch.isprintable() for ch in value)
    style = '"' if risky else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: object) -> str:
    """Write plain data as block-style YAML that :func:`load_yaml` reads back unchanged."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def load_yaml(text: str, what: str) -> Any:
    """Parse YAML, turning a syntax error into a :class:`SchemaError` that names the line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SchemaError(f"The {what} YAML does not parse{where}: {problem}.") from exc


def yaml_line(text: str | None, path: Sequence[str | int]) -> str:
    """Return ``" (line N)"`` for the node at ``path`` in YAML ``text``, or ``""``."""
    if not text:
        return ""
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return ""
    line = node.start_mark.line if node is not None else None
    for step in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            node = node.value[step] if step < len(node.value) else None
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line
    return "" if line is None else f" (line {line + 1})"


def _schema_from_data(data: object, text: str | None) -> DatasetSchema:
    def fail(message: str, *path: str | int) -> SchemaError:
        return SchemaError(f"Invalid schema{yaml_line(text, path)}: {message}")

    if not isinstance(data, Mapping):
        raise fail(f"expected a mapping with 'columns', got {type(data).__name__}.")
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {unknown}; expected some of {sorted(_TOP_KEYS)}.", unknown[0])
    if data.get("version", SCHEMA_FORMAT) != SCHEMA_FORMAT:
        raise fail(f"unsupported version {data.get('version')!r}.", "version")
    columns = data.get("columns")
    if not isinstance(columns, Mapping):
        raise fail("'columns' must be a mapping of column name to rules.", "columns")
    specs = []
    for name, rules in columns.items():
        path = ("columns", name)
        if not isinstance(rules, Mapping):
            raise fail(f"column {name!r} must be a mapping of rules.", *path)
        bad = sorted(set(map(str, rules)) - _COLUMN_KEYS)
        if bad:
            raise fail(
                f"column {name!r} has unknown key(s) {bad}; expected some of "
                f"{sorted(_COLUMN_KEYS)}.",
                *path,
                bad[0],
            )
        if not isinstance(rules.get("type"), str):
            raise fail(f"column {name!r} needs a 'type' (an Arrow type string).", *path)
        for flag in ("nullable", "unique"):
            if flag in rules and not isinstance(rules[flag], bool):
                raise fail(f"'{flag}' of column {name!r} must be true or false.", *path, flag)
        allowed = rules.get("allowed")
        if allowed is not None and not isinstance(allowed, list):
            raise fail(f"'allowed' of column {name!r} must be a list.", *path, "allowed")
        try:
            specs.append(
                ColumnSchema(
                    name=str(name),
                    type=rules["type"],
                    nullable=rules.get("nullable", True),
                    unique=rules.get("unique", False),
                    min=rules.get("min"),
                    max=rules.get("max"),
                    allowed=None if allowed is None else tuple(allowed),
                    pattern=rules.get("pattern"),
                )
            )
        except InvalidParameter as exc:
            raise fail(str(exc), *path) from exc
    strict = data.get("strict", False)
    if not isinstance(strict, bool):
        raise fail("'strict' must be true or false.", "strict")
    groups = data.get("unique_together", []) or []
    if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
        raise fail("'unique_together' must be a list of lists of column names.", "unique_together")
    try:
        return DatasetSchema(
            tuple(specs), strict=strict, unique_together=tuple(tuple(map(str, g)) for g in groups)
        )
    except InvalidParameter as exc:
        raise fail(str(exc), "unique_together") from exc


def infer_schema(profile: Profile, key_columns: Sequence[str] = ()) -> DatasetSchema:
    """Infer a schema from a dataset version's profile (the data is not read again).

    Every column gets its Arrow type; it is nullable if the profile saw a missing
    value, or fewer than 100 values (too few to say missing values are rare),
    unless it is a key. Rules on values are inferred so that further data from the
    same distribution passes them (see :mod:`loopml.data._infer` for the rules
    and their false-alarm rate): numeric columns get their observed range widened
    by a tolerance extrapolated from their tails (whole-number bounds for
    integral columns, floats with missing values included); categorical columns
    whose every value was seen often enough get them as ``allowed``. Key columns,
    and columns that look like keys (unique ids), get neither. A single key
    column is marked ``unique``; several key columns must be unique together.

    Args:
        profile: The profile of the data (``loopml.data._profile.Profile``).
        key_columns: Columns that identify a row.

    Returns:
        The inferred schema; the data it was inferred from always validates against it.

    Raises:
        InvalidParameter: When a key column is not in the profile.
    """
    missing = [k for k in key_columns if k not in profile.columns]
    if missing:
        raise InvalidParameter(
            f"The 'key_columns' parameter of infer_schema must name profiled columns. "
            f"Got unknown column(s) {missing} instead."
        )
    specs = []
    for column in profile.columns.values():
        # Keys identify rows; new deliveries bring new ids, so keys get no rules on values.
        is_key = column.name in key_columns
        low, high = (None, None) if is_key else numeric_range(column) or (None, None)
        if column.arrow_type == "int64":
            low = None if low is None else _int_bound(low, -math.inf)
            high = None if high is None else _int_bound(high, math.inf)
        specs.append(
            ColumnSchema(
                name=column.name,
                type=column.arrow_type,
                nullable=column.missing > 0 or (not is_key and column.count < NOT_NULL_MIN_ROWS),
                unique=len(key_columns) == 1 and column.name == key_columns[0],
                min=low,
                max=high,
                allowed=None if is_key else allowed_values(column),
            )
        )
    together = (tuple(key_columns),) if len(key_columns) > 1 else ()
    return DatasetSchema(tuple(specs), unique_together=together)


def _int_bound(value: float, outward: float) -> int:
    """An int64 bound from a profile's float; above 2**53 the float may be rounded
    inwards, so it is widened by one step of its precision."""
    if abs(value) >= 2.0**53:
        value = math.nextafter(value, outward)
    bound = math.floor(value) if outward < 0 else math.ceil(value)
    return max(-(2**63), min(bound, 2**63 - 1))
