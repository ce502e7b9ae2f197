"""The checked grammar of ``expression`` rules, with explicit limits on their cost.

A rule is stored with a dataset's schema and evaluated by whoever validates, so
it is untrusted input. It is parsed with :mod:`ast` and accepted only if it is
comparisons, boolean logic and arithmetic over columns and literals, within these
limits (pandas' ``eval`` then runs it, vectorised):

- at most :data:`MAX_RULE_CHARS` characters, :data:`MAX_RULE_NODES` syntax nodes
  and :data:`MAX_RULE_DEPTH` levels of nesting;
- integer literals of at most :data:`MAX_LITERAL_BITS` bits, and no integer
  computed from literals alone larger than :data:`MAX_CONSTANT_BITS` bits (pandas
  computes those with Python's unbounded integers: ``9**9**9`` would take hours);
- ``**`` only with a numeric literal exponent of at most :data:`MAX_EXPONENT`, and
  no ``**`` inside the base of another;
- text and lists only as operands of comparisons (``"x" * 10**9`` would allocate
  a gigabyte);
- no calls, attributes, subscripts, lambdas, comprehensions or ``@`` variables.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from loopml.errors import InvalidParameter

__all__ = [
    "MAX_CONSTANT_BITS",
    "MAX_EXPONENT",
    "MAX_LITERAL_BITS",
    "MAX_RULE_CHARS",
    "MAX_RULE_DEPTH",
    "MAX_RULE_NODES",
    "rule_columns",
]

MAX_RULE_CHARS = 1_000
MAX_RULE_NODES = 200
MAX_RULE_DEPTH = 30
MAX_LITERAL_BITS = 64
MAX_CONSTANT_BITS = 1_024
MAX_EXPONENT = 64

_OPERATORS = (
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.BitAnd, ast.BitOr,
)  # fmt: skip
_UNARY = (ast.Not, ast.Invert, ast.USub, ast.UAdd)
_COMPARATORS = (
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
)  # fmt: skip
_PLUMBING = (ast.Expression, ast.Load, ast.And, ast.Or, *_OPERATORS, *_UNARY, *_COMPARATORS)
_BACKTICKED = re.compile(r"`([^`]+)`")
_MARKER = re.compile(r"__bt(\d+)__")


@dataclass(frozen=True)
class _Value:
    """What the checker knows of a sub-expression's value.

    ``bits`` bounds the size of an integer computed from literals alone (``None``
    when the value depends on a column or is not an integer); ``text`` marks
    strings and lists, which may only be compared.
    """

    bits: int | None = None
    text: bool = False


_UNKNOWN = _Value()


def rule_columns(rule: str) -> list[str]:
    """Return the columns ``rule`` uses, in order of appearance, after checking it.

    Raises:
        InvalidParameter: the rule does not parse, uses anything but comparisons,
            boolean logic, arithmetic, columns and literals, or exceeds a limit;
            the message names the rule and the reason.
    """
    if not isinstance(rule, str):
        raise InvalidParameter(f"A rule must be text. Got {type(rule).__name__} instead.")
    if len(rule) > MAX_RULE_CHARS:
        raise InvalidParameter(
            f"The rule {_shown(rule)} is {len(rule)} characters long; the limit is "
            f"{MAX_RULE_CHARS}."
        )
    backticked = _BACKTICKED.findall(rule)
    plain = _BACKTICKED.sub(lambda m: f"__bt{backticked.index(m.group(1))}__", rule)
    try:
        tree = ast.parse(plain.replace("&", " & ").replace("|", " | "), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise InvalidParameter(f"The rule {_shown(rule)} does not parse: {reason}.") from None
    checker = _Checker(rule, backticked)
    checker.shape(tree)
    checker.value(tree.body)
    return checker.columns


class _Checker:
    def __init__(self, rule: str, backticked: list[str]) -> None:
        self.rule = rule
        self.backticked = backticked
        self.columns: list[str] = []

    def fail(self, reason: str) -> InvalidParameter:
        return InvalidParameter(f"The rule {_shown(self.rule)} is refused: {reason}.")

    def shape(self, tree: ast.AST) -> None:
        """Count nodes and depth without recursing (a deep tree must not blow the stack)."""
        count = 0
        stack: list[tuple[ast.AST, int]] = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if count > MAX_RULE_NODES:
                raise self.fail(f"it has more than {MAX_RULE_NODES} parts")
            if depth > MAX_RULE_DEPTH:
                raise self.fail(f"it nests deeper than {MAX_RULE_DEPTH} levels")
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

    def value(self, node: ast.expr) -> _Value:
        if isinstance(node, ast.Constant):
            return self.constant(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                self.value(operand)
            self.operators(node.ops)
            return _UNKNOWN
        if isinstance(node, ast.BoolOp):
            for operand in node.values:
                self.operand(operand)
            self.operators([node.op])
            return _UNKNOWN
        if isinstance(node, ast.UnaryOp):
            self.operators([node.op])
            inner = self.operand(node.operand)
            return _Value(None if inner.bits is None else inner.bits + 1)
        if isinstance(node, ast.BinOp):
            return self.binary(node)
        if isinstance(node, ast.List | ast.Tuple):
            for element in node.elts:
                if not isinstance(element, ast.Constant | ast.UnaryOp):
                    raise self.fail("lists may only hold literals")
                self.value(element)
            return _Value(text=True)
        raise self.fail(f"{type(node).__name__} is not allowed")

    def operand(self, node: ast.expr) -> _Value:
        """An operand of arithmetic or logic: never text or a list."""
        found = self.value(node)
        if found.text:
            raise self.fail("text and lists may only be compared, not computed with")
        return found

    def operators(self, ops: Sequence[ast.AST]) -> None:
        for op in ops:
            if not isinstance(op, _PLUMBING):
                raise self.fail(f"{type(op).__name__} is not allowed")

    def constant(self, value: object) -> _Value:
        if value is None or isinstance(value, bool | float):
            return _UNKNOWN
        if isinstance(value, int):
            if value.bit_length() > MAX_LITERAL_BITS:
                raise self.fail(f"the literal {value} is larger than {MAX_LITERAL_BITS} bits")
            return _Value(bits=value.bit_length())
        if isinstance(value, str):
            return _Value(text=True)
        raise self.fail(f"the literal {value!r} is not a number, text, true/false or None")

    def name(self, identifier: str) -> _Value:
        found = _MARKER.fullmatch(identifier)
        quoted = found is not None and int(found.group(1)) < len(self.backticked)
        column = self.backticked[int(found.group(1))] if found and quoted else identifier
        if column not in self.columns:
            self.columns.append(column)
        return _UNKNOWN

    def binary(self, node: ast.BinOp) -> _Value:
        self.operators([node.op])
        if isinstance(node.op, ast.Pow):
            return self.power(node)
        left, right = self.operand(node.left), self.operand(node.right)
        if left.bits is None or right.bits is None:
            return _UNKNOWN
        if isinstance(node.op, ast.Mult):
            bits = left.bits + right.bits
        elif isinstance(node.op, ast.Div):
            return _UNKNOWN  # a float
        else:
            bits = max(left.bits, right.bits) + 1
        return self.bounded(bits)

    def power(self, node: ast.BinOp) -> _Value:
        exponent = _literal_number(node.right)
        if exponent is None or abs(exponent) > MAX_EXPONENT:
            raise self.fail(
                f"'**' needs a number literal exponent between -{MAX_EXPONENT} and {MAX_EXPONENT}"
            )
        if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(node.left)):
            raise self.fail("'**' may not be nested inside the base of another '**'")
        base = self.operand(node.left)
        if base.bits is None or not isinstance(exponent, int) or exponent < 0:
            return _UNKNOWN
        return self.bounded(base.bits * exponent)

    def bounded(self, bits: int) -> _Value:
        if bits > MAX_CONSTANT_BITS:
            raise self.fail(
                f"a value computed from its literals may exceed {MAX_CONSTANT_BITS} bits"
            )
        return _Value(bits=bits)


def _literal_number(node: ast.expr) -> int | float | None:
    """The value of a (signed) int or float literal, else ``None``."""
    sign = 1
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    value = node.value if isinstance(node, ast.Constant) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return sign * value
    return None


def _shown(rule: str) -> str:
    """The rule for a message, shortened: it may be long."""
    return repr(rule) if len(rule) <= 80 else f"{rule[:77]!r}…"
