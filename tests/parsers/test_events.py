"""Events parser: JSON Lines, JSON arrays, field mapping and times."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from pyspark.sql.pandas.types import to_arrow_schema

from playtest_spark.parsers import events
from playtest_spark.parsers.base import BytesSource, FileContext
from playtest_spark.schemas import EVENT_RECORD

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


GOOD_EVENT = '{"type":"ok","ts":"2026-12-03T12:00:01Z"}'
FORMATS = ["jsonl", "array"]


def around_good_events(bad: str, form: str) -> tuple[str, str]:
    """Return file text with `bad` as the 2nd of 3 events, on line 2, and a file name."""
    if form == "jsonl":
        return f"{GOOD_EVENT}\n{bad}\n{GOOD_EVENT}\n", "e.jsonl"
    return f"[{GOOD_EVENT},\n{bad},\n{GOOD_EVENT}]\n", "e.json"


def bad_position(form: str) -> str:
    return "line 2" if form == "jsonl" else "record 2 (line 2)"


def to_arrow(records) -> pa.Table:
    return pa.Table.from_pylist(records, schema=to_arrow_schema(EVENT_RECORD))


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("time", ["NaN", "Infinity", "-Infinity", '"nan"', '"inf"'])
def test_events_non_finite_time_quarantined(form, time):
    text, name = around_good_events('{"type":"b","ts":' + time + "}", form)
    result = parse(text, name=name)
    assert [r["event_type"] for r in result.records] == ["ok", "ok"]
    assert len(result.problems) == 1
    assert result.problems[0].position == bad_position(form)
    assert "not a finite number" in result.problems[0].reason
    assert "event writer" in result.problems[0].reason


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize(
    "time",
    [
        '"9999-12-31T23:59:59-05:00"',
        '"0001-01-01T00:00:00+05:00"',
        pytest.param("9" * 3000, id="3000-digit-integer"),
        pytest.param("-" + "9" * 3000, id="negative-3000-digit-integer"),
        "1e300",
    ],
)
def test_events_overflowing_time_quarantined(form, time):
    text, name = around_good_events('{"type":"b","ts":' + time + "}", form)
    result = parse(text, name=name)
    assert [r["event_type"] for r in result.records] == ["ok", "ok"]
    assert len(result.problems) == 1
    assert result.problems[0].position == bad_position(form)
    assert "outside 1970-2199" in result.problems[0].reason
    assert "event_fields.time_unit" in result.problems[0].reason


def test_events_huge_integer_reason_stays_short():
    result = parse('{"type":"b","ts":' + "9" * 3000 + "}\n")
    assert "3000-digit integer" in result.problems[0].reason
    assert len(result.problems[0].reason) < 300


@pytest.mark.parametrize(
    "event, options",
    [
        ({"ts": "2300-01-01T00:00:00Z"}, {}),
        ({"ts": "1969-12-31T23:59:59Z"}, {}),
        ({"ts": "2200-01-01T00:00:00Z"}, {}),
        ({"ts": -300_000_000_000}, {}),
        ({"ts": 1_764_756_000_000}, {"event_fields": {"time_unit": "epoch_s"}}),
        ({"ts": 1e13}, {"event_fields": {"time_unit": "offset_s"}}),
    ],
)
def test_events_implausible_time_quarantined(event, options):
    result = parse(json.dumps({"type": "b", **event}) + "\n", **options)
    assert result.records == []
    assert "is outside 1970-2199" in result.problems[0].reason
    assert "check the time unit or event_fields.time_unit in session.json" in result.problems[0].reason


@pytest.mark.parametrize(
    "time, expected",
    [
        ("1970-01-01T00:00:00Z", dt.datetime(1970, 1, 1, tzinfo=UTC)),
        ("2199-12-31T23:59:59.999999Z", dt.datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2018-04-27T09:14:41.7057369+02:00", dt.datetime(2018, 4, 27, 7, 14, 41, 705736, tzinfo=UTC)),
        (-30, dt.datetime(2026, 12, 3, 9, 59, 30, tzinfo=UTC)),
    ],
)
def test_events_plausible_time_range_edges_load(time, expected):
    result = parse(json.dumps({"type": "a", "ts": time}) + "\n")
    assert result.problems == []
    assert result.records[0]["device_time"] == expected


def test_events_time_range_reason_shows_unit_and_instant():
    result = parse(json.dumps({"type": "b", "ts": 1_764_756_000_000}) + "\n", event_fields={"time_unit": "epoch_s"})
    reason = result.problems[0].reason
    assert "1764756000000" in reason
    assert "epoch_s" in reason


def test_events_deeply_nested_line_quarantined_rest_loaded():
    text, name = around_good_events("[" * 100_000, "jsonl")
    result = parse(text, name=name)
    assert [r["event_type"] for r in result.records] == ["ok", "ok"]
    assert result.problems[0].position == "line 2"
    assert "nested too deeply" in result.problems[0].reason


def test_events_deeply_nested_array_element_skipped():
    deep = '{"a":' * 50_000 + '"]}[{"' + "}" * 50_000
    text, name = around_good_events(deep, "array")
    result = parse(text, name=name)
    assert [r["event_type"] for r in result.records] == ["ok", "ok"]
    assert len(result.problems) == 1
    assert result.problems[0].position == "record 2 (line 2)"
    assert "nested too deeply" in result.problems[0].reason


def test_events_unclosed_deep_array_element_keeps_earlier():
    result = parse(f"[{GOOD_EVENT},\n" + "[" * 100_000, name="e.json")
    assert [r["event_type"] for r in result.records] == ["ok"]
    assert result.problems[0].position == "record 2 (line 2)"
    assert "nested too deeply" in result.problems[0].reason


def test_events_multiline_array_line_numbers():
    events_on_lines = [
        '[{"_T": "A", "_D": "2026-01-01T00:00:00Z"},',
        "",
        '  {"_T": "B", "_D": "2026-01-01T00:00:01Z"}, {"_T": "C", "_D": "2026-01-01T00:00:02Z"},',
        '  {"_T": "D",',
        '   "_D": "2026-01-01T00:00:03Z"},',
        '  {"_T": "E", "_D": "2026-01-01T00:00:04Z"}',
        "]",
    ]
    result = parse("\n".join(events_on_lines) + "\n", name="e.json")
    assert [r["event_type"] for r in result.records] == ["A", "B", "C", "D", "E"]
    assert [r["line_no"] for r in result.records] == [1, 3, 3, 4, 6]


def test_events_salvaged_array_line_numbers():
    text = (
        '[\n{"_T": "A", "_D": "2026-01-01T00:00:00Z"},\n\n'
        '{"_T": "B", "_D": "2026-01-01T00:00:01Z"}, {"_T": "C", "_D": "2026-01-01T00:00:02Z"},\n'
        '{"_T": "D", "_D": "2026-'
    )
    result = parse(text, name="e.json")
    assert [r["line_no"] for r in result.records] == [2, 4, 4]
    assert result.problems[0].position == "record 4 (line 5)"


@pytest.mark.parametrize("form", FORMATS)
def test_events_lone_surrogate_type_replaced(form):
    text, name = around_good_events('{"type":"\\ud800x","ts":"2026-12-03T12:00:01Z","k\\udc00":"v\\udfff"}', form)
    result = parse(text, name=name)
    assert result.records[1]["event_type"] == "\ufffdx"
    table = to_arrow(result.records)
    assert table.column("event_type").to_pylist() == ["ok", "\ufffdx", "ok"]


def test_events_array_payload_escapes_lone_surrogate():
    text, name = around_good_events('{"type":"\\ud800","ts":"2026-12-03T12:00:01Z","é":1}', "array")
    result = parse(text, name=name)
    payload = result.records[1]["payload"]
    assert "\\ud800" in payload
    assert json.loads(payload)["type"] == "\ud800"


def test_events_array_payload_keeps_non_ascii_unescaped():
    text, name = around_good_events('{"type":"é","ts":"2026-12-03T12:00:01Z"}', "array")
    result = parse(text, name=name)
    assert result.records[1]["payload"] == '{"type":"é","ts":"2026-12-03T12:00:01Z"}'


@pytest.mark.parametrize("form", FORMATS)
def test_events_nul_removed_from_type(form):
    text, name = around_good_events('{"type":"a\\u0000b","ts":"2026-12-03T12:00:01Z","n":"\\u0000"}', form)
    result = parse(text, name=name)
    assert result.records[1]["event_type"] == "ab"
    assert "\x00" not in result.records[1]["payload"]
    assert "\\u0000" in result.records[1]["payload"]


def test_events_nul_only_type_uses_next_field():
    result = parse('{"type":"\\u0000","event":"hit","ts":"2026-12-03T12:00:01Z"}\n')
    assert result.records[0]["event_type"] == "hit"
