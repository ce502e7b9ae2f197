"""The lexer of run-search filters and sort keys (see :mod:`loopml.tracking._filter`).

It cuts the text into :class:`Token` values on demand and reports each mistake as a
:class:`~loopml.errors.FilterSyntaxError` that points at the offending character.

Example:
    >>> lexer = Lexer("metrics.auc > 0.9", "filter")
    >>> [lexer.next().kind for _ in range(4)]
    ['ident', 'op', 'number', 'end']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

from loopml.errors import FilterSyntaxError

__all__ = ["Lexer", "Scalar", "Token", "TokenKind"]

#: A value in a filter: numbers are always floats, quoted strings are strs.
Scalar: TypeAlias = float | str

# As written -> normalised.
_SYMBOL_OPS = {
    "==": "=",
    "!=": "!=",
    "<>": "!=",
    "<=": "<=",
    ">=": ">=",
    "=": "=",
    "<": "<",
    ">": ">",
}

_WHITESPACE = re.compile(r"\s*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_BARE_KEY = re.compile(r"[A-Za-z0-9_./-]+", re.ASCII)
_NUMBER = re.compile(
    r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?(?:infinity|inf|nan)(?![A-Za-z0-9_.])",
    re.ASCII | re.IGNORECASE,
)
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]+", re.ASCII)
_ESCAPABLE = frozenset("\\'\"`")

TokenKind: TypeAlias = Literal["ident", "word", "number", "string", "op", "(", ")", ",", "end"]
_PUNCTUATION: dict[str, TokenKind] = {"(": "(", ")": ")", ",": ","}


@dataclass(frozen=True)
class Token:
    """One token of the text: its kind, the text as written and where it starts."""

    kind: TokenKind
    text: str  # as written in the source
    position: int
    # number: float; string: the unescaped str; word: the lowercase word; op: normalised.
    value: Scalar | None = None
    # ident only: the entity as written, the key, and where the key starts.
    entity: str = ""
    key: str = ""
    key_position: int = 0


class Lexer:
    """Cuts the text into tokens on demand, so the first error reported is the
    leftmost one."""

    def __init__(self, text: str, end_name: str) -> None:
        self.text = text
        self.end_name = end_name
        self._pos = 0

    def error(self, message: str, position: int) -> FilterSyntaxError:
        return FilterSyntaxError(message, self.text, position)

    def next(self) -> Token:
        text = self.text
        ws = _WHITESPACE.match(text, self._pos)
        start = ws.end() if ws else self._pos
        if start >= len(text):
            self._pos = start
            return Token("end", "", start)
        char = text[start]
        token: Token
        if char in _PUNCTUATION:
            token = Token(_PUNCTUATION[char], char, start)
        elif char in "=!<>":
            two = text[start : start + 2]
            symbol = two if two in _SYMBOL_OPS else char
            if symbol not in _SYMBOL_OPS:
                raise self.error(f"unexpected character {char!r}; did you mean '!='?", start)
            token = Token("op", symbol, start, _SYMBOL_OPS[symbol])
        elif char in "'\"":
            value, end = self._quoted(start)
            token = Token("string", text[start:end], start, value)
        elif (number := _NUMBER.match(text, start)) is not None:
            tail = _NUMBER_TAIL.match(text, number.end())
            if tail is not None:
                bad = text[start : tail.end()]
                raise self.error(f"invalid number {bad!r}", start)
            token = Token("number", number.group(), start, float(number.group()))
        elif (word := _WORD.match(text, start)) is not None:
            token = self._word_or_identifier(word)
        else:
            raise self.error(f"unexpected character {char!r}", start)
        self._pos = start + len(token.text)
        return token

    def _word_or_identifier(self, word: re.Match[str]) -> Token:
        text, start, end = self.text, word.start(), word.end()
        self._reject_glued_letter(end, "a name")
        if not text.startswith(".", end):
            return Token("word", word.group(), start, word.group().lower())
        key_start = end + 1
        if text[key_start : key_start + 1] in ('"', "`"):
            key, key_end = self._quoted(key_start)
            if not key:
                raise self.error(f"expected a key after {text[start:key_start]!r}", key_start)
        elif (bare := _BARE_KEY.match(text, key_start)) is not None:
            key, key_end = bare.group(), bare.end()
            self._reject_glued_letter(key_end, f'a key (quote it: {text[start:key_start]}"…")')
        else:
            got = repr(text[key_start]) if key_start < len(text) else f"end of {self.end_name}"
            raise self.error(
                f"expected a key after {text[start:key_start]!r}, got {got}", key_start
            )
        return Token(
            "ident",
            text[start:key_end],
            start,
            entity=word.group(),
            key=key,
            key_position=key_start,
        )

    def _reject_glued_letter(self, position: int, where: str) -> None:
        # Names and bare keys are ASCII; without this check "métrics" would read as
        # the name "m" and fail with a misleading message.
        char = self.text[position : position + 1]
        if char and (char.isalnum() or char == "_"):
            raise self.error(f"unexpected character {char!r} in {where}", position)

    def _quoted(self, start: int) -> tuple[str, int]:
        """Read the quoted string opening at ``start``; return it and the end offset."""
        text, quote = self.text, self.text[start]
        parts: list[str] = []
        i = start + 1
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                escaped = text[i + 1]
                parts.append(escaped if escaped in _ESCAPABLE else char + escaped)
                i += 2
            elif char == quote:
                if text.startswith(quote, i + 1):  # a doubled quote stands for itself
                    parts.append(quote)
                    i += 2
                else:
                    return "".join(parts), i + 1
            else:
                parts.append(char)
                i += 1
        raise self.error(f"unterminated string: expected a closing {quote}", start)
