"""Removal of user names from text before it is stored.

Logs and form answers often contain file paths, and a path under a home folder carries
the account name of the person at the machine. `scrub_text` replaces that folder name
with `USER_PLACEHOLDER` in these forms (either slash, any letter case, doubled
backslashes as in escaped JSON):

- `C:\\Users\\<name>\\...` and `C:/Users/<name>/...`
- `C:\\Documents and Settings\\<name>\\...`
- `/home/<name>/...`, `/var/home/<name>/...`, `/usr/home/<name>/...`
- `/Users/<name>/...` (macOS)

It also replaces the value of a `UserName: 'name'`, `User name = name` or `USERNAME=name`
field, as written by crash handlers and environment dumps.

Shared folders that name no person (`Public`, `Default`, `Default User`, `All Users`,
`Shared`) are kept. A name may contain spaces, so the replacement runs up to the next
slash, quote or line end; a path at the end of a sentence therefore hides the words
after the name too, which errs on the side of privacy.

Every parser that stores strings calls `scrub_text` (or `scrub_value` for nested JSON)
on each value before it builds a record. Scrubbing is idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

USER_PLACEHOLDER = "<user>"

# Folder names under a users directory that belong to no person.
_SHARED_FOLDERS = frozenset({"public", "default", "default user", "all users", "shared"})

# A drive letter, then Users or Documents and Settings, then the name segment.
_WINDOWS_HOME = re.compile(
    r"(?P<prefix>\b[A-Za-z]:(?:\\+|/+)(?:Users|Documents and Settings)(?:\\+|/+))"
    r"(?P<name>[^\\/\n\"'<>|:*?]+)",
    re.IGNORECASE,
)
# /home/<name>, /Users/<name> and the like, not preceded by a word or a dot.
_POSIX_HOME = re.compile(
    r"(?P<prefix>(?<![\w.])/(?:home|var/home|usr/home|Users)/)(?P<name>[^/\n\"'<>:]+)",
    re.IGNORECASE,
)
# `UserName: 'bob'`, `User name = bob`, `USERNAME=bob`: the quoted or bare value.
_USER_FIELD = re.compile(
    r"(?P<prefix>\buser ?name\s*[:=]\s*)"
    r"(?:(?P<quote>['\"])(?P<quoted>[^'\"\n]+)(?P=quote)|(?P<bare>[^'\"\s,;]+))",
    re.IGNORECASE,
)
# Cheap pre-check: text without any of these words cannot hold a home path or user field.
_HINT = re.compile(r"user|home/|documents and settings", re.IGNORECASE)


def scrub_text(text: str) -> str:
    """Replace the user name in every home-folder path and user-name field of `text`."""
    if not text or _HINT.search(text) is None:
        return text
    text = _WINDOWS_HOME.sub(_replace_name, text)
    text = _POSIX_HOME.sub(_replace_name, text)
    return _USER_FIELD.sub(_replace_field, text)


def scrub_optional(text: str | None) -> str | None:
    """Scrub `text` like `scrub_text`, passing None through."""
    if text is None:
        return None
    return scrub_text(text)


def scrub_value(value: Any) -> Any:
    """Scrub every string inside a JSON-like value (dicts, lists, scalars).

    Dict keys are scrubbed too, because some tools use paths as keys.
    """
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {scrub_value(key): scrub_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(item) for item in value]
    return value


def _replace_field(match: re.Match[str]) -> str:
    quote = match.group("quote") or ""
    name = match.group("quoted") or match.group("bare")
    if name == USER_PLACEHOLDER:
        return match.group(0)
    return f"{match.group('prefix')}{quote}{USER_PLACEHOLDER}{quote}"


def _replace_name(match: re.Match[str]) -> str:
    name = match.group("name")
    stripped = name.strip()
    if stripped.lower() in _SHARED_FOLDERS or stripped == USER_PLACEHOLDER or not stripped:
        return match.group(0)
    return match.group("prefix") + USER_PLACEHOLDER
