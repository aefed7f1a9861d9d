"""Fingerprints group the same problem across sessions and builds, and only that."""

from __future__ import annotations

import re

import pytest

from playtest_spark.parsers.fingerprint import (
    TOP_FRAMES,
    exception_type,
    fingerprint,
    is_stack_frame,
    normalize_frame,
    normalize_message,
    top_frames,
)

DOTNET_TRACE = (
    "at Orbit.Ship.Update () [0x0001b] in <8a3c1e2f9b7d4e6f>:0\n"
    "at Orbit.GameLoop.Tick (System.Single dt) [0x00010] in <8a3c1e2f9b7d4e6f>:0"
)


def test_fingerprint_is_16_hex_characters() -> None:
    value = fingerprint("ERROR", "LogNet", "Connection lost", None)

    assert re.fullmatch(r"[0-9a-f]{16}", value)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Loaded 24 maps in 1.5 s", "Loaded 31 maps in 0.25 s"),
        ("Bad pointer 0x7ffa12bc", "Bad pointer 0x00000001"),
        ("Crash id A205FED74C518DA718C80CA1D7AEEA58", "Crash id 0123456789ABCDEF0123456789ABCDEF"),
        (
            "Actor {3f2504e0-4f89-11d3-9a0c-0305e82c3301} missing",
            "Actor 9b2e4c1a-0d7f-4e8b-a1c2-3d4e5f607182 missing",
        ),
        (r"Cannot open C:\Users\alice\save.dat", r"Cannot open C:\Users\bob\save.dat"),
        ("Cannot open /home/alice/save.dat", "Cannot open /home/bob/save.dat"),
        ("Missing sprite 'hand_crank'", "Missing sprite 'stress_power'"),
        ('Key "fire" not bound', 'Key "jump" not bound'),
        ("Asset not cached: res://scenes/a.tscn", "Asset not cached: res://ui/b.png"),
        ("Mail from ann@example.org failed", "Mail from bo@example.com failed"),
        ("Waited   5   ms", "Waited 7 ms"),
    ],
)
def test_fingerprint_ignores_variable_parts(first: str, second: str) -> None:
    assert fingerprint("WARNING", None, first, None) == fingerprint("WARNING", None, second, None)


def test_fingerprint_differs_by_message_words() -> None:
    assert fingerprint("ERROR", None, "Door missing", None) != fingerprint(
        "ERROR", None, "Window missing", None
    )


def test_fingerprint_differs_by_level() -> None:
    assert fingerprint("ERROR", None, "Door missing", None) != fingerprint(
        "WARNING", None, "Door missing", None
    )


def test_fingerprint_differs_by_category() -> None:
    assert fingerprint("ERROR", "LogNet", "Lost", None) != fingerprint(
        "ERROR", "LogAI", "Lost", None
    )


def test_fingerprint_keeps_identifiers_with_digits() -> None:
    assert fingerprint("ERROR", None, "Texture2D failed", None) != fingerprint(
        "ERROR", None, "Texture3D failed", None
    )


def test_fingerprint_exception_uses_type_and_frames_not_text() -> None:
    first = fingerprint("ERROR", None, "KeyNotFoundException: key 'a' absent", DOTNET_TRACE)
    second = fingerprint("ERROR", None, "KeyNotFoundException: key b absent here", DOTNET_TRACE)

    assert first == second


def test_fingerprint_exception_differs_by_type() -> None:
    first = fingerprint("ERROR", None, "KeyNotFoundException: x", DOTNET_TRACE)
    second = fingerprint("ERROR", None, "InvalidOperationException: x", DOTNET_TRACE)

    assert first != second


def test_fingerprint_exception_differs_by_top_frame() -> None:
    other_trace = DOTNET_TRACE.replace("Ship.Update", "Ship.Dock")

    assert fingerprint("ERROR", None, "NullReferenceException: x", DOTNET_TRACE) != fingerprint(
        "ERROR", None, "NullReferenceException: x", other_trace
    )


def test_fingerprint_ignores_frames_below_the_top() -> None:
    frames = [f"at Orbit.Frame{name}.Run ()" for name in "ABCDEFG"]
    deeper_change = frames[:TOP_FRAMES] + ["at Orbit.Other.Run ()"]

    assert fingerprint("ERROR", None, "IOException: x", "\n".join(frames)) == fingerprint(
        "ERROR", None, "IOException: x", "\n".join(deeper_change)
    )


def test_fingerprint_ignores_frame_addresses_and_lines() -> None:
    first = "[Callstack] 0x00007ff98ce921d9 Game.dll!UDoor::Open() [D:\\Build\\Door.cpp:57]"
    second = "[Callstack] 0x00007ff911111111 Game.dll!UDoor::Open() [D:\\Other\\Door.cpp:60]"

    assert fingerprint("ERROR", None, "Ensure condition failed: Door", first) == fingerprint(
        "ERROR", None, "Ensure condition failed: Door", second
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "   at Orbit.Ship._Process(Double delta) in /home/bob/Ship.cs:line 42",
            "Orbit.Ship._Process",
        ),
        ("  at Orbit.Ship.Update () [0x0001b] in <8a3c1e2f>:0 ", "Orbit.Ship.Update"),
        ("       [0] void Godot.GD.PushError(string)", "Godot.GD.PushError"),
        ("   at: pipeline_cache_create (drivers/d3d12/driver.cpp:4467)", "pipeline_cache_create"),
        (
            "[Callstack] 0x00007ff98ce921d9 UE4Editor-Slate.dll!UnknownFunction []",
            "UE#Editor-Slate.dll!UnknownFunction",
        ),
        ("0x00007FF98B3542BB (UnityPlayer) UnityMain", "UnityMain"),
        ("0x0000022124FE0CC9 (Mono JIT Code) Verse.Atlas:Bake (bool)", "Verse.Atlas:Bake"),
        ("StartUpStarted at offset 0 in file:line:column <filename unknown>:0:0", "StartUpStarted"),
        ("UnityEngine.Debug:Log (object)", "UnityEngine.Debug:Log"),
        (
            "Orbit.Spawner:SpawnWave (int) (at Assets/Scripts/Spawner.cs:42)",
            "Orbit.Spawner:SpawnWave",
        ),
        ("\tat com.studio.Match.start(Match.java:88)", "com.studio.Match.start"),
        ('  File "/home/bob/tools/export.py", line 12, in main', "export.py:main"),
        ("#0  0x00007f3a in render_frame (ctx=0x1) at render.c:120", "render_frame"),
    ],
)
def test_normalize_frame_keeps_function_name(line: str, expected: str) -> None:
    assert is_stack_frame(line)
    assert normalize_frame(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "Parsed 8.5 as int.",
        "Direct3D:",
        "ASPECT_RATIO: (Auto)",
        "Start: newobj System.Void System.Text.StringBuilder::.ctor()",
        "Init()",
        "LogInit: Foo (bar)",
        "Loading level 3",
    ],
)
def test_is_stack_frame_rejects_messages(line: str) -> None:
    assert not is_stack_frame(line)


def test_top_frames_skips_lines_that_are_no_frames() -> None:
    trace = (
        "SymInit: path\n"
        "C:\\Game\\x.dll:x.dll (00007FF7B4A70000)\n"
        "0x00007FF98B3542BB (UnityPlayer) UnityMain"
    )

    assert top_frames(trace) == ["UnityMain"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("System.NullReferenceException: Object reference", "System.NullReferenceException"),
        ("ERROR: System.InvalidCastException: Unable to cast", "System.InvalidCastException"),
        ("ValueError: bad frame count", "ValueError"),
        ("NullReferenceException", "NullReferenceException"),
        ("Error: connection refused", None),
        ("Loaded 3 maps", None),
        (None, None),
    ],
)
def test_exception_type_finds_leading_type(message: str | None, expected: str | None) -> None:
    assert exception_type(message) == expected


def test_normalize_message_replaces_each_variable_kind() -> None:
    message = (
        "Failed 'a.dll' at C:\\Users\\bob\\x.dll addr 0x7ffa12 id A205FED74C518DA7 "
        "{3f2504e0-4f89-11d3-9a0c-0305e82c3301} don't 42 x86_64 /usr/lib/x.so bob@example.org"
    )

    assert normalize_message(message) == (
        "Failed '<str>' at <path> addr <addr> id <hex> <guid> don't <n> x86_64 <path> <email>"
    )
