"""Gameplay recordings: one `RECORDING_RECORD` row of container metadata per file.

PyAV (FFmpeg) reads the file through `FileSource.open()`, a seekable stream. It reads the
container header and, when needed, packet headers, but decodes no frame, so memory use
does not grow with the file size. FFmpeg detects the container from the content, so the
file name (leading `-`, spaces, a wrong extension) plays no part.

Rules:

- `container` is the file extension when FFmpeg's detected format lists it (`mp4`,
  `mkv`, `webm`, ...), else the detected format's first name (`matroska`, `mov`, ...),
  and then `reason` notes the mismatch.
- `duration_s` comes from the container header; else from the longest stream duration;
  else from the longest `DURATION` stream tag (Matroska muxers write one); else it is
  derived from packet timestamps (end of the last packet minus start of the first),
  scanning at most `recording_scan_bytes` bytes (option, default 256 MiB). When none of
  these gives a value it is null.
- `frame_rate` is measured on the timestamps of the first `FRAME_RATE_PACKETS` video
  packets. It is set only when the frame intervals are constant (all within one time-base
  tick plus 0.5 % of the mean interval, so millisecond time bases that alternate 33 and
  34 ms still count as constant) and at least `MIN_FRAME_INTERVALS` intervals were seen.
  When FFmpeg's average rate matches the measured interval, its exact value is used
  (30000/1001 rather than 29.97003). Variable or unmeasurable rates are null.
- `width`, `height` and `video_codec` come from the first video stream that is not an
  attached picture (cover art); `audio_codec` from the first audio stream. Absent
  streams leave them null.
- A file FFmpeg cannot open, or one with no audio or video stream, gives a row with
  status `unreadable`, a reason, and a `file` problem, so the job quarantines it.
- `reason` on an `ok` row is a note (extension mismatch, unknown duration), else null.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from fractions import Fraction
from pathlib import PurePosixPath
from typing import IO, Any

import av
import av.logging

from playtest_spark.parsers.base import FileContext, FileSource, ParseResult, Problem

logger = logging.getLogger(__name__)

FORMAT = "recording"
# Fields read from the container; an unreadable file has none of them.
MEDIA_FIELDS = (
    "container",
    "duration_s",
    "video_codec",
    "width",
    "height",
    "frame_rate",
    "audio_codec",
)
RECORDING_FIELDS = ("file_name", *MEDIA_FIELDS, "size_bytes", "stream_count", "status", "reason")
STATUS_OK = "ok"
STATUS_UNREADABLE = "unreadable"

# Option: most bytes read to derive a duration from packet timestamps.
SCAN_BYTES_OPTION = "recording_scan_bytes"
DEFAULT_SCAN_BYTES = 256 << 20
FRAME_RATE_PACKETS = 120
MIN_FRAME_INTERVALS = 3
_RATE_RELATIVE_TOLERANCE = 0.005
_MICROSECONDS = 1_000_000
_DURATION_TAG = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")
_EXCERPT_BYTES = 32


def parse(source: FileSource, context: FileContext) -> ParseResult:
    """Read one recording's container metadata.

    Args:
        source: The landed file; only `open()` is used, never `read_bytes()`.
        context: Session and path; `context.options` may set `recording_scan_bytes`.

    Returns:
        One record. An unreadable file gives a record with status `unreadable` and a
        `file` problem; this function does not raise for bad content.
    """
    _silence_ffmpeg()
    scan_bytes = _scan_bytes(context.options)
    row: dict[str, Any] = dict.fromkeys(RECORDING_FIELDS)
    row.update(file_name=source.name, size_bytes=source.size, status=STATUS_OK)
    if source.size == 0:
        return _unreadable(row, "the file is empty (0 bytes); upload it again.", b"")

    with source.open() as stream:
        try:
            with av.open(stream, mode="r", metadata_errors="replace") as container:
                problem = _describe(container, source.name, scan_bytes, row)
        except av.error.EOFError:
            problem = (
                "the file ends inside the container header, so it holds no media data "
                "(truncated upload or header-only file)."
            )
        except av.FFmpegError as error:
            problem = (
                f"FFmpeg cannot read the container ({_ffmpeg_message(error)}); the file is "
                "damaged, truncated or not a recording."
            )
        if problem is not None:
            return _unreadable(row, problem, _head(stream))
    return ParseResult(records=[row], format=row.get("container") or FORMAT)


def _describe(container: Any, file_name: str, scan_bytes: int, row: dict[str, Any]) -> str | None:
    """Fill `row` from an open container; return the reason when it is unreadable."""
    streams = list(container.streams)
    row["stream_count"] = len(streams)
    video = next((s for s in streams if s.type == "video" and not _is_attached_picture(s)), None)
    audio = next((s for s in streams if s.type == "audio"), None)
    if video is None and audio is None:
        kinds = ", ".join(sorted({s.type for s in streams})) or "none"
        return (
            f"the container has no audio or video stream (stream types: {kinds}); nothing to play."
        )

    container_name, note = _container_name(container.format, file_name)
    row["container"] = container_name
    if video is not None:
        row["video_codec"] = _codec_name(video)
        row["width"] = _positive(getattr(video.codec_context, "width", None))
        row["height"] = _positive(getattr(video.codec_context, "height", None))
    if audio is not None:
        row["audio_codec"] = _codec_name(audio)

    duration = _header_duration(container, streams)
    scan = _PacketScan(video, need_duration=duration is None, scan_bytes=scan_bytes)
    scan.run(container)
    if scan.packets == 0:
        detail = f" ({scan.error})" if scan.error else ""
        return (
            f"the container has streams but no media packet could be read{detail}; "
            "the file is truncated or header-only."
        )
    if duration is None:
        duration = scan.duration()
        if duration is None:
            note = _join(note, scan.duration_note())
    row["duration_s"] = duration
    row["frame_rate"] = scan.frame_rate()
    row["reason"] = note
    return None


class _PacketScan:
    """One demux pass over packet headers, for frame-rate sampling and a derived duration."""

    def __init__(self, video: Any, need_duration: bool, scan_bytes: int) -> None:
        self._video = video
        self._need_duration = need_duration
        self._scan_bytes = scan_bytes
        self._video_pts: list[int] = []
        self._start: float | None = None
        self._end: float | None = None
        self.packets = 0
        self.error: str | None = None
        self.stopped_at_limit = False

    def run(self, container: Any) -> None:
        """Demux until the sample and duration are complete, at least one packet."""
        try:
            for packet in container.demux():
                if packet.size == 0:
                    continue  # the empty packets that flush each stream at the end
                self.packets += 1
                if packet.pts is not None and packet.stream.time_base is not None:
                    self._add(packet)
                if self._done():
                    return
                if packet.pos is not None and packet.pos > self._scan_bytes:
                    self.stopped_at_limit = self._need_duration
                    return
        except av.FFmpegError as error:
            # A damaged tail ends the scan; what was read so far still counts.
            self.error = _ffmpeg_message(error)
            logger.debug("demux stopped after %d packets: %s", self.packets, self.error)

    def _add(self, packet: Any) -> None:
        is_video = self._video is not None and packet.stream.index == self._video.index
        if is_video and len(self._video_pts) <= FRAME_RATE_PACKETS:
            self._video_pts.append(packet.pts)
        if self._need_duration:
            time_base = packet.stream.time_base
            start = float(packet.pts * time_base)
            end = float((packet.pts + (packet.duration or 0)) * time_base)
            self._start = start if self._start is None else min(self._start, start)
            self._end = end if self._end is None else max(self._end, end)

    def _done(self) -> bool:
        rate_done = self._video is None or len(self._video_pts) > FRAME_RATE_PACKETS
        return rate_done and not self._need_duration and self.packets > 0

    def duration(self) -> float | None:
        if self.stopped_at_limit or self._start is None or self._end is None:
            return None
        length = self._end - self._start
        return length if length > 0 else None

    def duration_note(self) -> str:
        if self.stopped_at_limit:
            return (
                f"duration unknown: the container has none and the packet scan stopped at "
                f"{self._scan_bytes} bytes (option {SCAN_BYTES_OPTION!r})."
            )
        return "duration unknown: neither the container, the streams nor the packets give one."

    def frame_rate(self) -> float | None:
        """Return the constant frame rate of the sampled video packets, or None."""
        if self._video is None or len(self._video_pts) < MIN_FRAME_INTERVALS + 1:
            return None
        pts = sorted(self._video_pts)
        intervals = [later - earlier for earlier, later in zip(pts, pts[1:], strict=False)]
        mean = (pts[-1] - pts[0]) / len(intervals)
        if mean <= 0:
            return None
        spread = max(intervals) - min(intervals)
        if spread > 1 + _RATE_RELATIVE_TOLERANCE * mean:
            return None
        time_base = Fraction(self._video.time_base)
        measured = 1 / (mean * time_base)
        average = self._video.average_rate
        # Use FFmpeg's exact rational when it agrees with the measurement to a tick.
        if average and abs(float(1 / Fraction(average) - mean * time_base)) <= time_base:
            return float(average)
        return float(measured)


def _header_duration(container: Any, streams: list[Any]) -> float | None:
    """Return the duration from the container, stream durations or DURATION tags, in seconds."""
    if container.duration and container.duration > 0:
        return container.duration / _MICROSECONDS
    stream_durations = [
        float(stream.duration * stream.time_base)
        for stream in streams
        if stream.duration and stream.duration > 0 and stream.time_base
    ]
    if stream_durations:
        return max(stream_durations)
    tagged = [
        seconds for stream in streams if (seconds := _tag_duration(stream.metadata)) is not None
    ]
    return max(tagged) if tagged else None


def _tag_duration(metadata: Mapping[str, str]) -> float | None:
    """Parse a Matroska `DURATION` tag (`HH:MM:SS.nnnnnnnnn`) in any letter case or language."""
    for key, value in metadata.items():
        if key.upper().split("-")[0] != "DURATION":
            continue
        match = _DURATION_TAG.match(value.strip())
        if match:
            hours, minutes, seconds = match.groups()
            total = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            if total > 0:
                return total
    return None


def _container_name(container_format: Any, file_name: str) -> tuple[str, str | None]:
    """Return the container name and a note when the extension does not match it."""
    names = container_format.name.split(",")
    extension = PurePosixPath(file_name).suffix.lower().lstrip(".")
    known = set(container_format.extensions or ()) | set(names)
    if extension and extension in known:
        return extension, None
    described = f"'.{extension}'" if extension else "no extension"
    return names[0], f"the file name has {described} but the content is {container_format.name!r}."


def _is_attached_picture(stream: Any) -> bool:
    disposition = getattr(stream, "disposition", 0)
    return bool(disposition & av.stream.Disposition.attached_pic)


def _codec_name(stream: Any) -> str | None:
    context = stream.codec_context
    name = getattr(context, "name", None) if context is not None else None
    return name or None


def _positive(value: int | None) -> int | None:
    return value if value else None


def _unreadable(row: dict[str, Any], reason: str, head: bytes) -> ParseResult:
    row.update(status=STATUS_UNREADABLE, reason=reason)
    for field in MEDIA_FIELDS:
        row[field] = None
    excerpt = f"first bytes: {head.hex(' ')}" if head else ""
    return ParseResult(records=[row], problems=[Problem("file", reason, excerpt)], format=FORMAT)


def _head(stream: IO[bytes]) -> bytes:
    """Return the first bytes of the file for the problem excerpt, or none if unavailable."""
    try:
        stream.seek(0)
        return stream.read(_EXCERPT_BYTES)
    except (OSError, ValueError) as error:
        logger.debug("cannot reread the start of the file for an excerpt: %s", error)
        return b""


def _ffmpeg_message(error: av.FFmpegError) -> str:
    return getattr(error, "strerror", None) or str(error)


def _scan_bytes(options: Mapping[str, Any]) -> int:
    value = options.get(SCAN_BYTES_OPTION, DEFAULT_SCAN_BYTES)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        logger.warning(
            "option %s=%r is not a byte count; using %d",
            SCAN_BYTES_OPTION,
            value,
            DEFAULT_SCAN_BYTES,
        )
        return DEFAULT_SCAN_BYTES


def _join(first: str | None, second: str) -> str:
    return second if first is None else f"{first} {second}"


def _silence_ffmpeg() -> None:
    """Turn FFmpeg's logging off, so runs stay quiet even if other code turned it on."""
    if av.logging.get_level() is not None:
        av.logging.set_level(None)
