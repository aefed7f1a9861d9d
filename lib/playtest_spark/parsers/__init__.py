"""File parsers: plain Python and Arrow, no Spark. See `base` for the contract."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from playtest_spark.parsers.base import FileContext, FileSource, ParseResult

Parser = Callable[[FileSource, FileContext], ParseResult]

# Kind of a landed file -> module whose `parse` function reads it.
PARSER_MODULES: dict[str, str] = {
    "events": "playtest_spark.parsers.events",
    "performance": "playtest_spark.parsers.perf",
    "logs": "playtest_spark.parsers.logs",
    "forms": "playtest_spark.parsers.forms",
    "recordings": "playtest_spark.parsers.recordings",
}


def parser_for(kind: str) -> Parser:
    """Return the parse function of a file kind.

    Raises:
        KeyError: the kind has no parser.
    """
    return importlib.import_module(PARSER_MODULES[kind]).parse
