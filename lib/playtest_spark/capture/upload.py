"""Upload of a spooled session: every file, then `_complete.json` last.

`upload_session` seals the session, sends each file that is not in place yet, and writes
`_complete.json` with the inventory only after every file is committed. It records its
progress in the session's upload state, so a run killed at any point resumes, and a
session uploaded once is never sent again. A failure leaves the session `incomplete` on
the device, with the cause in its state.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContentSettings

from playtest_spark.capture.blocks import (
    NullProgress,
    UploadOptions,
    UploadProgress,
    UploadStats,
    blob_client_from_url,
    call_with_retries,
    make_transport,
    sas_expiry_of,
    upload_file_blocks,
)
from playtest_spark.capture.client import HttpBrokerClient
from playtest_spark.capture.errors import (
    SasExpiredError,
    SessionCompleteError,
    UploadAuthorizationError,
)
from playtest_spark.capture.local import LocalBroker
from playtest_spark.capture.session import FileRequest, OpenedSession, UploadGrant
from playtest_spark.capture.spool import SpoolSession
from playtest_spark.capture.state import SpoolFile, UploadState, is_in_place
from playtest_spark.errors import CaptureError
from playtest_spark.ids import validate_session_id
from playtest_spark.manifest import COMPLETE_FILE, CompletionManifest, InventoryEntry

logger = logging.getLogger(__name__)


class UrlIssuer(Protocol):
    """Issues upload URLs: the broker's HTTP client, or a `Broker` in the same process."""

    def issue_upload_urls(
        self, session_id: str, session_date: dt.date, files: Sequence[FileRequest]
    ) -> UploadGrant: ...


class SessionTarget(Protocol):
    """Where `upload_session` sends a session: Blob Storage or a landing folder."""

    @property
    def description(self) -> str: ...

    def prepare(self, files: Sequence[SpoolFile]) -> None:
        """Get ready to send `files`, or raise SessionCompleteError if the session is done."""
        ...

    def upload_file(
        self, file: SpoolFile, state: UploadState, progress: UploadProgress, stats: UploadStats
    ) -> InventoryEntry:
        """Put one file in place (or skip it if it is) and return its inventory entry."""
        ...

    def write_completion(self, manifest: CompletionManifest) -> None:
        """Write `_complete.json`, unless it exists."""
        ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class UploadReport:
    """Outcome of one `upload_session` call.

    Attributes:
        session_id: The session.
        status: `uploaded` (this run wrote `_complete.json`) or `already uploaded`.
        files: Files in the inventory.
        total_bytes: Their total size.
        stats: What this run sent, skipped and resumed.
        seconds: Wall-clock time of the run.
    """

    session_id: str
    status: str
    files: int
    total_bytes: int
    stats: UploadStats
    seconds: float


class BlobTarget:
    """Uploads a session to Blob Storage with per-blob SAS URLs from the broker."""

    def __init__(
        self,
        issuer: UrlIssuer,
        opened: OpenedSession,
        options: UploadOptions | None = None,
        client_options: dict[str, object] | None = None,
    ) -> None:
        """Create the target.

        Args:
            issuer: Source of SAS URLs.
            opened: The session being uploaded.
            options: Upload tuning.
            client_options: Extra keyword arguments for every `BlobClient`, such as
                `per_retry_policies` or `transport`.
        """
        self.issuer = issuer
        self.opened = opened
        self.options = options or UploadOptions()
        self._client_options = dict(client_options or {})
        self._own_transport = None
        if "transport" not in self._client_options:
            self._own_transport = make_transport(self.options)
            self._client_options["transport"] = self._own_transport
        self._sizes: dict[str, int] = {}
        self._urls: dict[str, str] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.options.max_concurrency, thread_name_prefix="playtest-upload"
        )

    @property
    def description(self) -> str:
        return f"Blob Storage through {self.issuer!r}"

    def prepare(self, files: Sequence[SpoolFile]) -> None:
        self._sizes = {file.path: file.size for file in files}
        self._sizes[COMPLETE_FILE] = 0
        self._request_urls(list(self._sizes))

    def upload_file(
        self, file: SpoolFile, state: UploadState, progress: UploadProgress, stats: UploadStats
    ) -> InventoryEntry:
        entry = state.files.get(file.path)
        if entry is not None and entry.sha256 and is_in_place(file, state):
            stats.add(files_skipped=1)
            return InventoryEntry(file.path, entry.size, entry.sha256)
        self._sizes.setdefault(file.path, file.size)
        try:
            return self._upload_blocks(file, state, progress, stats)
        except SasExpiredError:
            logger.warning("the SAS URL for %s expired; requesting a new one", file.path)
            self._request_urls([file.path])
            return self._upload_blocks(file, state, progress, stats)

    def write_completion(self, manifest: CompletionManifest) -> None:
        try:
            self._put_completion(manifest)
        except SasExpiredError:
            logger.warning("the SAS URL for %s expired; requesting a new one", COMPLETE_FILE)
            self._request_urls([COMPLETE_FILE])
            self._put_completion(manifest)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._own_transport is not None:
            self._own_transport.close()

    # The blob clients share one transport, so they are not closed one by one.

    def _upload_blocks(
        self, file: SpoolFile, state: UploadState, progress: UploadProgress, stats: UploadStats
    ) -> InventoryEntry:
        client = blob_client_from_url(self._url(file.path), self.options, **self._client_options)
        return upload_file_blocks(
            client, file, state, self.options, self._executor, progress, stats
        )

    def _put_completion(self, manifest: CompletionManifest) -> None:
        url = self._url(COMPLETE_FILE)
        data = manifest.to_json().encode("utf-8")
        client = blob_client_from_url(url, self.options, **self._client_options)
        try:
            call_with_retries(
                lambda: client.upload_blob(
                    data,
                    overwrite=False,
                    validate_content=True,
                    content_settings=ContentSettings(content_type="application/json"),
                ),
                f"{COMPLETE_FILE} of session {manifest.session_id}",
                self.options,
                sas_expiry_of(url),
            )
        except ResourceExistsError:
            logger.info(
                "%s exists already for session %s; not writing it again",
                COMPLETE_FILE,
                manifest.session_id,
            )

    def _request_urls(self, paths: Sequence[str]) -> None:
        requests = [FileRequest(path, self._sizes.get(path, 0)) for path in paths]
        grant = self.issuer.issue_upload_urls(
            self.opened.session_id, self.opened.session_date, requests
        )
        for path in paths:
            url = grant.urls.get(path)
            if url is None:
                raise CaptureError(f"the broker sent no upload URL for {path!r}; report this")
            self._check_url(path, url)
            self._urls[path] = url

    def _check_url(self, path: str, url: str) -> None:
        """Reject a URL that points outside this session's directory."""
        blob_path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        expected = f"/{self.opened.directory}/{path}"
        if not blob_path.endswith(expected):
            raise UploadAuthorizationError(
                f"the broker sent a URL for {blob_path!r}, not for {expected!r}; "
                "refusing to upload outside the session directory"
            )

    def _url(self, path: str) -> str:
        url = self._urls.get(path)
        if url is None:
            self._request_urls([path])
            url = self._urls[path]
        return url


def upload_session(
    session: SpoolSession,
    target: SessionTarget,
    progress: UploadProgress | None = None,
) -> UploadReport:
    """Upload a spooled session and write its `_complete.json` last.

    Raises:
        InvalidSessionIdError: the spooled session's id is invalid.
        CaptureError: the upload failed. The message names the cause (authorisation,
            SAS expired, timeout, file too large, broker unavailable). The session stays
            `incomplete` in the spool, and the next run resumes it.
        OSError: a spooled file could not be read.
    """
    validate_session_id(session.session_id)
    progress = progress or NullProgress()
    started = time.monotonic()
    stats = UploadStats()
    try:
        with session.lock():
            state = session.load_state()
            if state.is_complete:
                logger.info("session %s was uploaded already; nothing to send", session.session_id)
                return UploadReport(session.session_id, "already uploaded", 0, 0, stats, 0.0)
            device_end = session.seal()
            files = session.files()
            state.attempts += 1
            state.last_attempt_utc = _now_text()
            state.save()
            logger.info(
                "uploading session %s (%d files, %d bytes) to %s",
                session.session_id,
                len(files),
                sum(file.size for file in files),
                target.description,
            )
            try:
                status = _send(session, target, files, state, device_end, progress, stats)
            except Exception as exc:
                state.last_error = f"{type(exc).__name__}: {exc}"
                state.save()
                logger.error("upload of session %s failed: %s", session.session_id, exc)
                raise
            state.completed_utc = _now_text()
            state.last_error = None
            state.save()
    finally:
        target.close()
    seconds = time.monotonic() - started
    logger.info(
        "session %s %s: %d file(s) sent, %d skipped, %d block(s) staged, %d reused, in %.1f s",
        session.session_id,
        status,
        stats.files_sent,
        stats.files_skipped,
        stats.blocks_staged,
        stats.blocks_reused,
        seconds,
    )
    return UploadReport(
        session.session_id, status, len(files), sum(file.size for file in files), stats, seconds
    )


def target_for(
    session: SpoolSession,
    options: UploadOptions | None = None,
    broker_url: str | None = None,
    broker_key: str | None = None,
    landing: str | Path | None = None,
) -> SessionTarget:
    """Return the upload target of a spooled session.

    Explicit `broker_url` or `landing` arguments win over the destination recorded in
    the session's `spool.json` when it was started.

    Raises:
        CaptureError: neither is given nor recorded.
    """
    if landing is None and broker_url is None:
        landing = session.destination.get("landing")
        broker_url = session.destination.get("broker_url")
    if landing is not None:
        return LocalBroker(landing).target(session.opened)
    if broker_url is not None:
        client = HttpBrokerClient(broker_url, function_key=broker_key)
        return BlobTarget(client, session.opened, options)
    raise CaptureError(
        f"session {session.session_id!r} has no upload destination: pass a broker URL or a "
        "landing folder"
    )


def _send(
    session: SpoolSession,
    target: SessionTarget,
    files: Sequence[SpoolFile],
    state: UploadState,
    device_end: dt.datetime,
    progress: UploadProgress,
    stats: UploadStats,
) -> str:
    try:
        target.prepare([file for file in files if not is_in_place(file, state)])
    except SessionCompleteError:
        logger.info(
            "the landing has %s for session %s already; marking it uploaded",
            COMPLETE_FILE,
            session.session_id,
        )
        return "already uploaded"
    entries = [target.upload_file(file, state, progress, stats) for file in files]
    manifest = CompletionManifest(session.session_id, device_end, tuple(entries))
    target.write_completion(manifest)
    return "uploaded"


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
