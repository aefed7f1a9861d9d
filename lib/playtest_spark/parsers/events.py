"""Session events: JSON Lines and JSON arrays, with a field mapping for type and time.

Each event keeps its whole JSON object as `payload`. The type and time fields are found
by name: `session.json` may declare them under `event_fields` (`type`, `time` and
`time_unit`), otherwise the first present of `DEFAULT_TYPE_FIELDS` and
`DEFAULT_TIME_FIELDS` is used. Times may be ISO 8601 text (any precision, with `Z` or an
offset, and UTC when naive). They may also be epoch seconds, milliseconds or
microseconds, or an offset in seconds from the device's session start. A time must fall in 1970-2199 UTC, because
later stages add the clock offset and store it as SQL `DATETIME2` and Spark timestamps.

Event types lose NUL characters (PostgreSQL text rejects them) and have lone surrogates
replaced by U+FFFD (UTF-8, and so Arrow, cannot encode them). Payloads of JSON Lines are
the raw line text, and payloads of array elements are re-serialised with escapes where
needed, so neither contains a raw NUL or a lone surrogate.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
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
# Event times must fall in [_TIME_MIN, _TIME_END) UTC. Anything else is a wrong unit or a
# broken clock, and would overflow SQL DATETIME2 or Spark timestamps once shifted.
_TIME_MIN = _EPOCH
_TIME_END = dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc)
_TIME_RANGE_TEXT = "1970-2199"

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Strings and brackets, to find the end of a JSON value without decoding it.
_JSON_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}]')


class EventTimeError(ValueError):
    """An event's time field contains a value that is no time.

    Attributes:
        fix: What to do about it, appended to the problem reason.
    """

    fix = "declare event_fields.time and time_unit in session.json"

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        if fix is not None:
            self.fix = fix

    def reason(self) -> str:
        """Return the problem reason for the event."""
        return f"invalid event time: {self}; {self.fix}"


class EventTimeRangeError(EventTimeError):
    """An event's time converts to an instant outside 1970-2199 UTC."""

    fix = "check the time unit or event_fields.time_unit in session.json"

    def reason(self) -> str:
        """Return the problem reason for the event."""
        return f"{self}; {self.fix}"


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
            if isinstance(value, str):
                value = _clean_text(value)
                if value:
                    return value
        return None

    def device_time(self, record: Mapping[str, Any]) -> dt.datetime | None:
        for name in self.time_fields:
            if name in record and record[name] is not None:
                return self._convert(record[name], name)
        return None

    def _convert(self, value: Any, field: str) -> dt.datetime:
        if isinstance(value, bool):
            raise EventTimeError(f"field {field!r} contains a boolean {value!r}, not a time")
        if isinstance(value, str):
            text = value.strip()
            try:
                number = float(text)
            except ValueError:
                return _time_from_iso(text, field)
            return self._from_number(number, value, field)
        if isinstance(value, int):
            try:
                number = float(value)
            except OverflowError as exc:
                # float() raises OverflowError for integers beyond about 1.8e308.
                raise EventTimeRangeError(
                    f"event time in field {field!r} is a {len(str(abs(value)))}-digit integer, "
                    f"outside {_TIME_RANGE_TEXT}"
                ) from exc
            return self._from_number(number, value, field)
        if isinstance(value, float):
            return self._from_number(value, value, field)
        raise EventTimeError(f"field {field!r} contains a {type(value).__name__}, not a time")

    def _from_number(self, number: float, value: Any, field: str) -> dt.datetime:
        if not math.isfinite(number):
            raise EventTimeError(
                f"field {field!r} contains {value!r}, not a finite number",
                fix="fix the game's event writer so it writes a finite number or ISO 8601 text",
            )
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
                    f"field {field!r} contains an offset ({number!r}) but session.json has no device_start"
                )
            base = self.device_start
        else:
            base = _EPOCH
        try:
            instant = base + dt.timedelta(seconds=seconds)
        except OverflowError as exc:
            raise EventTimeRangeError(
                f"event time {value!r} in field {field!r}, read as {unit}, is outside {_TIME_RANGE_TEXT}"
            ) from exc
        if not _TIME_MIN <= instant < _TIME_END:
            raise EventTimeRangeError(
                f"event time {value!r} in field {field!r}, read as {unit} ({instant.isoformat()}), "
                f"is outside {_TIME_RANGE_TEXT}"
            )
        return instant


def _parse_iso(text: str) -> dt.datetime:
    """Parse ISO 8601 text as an aware UTC time.

    Raises:
        ValueError: the text is no ISO 8601 time.
        OverflowError: the time lies within a day of year 1 or 9999 and leaves the
            `datetime` range once converted to UTC.
    """
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(cleaned)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _time_from_iso(text: str, field: str) -> dt.datetime:
    try:
        instant = _parse_iso(text)
    except ValueError as exc:
        raise EventTimeError(f"field {field!r} contains {text!r}, not an ISO 8601 time") from exc
    except OverflowError as exc:
        raise EventTimeRangeError(f"event time {text!r} in field {field!r} is outside {_TIME_RANGE_TEXT}") from exc
    if not _TIME_MIN <= instant < _TIME_END:
        raise EventTimeRangeError(f"event time {text!r} in field {field!r} is outside {_TIME_RANGE_TEXT}")
    return instant


def _clean_text(value: str) -> str:
    """Drop NUL characters and replace lone surrogates with U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if value.isascii():
        return value
    return _LONE_SURROGATE.sub("\ufffd", value)


def _dump_payload(record: Any) -> str:
    """Serialise an array element as compact JSON that UTF-8 can encode.

    Raises:
        RecursionError: the element is nested too deeply to serialise.
    """
    payload = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    if not payload.isascii() and _LONE_SURROGATE.search(payload):
        # ASCII output writes lone surrogates as \\udXXX escapes, so the text stays valid.
        payload = json.dumps(record, separators=(",", ":"))
    return payload


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
        problems.append(Problem(position, exc.reason(), payload))
        return None
    return {"line_no": line_no, "device_time": device_time, "event_type": event_type, "payload": payload}


def _too_deep_reason(consequence: str) -> str:
    return (
        "JSON nested too deeply to decode (deeper than Python's recursion limit); "
        f"write events with fewer nested levels. {consequence}"
    )


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
        except RecursionError:
            problems.append(Problem(f"line {line_no}", _too_deep_reason("The other lines were loaded."), body))
            continue
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
    except (ValueError, RecursionError):
        return _salvage_array(text, mapping)
    if not isinstance(records, list):
        return ParseResult.rejected("expected a JSON array of event objects", text[:200], format="json-array")
    # Line numbers of elements are found by re-scanning only when the whole array is valid.
    offsets = _element_offsets(text)
    for index, record in enumerate(records, start=1):
        line_no = offsets[index - 1] if index - 1 < len(offsets) else 0
        position = f"record {index} (line {line_no})"
        row = _element_to_row(record, line_no, position, mapping, problems)
        if row is not None:
            rows.append(row)
    return ParseResult(records=rows, problems=problems, format="json-array")


def _element_to_row(record: Any, line_no: int, position: str, mapping: _FieldMapping,
                    problems: list[Problem]) -> dict[str, Any] | None:
    try:
        payload = _dump_payload(record)
    except RecursionError:
        problems.append(Problem(position, _too_deep_reason("The other events were loaded.")))
        return None
    return _record_to_row(record, payload, line_no, position, mapping, problems)


class _LineCounter:
    """Line numbers of ascending positions in a text, counting each newline once."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._position = 0
        self._line = 1

    def line_at(self, position: int) -> int:
        """Return the 1-based line of `position`, which must not precede the previous one."""
        self._line += self._text.count("\n", self._position, position)
        self._position = position
        return self._line


def _element_offsets(text: str) -> list[int]:
    """Return the 1-based line number where each top-level array element starts."""
    decoder = json.JSONDecoder()
    counter = _LineCounter(text)
    position = text.index("[") + 1
    lines: list[int] = []
    length = len(text)
    while True:
        while position < length and text[position] in " \t\n\r,":
            position += 1
        if position >= length or text[position] == "]":
            return lines
        lines.append(counter.line_at(position))
        try:
            _, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):
            return lines


def _skip_nested_value(text: str, position: int) -> int | None:
    """Return the end of the array or object starting at `position`, or None if the text ends first."""
    depth = 0
    for match in _JSON_STRING_OR_BRACKET.finditer(text, position):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return match.end()
    return None


def _salvage_array(text: str, mapping: _FieldMapping) -> ParseResult:
    """Load every complete element of a broken array; report where it broke."""
    decoder = json.JSONDecoder()
    counter = _LineCounter(text)
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
        line_no = counter.line_at(position)
        where = f"record {index} (line {line_no})"
        try:
            record, end = decoder.raw_decode(text, position)
        except RecursionError:
            skipped_to = _skip_nested_value(text, position)
            if skipped_to is None:
                problems.append(Problem(
                    where,
                    _too_deep_reason("The file ends inside this event, so the events after it were not loaded."),
                    text[position : position + 300],
                ))
                break
            problems.append(Problem(
                where, _too_deep_reason("The other events were loaded."), text[position : position + 300]
            ))
            position = skipped_to
            continue
        except ValueError as exc:
            problems.append(Problem(
                where,
                f"invalid JSON ({exc.args[0] if exc.args else exc}); the events after it in "
                "this array were not loaded",
                text[position : position + 300],
            ))
            break
        row = _element_to_row(record, line_no, where, mapping, problems)
        if row is not None:
            rows.append(row)
        position = end
    return ParseResult(records=rows, problems=problems, format="json-array")
