"""Compile parsed run filters and orderings into SQL over the store's tables.

Each comparison becomes ``run.id IN (subquery)`` over an indexed table
(``latest_metric``, ``param``, ``tag``), which composes under ``and``, ``or``
and ``not`` and lets SQLite and PostgreSQL evaluate each subquery once.
A run that lacks the key never satisfies a comparison on it.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Numeric,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import KeyedColumnElement

from loopml.errors import FilterSyntaxError, LoopmlWarning
from loopml.store import NUMBER_PATTERN, tables
from loopml.tracking._filter import And, Comparison, Expr, Not, Or, OrderKey

__all__ = ["apply_order", "compile_filter", "warn_unknown_keys"]

_run = tables.RUN
_latest = tables.LATEST_METRIC
_param = tables.PARAM
_tag = tables.TAG

_ATTRIBUTE_COLUMNS = {
    "run_id": _run.c.id,
    "name": _run.c.name,
    "status": _run.c.status,
    "kind": _run.c.kind,
    "user": _run.c.user,
    "parent_id": _run.c.parent_id,
    "start_time": _run.c.start_time,
    "end_time": _run.c.end_time,
}


def compile_filter(expr: Expr, dialect: str, lost_before_ms: int) -> ColumnElement[bool]:
    """Return the SQL condition on ``run`` equivalent to ``expr``.

    ``lost_before_ms`` is the heartbeat cut-off below which a running run counts as lost.
    """
    if isinstance(expr, And):
        return and_(*(compile_filter(e, dialect, lost_before_ms) for e in expr.operands))
    if isinstance(expr, Or):
        return or_(*(compile_filter(e, dialect, lost_before_ms) for e in expr.operands))
    if isinstance(expr, Not):
        return not_(compile_filter(expr.operand, dialect, lost_before_ms))
    return _comparison(expr, dialect, lost_before_ms)


def _comparison(c: Comparison, dialect: str, lost_before_ms: int) -> ColumnElement[bool]:
    if c.entity == "attribute":
        if c.key == "status":
            return _status(c, lost_before_ms)
        return _compare(_ATTRIBUTE_COLUMNS[c.key], c)
    table = {"metric": _latest, "param": _param, "tag": _tag}[c.entity]
    if c.op in ("is null", "is not null"):
        has_key = select(table.c.run_id).where(table.c.key == c.key)
        present = _run.c.id.in_(has_key)
        return not_(present) if c.op == "is null" else present
    if c.entity != "metric" and _compares_numbers(c):
        number = _as_number(table.c.value, dialect)
        value = _number_value(c.value, dialect)
        condition = _compare(number, c, value)
    else:
        condition = _compare(table.c.value, c)
    matching = select(table.c.run_id).where(table.c.key == c.key, condition)
    return _run.c.id.in_(matching)


def _compares_numbers(c: Comparison) -> bool:
    """Whether a param or tag comparison compares numbers rather than texts.

    Params do for every operator given unquoted finite numbers (``params.C = 1``
    finds ``C=1`` and ``C=1.0``); tags only for ``<``, ``<=``, ``>``, ``>=``
    (``tags.x = 1`` is the text ``'1'``). Quoted values always compare as text.
    """
    values = c.value if isinstance(c.value, tuple) else (c.value,)
    if not values or not all(_numeric(v) and math.isfinite(float(v)) for v in values):  # type: ignore[arg-type]
        return False
    if c.op in ("<", "<=", ">", ">="):
        return True
    return c.entity == "param" and c.op in ("=", "!=", "in", "not in")


def _status(c: Comparison, lost_before_ms: int) -> ColumnElement[bool]:
    """``status`` with the derived value ``lost`` (running, heartbeat too old)."""
    lost = and_(_run.c.status == "running", _run.c.heartbeat_at < lost_before_ms)
    effective = case((lost, literal("lost")), else_=_run.c.status)
    return _compare(effective, c)


def _compare(
    column: ColumnElement[Any], c: Comparison, number: object = None
) -> ColumnElement[bool]:
    """``column <op> value``: ``number`` when given (a numeric comparison), else ``c.value``."""
    value: object = c.value
    if number is not None:
        value = number
    elif c.entity in ("param", "tag") and c.op in ("=", "!=", "in", "not in"):
        value = _as_text(value)
    if isinstance(value, float) and math.isnan(value):
        if c.op == "=":
            return column.is_(None)
        if c.op == "!=":
            return column.is_not(None)
        raise FilterSyntaxError("NaN can only be compared with = or !=", "", c.position)
    op = c.op
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "like":
        return column.like(str(value))
    if op == "not like":
        return column.not_like(str(value))
    if op == "ilike":
        return column.ilike(str(value))
    if op == "not ilike":
        return column.not_ilike(str(value))
    if op in ("in", "not in"):
        options = list(value) if isinstance(value, tuple) else [value]
        return column.in_(options) if op == "in" else column.not_in(options)
    if op == "is null":
        return column.is_(None)
    if op == "is not null":
        return column.is_not(None)
    raise FilterSyntaxError(f"unsupported operator {op!r}", "", c.position)


def _as_text(value: object) -> object:
    if isinstance(value, tuple):
        return tuple(_as_text(v) for v in value)
    if isinstance(value, float) and value.is_integer() and not math.isinf(value):
        return str(int(value)) if abs(value) < 1e15 else str(value)
    return value if isinstance(value, str) else str(value)


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(column: KeyedColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """Text column → number, NULL where the text is not a number (see ``NUMBER_PATTERN``).

    PostgreSQL casts to ``numeric``, which holds every text the pattern accepts
    (a ``float`` cast of ``'1e999'`` would raise), guarded by a ``CASE`` because a
    cast of any other text raises too.
    """
    if dialect == "sqlite":
        return func.loopml_float(column, type_=Float)
    return case(
        (column.regexp_match(NUMBER_PATTERN), cast(column, Numeric)),
        else_=None,
    )


def _number_value(value: object, dialect: str) -> object:
    """The filter's number(s) as the back-end compares them (PostgreSQL: exact decimals)."""
    if isinstance(value, tuple):
        return tuple(_number_value(v, dialect) for v in value)
    number = float(value)  # type: ignore[arg-type]
    return number if dialect == "sqlite" else Decimal(repr(number))


def apply_order(query: Select[Any], order_by: list[OrderKey], dialect: str) -> Select[Any]:
    """Add ``ORDER BY`` clauses (missing values last), then newest first as a tie-break."""
    for index, key in enumerate(order_by):
        if key.entity == "attribute":
            column: ColumnElement[Any] = _ATTRIBUTE_COLUMNS[key.key]
        else:
            table = {"metric": _latest, "param": _param, "tag": _tag}[key.entity]
            alias = table.alias(f"order_{index}")
            query = query.outerjoin(
                alias, and_(alias.c.run_id == _run.c.id, alias.c.key == key.key)
            )
            column = alias.c.value
        query = query.order_by(
            column.desc().nulls_last() if key.descending else column.asc().nulls_last()
        )
    return query.order_by(_run.c.start_time.desc(), _run.c.id)


_ENTITY_TABLES = {"metric": _latest, "param": _param, "tag": _tag}
_ENTITY_PREFIX = {"metric": "metrics", "param": "params", "tag": "tags"}


def warn_unknown_keys(
    connection: Connection, project_id: int, project: str, expr: Expr, stacklevel: int = 2
) -> None:
    """Warn (:class:`~loopml.errors.LoopmlWarning`) about filter keys no run of the project has.

    A comparison on such a key matches no run, which is most often a typo
    (``metrics.acuracy``); the warning names each unknown key and the closest known
    key of its kind. One query checks the filter's keys; a second one, only when one
    is unknown, reads the project's keys of that kind to suggest the closest.

    Args:
        connection: a read transaction.
        project_id: the project searched.
        project: its name, for the message.
        expr: the parsed filter.
        stacklevel: passed on to :func:`warnings.warn` (point at the caller's caller).
    """
    wanted = sorted({(c.entity, c.key) for c in _comparisons(expr) if c.entity != "attribute"})
    if not wanted:
        return
    checks = [
        select(literal(index)).where(
            exists().where(
                _ENTITY_TABLES[entity].c.key == key,
                _ENTITY_TABLES[entity].c.run_id == _run.c.id,
                _run.c.project_id == project_id,
            )
        )
        for index, (entity, key) in enumerate(wanted)
    ]
    query = checks[0] if len(checks) == 1 else union_all(*checks)
    found = set(connection.execute(query).scalars())
    unknown = [pair for index, pair in enumerate(wanted) if index not in found]
    if not unknown:
        return
    known: dict[str, list[str]] = {}
    parts = []
    for entity, key in unknown:
        if entity not in known:
            table = _ENTITY_TABLES[entity]
            keys = connection.execute(
                select(table.c.key)
                .join(_run, _run.c.id == table.c.run_id)
                .where(_run.c.project_id == project_id)
                .distinct()
            )
            known[entity] = list(keys.scalars())
        close = difflib.get_close_matches(key, known[entity], n=1)
        hint = f" (closest: {_ENTITY_PREFIX[entity]}.{close[0]})" if close else ""
        parts.append(f"{_ENTITY_PREFIX[entity]}.{key}{hint}")
    what = "key" if len(parts) == 1 else "keys"
    which = "it" if len(parts) == 1 else "any of them"
    warnings.warn(
        f"unknown filter {what} {', '.join(parts)}: no run of project {project!r} "
        f"has logged {which}.",
        LoopmlWarning,
        stacklevel=stacklevel + 1,
    )


def _comparisons(expr: Expr) -> Iterator[Comparison]:
    if isinstance(expr, Comparison):
        yield expr
    elif isinstance(expr, Not):
        yield from _comparisons(expr.operand)
    else:
        for operand in expr.operands:
            yield from _comparisons(operand)
