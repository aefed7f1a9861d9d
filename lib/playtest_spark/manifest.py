"""`session.json` and `_complete.json`: the contract between capture and the job.

Imports no Spark: the broker and the uploader use it on playtest machines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from playtest_spark.errors import PlaytestError
from playtest_spark.ids import validate_session_id

SCHEMA_VERSION = 1
SESSION_FILE = "session.json"
COMPLETE_FILE = "_complete.json"
SESSIONS_PREFIX = "sessions"
# Folder of a landed file -> its kind.
KIND_FOLDERS: dict[str, str] = {
    "events": "events",
    "performance": "performance",
    "perf": "performance",
    "logs": "logs",
    "forms": "forms",
    "recordings": "recordings",
}
KINDS = ("events", "performance", "logs", "forms", "recordings")


class ManifestError(PlaytestError, ValueError):
    """`session.json` or `_complete.json` is missing a field or has an invalid value."""


def parse_timestamp(value: Any, field: str) -> dt.datetime:
    """Parse an ISO 8601 time (`Z` or an offset; naive means UTC) into an aware datetime.

    Raises:
        ManifestError: the value is not an ISO 8601 date and time.
    """
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{field}: expected an ISO 8601 time, got {value!r}")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ManifestError(f"{field}: invalid ISO 8601 time {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def format_timestamp(value: dt.datetime) -> str:
    """Format an aware datetime as ISO 8601 in UTC with millisecond precision and `Z`."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: attach a time zone")
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def validate_relative_path(path: str) -> str:
    """Return a file path relative to a session directory, or raise if it could escape it.

    Raises:
        ManifestError: the path is absolute, empty, has `.` or `..` segments, a
            backslash, or a control character.
    """
    if not isinstance(path, str) or not path:
        raise ManifestError(f"invalid file path {path!r}: expected a relative path")
    if path.startswith("/") or "\\" in path or any(ord(ch) < 32 for ch in path):
        raise ManifestError(f"invalid file path {path!r}: use a relative path with / only")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ManifestError(f"invalid file path {path!r}: empty, '.' or '..' segment")
    if posixpath.normpath(path) != path:
        raise ManifestError(f"invalid file path {path!r}: not in normal form")
    return path


def kind_of(path: str) -> str | None:
    """Return the kind of a landed file from its top folder, or None for other files."""
    top = path.split("/", 1)[0] if "/" in path else ""
    return KIND_FOLDERS.get(top.lower())


@dataclasses.dataclass(frozen=True)
class SessionManifest:
    """Content of `session.json`, written by the broker when a session opens."""

    session_id: str
    game: str
    build: str
    platform: str
    device_model: str
    player_id: str
    broker_start_utc: dt.datetime
    device_start: dt.datetime
    schema_version: int = SCHEMA_VERSION
    # Optional: how the game names the type and time fields of its events.
    event_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def clock_offset(self) -> dt.timedelta:
        """Broker clock minus device clock at session start; add it to device times."""
        return self.broker_start_utc - self.device_start

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "schema_version": self.schema_version,
            "session_id": self.session_id,
            "game": self.game,
            "build": self.build,
            "platform": self.platform,
            "device_model": self.device_model,
            "player_id": self.player_id,
            "broker_start_utc": format_timestamp(self.broker_start_utc),
            "device_start": self.device_start.isoformat(timespec="milliseconds"),
        }
        if self.event_fields:
            body["event_fields"] = dict(self.event_fields)
        if self.attributes:
            body["attributes"] = dict(self.attributes)
        return json.dumps(body, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> SessionManifest:
        """Parse `session.json`.

        Raises:
            ManifestError: the JSON is invalid or a required field is missing or wrong.
        """
        body = _load_object(text, SESSION_FILE)
        version = body.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise ManifestError(
                f"{SESSION_FILE}: invalid schema_version {version!r}: this version of the job reads "
                f"1 to {SCHEMA_VERSION}; upgrade playtest-spark for newer sessions"
            )
        required = ("game", "build", "platform", "device_model", "player_id")
        values = {}
        for name in required:
            value = body.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ManifestError(f"{SESSION_FILE}: missing or empty field {name!r}")
            values[name] = value
        try:
            session_id = validate_session_id(body.get("session_id"))
        except PlaytestError as exc:
            raise ManifestError(f"{SESSION_FILE}: {exc}") from exc
        event_fields = body.get("event_fields") or {}
        attributes = body.get("attributes") or {}
        if not isinstance(event_fields, dict) or not isinstance(attributes, dict):
            raise ManifestError(f"{SESSION_FILE}: event_fields and attributes must be objects")
        return cls(
            session_id=session_id,
            broker_start_utc=parse_timestamp(body.get("broker_start_utc"), "broker_start_utc"),
            device_start=parse_timestamp(body.get("device_start"), "device_start"),
            schema_version=version,
            event_fields={str(k): str(v) for k, v in event_fields.items()},
            attributes={str(k): str(v) for k, v in attributes.items()},
            **values,
        )


@dataclasses.dataclass(frozen=True)
class InventoryEntry:
    """One uploaded file: path relative to the session directory, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class CompletionManifest:
    """Content of `_complete.json`, written last by the uploader."""

    session_id: str
    device_end: dt.datetime
    files: Sequence[InventoryEntry]
    schema_version: int = SCHEMA_VERSION

    @property
    def inventory_hash(self) -> str:
        """SHA-256 of the sorted inventory: a new upload of a session changes it."""
        canonical = json.dumps(
            sorted([entry.path, entry.size, entry.sha256] for entry in self.files),
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_json(self) -> str:
        body = {
            "schema_version": self.schema_version,
            "session_id": self.session_id,
            "device_end": self.device_end.isoformat(timespec="milliseconds"),
            "files": [dataclasses.asdict(entry) for entry in self.files],
        }
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> CompletionManifest:
        """Parse `_complete.json`.

        Raises:
            ManifestError: the JSON is invalid, a field is missing, a path could escape
                the session directory, a size is negative or a hash is not hex SHA-256.
        """
        body = _load_object(text, COMPLETE_FILE)
        try:
            session_id = validate_session_id(body.get("session_id"))
        except PlaytestError as exc:
            raise ManifestError(f"{COMPLETE_FILE}: {exc}") from exc
        files = body.get("files")
        if not isinstance(files, list):
            raise ManifestError(f"{COMPLETE_FILE}: 'files' must be a list")
        entries = []
        seen: set[str] = set()
        for position, item in enumerate(files, start=1):
            if not isinstance(item, dict):
                raise ManifestError(f"{COMPLETE_FILE}: files[{position}] is not an object")
            path = validate_relative_path(item.get("path"))
            size = item.get("size")
            digest = item.get("sha256")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ManifestError(f"{COMPLETE_FILE}: invalid size {size!r} for {path!r}")
            if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
                raise ManifestError(f"{COMPLETE_FILE}: invalid sha256 {digest!r} for {path!r}")
            if path in seen:
                raise ManifestError(f"{COMPLETE_FILE}: {path!r} is listed twice")
            seen.add(path)
            entries.append(InventoryEntry(path, size, digest.lower()))
        version = body.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise ManifestError(f"{COMPLETE_FILE}: invalid schema_version {version!r}")
        return cls(
            session_id=session_id,
            device_end=parse_timestamp(body.get("device_end"), "device_end"),
            files=tuple(entries),
            schema_version=version,
        )


def session_prefix(session_date: dt.date, session_id: str) -> str:
    """Return `sessions/<YYYY-MM-DD>/<session_id>`, validating the id."""
    return f"{SESSIONS_PREFIX}/{session_date.isoformat()}/{validate_session_id(session_id)}"


def _load_object(text: str | bytes, name: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{name}: invalid JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise ManifestError(f"{name}: expected a JSON object, got {type(body).__name__}")
    return body


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
