"""Engine and game logs: Unity, Unreal Engine, Godot, and any other text log.

`parse` decodes the file with `text.decode_text`, which accepts UTF-8 with or without BOM,
UTF-16 LE or BE with or without BOM, and any mix of `\\r\\n`, `\\r\\r\\n` and `\\n`. It
detects the format from the first `DETECT_LINES` lines and turns each log record into one
LOG_RECORD row:

- `line_no`: 1-based line of the record's first line in the decoded text;
- `logged_at`: the record's time in UTC where the format writes one, else null;
- `level`: one of `LEVELS`;
- `category`: the Unreal log category, a Godot game tag or a leading `[Tag]`, else null;
- `message` and `stack_trace`: a multi-line record (exception with frames, crash block,
  ensure with call stack, error with backtrace, indented continuation lines) is one row;
  frame lines and what follows them go to `stack_trace`, the rest to `message`;
- `fingerprint`: see `fingerprint.fingerprint`;
- `log_format`: `unity`, `unreal`, `godot` or `generic`, also returned as the
  result's `format`.

User names in home-folder paths are replaced in every value (see `privacy`), as are the
user and computer names of Unreal's `LogInit: User:` and `LogInit: Computer:` lines.
Engine, engine version, OS, CPU, GPU and driver, where the log states them, become the
result's `attributes`.

Formats:

- **unity** (Player.log, Editor.log): no timestamps and no levels, so the level is
  guessed from the text (`guess_level`). A record is a line plus its continuation lines
  (indented, stack frames, Unity's out-of-memory report, and the lines between an
  exception's first line and its frames). The `(Filename: ... Line: N)`
  trailer that Unity writes after a message closes the record and is not kept. A
  `Crash!!!` block, up to and including `END OF STACKTRACE`, is one FATAL record whose
  stack trace holds the module list and the native and managed frames.
- **unreal**: lines with or without the `[2024.01.02-03.04.05:678][ 12]` prefix and in the
  `Category: Verbosity: message` form. The prefix time is UTC, which is Unreal's default
  (`-LogTimes=UTC`); a log written with local times would be off by the machine's
  offset. Levels: Fatal -> FATAL, Error -> ERROR, Warning -> WARNING, Display and Log
  (no verbosity written) -> INFO, Verbose -> DEBUG, VeryVerbose -> TRACE. Once the prefix
  has appeared, a line without it continues the previous record. An
  `=== Handled ensure: ===` or `=== Critical error: ===` block (critical errors are
  FATAL), or an `Ensure condition failed:` line, gathers the following lines of the same
  category and verbosity into one record: the text before `Stack:` is the message and
  the `[Callstack]` lines are the stack trace.
- **godot** (3 and 4, including .NET builds): `ERROR:`, `WARNING:`, `SCRIPT ERROR:`,
  `USER ERROR:` and `SHADER ERROR:` heads with their indented `at:`, `C# backtrace` and
  frame lines; the game's own `[INFO]`, `[WARN]`, `[ERROR]` lines, whose first `[Tag]`
  becomes the category; `=== Title ===` blocks of key/value lines up to the next blank
  line. Godot writes no timestamps.
- **generic**: any other text. A leading ISO 8601 (or `YYYY/MM/DD hh:mm:ss`) timestamp is
  read (an offset is converted, and a time without one is taken as UTC), then a level
  word (`[ERROR]`, `WARN:`, `level=info`), then an optional `[category]`. Android logcat
  lines are understood too. When the first line, or at least a tenth of the first
  `DETECT_LINES` lines, starts with a timestamp, a line without one continues the
  previous record; otherwise indented and stack-frame lines do, and so does the
  exception line that ends a Python traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from playtest_spark.parsers.base import FileContext, FileSource, ParseResult
from playtest_spark.parsers.fingerprint import fingerprint, is_stack_line
from playtest_spark.parsers.privacy import USER_PLACEHOLDER, scrub_optional, scrub_text
from playtest_spark.parsers.text import decode_text, split_lines

logger = logging.getLogger(__name__)

LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "FATAL")
LOG_FORMATS = ("unity", "unreal", "godot", "generic")

# Lines read to detect the format.
DETECT_LINES = 400
# A share of control characters above this marks a binary file.
_MAX_CONTROL_SHARE = 0.05
COMPUTER_PLACEHOLDER = "<computer>"

# Level words of common loggers -> normalised level.
_LEVEL_WORDS = {
    **dict.fromkeys(("TRACE", "VERYVERBOSE", "VERBOSE", "V"), "TRACE"),
    **dict.fromkeys(("DEBUG", "DBG", "D"), "DEBUG"),
    **dict.fromkeys(("INFO", "INFORMATION", "NOTICE", "LOG", "DISPLAY", "I"), "INFO"),
    **dict.fromkeys(("WARN", "WARNING", "W"), "WARNING"),
    **dict.fromkeys(("ERROR", "ERR", "SEVERE", "E"), "ERROR"),
    **dict.fromkeys(("FATAL", "CRITICAL", "CRIT", "PANIC", "EMERGENCY", "F", "A"), "FATAL"),
}
_UNREAL_LEVELS = {
    "Fatal": "FATAL",
    "Error": "ERROR",
    "Warning": "WARNING",
    "Display": "INFO",
    "Log": "INFO",
    "Verbose": "DEBUG",
    "VeryVerbose": "TRACE",
}


def parse(source: FileSource, context: FileContext) -> ParseResult:
    """Parse a log file into LOG_RECORD rows, one per log record."""
    data = source.read_bytes()
    if not data.strip():
        return ParseResult.rejected(
            f"empty log file {source.name!r}: the game or engine wrote nothing; check that "
            "logging is enabled and the file was closed before upload",
            format="empty",
        )
    text = decode_text(data)
    binary_reason = _binary_reason(text, source.name)
    if binary_reason:
        return ParseResult.rejected(binary_reason, excerpt=data[:200], format="binary")
    lines = split_lines(text)
    if not any(line.strip() for line in lines):
        return ParseResult.rejected(
            f"log file {source.name!r} holds only blank lines: nothing to load",
            format="empty",
        )
    log_format = detect_format(lines)
    reader = _READERS[log_format]
    entries, attributes = reader(lines)
    records = [entry.to_record(log_format) for entry in entries]
    logger.debug("parsed %s as %s: %d records", context.path, log_format, len(records))
    return ParseResult(
        records=records,
        attributes={key: scrub_text(value) for key, value in attributes.items() if value},
        format=log_format,
    )


def _binary_reason(text: str, name: str) -> str | None:
    sample = text[:8192]
    if not sample:
        return None
    controls = sum(1 for char in sample if char < " " and char not in "\t\n\x0c\x1b")
    if "\x00" in sample or controls / len(sample) > _MAX_CONTROL_SHARE:
        return (
            f"file {name!r} is not a text log (it holds binary data); upload the engine's "
            "text log, such as Player.log or the Saved/Logs/*.log file"
        )
    return None


# -- format detection --------------------------------------------------------------------------

_UE_PREFIX = re.compile(
    r"^\[(\d{4})\.(\d{2})\.(\d{2})-(\d{2})\.(\d{2})\.(\d{2}):(\d{3})\]\[\s*\d+\]"
)
_UE_FILE_MARK = re.compile(r"^Log file (?:open|closed),")
_UE_CATEGORY_LINE = re.compile(r"^Log\w+: ")
_UNITY_SIGNATURE = re.compile(
    r"^(?:Mono path\[0\]|Mono config path|Initialize engine version:|\[Subsystems\] "
    r"|GfxDevice: creating device|\(Filename: .* Line: -?\d+\)|Unity Editor version:"
    r"|Built from '.*' branch; Version is|\[Licensing::|UnityEngine\.\w+:\w+"
    r"|Player connection \[|Initialize mono)"
)
_GODOT_BANNER = re.compile(r"^(?:Godot Engine v\d|\S+ v\d+\.\d+\S* - https?://godotengine\.org)")
_GODOT_HEAD = re.compile(r"^(?:USER )?(?:SCRIPT |SHADER )?(?:ERROR|WARNING): ")
_GODOT_AT = re.compile(r"^ {3,}(?:at|At): ")


def detect_format(lines: Sequence[str]) -> str:
    """Return the log format of a file's lines: one of `LOG_FORMATS`."""
    unreal = unity = godot = 0
    for line in lines[:DETECT_LINES]:
        if _UE_PREFIX.match(line):
            unreal += 3
        elif _UE_FILE_MARK.match(line):
            unreal += 10
        elif _UE_CATEGORY_LINE.match(line):
            unreal += 1
        if _UNITY_SIGNATURE.match(line):
            unity += 3
        if _GODOT_BANNER.match(line):
            godot += 10
        elif _GODOT_HEAD.match(line):
            godot += 1
        elif _GODOT_AT.match(line):
            godot += 2
    best = max((unreal, "unreal"), (unity, "unity"), (godot, "godot"))
    return best[1] if best[0] >= 3 else "generic"


# -- one log record being assembled ------------------------------------------------------------


class _Entry:
    """A record being assembled from its first line and continuation lines."""

    __slots__ = ("line_no", "logged_at", "level", "category", "message_lines", "stack_lines")

    def __init__(
        self,
        line_no: int,
        text: str,
        level: str | None = None,
        category: str | None = None,
        logged_at: dt.datetime | None = None,
    ) -> None:
        self.line_no = line_no
        self.logged_at = logged_at
        self.level = level
        self.category = category
        self.message_lines: list[str] = []
        self.stack_lines: list[str] = []
        self.add(text.strip())

    def add(self, line: str) -> None:
        """Add a continuation line: frames and everything after them go to the stack."""
        if self.stack_lines or is_stack_line(line):
            self.stack_lines.append(line)
        else:
            self.message_lines.append(line)

    def add_blanks(self, count: int) -> None:
        for _ in range(count):
            self.add("")

    def to_record(self, log_format: str) -> dict[str, Any]:
        message = _join_lines(self.message_lines, dedent=False)
        stack_lines = self.stack_lines
        if not message and stack_lines:
            message, stack_lines = _message_from_stack(stack_lines)
        stack_trace = _join_lines(stack_lines, dedent=True) or None
        message = scrub_text(message)
        stack_trace = scrub_optional(stack_trace)
        category = scrub_optional(self.category)
        level = self.level or guess_level(message)
        return {
            "line_no": self.line_no,
            "logged_at": self.logged_at,
            "level": level,
            "category": category,
            "message": message,
            "stack_trace": stack_trace,
            "fingerprint": fingerprint(level, category, message, stack_trace),
            "log_format": log_format,
        }


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)\b")


def _message_from_stack(stack_lines: list[str]) -> tuple[str, list[str]]:
    """Pick a message for a record that has only a stack trace, such as a bare traceback."""
    content = [line for line in stack_lines if line.strip()]
    if not content:
        return "", []
    last = content[-1].strip()
    if _EXCEPTION_LINE.match(last):
        return last, stack_lines
    first = content[0]
    rest = stack_lines[stack_lines.index(first) + 1 :]
    return first.strip(), rest


def _join_lines(lines: list[str], dedent: bool) -> str:
    stripped = [line.rstrip() for line in lines]
    start = 0
    while start < len(stripped) and not stripped[start]:
        start += 1
    end = len(stripped)
    while end > start and not stripped[end - 1]:
        end -= 1
    kept = stripped[start:end]
    if dedent and kept:
        indent = min(len(line) - len(line.lstrip()) for line in kept if line)
        if indent:
            kept = [line[indent:] for line in kept]
    return "\n".join(kept)


# -- level guessing ----------------------------------------------------------------------------

_LEADING_LEVEL = re.compile(
    r"^\W{0,2}(?P<word>TRACE|VERBOSE|DEBUG|DBG|INFO|INFORMATION|NOTICE|WARN|WARNING|ERROR|ERR"
    r"|SEVERE|FATAL|CRITICAL|CRIT|PANIC)\b",
    re.IGNORECASE,
)
_FATAL_WORDS = re.compile(r"\bfatal\b|\bpanic\b|Crash!!!", re.IGNORECASE)
_ERROR_WORDS = re.compile(
    r"\berror\b|\bexception\b|\w(?:Exception|Error)\b|\bfailed to\b|\bfailure\b"
    r"|\bout of memory\b|\bsegmentation fault\b|\bassert(?:ion)? failed\b",
    re.IGNORECASE,
)
_WARNING_WORDS = re.compile(
    r"\bwarn(?:ing)?\b|\bcould not\b|\bcannot\b|\bcan't\b|\bunable to\b|\bdeprecated\b"
    r"|\bnot found\b|\bmissing\b",
    re.IGNORECASE,
)


def guess_level(text: str) -> str:
    """Guess the level of a message that carries none, from the words in its first line.

    A leading level word (`[ERROR]`, `Warning:`) decides. Otherwise fatal words win over
    error words (`error`, `exception`, `failed to`, `out of memory`). Error words win over
    warning words (`warning`, `could not`, `cannot`, `unable to`, `not found`, `missing`).
    A line with none of them is INFO.
    """
    first_line = text.split("\n", 1)[0][:500]
    leading = _LEADING_LEVEL.match(first_line)
    if leading:
        return _LEVEL_WORDS[leading.group("word").upper()]
    if _FATAL_WORDS.search(first_line):
        return "FATAL"
    if _ERROR_WORDS.search(first_line):
        return "ERROR"
    if _WARNING_WORDS.search(first_line):
        return "WARNING"
    return "INFO"


# A `[Tag] ` at the start of a message, used as category.
_LEADING_TAG = re.compile(r"^\[(?P<tag>[^\]\s][^\]\n]{0,79})\]\s*")


def _split_tag(text: str) -> tuple[str | None, str]:
    match = _LEADING_TAG.match(text)
    if match is None or not text[match.end() :].strip():
        return None, text
    return match.group("tag").strip(), text[match.end() :]


def _set_attribute(attributes: dict[str, str], key: str, value: str | None) -> None:
    """Keep the first non-empty value the log states for a key."""
    if value:
        value = value.strip()
        if value and key not in attributes:
            attributes[key] = value


# -- Unity -------------------------------------------------------------------------------------

_UNITY_TRAILER = re.compile(r"^\(Filename: .* Line: -?\d+\)\s*$")
_UNITY_CRASH_START = re.compile(r"^Crash!!!\s*$")
_UNITY_CRASH_END = re.compile(r"^=+ END OF STACKTRACE =+\s*$")
# Lines that continue a message without indentation: Unity's out-of-memory report and
# the native crash dump of Linux and macOS players.
_UNITY_CONTINUATION = re.compile(
    r"^(?:Trying to allocate: |Allocation happened at: |Memory overview|\[ ALLOC_\w+ \]"
    r"|Obtained \d+ stack frames)"
)
_UNITY_ATTRIBUTE = re.compile(
    r"^(?:Initialize engine version: (?P<engine_version>\S+)"
    r"|Unity Editor version:\s+(?P<editor_version>\S+)"
    r"|Built from '[^']*' branch; Version is '(?P<built_version>\S+)"
    r"|\s*Renderer:\s+(?P<gpu>.+?)(?:\s+\(ID=0x[0-9A-Fa-f]+\))?\s*$"
    r"|\s+Driver:\s+(?P<driver>\S.*)$"
    r"|\s+Version:\s+(?P<graphics_api>(?:Direct3D|OpenGL|Vulkan|Metal).*)$"
    r"|\s+VRAM:\s+(?P<vram_mb>\d+) MB"
    r"|OS: '(?P<os>[^']+)'"
    r"|Operating System: (?P<operating_system>.+)$"
    r"|OS-Version: (?P<os_version>.+)$"
    r"|Processor: (?P<cpu>.+)$)"
)


def _read_unity(lines: Sequence[str]) -> tuple[list[_Entry], dict[str, str]]:
    entries: list[_Entry] = []
    attributes: dict[str, str] = {"engine": "unity"}
    entry: _Entry | None = None
    crash: _Entry | None = None
    closed = True
    # An exception message may span lines before its frames, up to the first blank line.
    exception_open = False
    blanks = 0
    for line_no, line in enumerate(lines, 1):
        _unity_attributes(line, attributes)
        if crash is not None:
            crash.stack_lines.append(line)
            if _UNITY_CRASH_END.match(line):
                crash = None
                closed = True
            continue
        if not line.strip():
            blanks += 1
            exception_open = False
            continue
        if _UNITY_TRAILER.match(line):
            closed = True
            blanks = 0
            continue
        if _UNITY_CRASH_START.match(line):
            entry = crash = _Entry(line_no, line, level="FATAL")
            entries.append(entry)
            blanks = 0
            continue
        continues = (
            line[0] in " \t"
            or is_stack_line(line)
            or _UNITY_CONTINUATION.match(line) is not None
            or (exception_open and entry is not None and not entry.stack_lines)
        )
        if entry is not None and not closed and continues:
            entry.add_blanks(blanks)
            entry.add(line)
        else:
            category, text = _split_tag(line)
            entry = _Entry(line_no, text, category=category)
            entries.append(entry)
            closed = False
            exception_open = _EXCEPTION_LINE.match(line) is not None
        blanks = 0
    return entries, attributes


def _unity_attributes(line: str, attributes: dict[str, str]) -> None:
    match = _UNITY_ATTRIBUTE.match(line)
    if match is None:
        return
    found = match.groupdict()
    for key in ("engine_version", "editor_version", "built_version"):
        _set_attribute(attributes, "engine_version", found[key])
    _set_attribute(attributes, "gpu", found["gpu"])
    _set_attribute(attributes, "driver", found["driver"])
    _set_attribute(attributes, "graphics_api", found["graphics_api"])
    _set_attribute(attributes, "vram_mb", found["vram_mb"])
    _set_attribute(attributes, "os", found["os"] or found["operating_system"])
    _set_attribute(attributes, "os_version", found["os_version"])
    _set_attribute(attributes, "cpu", found["cpu"])


# -- Unreal Engine -----------------------------------------------------------------------------

_UE_BODY = re.compile(
    r"^(?P<category>[A-Za-z_][\w.-]*): (?:(?P<verbosity>Fatal|Error|Warning|Display|Log|Verbose"
    r"|VeryVerbose):(?: |$))?(?P<text>.*)$"
)
_UE_BLOCK_HEADER = re.compile(r"^=== (?P<title>Handled ensure|Critical error)[^=]*===\s*$")
_UE_ENSURE_LINE = re.compile(r"^Ensure condition failed:")
_UE_CALLSTACK = re.compile(r"^\[Callstack\]\s*")
_UE_IDENTITY = re.compile(r"^(?P<key>User|Computer): (?P<value>.+)$")
_UE_ENGINE_VERSION = re.compile(r"^Engine Version: (?P<build>(?P<version>\d+(?:\.\d+)+)\S*)")
_UE_SYSTEM = re.compile(r"^OS: (?P<os>.*?)(?:\s*\(\))?, CPU: (?P<cpu>.*?), GPU: (?P<gpu>.*)$")
_UE_DRIVER = re.compile(r"^\s*Driver Version: (?P<driver>\S+)")
_UE_RHI = re.compile(r"^Using Default RHI: (?P<rhi>\S+)")


class _UnrealBlock:
    """An ensure or critical-error block: lines of one category and verbosity."""

    def __init__(self, entry: _Entry, key: tuple[str | None, str], title: str) -> None:
        self.entry = entry
        self.key = key
        self.title = title
        self.in_stack = False

    def take(self, text: str) -> bool:
        """Add one line's text to the block; return False when it ends the block."""
        stripped = text.strip()
        callstack = _UE_CALLSTACK.match(stripped)
        if callstack:
            self.in_stack = True
            self.entry.stack_lines.append(stripped[callstack.end() :])
            return True
        if stripped == "Stack:":
            self.in_stack = True
            return True
        if not stripped:
            return True
        if self.in_stack:
            return False
        self.entry.message_lines.append(stripped)
        return True


def _read_unreal(lines: Sequence[str]) -> tuple[list[_Entry], dict[str, str]]:
    entries: list[_Entry] = []
    blocks: list[_UnrealBlock] = []
    attributes: dict[str, str] = {"engine": "unreal"}
    entry: _Entry | None = None
    block: _UnrealBlock | None = None
    prefixed = False
    blanks = 0
    for line_no, line in enumerate(lines, 1):
        prefix = _UE_PREFIX.match(line)
        logged_at = None
        body = line
        if prefix is not None:
            prefixed = True
            logged_at = _unreal_time(prefix)
            body = line[prefix.end() :]
        elif not line.strip():
            blanks += 1
            continue
        elif entry is not None and not _unreal_unprefixed_head(line, prefixed):
            entry.add_blanks(blanks)
            entry.add(line)
            blanks = 0
            continue
        blanks = 0

        category, level, text = _unreal_fields(body)
        header = _UE_BLOCK_HEADER.match(text.strip())
        if block is not None and block.key == (category, level) and header is None:
            if block.take(text):
                continue
        block = None
        text = _unreal_scrub_identity(category, text)
        _unreal_attributes(category, text, attributes)

        if header is not None or _UE_ENSURE_LINE.match(text):
            entry = _Entry(line_no, "", level=level, category=category, logged_at=logged_at)
            entry.message_lines.clear()
            title = header.group("title") if header is not None else "Ensure condition failed"
            if title == "Critical error":
                entry.level = "FATAL"
            if header is None:
                entry.message_lines.append(text.strip())
            block = _UnrealBlock(entry, (category, level), title)
            blocks.append(block)
        else:
            entry = _Entry(line_no, text, level=level, category=category, logged_at=logged_at)
        entries.append(entry)

    for finished in blocks:
        if not finished.entry.message_lines:
            finished.entry.message_lines.append(finished.title)
    return entries, attributes


def _unreal_unprefixed_head(line: str, prefixed: bool) -> bool:
    """Return whether a line without the time prefix starts a record.

    Before the prefix appears, an unindented `Category: text` line starts one; after it,
    only the `Log file open/closed` marks do, and other lines continue a record.
    """
    if _UE_FILE_MARK.match(line):
        return True
    return not prefixed and line[0] not in " \t" and _UE_BODY.match(line) is not None


def _unreal_fields(body: str) -> tuple[str | None, str, str]:
    """Split a line body into category, level and text."""
    match = _UE_BODY.match(body)
    if match is None:
        return None, "INFO", body
    category = match.group("category")
    verbosity = match.group("verbosity")
    text = match.group("text")
    if verbosity is None and category in _UNREAL_LEVELS:
        # `Warning: text` without a category.
        return None, _UNREAL_LEVELS[category], text
    return category, _UNREAL_LEVELS.get(verbosity or "Log", "INFO"), text


def _unreal_time(prefix: re.Match[str]) -> dt.datetime | None:
    year, month, day, hour, minute, second, millis = (int(part) for part in prefix.groups())
    try:
        return dt.datetime(
            year, month, day, hour, minute, second, millis * 1000, tzinfo=dt.timezone.utc
        )
    except ValueError:
        return None


def _unreal_scrub_identity(category: str | None, text: str) -> str:
    if category != "LogInit":
        return text
    match = _UE_IDENTITY.match(text)
    if match is None:
        return text
    placeholder = USER_PLACEHOLDER if match.group("key") == "User" else COMPUTER_PLACEHOLDER
    return f"{match.group('key')}: {placeholder}"


def _unreal_attributes(category: str | None, text: str, attributes: dict[str, str]) -> None:
    if category == "LogInit":
        version = _UE_ENGINE_VERSION.match(text)
        if version:
            _set_attribute(attributes, "engine_version", version.group("version"))
            _set_attribute(attributes, "engine_build", version.group("build"))
            return
        system = _UE_SYSTEM.match(text)
        if system:
            _set_attribute(attributes, "os", system.group("os"))
            _set_attribute(attributes, "cpu", system.group("cpu"))
            _set_attribute(attributes, "gpu", system.group("gpu"))
        return
    if category is not None and "RHI" in category:
        driver = _UE_DRIVER.match(text)
        if driver:
            _set_attribute(attributes, "driver", driver.group("driver"))
            return
        rhi = _UE_RHI.match(text)
        if rhi:
            _set_attribute(attributes, "rhi", rhi.group("rhi"))


# -- Godot -------------------------------------------------------------------------------------

_GODOT_ENGINE_HEAD = re.compile(
    r"^(?P<kind>(?:USER )?(?:SCRIPT |SHADER )?)(?P<level>ERROR|WARNING): (?P<text>.*)$"
)
_GODOT_GAME_HEAD = re.compile(
    r"^\[(?P<level>INFO|WARN|WARNING|ERROR|ERR|DEBUG|DBG|TRACE|VERBOSE|FATAL|CRITICAL|NOTICE)\]"
    r"\s?(?P<text>.*)$",
    re.IGNORECASE,
)
_GODOT_BLOCK_TITLE = re.compile(r"^=== .+ ===\s*$")
_GODOT_VERSION = re.compile(
    r"^(?:Godot Engine|\S+) v(?P<version>\d+\.\d+\S*)(?: - https?://godotengine\.org)?"
)
_GODOT_DEVICE = re.compile(
    r"^(?P<api>.+?) - (?P<method>Forward\+|Mobile|Compatibility) - Using Device(?: #\d+)?: "
    r"(?:[^-]+ - )?(?P<gpu>.+)$"
)
_GODOT_GLES = re.compile(r"^(?P<api>OpenGL ES \S+) Renderer: (?P<gpu>.+)$")
_GODOT_KEY_VALUE = re.compile(
    r"^(?P<key>OS|OS Version|Processor Name|Rendering device name|Engine Version): (?P<value>.+)$"
)
_GODOT_KEYS = {
    "OS": "os",
    "OS Version": "os_version",
    "Processor Name": "cpu",
    "Rendering device name": "gpu",
    "Engine Version": "engine_version",
}


def _read_godot(lines: Sequence[str]) -> tuple[list[_Entry], dict[str, str]]:
    entries: list[_Entry] = []
    attributes: dict[str, str] = {"engine": "godot"}
    entry: _Entry | None = None
    in_block = False
    blanks = 0
    for line_no, line in enumerate(lines, 1):
        if line_no <= 3:
            _godot_banner(line, attributes)
        if not line.strip():
            blanks += 1
            in_block = False
            continue
        key_value = _GODOT_KEY_VALUE.match(line)
        if key_value:
            key = _GODOT_KEYS[key_value.group("key")]
            _set_attribute(attributes, key, key_value.group("value"))
        engine_head = _GODOT_ENGINE_HEAD.match(line)
        game_head = None if engine_head else _GODOT_GAME_HEAD.match(line)
        is_head = engine_head is not None or game_head is not None
        continues = line[0] in " \t" or is_stack_line(line) or (in_block and not is_head)
        if entry is not None and continues:
            entry.add_blanks(blanks)
            entry.add(line)
            blanks = 0
            continue
        blanks = 0
        if engine_head:
            kind = engine_head.group("kind").strip().lower() or None
            level = "ERROR" if engine_head.group("level") == "ERROR" else "WARNING"
            entry = _Entry(line_no, engine_head.group("text"), level=level, category=kind)
        elif game_head:
            level = _LEVEL_WORDS.get(game_head.group("level").upper(), "INFO")
            category, text = _split_tag(game_head.group("text"))
            entry = _Entry(line_no, text, level=level, category=category)
        else:
            entry = _Entry(line_no, line)
        text = entry.message_lines[0] if entry.message_lines else ""
        in_block = _GODOT_BLOCK_TITLE.match(text) is not None
        entries.append(entry)
    return entries, attributes


def _godot_banner(line: str, attributes: dict[str, str]) -> None:
    version = _GODOT_VERSION.match(line)
    if version and ("godotengine.org" in line or line.startswith("Godot Engine")):
        _set_attribute(attributes, "engine_version", version.group("version"))
        return
    device = _GODOT_DEVICE.match(line) or _GODOT_GLES.match(line)
    if device:
        _set_attribute(attributes, "graphics_api", device.group("api"))
        _set_attribute(attributes, "gpu", device.group("gpu"))


# -- generic text ------------------------------------------------------------------------------

_GENERIC_TIME = re.compile(
    r"^[\[(]?(?P<date>\d{4}[-/]\d{2}[-/]\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:[.,](?P<fraction>\d{1,9}))?\s?(?P<zone>Z|UTC|[+-]\d{2}:?\d{2})?[\])]?[ \t]*"
)
_GENERIC_CLOCK = re.compile(r"^[\[(]?\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?[\])]?[ \t]+")
_LOGCAT_THREADTIME = re.compile(
    r"^\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\s+\d+\s+\d+ (?P<level>[VDIWEFA]) "
    r"(?P<tag>[^:]*?)\s*: (?P<text>.*)$"
)
_LOGCAT_BRIEF = re.compile(r"^(?P<level>[VDIWEFA])/(?P<tag>[^(:]+?)\(\s*\d+\): (?P<text>.*)$")
_GENERIC_LEVEL = re.compile(
    r"^(?:[\[<(](?P<bracketed>[A-Za-z]+)[\]>)]:?|(?P<word>[A-Za-z]+):?(?=\s|$)"
    r"|level=(?P<logfmt>\w+))\s*"
)
# Share of timestamped lines from which a line without one is a continuation. It is low
# because long stack traces dilute the timestamped lines of a log that always writes them.
_TIMESTAMPED_SHARE = 0.1


def _read_generic(lines: Sequence[str]) -> tuple[list[_Entry], dict[str, str]]:
    entries: list[_Entry] = []
    timestamped = _mostly_timestamped(lines)
    entry: _Entry | None = None
    blanks = 0
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            blanks += 1
            continue
        time_match = _GENERIC_TIME.match(line)
        if (
            entry is not None
            and time_match is None
            and _continues_generic(entry, line, timestamped)
        ):
            entry.add_blanks(blanks)
            entry.add(line)
            blanks = 0
            continue
        blanks = 0
        entry = _generic_entry(line_no, line, time_match)
        entries.append(entry)
    return entries, {}


def _continues_generic(entry: _Entry, line: str, timestamped: bool) -> bool:
    if timestamped or line[0] in " \t" or is_stack_line(line):
        return True
    # The exception line that closes a Python traceback is not indented.
    return (
        bool(entry.stack_lines)
        and _EXCEPTION_LINE.match(line) is not None
        and any("Traceback" in stack_line for stack_line in entry.stack_lines[:1])
    )


def _mostly_timestamped(lines: Sequence[str]) -> bool:
    sample = [line for line in lines[:DETECT_LINES] if line.strip()]
    if not sample:
        return False
    if _GENERIC_TIME.match(sample[0]):
        return True
    stamped = sum(1 for line in sample if _GENERIC_TIME.match(line))
    return stamped / len(sample) >= _TIMESTAMPED_SHARE


def _generic_entry(line_no: int, line: str, time_match: re.Match[str] | None) -> _Entry:
    logcat = _LOGCAT_THREADTIME.match(line) or _LOGCAT_BRIEF.match(line)
    if logcat:
        level = _LEVEL_WORDS[logcat.group("level")]
        return _Entry(line_no, logcat.group("text"), level=level, category=logcat.group("tag"))
    logged_at = None
    rest = line
    if time_match:
        logged_at = _generic_time(time_match)
        rest = line[time_match.end() :]
    else:
        clock = _GENERIC_CLOCK.match(line)
        if clock:
            rest = line[clock.end() :]
    level = None
    level_match = _GENERIC_LEVEL.match(rest)
    if level_match:
        word = (
            level_match.group("bracketed")
            or level_match.group("word")
            or level_match.group("logfmt")
        )
        level = _LEVEL_WORDS.get(word.upper()) if len(word) > 1 else None
        if level is not None:
            rest = rest[level_match.end() :]
    category, text = _split_tag(rest)
    if _EXCEPTION_LINE.match(line.strip()) is None and text.startswith("Traceback"):
        entry = _Entry(line_no, "", level=level or "ERROR", category=category, logged_at=logged_at)
        entry.message_lines.clear()
        entry.stack_lines.append(text)
        return entry
    return _Entry(line_no, text, level=level, category=category, logged_at=logged_at)


def _generic_time(match: re.Match[str]) -> dt.datetime | None:
    fraction = (match.group("fraction") or "0")[:6].ljust(6, "0")
    zone = match.group("zone")
    text = f"{match.group('date').replace('/', '-')}T{match.group('time')}.{fraction}"
    if zone and zone not in ("Z", "UTC"):
        text += zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


_READERS: dict[str, Callable[[Sequence[str]], tuple[list[_Entry], dict[str, str]]]] = {
    "unity": _read_unity,
    "unreal": _read_unreal,
    "godot": _read_godot,
    "generic": _read_generic,
}

__all__ = ["LEVELS", "LOG_FORMATS", "detect_format", "guess_level", "parse"]
