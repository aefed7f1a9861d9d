"""The contract between file parsers and the Spark job.

A parser is a plain function `parse(source: FileSource, context: FileContext) ->
ParseResult`. It imports no Spark, runs inside Spark's Python workers, and is unit-tested
on bytes alone. It never raises for bad content: a broken record becomes a `Problem`, a
broken file becomes a `Problem` at position `file`, and the rest of the file still loads.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any, Protocol

import pyarrow as pa

# Maximum length of the excerpt of a bad record kept in quarantine, in characters.
MAX_EXCERPT_CHARS = 500


class FileSource(Protocol):
    """A landed file that a parser may read whole or in ranges."""

    @property
    def name(self) -> str:
        """File name without folders."""

    @property
    def size(self) -> int:
        """Size in bytes."""

    def read_bytes(self) -> bytes:
        """Return the whole content."""

    def open(self) -> IO[bytes]:
        """Open a seekable binary stream, for parsers that read only a header."""


@dataclasses.dataclass(frozen=True)
class BytesSource:
    """An in-memory `FileSource`, for tests and small files."""

    name: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read_bytes(self) -> bytes:
        return self.data

    def open(self) -> IO[bytes]:
        return io.BytesIO(self.data)


@dataclasses.dataclass(frozen=True)
class FileContext:
    """Facts the job has about a file before parsing it.

    Attributes:
        session_id: Session the file belongs to.
        path: Path relative to the session directory, such as `perf/capture.csv`.
        kind: Folder kind: `events`, `performance`, `logs`, `forms` or `recordings`.
        options: Per-session parser options from `session.json` (for example the
            event field mapping under `event_fields`).
    """

    session_id: str
    path: str
    kind: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Problem:
    """A record or file that was not loaded, with where it was and why.

    Attributes:
        position: `line N`, `row N`, `record N`, `byte N` or `file` (1-based).
        reason: What is wrong and what to do about it, for a person to act on.
        excerpt: The offending text, cut to `MAX_EXCERPT_CHARS`.
    """

    position: str
    reason: str
    excerpt: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "excerpt", bound_excerpt(self.excerpt))


@dataclasses.dataclass
class ParseResult:
    """Output of a parser for one file.

    Attributes:
        records: Rows of the kind's `*_RECORD` schema (see `playtest_spark.schemas`),
            either as dicts (missing keys are null) or as an Arrow table whose columns
            are a subset of that schema.
        problems: Rejected records, or one `file` problem when nothing could be read.
        attributes: Hardware and system facts found in the file (`gpu`, `cpu`, `os`,
            `driver`, ...), merged into the session's attributes.
        format: Name of the detected format, such as `presentmon-v2` or `unreal`.
    """

    records: Sequence[Mapping[str, Any]] | pa.Table = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    format: str = "unknown"

    @property
    def record_count(self) -> int:
        """Number of records, for either representation."""
        if isinstance(self.records, pa.Table):
            return self.records.num_rows
        return len(self.records)

    @classmethod
    def rejected(cls, reason: str, excerpt: str = "", format: str = "unknown") -> ParseResult:
        """Return a result that rejects the whole file."""
        return cls(problems=[Problem("file", reason, excerpt)], format=format)


def bound_excerpt(text: str | bytes | None) -> str:
    """Cut an excerpt to `MAX_EXCERPT_CHARS`, decoding bytes leniently."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text[: MAX_EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    # NUL is shown escaped: SQL databases such as PostgreSQL reject it in text.
    text = text.replace("\x00", "\\0")
    if len(text) > MAX_EXCERPT_CHARS:
        return text[: MAX_EXCERPT_CHARS - 1] + "…"
    return text


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Yield consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
