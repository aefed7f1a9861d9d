"""Decoding of text files as Windows and consoles write them.

Handles UTF-8 with or without BOM, UTF-16 LE or BE with or without BOM, legacy
single-byte files, and line ends `\\r\\n`, `\\r\\r\\n`, bare `\\r` and bare `\\n` mixed in one
file. No BOM and no `\\r` survives into the returned text.
"""

from __future__ import annotations

import codecs
import re

_LINE_END = re.compile(r"\r*\n|\r+")


def detect_encoding(data: bytes) -> str:
    """Return the codec name of `data`: a BOM wins, then a UTF-16 guess from NUL bytes."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    sample = data[:4096]
    if len(sample) >= 4:
        even_nuls = sample[0::2].count(0)
        odd_nuls = sample[1::2].count(0)
        half = len(sample) // 2
        # ASCII text in UTF-16 has a NUL in every other byte.
        if odd_nuls > half * 0.3 and even_nuls < half * 0.05:
            return "utf-16-le"
        if even_nuls > half * 0.3 and odd_nuls < half * 0.05:
            return "utf-16-be"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def decode_text(data: bytes) -> str:
    """Decode bytes to text with `\\n` line ends and no BOM.

    Bytes that are invalid in the detected encoding become U+FFFD rather than failing,
    so one bad byte never loses a file.
    """
    encoding = detect_encoding(data)
    text = data.decode(encoding, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    return normalize_newlines(text)


def normalize_newlines(text: str) -> str:
    """Turn `\\r\\n`, `\\r\\r\\n` and lone `\\r` into `\\n`."""
    if "\r" not in text:
        return text
    return _LINE_END.sub("\n", text)


def split_lines(text: str) -> list[str]:
    """Split decoded text into lines, dropping the empty string after a final newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines
