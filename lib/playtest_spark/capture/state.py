"""Upload state of a spooled session, kept in `upload_state.json`, and atomic writes."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STATE_VERSION = 1
# The upload state is rewritten at most this often while blocks are staged (seconds).
STATE_SAVE_INTERVAL = 1.0


@dataclasses.dataclass(frozen=True)
class SpoolFile:
    """A file waiting in the spool.

    Attributes:
        path: Path relative to the session directory, such as `logs/game.log`.
        local_path: Where the file is on the device.
        size: Size in bytes when listed.
        mtime_ns: Modification time when listed, to notice a file that changed.
    """

    path: str
    local_path: Path
    size: int
    mtime_ns: int


@dataclasses.dataclass
class FileUploadState:
    """Upload progress of one file.

    Attributes:
        size: File size when its upload started.
        mtime_ns: File modification time when its upload started.
        block_size: Block size in bytes chosen for the file.
        token: Random part of the block ids of this attempt. A clean restart of the file
            picks a new token, so that stale blocks are never committed.
        staged: Indices of the blocks that Blob Storage confirmed.
        committed: Whether the whole file is in place in the landing.
        sha256: Hex SHA-256 of the file, known once it is committed.
    """

    size: int
    mtime_ns: int
    block_size: int
    token: str
    staged: set[int] = dataclasses.field(default_factory=set)
    committed: bool = False
    sha256: str | None = None

    def to_body(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["staged"] = sorted(self.staged)
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> FileUploadState:
        return cls(
            size=int(body["size"]),
            mtime_ns=int(body["mtime_ns"]),
            block_size=int(body["block_size"]),
            token=str(body["token"]),
            staged={int(index) for index in body.get("staged", [])},
            committed=bool(body.get("committed", False)),
            sha256=body.get("sha256"),
        )


def is_in_place(file: SpoolFile, state: UploadState) -> bool:
    """Return whether `file` was committed, unchanged since, in an earlier run."""
    entry = state.files.get(file.path)
    return bool(
        entry is not None
        and entry.committed
        and entry.sha256
        and entry.size == file.size
        and entry.mtime_ns == file.mtime_ns
    )


class UploadState:
    """What the uploader has sent for one session, kept in `upload_state.json`.

    Every save replaces the file atomically, so a crash leaves the previous or the new
    state, never a torn one. Worker threads record staged blocks through
    `mark_staged`, which saves at most once per `STATE_SAVE_INTERVAL`: a crash can
    forget the last second of staged blocks, and they are staged again.
    """

    def __init__(self, path: Path, body: Mapping[str, Any] | None = None) -> None:
        body = body or {}
        self.path = path
        self.files: dict[str, FileUploadState] = {
            name: FileUploadState.from_body(item) for name, item in body.get("files", {}).items()
        }
        self.completed_utc: str | None = body.get("completed_utc")
        self.attempts: int = int(body.get("attempts", 0))
        self.last_error: str | None = body.get("last_error")
        self.last_attempt_utc: str | None = body.get("last_attempt_utc")
        self._lock = threading.RLock()
        self._last_save = 0.0

    @classmethod
    def load(cls, path: Path) -> UploadState:
        """Load the state, or start empty when the file is missing or unreadable."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        try:
            body = json.loads(text)
            return cls(path, body)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "ignoring unreadable upload state %s (%s): every file restarts cleanly",
                path,
                exc,
            )
            return cls(path)

    @property
    def is_complete(self) -> bool:
        """Whether `_complete.json` is in the landing."""
        return self.completed_utc is not None

    def to_body(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": STATE_VERSION,
                "files": {name: item.to_body() for name, item in sorted(self.files.items())},
                "completed_utc": self.completed_utc,
                "attempts": self.attempts,
                "last_error": self.last_error,
                "last_attempt_utc": self.last_attempt_utc,
            }

    def save(self) -> None:
        """Write the state atomically."""
        with self._lock:
            atomic_write_text(self.path, json.dumps(self.to_body(), indent=1) + "\n")
            self._last_save = time.monotonic()

    def mark_staged(self, path: str, index: int) -> None:
        """Record a confirmed block, saving when the last save is old enough."""
        with self._lock:
            self.files[path].staged.add(index)
            if time.monotonic() - self._last_save >= STATE_SAVE_INTERVAL:
                self.save()


def atomic_write_text(path: Path, text: str, partial_name: str | None = None) -> None:
    """Write a file through a fsynced temporary file and a rename.

    Readers and crashes see the old content or the new one, never a mix.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / (partial_name or f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def fsync_directory(folder: Path) -> None:
    # Makes a rename durable on POSIX. Windows cannot open a directory for fsync.
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
