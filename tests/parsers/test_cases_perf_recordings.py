"""The performance and recordings parsers on real files that other tools wrote.

The files live outside the repository, in the folder named by `PLAYTEST_CASES_DIR`
(default `<repo>/../shared/cases`); these tests skip when it is absent.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from playtest_spark.parsers.base import BytesSource, FileContext, ParseResult
from playtest_spark.parsers.perf import PERF_ARROW_SCHEMA
from playtest_spark.parsers.perf import parse as parse_perf
from playtest_spark.parsers.recordings import parse as parse_recording

REPO = Path(__file__).resolve().parents[2]
CASES = Path(os.environ.get("PLAYTEST_CASES_DIR", REPO.parent / "shared" / "cases"))
PERF = CASES / "perf"
RECORDINGS = CASES / "recordings"

pytestmark = [
    pytest.mark.cases,
    pytest.mark.skipif(
        not PERF.is_dir() or not RECORDINGS.is_dir(),
        reason=f"real sample files not found under {CASES} (set PLAYTEST_CASES_DIR)",
    ),
]

V1 = "presentmon-v1metrics-camelcase-bom.csv"
V2 = "presentmon-v2metrics-frametime-bom.csv"
CURRENT = "presentmon-default-ms-qpc-bom.csv"


def _perf(name: str) -> ParseResult:
    path = PERF / name
    return parse_perf(
        BytesSource(name, path.read_bytes()),
        FileContext("case", f"performance/{name}", "performance"),
    )


def _recording(name: str) -> ParseResult:
    path = RECORDINGS / name
    context = FileContext("case", f"recordings/{name}", "recordings")
    return parse_recording(BytesSource(name, path.read_bytes()), context)


def _rows(result: ParseResult) -> list[dict]:
    return result.records.to_pylist()


# -- Every file --------------------------------------------------------------------------------


def test_cases_every_perf_file_yields_rows():
    names = sorted(path.name for path in PERF.iterdir())
    assert len(names) == 6
    for name in names:
        result = _perf(name)
        assert result.record_count > 0, name
        assert result.problems == [], name
        assert result.records.schema.equals(PERF_ARROW_SCHEMA), name


def test_cases_every_recording_yields_one_row():
    for path in sorted(RECORDINGS.iterdir()):
        result = _recording(path.name)
        assert len(result.records) == 1, path.name
        row = result.records[0]
        assert row["status"] in {"ok", "unreadable"}, path.name
        assert (row["status"] == "unreadable") == bool(result.problems), path.name


# -- Performance, per file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tool", "rows"),
    [
        (V1, "presentmon-v1", 192),
        (V2, "presentmon-v2", 186),
        (CURRENT, "presentmon", 186),
        ("capframex-csv-comment-header.csv", "capframex", 1982),
        ("frameview-witcher3-log.csv", "frameview", 499),
        ("afterburner-hml-re3-crlf.csv", "afterburner", 821),
    ],
)
def test_cases_perf_format_and_row_count(name, tool, rows):
    result = _perf(name)
    assert result.format == tool
    assert result.record_count == rows
    assert set(result.records.column("source_tool").to_pylist()) == {tool}


def test_cases_presentmon_first_frame_values():
    for name in (V1, V2, CURRENT):
        first = _rows(_perf(name))[0]
        assert first["process_name"] == "dwm.exe", name
        assert first["gpu_busy_ms"] == 0.7695, name
        assert first["display_latency_ms"] == 16.108, name
        assert first["offset_s"] == 0.0, name


def test_cases_presentmon_v1_last_frame_dropped():
    last = _rows(_perf(V1))[-1]
    assert last["dropped"] is True
    assert last["frame_time_ms"] == 116.8081
    assert last["offset_s"] == pytest.approx(3.3701932, abs=1e-9)


def test_cases_presentmon_current_offsets_from_qpc_ticks():
    last = _rows(_perf(CURRENT))[-1]
    assert last["offset_s"] == pytest.approx(3.2363433, abs=1e-9)
    assert last["cpu_busy_ms"] == 16.8327


def test_cases_presentmon_v2_unknown_only_on_first_frames():
    rows = _rows(_perf(V2))
    missing = [index for index, row in enumerate(rows) if row["frame_time_ms"] is None]
    # One first frame per swap chain: five swap chains in this trace.
    assert missing == [0, 5, 61, 91, 136]


def test_cases_capframex_attributes_and_values():
    result = _perf("capframex-csv-comment-header.csv")
    assert result.attributes["game_name"] == "re2.exe"
    assert result.attributes["gpu"] == "NVIDIA GeForce RTX 2080 Ti"
    assert result.attributes["cpu"] == "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz"
    assert result.attributes["driver"] == "bla"
    rows = _rows(result)
    assert rows[0]["dropped"] is True
    assert rows[1]["offset_s"] == 0.003345
    assert rows[1]["display_latency_ms"] == 15.518
    assert rows[-1]["offset_s"] == 6.923997


def test_cases_frameview_attributes_and_values():
    result = _perf("frameview-witcher3-log.csv")
    assert result.attributes == {
        "gpu": "Intel(R) UHD Graphics",
        "cpu": "Intel(R) Core(TM) i7-10750H CPU @ 2.60GHz",
        "resolution": "1920x1080",
    }
    rows = _rows(result)
    assert rows[0]["frame_time_ms"] == 30.063
    assert rows[0]["cpu_util_pct"] == 79.0
    assert rows[0]["gpu_util_pct"] == 98.0
    assert rows[1]["offset_s"] == 0.020349
    assert rows[-1]["offset_s"] == 11.683978


def test_cases_afterburner_attributes_and_values():
    result = _perf("afterburner-hml-re3-crlf.csv")
    assert result.attributes["gpu"] == "Radeon RX 580 Series"
    rows = _rows(result)
    assert rows[0]["frame_time_ms"] == 8.854
    assert rows[0]["sample_time"].isoformat() == "2025-10-24T16:56:05+00:00"
    assert rows[-1]["offset_s"] == 821.0
    assert rows[-1]["frame_time_ms"] is None
    assert sum(row["frame_time_ms"] is None for row in rows) == 16


# -- PresentMon agreement ----------------------------------------------------------------------


def _present_keys(name: str) -> list[tuple[str, int]]:
    """Return (process id, Present() counter value) per data row of a PresentMon file.

    v1 writes the Present() time as `QPCTime`, the current set as `TimeInQPC`. v2 writes
    only the CPU start; Present() follows it by `CPUBusy` milliseconds, at the 10 MHz
    counter frequency this trace shows (`TimeInQPC - CPUStartQPC == MsCPUBusy * 10**4`
    in the current set).
    """
    with (PERF / name).open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if "QPCTime" in rows[0]:
        return [(row["ProcessID"], int(row["QPCTime"])) for row in rows]
    if "TimeInQPC" in rows[0]:
        return [(row["ProcessID"], int(row["TimeInQPC"])) for row in rows]
    return [
        (row["ProcessID"], int(row["CPUStartQPC"]) + round(float(row["CPUBusy"]) * 10_000))
        for row in rows
    ]


def _by_frame(name: str) -> dict[tuple[str, int], dict]:
    keys = _present_keys(name)
    rows = _rows(_perf(name))
    assert len(keys) == len(rows)
    return dict(zip(keys, rows, strict=True))


@pytest.mark.parametrize("other", [V2, CURRENT])
def test_cases_presentmon_sets_share_frames(other):
    v1 = _by_frame(V1)
    frames = _by_frame(other)
    assert len(set(v1) & set(frames)) == 186


@pytest.mark.parametrize("other", [V2, CURRENT])
@pytest.mark.parametrize(
    "field",
    ["frame_time_ms", "offset_s", "display_latency_ms", "gpu_busy_ms", "dropped", "process_name"],
)
def test_cases_presentmon_sets_agree_on_shared_frames(other, field):
    v1 = _by_frame(V1)
    frames = _by_frame(other)
    shared = sorted(set(v1) & set(frames))
    known = [key for key in shared if frames[key][field] is not None]
    mismatches = [
        (key, v1[key][field], frames[key][field])
        for key in known
        if v1[key][field] != frames[key][field]
    ]
    assert mismatches == []
    # Only the v2 set leaves values unknown, and only for frames it has no history for.
    assert len(shared) - len(known) <= (5 if other == V2 else 2)


def test_cases_presentmon_frame_time_agreement_covers_most_frames():
    v1 = _by_frame(V1)
    v2 = _by_frame(V2)
    agreeing = [
        key
        for key in v2
        if v2[key]["frame_time_ms"] is not None
        and v2[key]["frame_time_ms"] == v1[key]["frame_time_ms"]
    ]
    assert len(agreeing) == 181


# -- Recordings, per file ----------------------------------------------------------------------


def test_cases_recording_browser_webm_without_duration():
    row = _recording("chrome-mediarecorder-no-duration-vfr.webm").records[0]
    assert row["status"] == "ok"
    assert row["container"] == "webm"
    assert row["video_codec"] == "vp9"
    assert row["audio_codec"] == "opus"
    assert (row["width"], row["height"]) == (1280, 720)
    assert row["frame_rate"] is None
    assert row["duration_s"] == pytest.approx(4.938, abs=1e-6)
    assert row["stream_count"] == 2
    assert row["size_bytes"] == 122447


def test_cases_recording_mkvmerge_three_tracks():
    row = _recording("mkvmerge-h264-vorbis-srt-3tracks.mkv").records[0]
    assert row["status"] == "ok"
    assert row["container"] == "mkv"
    assert row["video_codec"] == "h264"
    assert row["audio_codec"] == "vorbis"
    assert (row["width"], row["height"]) == (222, 106)
    assert row["frame_rate"] == 30.0
    assert row["duration_s"] == 1.536
    assert row["stream_count"] == 3


def test_cases_recording_ebml_header_only_is_unreadable():
    result = _recording("ebml-header-only-40b.mkv")
    row = result.records[0]
    assert row["status"] == "unreadable"
    assert row["size_bytes"] == 40
    assert "container header" in row["reason"]
    assert [problem.position for problem in result.problems] == ["file"]


def test_cases_recording_audio_only_mp4():
    row = _recording("mp4-audio-only-no-video.mp4").records[0]
    assert row["status"] == "ok"
    assert row["container"] == "mp4"
    assert row["audio_codec"] == "aac"
    assert row["video_codec"] is None
    assert row["width"] is None
    assert row["frame_rate"] is None
    assert row["duration_s"] == 0.04644
    assert row["stream_count"] == 1
