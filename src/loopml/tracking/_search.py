"""Compile parsed run filters and orderings into SQL over the store's tables.

Each comparison becomes ``run.id IN (subquery)`` over an indexed table
(``latest_metric``, ``param``, ``tag``), which composes under ``and``, ``or``
and ``not`` and lets SQLite and PostgreSQL evaluate each subquery once.
A run that lacks the key never satisfies a comparison on it.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.sql.elements import KeyedColumnElement

from loopml.errors import FilterSyntaxError
from loopml.store import tables
from loopml.tracking._filter import And, Comparison, Expr, Not, Or, OrderKey

__all__ = ["apply_order", "compile_filter"]

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
    value_column: ColumnElement[Any] = table.c.value
    if c.entity != "metric" and _numeric(c.value) and c.op not in ("=", "!=", "in", "not in"):
        value_column = _as_float(table.c.value, dialect)
    matching = select(table.c.run_id).where(table.c.key == c.key, _compare(value_column, c))
    return _run.c.id.in_(matching)


def _status(c: Comparison, lost_before_ms: int) -> ColumnElement[bool]:
    """``status`` with the derived value ``lost`` (running, heartbeat too old)."""
    lost = and_(_run.c.status == "running", _run.c.heartbeat_at < lost_before_ms)
    effective = case((lost, literal("lost")), else_=_run.c.status)
    return _compare(effective, c)


def _compare(column: ColumnElement[Any], c: Comparison) -> ColumnElement[bool]:
    value: object = c.value
    if c.entity in ("param", "tag") and c.op in ("=", "!=", "in", "not in"):
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


_NUMBER_PATTERN = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"


def _as_float(column: KeyedColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """Text column → number, NULL where the text is not a number."""
    if dialect == "sqlite":
        return func.loopml_float(column, type_=Float)
    return case(
        (column.regexp_match(_NUMBER_PATTERN), cast(column, Float)),
        else_=None,
    )


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
