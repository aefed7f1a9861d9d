"""Unit tests of the performance parser on small fixtures the project wrote itself."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from playtest_spark.parsers.base import BytesSource, FileContext, ParseResult
from playtest_spark.parsers.perf import PERF_ARROW_SCHEMA, TOOL_LAYOUTS, parse
from playtest_spark.parsers.perf.timebase import estimate_ticks_per_ms, previous_in_sequence

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "perf"


def _parse_bytes(
    data: bytes, name: str = "capture.csv", options: dict | None = None
) -> ParseResult:
    context = FileContext("session-1", f"performance/{name}", "performance", options or {})
    return parse(BytesSource(name, data), context)


def _parse_fixture(name: str, options: dict | None = None) -> ParseResult:
    return _parse_bytes((FIXTURES / name).read_bytes(), name, options)


def _column(result: ParseResult, name: str) -> list:
    return result.records.column(name).to_pylist()


def _approx(values: list) -> list:
    return [None if value is None else pytest.approx(value, abs=1e-9) for value in values]


# -- PresentMon --------------------------------------------------------------------------------


def test_perf_presentmon_v1_detected_despite_bom_and_camelcase():
    result = _parse_fixture("presentmon_v1_metrics.csv")
    assert result.format == "presentmon-v1"
    assert result.record_count == 4
    assert result.problems == []


def test_perf_presentmon_v1_maps_canonical_fields():
    result = _parse_fixture("presentmon_v1_metrics.csv")
    assert _column(result, "frame_time_ms") == [50.1445, 16.5226, 17.2677, 52.6287]
    assert _column(result, "gpu_busy_ms") == [0.7695, 0.6222, 0.8493, 0.7861]
    assert _column(result, "process_name") == ["dwm.exe", "dwm.exe", "Game.exe", "dwm.exe"]
    assert _column(result, "source_tool") == ["presentmon-v1"] * 4
    assert _column(result, "sample_no") == [1, 2, 3, 4]


def test_perf_v1_backward_time_keeps_order():
    result = _parse_fixture("presentmon_v1_metrics.csv")
    assert _column(result, "offset_s") == _approx([0.0, 0.0165226, 0.016183, 0.0691513])


def test_perf_v1_dropped_frame_latency_null():
    result = _parse_fixture("presentmon_v1_metrics.csv")
    assert _column(result, "dropped") == [False, False, False, True]
    assert _column(result, "display_latency_ms")[3] is None


def test_perf_v2_frame_time_between_presents():
    result = _parse_fixture("presentmon_v2_metrics.csv")
    assert result.format == "presentmon-v2"
    # First frame of each swap chain has no previous CPU wait: unknown, not FrameTime.
    assert _column(result, "frame_time_ms") == [None, 16.5226, None, 52.6287]


def test_perf_presentmon_v2_display_latency_counts_from_present():
    result = _parse_fixture("presentmon_v2_metrics.csv")
    assert _column(result, "display_latency_ms") == [16.108, 16.3021, 49.292, None]


def test_perf_v2_other_mode_row_loads():
    result = _parse_fixture("presentmon_v2_metrics.csv")
    assert result.record_count == 4
    assert _column(result, "dropped") == [False, False, False, True]
    assert _column(result, "cpu_busy_ms")[3] == 52.5109


def test_perf_v2_offsets_from_cpu_start():
    result = _parse_fixture("presentmon_v2_metrics.csv")
    assert _column(result, "offset_s") == _approx([0.0, 0.0165226, 0.016183, 0.0691513])


def test_perf_presentmon_default_converts_qpc_ticks():
    result = _parse_fixture("presentmon_default_qpc.csv")
    assert result.format == "presentmon"
    assert _column(result, "offset_s") == _approx([0.0, 0.0165226, 0.0691513])
    assert _column(result, "cpu_busy_ms") == [50.0105, 16.4223, 52.5109]


def test_perf_presentmon_default_na_display_means_dropped():
    result = _parse_fixture("presentmon_default_qpc.csv")
    assert _column(result, "dropped") == [False, False, True]
    assert _column(result, "display_latency_ms") == [16.108, 16.3021, None]


def test_perf_presentmon_default_frequency_option_overrides_estimate():
    result = _parse_fixture("presentmon_default_qpc.csv", {"qpc_frequency_hz": 20_000_000})
    # Half the offsets at 10 MHz, rounded to 0.1 us.
    assert _column(result, "offset_s") == pytest.approx([0.0, 0.0082613, 0.03457565], abs=1e-7)


def test_perf_presentmon_invalid_frequency_option_reported():
    result = _parse_fixture("presentmon_default_qpc.csv", {"qpc_frequency_hz": "fast"})
    assert [problem.position for problem in result.problems] == ["file"]
    assert "'fast'" in result.problems[0].reason
    assert _column(result, "offset_s") == _approx([0.0, 0.0165226, 0.0691513])


def test_perf_presentmon_single_frame_ticks_need_frequency():
    lines = (FIXTURES / "presentmon_default_qpc.csv").read_bytes().splitlines(keepends=True)
    result = _parse_bytes(b"".join(lines[:2]))
    assert result.record_count == 1
    assert _column(result, "offset_s") == [None]
    assert "qpc_frequency_hz" in result.problems[0].reason


def test_perf_presentmon_fixture_sets_agree_on_shared_frames():
    v1 = _parse_fixture("presentmon_v1_metrics.csv").records.to_pylist()
    v2 = _parse_fixture("presentmon_v2_metrics.csv").records.to_pylist()
    current = _parse_fixture("presentmon_default_qpc.csv").records.to_pylist()
    v1_dwm = [row for row in v1 if row["process_name"] == "dwm.exe"]
    v2_dwm = [row for row in v2 if row["process_name"] == "dwm.exe"]
    for field in ("offset_s", "frame_time_ms", "display_latency_ms", "dropped", "gpu_busy_ms"):
        assert [row[field] for row in current] == [row[field] for row in v1_dwm], field
        shared = [
            (a[field], b[field])
            for a, b in zip(v1_dwm, v2_dwm, strict=True)
            if b[field] is not None
        ]
        assert [a for a, _ in shared] == [b for _, b in shared], field


def test_perf_presentmon_names_are_case_insensitive():
    data = (FIXTURES / "presentmon_default_qpc.csv").read_bytes()
    header, _, body = data.partition(b"\n")
    result = _parse_bytes(header.upper() + b"\n" + body)
    assert result.format == "presentmon"
    assert _column(result, "frame_time_ms") == [50.1445, 16.5226, 52.6287]


def test_perf_presentmon_columns_found_by_name_not_position():
    header = "TimeInSeconds,MsBetweenPresents,Application,Dropped,WasBatched,MsUntilDisplayed\n"
    rows = "0.5,16.6,a.exe,0,0,10.0\n0.6,16.7,a.exe,0,0,11.0\n"
    result = _parse_bytes((header + rows).encode())
    assert result.format == "ocat"
    assert _column(result, "frame_time_ms") == [16.6, 16.7]
    assert _column(result, "process_name") == ["a.exe", "a.exe"]
    assert _column(result, "offset_s") == _approx([0.0, 0.1])


def test_perf_na_cells_become_null():
    header = "Application,TimeInSeconds,MsBetweenPresents,Dropped,MsUntilDisplayed\n"
    rows = "a.exe,0.0,16.6,NA,NA\na.exe,NA,NA,0,12.5\n"
    result = _parse_bytes((header + rows).encode())
    assert _column(result, "frame_time_ms") == [16.6, None]
    assert _column(result, "dropped") == [None, False]
    assert _column(result, "offset_s") == [0.0, None]


# -- CapFrameX, OCAT, FrameView ----------------------------------------------------------------


def test_perf_capframex_comment_lines_become_attributes():
    result = _parse_fixture("capframex_comment_header.csv")
    assert result.format == "capframex"
    assert result.attributes["game_name"] == "game.exe"
    assert result.attributes["gpu"] == "NVIDIA GeForce RTX 2080 Ti"
    assert result.attributes["cpu"] == "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz"
    assert result.attributes["os"] == "Windows 11"
    assert result.attributes["creation_date"] == "2024-05-01"


def test_perf_capframex_junk_values_kept_as_written():
    result = _parse_fixture("capframex_comment_header.csv")
    assert result.attributes["driver"] == "bla"
    assert result.attributes["comment"] == "a=b"
    assert result.problems == []


def test_perf_capframex_rows_and_float_noise():
    result = _parse_fixture("capframex_comment_header.csv")
    assert result.record_count == 3
    assert _column(result, "offset_s") == [0.0, 0.003345, 0.007014]
    assert _column(result, "dropped") == [True, False, True]
    assert _column(result, "display_latency_ms") == [None, 15.518, None]


def test_perf_ocat_first_row_system_info_becomes_attributes():
    result = _parse_fixture("ocat_ragged_system_info.csv")
    assert result.format == "ocat"
    assert result.attributes["cpu"] == "AMD Ryzen 7 5800X, 8-Core"
    assert result.attributes["gpu"] == "NVIDIA GeForce RTX 3070"
    assert result.attributes["driver"] == "531.41"


def test_perf_ocat_ragged_rows_all_load():
    result = _parse_fixture("ocat_ragged_system_info.csv")
    assert result.problems == []
    assert _column(result, "frame_time_ms") == [16.667, 16.7, 16.6]
    assert _column(result, "dropped") == [False, False, True]
    assert _column(result, "sample_no") == [1, 2, 3]


def test_perf_frameview_maps_names_with_spaces_and_symbols():
    result = _parse_fixture("frameview_log.csv")
    assert result.format == "frameview"
    assert _column(result, "cpu_util_pct") == [82.0, 81.0, 7.0]
    assert _column(result, "frame_time_ms") == [30.063, 20.349, 17.951]


def test_perf_frameview_gpu_util_coalesced():
    result = _parse_fixture("frameview_log.csv")
    # Row 2 has NA for GPU0 and 97 for GPU1.
    assert _column(result, "gpu_util_pct") == [98.0, 97.0, 9.0]


def test_perf_frameview_offset_relative_to_first_sample():
    result = _parse_fixture("frameview_log.csv")
    assert _column(result, "offset_s") == _approx([0.0, 0.020349, 0.0383])


def test_perf_frameview_system_columns_become_attributes():
    result = _parse_fixture("frameview_log.csv")
    assert result.attributes == {
        "gpu": "Intel(R) UHD Graphics",
        "cpu": "Intel(R) Core(TM) i7-10750H CPU @ 2.60GHz",
        "resolution": "1920x1080",
    }


def test_perf_frameview_ragged_rows_do_not_shift_columns():
    full = _parse_fixture("frameview_log.csv")
    ragged = _parse_fixture("frameview_ragged_system_info.csv")
    assert ragged.problems == []
    assert ragged.attributes == full.attributes
    assert ragged.records.equals(full.records)


# -- Afterburner -------------------------------------------------------------------------------


def test_perf_afterburner_detected_and_gpu_attribute():
    result = _parse_fixture("afterburner_log.hml")
    assert result.format == "afterburner"
    assert result.attributes["gpu"] == "NVIDIA GeForce RTX 3070"


def test_perf_afterburner_day_first_timestamps_as_utc():
    result = _parse_fixture("afterburner_log.hml")
    times = _column(result, "sample_time")
    assert times[0].isoformat() == "2025-02-03T21:56:05+00:00"
    assert _column(result, "offset_s") == [0.0, 1.0, 2.0, 4.0]


def test_perf_afterburner_takes_first_non_empty_duplicate_column():
    result = _parse_fixture("afterburner_log.hml")
    frame_times = _column(result, "frame_time_ms")
    assert frame_times[0] == 8.375
    assert frame_times[1] == 8.0


def test_perf_afterburner_framerate_fills_missing_frametime():
    result = _parse_fixture("afterburner_log.hml")
    frame_times = _column(result, "frame_time_ms")
    assert frame_times[2] == 20.0
    assert frame_times[3] is None


def test_perf_afterburner_maps_usage_and_memory():
    result = _parse_fixture("afterburner_log.hml")
    assert _column(result, "gpu_util_pct")[0] == 97.0
    assert _column(result, "cpu_util_pct")[0] == 35.2
    assert _column(result, "memory_mb")[0] == 12034.0
    assert _column(result, "gpu_memory_mb")[0] == 6144.125


def test_perf_afterburner_wrong_field_count_is_problem():
    result = _parse_fixture("afterburner_log.hml")
    assert [problem.position for problem in result.problems] == ["line 9"]
    assert "10 fields" in result.problems[0].reason
    assert result.problems[0].excerpt.startswith("80, 03-02-2025 21:56:08")
    assert _column(result, "sample_no") == [1, 2, 3, 5]


def test_perf_afterburner_invalid_timestamp_and_number_are_problems():
    data = (FIXTURES / "afterburner_log.hml").read_bytes()
    data = data.replace(b"03-02-2025 21:56:06", b"2025-02-03 21:56:06", 1)
    data = data.replace(b"95.000 ", b"9x.000 ", 1)
    result = _parse_bytes(data, "log.hml")
    reasons = {problem.position: problem.reason for problem in result.problems}
    assert "invalid timestamp '2025-02-03 21:56:06'" in reasons["line 7"]
    assert "invalid number '9x.000' in column 'GPU usage'" in reasons["line 8"]
    assert result.record_count == 2


# -- Bad input ---------------------------------------------------------------------------------


_SIMPLE_HEADER = "Application,ProcessID,TimeInSeconds,MsBetweenPresents,Dropped,MsUntilDisplayed\n"


def test_perf_unknown_header_rejected_with_header():
    result = _parse_fixture("unknown_tool.csv")
    assert result.format == "unknown"
    assert result.record_count == 0
    assert [problem.position for problem in result.problems] == ["file"]
    assert "'Frame,Delta (ms),GPU Temp'" in result.problems[0].reason


def test_perf_unknown_header_reason_is_bounded():
    header = ",".join(f"Column number {i}" for i in range(500))
    result = _parse_bytes((header + "\n1\n").encode())
    assert len(result.problems[0].reason) < 600
    assert len(result.problems[0].excerpt) <= 500


def test_perf_empty_file_rejected():
    result = _parse_bytes(b"  \r\n")
    assert result.format == "unknown"
    assert "empty" in result.problems[0].reason


def test_perf_comments_without_header_rejected():
    result = _parse_bytes(b"//GameName=x\n//GPU=y\n")
    assert "no CSV header" in result.problems[0].reason


def test_perf_header_only_reports_no_rows():
    result = _parse_bytes(_SIMPLE_HEADER.encode())
    assert result.format == "ocat"
    assert result.record_count == 0
    assert "no data rows" in result.problems[0].reason


def test_perf_bad_number_row_becomes_problem():
    rows = "a.exe,1,0.0,16.6,0,10\na.exe,1,0.016,abc,0,10\na.exe,1,0.033,16.8,0,10\n"
    result = _parse_bytes((_SIMPLE_HEADER + rows).encode())
    assert [problem.position for problem in result.problems] == ["line 3"]
    assert "invalid number 'abc' in column 'MsBetweenPresents'" in result.problems[0].reason
    assert result.problems[0].excerpt == "a.exe,1,0.016,abc,0,10"
    assert _column(result, "frame_time_ms") == [16.6, 16.8]
    assert _column(result, "sample_no") == [1, 3]


def test_perf_wrong_field_count_row_becomes_problem():
    rows = "a.exe,1,0.0,16.6,0,10\na.exe,1,0.016\na.exe,1,0.033,16.8,0,10\n"
    result = _parse_bytes((_SIMPLE_HEADER + rows).encode())
    assert [problem.position for problem in result.problems] == ["line 3"]
    assert "3 fields" in result.problems[0].reason
    assert _column(result, "sample_no") == [1, 3]


def test_perf_blank_lines_keep_file_line_numbers():
    rows = "a.exe,1,0.0,16.6,0,10\r\n\r\n\r\na.exe,1,0.016,x,0,10\r\na.exe,1,0.033,16.8,0,10\r\n"
    result = _parse_bytes((_SIMPLE_HEADER + rows).encode())
    assert [problem.position for problem in result.problems] == ["line 5"]
    assert result.problems[0].excerpt == "a.exe,1,0.016,x,0,10"


def test_perf_large_file_bad_rows_numbered():
    good = "game.exe,1,{t:.4f},16.6667,0,12.0\n"
    lines = [good.format(t=i / 60) for i in range(80_000)]
    lines[70_000] = "game.exe,1,1166.6667\n"
    lines[75_000] = "game.exe,1,1250.0000,oops,0,12.0\n"
    result = _parse_bytes((_SIMPLE_HEADER + "".join(lines)).encode())
    assert result.record_count == 79_998
    assert [problem.position for problem in result.problems] == ["line 70002", "line 75002"]


def test_perf_problems_are_capped_with_summary():
    rows = "".join(f"a.exe,1,{i},bad,0,10\n" for i in range(1_100))
    result = _parse_bytes((_SIMPLE_HEADER + rows).encode())
    assert len(result.problems) == 1_001
    assert result.problems[-1].position == "file"
    assert "100 more rows" in result.problems[-1].reason


def test_perf_utf16_file_parses():
    text = (FIXTURES / "presentmon_default_qpc.csv").read_text(encoding="utf-8-sig")
    result = _parse_bytes(text.encode("utf-16"))
    assert result.format == "presentmon"
    assert _column(result, "frame_time_ms") == [50.1445, 16.5226, 52.6287]


def test_perf_legacy_code_page_process_name():
    rows = "Spiel_\u00e4.exe,1,0.0,16.6,0,10\n"
    result = _parse_bytes((_SIMPLE_HEADER + rows).encode("cp1252"))
    assert _column(result, "process_name") == ["Spiel_\u00e4.exe"]


def test_perf_trailing_comma_rows_load():
    rows = "a.exe,1,0.0,16.6,0,10,\na.exe,1,0.016,16.7,0,10,\n"
    result = _parse_bytes((_SIMPLE_HEADER + rows).encode())
    assert result.problems == []
    assert _column(result, "frame_time_ms") == [16.6, 16.7]


def test_perf_date_time_column_sets_sample_time():
    header = (
        "Application,ProcessID,SwapChainAddress,CPUStartDateTime,"
        "MsBetweenPresents,MsCPUBusy,MsUntilDisplayed\n"
    )
    rows = (
        "a.exe,1,0x1,2024-05-01 10:00:00.000000000,16.0,2.0,10.0\n"
        "a.exe,1,0x1,2024-05-01 10:00:00.016000000,16.0,3.0,10.0\n"
    )
    result = _parse_bytes((header + rows).encode())
    assert result.format == "presentmon"
    assert _column(result, "sample_time")[1].isoformat() == "2024-05-01T10:00:00.016000+00:00"
    assert _column(result, "offset_s") == _approx([0.0, 0.017])


def test_perf_invalid_date_time_column_reported():
    header = "Application,ProcessID,TimeInDateTime,MsBetweenPresents,MsCPUBusy\n"
    rows = "a.exe,1,yesterday noon,16.0,2.0\na.exe,1,today,16.0,2.0\n"
    result = _parse_bytes((header + rows).encode())
    assert result.record_count == 2
    assert _column(result, "offset_s") == [None, None]
    assert "'yesterday noon'" in result.problems[0].reason


# -- Contract and helpers ----------------------------------------------------------------------


def test_perf_arrow_schema_matches_perf_record():
    from playtest_spark.schemas import PERF_RECORD
    from pyspark.sql.pandas.types import to_arrow_schema

    assert to_arrow_schema(PERF_RECORD).equals(PERF_ARROW_SCHEMA)


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.iterdir()))
def test_perf_every_fixture_returns_full_schema(name):
    result = _parse_fixture(name)
    assert result.records.schema.equals(PERF_ARROW_SCHEMA)


def test_perf_layout_tools_are_unique():
    tools = [layout.tool for layout in TOOL_LAYOUTS]
    assert len(tools) == len(set(tools))


def test_perf_previous_in_sequence_follows_each_sequence():
    ids = np.array([0, 1, 0, 1, 1, 2])
    assert previous_in_sequence(ids).tolist() == [-1, -1, 0, 1, 3, -1]


def test_perf_previous_in_sequence_single_sequence():
    assert previous_in_sequence(np.zeros(3, dtype=np.int64)).tolist() == [-1, 0, 1]


def test_perf_tick_frequency_snaps_to_10_mhz():
    ticks = np.array([0.0, 166_670.0, 333_330.0])
    intervals = np.array([math.nan, 16.667, 16.666])
    assert estimate_ticks_per_ms(ticks, intervals, np.array([-1, 0, 1])) == 10_000.0


def test_perf_tick_frequency_unusual_value_kept():
    ticks = np.array([0.0, 40_000.0, 80_000.0])
    intervals = np.array([math.nan, 16.0, 16.0])
    assert estimate_ticks_per_ms(ticks, intervals, np.array([-1, 0, 1])) == 2_500.0
