"""Reading the body of a frame-time CSV with Arrow, by header name, tolerating bad rows.

The fast path hands the body to `pyarrow.csv` with declared column types, reading only
the columns a layout maps. Rows with the wrong number of fields are skipped by Arrow's
invalid-row handler and reported. When a numeric cell does not parse, the body is read
again as text, and the rows with bad numbers are reported and dropped, so a bad cell
costs only its own row.

Ragged files are handled from a sample of the first lines: when the first data row has
the header's field count and later rows have fewer, the later rows are read without the
system-information columns (or without the trailing columns), so no column shifts.

NOTE: line numbers assume no quoted field spans several lines, which frame-time tools
do not write.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from playtest_spark.parsers.base import Problem
from playtest_spark.parsers.perf.layouts import SYSTEM_INFO_COLUMNS, normalize_name
from playtest_spark.parsers.perf.preamble import Preamble

logger = logging.getLogger(__name__)

# Cell values read as null.
NULL_VALUES = ["", "NA", "N/A", "n/a"]
# Lines sampled after the header to detect ragged rows.
SAMPLE_LINES = 64
SAMPLE_BYTES = 1 << 18
# Regions at least this large are read with Arrow's thread pool.
THREADED_READ_BYTES = 4 << 20
# Problems kept per file; further bad rows are counted in one summary problem.
MAX_PROBLEMS = 1000

FLOAT = "float"
TICKS = "ticks"
TEXT = "text"

_ARROW_TYPES = {FLOAT: pa.float64(), TICKS: pa.int64(), TEXT: pa.string()}
_FLOAT_PATTERN = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$|^(?i:[+-]?(?:nan|inf|infinity))$"
_INT_PATTERN = r"^[+-]?\d+$"


@dataclasses.dataclass(frozen=True)
class ColumnRequest:
    """One source column to read.

    Attributes:
        key: Name of the column in the returned table.
        index: Position of the column in the header.
        kind: `float`, `ticks` (int64) or `text`.
    """

    key: str
    index: int
    kind: str


@dataclasses.dataclass
class Body:
    """The parsed body.

    Attributes:
        table: One column per request key, in request order, typed by kind.
        row_numbers: 1-based data row number of each table row, counting rejected rows.
        problems: Rows that were not loaded.
        first_row: Fields of the first data row when it has the header's field count,
            for system-information attributes; None otherwise.
    """

    table: pa.Table
    row_numbers: np.ndarray
    problems: list[Problem]
    first_row: list[str] | None


@dataclasses.dataclass(frozen=True)
class _Shape:
    """Field layout of the body rows, decided from a sample of lines."""

    indices: list[int]  # header index of each body field (-1 for fields past the header)
    special_first: bool  # the first data row is longer and is read on its own
    first_row: list[str] | None
    first_line_end: int  # byte offset after the first data line
    first_line_no: int  # file line number of the first data line


def read_body(preamble: Preamble, requests: list[ColumnRequest]) -> Body:
    """Read the rows after the header into typed columns.

    Args:
        preamble: Where the header and body are.
        requests: The columns to read.

    Returns:
        The body. Rows that could not be read are reported in its `problems`.
    """
    shape = _sample_shape(preamble)
    if shape is None:
        return Body(_empty_table(requests), np.zeros(0, np.int64), [], None)

    start = shape.first_line_end if shape.special_first else preamble.body_offset
    region = memoryview(preamble.data)[start:]
    reader = _RegionReader(preamble, region, shape.indices, requests)
    table, invalid = reader.read()

    locator = _LineLocator(
        region, shape.first_line_no if shape.special_first else preamble.header_line_no
    )
    problems = _ProblemLog()
    total_rows = table.num_rows + len(invalid)
    is_loaded = np.ones(total_rows, dtype=bool)
    for row in invalid:
        is_loaded[row.number - 1] = False
        problems.add(
            lambda row=row: locator.line_of(row.number),
            f"row has {row.actual_columns} fields but the header has {row.expected_columns}; "
            "the row was skipped. Check for a truncated or merged line.",
            lambda row=row: row.text,
        )
    row_numbers = np.flatnonzero(is_loaded).astype(np.int64) + 1

    if reader.bad_rows is not None:
        for position in np.flatnonzero(reader.bad_rows):
            number = int(row_numbers[position])
            problems.add(
                lambda number=number: locator.line_of(number),
                reader.bad_reasons[int(position)]
                + "; the row was skipped. Fix the value or remove the row.",
                lambda number=number: locator.text_of(number),
            )
        good = ~reader.bad_rows
        table = table.filter(pa.array(good))
        row_numbers = row_numbers[good]

    if shape.special_first:
        first_table, first_problem = _read_first_row(shape, requests)
        row_numbers = row_numbers + 1
        if first_problem is not None:
            problems.add(lambda: shape.first_line_no, *first_problem)
        else:
            table = pa.concat_tables([first_table, table])
            row_numbers = np.concatenate([np.ones(1, np.int64), row_numbers])

    return Body(table, row_numbers, problems.sorted(), shape.first_row)


class _ProblemLog:
    """Row problems, kept up to `MAX_PROBLEMS` and counted beyond.

    Line numbers and excerpts are passed as callables, so rows past the limit cost no
    line lookup.
    """

    def __init__(self) -> None:
        self._kept: list[tuple[int, Problem]] = []
        self._dropped = 0

    def add(self, line_no: Callable[[], int], reason: str, excerpt: Callable[[], str]) -> None:
        if len(self._kept) >= MAX_PROBLEMS:
            self._dropped += 1
            return
        line = line_no()
        self._kept.append((line, Problem(f"line {line}", reason, excerpt())))

    def sorted(self) -> list[Problem]:
        """Return the kept problems in file order, then a summary of the dropped ones."""
        problems = [problem for _, problem in sorted(self._kept, key=lambda item: item[0])]
        if self._dropped:
            problems.append(
                Problem(
                    "file",
                    f"{self._dropped} more rows were skipped for the same kinds of reasons "
                    "as above.",
                )
            )
        return problems


def _sample_shape(preamble: Preamble) -> _Shape | None:
    """Decide the body's field layout from the first lines after the header."""
    data = preamble.data
    header_count = len(preamble.names)
    counts: list[int] = []
    first_row: list[str] | None = None
    first_line_end = preamble.body_offset
    first_line_no = preamble.header_line_no + 1
    line_no = preamble.header_line_no
    position = preamble.body_offset
    limit = min(len(data), preamble.body_offset + SAMPLE_BYTES)
    while position < len(data) and len(counts) < SAMPLE_LINES and (position < limit or not counts):
        end = data.find(b"\n", position)
        next_position = len(data) if end < 0 else end + 1
        line = (
            data[position : len(data) if end < 0 else end]
            .decode("utf-8", errors="replace")
            .rstrip("\r")
        )
        position = next_position
        line_no += 1
        if not line:
            continue
        fields = next(csv.reader([line]))
        if first_row is None:
            first_row = fields
            first_line_end = next_position
            first_line_no = line_no
        counts.append(len(fields))
    if not counts:
        return None

    later = counts[1:] or counts
    body_count, frequency = collections.Counter(later).most_common(1)[0]
    if body_count != header_count and frequency * 2 <= len(later):
        # No majority: rows of other lengths are reported, not taken as a layout.
        body_count = header_count
    names = [normalize_name(name) for name in preamble.names]
    system = [i for i, name in enumerate(names) if name in SYSTEM_INFO_COLUMNS]
    if body_count == header_count:
        indices = list(range(header_count))
    elif body_count < header_count and header_count - len(system) == body_count:
        # Later rows leave out the system-information columns, wherever they are.
        indices = [i for i in range(header_count) if i not in system]
    elif body_count < header_count and set(range(body_count, header_count)) <= set(system):
        # Later rows stop before trailing system-information columns.
        indices = list(range(body_count))
    elif body_count > header_count:
        # Rows with more fields than the header (often a trailing comma): extras are unnamed.
        indices = list(range(header_count)) + [-1] * (body_count - header_count)
    else:
        # Short rows that do not line up with system-information columns are reported.
        body_count = header_count
        indices = list(range(header_count))
    special_first = counts[0] == header_count and body_count != header_count
    if body_count != header_count:
        logger.debug("ragged rows: %d header fields, %d in later rows", header_count, body_count)
    return _Shape(
        indices=indices,
        special_first=special_first,
        first_row=first_row if counts[0] == header_count else None,
        first_line_end=first_line_end,
        first_line_no=first_line_no,
    )


class _RegionReader:
    """Arrow CSV read of a byte region, with a typed fast path and a text slow path."""

    def __init__(
        self,
        preamble: Preamble,
        region: memoryview,
        indices: list[int],
        requests: list[ColumnRequest],
    ) -> None:
        self._region = region
        self._names = [
            f"c{index}" if index >= 0 else f"extra{n}" for n, index in enumerate(indices)
        ]
        present = set(indices)
        self._requests = requests
        self._readable = [request for request in requests if request.index in present]
        self._header = preamble.names
        self.bad_rows: np.ndarray | None = None
        self.bad_reasons: dict[int, str] = {}

    def read(self) -> tuple[pa.Table, list[pacsv.InvalidRow]]:
        """Return the requested columns and the rows with a wrong field count."""
        if not self._readable:
            raw, invalid = self._read_arrow(typed=False, include=[self._names[0]])
            return _null_columns(self._requests, raw.num_rows), invalid
        try:
            raw, invalid = self._read_arrow(typed=True)
            columns = {request.key: raw.column(f"c{request.index}") for request in self._readable}
        except pa.ArrowInvalid as error:
            logger.debug("typed read failed (%s); reading as text to find bad cells", error)
            raw, invalid = self._read_arrow(typed=False)
            columns = self._convert_text(raw)
        return _assemble(self._requests, columns, raw.num_rows), invalid

    def _read_arrow(self, typed: bool, include: list[str] | None = None) -> tuple[pa.Table, list]:
        """Read the region; re-read without threads if Arrow could not number bad rows.

        Arrow numbers invalid rows only in a single-threaded read, so a large file with
        bad rows is read twice. Small regions are read on one thread, which is faster
        for them than starting the thread pool.
        """
        thread_choices = (True, False) if len(self._region) >= THREADED_READ_BYTES else (False,)
        for use_threads in thread_choices:
            invalid: list[pacsv.InvalidRow] = []

            def skip(row: pacsv.InvalidRow, collected: list = invalid) -> str:
                collected.append(row)
                return "skip"

            include_columns = include or [f"c{request.index}" for request in self._readable]
            types = (
                {f"c{r.index}": _ARROW_TYPES[r.kind] for r in self._readable}
                if typed
                else {name: pa.string() for name in include_columns}
            )
            table = pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(self._region)),
                read_options=pacsv.ReadOptions(column_names=self._names, use_threads=use_threads),
                parse_options=pacsv.ParseOptions(invalid_row_handler=skip),
                convert_options=pacsv.ConvertOptions(
                    include_columns=include_columns,
                    column_types=types,
                    null_values=NULL_VALUES,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
            if not use_threads or all(row.number is not None for row in invalid):
                break
        return table, invalid

    def _convert_text(self, raw: pa.Table) -> dict[str, pa.ChunkedArray]:
        """Convert text columns to their kinds, recording rows with unparseable numbers."""
        bad = np.zeros(raw.num_rows, dtype=bool)
        columns: dict[str, pa.ChunkedArray] = {}
        for request in self._readable:
            text = raw.column(f"c{request.index}")
            converted, bad_mask = convert_text_column(text, request.kind)
            columns[request.key] = converted
            if bad_mask is None:
                continue
            column_name = self._header[request.index].strip()
            for position in np.flatnonzero(bad_mask):
                if int(position) not in self.bad_reasons:
                    value = text[int(position)].as_py()
                    self.bad_reasons[int(position)] = (
                        f"invalid number {value!r} in column {column_name!r}"
                    )
            bad |= bad_mask
        self.bad_rows = bad
        return columns


def convert_text_column(
    text: pa.ChunkedArray | pa.Array, kind: str
) -> tuple[pa.ChunkedArray | pa.Array, np.ndarray | None]:
    """Convert a text column to its kind.

    Cells are trimmed (tools pad numbers with spaces) and `NULL_VALUES` become null.

    Returns:
        The converted column, and a mask of cells that were not valid numbers (None for
        text columns or when every cell is valid). Invalid cells become null.
    """
    trimmed = pc.utf8_trim_whitespace(text)
    is_null = pc.or_kleene(pc.is_null(trimmed), pc.is_in(trimmed, value_set=pa.array(NULL_VALUES)))
    is_null = pc.fill_null(is_null, True)
    cleaned = pc.if_else(is_null, pa.scalar(None, pa.string()), trimmed)
    if kind == TEXT:
        return cleaned, None
    pattern = _INT_PATTERN if kind == TICKS else _FLOAT_PATTERN
    valid = pc.fill_null(pc.match_substring_regex(cleaned, pattern), False)
    bad = pc.and_(pc.invert(valid), pc.invert(is_null))
    usable = pc.if_else(valid, cleaned, pa.scalar(None, pa.string()))
    converted = pc.cast(usable, _ARROW_TYPES[kind])
    bad_mask = np.asarray(bad.to_numpy(zero_copy_only=False), dtype=bool)
    return converted, bad_mask if bad_mask.any() else None


def _read_first_row(
    shape: _Shape, requests: list[ColumnRequest]
) -> tuple[pa.Table, tuple[str, Callable[[], str]] | None]:
    """Convert the first data row (read by the csv module) like the body's columns.

    Returns:
        A one-row table, or an empty one and the problem's reason and excerpt.
    """
    fields = shape.first_row or []
    columns: dict[str, pa.Array] = {}
    for request in requests:
        value = fields[request.index] if request.index < len(fields) else None
        converted, bad = convert_text_column(pa.array([value], pa.string()), request.kind)
        if bad is not None:
            reason = (
                f"invalid number {value!r} in the first data row; the row was skipped. "
                "Fix the value or remove the row."
            )
            return _empty_table(requests), (reason, lambda: ",".join(fields))
        columns[request.key] = converted
    return pa.table(columns), None


class _LineLocator:
    """Maps data row numbers of a region (non-empty lines) to file line numbers and text.

    Computed lazily, and only when a problem needs a position, because it scans the
    region's bytes.
    """

    def __init__(self, region: memoryview, line_before: int) -> None:
        self._region = region
        self._line_before = line_before
        self._starts: np.ndarray | None = None
        self._ends: np.ndarray | None = None
        self._physical: np.ndarray | None = None

    def _index(self) -> None:
        if self._physical is not None:
            return
        raw = np.frombuffer(self._region, dtype=np.uint8)
        newlines = np.flatnonzero(raw == 10)
        starts = np.concatenate([[0], newlines + 1])
        ends = np.concatenate([newlines, [len(raw)]])
        lengths = ends - starts
        trailing_cr = np.zeros(len(starts), dtype=bool)
        has_chars = lengths > 0
        trailing_cr[has_chars] = raw[ends[has_chars] - 1] == 13
        non_empty = lengths - trailing_cr > 0
        self._physical = np.flatnonzero(non_empty)
        self._starts = starts
        self._ends = ends - trailing_cr

    def line_of(self, row_number: int) -> int:
        """Return the 1-based file line of the region's `row_number`-th non-empty line."""
        self._index()
        assert self._physical is not None
        if row_number - 1 >= len(self._physical):
            return self._line_before + row_number
        return self._line_before + int(self._physical[row_number - 1]) + 1

    def text_of(self, row_number: int) -> str:
        """Return the text of the region's `row_number`-th non-empty line."""
        self._index()
        assert self._physical is not None
        assert self._starts is not None
        assert self._ends is not None
        if row_number - 1 >= len(self._physical):
            return ""
        line = int(self._physical[row_number - 1])
        start, end = int(self._starts[line]), int(self._ends[line])
        return bytes(self._region[start : min(end, start + 4096)]).decode("utf-8", errors="replace")


def _assemble(
    requests: list[ColumnRequest], columns: dict[str, pa.ChunkedArray], rows: int
) -> pa.Table:
    arrays = []
    for request in requests:
        column = columns.get(request.key)
        arrays.append(column if column is not None else pa.nulls(rows, _ARROW_TYPES[request.kind]))
    return pa.table(arrays, names=[request.key for request in requests])


def _null_columns(requests: list[ColumnRequest], rows: int) -> pa.Table:
    return _assemble(requests, {}, rows)


def _empty_table(requests: list[ColumnRequest]) -> pa.Table:
    return _null_columns(requests, 0)
