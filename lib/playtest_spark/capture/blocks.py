"""Resumable block uploads of one file to one block blob.

A file is cut into blocks of a size chosen from the file's size, staged in parallel
(each with its MD5, which Blob Storage checks), and committed as one block list. The
upload state records every confirmed block, so that a run killed mid-file stages only
the missing blocks next time. The SHA-256 of the whole file is computed while the
blocks are read, and stored in the blob's metadata as `sha256`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import hashlib
import logging
import math
import mimetypes
import random
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Protocol, TypeVar

import requests
import requests.adapters
from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobBlock, BlobClient, ContentSettings

from playtest_spark.capture.errors import (
    FileTooLargeError,
    SasExpiredError,
    UploadAuthorizationError,
    UploadError,
    UploadServiceError,
    UploadTimeoutError,
)
from playtest_spark.capture.state import FileUploadState, SpoolFile, UploadState
from playtest_spark.manifest import InventoryEntry, parse_timestamp

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# Azure recommends blocks of at least 4 MiB for throughput on block blobs.
MIN_BLOCK_SIZE = 4 * MIB
# Every staging worker holds one block in memory, so blocks stay at most this large.
MAX_BLOCK_SIZE = 100 * MIB
# A block blob has at most 50,000 committed blocks.
MAX_BLOCKS = 50_000
MAX_FILE_BYTES = MAX_BLOCKS * MAX_BLOCK_SIZE
# Statuses worth a retry: request timeout, throttling, and transient server errors.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CONTENT_TYPES = {".jsonl": "application/x-ndjson", ".log": "text/plain", ".csv": "text/csv"}

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class UploadOptions:
    """Tuning of uploads.

    Attributes:
        max_concurrency: Blocks staged at once. Each one is held in memory while it is sent.
        block_size: Fixed block size in bytes, or None to choose it from the file size.
        connection_timeout: Seconds to wait for a connection to Blob Storage.
        read_timeout: Seconds without progress, while sending or waiting for the response,
            before a request counts as timed out. Generous, for slow home connections.
        attempts: Tries per request before an upload fails (timeouts and 5xx only).
        initial_backoff: Seconds before the first retry. The wait doubles on each retry.
        max_backoff: Maximum wait between two tries, in seconds.
        max_file_bytes: Largest file accepted. Larger ones fail with FileTooLargeError.
    """

    max_concurrency: int = 4
    block_size: int | None = None
    connection_timeout: float = 20.0
    read_timeout: float = 120.0
    attempts: int = 6
    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    max_file_bytes: int = MAX_FILE_BYTES

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"invalid max_concurrency {self.max_concurrency!r}: use >= 1")
        if self.block_size is not None and not 1 <= self.block_size <= MAX_BLOCK_SIZE:
            raise ValueError(
                f"invalid block_size {self.block_size!r}: use 1 to {MAX_BLOCK_SIZE} bytes"
            )
        if self.attempts < 1:
            raise ValueError(f"invalid attempts {self.attempts!r}: use >= 1")

    def backoff(self, attempt: int) -> float:
        """Return the wait before try `attempt + 1`, with jitter so clients spread out."""
        base = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)


class UploadProgress(Protocol):
    """Receiver of progress while files upload. `advance` is called from worker threads."""

    def file_started(self, path: str, size: int) -> None: ...

    def advance(self, path: str, nbytes: int) -> None: ...

    def file_done(self, path: str) -> None: ...


class NullProgress:
    """Progress receiver that ignores everything."""

    def file_started(self, path: str, size: int) -> None:
        pass

    def advance(self, path: str, nbytes: int) -> None:
        pass

    def file_done(self, path: str) -> None:
        pass


@dataclasses.dataclass
class UploadStats:
    """Counters of one upload run, safe to update from worker threads."""

    files_sent: int = 0
    files_skipped: int = 0
    blocks_staged: int = 0
    blocks_reused: int = 0
    bytes_sent: int = 0
    restarts: int = 0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def choose_block_size(file_size: int, minimum: int = MIN_BLOCK_SIZE) -> int:
    """Return a block size that keeps the file within the 50,000-block limit.

    The size is `minimum`, or the smallest whole number of MiB that fits the file in
    `MAX_BLOCKS` blocks when the file is larger than `MAX_BLOCKS * minimum`.

    Raises:
        FileTooLargeError: the file needs blocks above `MAX_BLOCK_SIZE`.
    """
    needed = math.ceil(file_size / MAX_BLOCKS)
    size = max(minimum, math.ceil(needed / MIB) * MIB)
    if size > MAX_BLOCK_SIZE:
        raise FileTooLargeError(
            f"a file of {file_size} bytes needs blocks of {size} bytes; the uploader allows "
            f"at most {MAX_FILE_BYTES} bytes ({MAX_BLOCKS} blocks of {MAX_BLOCK_SIZE} bytes)"
        )
    return size


def block_id(token: str, index: int) -> str:
    """Return the id of block `index`. All block ids of one blob must have the same length."""
    return f"{token}-{index:06d}"


def make_transport(options: UploadOptions) -> RequestsTransport:
    """Return an HTTP transport with the upload timeouts, to share between blob clients.

    Its connection pool keeps a connection per staging worker. Closing a client that
    uses it closes it, so close it once, after the last client.
    """
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(10, options.max_concurrency))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(
        session=session,
        session_owner=True,
        connection_timeout=options.connection_timeout,
        read_timeout=options.read_timeout,
    )


def blob_client_from_url(url: str, options: UploadOptions, **kwargs: object) -> BlobClient:
    """Return a client for a blob SAS URL, with the upload timeouts and no SDK retries.

    The SDK's own retries are off: `call_with_retries` retries and logs each one.
    Pass `transport` to share one connection pool between clients.
    """
    return BlobClient.from_blob_url(
        url,
        retry_total=0,
        connection_timeout=options.connection_timeout,
        read_timeout=options.read_timeout,
        **kwargs,
    )


def sas_expiry_of(url: str) -> dt.datetime | None:
    """Return the expiry (`se`) of a SAS URL, or None when it has none."""
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("se")
    if not values:
        return None
    try:
        return parse_timestamp(values[0], "se")
    except ValueError:
        return None


def call_with_retries(
    action: Callable[[], T],
    description: str,
    options: UploadOptions,
    sas_expiry: dt.datetime | None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run one request, retrying timeouts, connection failures and transient statuses.

    Raises:
        SasExpiredError: Blob Storage rejected the SAS after its expiry time.
        UploadAuthorizationError: Blob Storage rejected the SAS for another reason.
        FileTooLargeError: Blob Storage returned 413.
        UploadTimeoutError: the last try timed out.
        UploadServiceError: the last try failed with a 5xx or a connection error.
        azure.core.exceptions.HttpResponseError: any other status, for the caller.
    """
    for attempt in range(1, options.attempts + 1):
        try:
            return action()
        except HttpResponseError as exc:
            status = exc.status_code
            if status in (401, 403):
                raise authorization_error(exc, description, sas_expiry) from exc
            if status == 413:
                raise FileTooLargeError(
                    f"Blob Storage rejected {description} as too large (413): {_reason(exc)}"
                ) from exc
            if status not in RETRYABLE_STATUSES and not _is_md5_mismatch(exc):
                raise
            failure: Exception = exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            failure = exc
        if attempt == options.attempts:
            raise _final_error(failure, description, attempt) from failure
        delay = options.backoff(attempt)
        logger.warning(
            "%s failed (try %d of %d: %s); retrying in %.1f s",
            description,
            attempt,
            options.attempts,
            _reason(failure),
            delay,
        )
        sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def authorization_error(
    exc: HttpResponseError, description: str, sas_expiry: dt.datetime | None
) -> UploadAuthorizationError:
    """Return the error for a 401 or 403: an expired SAS, or another authorisation failure."""
    now = dt.datetime.now(dt.timezone.utc)
    if sas_expiry is not None and now >= sas_expiry:
        return SasExpiredError(
            f"the SAS URL for {description} expired at {sas_expiry.isoformat()}; run the "
            "upload again to get new URLs from the broker"
        )
    return UploadAuthorizationError(
        f"Blob Storage rejected the SAS URL for {description} ({exc.status_code}, "
        f"{_reason(exc)}); check that the broker signs for this storage account and container"
    )


def upload_file_blocks(
    client: BlobClient,
    file: SpoolFile,
    state: UploadState,
    options: UploadOptions,
    executor: concurrent.futures.Executor,
    progress: UploadProgress,
    stats: UploadStats,
) -> InventoryEntry:
    """Upload one spooled file to its blob, resuming from the blocks already staged.

    When the staged blocks are gone (Blob Storage drops uncommitted blocks after 7
    days, or a commit replaced them), the commit fails, and the file restarts cleanly
    under a new block-id token, once.

    Raises:
        FileTooLargeError: the file is above `options.max_file_bytes` or needs more
            blocks than a blob allows.
        UploadError: Blob Storage failed. The message names the cause.
        OSError: the file could not be read, or changed while it was read.
    """
    if file.size > options.max_file_bytes:
        raise FileTooLargeError(
            f"{file.path} has {file.size} bytes, above the limit of {options.max_file_bytes} bytes"
        )
    sas_expiry = sas_expiry_of(client.url)
    entry = _resume_or_start(file, state, options)
    if entry.committed and entry.sha256:
        stats.add(files_skipped=1)
        return InventoryEntry(file.path, entry.size, entry.sha256)

    progress.file_started(file.path, file.size)
    for clean_restart in (False, True):
        if clean_restart:
            logger.warning("restarting %s cleanly: its staged blocks are gone", file.path)
            stats.add(restarts=1)
            entry = _start_entry(file, state, options)
            progress.file_started(file.path, file.size)
        _confirm_staged_blocks(client, file, entry)
        digest = _stage_missing_blocks(
            client, file, entry, state, options, executor, progress, stats, sas_expiry
        )
        try:
            _commit(client, file, entry, digest, options, sas_expiry)
        except HttpResponseError as exc:
            if _error_code(exc) != "InvalidBlockList" or clean_restart:
                raise UploadServiceError(
                    f"committing {file.path} failed ({exc.status_code}, {_reason(exc)})"
                ) from exc
            continue
        entry.committed = True
        entry.sha256 = digest
        state.save()
        stats.add(files_sent=1)
        progress.file_done(file.path)
        return InventoryEntry(file.path, entry.size, digest)
    raise AssertionError("unreachable: the second pass returns or raises")


def content_type_of(path: str) -> str:
    """Return the MIME type stored with a blob, from the file's extension."""
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def _resume_or_start(
    file: SpoolFile, state: UploadState, options: UploadOptions
) -> FileUploadState:
    entry = state.files.get(file.path)
    if entry is not None and entry.size == file.size and entry.mtime_ns == file.mtime_ns:
        if entry.staged and not entry.committed:
            logger.info("resuming %s: %d block(s) staged earlier", file.path, len(entry.staged))
        return entry
    if entry is not None:
        logger.warning("%s changed since its upload started; restarting it", file.path)
    return _start_entry(file, state, options)


def _start_entry(file: SpoolFile, state: UploadState, options: UploadOptions) -> FileUploadState:
    block_size = options.block_size or choose_block_size(file.size)
    if math.ceil(file.size / block_size) > MAX_BLOCKS:
        raise FileTooLargeError(
            f"{file.path} has {file.size} bytes: with blocks of {block_size} bytes it needs "
            f"more than {MAX_BLOCKS} blocks; use a larger block size"
        )
    entry = FileUploadState(
        size=file.size,
        mtime_ns=file.mtime_ns,
        block_size=block_size,
        token=secrets.token_hex(8),
    )
    state.files[file.path] = entry
    state.save()
    return entry


def _confirm_staged_blocks(client: BlobClient, file: SpoolFile, entry: FileUploadState) -> None:
    """Keep only the recorded blocks that Blob Storage still lists, where it may be asked.

    A create-and-write SAS may not read the block list (403): the local record is then
    trusted, and a commit failure restarts the file.
    """
    if not entry.staged:
        return
    try:
        committed, uncommitted = client.get_block_list("all")
    except HttpResponseError as exc:
        logger.debug("cannot read the block list of %s (%s)", file.path, exc.status_code)
        return
    listed = {block.id: block.size for block in [*committed, *uncommitted]}
    kept = set()
    for index in entry.staged:
        expected = min(entry.block_size, entry.size - index * entry.block_size)
        if listed.get(block_id(entry.token, index)) == expected:
            kept.add(index)
    if kept != entry.staged:
        logger.info(
            "%s: %d of %d recorded block(s) are still staged",
            file.path,
            len(kept),
            len(entry.staged),
        )
    entry.staged = kept


def _stage_missing_blocks(
    client: BlobClient,
    file: SpoolFile,
    entry: FileUploadState,
    state: UploadState,
    options: UploadOptions,
    executor: concurrent.futures.Executor,
    progress: UploadProgress,
    stats: UploadStats,
    sas_expiry: dt.datetime | None,
) -> str:
    """Read the file once, hashing every block and staging those not yet staged."""
    digest = hashlib.sha256()
    block_count = math.ceil(entry.size / entry.block_size)
    in_flight: set[concurrent.futures.Future[None]] = set()

    def stage(index: int, data: bytes) -> None:
        description = f"block {index} of {file.path}"
        call_with_retries(
            lambda: client.stage_block(
                block_id(entry.token, index), data, length=len(data), validate_content=True
            ),
            description,
            options,
            sas_expiry,
        )
        state.mark_staged(file.path, index)
        stats.add(blocks_staged=1, bytes_sent=len(data))
        progress.advance(file.path, len(data))

    try:
        with open(file.local_path, "rb") as reader:
            for index in range(block_count):
                data = reader.read(entry.block_size)
                expected = min(entry.block_size, entry.size - index * entry.block_size)
                if len(data) != expected:
                    raise OSError(
                        f"{file.local_path} changed while it was uploaded: block {index} has "
                        f"{len(data)} bytes, expected {expected}; run the upload again"
                    )
                digest.update(data)
                if index in entry.staged:
                    stats.add(blocks_reused=1)
                    progress.advance(file.path, len(data))
                    continue
                if len(in_flight) >= options.max_concurrency:
                    done, in_flight = concurrent.futures.wait(
                        in_flight, return_when=concurrent.futures.FIRST_COMPLETED
                    )
                    for future in done:
                        future.result()
                in_flight.add(executor.submit(stage, index, data))
            if reader.read(1):
                raise OSError(f"{file.local_path} grew while it was uploaded; run the upload again")
        for future in concurrent.futures.as_completed(in_flight):
            future.result()
    finally:
        for future in in_flight:
            future.cancel()
        concurrent.futures.wait(in_flight)
        state.save()
    return digest.hexdigest()


def _commit(
    client: BlobClient,
    file: SpoolFile,
    entry: FileUploadState,
    digest: str,
    options: UploadOptions,
    sas_expiry: dt.datetime | None,
) -> None:
    blocks = [
        BlobBlock(block_id(entry.token, index))
        for index in range(math.ceil(entry.size / entry.block_size))
    ]
    call_with_retries(
        lambda: client.commit_block_list(
            blocks,
            content_settings=ContentSettings(content_type=content_type_of(file.path)),
            metadata={"sha256": digest, "size": str(entry.size)},
        ),
        f"commit of {file.path}",
        options,
        sas_expiry,
    )
    logger.info("committed %s (%d bytes, %d blocks)", file.path, entry.size, len(blocks))


def _is_md5_mismatch(exc: HttpResponseError) -> bool:
    # Blob Storage returns 400 Md5Mismatch, and Azurite 400 InvalidOperation "contentMD5".
    return exc.status_code == 400 and (
        _error_code(exc) == "Md5Mismatch" or "contentmd5" in str(exc.message or "").lower()
    )


def _error_code(exc: HttpResponseError) -> str | None:
    # Storage errors carry `error_code`, but other HttpResponseErrors may lack it.
    code = getattr(exc, "error_code", None)
    if not code:
        return None
    return str(getattr(code, "value", code))


def _final_error(failure: Exception, description: str, attempts: int) -> UploadError:
    reason = _reason(failure)
    if isinstance(failure, (ServiceRequestTimeoutError, ServiceResponseTimeoutError)) or (
        "timed out" in reason.lower() or "timeout" in reason.lower()
    ):
        return UploadTimeoutError(
            f"{description} timed out {attempts} time(s) ({reason}); check the connection "
            "and run the upload again: it resumes where it stopped"
        )
    return UploadServiceError(
        f"{description} failed {attempts} time(s), last with {reason}; run the upload again "
        "later: it resumes where it stopped"
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, HttpResponseError):
        code = _error_code(exc) or exc.reason or ""
        first_line = str(exc.message or "").splitlines()[0] if exc.message else ""
        return f"{exc.status_code} {code}: {first_line}".strip()
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
