"""Performance captures: frame-time CSVs and hardware-monitoring logs to `PERF_RECORD` rows.

`parse` detects the tool from the file's content, never from its name:

- MSI Afterburner logs by their first line (record type 0, "Hardware monitoring log");
- per-frame CSVs (PresentMon in its `--v1_metrics`, `--v2_metrics` and current default
  column sets, OCAT, CapFrameX, NVIDIA FrameView) by their header names, through the
  layout table in `layouts`. `//Key=Value` lines before the header (CapFrameX) become
  attributes, as do system-information columns (GPU, CPU, resolution, ...).

A header that matches no known tool rejects the file with the header in the reason.
`frames` documents how each canonical field is derived; `afterburner` the log's rules.
"""

from __future__ import annotations

import logging

import pyarrow as pa

from playtest_spark.parsers.base import FileContext, FileSource, ParseResult, Problem, bound_excerpt
from playtest_spark.parsers.perf.afterburner import parse_afterburner
from playtest_spark.parsers.perf.frames import QPC_FREQUENCY_OPTION, parse_frames
from playtest_spark.parsers.perf.layouts import TOOL_LAYOUTS, detect_layout
from playtest_spark.parsers.perf.preamble import first_line, is_afterburner, locate_header, to_utf8
from playtest_spark.parsers.perf.records import PERF_ARROW_SCHEMA, empty_perf_table

__all__ = ["PERF_ARROW_SCHEMA", "QPC_FREQUENCY_OPTION", "TOOL_LAYOUTS", "parse"]

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
# Maximum number of header characters quoted in a rejection reason.
_MAX_HEADER_IN_REASON = 300


def parse(source: FileSource, context: FileContext) -> ParseResult:
    """Parse one performance capture file.

    Args:
        source: The landed file.
        context: Session and path of the file; `context.options` may set
            `qpc_frequency_hz` for counter-tick time columns.

    Returns:
        Samples as an Arrow table with `PERF_ARROW_SCHEMA`, problems for rows that were
        not loaded, and system attributes. A file that cannot be read at all gives a
        result with one `file` problem and no records.
    """
    raw = source.read_bytes()
    if not raw or raw.isspace():
        return _rejected("the file is empty; re-export the capture from the tool.", format=UNKNOWN)

    data, start = to_utf8(raw)
    if is_afterburner(first_line(data, start)):
        return parse_afterburner(data, start)

    preamble = locate_header(data, start)
    if preamble is None:
        return _rejected(
            "no CSV header line was found (only comments or blank lines); "
            "check that the file is a performance capture.",
            excerpt=data[start : start + 1000],
            format=UNKNOWN,
        )

    layout = detect_layout(preamble.names, has_comments=bool(preamble.comments))
    if layout is None:
        header = bound_excerpt(preamble.header)[:_MAX_HEADER_IN_REASON]
        return _rejected(
            f"the header matches no known performance tool (PresentMon, OCAT, CapFrameX, "
            f"FrameView, Afterburner); header was: {header!r}. Add a layout for this tool or "
            "export in a supported format.",
            excerpt=preamble.header,
            format=UNKNOWN,
        )

    try:
        return parse_frames(preamble, layout, context.options)
    except pa.ArrowException as error:
        # Arrow rejects a body it cannot tokenize at all (for example a stray quote that
        # never closes); report the file rather than fail the session.
        logger.warning("reading %s as %s failed: %s", context.path, layout.tool, error)
        return _rejected(
            f"the {layout.tool} body could not be read: {error}. Check the file for an "
            "unclosed quote or binary content.",
            excerpt=data[preamble.body_offset : preamble.body_offset + 1000],
            format=layout.tool,
        )


def _rejected(reason: str, excerpt: str | bytes = "", format: str = UNKNOWN) -> ParseResult:
    """Return a whole-file rejection with an empty table, so every result has the schema."""
    return ParseResult(
        records=empty_perf_table(),
        problems=[Problem("file", reason, bound_excerpt(excerpt))],
        format=format,
    )
