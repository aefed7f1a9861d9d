"""Unit tests of the recordings parser on tiny videos that the tests encode with PyAV."""

from __future__ import annotations

import dataclasses
import io
from fractions import Fraction
from pathlib import Path
from typing import IO

import av
import av.logging
import numpy as np
import pytest
from playtest_spark.parsers.base import BytesSource, FileContext, ParseResult
from playtest_spark.parsers.recordings import RECORDING_FIELDS, parse
from playtest_spark.parsers.recordings import _tag_duration as tag_duration

WIDTH, HEIGHT = 64, 48


@dataclasses.dataclass(frozen=True)
class PathSource:
    """A landed file on disk that only supports streaming, like a large blob."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def read_bytes(self) -> bytes:
        raise AssertionError("the recordings parser must stream, not read whole files")

    def open(self) -> IO[bytes]:
        return self.path.open("rb")


def _encode(
    path: Path | io.BytesIO,
    container_format: str,
    video_codec: str | None = "mpeg4",
    rate: int | Fraction | None = 25,
    frames: int = 20,
    pts_ms: list[int] | None = None,
    audio_codec: str | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Write a small recording: grey frames and silent audio."""
    output = av.open(path, "w", format=container_format, options=options or {})
    video = None
    if video_codec is not None:
        video = output.add_stream(video_codec, rate=rate)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if pts_ms is not None:
            video.time_base = Fraction(1, 1000)
    audio = output.add_stream(audio_codec, rate=48000) if audio_codec else None
    if video is not None:
        for index in range(frames):
            pixels = np.full((HEIGHT, WIDTH, 3), index * 10 % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], Fraction(1, 1000)
            output.mux(video.encode(frame))
        output.mux(video.encode())
    if audio is not None:
        samples = audio.codec_context.frame_size or 1024
        for index in range(10):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, samples), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 48000, index * samples
            output.mux(audio.encode(frame))
        output.mux(audio.encode())
    output.close()


def _parse_path(path: Path, options: dict | None = None) -> tuple[dict, ParseResult]:
    context = FileContext("session-1", f"recordings/{path.name}", "recordings", options or {})
    result = parse(PathSource(path), context)
    assert len(result.records) == 1
    return result.records[0], result


def _matroska_without_tracks() -> bytes:
    """Return a Matroska file with a segment, an empty cluster and no track at all."""

    def element(element_id: bytes, payload: bytes) -> bytes:
        return element_id + b"\x01" + len(payload).to_bytes(7, "big") + payload

    header = element(
        b"\x1a\x45\xdf\xa3",
        element(b"\x42\x86", b"\x01")
        + element(b"\x42\xf7", b"\x01")
        + element(b"\x42\xf2", b"\x04")
        + element(b"\x42\xf3", b"\x08")
        + element(b"\x42\x82", b"matroska")
        + element(b"\x42\x87", b"\x04")
        + element(b"\x42\x85", b"\x02"),
    )
    info = element(b"\x15\x49\xa9\x66", element(b"\x2a\xd7\xb1", (1_000_000).to_bytes(3, "big")))
    cluster = element(b"\x1f\x43\xb6\x75", element(b"\xe7", b"\x00"))
    return header + element(b"\x18\x53\x80\x67", info + cluster)


# -- Readable files ------------------------------------------------------------------------


def test_recording_mp4_video_and_audio_metadata(tmp_path):
    path = tmp_path / "session.mp4"
    _encode(path, "mp4", rate=25, frames=20, audio_codec="aac")
    row, result = _parse_path(path)
    assert result.problems == []
    assert row["status"] == "ok"
    assert row["container"] == "mp4"
    assert row["video_codec"] == "mpeg4"
    assert row["audio_codec"] == "aac"
    assert (row["width"], row["height"]) == (WIDTH, HEIGHT)
    assert row["frame_rate"] == 25.0
    assert row["duration_s"] == pytest.approx(0.8, abs=0.05)
    assert row["stream_count"] == 2
    assert row["size_bytes"] == path.stat().st_size
    assert row["reason"] is None


def test_recording_row_has_every_field(tmp_path):
    path = tmp_path / "session.mp4"
    _encode(path, "mp4")
    row, _ = _parse_path(path)
    assert tuple(row) == RECORDING_FIELDS


def test_recording_ntsc_rate_uses_exact_fraction(tmp_path):
    path = tmp_path / "capture.mkv"
    _encode(path, "matroska", video_codec="libx264", rate=Fraction(30000, 1001), frames=20)
    row, _ = _parse_path(path)
    assert row["container"] == "mkv"
    assert row["video_codec"] == "h264"
    assert row["frame_rate"] == pytest.approx(30000 / 1001, abs=1e-9)


def test_recording_variable_frame_rate_is_null(tmp_path):
    path = tmp_path / "browser.webm"
    _encode(
        path,
        "webm",
        video_codec="libvpx",
        rate=None,
        frames=8,
        pts_ms=[0, 30, 75, 100, 160, 200, 290, 300],
    )
    row, _ = _parse_path(path)
    assert row["container"] == "webm"
    assert row["video_codec"] == "vp8"
    assert row["frame_rate"] is None


def test_recording_too_few_frames_leave_rate_null(tmp_path):
    path = tmp_path / "short.mp4"
    _encode(path, "mp4", frames=2)
    row, _ = _parse_path(path)
    assert row["frame_rate"] is None
    assert row["status"] == "ok"


def test_recording_duration_derived_from_packets(tmp_path):
    path = tmp_path / "live.webm"
    # Live mode writes no duration, cues or tags, like a browser recorder.
    _encode(path, "webm", video_codec="libvpx", rate=30, frames=10, options={"live": "1"})
    assert av.open(str(path)).duration is None
    row, _ = _parse_path(path)
    assert row["duration_s"] == pytest.approx(10 / 30, abs=0.002)
    assert row["reason"] is None


def test_recording_scan_limit_leaves_duration_null_with_note(tmp_path):
    path = tmp_path / "live.webm"
    _encode(path, "webm", video_codec="libvpx", rate=30, frames=10, options={"live": "1"})
    row, result = _parse_path(path, {"recording_scan_bytes": 0})
    assert row["status"] == "ok"
    assert row["duration_s"] is None
    assert "recording_scan_bytes" in row["reason"]
    assert result.problems == []


def test_recording_duration_from_matroska_tag(tmp_path):
    buffer = io.BytesIO()
    _encode(buffer, "matroska", video_codec="libx264", rate=30, frames=20)
    data = bytearray(buffer.getvalue())
    # Zero the segment duration (float element 0x4489) and set the stream's DURATION tag.
    position = data.find(b"\x44\x89\x88")
    data[position + 3 : position + 11] = bytes(8)
    tag = data.find(b"00:00:00.")
    data[tag : tag + 18] = b"00:00:05.000000000"
    path = tmp_path / "tagged.mkv"
    path.write_bytes(bytes(data))
    row, _ = _parse_path(path)
    assert row["duration_s"] == 5.0


def test_recording_audio_only_has_no_video_fields(tmp_path):
    path = tmp_path / "voice.mp4"
    _encode(path, "mp4", video_codec=None, audio_codec="aac")
    row, _ = _parse_path(path)
    assert row["status"] == "ok"
    assert row["audio_codec"] == "aac"
    assert row["video_codec"] is None
    assert row["width"] is None
    assert row["frame_rate"] is None
    assert row["duration_s"] > 0


@pytest.mark.parametrize(
    "name", ["-starts-with-dash.mkv", "has spaces in it.mkv", "-both kinds.mkv"]
)
def test_recording_awkward_file_names(tmp_path, name):
    path = tmp_path / name
    _encode(path, "matroska", rate=25)
    row, _ = _parse_path(path)
    assert row["status"] == "ok"
    assert row["file_name"] == name
    assert row["container"] == "mkv"


def test_recording_bytes_source_works(tmp_path):
    buffer = io.BytesIO()
    _encode(buffer, "matroska", rate=25)
    result = parse(
        BytesSource("clip.mkv", buffer.getvalue()),
        FileContext("s", "recordings/clip.mkv", "recordings"),
    )
    assert result.records[0]["status"] == "ok"
    assert result.format == "mkv"


def test_recording_mismatched_extension_is_noted(tmp_path):
    path = tmp_path / "really-matroska.mp4"
    _encode(path, "matroska", rate=25)
    row, result = _parse_path(path)
    assert row["status"] == "ok"
    assert row["container"] == "matroska"
    assert "'.mp4'" in row["reason"]
    assert result.problems == []


# -- Unreadable files ------------------------------------------------------------------------


def _assert_unreadable(row: dict, result: ParseResult, reason_part: str) -> None:
    assert row["status"] == "unreadable"
    assert reason_part in row["reason"]
    assert [problem.position for problem in result.problems] == ["file"]
    assert result.problems[0].reason == row["reason"]
    assert row["container"] is None
    assert row["duration_s"] is None


def test_recording_header_only_is_unreadable(tmp_path):
    buffer = io.BytesIO()
    _encode(buffer, "matroska", rate=25)
    path = tmp_path / "header-only.mkv"
    path.write_bytes(buffer.getvalue()[:40])
    row, result = _parse_path(path)
    _assert_unreadable(row, result, "ends inside the container header")
    assert result.problems[0].excerpt.startswith("first bytes: 1a 45 df a3")


def test_recording_zero_streams_is_unreadable(tmp_path):
    path = tmp_path / "no-tracks.mkv"
    path.write_bytes(_matroska_without_tracks())
    row, result = _parse_path(path)
    _assert_unreadable(row, result, "no audio or video stream")
    assert row["stream_count"] == 0


def test_recording_truncated_mp4_is_unreadable(tmp_path):
    buffer = io.BytesIO()
    # The mp4 muxer writes its index (moov) last, so the first half has none.
    _encode(buffer, "mp4", rate=25, frames=30)
    path = tmp_path / "cut.mp4"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    row, result = _parse_path(path)
    _assert_unreadable(row, result, "FFmpeg cannot read the container")


def test_recording_text_with_video_extension_is_unreadable(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are meeting notes, not a video\n" * 20)
    row, result = _parse_path(path)
    _assert_unreadable(row, result, "not a recording")
    assert row["size_bytes"] == path.stat().st_size


def test_recording_empty_file_is_unreadable(tmp_path):
    path = tmp_path / "empty.webm"
    path.write_bytes(b"")
    row, result = _parse_path(path)
    _assert_unreadable(row, result, "empty")


def test_recording_parse_keeps_ffmpeg_quiet(tmp_path, capfd):
    av.logging.set_level(av.logging.VERBOSE)
    path = tmp_path / "notes.mkv"
    path.write_text("not a video")
    _parse_path(path)
    assert av.logging.get_level() is None
    assert capfd.readouterr().err == ""


# -- Helpers -----------------------------------------------------------------------------------


def test_recording_tag_duration_reads_language_suffixed_tag():
    assert tag_duration({"DURATION-eng": "01:02:03.500000000"}) == 3723.5


def test_recording_tag_duration_ignores_malformed_value():
    assert tag_duration({"DURATION": "about a minute"}) is None
