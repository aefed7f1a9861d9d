"""Fingerprints that group log entries describing the same problem.

The same bug logged in two sessions, or in two builds, differs in addresses, ids, counts,
paths and user names. `fingerprint` removes those parts and hashes what is left:

1. The level, upper-cased, and the category, as given.
2. The exception type, when the message starts with one (`System.NullReferenceException`,
   `java.lang.IllegalStateException`, `ValueError`, `KeyNotFoundException`).
3. The message, only when there is no exception type with stack frames (an exception's
   text often carries data, while its type and frames name the bug). The message is
   normalised by `normalize_message`, in this order:
   - user names in home-folder paths become `<user>` (see `privacy`);
   - e-mail addresses become `<email>`;
   - GUIDs (`3f2504e0-4f89-11d3-9a0c-0305e82c3301`, with or without braces) become `<guid>`;
   - `0x` hex numbers become `<addr>`, and other runs of 8 or more hex digits that hold
     a digit (addresses, hashes, crash ids) become `<hex>`;
   - quoted strings of up to 200 characters (`'...'` or `"..."`, where the quote is not
     part of a word such as `don't`) become `'<str>'` or `"<str>"`;
   - file paths (`C:\\...`, `D:/...`, `/usr/...` with at least two segments, `res://`,
     `user://`, `file://`, `../`) become `<path>`;
   - numbers not preceded by a letter or `_` (`42`, `3.14`, `0:00:12`, `715827884B`)
     become `<n>`, while identifiers with digits (`Texture2D`, `x86_64`) stay;
   - runs of white space become one space, and the text is cut to 1,000 characters.
4. The first `TOP_FRAMES` stack frames, each normalised by `normalize_frame`: the
   frame marker (`at`, `at:`, `[3]`, `#3`, `[Callstack]`), addresses, argument lists,
   file and line suffixes, return types and paths are dropped, and every digit run
   becomes `#`. What remains is the function or method, such as
   `MegaCrit.Sts2.Core.Nodes.Combat.NEnergyCounter._Process` or
   `UE4Editor-Slate.dll!UnknownFunction`.

The parts are joined and hashed with BLAKE2b into 16 hex characters (64 bits).
"""

from __future__ import annotations

import functools
import hashlib
import re

from playtest_spark.parsers.privacy import scrub_text

TOP_FRAMES = 5
FINGERPRINT_HEX_CHARS = 16
_MAX_NORMALIZED_CHARS = 1000

# -- stack frame lines -------------------------------------------------------------------------

# One alternative per frame style; the comment after each gives an example.
STACK_FRAME = re.compile(
    r"""^\s*(?:
        at\s+\S                                   # at Foo.Bar(...)  (.NET, Java, Mono)
      | at:\s                                     # at: func (file.cpp:12)  (Godot 4)
      | At:\s                                     # At: res://main.gd:10.  (Godot 3)
      | \[\d+\]\s                                 # [0] void Godot.GD.PushError(string)
      | \#\d+\s                                   # #0 0x... in main () at x.c:3  (gdb)
      | \[Callstack\]\s                           # [Callstack] 0x... Mod.dll!Fn [f:1]
      | 0x[0-9A-Fa-f]{6,}\s                       # 0x00007FF98B3542BB (UnityPlayer) Fn
      | File\s"[^"]*",\sline\s\d+                 # File "x.py", line 3, in f  (Python)
      | \(wrapper\s[\w -]+\)\s                    # (wrapper managed-to-native) Foo:Bar
      | \S+\sat\soffset\s\d+\sin\sfile:line:column  # Fn at offset 0 in file:line:column
      | --->\s                                    # ---> inner exception (.NET)
      | ---\sEnd\sof\s                            # --- End of inner exception stack trace
      | Rethrow\sas\s                             # Rethrow as FooException: ...  (Unity)
      | Caused\sby:\s                             # Caused by: java.io.IOException
      | \.\.\.\s\d+\smore                         # ... 12 more  (Java)
      | (?=[^\s(]*\w[.:]{1,2}[\w<.])[\w.`<>$|+\[\],:/-]+\s?\([^()]*\)(?:\s\(at\s[^)]*\))?\s*$
                                                  # Verse.Log:Error (string,bool)  (Unity)
    )""",
    re.VERBOSE,
)

# Lines that open a stack trace without being a frame themselves.
STACK_HEADER = re.compile(
    r"^\s*(?:(?:C\#|GDScript)\sbacktrace\b"
    r"|Script\sStack\s\(\d+\sframes\)"
    r"|Traceback\s\(most\srecent\scall\slast\)"
    r"|Stack\strace:?\s*$"
    r"|Stacktrace:?\s*$"
    r"|=+\sOUTPUTTING\sSTACK\sTRACE\s=+)",
    re.IGNORECASE,
)


def is_stack_frame(line: str) -> bool:
    """Return whether a line is one frame of a stack trace, in any supported style."""
    return STACK_FRAME.match(line) is not None


def is_stack_line(line: str) -> bool:
    """Return whether a line is a stack frame or the header that opens a stack trace."""
    return STACK_FRAME.match(line) is not None or STACK_HEADER.match(line) is not None


# -- message normalisation ---------------------------------------------------------------------

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_GUID = re.compile(
    r"\{?\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b\}?"
)
_HEX_PREFIXED = re.compile(r"\b0x[0-9A-Fa-f]+\b")
_HEX_RUN = re.compile(r"\b(?=[0-9A-Fa-f]*\d)[0-9A-Fa-f]{8,}\b")
_SINGLE_QUOTED = re.compile(r"(?<![\w'])'[^'\n]{0,200}'(?![\w'])")
_DOUBLE_QUOTED = re.compile(r'"[^"\n]{0,200}"')
_PATH = re.compile(
    r"""(?:
        \b[A-Za-z]:[\\/][^\s'"|*?]*              # C:\dir\file, D:/dir/<user>/file
      | \b(?:res|user|file)://[^\s'"|*?]*        # res://scenes/a.tscn
      | (?:\.\.?[\\/])+[^\s'"|*?]*               # ../../Engine/Content/x.locres
      | (?<![\w.:/])/(?:[\w.+-]+/)+[\w.+-]*      # /usr/lib/x.so (two segments or more)
    )""",
    re.VERBOSE,
)
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])[-+]?\d+(?:[.,:]\d+)*")
_SPACE = re.compile(r"\s+")

_EXCEPTION_TYPE = re.compile(
    r"^(?:[A-Z ]*ERROR:\s*|\[\w+\]\s*)?"
    r"(?P<type>(?:[A-Za-z_][\w$]*\.)*[A-Za-z_][\w$]*(?:Exception|Error|Exit|Interrupt|Fault))"
    r"(?=:|\s*$|\s+\()"
)


@functools.lru_cache(maxsize=8192)
def normalize_message(message: str) -> str:
    """Return a message with variable parts replaced, as described in the module doc.

    Logs repeat messages, so results are cached; each substitution runs only when a
    character it needs is present.
    """
    text = scrub_text(message)
    if "@" in text:
        text = _EMAIL.sub("<email>", text)
    if "-" in text:
        text = _GUID.sub("<guid>", text)
    if "0x" in text:
        text = _HEX_PREFIXED.sub("<addr>", text)
    text = _HEX_RUN.sub("<hex>", text)
    if "'" in text:
        text = _SINGLE_QUOTED.sub("'<str>'", text)
    if '"' in text:
        text = _DOUBLE_QUOTED.sub('"<str>"', text)
    if "/" in text or "\\" in text:
        text = _PATH.sub("<path>", text)
    text = _NUMBER.sub("<n>", text)
    text = _SPACE.sub(" ", text).strip()
    return text[:_MAX_NORMALIZED_CHARS]


def exception_type(message: str | None) -> str | None:
    """Return the exception type that starts a message, such as `System.ArgumentException`."""
    if not message:
        return None
    match = _EXCEPTION_TYPE.match(message.lstrip())
    return match.group("type") if match else None


# -- frame normalisation -----------------------------------------------------------------------

_FRAME_MARKER = re.compile(
    r"^\s*(?:at:?\s+|At:\s+|\[\d+\]\s+|\#\d+\s+|\[Callstack\]\s+|Rethrow as\s+|Caused by:\s+)"
)
_PYTHON_FRAME = re.compile(r'^\s*File\s"(?P<file>[^"]*)",\sline\s\d+(?:,\sin\s(?P<func>\S+))?')
_GDB_FUNCTION = re.compile(r"\bin\s+(?P<func>[^\s(]+)")
_MONO_OFFSET = re.compile(r"\s+at offset \d+ in file:line:column.*$")
_DOTNET_LOCATION = re.compile(r"\s+(?:in|at)\s+(?:<[^>]*>|\S*[\\/]\S*|\S+\.\w+):(?:line\s)?\d+.*$")
_UNITY_LOCATION = re.compile(r"\s*\(at [^)]*\)\s*$")
_BRACKETED = re.compile(r"\[[^\]]*\]")
_PARENTHESIZED = re.compile(r"\([^()]*\)")
_DIGITS = re.compile(r"\d+")


def normalize_frame(line: str) -> str:
    """Return the function or method a stack frame names, without variable parts."""
    python = _PYTHON_FRAME.match(line)
    if python:
        base = re.split(r"[\\/]", python.group("file"))[-1]
        return _DIGITS.sub("#", f"{base}:{python.group('func') or ''}")
    text = _FRAME_MARKER.sub("", line)
    text = _MONO_OFFSET.sub("", text)
    text = _DOTNET_LOCATION.sub("", text)
    text = _UNITY_LOCATION.sub("", text)
    text = _HEX_PREFIXED.sub(" ", text)
    text = _HEX_RUN.sub(" ", text)
    gdb = _GDB_FUNCTION.search(text) if line.lstrip().startswith("#") else None
    if gdb:
        text = gdb.group("func")
    # Square brackets contain a file and line ([D:\x.cpp:12]) or array ranks. Parentheses
    # contain arguments or the module name, and may nest.
    text = _BRACKETED.sub(" ", text)
    for _ in range(3):
        reduced = _PARENTHESIZED.sub(" ", text)
        if reduced == text:
            break
        text = reduced
    tokens = text.split()
    if not tokens:
        return ""
    # The last token is the function; a preceding return type or module tag is dropped.
    return _DIGITS.sub("#", tokens[-1].rstrip(":,"))


def top_frames(stack_trace: str | None, count: int = TOP_FRAMES) -> list[str]:
    """Return the first `count` frames of a stack trace, normalised."""
    if not stack_trace:
        return []
    frames: list[str] = []
    for line in stack_trace.split("\n"):
        if not is_stack_frame(line):
            continue
        normalized = normalize_frame(line)
        if normalized:
            frames.append(normalized)
            if len(frames) == count:
                break
    return frames


# -- the fingerprint ---------------------------------------------------------------------------


def fingerprint(
    level: str | None,
    category: str | None,
    message: str | None,
    stack_trace: str | None,
) -> str:
    """Return a 16-hex-character key shared by entries that describe the same problem."""
    frames = top_frames(stack_trace)
    error_type = exception_type(message)
    parts = [(level or "").upper(), category or ""]
    if error_type and frames:
        parts.append(error_type)
    else:
        parts.append(error_type or "")
        parts.append(normalize_message(message or ""))
    parts.extend(frames)
    key = "\x1f".join(parts).encode("utf-8")
    digest = hashlib.blake2b(key, digest_size=FINGERPRINT_HEX_CHARS // 2)
    return digest.hexdigest()
