"""Everything before the CSV body: encoding, comment lines and the header line.

The body itself is left as bytes for Arrow's CSV reader, so a large file is never
decoded line by line in Python.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import re

from playtest_spark.parsers.text import decode_text, detect_encoding

# How far to look for the header line; a longer preamble is not a known tool's file.
MAX_PREAMBLE_LINES = 500
MAX_PREAMBLE_BYTES = 1 << 20

# Maximum length of an attribute value kept from a comment or system-information column.
MAX_ATTRIBUTE_CHARS = 500

_COMMENT_PREFIX = "//"
_AFTERBURNER_MARKER = "hardware monitoring log"
_SNAKE = re.compile(r"[^0-9a-z]+")


@dataclasses.dataclass(frozen=True)
class Preamble:
    """Location of the header and body of a CSV file.

    Attributes:
        data: The file as UTF-8 bytes (transcoded if it was UTF-16 or a legacy code page).
        body_offset: Byte offset of the first line after the header.
        header_line_no: 1-based line number of the header in the file.
        header: Header line text, without the line end.
        names: Header fields as written (CSV-unquoted, not trimmed).
        comments: `(line number, text after //)` of comment lines before the header.
    """

    data: bytes
    body_offset: int
    header_line_no: int
    header: str
    names: list[str]
    comments: list[tuple[int, str]]


def to_utf8(data: bytes) -> tuple[bytes, int]:
    """Return the file as UTF-8 bytes and the offset where its text starts (after a BOM).

    ASCII and UTF-8 input is returned as it is, without a copy; UTF-16 and legacy code
    pages are transcoded.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data, len(codecs.BOM_UTF8)
    # UTF-16 goes first: its NUL bytes are ASCII, so `isascii` cannot rule it out.
    if detect_encoding(data[:4096]).startswith("utf-16"):
        return decode_text(data).encode("utf-8"), 0
    if data.isascii():
        return data, 0
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace").encode("utf-8"), 0
    return data, 0


def first_line(data: bytes, start: int) -> str:
    """Return the first non-blank line from `start`, decoded, for format sniffing."""
    position = start
    limit = min(len(data), start + MAX_PREAMBLE_BYTES)
    while position < limit:
        end = data.find(b"\n", position, limit)
        end = limit if end < 0 else end
        line = data[position:end].decode("utf-8", errors="replace").strip()
        if line:
            return line
        position = end + 1
    return ""


def is_afterburner(line: str) -> bool:
    """Return whether a first line is an MSI Afterburner log header (record type 0)."""
    record_type, _, rest = line.partition(",")
    return record_type.strip() in {"0", "00"} and _AFTERBURNER_MARKER in rest.lower()


def locate_header(data: bytes, start: int) -> Preamble | None:
    """Find the header line after blank lines and `//` comment lines.

    Returns:
        The preamble, or None when no header line is found in the first
        `MAX_PREAMBLE_LINES` lines.
    """
    comments: list[tuple[int, str]] = []
    position = start
    line_no = 0
    while (
        position < len(data)
        and line_no < MAX_PREAMBLE_LINES
        and position - start < MAX_PREAMBLE_BYTES
    ):
        end = data.find(b"\n", position)
        next_position = len(data) if end < 0 else end + 1
        end = len(data) if end < 0 else end
        line_no += 1
        line = data[position:end].decode("utf-8", errors="replace").rstrip("\r")
        if not line.strip():
            position = next_position
            continue
        if line.lstrip().startswith(_COMMENT_PREFIX):
            comments.append((line_no, line.lstrip()[len(_COMMENT_PREFIX) :]))
            position = next_position
            continue
        names = next(csv.reader([line]))
        return Preamble(data, next_position, line_no, line, names, comments)
    return None


def snake_case(key: str) -> str:
    """Return `key` as a snake_case attribute name: `GPU Memory (MB)` -> `gpu_memory_mb`."""
    return _SNAKE.sub("_", key.strip().lower()).strip("_")


def comment_attributes(comments: list[tuple[int, str]], names: dict[str, str]) -> dict[str, str]:
    """Turn `Key=Value` comment lines into attributes.

    Args:
        comments: Comment lines as in `Preamble.comments`.
        names: Normalized key -> attribute name; other keys are snake_cased.

    Returns:
        Attribute name -> value, values kept as written (trimmed and bounded). Lines
        without `=` are ignored; a later duplicate key wins.
    """
    attributes: dict[str, str] = {}
    for _, text in comments:
        key, separator, value = text.partition("=")
        if not separator or not key.strip():
            continue
        name = names.get(key.strip().lower()) or snake_case(key)
        if name:
            attributes[name] = value.strip()[:MAX_ATTRIBUTE_CHARS]
    return attributes
