"""MSI Afterburner hardware-monitoring logs (`.hml`, often saved as `.csv`).

Every line starts with a record type: `0` names the log version, `1` a GPU, `2` the
column names, `3` per-column limits and format strings, `80` one sample. The second field
of every line is a `DD-MM-YYYY HH:MM:SS` timestamp, and names and values are padded to a
fixed width with spaces. Afterburner samples once per second by default, so files are
small and parsed line by line.

Rules:

- `sample_time` is the line's timestamp, taken as UTC because the log contains the
  capture machine's local time without a zone.
- `offset_s` is seconds since the first sample's timestamp (1 s resolution).
- A column name may appear twice (Afterburner and its on-screen display both log
  `Framerate` and `Frametime`); a row takes the first non-empty value among them.
- `frame_time_ms` is `Frametime` when it is above zero, else `1000 / Framerate` when
  the frame rate is above zero, else null. Afterburner writes `N/A` and `0` for seconds
  without a presented frame.
- Empty cells and `N/A` are null. A data line whose field count differs from the
  column-name line, or with an unreadable timestamp or number in a mapped column, is a
  problem and the other lines still load.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pyarrow as pa

from playtest_spark.parsers.base import ParseResult, Problem
from playtest_spark.parsers.perf.layouts import AFTERBURNER_COLUMNS, normalize_name
from playtest_spark.parsers.perf.records import perf_table
from playtest_spark.parsers.text import normalize_newlines

logger = logging.getLogger(__name__)

TOOL = "afterburner"
_TIMESTAMP_FORMAT = "%d-%m-%Y %H:%M:%S"
_NULL_CELLS = frozenset({"", "N/A", "NA"})
_VALUE_KEYS = (
    "frame_time_ms",
    "framerate",
    "gpu_util_pct",
    "cpu_util_pct",
    "memory_mb",
    "gpu_memory_mb",
)


class _InvalidCell(ValueError):
    """A mapped cell that is not a number."""


def parse_afterburner(data: bytes, start: int) -> ParseResult:
    """Parse an Afterburner log given as UTF-8 bytes from offset `start`."""
    lines = normalize_newlines(data[start:].decode("utf-8", errors="replace")).split("\n")
    attributes: dict[str, str] = {}
    problems: list[Problem] = []
    positions: dict[str, list[tuple[int, str]]] | None = None
    expected_fields = 0
    sample_numbers: list[int] = []
    times: list[dt.datetime] = []
    values: dict[str, list[float | None]] = {key: [] for key in _VALUE_KEYS}
    gpu_count = 0
    data_lines = 0
    unknown_records = 0

    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        record = fields[0].strip()
        if record in {"0", "00"}:
            if len(fields) > 2 and fields[2].strip():
                attributes["monitoring_log"] = fields[2].strip()
        elif record in {"1", "01"}:
            gpu_count += 1
            if len(fields) > 2 and fields[2].strip():
                attributes["gpu" if gpu_count == 1 else f"gpu{gpu_count}"] = fields[2].strip()
        elif record in {"2", "02"}:
            positions = _column_positions(fields[2:])
            expected_fields = len(fields)
        elif record in {"3", "03"}:
            continue
        elif record == "80":
            data_lines += 1
            problem = _read_sample(fields, line_no, positions, expected_fields, times, values)
            if problem is not None:
                problems.append(Problem(f"line {line_no}", problem, line))
            else:
                sample_numbers.append(data_lines)
        else:
            unknown_records += 1
    if unknown_records:
        logger.debug("skipped %d Afterburner lines of unknown record types", unknown_records)
    if positions is None:
        problems.append(
            Problem(
                "file",
                "the Afterburner log has no column-name line (record type 2); nothing was loaded.",
            )
        )
    elif data_lines == 0:
        problems.append(
            Problem(
                "file",
                "the Afterburner log has no data lines (record type 80); nothing was loaded.",
            )
        )

    return ParseResult(
        records=_table(sample_numbers, times, values),
        problems=problems,
        attributes=attributes,
        format=TOOL,
    )


def _column_positions(names: list[str]) -> dict[str, list[tuple[int, str]]]:
    """Return, per canonical key, the positions (after the timestamp) and names of its columns."""
    normalized = [normalize_name(name) for name in names]
    positions: dict[str, list[tuple[int, str]]] = {}
    for key, candidates in AFTERBURNER_COLUMNS.items():
        for candidate in candidates:
            positions.setdefault(key, []).extend(
                (i, names[i].strip()) for i, name in enumerate(normalized) if name == candidate
            )
    return positions


def _read_sample(
    fields: list[str],
    line_no: int,
    positions: dict[str, list[tuple[int, str]]] | None,
    expected_fields: int,
    times: list[dt.datetime],
    values: dict[str, list[float | None]],
) -> str | None:
    """Append one data line's values; return the reason when it cannot be read."""
    if positions is None:
        return "data line comes before the column-name line (record type 2); the line was skipped."
    if len(fields) != expected_fields:
        return (
            f"data line has {len(fields)} fields but the column-name line has {expected_fields}; "
            "the line was skipped. Check for a truncated or merged line."
        )
    stamp = fields[1].strip()
    try:
        moment = dt.datetime.strptime(stamp, _TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return f"invalid timestamp {stamp!r}, expected DD-MM-YYYY HH:MM:SS; the line was skipped."
    cells = fields[2:]
    row: dict[str, float | None] = {}
    try:
        for key in _VALUE_KEYS:
            row[key] = _first_number(cells, positions.get(key, []))
    except _InvalidCell as error:
        return f"{error}; the line was skipped. Fix the value or remove the line."
    times.append(moment)
    for key in _VALUE_KEYS:
        values[key].append(row[key])
    return None


def _first_number(cells: list[str], positions: list[tuple[int, str]]) -> float | None:
    """Return the first non-empty cell among `positions` as a number, or None."""
    for position, name in positions:
        text = cells[position].strip()
        if text in _NULL_CELLS:
            continue
        try:
            return float(text)
        except ValueError:
            raise _InvalidCell(f"invalid number {text!r} in column {name!r}") from None
    return None


def _table(
    sample_numbers: list[int], times: list[dt.datetime], values: dict[str, list[float | None]]
) -> pa.Table:
    rows = len(sample_numbers)
    floats = {
        key: np.array([np.nan if v is None else v for v in column], dtype=np.float64)
        for key, column in values.items()
    }
    frame_time = floats["frame_time_ms"]
    framerate = floats["framerate"]
    with np.errstate(divide="ignore", invalid="ignore"):
        from_rate = np.where(framerate > 0, 1000.0 / framerate, np.nan)
    frame_time = np.where(frame_time > 0, frame_time, from_rate)
    offsets = np.array([(moment - times[0]).total_seconds() for moment in times], dtype=np.float64)
    columns = {
        "sample_no": pa.array(sample_numbers, pa.int64()),
        "offset_s": offsets,
        "frame_time_ms": frame_time,
        "gpu_util_pct": floats["gpu_util_pct"],
        "cpu_util_pct": floats["cpu_util_pct"],
        "memory_mb": floats["memory_mb"],
        "gpu_memory_mb": floats["gpu_memory_mb"],
        "sample_time": pa.array(times, pa.timestamp("us", tz="UTC")),
    }
    return perf_table(columns, rows, TOOL)
