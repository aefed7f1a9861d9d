"""The embedded default: sessions land in a local folder, with no server.

The folder has the same layout as the landing container (`sessions/<date>/<id>/...`),
so the nightly job reads it the same way. Files are copied under a hidden `.partial`
name and renamed into place, so a killed copy restarts that file cleanly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from playtest_spark.capture.blocks import UploadProgress, UploadStats
from playtest_spark.capture.errors import SessionCompleteError, SessionNotFoundError
from playtest_spark.capture.session import (
    OpenedSession,
    SessionRequest,
    build_session_manifest,
    new_session_id,
)
from playtest_spark.capture.state import (
    FileUploadState,
    SpoolFile,
    UploadState,
    atomic_write_text,
    is_in_place,
)
from playtest_spark.errors import CaptureError
from playtest_spark.manifest import (
    COMPLETE_FILE,
    SESSION_FILE,
    CompletionManifest,
    InventoryEntry,
    validate_relative_path,
)

logger = logging.getLogger(__name__)

COPY_CHUNK_BYTES = 4 * 1024 * 1024
SESSION_ID_ATTEMPTS = 3


def utc_now() -> dt.datetime:
    """Return the current time in UTC."""
    return dt.datetime.now(dt.timezone.utc)


class LocalBroker:
    """A broker for a local landing folder: it opens sessions itself, with no server.

    The job reads the same folder through `playtest_spark.landing.local.LocalLanding`.
    """

    def __init__(self, root: str | Path, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.root = Path(root).resolve()
        self._clock = clock

    @property
    def destination(self) -> dict[str, str]:
        """Where a spooled session uploads, as stored in its `spool.json`."""
        return {"landing": str(self.root)}

    def session_dir(self, opened: OpenedSession) -> Path:
        """Return the folder of a session in the landing."""
        return self.root / opened.directory

    def open_session(self, request: SessionRequest) -> OpenedSession:
        """Make a session id and write the session's `session.json`, as the broker does."""
        for _ in range(SESSION_ID_ATTEMPTS):
            now = self._clock()
            opened = OpenedSession(new_session_id(now), now.astimezone(dt.timezone.utc).date(), now)
            folder = self.session_dir(opened)
            try:
                folder.mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                logger.warning("session id %s exists already; making another", opened.session_id)
                continue
            manifest = build_session_manifest(request, opened.session_id, now)
            atomic_write_text(folder / SESSION_FILE, manifest.to_json())
            logger.info("opened session %s in %s", opened.session_id, folder)
            return opened
        raise CaptureError(
            f"could not make a new session id in {SESSION_ID_ATTEMPTS} attempts under "
            f"{str(self.root)!r}"
        )

    def target(self, opened: OpenedSession) -> FolderTarget:
        """Return the upload target of a session in this landing."""
        return FolderTarget(self, opened)


class FolderTarget:
    """Uploads a spooled session into the landing folder."""

    def __init__(self, landing: LocalBroker, opened: OpenedSession) -> None:
        self.landing = landing
        self.opened = opened
        self.folder = landing.session_dir(opened)

    @property
    def description(self) -> str:
        return f"landing folder {str(self.landing.root)!r}"

    def prepare(self, files: Sequence[SpoolFile]) -> None:
        """Check that the session is open in the landing.

        Raises:
            SessionNotFoundError: the landing has no `session.json` for it.
            SessionCompleteError: its `_complete.json` exists.
        """
        if not (self.folder / SESSION_FILE).is_file():
            raise SessionNotFoundError(
                f"session {self.opened.session_id!r} has no {SESSION_FILE} in {str(self.folder)!r}"
            )
        if (self.folder / COMPLETE_FILE).exists():
            raise SessionCompleteError(
                f"session {self.opened.session_id!r} is complete in {str(self.folder)!r}"
            )

    def upload_file(
        self,
        file: SpoolFile,
        state: UploadState,
        progress: UploadProgress,
        stats: UploadStats,
    ) -> InventoryEntry:
        """Copy one file into the session folder, hashing it on the way."""
        entry = state.files.get(file.path)
        target = self.folder / validate_relative_path(file.path)
        in_place = is_in_place(file, state) and target.is_file()
        if entry is not None and entry.sha256 and in_place and target.stat().st_size == file.size:
            stats.add(files_skipped=1)
            return InventoryEntry(file.path, entry.size, entry.sha256)

        entry = FileUploadState(file.size, file.mtime_ns, block_size=0, token="")
        state.files[file.path] = entry
        progress.file_started(file.path, file.size)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f".{target.name}.partial"
        digest = hashlib.sha256()
        size = 0
        with open(file.local_path, "rb") as reader, open(partial, "wb") as writer:
            while chunk := reader.read(COPY_CHUNK_BYTES):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
                progress.advance(file.path, len(chunk))
            writer.flush()
            os.fsync(writer.fileno())
        if size != file.size:
            partial.unlink()
            raise OSError(
                f"{file.local_path} changed while it was copied ({size} bytes, expected "
                f"{file.size}); run the upload again"
            )
        os.replace(partial, target)
        entry.committed = True
        entry.sha256 = digest.hexdigest()
        state.save()
        stats.add(files_sent=1, bytes_sent=size)
        progress.file_done(file.path)
        return InventoryEntry(file.path, size, entry.sha256)

    def write_completion(self, manifest: CompletionManifest) -> None:
        """Write `_complete.json` atomically, unless it exists."""
        path = self.folder / COMPLETE_FILE
        if path.exists():
            logger.info("%s exists already for session %s", COMPLETE_FILE, manifest.session_id)
            return
        atomic_write_text(path, manifest.to_json())

    def close(self) -> None:
        pass
