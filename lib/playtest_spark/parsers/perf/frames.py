"""Per-frame CSV files (PresentMon, OCAT, CapFrameX, FrameView) to canonical samples.

Canonical fields and how they are obtained:

- `frame_time_ms` is the time between this frame's Present() call and the previous one of
  the same swap chain, as PresentMon 1.x, its current default set, OCAT, CapFrameX and
  FrameView write it (`MsBetweenPresents`). PresentMon 2.x `--v2_metrics` has no such
  column: its `FrameTime` runs from this frame's CPU start to the next one's. Because a
  frame's CPU start is the end of the previous frame's Present() call, the time between
  presents is the previous frame's `CPUWait` plus this frame's `CPUBusy`. For the first
  frame of each swap chain that is unknown, so it stays null.
- `display_latency_ms` counts from the Present() call to the display, as
  `MsUntilDisplayed` does. PresentMon 2.x `DisplayLatency` counts from the CPU start, so
  the frame's `CPUBusy` is subtracted. It is null for dropped frames (tools write 0).
- `dropped` comes from a `Dropped` column where there is one. The current PresentMon sets
  have none and write `NA` display metrics for frames that were not displayed, so a
  null display latency means dropped. `AllowsTearing` and `PresentMode` do not indicate
  dropped frames and are not used. In `--v2_metrics` files PresentMon also writes `NA`
  for the first frame of a swap chain it has no history for, so there an `NA` on a
  sequence's first frame gives null rather than dropped.
- `offset_s` is the Present() time in seconds since the file's first sample, taken from
  the first time column a layout lists. Counter ticks are converted as `timebase`
  explains; CPU-start times get the frame's `CPUBusy` added so every set measures the
  same instant. Rows stay in file order, even where the time steps backwards.
- `sample_no` is the 1-based data row number in the file, so rejected rows leave gaps.
- `sample_time` is set only from date-time columns (taken as UTC).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from playtest_spark.parsers.base import ParseResult, Problem
from playtest_spark.parsers.perf import layouts
from playtest_spark.parsers.perf.csv_body import FLOAT, TEXT, TICKS, ColumnRequest, read_body
from playtest_spark.parsers.perf.preamble import (
    MAX_ATTRIBUTE_CHARS,
    Preamble,
    comment_attributes,
    snake_case,
)
from playtest_spark.parsers.perf.records import perf_table
from playtest_spark.parsers.perf.timebase import (
    as_float,
    estimate_ticks_per_ms,
    previous_in_sequence,
    relative_seconds,
    relative_ticks,
    sequence_ids,
)

logger = logging.getLogger(__name__)

_TEXT_KEYS = frozenset({"process_name", "process_id", "swap_chain", "dropped"})
_TIME_KEY = "time"
_UNIT_KINDS = {
    layouts.SECONDS: FLOAT,
    layouts.MILLISECONDS: FLOAT,
    layouts.TICKS: TICKS,
    layouts.DATETIME: TEXT,
}
_TRUE = pa.array(["1", "true", "yes"])
_FALSE = pa.array(["0", "false", "no"])
# Derived millisecond values are rounded to 0.1 us, the resolution of their inputs, so
# that `16.4223 + 0.1003` is stored as 16.5226 and not 16.522599999999997.
DERIVED_MS_DECIMALS = 4
# Rows used to estimate a counter frequency; more add time, not precision.
ESTIMATE_ROWS = 20_000
# Option that gives the QueryPerformanceCounter frequency of the capture machine.
QPC_FREQUENCY_OPTION = "qpc_frequency_hz"


def parse_frames(
    preamble: Preamble, layout: layouts.ToolLayout, options: Mapping[str, Any]
) -> ParseResult:
    """Map the body of a per-frame CSV to canonical samples.

    Args:
        preamble: The located header.
        layout: The detected tool's layout.
        options: Parser options; `qpc_frequency_hz` sets the counter frequency.
    """
    names = [layouts.normalize_name(name) for name in preamble.names]
    index_of: dict[str, int] = {}
    for index, name in enumerate(names):
        index_of.setdefault(name, index)

    requests, candidates = _requests(layout, index_of)
    time_column = next((column for column in layout.times if column.name in index_of), None)
    if time_column is not None:
        requests.append(
            ColumnRequest(_TIME_KEY, index_of[time_column.name], _UNIT_KINDS[time_column.unit])
        )

    body = read_body(preamble, requests)
    attributes = comment_attributes(preamble.comments, layouts.ATTRIBUTE_NAMES)
    attributes.update(_system_attributes(names, body.first_row))
    problems = list(body.problems)
    rows = body.table.num_rows
    if rows == 0 and not problems:
        problems.append(
            Problem("file", "the file has a header but no data rows; nothing was loaded.")
        )

    frame = _Frame(body.table, candidates, rows)
    columns = _canonical(frame, layout, time_column, options, problems)
    columns["sample_no"] = pa.array(body.row_numbers, pa.int64())
    table = perf_table(columns, rows, layout.tool)
    return ParseResult(records=table, problems=problems, attributes=attributes, format=layout.tool)


def _requests(
    layout: layouts.ToolLayout, index_of: Mapping[str, int]
) -> tuple[list[ColumnRequest], dict[str, list[str]]]:
    """Return the columns to read and, per source key, the request keys to coalesce."""
    requests: list[ColumnRequest] = []
    candidates: dict[str, list[str]] = {}
    for key, names in layout.columns.items():
        kind = TEXT if key in _TEXT_KEYS else FLOAT
        for position, name in enumerate(names):
            if name in index_of:
                request_key = f"{key}.{position}"
                requests.append(ColumnRequest(request_key, index_of[name], kind))
                candidates.setdefault(key, []).append(request_key)
    return requests, candidates


class _Frame:
    """Typed body columns, looked up by source key with candidates coalesced."""

    def __init__(self, table: pa.Table, candidates: Mapping[str, list[str]], rows: int) -> None:
        self.table = table
        self.candidates = candidates
        self.rows = rows
        self._previous: np.ndarray | None = None

    def has(self, key: str) -> bool:
        return key in self.candidates

    def column(self, key: str) -> pa.ChunkedArray | None:
        keys = self.candidates.get(key)
        if not keys:
            return None
        columns = [self.table.column(name) for name in keys]
        return columns[0] if len(columns) == 1 else pc.coalesce(*columns)

    def floats(self, key: str) -> np.ndarray | None:
        """Return a source key as float64 values with NaN for null, or None when absent."""
        column = self.column(key)
        return None if column is None else as_float(column)

    def previous(self, limit: int | None = None) -> np.ndarray:
        """Return the previous row of the same swap chain (or process) per row, -1 for none.

        Args:
            limit: Look only at the first `limit` rows (for estimates on large files).
        """
        if limit is not None and limit < self.rows:
            if self._previous is not None:
                # A previous row always comes earlier in the file, so a prefix stays valid.
                return self._previous[:limit]
            return previous_in_sequence(
                sequence_ids([key.slice(0, limit) for key in self._keys()], limit)
            )
        if self._previous is None:
            self._previous = previous_in_sequence(sequence_ids(self._keys(), self.rows))
        return self._previous

    def _keys(self) -> list[pa.ChunkedArray]:
        if self.has("process_id") or self.has("swap_chain"):
            names = ("process_id", "swap_chain")
        else:
            names = ("process_name",)
        return [column for column in (self.column(name) for name in names) if column is not None]


def _canonical(
    frame: _Frame,
    layout: layouts.ToolLayout,
    time_column: layouts.TimeColumn | None,
    options: Mapping[str, Any],
    problems: list[Problem],
) -> dict[str, Any]:
    cpu_busy = frame.floats("cpu_busy_ms")
    if layout.frame_time_rule == layouts.FRAME_TIME_CPU_CHAIN:
        frame_time = _frame_time_from_cpu_chain(frame, cpu_busy)
    else:
        frame_time = frame.floats("frame_time_ms")

    raw_display = frame.floats("display_latency_ms")
    dropped = _dropped(frame, layout, raw_display)
    display = raw_display
    if raw_display is not None and layout.display_anchor == layouts.CPU_START:
        busy = cpu_busy if cpu_busy is not None else np.full(frame.rows, np.nan)
        display = np.round(raw_display - busy, DERIVED_MS_DECIMALS)
    if display is not None and dropped is not None:
        dropped_mask = np.asarray(
            pc.fill_null(dropped, False).to_numpy(zero_copy_only=False), dtype=bool
        )
        display = np.where(dropped_mask, np.nan, display)

    columns: dict[str, Any] = {
        "frame_time_ms": frame_time,
        "cpu_busy_ms": cpu_busy,
        "gpu_busy_ms": frame.floats("gpu_busy_ms"),
        "display_latency_ms": display,
        "dropped": dropped,
        "cpu_util_pct": frame.floats("cpu_util_pct"),
        "gpu_util_pct": frame.floats("gpu_util_pct"),
        "memory_mb": frame.floats("memory_mb"),
        "gpu_memory_mb": frame.floats("gpu_memory_mb"),
        "process_name": frame.column("process_name"),
    }
    if time_column is not None and frame.rows:
        offsets, sample_time = _offsets(frame, time_column, frame_time, cpu_busy, options, problems)
        columns["offset_s"] = offsets
        columns["sample_time"] = sample_time
    return columns


def _frame_time_from_cpu_chain(frame: _Frame, cpu_busy: np.ndarray | None) -> np.ndarray | None:
    """Return previous frame's CPU wait + this frame's CPU busy: the time between presents."""
    cpu_wait = frame.floats("cpu_wait_ms")
    if cpu_busy is None or cpu_wait is None:
        return None
    previous = frame.previous()
    frame_time = np.full(frame.rows, np.nan)
    has_previous = previous >= 0
    frame_time[has_previous] = cpu_wait[previous[has_previous]] + cpu_busy[has_previous]
    return np.round(frame_time, DERIVED_MS_DECIMALS)


def _dropped(
    frame: _Frame, layout: layouts.ToolLayout, raw_display: np.ndarray | None
) -> pa.Array | None:
    if layout.dropped_rule == layouts.DROPPED_FLAG:
        column = frame.column("dropped")
        if column is None:
            return None
        text = pc.utf8_lower(pc.utf8_trim_whitespace(column))
        is_true = pc.is_in(text, value_set=_TRUE)
        is_false = pc.is_in(text, value_set=_FALSE)
        flags = pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))
        return flags.combine_chunks() if isinstance(flags, pa.ChunkedArray) else flags
    if layout.dropped_rule in (
        layouts.DROPPED_NOT_DISPLAYED,
        layouts.DROPPED_NOT_DISPLAYED_AFTER_FIRST,
    ):
        if raw_display is None:
            return None
        not_displayed = np.isnan(raw_display)
        unknown = np.zeros(frame.rows, dtype=bool)
        if layout.dropped_rule == layouts.DROPPED_NOT_DISPLAYED_AFTER_FIRST:
            unknown = not_displayed & (frame.previous() < 0)
        return pa.array(not_displayed, pa.bool_(), mask=unknown)
    return None


def _offsets(
    frame: _Frame,
    time_column: layouts.TimeColumn,
    frame_time: np.ndarray | None,
    cpu_busy: np.ndarray | None,
    options: Mapping[str, Any],
    problems: list[Problem],
) -> tuple[np.ndarray, pa.Array | None]:
    """Return `offset_s` per row and `sample_time` (None unless the column is a date-time)."""
    raw = frame.table.column(_TIME_KEY)
    sample_time = None
    if time_column.unit == layouts.SECONDS:
        seconds = as_float(raw)
    elif time_column.unit == layouts.MILLISECONDS:
        seconds = as_float(raw) / 1000.0
    elif time_column.unit == layouts.DATETIME:
        sample_time = _parse_datetimes(raw)
        if sample_time is None:
            problems.append(
                Problem(
                    "file",
                    f"date-time column {time_column.name!r} is not ISO 8601 "
                    f"(first value {raw[0].as_py()!r}); offset_s and sample_time are null.",
                )
            )
            return np.full(frame.rows, np.nan), None
        seconds = as_float(pc.cast(sample_time, pa.int64())) / 1e6
    else:
        seconds = _tick_seconds(frame, time_column, raw, frame_time, options, problems)

    if time_column.anchor == layouts.CPU_START and cpu_busy is not None:
        # Present() starts when the CPU work of the frame ends.
        seconds = seconds + np.nan_to_num(cpu_busy, nan=0.0) / 1000.0
    return relative_seconds(seconds), sample_time


def _tick_seconds(
    frame: _Frame,
    time_column: layouts.TimeColumn,
    raw: pa.ChunkedArray,
    frame_time: np.ndarray | None,
    options: Mapping[str, Any],
    problems: list[Problem],
) -> np.ndarray:
    relative = relative_ticks(raw)
    ticks_per_ms = _option_ticks_per_ms(options, problems)
    if ticks_per_ms is None:
        ticks_per_ms = _estimate_ticks_per_ms(frame, time_column, relative, frame_time)
    if ticks_per_ms is None:
        problems.append(
            Problem(
                "file",
                f"cannot convert {time_column.name!r} counter ticks to seconds: no frame pair "
                "gives "
                f"the counter frequency; offset_s is null. Set the parser option "
                f"{QPC_FREQUENCY_OPTION!r} to the capture machine's QueryPerformanceFrequency.",
            )
        )
        return np.full(frame.rows, np.nan)
    return relative / (ticks_per_ms * 1000.0)


def _estimate_ticks_per_ms(
    frame: _Frame,
    time_column: layouts.TimeColumn,
    relative: np.ndarray,
    frame_time: np.ndarray | None,
) -> float | None:
    """Estimate the counter frequency from the first `ESTIMATE_ROWS` rows."""
    rows = min(frame.rows, ESTIMATE_ROWS)
    previous = frame.previous(limit=rows)
    if time_column.anchor == layouts.CPU_START:
        # A CPU start follows the previous frame's CPU start by that frame's CPU frame time.
        cpu_frame = frame.floats("cpu_frame_ms")
        if cpu_frame is None:
            return None
        intervals = np.full(rows, np.nan)
        has_previous = previous >= 0
        intervals[has_previous] = cpu_frame[previous[has_previous]]
    elif frame_time is None:
        return None
    else:
        intervals = frame_time[:rows]
    return estimate_ticks_per_ms(relative[:rows], intervals, previous)


def _option_ticks_per_ms(options: Mapping[str, Any], problems: list[Problem]) -> float | None:
    value = options.get(QPC_FREQUENCY_OPTION)
    if value is None:
        return None
    try:
        hz = float(value)
    except (TypeError, ValueError):
        hz = 0.0
    if hz > 0:
        return hz / 1000.0
    problems.append(
        Problem(
            "file",
            f"parser option {QPC_FREQUENCY_OPTION!r} is {value!r}, not a positive number of hertz; "
            "the frequency was estimated from the file instead.",
        )
    )
    return None


def _parse_datetimes(raw: pa.ChunkedArray) -> pa.Array | None:
    """Parse ISO 8601 date-time text, taken as UTC; return None if any cell does not parse.

    NOTE: the exact text of PresentMon's `--date_time` columns was not checked against a
    real file; ISO 8601 with a space or `T` separator is assumed.
    """
    text = pc.utf8_trim_whitespace(raw)
    try:
        parsed = pc.cast(text, pa.timestamp("ns"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # Spark timestamps have microsecond precision, so finer digits are dropped.
    values = pc.cast(parsed, pa.timestamp("us", tz="UTC"), safe=False)
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _system_attributes(names: list[str], first_row: list[str] | None) -> dict[str, str]:
    """Return system-information columns of the first data row as attributes."""
    if not first_row:
        return {}
    attributes: dict[str, str] = {}
    for index, name in enumerate(names):
        if name not in layouts.SYSTEM_INFO_COLUMNS or index >= len(first_row):
            continue
        value = first_row[index].strip()
        if value and value.upper() not in {"NA", "N/A"}:
            attribute = layouts.ATTRIBUTE_NAMES.get(name) or snake_case(name)
            attributes[attribute] = value[:MAX_ATTRIBUTE_CHARS]
    return attributes
