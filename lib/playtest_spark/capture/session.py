"""Requests and responses shared by the broker, its HTTP client and the local landing.

A session request carries the device's data at game start. The broker (or the local
landing) adds the session id and its own clock's start time, and writes `session.json`
from both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from playtest_spark.capture.errors import (
    FileTooLargeError,
    RequestFieldError,
    RequestTooLargeError,
)
from playtest_spark.errors import PlaytestError
from playtest_spark.ids import validate_session_id
from playtest_spark.manifest import (
    COMPLETE_FILE,
    KINDS,
    ManifestError,
    SessionManifest,
    format_timestamp,
    parse_timestamp,
    session_prefix,
    validate_relative_path,
)

MAX_TEXT_LENGTH = 200
MAX_MAPPING_ENTRIES = 50
# Azure limits a blob name to 1,024 characters, and the session prefix takes up to 87.
MAX_FILE_PATH_LENGTH = 900
MAX_FILES_PER_REQUEST = 1000
REQUIRED_TEXT_FIELDS = ("game", "build", "platform", "device_model", "player_id")
OPTIONAL_MAPPING_FIELDS = ("event_fields", "attributes")


@dataclasses.dataclass(frozen=True)
class SessionRequest:
    """What a device sends to open a session.

    Attributes:
        game: Game title or code.
        build: Build or version string of the game.
        platform: Platform name, such as `Windows` or `PS5`.
        device_model: Model of the device.
        player_id: A pseudonymous player id, never a name or an e-mail address.
        device_start: The device's clock at session start. A time without an offset is
            read as UTC. The broker's start time minus this one is the device clock
            offset that the job adds to event times.
        event_fields: Optional names of the type and time fields of the game's events.
        attributes: Optional extra text values stored in `session.json`.
    """

    game: str
    build: str
    platform: str
    device_model: str
    player_id: str
    device_start: dt.datetime
    event_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        """Return the JSON body that `from_body` parses."""
        body: dict[str, Any] = {name: getattr(self, name) for name in REQUIRED_TEXT_FIELDS}
        body["device_start"] = self.device_start.isoformat(timespec="milliseconds")
        if self.event_fields:
            body["event_fields"] = dict(self.event_fields)
        if self.attributes:
            body["attributes"] = dict(self.attributes)
        return body

    @classmethod
    def from_body(cls, body: object) -> SessionRequest:
        """Validate a decoded JSON body.

        Raises:
            RequestFieldError: a field is missing, unknown, of the wrong type, empty, too
                long, or (for `player_id`) looks like an e-mail address.
        """
        if not isinstance(body, dict):
            raise RequestFieldError("body", f"expected a JSON object, got {_json_type(body)}")
        known = set(REQUIRED_TEXT_FIELDS) | set(OPTIONAL_MAPPING_FIELDS) | {"device_start"}
        for name in body:
            if name not in known:
                raise RequestFieldError(str(name), f"unknown field; expected only {sorted(known)}")
        values = {name: _required_text(body, name) for name in REQUIRED_TEXT_FIELDS}
        if "@" in values["player_id"]:
            raise RequestFieldError(
                "player_id", "looks like an e-mail address; send a pseudonymous id instead"
            )
        if "device_start" not in body:
            raise RequestFieldError("device_start", "missing; send the device's ISO 8601 time")
        try:
            device_start = parse_timestamp(body["device_start"], "device_start")
        except ManifestError as exc:
            raise RequestFieldError("device_start", str(exc)) from exc
        mappings = {name: _optional_mapping(body, name) for name in OPTIONAL_MAPPING_FIELDS}
        return cls(device_start=device_start, **values, **mappings)


@dataclasses.dataclass(frozen=True)
class OpenedSession:
    """The broker's response to a session request.

    Attributes:
        session_id: Id made by the broker.
        session_date: UTC date of the broker's start time, part of the directory.
        broker_start_utc: The broker's clock when it wrote `session.json`.
    """

    session_id: str
    session_date: dt.date
    broker_start_utc: dt.datetime

    def __post_init__(self) -> None:
        validate_session_id(self.session_id)

    @property
    def directory(self) -> str:
        """Session directory inside the container: `sessions/<date>/<session_id>`."""
        return session_prefix(self.session_date, self.session_id)

    def to_body(self) -> dict[str, Any]:
        """Return the JSON body that `from_body` parses."""
        return {
            "session_id": self.session_id,
            "session_date": self.session_date.isoformat(),
            "directory": self.directory,
            "broker_start_utc": format_timestamp(self.broker_start_utc),
        }

    @classmethod
    def from_body(cls, body: object) -> OpenedSession:
        """Parse the broker's response.

        Raises:
            RequestFieldError: a field is missing or invalid.
        """
        if not isinstance(body, dict):
            raise RequestFieldError("body", f"expected a JSON object, got {_json_type(body)}")
        session_id = parse_session_id(body.get("session_id"))
        session_date = parse_session_date(body.get("session_date"))
        try:
            broker_start = parse_timestamp(body.get("broker_start_utc"), "broker_start_utc")
        except ManifestError as exc:
            raise RequestFieldError("broker_start_utc", str(exc)) from exc
        return cls(session_id, session_date, broker_start)


@dataclasses.dataclass(frozen=True)
class FileRequest:
    """One file that a device requests to upload: its path in the session and its size."""

    path: str
    size: int


@dataclasses.dataclass(frozen=True)
class UploadGrant:
    """SAS URLs that the broker issued for some files of one session.

    Attributes:
        urls: File path in the session directory -> URL of its blob with a SAS token
            that allows create and write only. The URLs are credentials: never log them.
        expires_utc: When the SAS tokens expire.
    """

    urls: Mapping[str, str] = dataclasses.field(repr=False)
    expires_utc: dt.datetime

    def to_body(self) -> dict[str, Any]:
        """Return the JSON body that `from_body` parses."""
        return {"urls": dict(self.urls), "expires_utc": format_timestamp(self.expires_utc)}

    @classmethod
    def from_body(cls, body: object) -> UploadGrant:
        """Parse the broker's response to an upload-URL request.

        Raises:
            RequestFieldError: a field is missing or invalid.
        """
        if not isinstance(body, dict):
            raise RequestFieldError("body", f"expected a JSON object, got {_json_type(body)}")
        urls = body.get("urls")
        if not isinstance(urls, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in urls.items()
        ):
            raise RequestFieldError("urls", "expected an object of path -> URL strings")
        try:
            expires = parse_timestamp(body.get("expires_utc"), "expires_utc")
        except ManifestError as exc:
            raise RequestFieldError("expires_utc", str(exc)) from exc
        return cls(urls=dict(urls), expires_utc=expires)


def new_session_id(now: dt.datetime) -> str:
    """Make a session id: the UTC start time, then 16 random hex digits.

    The time prefix sorts ids by start, and the random part (64 bits from `secrets`)
    keeps ids of sessions that start in the same second apart.
    """
    stamp = now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return validate_session_id(f"{stamp}-{secrets.token_hex(8)}")


def build_session_manifest(
    request: SessionRequest, session_id: str, broker_start_utc: dt.datetime
) -> SessionManifest:
    """Return the `session.json` content of a newly opened session."""
    return SessionManifest(
        session_id=validate_session_id(session_id),
        game=request.game,
        build=request.build,
        platform=request.platform,
        device_model=request.device_model,
        player_id=request.player_id,
        broker_start_utc=broker_start_utc,
        device_start=request.device_start,
        event_fields=dict(request.event_fields),
        attributes=dict(request.attributes),
    )


def parse_session_id(value: object, field: str = "session_id") -> str:
    """Validate a session id, raising `RequestFieldError` that names `field`."""
    try:
        return validate_session_id(value)
    except PlaytestError as exc:
        raise RequestFieldError(field, str(exc)) from exc


def parse_session_date(value: object, field: str = "session_date") -> dt.date:
    """Parse a YYYY-MM-DD session date, raising `RequestFieldError` that names `field`."""
    if not isinstance(value, str) or len(value) != 10:
        raise RequestFieldError(field, f"invalid date {value!r}: expected YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise RequestFieldError(field, f"invalid date {value!r}: expected YYYY-MM-DD") from exc


def validate_upload_path(path: object, field: str = "path") -> str:
    """Return a file path that a device may upload into its session directory.

    Allowed are files under one of the kinds' folders (`events/`, `performance/`,
    `logs/`, `forms/`, `recordings/`) and the completion marker `_complete.json`.
    `session.json` belongs to the broker.

    Raises:
        RequestFieldError: the path could escape the directory, is too long, or lies
            outside the kinds' folders.
    """
    try:
        checked = validate_relative_path(path)  # type: ignore[arg-type]
    except ManifestError as exc:
        raise RequestFieldError(field, str(exc)) from exc
    if len(checked) > MAX_FILE_PATH_LENGTH:
        raise RequestFieldError(
            field, f"path of {len(checked)} characters; use at most {MAX_FILE_PATH_LENGTH}"
        )
    if checked == COMPLETE_FILE:
        return checked
    top, _, rest = checked.partition("/")
    if top not in KINDS or not rest:
        raise RequestFieldError(
            field,
            f"invalid file path {checked!r}: put files under one of {list(KINDS)}/ "
            f"or name the marker {COMPLETE_FILE!r}",
        )
    return checked


def parse_file_requests(value: object, max_file_bytes: int | None = None) -> list[FileRequest]:
    """Validate the `files` list of an upload-URL request.

    Args:
        value: The decoded `files` field: a list of `{"path": str, "size": int}`.
        max_file_bytes: Largest size accepted, or None for no limit.

    Raises:
        RequestFieldError: the list is missing, empty, too long, repeats a path, or an
            entry has an invalid path or size. The field is named like `files[2].size`.
        FileTooLargeError: an entry's size is above `max_file_bytes`.
    """
    if not isinstance(value, list) or not value:
        raise RequestFieldError("files", "expected a non-empty list of {path, size} objects")
    if len(value) > MAX_FILES_PER_REQUEST:
        raise RequestFieldError(
            "files", f"{len(value)} entries; send at most {MAX_FILES_PER_REQUEST} per request"
        )
    requests: list[FileRequest] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        field = f"files[{index}]"
        if not isinstance(item, dict):
            raise RequestFieldError(field, f"expected an object, got {_json_type(item)}")
        path = validate_upload_path(item.get("path"), f"{field}.path")
        if path in seen:
            raise RequestFieldError(f"{field}.path", f"{path!r} is listed twice")
        seen.add(path)
        size = item.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RequestFieldError(f"{field}.size", f"invalid size {size!r}: expected bytes >= 0")
        if max_file_bytes is not None and size > max_file_bytes:
            raise FileTooLargeError(
                f"{field}.size: file {path!r} has {size} bytes, above the broker's limit of "
                f"{max_file_bytes} bytes",
                field=f"{field}.size",
            )
        requests.append(FileRequest(path, size))
    return requests


def file_requests_body(files: Sequence[FileRequest]) -> list[dict[str, Any]]:
    """Return the JSON form of `files` that `parse_file_requests` reads."""
    return [{"path": item.path, "size": item.size} for item in files]


def decode_json_body(body: bytes, max_bytes: int) -> object:
    """Decode a UTF-8 JSON request body of at most `max_bytes` bytes.

    Raises:
        RequestTooLargeError: the body is larger than `max_bytes`.
        RequestFieldError: the body is not valid UTF-8 JSON (field `body`).
    """
    if len(body) > max_bytes:
        raise RequestTooLargeError(
            f"request body of {len(body)} bytes is larger than the limit of {max_bytes} bytes"
        )
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestFieldError("body", f"invalid JSON ({exc})") from exc


def _required_text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise RequestFieldError(name, "missing; send a non-empty string")
    if not isinstance(value, str):
        raise RequestFieldError(name, f"expected a string, got {_json_type(value)}")
    if not value.strip():
        raise RequestFieldError(name, "empty; send a non-empty string")
    _check_text(name, value)
    return value


def _optional_mapping(body: Mapping[str, Any], name: str) -> dict[str, str]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestFieldError(name, f"expected an object of strings, got {_json_type(value)}")
    if len(value) > MAX_MAPPING_ENTRIES:
        raise RequestFieldError(name, f"{len(value)} entries; send at most {MAX_MAPPING_ENTRIES}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise RequestFieldError(f"{name}.{key}", f"expected a string, got {_json_type(item)}")
        _check_text(f"{name}.{key}", key)
        _check_text(f"{name}.{key}", item)
        result[key] = item
    return result


def _check_text(field: str, value: str) -> None:
    if len(value) > MAX_TEXT_LENGTH:
        raise RequestFieldError(field, f"{len(value)} characters; send at most {MAX_TEXT_LENGTH}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise RequestFieldError(field, f"control character in {value!r}; remove it")


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    return "number" if isinstance(value, (int, float)) else type(value).__name__
