"""Parse run-search filters and sort keys into a small AST.

``search_runs`` takes a filter such as ``metrics.auc > 0.9 and params.model = 'rf'``
and sort keys such as ``metrics.auc DESC``. This module turns that text into
:class:`Comparison`, :class:`And`, :class:`Or`, :class:`Not` and :class:`OrderKey`
values, checks that every comparison makes sense for its entity, and reports each
mistake as a :class:`~loopml.errors.FilterSyntaxError` that points at the offending
token. It knows nothing of SQL: the store compiles the AST.

Grammar (keywords, entity names and attribute names are case-insensitive; keys are
not)::

    expr       := and_expr ('or' and_expr)*
    and_expr   := unary ('and' unary)*
    unary      := 'not' unary | '(' expr ')' | comparison
    comparison := identifier op value
                | identifier ['not'] 'in' '(' value (',' value)* ')'
                | identifier 'is' ['not'] 'null'
    identifier := entity '.' key | attribute
    entity     := metrics | metric | params | param | tags | tag
                | attributes | attribute | attr
    key        := [A-Za-z0-9_./-]+ | "quoted" | `quoted`
    op         := = | == | != | <> | < | <= | > | >= | ['not'] like | ['not'] ilike
    value      := 'string' | "string" | number | nan | inf | -inf

Everything after the first dot is the key, so ``metrics.val.loss`` names the metric
``val.loss``. In quoted strings and keys a quote is escaped by doubling it or with a
backslash, and ``\\\\`` is one backslash; any other backslash is kept as written,
so LIKE patterns such as ``'50\\%'`` reach the store unchanged. Numbers are always
floats; ``nan`` only goes with ``=`` and ``!=``; ``true`` and ``false`` are not
special (quote them to compare strings).

Params and tags are stored as the text they were logged as; the value's type
says how they compare. An unquoted number compares params as numbers with every
operator: ``params.C = 1`` matches ``C`` logged as ``1``, ``1.0`` or ``1.00``,
``params.C > 0.5`` compares numerically, and a stored value that is not a number
(``'rbf'``, ``'nan'``, ``'inf'``; numbers are ASCII decimals with an optional
exponent, see ``loopml.store.NUMBER_PATTERN``) matches no numeric comparison. A
quoted value is an exact text match: ``params.C = '1.0'`` matches ``1.0`` only.
Tags compare numerically only with ``<``, ``<=``, ``>``, ``>=`` and a number
(``tags.x = 1`` is the text ``'1'``). A metric, param or tag key that no run of
the project has logged makes ``search_runs`` warn (``LoopmlWarning``), naming the
closest known key.

``and`` binds tighter than ``or`` and ``not`` tighter than both. Chains of one
operator are one node (``a and b and c`` is one :class:`And` of three operands);
parentheses are kept, so ``(a and b) and c`` nests.

Example:
    >>> parse_filter("metrics.auc > 0.9")
    Comparison(entity='metric', key='auc', op='>', value=0.9, position=0)
    >>> parse_order_by(["metrics.auc DESC"])
    [OrderKey(entity='metric', key='auc', descending=True)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from loopml.errors import FilterSyntaxError, InvalidParameter
from loopml.tracking._filter_lexer import Lexer, Scalar, Token, TokenKind

__all__ = [
    "ATTRIBUTES",
    "NUMBER_ATTRIBUTES",
    "OPERATORS",
    "STRING_ATTRIBUTES",
    "And",
    "Comparison",
    "Entity",
    "Expr",
    "Not",
    "Or",
    "OrderKey",
    "Scalar",
    "parse_filter",
    "parse_order_by",
]

Entity: TypeAlias = Literal["metric", "param", "tag", "attribute"]

#: Run attributes compared to strings.
STRING_ATTRIBUTES = frozenset({"status", "name", "run_id", "kind", "user", "parent_id"})
#: Run attributes compared to numbers (epoch milliseconds).
NUMBER_ATTRIBUTES = frozenset({"start_time", "end_time"})
#: Every run attribute a filter or sort key can name.
ATTRIBUTES = STRING_ATTRIBUTES | NUMBER_ATTRIBUTES
#: The normalised operators a :class:`Comparison` can carry.
OPERATORS = (
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "ilike",
    "not like",
    "not ilike",
    "in",
    "not in",
    "is null",
    "is not null",
)

_ENTITIES: dict[str, Entity] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
}
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "like", "ilike"})
_LIKE_OPS = frozenset({"like", "ilike", "not like", "not ilike"})
_VALID_ATTRIBUTES = ", ".join(sorted(ATTRIBUTES))
# Deep enough for any filter a person writes, shallow enough for the recursion
# limit (each level costs a few Python frames here and in the SQL compiler).
_MAX_DEPTH = 100


@dataclass(frozen=True)
class Comparison:
    """One test of a run field against a value: ``metrics.auc > 0.9``.

    Attributes:
        entity: what the key names: a metric, a param, a tag or a run attribute.
        key: the metric, param or tag name, or the attribute name (lowercase).
        op: one of :data:`OPERATORS`.
        value: a float or a str; a tuple of them for ``in`` and ``not in``; None for
            ``is null`` and ``is not null``. Metrics and ``start_time``/``end_time``
            only ever get floats, the other attributes only strs; params and tags
            get either, and the type says how to compare.
        position: 0-based offset of the comparison in the filter text. It is not
            part of equality: two comparisons that say the same thing are equal.
    """

    entity: Entity
    key: str
    op: str
    value: Scalar | tuple[Scalar, ...] | None
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class And:
    """Every operand holds (two or more operands)."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """At least one operand holds (two or more operands)."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    """The operand does not hold."""

    operand: Expr


Expr: TypeAlias = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    """One sort key of ``search_runs``: ``metrics.auc DESC``."""

    entity: Entity
    key: str
    descending: bool = False


# --- parser ----------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, end_name: str) -> None:
        self._lexer = Lexer(text, end_name)
        self.tok = self._lexer.next()
        self._depth = 0

    def error(self, message: str, position: int | None = None) -> FilterSyntaxError:
        where = self.tok.position if position is None else position
        return self._lexer.error(message, where)

    def describe(self, tok: Token | None = None) -> str:
        tok = self.tok if tok is None else tok
        if tok.kind == "end":
            return f"end of {self._lexer.end_name}"
        if tok.kind == "string":
            return f"the string {tok.value!r}"
        if tok.kind == "number":
            return f"the number {tok.text}"
        return repr(tok.text)

    def advance(self) -> Token:
        tok = self.tok
        self.tok = self._lexer.next()
        return tok

    def at(self, kind: TokenKind) -> bool:
        # A method, not an inline comparison, so mypy's narrowing of ``self.tok.kind``
        # does not outlive a call to advance().
        return self.tok.kind == kind

    def at_word(self, *words: str) -> bool:
        return self.at("word") and self.tok.value in words

    # expr := and_expr ('or' and_expr)*
    def expr(self) -> Expr:
        operands = [self.and_expr()]
        while self.at_word("or"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    # and_expr := unary ('and' unary)*
    def and_expr(self) -> Expr:
        operands = [self.unary()]
        while self.at_word("and"):
            self.advance()
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    # unary := 'not' unary | '(' expr ')' | comparison
    def unary(self) -> Expr:
        if not (self.at_word("not") or self.at("(")):
            return self.comparison()
        if self._depth >= _MAX_DEPTH:
            raise self.error(f"filter nests deeper than {_MAX_DEPTH} levels")
        self._depth += 1
        try:
            if self.at_word("not"):
                self.advance()
                return Not(self.unary())
            opening = self.advance()
            inner = self.expr()
            if not self.at(")"):
                raise self.error(
                    f"expected 'and', 'or' or ')' to close the '(' at position "
                    f"{opening.position}, got {self.describe()}"
                )
            self.advance()
            return inner
        finally:
            self._depth -= 1

    def identifier(self) -> tuple[Entity, str, Token]:
        tok = self.tok
        if tok.kind == "ident":
            entity = _ENTITIES.get(tok.entity.lower())
            if entity is None:
                raise self.error(
                    f"unknown entity {tok.entity!r} in {tok.text!r}; expected metrics, "
                    f"params, tags or attributes"
                )
            key = tok.key
            if entity == "attribute":
                key = self._attribute(key, tok.key_position)
            self.advance()
            return entity, key, tok
        if tok.kind == "word" and tok.value not in _KEYWORDS:
            name = str(tok.value)
            if name in _ENTITIES:
                raise self.error(
                    f"expected '.' and a key after {tok.text!r}, as in {tok.text}.auc",
                    tok.position + len(tok.text),
                )
            key = self._attribute(tok.text, tok.position)
            self.advance()
            return "attribute", key, tok
        raise self.error(
            "expected an identifier such as metrics.auc, params.model or status, "
            f"got {self.describe()}"
        )

    def _attribute(self, name: str, position: int) -> str:
        lowered = name.lower()
        if lowered not in ATTRIBUTES:
            raise self.error(
                f"unknown attribute {name!r}; valid attributes are {_VALID_ATTRIBUTES} "
                "(or use metrics.<key>, params.<key>, tags.<key>)",
                position,
            )
        return lowered

    # comparison := identifier op value | identifier [not] in (...) | identifier is [not] null
    def comparison(self) -> Comparison:
        entity, key, ident = self.identifier()
        op_tok = self.tok
        op: str
        if op_tok.kind == "op" or self.at_word("like", "ilike", "in"):
            op = str(op_tok.value)
        elif self.at_word("not"):
            self.advance()
            if not self.at_word("like", "ilike", "in"):
                raise self.error(
                    f"expected 'in', 'like' or 'ilike' after 'not', got {self.describe()}"
                )
            op = f"not {self.tok.value}"
        elif self.at_word("is"):
            self.advance()
            op = "is null"
            if self.at_word("not"):
                self.advance()
                op = "is not null"
            if not self.at_word("null"):
                after = "is" if op == "is null" else "is not"
                raise self.error(f"expected 'null' after {after!r}, got {self.describe()}")
            self.advance()
            return Comparison(entity, key, op, None, ident.position)
        else:
            raise self.error(
                f"expected a comparison operator after {ident.text!r}, got {self.describe()}"
            )
        if op in _LIKE_OPS:
            self._check_like(entity, key, ident, op, op_tok.position)
        after = self.advance().text
        if op in ("in", "not in"):
            values = self.value_list(after)
            for value, tok in values:
                self._check_value(entity, key, ident, op, value, tok)
            return Comparison(entity, key, op, tuple(v for v, _ in values), ident.position)
        value, tok = self.value(after)
        self._check_value(entity, key, ident, op, value, tok)
        return Comparison(entity, key, op, value, ident.position)

    def value(self, after: str) -> tuple[Scalar, Token]:
        tok = self.tok
        if tok.kind in ("number", "string"):
            self.advance()
            assert tok.value is not None  # set for every number and string token
            return tok.value, tok
        hint = f" (quote strings: '{tok.text}')" if tok.kind in ("word", "ident") else ""
        raise self.error(
            f"expected a value (a quoted string or a number) after {after!r}, "
            f"got {self.describe()}{hint}"
        )

    def value_list(self, after: str) -> list[tuple[Scalar, Token]]:
        if not self.at("("):
            raise self.error(f"expected '(' after {after!r}, got {self.describe()}")
        values = [self.value(self.advance().text)]
        while self.at(","):
            values.append(self.value(self.advance().text))
        if not self.at(")"):
            raise self.error(
                f"expected ',' or ')' in the list after {after!r}, got {self.describe()}"
            )
        self.advance()
        return values

    def _check_like(self, entity: Entity, key: str, ident: Token, op: str, position: int) -> None:
        if entity == "metric" or (key in NUMBER_ATTRIBUTES and entity == "attribute"):
            raise self.error(
                f"{op!r} cannot be used on {ident.text!r}: "
                f"{_numeric_reason(entity)}; use =, !=, <, <=, >, >= or in",
                position,
            )

    def _check_value(
        self, entity: Entity, key: str, ident: Token, op: str, value: Scalar, tok: Token
    ) -> None:
        numeric_only = entity == "metric" or (entity == "attribute" and key in NUMBER_ATTRIBUTES)
        if numeric_only and not isinstance(value, float):
            raise self.error(
                f"expected a number for {ident.text!r} ({_numeric_reason(entity)}), "
                f"got {self.describe(tok)}",
                tok.position,
            )
        if isinstance(value, float) and math.isnan(value) and op not in ("=", "!="):
            # NaN is unordered and equal to nothing, so only "is NaN" and "is not
            # NaN" (= and !=) mean something.
            raise self.error(
                f"nan can only be compared with = or !=, not with {op!r}", tok.position
            )
        if op in _LIKE_OPS and not isinstance(value, str):
            raise self.error(
                f"expected a quoted string pattern after {op!r}, got {self.describe(tok)}",
                tok.position,
            )
        if entity == "attribute" and key in STRING_ATTRIBUTES and not isinstance(value, str):
            raise self.error(
                f"expected a quoted string for {ident.text!r}, got {self.describe(tok)}",
                tok.position,
            )


def _numeric_reason(entity: Entity) -> str:
    if entity == "metric":
        return "metrics compare only to numbers"
    return "start_time and end_time are numbers (epoch milliseconds)"


def parse_filter(text: str) -> Expr | None:
    """Parse a run-search filter into an expression tree.

    Args:
        text: the filter, e.g. ``"metrics.auc > 0.9 and params.model = 'rf'"``.

    Returns:
        The expression, or None when ``text`` is empty or only whitespace (no
        filter: every run matches).

    Raises:
        FilterSyntaxError: the text does not follow the grammar, names an unknown
            entity or attribute, or compares a field to a value of the wrong kind
            (a metric to a string, ``status`` to a number, anything LIKE a number).
            ``position`` is the offset of the offending token.
        InvalidParameter: ``text`` is not a str.

    Example:
        >>> parse_filter("not status = 'ok'")
        Not(operand=Comparison(entity='attribute', key='status', op='=', value='ok', position=4))
    """
    if not isinstance(text, str):
        raise InvalidParameter(
            f"The 'filter' parameter must be a str; got {type(text).__name__} instead."
        )
    if not text.strip():
        return None
    parser = _Parser(text, "filter")
    expr = parser.expr()
    if parser.at(")"):
        raise parser.error("unmatched ')'")
    if not parser.at("end"):
        raise parser.error(f"expected 'and', 'or' or end of filter, got {parser.describe()}")
    return expr


def parse_order_by(items: Sequence[str]) -> list[OrderKey]:
    """Parse the sort keys of a run search.

    Args:
        items: one ``identifier [ASC|DESC]`` per item, most significant first, e.g.
            ``["metrics.auc DESC", "start_time"]``. Ascending is the default.

    Returns:
        One :class:`OrderKey` per item, in order.

    Raises:
        FilterSyntaxError: an item does not parse; ``text`` and ``position`` refer
            to that item.
        InvalidParameter: ``items`` is a single str or holds something else than str.

    Example:
        >>> parse_order_by(["start_time"])
        [OrderKey(entity='attribute', key='start_time', descending=False)]
    """
    if isinstance(items, str):
        raise InvalidParameter(
            "The 'order_by' parameter must be a list of str; got the str "
            f"{items!r} instead (write [{items!r}])."
        )
    keys: list[OrderKey] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidParameter(
                "The 'order_by' parameter must be a list of str; got an item of type "
                f"{type(item).__name__} instead."
            )
        parser = _Parser(item, "sort key")
        entity, key, ident = parser.identifier()
        descending = parser.at_word("desc")
        if parser.at_word("asc", "desc"):
            parser.advance()
        if not parser.at("end"):
            raise parser.error(
                f"expected 'ASC', 'DESC' or end of sort key after {ident.text!r}, "
                f"got {parser.describe()}"
            )
        keys.append(OrderKey(entity, key, descending))
    return keys
