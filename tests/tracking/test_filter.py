"""Tests of the run-search filter and sort-key parser (loopml.tracking._filter)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml.errors import FilterSyntaxError, InvalidParameter, LoopmlError
from loopml.tracking._filter import (
    ATTRIBUTES,
    NUMBER_ATTRIBUTES,
    OPERATORS,
    STRING_ATTRIBUTES,
    And,
    Comparison,
    Expr,
    Not,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)


def metric(key: str, op: str, value: object) -> Comparison:
    return Comparison("metric", key, op, value)  # type: ignore[arg-type]


def param(key: str, op: str, value: object) -> Comparison:
    return Comparison("param", key, op, value)  # type: ignore[arg-type]


def tag(key: str, op: str, value: object) -> Comparison:
    return Comparison("tag", key, op, value)  # type: ignore[arg-type]


def attr(key: str, op: str, value: object) -> Comparison:
    return Comparison("attribute", key, op, value)  # type: ignore[arg-type]


# --- examples that parse ---------------------------------------------------

GOOD: list[tuple[str, Expr]] = [
    ("metrics.auc > 0.9", metric("auc", ">", 0.9)),
    (
        "metrics.auc > 0.9 and params.model = 'rf'",
        And((metric("auc", ">", 0.9), param("model", "=", "rf"))),
    ),
    ("metric.auc>=1", metric("auc", ">=", 1.0)),
    ("METRICS.auc == 1", metric("auc", "=", 1.0)),
    ("metrics.AUC < 1", metric("AUC", "<", 1.0)),  # keys keep their case
    ("metrics.loss <> 0", metric("loss", "!=", 0.0)),
    ("metrics.loss != -1.5e3", metric("loss", "!=", -1500.0)),
    ("metrics.loss <= .5", metric("loss", "<=", 0.5)),
    ("metrics.loss <= 5.", metric("loss", "<=", 5.0)),
    ("metrics.loss < +2E-2", metric("loss", "<", 0.02)),
    ("metrics.loss = inf", metric("loss", "=", math.inf)),
    ("metrics.loss = -inf", metric("loss", "=", -math.inf)),
    ("metrics.loss = -Infinity", metric("loss", "=", -math.inf)),
    ("metrics.val.loss < 1", metric("val.loss", "<", 1.0)),
    ("metrics.a/b-c.d_e < 1", metric("a/b-c.d_e", "<", 1.0)),
    ("metrics.0 < 1", metric("0", "<", 1.0)),
    ('metrics."val loss" < 1', metric("val loss", "<", 1.0)),
    ("metrics.`val loss` < 1", metric("val loss", "<", 1.0)),
    ('metrics."say ""hi""" < 1', metric('say "hi"', "<", 1.0)),
    ("metrics.`a\\`b` < 1", metric("a`b", "<", 1.0)),
    ("metrics.and = 1", metric("and", "=", 1.0)),
    ("metrics.auc in (1, 2.5, -3)", metric("auc", "in", (1.0, 2.5, -3.0))),
    ("metrics.auc NOT IN (1)", metric("auc", "not in", (1.0,))),
    ("metrics.auc is null", metric("auc", "is null", None)),
    ("metrics.auc IS NOT NULL", metric("auc", "is not null", None)),
    ("params.model = 'rf'", param("model", "=", "rf")),
    ('param.model = "rf"', param("model", "=", "rf")),
    ("params.lr > 0.01", param("lr", ">", 0.01)),
    ("params.model like 'r%'", param("model", "like", "r%")),
    ("params.model ILIKE 'R%'", param("model", "ilike", "R%")),
    ("params.model not like 'r%'", param("model", "not like", "r%")),
    ("params.model Not ILike 'r%'", param("model", "not ilike", "r%")),
    ("params.model in ('rf', 'gbm')", param("model", "in", ("rf", "gbm"))),
    ("params.depth in ('3', 4)", param("depth", "in", ("3", 4.0))),
    ("params.flag = 'true'", param("flag", "=", "true")),
    ("params.s = 'it''s'", param("s", "=", "it's")),
    ("params.s = 'it\\'s'", param("s", "=", "it's")),
    ('params.s = "say \\"hi\\""', param("s", "=", 'say "hi"')),
    ("params.s = 'a\\\\b'", param("s", "=", "a\\b")),
    ("params.s like '50\\%'", param("s", "like", "50\\%")),  # kept for the store's LIKE
    ("params.s = ''", param("s", "=", "")),
    ("params.s = 'é ☃ \n'", param("s", "=", "é ☃ \n")),
    ("tags.team = 'core'", tag("team", "=", "core")),
    ("tag.n >= 3", tag("n", ">=", 3.0)),
    ("tags.note is null", tag("note", "is null", None)),
    ("status = 'FINISHED'", attr("status", "=", "FINISHED")),
    ("Status = 'FINISHED'", attr("status", "=", "FINISHED")),
    ("attributes.status = 'FINISHED'", attr("status", "=", "FINISHED")),
    ("attribute.name like 'exp%'", attr("name", "like", "exp%")),
    ("attr.RUN_ID in ('a', 'b')", attr("run_id", "in", ("a", "b"))),
    ("kind != 'pipeline'", attr("kind", "!=", "pipeline")),
    ("user = 'ana'", attr("user", "=", "ana")),
    ("parent_id is null", attr("parent_id", "is null", None)),
    ("start_time > 1700000000000", attr("start_time", ">", 1.7e12)),
    ("end_time is not null", attr("end_time", "is not null", None)),
    ("attributes.`end_time` < 5", attr("end_time", "<", 5.0)),
    (
        "metrics.a > 1 or metrics.b > 2 or metrics.c > 3",
        Or((metric("a", ">", 1.0), metric("b", ">", 2.0), metric("c", ">", 3.0))),
    ),
    (
        "metrics.a > 1 or metrics.b > 2 and metrics.c > 3",
        Or((metric("a", ">", 1.0), And((metric("b", ">", 2.0), metric("c", ">", 3.0))))),
    ),
    (
        "(metrics.a > 1 or metrics.b > 2) and metrics.c > 3",
        And((Or((metric("a", ">", 1.0), metric("b", ">", 2.0))), metric("c", ">", 3.0))),
    ),
    (
        "(metrics.a > 1 and metrics.b > 2) and metrics.c > 3",
        And((And((metric("a", ">", 1.0), metric("b", ">", 2.0))), metric("c", ">", 3.0))),
    ),
    (
        "not metrics.a > 1 and metrics.b > 2",
        And((Not(metric("a", ">", 1.0)), metric("b", ">", 2.0))),
    ),
    ("not not status = 'x'", Not(Not(attr("status", "=", "x")))),
    ("((status = 'x'))", attr("status", "=", "x")),
    ("NOT(status='x')", Not(attr("status", "=", "x"))),
    ("  \n\tmetrics.a\n>\t1  ", metric("a", ">", 1.0)),
]


@pytest.mark.parametrize(("text", "expected"), GOOD, ids=[t for t, _ in GOOD])
def test_parses(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_filter_is_none(text: str) -> None:
    assert parse_filter(text) is None


@pytest.mark.parametrize(("text", "op"), [("metrics.loss != nan", "!="), ("params.x = NaN", "=")])
def test_nan_value(text: str, op: str) -> None:
    parsed = parse_filter(text)
    assert isinstance(parsed, Comparison)
    assert parsed.op == op
    assert isinstance(parsed.value, float) and math.isnan(parsed.value)


def test_positions_point_at_each_comparison() -> None:
    text = "metrics.auc > 0.9 and (params.model = 'rf' or not status = 'x')"
    parsed = parse_filter(text)
    starts = [c.position for c in _comparisons(parsed)]
    assert starts == [0, 23, 50]


def test_position_is_not_part_of_equality() -> None:
    assert Comparison("metric", "a", "=", 1.0, 0) == Comparison("metric", "a", "=", 1.0, 9)


# --- examples that do not ---------------------------------------------------

BAD: list[tuple[str, int, str]] = [
    ("metrics.auc foo", 12, "expected a comparison operator after 'metrics.auc', got 'foo'"),
    ("metrics.auc", 11, "expected a comparison operator after 'metrics.auc', got end of filter"),
    ("metrics.auc >", 13, "expected a value (a quoted string or a number) after '>', got end"),
    ("metrics.auc > 'x'", 14, "expected a number for 'metrics.auc'"),
    ("metrics.auc in (1, 'x')", 19, "expected a number for 'metrics.auc'"),
    ("metrics.auc like '1%'", 12, "'like' cannot be used on 'metrics.auc'"),
    ("metrics.auc not ilike '1%'", 12, "'not ilike' cannot be used on 'metrics.auc'"),
    ("start_time like '1%'", 11, "'like' cannot be used on 'start_time'"),
    ("start_time > '2024-01-01'", 13, "expected a number for 'start_time'"),
    ("status = 1", 9, "expected a quoted string for 'status', got the number 1"),
    ("run_id in ('a', 2)", 16, "expected a quoted string for 'run_id'"),
    ("params.x like 3", 14, "expected a quoted string pattern after 'like'"),
    ("params.model = rf", 15, "got 'rf' (quote strings: 'rf')"),
    ("params.flag = true", 14, "got 'true'"),
    ("foo = 1", 0, "unknown attribute 'foo'; valid attributes are end_time, kind, name"),
    ("attributes.foo = 1", 11, "unknown attribute 'foo'"),
    ("bogus.x = 1", 0, "unknown entity 'bogus' in 'bogus.x'"),
    ("metrics = 1", 7, "expected '.' and a key after 'metrics'"),
    ("metrics. auc > 1", 8, "expected a key after 'metrics.', got ' '"),
    ("metrics.", 8, "expected a key after 'metrics.', got end of filter"),
    ('metrics."" > 1', 8, "expected a key after 'metrics.'"),
    ('metrics."abc > 1', 8, 'unterminated string: expected a closing "'),
    ("params.x = 'abc", 11, "unterminated string: expected a closing '"),
    ("params.x = 'abc\\'", 11, "unterminated string"),
    ("params.x = 'abc\\", 11, "unterminated string"),
    ("metrics.x ! 1", 10, "unexpected character '!'"),
    ("metrics.x > 1abc", 12, "invalid number '1abc'"),
    ("metrics.x > 1.2.3", 12, "invalid number '1.2.3'"),
    ("metrics.x > -", 12, "unexpected character '-'"),
    ("metrics.x > 1 ; drop", 14, "unexpected character ';'"),
    ("metrics.x = `a`", 12, "unexpected character '`'"),
    ("params.x not between 1", 13, "expected 'in', 'like' or 'ilike' after 'not', got 'between'"),
    ("status is nul", 10, "expected 'null' after 'is', got 'nul'"),
    ("status is not 'x'", 14, "expected 'null' after 'is not', got the string 'x'"),
    ("params.x in 1", 12, "expected '(' after 'in', got the number 1"),
    ("params.x in ()", 13, "after '(', got ')'"),
    ("params.x in (1,)", 15, "after ',', got ')'"),
    ("params.x in (1 2)", 15, "expected ',' or ')' in the list after 'in', got the number 2"),
    ("params.x in (1", 14, "expected ',' or ')'"),
    ("(metrics.a > 1", 14, "expected 'and', 'or' or ')' to close the '(' at position 0"),
    ("metrics.a > 1)", 13, "unmatched ')'"),
    ("metrics.a > 1 metrics.b > 2", 14, "expected 'and', 'or' or end of filter, got 'metrics.b'"),
    ("metrics.a > 1 and", 17, "expected an identifier such as metrics.auc"),
    ("and metrics.a > 1", 0, "expected an identifier such as metrics.auc, params.model or status"),
    ("()", 1, "expected an identifier"),
    ("not", 3, "got end of filter"),
    ("'it''s' = 1", 0, 'got the string "it\'s"'),
    ("metrics.a > 1 or or", 17, "expected an identifier"),
    ("metrics.a < nan", 12, "nan can only be compared with = or !=, not with '<'"),
    ("metrics.a in (1, -NaN)", 17, "nan can only be compared with = or !=, not with 'in'"),
    ("métrics.a > 1", 1, "unexpected character 'é' in a name"),
    ("metrics.aé > 1", 9, "unexpected character 'é' in a key (quote it: metrics.\"…\")"),
    ("metrics.a > é", 12, "unexpected character 'é'"),
    ("(" * 150 + "metrics.a > 1" + ")" * 150, 100, "nests deeper than 100 levels"),
    ("not " * 150 + "metrics.a > 1", 400, "nests deeper than 100 levels"),
]


@pytest.mark.parametrize(("text", "position", "message"), BAD, ids=[t[:40] for t, _, _ in BAD])
def test_rejects(text: str, position: int, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.position == position
    assert info.value.text == text
    assert message in str(info.value)


def test_error_message_points_at_the_token() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("metrics.auc foo")
    assert str(info.value).splitlines() == [
        "expected a comparison operator after 'metrics.auc', got 'foo' at position 12:",
        "  metrics.auc foo",
        "              ^",
    ]


def test_filter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="expected a value"):
        parse_filter("metrics.a >")
    assert issubclass(FilterSyntaxError, LoopmlError)


def test_filter_must_be_a_str() -> None:
    with pytest.raises(InvalidParameter, match="'filter' parameter must be a str"):
        parse_filter(b"metrics.a > 1")  # type: ignore[arg-type]


def test_attribute_catalogue() -> None:
    assert ATTRIBUTES == STRING_ATTRIBUTES | NUMBER_ATTRIBUTES
    assert {"start_time", "end_time"} == NUMBER_ATTRIBUTES
    assert {"status", "name", "run_id", "kind", "user", "parent_id"} == STRING_ATTRIBUTES


# --- order by ---------------------------------------------------------------


def test_order_by() -> None:
    assert parse_order_by(
        ["metrics.auc DESC", "start_time", "params.`a b` asc", " Tags.team  desc ", "Name"]
    ) == [
        OrderKey("metric", "auc", descending=True),
        OrderKey("attribute", "start_time", descending=False),
        OrderKey("param", "a b", descending=False),
        OrderKey("tag", "team", descending=True),
        OrderKey("attribute", "name", descending=False),
    ]
    assert parse_order_by([]) == []
    assert parse_order_by(("metrics.val.loss",)) == [OrderKey("metric", "val.loss")]


@pytest.mark.parametrize(
    ("item", "position", "message"),
    [
        ("metrics.auc DOWN", 12, "expected 'ASC', 'DESC' or end of sort key after 'metrics.auc'"),
        ("metrics.auc desc desc", 17, "got 'desc'"),
        ("", 0, "expected an identifier such as metrics.auc, params.model or status, got end"),
        ("foo", 0, "unknown attribute 'foo'"),
        ("metrics", 7, "expected '.' and a key after 'metrics'"),
        ("desc", 0, "unknown attribute 'desc'"),
        ("metrics.auc, metrics.b", 11, "got ','"),
    ],
)
def test_order_by_rejects(item: str, position: int, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_order_by(["status", item])
    assert info.value.text == item
    assert info.value.position == position
    assert message in str(info.value)


def test_order_by_needs_a_list() -> None:
    with pytest.raises(InvalidParameter, match=re.escape("write ['metrics.auc']")):
        parse_order_by("metrics.auc")
    with pytest.raises(InvalidParameter, match="type int"):
        parse_order_by([1])  # type: ignore[list-item]


# --- properties ---------------------------------------------------------------

_ALIASES = {
    "metric": ["metrics", "metric"],
    "param": ["params", "param"],
    "tag": ["tags", "tag"],
    "attribute": ["attributes", "attribute", "attr"],
}
_BARE_KEY = re.compile(r"[A-Za-z0-9_./-]+")
_numbers = st.floats(allow_nan=False)  # NaN is never equal to itself; tested above
_strings = st.text()
_keys = st.one_of(st.from_regex(_BARE_KEY, fullmatch=True), st.text(min_size=1))


@st.composite
def _comparison_nodes(draw: st.DrawFn) -> Comparison:
    entity = draw(st.sampled_from(["metric", "param", "tag", "attribute"]))
    scalars: st.SearchStrategy[float | str]
    if entity == "attribute":
        key = draw(st.sampled_from(sorted(ATTRIBUTES)))
        scalars = _numbers if key in NUMBER_ATTRIBUTES else _strings
        likes = key in STRING_ATTRIBUTES
    elif entity == "metric":
        key, scalars, likes = draw(_keys), _numbers, False
    else:
        key, scalars, likes = draw(_keys), st.one_of(_numbers, _strings), True
    ops = ["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"]
    op = draw(st.sampled_from([*ops, "like", "ilike", "not like", "not ilike"] if likes else ops))
    value: float | str | tuple[float | str, ...] | None
    if op in ("is null", "is not null"):
        value = None
    elif op in ("in", "not in"):
        value = tuple(draw(st.lists(scalars, min_size=1, max_size=4)))
    elif "like" in op:
        value = draw(_strings)
    else:
        value = draw(scalars)
    return Comparison(entity, key, op, value)  # type: ignore[arg-type]


_exprs = st.recursive(
    _comparison_nodes(),
    lambda children: st.one_of(
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=4).map(lambda ops: And(tuple(ops))),
        st.lists(children, min_size=2, max_size=4).map(lambda ops: Or(tuple(ops))),
    ),
    max_leaves=12,
)


class _Renderer:
    """Writes an AST back as filter text, varying everything the grammar lets vary."""

    def __init__(self, draw: Callable[[st.SearchStrategy[object]], object]) -> None:
        self._draw = draw
        self.identifiers: list[str] = []  # in textual order

    def pick(self, options: list[str]) -> str:
        return str(self._draw(st.sampled_from(options)))

    def word(self, word: str) -> str:
        return self.pick([word.lower(), word.upper(), word.title()])

    def space(self) -> str:
        return self.pick([" ", "  ", "\n", "\t "])

    def quote(self, text: str, quotes: str) -> str:
        q = self.pick(list(quotes))
        body = text.replace("\\", "\\\\")
        return q + body.replace(q, self.pick([q + q, "\\" + q])) + q

    def scalar(self, value: float | str) -> str:
        if isinstance(value, str):
            return self.quote(value, "'\"")
        if value.is_integer() and abs(value) < 1e15 and self._draw(st.booleans()):
            return str(int(value))
        return self.word(repr(value)) if math.isinf(value) else repr(value)

    def identifier(self, c: Comparison) -> str:
        if c.entity == "attribute" and self._draw(st.booleans()):
            text = self.word(c.key)
        else:
            key = c.key
            if c.entity == "attribute":
                key = self.word(key)
            if not _BARE_KEY.fullmatch(key) or self._draw(st.booleans()):
                key = self.quote(key, '"`')
            text = f"{self.word(self.pick(_ALIASES[c.entity]))}.{key}"
        self.identifiers.append(text)
        return text

    def comparison(self, c: Comparison) -> str:
        ident, sp = self.identifier(c), self.space
        op = {"=": self.pick(["=", "=="]), "!=": self.pick(["!=", "<>"])}.get(c.op, c.op)
        op = sp().join(self.word(part) for part in op.split(" "))
        if c.value is None:
            return f"{ident}{sp()}{op}"
        if isinstance(c.value, tuple):
            values = f",{sp()}".join(self.scalar(v) for v in c.value)
            return f"{ident}{sp()}{op}{sp()}({values})"
        return f"{ident}{sp()}{op}{sp()}{self.scalar(c.value)}"

    def render(self, expr: Expr) -> str:
        if isinstance(expr, Comparison):
            return self.comparison(expr)
        if isinstance(expr, Not):
            return f"{self.word('not')}{self.space()}{self.operand(expr.operand)}"
        joiner = "and" if isinstance(expr, And) else "or"
        return f"{self.space()}{self.word(joiner)}{self.space()}".join(
            self.operand(o) for o in expr.operands
        )

    def operand(self, expr: Expr) -> str:
        if isinstance(expr, Comparison):
            return self.render(expr)
        return f"({self.render(expr)})"


def _comparisons_of(expr: Expr) -> Iterator[Comparison]:
    if isinstance(expr, Comparison):
        yield expr
    elif isinstance(expr, Not):
        yield from _comparisons_of(expr.operand)
    else:
        for operand in expr.operands:
            yield from _comparisons_of(operand)


def _comparisons(expr: Expr | None) -> list[Comparison]:
    assert expr is not None
    return list(_comparisons_of(expr))


@given(expr=_exprs, data=st.data())
def test_rendered_ast_round_trips(expr: Expr, data: st.DataObject) -> None:
    renderer = _Renderer(data.draw)
    text = renderer.render(expr)
    parsed = parse_filter(text)
    assert parsed == expr
    for comparison, identifier in zip(_comparisons(parsed), renderer.identifiers, strict=True):
        assert text.startswith(identifier, comparison.position)


_FRAGMENTS = [
    "metrics.auc", "params.x", "tags.t", "status", "attr.name", "start_time", "foo",
    "metrics.", 'metrics."a b"', "`", "'s'", '"s"', "'", '"', "\\", "1", "-1.5e3", "nan",
    "-inf", "1e", "=", "==", "!=", "<>", "<", "<=", ">", ">=", "!", "and", "or", "not",
    "in", "is", "null", "like", "ilike", "(", ")", ",", " ", "\n", "é", "\x00",
]  # fmt: skip
_soup = st.lists(st.sampled_from(_FRAGMENTS), max_size=20).map("".join)


@given(text=st.one_of(st.text(), _soup))
def test_arbitrary_text_parses_or_raises_filter_syntax_error(text: str) -> None:
    try:
        parsed = parse_filter(text)
    except FilterSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        assert exc.text == text
    else:
        assert parsed is None or isinstance(parsed, Comparison | And | Or | Not)
        assert all(c.op in OPERATORS for c in _comparisons(parsed)) if parsed else True


@given(item=st.one_of(st.text(), _soup))
def test_arbitrary_sort_key_parses_or_raises_filter_syntax_error(item: str) -> None:
    try:
        keys = parse_order_by([item])
    except FilterSyntaxError as exc:
        assert 0 <= exc.position <= len(item)
    else:
        assert len(keys) == 1
