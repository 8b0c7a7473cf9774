"""The small part of OData ``$filter`` that pimbot and the Graph docs examples use.

Grammar: ``expr := and ('or' and)*``, ``and := term ('and' term)*``,
``term := '(' expr ')' | name ('eq'|'ne') literal``; literals are ``'text'`` (``''`` escapes a
quote), ``true``, ``false``, ``null`` and bare GUIDs or numbers. Anything else is a BadRequest,
as on Graph.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<open>\()|(?P<close>\))"
    r"|(?P<word>[A-Za-z_][\w./-]*|[0-9][\w.-]*))"
)
_KEYWORDS = {"true": True, "false": False, "null": None}


class FilterSyntaxError(ValueError):
    """The ``$filter`` cannot be parsed; the message is what Graph would say."""


@dataclass(frozen=True)
class Comparison:
    field: str
    operator: str  # "eq" | "ne"
    value: Any


@dataclass(frozen=True)
class Junction:
    operator: str  # "and" | "or"
    parts: tuple[Filter, ...]


Filter = Comparison | Junction


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise FilterSyntaxError(f"Invalid filter clause: syntax error at position {position}")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek_word(self) -> str | None:
        if self.index < len(self.tokens) and self.tokens[self.index][0] == "word":
            return self.tokens[self.index][1].lower()
        return None

    def take(self, kind: str) -> str:
        if self.index >= len(self.tokens) or self.tokens[self.index][0] != kind:
            raise FilterSyntaxError("Invalid filter clause: unexpected end or token")
        self.index += 1
        return self.tokens[self.index - 1][1]

    def parse(self) -> Filter:
        result = self.expression()
        if self.index != len(self.tokens):
            raise FilterSyntaxError("Invalid filter clause: unexpected text after the expression")
        return result

    def expression(self) -> Filter:
        return self._junction("or", self.conjunction)

    def conjunction(self) -> Filter:
        return self._junction("and", self.term)

    def _junction(self, keyword: str, operand: Callable[[], Filter]) -> Filter:
        parts = [operand()]
        while self.peek_word() == keyword:
            self.index += 1
            parts.append(operand())
        return parts[0] if len(parts) == 1 else Junction(keyword, tuple(parts))

    def term(self) -> Filter:
        if self.index < len(self.tokens) and self.tokens[self.index][0] == "open":
            self.index += 1
            inner = self.expression()
            self.take("close")
            return inner
        field = self.take("word")
        operator = self.take("word").lower()
        if operator not in ("eq", "ne"):
            raise FilterSyntaxError(f"Invalid filter clause: operator '{operator}' not supported")
        return Comparison(field, operator, self.literal())

    def literal(self) -> Any:
        if self.index < len(self.tokens) and self.tokens[self.index][0] == "string":
            raw = self.take("string")
            return raw[1:-1].replace("''", "'")
        word = self.take("word")
        return _KEYWORDS.get(word.lower(), word)


def parse_filter(text: str) -> Filter:
    return _Parser(text).parse()


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        # Directory string comparisons (ids, UPNs, mail) are case-insensitive on Graph.
        return actual.lower() == expected.lower()
    return bool(actual == expected)


def matches(condition: Filter, record: Mapping[str, Any]) -> bool:
    if isinstance(condition, Junction):
        results = (matches(part, record) for part in condition.parts)
        return all(results) if condition.operator == "and" else any(results)
    equal = _equal(record.get(condition.field), condition.value)
    return equal if condition.operator == "eq" else not equal


def equalities(condition: Filter) -> dict[str, Any]:
    """``field eq value`` pairs of a pure conjunction (what "filter on X is required" checks)."""
    if isinstance(condition, Comparison):
        return {condition.field: condition.value} if condition.operator == "eq" else {}
    if condition.operator == "or":
        return {}
    found: dict[str, Any] = {}
    for part in condition.parts:
        found.update(equalities(part))
    return found


def fields(condition: Filter) -> set[str]:
    if isinstance(condition, Comparison):
        return {condition.field}
    return set().union(*(fields(part) for part in condition.parts))
