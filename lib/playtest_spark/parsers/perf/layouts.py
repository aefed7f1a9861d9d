"""Declarative column layouts of the frame-time tools, and detection by header names.

Every tool that writes one CSV row per presented frame (PresentMon in its three column
sets, OCAT, CapFrameX, NVIDIA FrameView) is one `ToolLayout` row in `TOOL_LAYOUTS`. A row
lists the header names that identify the tool and the source columns that feed each
canonical field, so a new tool version is one more row. Header names are compared after
`normalize_name`: trimmed and lower-cased, so `msBetweenPresents` and `MsBetweenPresents`
are the same column.

Source keys in `ToolLayout.columns`:

- `frame_time_ms`, `cpu_busy_ms`, `gpu_busy_ms`, `display_latency_ms`, `cpu_util_pct`,
  `gpu_util_pct`, `memory_mb`, `gpu_memory_mb`, `process_name`: canonical fields.
- `dropped`: a 0/1 column (used when `dropped_rule` is `flag`).
- `cpu_wait_ms`: time in Present() of a frame (PresentMon 2.x `CPUWait`), used to derive
  the time between presents.
- `cpu_frame_ms`: time from a frame's CPU start to the next frame's CPU start
  (PresentMon 2.x `FrameTime`, current `MsBetweenAppStart`), used to convert CPU-start
  counter ticks to seconds.
- `process_id`, `swap_chain`: identify the frame sequence a row belongs to.

Each key lists candidate columns in order of preference. Where several are present, a
row takes the first non-null value among them (for example FrameView's `GPU0Util(%)`,
then `GPU1Util(%)`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

# Units of a time column.
SECONDS = "s"
MILLISECONDS = "ms"
TICKS = "ticks"  # QueryPerformanceCounter ticks
DATETIME = "datetime"

# Instants a time column can measure.
PRESENT_START = "present"  # when the application called Present()
CPU_START = "cpu_start"  # when the CPU started working on the frame

# Rules for obtaining `frame_time_ms`.
FRAME_TIME_COLUMN = "column"  # `frame_time_ms` is the time between presents already
FRAME_TIME_CPU_CHAIN = "cpu_chain"  # previous frame's CPU wait + this frame's CPU busy

# Rules for obtaining `dropped`.
DROPPED_FLAG = "flag"  # a 0/1 column
DROPPED_NOT_DISPLAYED = "not_displayed"  # display latency is NA
# As `not_displayed`, but NA on the first frame of a sequence means unknown (null).
DROPPED_NOT_DISPLAYED_AFTER_FIRST = "not_displayed_after_first"


@dataclasses.dataclass(frozen=True)
class TimeColumn:
    """A column that places a frame in time.

    Attributes:
        name: Normalized header name.
        unit: `s`, `ms`, `ticks` or `datetime`.
        anchor: `present` (Present() call) or `cpu_start` (CPU start of the frame).
    """

    name: str
    unit: str
    anchor: str = PRESENT_START


@dataclasses.dataclass(frozen=True)
class ToolLayout:
    """How one tool's CSV columns map to canonical performance fields.

    Attributes:
        tool: Value of `source_tool` and of the parse result's format.
        requires: Normalized names that must all be in the header.
        requires_any: Normalized names of which one must be in the header, unless both
            this and `spellings_any` are empty.
        spellings_any: Exact, case-sensitive header spellings that also satisfy
            `requires_any`, for tools distinguished only by capitalization.
        needs_comment_block: The file must start with `//Key=Value` lines.
        columns: Source key -> candidate normalized names (see the module docstring).
        times: Time columns in order of preference; the first one in the header is used.
        frame_time_rule: `column` or `cpu_chain`.
        dropped_rule: `flag`, `not_displayed`, `not_displayed_after_first` or None.
        display_anchor: What `display_latency_ms` counts from in the source column:
            `present` or `cpu_start` (then the CPU busy time is subtracted).
    """

    tool: str
    requires: tuple[str, ...]
    columns: Mapping[str, tuple[str, ...]]
    times: tuple[TimeColumn, ...]
    requires_any: tuple[str, ...] = ()
    spellings_any: tuple[str, ...] = ()
    needs_comment_block: bool = False
    frame_time_rule: str = FRAME_TIME_COLUMN
    dropped_rule: str | None = DROPPED_FLAG
    display_anchor: str = PRESENT_START

    def matches(self, names: frozenset[str], raw_names: Sequence[str], has_comments: bool) -> bool:
        """Return whether a header (normalized and raw names) belongs to this tool."""
        if self.needs_comment_block and not has_comments:
            return False
        if not all(name in names for name in self.requires):
            return False
        if not self.requires_any and not self.spellings_any:
            return True
        if any(name in names for name in self.requires_any):
            return True
        raw = {name.strip() for name in raw_names}
        return any(spelling in raw for spelling in self.spellings_any)


def normalize_name(name: str) -> str:
    """Return a header name trimmed and lower-cased, the form layouts are written in."""
    return name.strip().strip("\ufeff").strip().lower()


_IDENTITY = {
    "process_name": ("application", "processname"),
    "process_id": ("processid",),
    "swap_chain": ("swapchainaddress",),
}

PRESENT_TIMES = (
    TimeColumn("timeinseconds", SECONDS),
    TimeColumn("timeinms", MILLISECONDS),
    TimeColumn("timeinqpc", TICKS),
    TimeColumn("qpctime", TICKS),
    TimeColumn("timeindatetime", DATETIME),
)

CPU_START_TIMES = (
    TimeColumn("cpustarttime", SECONDS, CPU_START),
    TimeColumn("cpustarttimeinseconds", SECONDS, CPU_START),
    TimeColumn("cpustartqpctime", MILLISECONDS, CPU_START),
    TimeColumn("cpustarttimeinms", MILLISECONDS, CPU_START),
    TimeColumn("cpustartqpc", TICKS, CPU_START),
    TimeColumn("cpustartdatetime", DATETIME, CPU_START),
)

# PresentMon 1.x-era columns, as OCAT, CapFrameX and FrameView also write them.
_CLASSIC_COLUMNS = {
    **_IDENTITY,
    "frame_time_ms": ("msbetweenpresents",),
    "display_latency_ms": ("msuntildisplayed",),
    "gpu_busy_ms": ("msgpuactive", "msgpubusy"),
    "cpu_busy_ms": ("mscpubusy",),
    "dropped": ("dropped",),
}

# Columns that only PresentMon 2.x and later write in their default column set.
_CURRENT_MARKERS = (
    "mscpubusy",
    "mscpuwait",
    "msbetweenappstart",
    "msgpubusy",
    "timeinqpc",
    "timeinms",
    "timeindatetime",
    "cpustartqpc",
    "cpustarttime",
    "cpustartqpctime",
    "cpustartdatetime",
)

# Columns that only `--v1_metrics` (PresentMon 1.6 and later) writes.
_V1_MARKERS = ("msgpuactive", "msuntilrenderstart", "msgpuvideoactive", "mssinceinput", "qpctime")

# Columns that only NVIDIA FrameView writes.
_FRAMEVIEW_MARKERS = (
    "gpu0util(%)",
    "gpu0clk(mhz)",
    "cpuutil(%)",
    "render queue depth",
    "pcat power total(w)",
)

# Detection order matters: the first matching row wins, so specific rows come first.
TOOL_LAYOUTS: tuple[ToolLayout, ...] = (
    ToolLayout(
        tool="frameview",
        requires=("msbetweenpresents",),
        requires_any=_FRAMEVIEW_MARKERS,
        columns={
            **_CLASSIC_COLUMNS,
            "cpu_util_pct": ("cpuutil(%)",),
            "gpu_util_pct": ("gpu0util(%)", "gpu1util(%)"),
        },
        times=PRESENT_TIMES + CPU_START_TIMES,
    ),
    ToolLayout(
        tool="capframex",
        requires=("msbetweenpresents",),
        needs_comment_block=True,
        columns=_CLASSIC_COLUMNS,
        times=PRESENT_TIMES + CPU_START_TIMES,
    ),
    ToolLayout(
        # PresentMon 2.x `--v2_metrics`: FrameTime runs from this frame's CPU start to
        # the next one's, so the time between presents is derived (see `frames`).
        tool="presentmon-v2",
        requires=("frametime", "cpubusy"),
        columns={
            **_IDENTITY,
            "cpu_busy_ms": ("cpubusy",),
            "cpu_wait_ms": ("cpuwait",),
            "cpu_frame_ms": ("frametime",),
            "gpu_busy_ms": ("gpubusy",),
            "display_latency_ms": ("displaylatency",),
        },
        times=CPU_START_TIMES + PRESENT_TIMES,
        frame_time_rule=FRAME_TIME_CPU_CHAIN,
        dropped_rule=DROPPED_NOT_DISPLAYED_AFTER_FIRST,
        display_anchor=CPU_START,
    ),
    ToolLayout(
        # The console application's current default: `Ms`-prefixed names, no Dropped.
        tool="presentmon",
        requires=("msbetweenpresents",),
        requires_any=_CURRENT_MARKERS,
        columns={
            **_IDENTITY,
            "frame_time_ms": ("msbetweenpresents",),
            "cpu_busy_ms": ("mscpubusy",),
            "cpu_wait_ms": ("mscpuwait",),
            "cpu_frame_ms": ("msbetweenappstart",),
            "gpu_busy_ms": ("msgpubusy",),
            "display_latency_ms": ("msuntildisplayed",),
        },
        times=PRESENT_TIMES + CPU_START_TIMES,
        dropped_rule=DROPPED_NOT_DISPLAYED,
    ),
    ToolLayout(
        tool="presentmon-v1",
        requires=("msbetweenpresents",),
        requires_any=_V1_MARKERS,
        spellings_any=("msBetweenPresents",),
        columns=_CLASSIC_COLUMNS,
        times=PRESENT_TIMES,
    ),
    ToolLayout(
        # PresentMon 1.x-era column set as OCAT writes it (`MsBetweenPresents`).
        tool="ocat",
        requires=("msbetweenpresents", "timeinseconds"),
        columns=_CLASSIC_COLUMNS,
        times=PRESENT_TIMES,
    ),
)

# MSI Afterburner hardware-monitoring log: normalized column name -> canonical field.
# `framerate` is an input for `frame_time_ms` when the Frametime column is empty.
AFTERBURNER_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "frame_time_ms": ("frametime",),
    "framerate": ("framerate",),
    "gpu_util_pct": ("gpu usage", "gpu1 usage"),
    "cpu_util_pct": ("cpu usage",),
    "memory_mb": ("ram usage",),
    "gpu_memory_mb": ("memory usage", "gpu1 memory usage"),
}

# System-information columns and `//Key=Value` keys (normalized) -> attribute name.
# Keys not listed here become attributes under their snake_case name.
ATTRIBUTE_NAMES: Mapping[str, str] = {
    "gpu": "gpu",
    "cpu": "cpu",
    "processor": "cpu",
    "os": "os",
    "motherboard": "motherboard",
    "system ram": "ram",
    "base driver version": "driver",
    "driver package": "driver_package",
    "gpu #": "gpu_count",
    "gpu core clock (mhz)": "gpu_core_clock_mhz",
    "gpu memory clock (mhz)": "gpu_memory_clock_mhz",
    "gpu memory (mb)": "gpu_memory_mb",
    "resolution": "resolution",
    "gamename": "game_name",
    "processname": "process_name",
    "creationdate": "creation_date",
    "creationtime": "creation_time",
    "recordtime": "record_time",
    "comment": "comment",
}

# Header columns that carry system information rather than per-frame values. Some tools
# write them on the first data row only (and leave them out of later rows).
SYSTEM_INFO_COLUMNS = frozenset(
    {
        "gpu",
        "cpu",
        "resolution",
        "motherboard",
        "os",
        "processor",
        "system ram",
        "base driver version",
        "driver package",
        "gpu #",
        "gpu core clock (mhz)",
        "gpu memory clock (mhz)",
        "gpu memory (mb)",
    }
)


def detect_layout(raw_names: Sequence[str], has_comments: bool) -> ToolLayout | None:
    """Return the first layout whose identifying columns are all in the header, or None."""
    names = frozenset(normalize_name(name) for name in raw_names)
    for layout in TOOL_LAYOUTS:
        if layout.matches(names, raw_names, has_comments):
            return layout
    return None
