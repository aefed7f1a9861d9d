"""Crash-safe appends of events to JSON Lines files."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)


class EventWriter:
    """Appends events to a JSON Lines file, one flushed and fsynced line per event.

    A crash can cut at most the line being written. Opening the file again ends such a
    cut line with a newline first, so that the next event starts a line of its own.
    """

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self._fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = open(path, "ab")  # noqa: SIM115 - closed in close()
        if self._file.tell() > 0 and not _ends_with_newline(path):
            logger.warning("event file %s ends in a cut line; starting a new line", path)
            self._write(b"\n")

    def append(self, event: Mapping[str, Any]) -> None:
        """Append one event as a line of JSON.

        Raises:
            TypeError: the event is not a mapping.
            ValueError: the event contains a value JSON cannot represent (NaN, infinity, an
                object of another type).
        """
        if not isinstance(event, Mapping):
            raise TypeError(f"an event must be a mapping, got {type(event).__name__}")
        try:
            line = json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except TypeError as exc:
            raise ValueError(f"event {event!r} is not JSON serialisable: {exc}") from exc
        self._write(line.encode("utf-8") + b"\n")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
