"""Events parser: JSON Lines, JSON arrays, field mapping and times."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from playtest_spark.parsers import events
from playtest_spark.parsers.base import BytesSource, FileContext

UTC = dt.timezone.utc
START = "2026-12-03T10:00:00+00:00"


def parse(data: bytes | str, name: str = "e.jsonl", **options):
    if isinstance(data, str):
        data = data.encode()
    context = FileContext("s1", f"events/{name}", "events", {"device_start": START, **options})
    return events.parse(BytesSource(name, data), context)


def test_events_jsonl_keeps_payload_whole():
    line = '{"type":"kill","ts":"2026-12-03T10:00:05.250Z","data":{"enemy":"orc","hp":0.1}}'
    result = parse(line + "\n")
    assert result.format == "jsonl"
    assert result.records[0]["event_type"] == "kill"
    assert result.records[0]["device_time"] == dt.datetime(2026, 12, 3, 10, 0, 5, 250000, tzinfo=UTC)
    assert json.loads(result.records[0]["payload"]) == json.loads(line)


def test_events_offsets_and_precision_to_utc():
    result = parse('{"type":"a","ts":"2018-04-27T09:14:41.7057369+02:00"}\n')
    assert result.records[0]["device_time"] == dt.datetime(2018, 4, 27, 7, 14, 41, 705736, tzinfo=UTC)


@pytest.mark.parametrize(
    "value, expected",
    [
        (1764756000000, dt.datetime(2025, 12, 3, 10, 0, tzinfo=UTC)),
        (1764756000, dt.datetime(2025, 12, 3, 10, 0, tzinfo=UTC)),
        (1764756000000000, dt.datetime(2025, 12, 3, 10, 0, tzinfo=UTC)),
        (12.5, dt.datetime(2026, 12, 3, 10, 0, 12, 500000, tzinfo=UTC)),
        ("90", dt.datetime(2026, 12, 3, 10, 1, 30, tzinfo=UTC)),
    ],
)
def test_events_numeric_time_units(value, expected):
    result = parse(json.dumps({"type": "a", "ts": value}) + "\n")
    assert result.records[0]["device_time"] == expected


def test_events_declared_field_mapping_wins():
    line = json.dumps({"kind": "x", "type": "wrong", "when_ms": 1000})
    result = parse(line + "\n", event_fields={"type": "kind", "time": "when_ms", "time_unit": "offset_ms"})
    assert result.records[0]["event_type"] == "x"
    assert result.records[0]["device_time"] == dt.datetime(2026, 12, 3, 10, 0, 1, tzinfo=UTC)


def test_events_truncated_last_line_quarantined_rest_loaded():
    result = parse('{"type":"a","t":1}\n{"type":"b","t":2}\n{"type":"c","t"')
    assert [r["event_type"] for r in result.records] == ["a", "b"]
    assert result.problems[0].position == "line 3"
    assert "truncated last line" in result.problems[0].reason


def test_events_non_json_line_quarantined_with_excerpt():
    result = parse('{"type":"a","t":1}\nnot json at all\n{"type":"b","t":2}\n')
    assert len(result.records) == 2
    assert result.problems[0].position == "line 2"
    assert "invalid JSON" in result.problems[0].reason
    assert result.problems[0].excerpt == "not json at all"


def test_events_missing_type_reason_names_fix():
    result = parse('{"t": 1, "what": "x"}\n')
    assert result.records == []
    assert "event_fields.type" in result.problems[0].reason


def test_events_invalid_time_quarantined():
    result = parse('{"type":"a","ts":"not a time"}\n')
    assert result.records == []
    assert "invalid event time" in result.problems[0].reason


def test_events_missing_time_loads_with_null():
    result = parse('{"type":"a"}\n')
    assert result.records[0]["device_time"] is None


def test_events_empty_file_rejected():
    result = parse(b"")
    assert result.record_count == 0
    assert result.problems[0].position == "file"
    assert "empty events file" in result.problems[0].reason


def test_events_json_array_line_numbers():
    text = '[\n  {"_T": "A", "_D": "2026-01-01T00:00:00Z"},\n  {"_T": "B", "_D": "2026-01-01T00:00:01Z"}\n]\n'
    result = parse(text, name="e.json")
    assert result.format == "json-array"
    assert [r["event_type"] for r in result.records] == ["A", "B"]
    assert [r["line_no"] for r in result.records] == [2, 3]


def test_events_truncated_array_salvages_complete_elements():
    text = '[{"_T": "A", "_D": "2026-01-01T00:00:00Z"}, {"_T": "B", "_D": "2026-01-01T00:00:01Z"}, {"_T": "C", "_D'
    result = parse(text, name="e.json")
    assert [r["event_type"] for r in result.records] == ["A", "B"]
    assert len(result.problems) == 1
    assert result.problems[0].position.startswith("record 3")


def test_events_utf16_with_crlf_decoded():
    text = '{"type":"a","t":1}\r\n{"type":"b","t":2}\r\n'
    result = parse(text.encode("utf-16"))
    assert [r["event_type"] for r in result.records] == ["a", "b"]
    assert "\r" not in result.records[0]["payload"]
