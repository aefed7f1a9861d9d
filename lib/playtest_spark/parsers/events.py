"""Session events: JSON Lines and JSON arrays, with a field mapping for type and time.

Each event keeps its whole JSON object as `payload`. The type and time fields are found
by name: `session.json` may declare them under `event_fields` (`type`, `time` and
`time_unit`), otherwise the first present of `DEFAULT_TYPE_FIELDS` and
`DEFAULT_TIME_FIELDS` is used. Times may be ISO 8601 text (any precision, `Z` or an
offset; naive means UTC), epoch seconds, milliseconds or microseconds, or an offset in
seconds from the device's session start.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from playtest_spark.parsers.base import FileContext, FileSource, ParseResult, Problem
from playtest_spark.parsers.text import decode_text

DEFAULT_TYPE_FIELDS = ("type", "event_type", "eventType", "event", "_T", "name")
DEFAULT_TIME_FIELDS = ("timestamp", "ts", "time", "event_time", "eventTime", "@timestamp", "_D", "t")
TIME_UNITS = ("auto", "iso", "epoch_s", "epoch_ms", "epoch_us", "offset_s", "offset_ms")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# Numbers below this are offsets from session start, not epoch times: 1e9 s is 2001-09-09.
_EPOCH_SECONDS_MIN = 1e9
_EPOCH_MS_MIN = 1e11
_EPOCH_US_MIN = 1e14


class EventTimeError(ValueError):
    """An event's time field holds a value that is no time."""


def parse(source: FileSource, context: FileContext) -> ParseResult:
    """Parse an events file into EVENT_RECORD rows; bad records become problems."""
    data = source.read_bytes()
    if not data.strip():
        return ParseResult.rejected(
            "empty events file: the game wrote no events; check that the writer flushed",
            format="empty",
        )
    text = decode_text(data)
    mapping = _FieldMapping.from_options(context.options)
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _parse_array(text, mapping)
    return _parse_lines(text, mapping)


class _FieldMapping:
    def __init__(self, type_fields: tuple[str, ...], time_fields: tuple[str, ...], unit: str,
                 device_start: dt.datetime | None) -> None:
        self.type_fields = type_fields
        self.time_fields = time_fields
        self.unit = unit
        self.device_start = device_start

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> _FieldMapping:
        declared = options.get("event_fields") or {}
        type_field = declared.get("type")
        time_field = declared.get("time")
        unit = declared.get("time_unit", "auto")
        if unit not in TIME_UNITS:
            unit = "auto"
        start = options.get("device_start")
        device_start = _parse_iso(start) if isinstance(start, str) else start
        return cls(
            (type_field,) if type_field else DEFAULT_TYPE_FIELDS,
            (time_field,) if time_field else DEFAULT_TIME_FIELDS,
            unit,
            device_start,
        )

    def event_type(self, record: Mapping[str, Any]) -> str | None:
        for name in self.type_fields:
            value = record.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def device_time(self, record: Mapping[str, Any]) -> dt.datetime | None:
        for name in self.time_fields:
            if name in record and record[name] is not None:
                return self._convert(record[name], name)
        return None

    def _convert(self, value: Any, field: str) -> dt.datetime:
        if isinstance(value, bool):
            raise EventTimeError(f"field {field!r} holds a boolean {value!r}, not a time")
        if isinstance(value, str):
            text = value.strip()
            try:
                number = float(text)
            except ValueError:
                try:
                    return _parse_iso(text)
                except ValueError as exc:
                    raise EventTimeError(f"field {field!r} holds {value!r}, not an ISO 8601 time") from exc
            return self._from_number(number, field)
        if isinstance(value, (int, float)):
            return self._from_number(float(value), field)
        raise EventTimeError(f"field {field!r} holds a {type(value).__name__}, not a time")

    def _from_number(self, number: float, field: str) -> dt.datetime:
        unit = self.unit
        if unit in ("auto", "iso"):
            magnitude = abs(number)
            unit = (
                "epoch_us" if magnitude >= _EPOCH_US_MIN
                else "epoch_ms" if magnitude >= _EPOCH_MS_MIN
                else "epoch_s" if magnitude >= _EPOCH_SECONDS_MIN
                else "offset_s"
            )
        scale = {"epoch_s": 1.0, "epoch_ms": 1e-3, "epoch_us": 1e-6, "offset_s": 1.0, "offset_ms": 1e-3}[unit]
        seconds = number * scale
        if unit.startswith("offset"):
            if self.device_start is None:
                raise EventTimeError(
                    f"field {field!r} holds an offset ({number!r}) but session.json has no device_start"
                )
            return self.device_start + dt.timedelta(seconds=seconds)
        try:
            return _EPOCH + dt.timedelta(seconds=seconds)
        except OverflowError as exc:
            raise EventTimeError(f"field {field!r} holds {number!r}, out of range for a time") from exc


def _parse_iso(text: str) -> dt.datetime:
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(cleaned)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _record_to_row(record: Any, payload: str, line_no: int, position: str,
                   mapping: _FieldMapping, problems: list[Problem]) -> dict[str, Any] | None:
    if not isinstance(record, dict):
        problems.append(Problem(position, f"expected a JSON object per event, got {type(record).__name__}", payload))
        return None
    event_type = mapping.event_type(record)
    if event_type is None:
        problems.append(Problem(
            position,
            f"no event type: none of the fields {list(mapping.type_fields)} holds a non-empty "
            "string; name the type field under event_fields.type in session.json",
            payload,
        ))
        return None
    try:
        device_time = mapping.device_time(record)
    except EventTimeError as exc:
        problems.append(Problem(
            position,
            f"invalid event time: {exc}; declare event_fields.time and time_unit in session.json",
            payload,
        ))
        return None
    return {"line_no": line_no, "device_time": device_time, "event_type": event_type, "payload": payload}


def _parse_lines(text: str, mapping: _FieldMapping) -> ParseResult:
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    lines = text.split("\n")
    ends_with_newline = text.endswith("\n")
    if ends_with_newline:
        lines.pop()
    last = len(lines)
    loads = json.loads
    for line_no, line in enumerate(lines, start=1):
        body = line.strip()
        if not body:
            continue
        try:
            record = loads(body)
        except ValueError as exc:
            if line_no == last and not ends_with_newline:
                reason = (
                    "truncated last line: the file ends inside a record, as after a crash "
                    "while writing; the rest of the file was loaded"
                )
            else:
                reason = f"invalid JSON ({exc.args[0] if exc.args else exc}); each line must be one JSON object"
            problems.append(Problem(f"line {line_no}", reason, body))
            continue
        row = _record_to_row(record, body, line_no, f"line {line_no}", mapping, problems)
        if row is not None:
            rows.append(row)
    return ParseResult(records=rows, problems=problems, format="jsonl")


def _parse_array(text: str, mapping: _FieldMapping) -> ParseResult:
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    try:
        records = json.loads(text)
    except ValueError:
        return _salvage_array(text, mapping)
    if not isinstance(records, list):
        return ParseResult.rejected("expected a JSON array of event objects", text[:200], format="json-array")
    # Line numbers of elements are found by re-scanning only when the whole array is valid.
    offsets = _element_offsets(text)
    for index, record in enumerate(records, start=1):
        line_no = offsets[index - 1] if index - 1 < len(offsets) else 0
        payload = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        row = _record_to_row(record, payload, line_no, f"record {index} (line {line_no})", mapping, problems)
        if row is not None:
            rows.append(row)
    return ParseResult(records=rows, problems=problems, format="json-array")


def _element_offsets(text: str) -> list[int]:
    """Return the 1-based line number where each top-level array element starts."""
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    lines: list[int] = []
    length = len(text)
    while True:
        while position < length and text[position] in " \t\n\r,":
            position += 1
        if position >= length or text[position] == "]":
            return lines
        lines.append(text.count("\n", 0, position) + 1)
        try:
            _, position = decoder.raw_decode(text, position)
        except ValueError:
            return lines


def _salvage_array(text: str, mapping: _FieldMapping) -> ParseResult:
    """Load every complete element of a broken array; report where it broke."""
    decoder = json.JSONDecoder()
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    position = text.index("[") + 1
    length = len(text)
    index = 0
    while True:
        while position < length and text[position] in " \t\n\r,":
            position += 1
        if position >= length:
            problems.append(Problem(
                f"record {index + 1}",
                "truncated JSON array: the file ends before the closing ']'; the complete "
                "events before it were loaded",
                text[-200:],
            ))
            break
        if text[position] == "]":
            trailing = text[position + 1 :].strip()
            if trailing:
                problems.append(Problem("file", "unexpected text after the JSON array", trailing))
            break
        index += 1
        line_no = text.count("\n", 0, position) + 1
        try:
            record, end = decoder.raw_decode(text, position)
        except ValueError as exc:
            problems.append(Problem(
                f"record {index} (line {line_no})",
                f"invalid JSON ({exc.args[0] if exc.args else exc}); the events after it in "
                "this array were not loaded",
                text[position : position + 300],
            ))
            break
        payload = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        row = _record_to_row(record, payload, line_no, f"record {index} (line {line_no})", mapping, problems)
        if row is not None:
            rows.append(row)
        position = end
    return ParseResult(records=rows, problems=problems, format="json-array")
