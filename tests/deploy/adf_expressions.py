"""A small evaluator for the Data Factory expressions this repository's pipelines use.

It covers the expression grammar (function calls, string and number literals, property
access, `@{...}` interpolation, `@@` escapes) and only these functions: trigger,
pipeline, activity, item, formatDateTime, addDays, ticks, add, sub, div, less, range,
concat. Any other function, `utcnow` in particular, raises `UnsupportedFunction`, so a
pipeline that starts using one makes its test fail until the evaluator learns it.

Semantics follow the Data Factory expression reference: timestamps are ISO 8601 strings
in UTC, `addDays` returns the round-trip format `yyyy-MM-ddTHH:mm:ss.fffffffZ`, `ticks`
counts 100-nanosecond intervals since 0001-01-01, and `div` of two integers truncates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TICKS_PER_SECOND = 10_000_000
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[().,\[\]]))"
)
_DATETIME_TOKENS = re.compile(r"yyyy|fffffff|MM|dd|HH|mm|ss")


class UnsupportedFunction(ValueError):
    """The expression calls a function this evaluator does not implement."""


@dataclass
class Context:
    """Values that `trigger()`, `pipeline()`, `activity()` and `item()` return."""

    trigger: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    global_parameters: Mapping[str, Any] = field(default_factory=dict)
    activities: Mapping[str, Any] = field(default_factory=dict)
    item: Any = None


def evaluate_value(value: Any, context: Context) -> Any:
    """Evaluate a JSON value as Data Factory does: an `Expression` object, an `@` string,
    a string with `@{...}` parts, or a literal."""
    if isinstance(value, Mapping) and value.get("type") == "Expression":
        return evaluate_value(value["value"], context)
    if not isinstance(value, str):
        return value
    if value.startswith("@@"):
        return value[1:]
    if value.startswith("@") and not value.startswith("@{"):
        return evaluate(value[1:], context)
    return _interpolate(value, context)


def evaluate(expression: str, context: Context) -> Any:
    """Evaluate one expression (without its leading `@`)."""
    parser = _Parser(_tokenize(expression), context)
    result = parser.expression()
    if parser.position != len(parser.tokens):
        raise ValueError(f"unexpected text after position {parser.position} in {expression!r}")
    return result


def function_names(expression: str) -> set[str]:
    """Return the names of the functions an expression calls, without evaluating it."""
    tokens = _tokenize(expression)
    return {
        value
        for (kind, value), (_, following) in zip(tokens, tokens[1:] + [("", "")])
        if kind == "name" and following == "("
    }


def _interpolate(text: str, context: Context) -> str:
    parts: list[str] = []
    position = 0
    while (start := text.find("@{", position)) != -1:
        end = text.index("}", start)
        parts.append(text[position:start])
        parts.append(str(evaluate(text[start + 2:end], context)))
        position = end + 1
    parts.append(text[position:])
    return "".join(parts)


def _tokenize(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expression.rstrip()):
        match = _TOKEN.match(expression, position)
        if not match:
            raise ValueError(f"cannot read {expression[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], context: Context) -> None:
        self.tokens = tokens
        self.position = 0
        self.context = context

    def expression(self) -> Any:
        value = self._primary()
        while self._peek() in (".", "["):
            if self._take() == ".":
                kind, name = self.tokens[self.position]
                self.position += 1
                value = value[name]
            else:
                key = self.expression()
                self._expect("]")
                value = value[key]
        return value

    def _primary(self) -> Any:
        kind, text = self.tokens[self.position]
        self.position += 1
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "name":
            self._expect("(")
            arguments: list[Any] = []
            if self._peek() != ")":
                arguments.append(self.expression())
                while self._peek() == ",":
                    self._take()
                    arguments.append(self.expression())
            self._expect(")")
            return self._call(text, arguments)
        raise ValueError(f"unexpected {text!r}")

    def _call(self, name: str, arguments: list[Any]) -> Any:
        context = self.context
        if name == "trigger":
            return context.trigger
        if name == "pipeline":
            return {"parameters": context.parameters, "globalParameters": context.global_parameters}
        if name == "activity":
            return context.activities[arguments[0]]
        if name == "item":
            return context.item
        function = _FUNCTIONS.get(name)
        if function is None:
            raise UnsupportedFunction(f"function {name}() is not supported by this evaluator")
        return function(*arguments)

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        text = self.tokens[self.position][1]
        self.position += 1
        return text

    def _expect(self, text: str) -> None:
        if self._peek() != text:
            raise ValueError(f"expected {text!r} at token {self.position}, found {self._peek()!r}")
        self.position += 1


def parse_timestamp(text: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp or date; a missing zone means UTC."""
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", text)
    if match:
        base, fraction, zone = match.groups()
        micro = (fraction or ".0")[1:7].ljust(6, "0")
        value = dt.datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone in (None, 'Z') else zone}")
    else:
        value = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def format_timestamp(value: dt.datetime, fmt: str = "o") -> str:
    """Format a UTC timestamp with a .NET format string ('o' or yyyy MM dd HH mm ss fffffff)."""
    if fmt == "o":
        fmt = "yyyy-MM-ddTHH:mm:ss.fffffffZ"
    fields = {
        "yyyy": f"{value.year:04d}",
        "MM": f"{value.month:02d}",
        "dd": f"{value.day:02d}",
        "HH": f"{value.hour:02d}",
        "mm": f"{value.minute:02d}",
        "ss": f"{value.second:02d}",
        "fffffff": f"{value.microsecond * 10:07d}",
    }
    return _DATETIME_TOKENS.sub(lambda match: fields[match.group(0)], fmt)


def _ticks(timestamp: str) -> int:
    delta = parse_timestamp(timestamp) - dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


def _add_days(timestamp: str, days: int, fmt: str = "o") -> str:
    return format_timestamp(parse_timestamp(timestamp) + dt.timedelta(days=days), fmt)


def _div(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        quotient = abs(left) // abs(right)
        return quotient if (left >= 0) == (right > 0) else -quotient
    return left / right


def _range(start: int, count: int) -> list[int]:
    if count < 0:
        raise ValueError(f"range() count {count} is negative")
    return list(range(start, start + count))


_FUNCTIONS = {
    "formatDateTime": lambda timestamp, fmt="o": format_timestamp(parse_timestamp(timestamp), fmt),
    "addDays": _add_days,
    "ticks": _ticks,
    "add": lambda left, right: left + right,
    "sub": lambda left, right: left - right,
    "div": _div,
    "less": lambda left, right: left < right,
    "range": _range,
    "concat": lambda *parts: "".join(str(part) for part in parts),
}
