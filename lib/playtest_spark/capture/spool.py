"""The device spool: one folder per session that survives a crash of the game.

Layout of a session folder:

    <spool>/<session_id>/
        spool.json            the opened session, its request, where it uploads, its end
        upload_state.json     what the uploader has sent (see `UploadState`)
        events/ performance/ logs/ forms/ recordings/

Every file that appears in a kind's folder is complete: files are written under a
hidden `.partial` name and renamed into place, and events are appended one fsynced line
at a time. Names starting with `.` are never uploaded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from playtest_spark.capture.errors import RequestFieldError, SessionClosedError
from playtest_spark.capture.events import EventWriter
from playtest_spark.capture.session import (
    OpenedSession,
    SessionRequest,
    validate_upload_path,
)
from playtest_spark.capture.state import (
    SpoolFile,
    UploadState,
    atomic_write_text,
    fsync_directory,
)
from playtest_spark.errors import CaptureError
from playtest_spark.ids import validate_session_id
from playtest_spark.manifest import KINDS, parse_timestamp

logger = logging.getLogger(__name__)

SPOOL_VERSION = 1
META_FILE = "spool.json"
STATE_FILE = "upload_state.json"
LOCK_FILE = ".lock"
DEFAULT_EVENT_STREAM = "events"
COPY_CHUNK_BYTES = 1024 * 1024

STATUS_OPEN = "open"
STATUS_PENDING = "pending"
STATUS_INCOMPLETE = "incomplete"
STATUS_UPLOADED = "uploaded"


class SessionOpener(Protocol):
    """Anything that opens sessions: the broker, its HTTP client, or a local landing."""

    def open_session(self, request: SessionRequest) -> OpenedSession:
        """Open a session and return its id and directory."""
        ...


class SpoolSession:
    """One session's folder in the spool, with helpers for the game's test harness."""

    def __init__(self, folder: Path, meta: Mapping[str, Any]) -> None:
        self.folder = folder
        self._meta = dict(meta)
        self.opened = OpenedSession.from_body(meta["session"])
        if self.opened.session_id != folder.name:
            raise CaptureError(
                f"spool folder {str(folder)!r} holds session {self.opened.session_id!r}; "
                "the folder name must be the session id"
            )
        self.request = SessionRequest.from_body(meta["request"])
        self.destination: dict[str, str] = dict(meta.get("destination") or {})

    # -- identity and status --------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self.opened.session_id

    @property
    def started_utc(self) -> str:
        """When the spool folder was created (ISO 8601, UTC, microseconds)."""
        return str(self._meta.get("started_utc", ""))

    @property
    def device_end(self) -> dt.datetime | None:
        """The device's clock when the session was sealed for upload, or None while open.

        Read from `spool.json` each time, because another process may have sealed it.
        """
        self._meta = json.loads((self.folder / META_FILE).read_text(encoding="utf-8"))
        value = self._meta.get("device_end")
        return parse_timestamp(value, "device_end") if value else None

    @property
    def is_sealed(self) -> bool:
        return self.device_end is not None

    def load_state(self) -> UploadState:
        """Load the upload state from disk."""
        return UploadState.load(self.folder / STATE_FILE)

    def status(self) -> str:
        """Return `open`, `pending` (sealed, not sent), `incomplete` or `uploaded`."""
        state = self.load_state()
        if state.is_complete:
            return STATUS_UPLOADED
        if state.last_error:
            return STATUS_INCOMPLETE
        return STATUS_PENDING if self.is_sealed else STATUS_OPEN

    # -- adding data ------------------------------------------------------------------

    def append_event(self, event: Mapping[str, Any], stream: str = DEFAULT_EVENT_STREAM) -> None:
        """Append one event to `events/<stream>.jsonl`, flushed and fsynced.

        For many events, keep an `event_writer` open instead: this opens the file for
        every event.
        """
        with self.event_writer(stream) as writer:
            writer.append(event)

    def event_writer(self, stream: str = DEFAULT_EVENT_STREAM, fsync: bool = True) -> EventWriter:
        """Open `events/<stream>.jsonl` for appending. Close it when the game stops.

        Raises:
            SessionClosedError: the session was sealed for upload.
        """
        self._check_open()
        path = self._target("events", f"{stream}.jsonl")
        return EventWriter(path, fsync=fsync)

    def add_events_file(
        self, source: str | Path, name: str | None = None, move: bool = False
    ) -> str:
        """Copy (or move) a file of events into `events/` and return its path in the session."""
        return self.add_file("events", source, name, move)

    def add_performance(
        self, source: str | Path, name: str | None = None, move: bool = False
    ) -> str:
        """Copy (or move) a performance capture into `performance/`."""
        return self.add_file("performance", source, name, move)

    def add_log(self, source: str | Path, name: str | None = None, move: bool = False) -> str:
        """Copy (or move) a log file into `logs/`."""
        return self.add_file("logs", source, name, move)

    def add_recording(self, source: str | Path, name: str | None = None, move: bool = False) -> str:
        """Copy (or move, which avoids a second copy of a large video) a recording."""
        return self.add_file("recordings", source, name, move)

    def add_form(
        self, form: str | Path | Mapping[str, Any], name: str | None = None, move: bool = False
    ) -> str:
        """Add a player form: a file (JSON or CSV export) or a mapping written as JSON.

        A mapping without a name is stored as `forms/form-<UTC time>.json`.
        """
        if not isinstance(form, Mapping):
            return self.add_file("forms", form, name, move)
        self._check_open()
        if name is None:
            name = f"form-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}.json"
        target = self._new_target("forms", name)
        text = json.dumps(form, ensure_ascii=False, allow_nan=False, indent=2) + "\n"
        atomic_write_text(target, text, partial_name=_partial_name(target))
        logger.info("added form %s to session %s", name, self.session_id)
        return target.relative_to(self.folder).as_posix()

    def add_file(
        self, kind: str, source: str | Path, name: str | None = None, move: bool = False
    ) -> str:
        """Copy (or move) a file into a kind's folder, complete or not at all.

        Args:
            kind: One of `events`, `performance`, `logs`, `forms`, `recordings`.
            source: The file to add.
            name: Name in the kind's folder, which may contain `/` for a subfolder.
                Defaults to the source's name.
            move: Move the source instead of copying it.

        Returns:
            The file's path relative to the session directory.

        Raises:
            SessionClosedError: the session was sealed for upload.
            CaptureError: the kind or name is invalid, a file of that name exists, or
                the source is missing.
        """
        self._check_open()
        source = Path(source)
        if not source.is_file():
            raise CaptureError(f"cannot add {str(source)!r}: no such file")
        target = self._new_target(kind, name or source.name)
        partial = target.parent / _partial_name(target)
        if move:
            _move_file(source, target, partial)
        else:
            _copy_file(source, partial)
            os.replace(partial, target)
        fsync_directory(target.parent)
        relative = target.relative_to(self.folder).as_posix()
        logger.info("added %s to session %s", relative, self.session_id)
        return relative

    # -- sealing and listing ------------------------------------------------------------

    def seal(self, device_end: dt.datetime | None = None) -> dt.datetime:
        """Record the session's end on the device clock, after which adds are rejected.

        Sealing twice keeps the first end time, so retried uploads send the same one.
        """
        current = self.device_end
        if current is not None:
            return current
        end = device_end or dt.datetime.now(dt.timezone.utc)
        self._meta["device_end"] = end.isoformat(timespec="milliseconds")
        atomic_write_text(self.folder / META_FILE, json.dumps(self._meta, indent=2) + "\n")
        logger.info("sealed session %s at %s", self.session_id, self._meta["device_end"])
        return end

    def files(self) -> list[SpoolFile]:
        """List the complete files in the kinds' folders, sorted by path.

        Hidden names (starting with `.`, such as partial copies) are skipped.
        """
        found: list[SpoolFile] = []
        for kind in KINDS:
            root = self.folder / kind
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(self.folder).as_posix()
                if any(part.startswith(".") for part in relative.split("/")):
                    continue
                if not path.is_file():
                    continue
                stat = path.stat()
                found.append(SpoolFile(relative, path, stat.st_size, stat.st_mtime_ns))
        return found

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the session's lock file, so that two uploaders never run at once.

        The operating system releases the lock when the process dies.

        Raises:
            CaptureError: another process holds the lock.
        """
        path = self.folder / LOCK_FILE
        with open(path, "a+b") as handle:
            try:
                _lock_file(handle)
            except OSError as exc:
                raise CaptureError(
                    f"session {self.session_id!r} is locked by another upload ({path}); "
                    "wait for it to finish"
                ) from exc
            try:
                yield
            finally:
                _unlock_file(handle)

    # -- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        device_end = self.device_end
        if device_end is not None:
            raise SessionClosedError(
                f"session {self.session_id!r} was sealed for upload at "
                f"{device_end.isoformat()} and accepts no more files; start a new session"
            )

    def _target(self, kind: str, name: str) -> Path:
        if kind not in KINDS:
            raise CaptureError(f"invalid kind {kind!r}: use one of {list(KINDS)}")
        try:
            relative = validate_upload_path(f"{kind}/{name}", "name")
        except RequestFieldError as exc:
            raise CaptureError(f"invalid file name {name!r}: {exc}") from exc
        if any(part.startswith(".") for part in relative.split("/")):
            raise CaptureError(f"invalid file name {name!r}: names starting with '.' are hidden")
        target = self.folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _new_target(self, kind: str, name: str) -> Path:
        target = self._target(kind, name)
        if target.exists():
            raise CaptureError(
                f"session {self.session_id!r} already has {kind}/{name}; pick another name"
            )
        return target


class Spool:
    """The spool folder, with one subfolder per session."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def start(
        self,
        opener: SessionOpener,
        request: SessionRequest,
        destination: Mapping[str, str] | None = None,
    ) -> SpoolSession:
        """Open a session through `opener` and create its spool folder.

        Args:
            opener: The broker client, a local landing, or an in-process broker.
            request: The device's session request.
            destination: Where `upload` sends the files, stored in `spool.json`.
                Defaults to the opener's own `destination` attribute, if it has one.
        """
        opened = opener.open_session(request)
        if destination is None:
            destination = getattr(opener, "destination", None) or {}
        return self.create(opened, request, destination)

    def create(
        self, opened: OpenedSession, request: SessionRequest, destination: Mapping[str, str]
    ) -> SpoolSession:
        """Create the spool folder of a session opened elsewhere."""
        folder = self.root / validate_session_id(opened.session_id)
        for kind in KINDS:
            (folder / kind).mkdir(parents=True, exist_ok=True)
        meta = {
            "spool_version": SPOOL_VERSION,
            "session": opened.to_body(),
            "request": request.to_body(),
            "destination": dict(destination),
            # Microseconds order sessions opened within the same millisecond.
            "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(),
            "device_end": None,
        }
        atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2) + "\n")
        logger.info("spooling session %s in %s", opened.session_id, folder)
        return SpoolSession(folder, meta)

    def get(self, session_id: str) -> SpoolSession:
        """Return a spooled session.

        Raises:
            InvalidSessionIdError: the id is invalid.
            CaptureError: the spool has no such session.
        """
        folder = self.root / validate_session_id(session_id)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise CaptureError(f"session {session_id!r} is not in the spool {str(self.root)!r}")
        return SpoolSession(folder, json.loads(meta_path.read_text(encoding="utf-8")))

    def sessions(self) -> list[SpoolSession]:
        """Return every spooled session, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            meta_path = folder / META_FILE
            if not meta_path.is_file():
                continue
            try:
                found.append(SpoolSession(folder, json.loads(meta_path.read_text("utf-8"))))
            except (ValueError, KeyError, CaptureError) as exc:
                logger.warning("skipping unreadable spool folder %s: %s", folder, exc)
        return sorted(found, key=lambda session: session.started_utc)

    def pending(self) -> list[SpoolSession]:
        """Return the sessions whose upload has not completed, oldest first."""
        return [session for session in self.sessions() if session.status() != STATUS_UPLOADED]

    def latest_open(self) -> SpoolSession | None:
        """Return the most recently started session that is not sealed, if any."""
        open_sessions = [session for session in self.sessions() if not session.is_sealed]
        return open_sessions[-1] if open_sessions else None


def _partial_name(target: Path) -> str:
    return f".{target.name}.partial"


def _copy_file(source: Path, destination: Path) -> None:
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        shutil.copyfileobj(reader, writer, COPY_CHUNK_BYTES)
        writer.flush()
        os.fsync(writer.fileno())


def _move_file(source: Path, destination: Path, partial: Path) -> None:
    # A rename within one file system is atomic. Across file systems, copy then delete.
    try:
        os.replace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_file(source, partial)
        os.replace(partial, destination)
        source.unlink()


def _lock_file(handle: IO[bytes]) -> None:
    # NOTE: the msvcrt branch (Windows playtest machines) has not run in the test suite.
    if os.name == "nt":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_file(handle: IO[bytes]) -> None:
    if os.name == "nt":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
