"""Log parsing: format detection, multi-line records, encodings, levels, times, privacy."""

from __future__ import annotations

import codecs
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from playtest_spark.parsers import logs
from playtest_spark.parsers.base import BytesSource, FileContext, ParseResult
from playtest_spark.schemas import LOG_RECORD

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
ALL_FIXTURES = sorted(path.name for path in FIXTURES.iterdir())
UTC = dt.timezone.utc

# Arrow types of LOG_RECORD, to check that records convert without loss.
ARROW_SCHEMA = pa.schema(
    [
        ("line_no", pa.int64()),
        ("logged_at", pa.timestamp("us", tz="UTC")),
        ("level", pa.string()),
        ("category", pa.string()),
        ("message", pa.string()),
        ("stack_trace", pa.string()),
        ("fingerprint", pa.string()),
        ("log_format", pa.string()),
    ]
)


def parse_bytes(data: bytes, name: str = "game.log") -> ParseResult:
    return logs.parse(BytesSource(name, data), FileContext("s1", f"logs/{name}", "logs"))


def parse_fixture(name: str) -> ParseResult:
    return parse_bytes((FIXTURES / name).read_bytes(), name)


def by_line(result: ParseResult) -> dict[int, dict[str, Any]]:
    return {record["line_no"]: record for record in result.records}


# -- properties every fixture must have --------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_parse_fixture_values_hold_no_cr_or_bom(name: str) -> None:
    result = parse_fixture(name)

    for record in result.records:
        for value in record.values():
            if isinstance(value, str):
                assert "\r" not in value
                assert "\ufeff" not in value


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_parse_fixture_records_match_log_record_schema(name: str) -> None:
    result = parse_fixture(name)

    assert result.problems == []
    assert result.record_count > 0
    for record in result.records:
        assert list(record) == LOG_RECORD.fieldNames()
        assert record["level"] in logs.LEVELS
        assert record["log_format"] == result.format
    table = pa.Table.from_pylist(list(result.records), schema=ARROW_SCHEMA)
    assert table.num_rows == result.record_count


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_parse_fixture_hides_user_names(name: str) -> None:
    result = parse_fixture(name)
    text = "\n".join(str(value) for record in result.records for value in record.values() if value)

    for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
        assert f"/{user}/" not in text
        assert f"\\{user}\\" not in text
        assert f"'{user}'" not in text


# -- Unity -------------------------------------------------------------------------------------


def test_unity_player_detected_with_engine_attributes() -> None:
    result = parse_fixture("unity_player_crash_crlf.log")

    assert result.format == "unity"
    assert result.record_count == 13
    assert result.attributes["engine"] == "unity"
    assert result.attributes["engine_version"] == "2022.3.21f1"
    assert result.attributes["gpu"] == "NVIDIA GeForce RTX 3060"
    assert result.attributes["driver"] == "31.0.15.5222"
    assert result.attributes["graphics_api"] == "Direct3D 11.0 [level 11.1]"


def test_unity_player_double_cr_lines_are_clean_records() -> None:
    records = by_line(parse_fixture("unity_player_crash_crlf.log"))

    assert records[11]["message"] == "<RI> Initializing input."
    assert records[12]["message"] == "<RI> Input initialized."


def test_unity_player_indented_lines_continue_a_record() -> None:
    records = by_line(parse_fixture("unity_player_crash_crlf.log"))

    assert records[5]["message"].splitlines()[0] == "Direct3D:"
    assert len(records[5]["message"].splitlines()) == 6
    assert 6 not in records


def test_unity_player_drops_filename_trailer() -> None:
    result = parse_fixture("unity_player_crash_crlf.log")

    assert not any("(Filename:" in record["message"] for record in result.records)
    assert by_line(result)[14]["message"] == "Loading level 3 took 1240 ms"


def test_unity_player_exception_is_one_record_with_frames() -> None:
    record = by_line(parse_fixture("unity_player_crash_crlf.log"))[17]

    assert record["level"] == "ERROR"
    assert record["message"] == (
        "NullReferenceException: Object reference not set to an instance of an object"
    )
    assert record["stack_trace"].splitlines() == [
        "at Orbit.Ship.Update () [0x0001b] in <8a3c1e2f9b7d4e6f>:0",
        "at Orbit.GameLoop.Tick (System.Single dt) [0x00010] in <8a3c1e2f9b7d4e6f>:0",
    ]


def test_unity_out_of_memory_report_joined() -> None:
    record = by_line(parse_fixture("unity_player_crash_crlf.log"))[23]

    assert record["level"] == "ERROR"
    assert record["message"].startswith("Could not allocate memory: System out of memory!")
    assert record["message"].endswith(
        "[ ALLOC_GFX ] used: 1604403907B | peak: 0B | reserved: 1629769728B"
    )


def test_unity_player_crash_block_is_one_fatal_record() -> None:
    result = parse_fixture("unity_player_crash_crlf.log")
    record = by_line(result)[32]

    assert record["level"] == "FATAL"
    assert record["message"] == "Crash!!!"
    assert record["stack_trace"].splitlines()[-1] == "========== END OF STACKTRACE ==========="
    assert "0x00007FFA2096A9F8 (ntdll) RtlUserThreadStart" in record["stack_trace"]
    assert "UserName: '<user>'" in record["stack_trace"]
    assert result.records[-1]["line_no"] == 45
    assert result.records[-1]["message"].endswith(
        " * C:/Users/<user>/AppData/Local/Temp/Studio/Orbit/Crashes"
    )


def test_unity_editor_utf16le_with_bom() -> None:
    result = parse_fixture("unity_editor_utf16le_bom.log")
    records = by_line(result)

    assert result.format == "unity"
    assert result.attributes["engine_version"] == "2021.3.16f1"
    assert result.attributes["os"] == "Windows 10  (10.0.19045) 64bit Professional"
    assert records[1]["category"] == "Licensing::Module"
    assert records[4]["message"] == "Spawned enemy wave 4"
    assert records[4]["stack_trace"].splitlines()[0] == "UnityEngine.Debug:Log (object)"


def test_unity_editor_exception_message_spans_lines_before_frames() -> None:
    record = by_line(parse_fixture("unity_editor_utf16le_bom.log"))[8]

    assert record["message"].splitlines() == [
        "ArgumentOutOfRangeException: Index was out of range. Must be non-negative and less "
        "than the size of the collection.",
        "Parameter name: index",
    ]
    assert record["stack_trace"].splitlines()[1] == (
        "Orbit.Inventory.Equip (System.Int32 slot) (at Assets/Scripts/Inventory.cs:88)"
    )


# -- Unreal ------------------------------------------------------------------------------------


def test_unreal_without_then_with_prefix() -> None:
    result = parse_fixture("unreal_noprefix_then_prefix_crlf_lf.log")
    records = by_line(result)

    assert result.format == "unreal"
    assert result.record_count == 20
    assert records[1]["message"] == "Log file open, 03/14/24 09:15:02"
    assert records[2]["category"] == "LogWindows"
    assert records[2]["logged_at"] is None
    assert records[6]["message"] == "- built for x86_64-pc-win32"
    assert records[13]["logged_at"] == dt.datetime(2024, 3, 14, 8, 15, 4, 2000, tzinfo=UTC)


def test_unreal_unprefixed_indented_line_continues_record() -> None:
    record = by_line(parse_fixture("unreal_noprefix_then_prefix_crlf_lf.log"))[7]

    assert record["message"].splitlines()[1].strip() == (
        "Session CrashGUID >   UECC-Windows-0123456789ABCDEF0123456789ABCDEF"
    )


@pytest.mark.parametrize(
    ("line_no", "level"),
    [(2, "INFO"), (13, "INFO"), (14, "DEBUG"), (15, "TRACE"), (16, "WARNING"), (33, "ERROR")],
)
def test_unreal_verbosity_maps_to_level(line_no: int, level: str) -> None:
    records = by_line(parse_fixture("unreal_noprefix_then_prefix_crlf_lf.log"))

    assert records[line_no]["level"] == level


def test_unreal_warning_with_bare_lf_joined() -> None:
    records = by_line(parse_fixture("unreal_noprefix_then_prefix_crlf_lf.log"))
    record = records[16]

    assert record["message"] == "Script Stack (2 frames):"
    assert record["stack_trace"].splitlines() == [
        "/Game/Blueprints/BP_Door.BP_Door_C.ExecuteUbergraph_BP_Door",
        "/Game/Blueprints/BP_Door.BP_Door_C.OpenDoor",
    ]
    assert all(line_no not in records for line_no in range(17, 22))


def test_unreal_handled_ensure_is_one_record() -> None:
    records = by_line(parse_fixture("unreal_noprefix_then_prefix_crlf_lf.log"))
    record = records[22]

    assert record["level"] == "ERROR"
    assert record["category"] == "LogOutputDevice"
    assert record["logged_at"] == dt.datetime(2024, 3, 14, 8, 15, 5, 610000, tzinfo=UTC)
    assert record["message"].splitlines() == [
        "Ensure condition failed: Door != nullptr "
        "[File:D:/Build/Orbit/Source/Orbit/DoorComponent.cpp] [Line: 57]",
        "Door actor missing on BP_Door_C_3",
    ]
    assert record["stack_trace"].splitlines() == [
        "0x00007ff98ce921d9 UnrealEditor-Orbit.dll!UDoorComponent::Open() "
        "[D:\\Build\\Orbit\\Source\\Orbit\\DoorComponent.cpp:57]",
        "0x00007ff9cbd22112 UnrealEditor-Engine.dll!UWorld::Tick() "
        "[D:\\Build\\UE5\\World.cpp:1520]",
        "0x00007ffa0c5a2651 ntdll.dll!UnknownFunction []",
    ]
    assert all(line_no not in records for line_no in range(23, 31))
    assert records[31]["category"] == "LogStats"


def test_unreal_critical_error_at_end_is_fatal() -> None:
    result = parse_fixture("unreal_noprefix_then_prefix_crlf_lf.log")
    record = result.records[-1]

    assert record["line_no"] == 34
    assert record["level"] == "FATAL"
    assert (
        record["message"].splitlines()[1] == "Array index out of bounds: 5 from an array of size 3"
    )
    assert record["stack_trace"].startswith(
        "0x00007ff98ce00001 UnrealEditor-Orbit.dll!UInventory::Get()"
    )


def test_unreal_verbosity_without_category() -> None:
    record = by_line(parse_fixture("unreal_noprefix_then_prefix_crlf_lf.log"))[32]

    assert record["category"] is None
    assert record["level"] == "WARNING"
    assert record["message"] == "HotReload failed, recompile failed"


def test_unreal_user_and_computer_names_are_replaced() -> None:
    records = by_line(parse_fixture("unreal_noprefix_then_prefix_crlf_lf.log"))

    assert records[10]["message"] == "Computer: <computer>"
    assert records[11]["message"] == "User: <user>"
    assert "C:/Users/<user>/AppData/Local/Orbit" in records[9]["message"]


def test_unreal_attributes() -> None:
    attributes = parse_fixture("unreal_noprefix_then_prefix_crlf_lf.log").attributes

    assert attributes == {
        "engine": "unreal",
        "engine_version": "5.3.2",
        "engine_build": "5.3.2-29314046+++UE5+Release-5.3",
        "os": "Windows 11 (23H2) [10.0.22631.3155]",
        "cpu": "AMD Ryzen 7 5800X 8-Core Processor",
        "gpu": "AMD Radeon RX 6800 XT",
        "driver": "24.2.1",
    }


def test_unreal_utf16be_without_bom() -> None:
    result = parse_fixture("unreal_utf16be_nobom.log")

    assert result.format == "unreal"
    assert [record["level"] for record in result.records] == ["INFO", "WARNING", "ERROR"]
    assert result.records[2]["message"] == "Failed to load save slot 2"
    assert result.records[2]["logged_at"] == dt.datetime(2024, 5, 1, 12, 0, 2, 250000, tzinfo=UTC)


# -- Godot -------------------------------------------------------------------------------------


def test_godot4_dotnet_error_with_backtrace_is_one_record() -> None:
    result = parse_fixture("godot4_dotnet_backtrace.log")
    record = by_line(result)[6]

    assert result.format == "godot"
    assert result.record_count == 10
    assert record["level"] == "ERROR"
    assert record["message"] == (
        "System.NullReferenceException: Object reference not set to an instance of an object."
    )
    lines = record["stack_trace"].splitlines()
    assert lines[0] == "at Orbit.Ship._Process(Double delta) in /home/<user>/orbit/Ship.cs:line 42"
    assert lines[3] == "C# backtrace (most recent call first):"
    assert (
        lines[-1].strip()
        == "[1] void Godot.NativeInterop.ExceptionUtils.LogException(System.Exception)"
    )


def test_godot4_game_lines_interleaved() -> None:
    records = by_line(parse_fixture("godot4_dotnet_backtrace.log"))

    assert records[4]["level"] == "INFO"
    assert records[4]["category"] == "Boot"
    assert records[4]["message"].startswith("Loading profile from /home/<user>/.local/share")
    assert records[5]["level"] == "WARNING"
    assert records[13]["level"] == "ERROR"
    assert records[13]["category"] == "Save"
    assert records[13]["stack_trace"] == "at Orbit.SaveGame.Write(String path)"


def test_godot4_script_error_and_warning() -> None:
    records = by_line(parse_fixture("godot4_dotnet_backtrace.log"))

    assert records[16]["category"] == "script"
    assert records[16]["level"] == "ERROR"
    assert "GDScript backtrace (most recent call first):" in records[16]["stack_trace"]
    assert records[20]["level"] == "WARNING"
    assert records[20]["stack_trace"] == "at: _load (scene/resources/texture.cpp:120)"


def test_godot4_key_value_block_is_one_record() -> None:
    result = parse_fixture("godot4_dotnet_backtrace.log")
    records = by_line(result)

    assert records[22]["message"].splitlines()[0] == "=== OS Debug Information ==="
    assert (
        records[22]["message"].splitlines()[-1]
        == "Processor Name: AMD Ryzen 5 5600X 6-Core Processor"
    )
    assert records[27]["message"] == "Shutting down"
    assert result.attributes == {
        "engine": "godot",
        "engine_version": "4.2.1.stable.mono.official.b09f793f5",
        "graphics_api": "Vulkan API 1.3.260",
        "gpu": "NVIDIA GeForce RTX 3070",
        "os": "Linux",
        "os_version": "6.5.0",
        "cpu": "AMD Ryzen 5 5600X 6-Core Processor",
    }


def test_godot3_at_lines_join_their_error() -> None:
    result = parse_fixture("godot3_errors.log")
    records = by_line(result)

    assert result.format == "godot"
    assert result.attributes["gpu"] == "Mesa Intel(R) UHD Graphics 620 (KBL GT2)"
    assert records[4]["stack_trace"] == "At: core/io/resource_loader.cpp:208."
    assert records[6]["category"] == "script"
    assert records[8]["category"] == "user"
    assert records[8]["level"] == "WARNING"
    assert records[10]["message"] == "Level loaded"


# -- generic -----------------------------------------------------------------------------------


def test_generic_timestamps_converted_to_utc() -> None:
    result = parse_fixture("generic_mixed_line_ends.log")
    records = by_line(result)

    assert result.format == "generic"
    assert records[1]["logged_at"] == dt.datetime(2024, 6, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert records[2]["logged_at"] == dt.datetime(2024, 6, 1, 10, 0, 1, 500000, tzinfo=UTC)
    assert records[2]["level"] == "WARNING"
    assert records[2]["category"] == "net"
    assert records[10]["logged_at"] == dt.datetime(2024, 6, 1, 10, 0, 4, tzinfo=UTC)


def test_generic_java_trace_after_lone_cr() -> None:
    record = by_line(parse_fixture("generic_mixed_line_ends.log"))[3]

    assert record["message"].splitlines() == [
        "Unhandled exception",
        "java.lang.IllegalStateException: Match already started",
    ]
    assert record["stack_trace"].splitlines()[-2:] == [
        "Caused by: java.io.IOException: Socket closed",
        "\t... 2 more",
    ]


def test_generic_python_traceback_and_logfmt_level() -> None:
    records = by_line(parse_fixture("generic_mixed_line_ends.log"))

    assert records[9]["level"] == "DEBUG"
    assert records[9]["message"] == "msg=heartbeat"
    assert records[10]["stack_trace"].splitlines()[-1] == "ValueError: bad frame count"
    assert (
        records[10]["stack_trace"].splitlines()[1]
        == '  File "/home/<user>/tools/export.py", line 12, in main'
    )


def test_generic_plain_text_guesses_levels() -> None:
    result = parse_fixture("generic_plain.txt")

    assert [(record["line_no"], record["level"]) for record in result.records] == [
        (1, "INFO"),
        (2, "INFO"),
        (3, "WARNING"),
        (4, "WARNING"),
        (5, "ERROR"),
        (7, "FATAL"),
    ]
    assert by_line(result)[5]["message"] == "connection refused\n    retrying in 5 s"
    assert all(record["logged_at"] is None for record in result.records)


def test_generic_logcat_lines() -> None:
    data = (
        b"06-01 10:00:00.123  1234  1250 I Unity   : Loading scene Main\n"
        b"06-01 10:00:01.456  1234  1250 E AndroidRuntime: FATAL EXCEPTION: main\n"
        b"W/Orbit( 1234): low memory\n"
    )
    records = parse_bytes(data).records

    assert [(record["level"], record["category"]) for record in records] == [
        ("INFO", "Unity"),
        ("ERROR", "AndroidRuntime"),
        ("WARNING", "Orbit"),
    ]
    assert records[1]["message"] == "FATAL EXCEPTION: main"


def test_generic_bare_traceback_message() -> None:
    data = (
        b"Traceback (most recent call last):\n"
        b'  File "x.py", line 1, in <module>\n'
        b"KeyError: 'hp'\n"
    )
    records = parse_bytes(data).records

    assert len(records) == 1
    assert records[0]["message"] == "KeyError: 'hp'"
    assert records[0]["level"] == "ERROR"


# -- encodings and line ends -------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
        lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        lambda text: text.encode("utf-16-le"),
        lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
        lambda text: text.encode("utf-16-be"),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16le", "utf16be-bom", "utf16be"],
)
@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r\r\n"], ids=["lf", "crlf", "crcrlf"])
def test_parse_gives_same_records_for_any_encoding(encode: Any, line_end: str) -> None:
    lines = [
        "[2024.05.01-12.00.00:000][  0]LogInit: Display: Starting Game.",
        "[2024.05.01-12.00.01:000][  1]LogGame: Error: Jump failed",
        "second line of the error",
    ]
    result = parse_bytes(encode(line_end.join(lines) + line_end))

    assert [(record["line_no"], record["message"]) for record in result.records] == [
        (1, "Starting Game."),
        (2, "Jump failed\nsecond line of the error"),
    ]


# -- rejected files ----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \r\n\r\n", codecs.BOM_UTF8 + b"\r\n"])
def test_parse_rejects_empty_file(data: bytes) -> None:
    result = parse_bytes(data)

    assert result.record_count == 0
    assert [problem.position for problem in result.problems] == ["file"]
    assert "nothing" in result.problems[0].reason


def test_parse_rejects_binary_file() -> None:
    result = parse_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" * 20, "shot.log")

    assert result.record_count == 0
    assert result.problems[0].position == "file"
    assert "not a text log" in result.problems[0].reason
    assert "'shot.log'" in result.problems[0].reason


# -- detection and level guessing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["Initialize engine version: 2022.3.1f1 (abc)", "hello"], "unity"),
        (["hello", "(Filename: Assets/A.cs Line: 3)"], "unity"),
        (["Log file open, 01/01/24 10:00:00", "LogInit: x"], "unreal"),
        (["[2024.01.01-10.00.00:000][  0]LogInit: x"], "unreal"),
        (["LogInit: a", "LogWindows: b", "LogConfig: c"], "unreal"),
        (["Godot Engine v4.2.stable.official - https://godotengine.org"], "godot"),
        (["ERROR: x", "   at: f (a.cpp:1)"], "godot"),
        (["2024-01-01 10:00:00 INFO started"], "generic"),
        (["just some text"], "generic"),
    ],
)
def test_detect_format(lines: list[str], expected: str) -> None:
    assert logs.detect_format(lines) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[ERROR] boom", "ERROR"),
        ("Warning: low fuel", "WARNING"),
        ("debug: tick", "DEBUG"),
        ("NullReferenceException: x", "ERROR"),
        ("Failed to load asset", "ERROR"),
        ("Could not find sprite", "WARNING"),
        ("Texture not found", "WARNING"),
        ("Crash!!!", "FATAL"),
        ("fatal signal 11", "FATAL"),
        ("0 failed, 12 passed", "INFO"),
        ("Loaded 24 maps", "INFO"),
    ],
)
def test_guess_level(text: str, expected: str) -> None:
    assert logs.guess_level(text) == expected


# -- speed -------------------------------------------------------------------------------------


def test_parse_two_megabytes_of_distinct_lines_quickly() -> None:
    lines = [
        f"[2024.01.01-00.00.{index % 60:02d}:{index % 1000:03d}][{index % 100:3d}]LogTemp: "
        f"Warning: Actor Foo_{index} at {index * 0.37:.3f} missing 'x{index}' "
        f"C:/Users/bob/{index}.txt"
        for index in range(15000)
    ]
    data = "\r\n".join(lines).encode("utf-8")
    assert len(data) > 1_500_000

    started = time.perf_counter()
    result = parse_bytes(data)
    elapsed = time.perf_counter() - started

    assert result.record_count == 15000
    # About 1 s on a 2-core machine; the bound leaves room for a busy test run.
    assert elapsed < 10
