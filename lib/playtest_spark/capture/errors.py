"""Errors of the capture client and the session broker.

Each one names its cause, so that a launcher can tell a player or a studio what to fix.
"""

from __future__ import annotations

from playtest_spark.errors import CaptureError


class RequestFieldError(CaptureError, ValueError):
    """A session request or an upload-URL request has a missing or invalid field.

    Attributes:
        field: Name of the offending field, such as `device_start` or `files[2].path`.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RequestTooLargeError(CaptureError, ValueError):
    """A request body is larger than the broker accepts."""


class SessionNotFoundError(CaptureError, LookupError):
    """The landing has no `session.json` for the session id and date."""


class SessionCompleteError(CaptureError):
    """The session's `_complete.json` exists, so it accepts no more files."""


class SessionClosedError(CaptureError):
    """The spooled session was sealed for upload and accepts no more files."""


class BrokerUnavailableError(CaptureError):
    """The broker could not be reached or returned a server error."""


class BrokerAuthorizationError(CaptureError):
    """The broker rejected the caller's function key."""


class UploadError(CaptureError):
    """An upload failed, and the session stays incomplete on the device."""


class UploadAuthorizationError(UploadError):
    """Blob Storage rejected the SAS URL for a reason other than its expiry."""


class SasExpiredError(UploadAuthorizationError):
    """The SAS URL of a blob expired before its upload finished."""


class UploadTimeoutError(UploadError):
    """Blob Storage did not respond in time, after every retry."""


class UploadServiceError(UploadError):
    """Blob Storage returned a server error, after every retry, or an unexpected status."""


class FileTooLargeError(UploadError):
    """A file is larger than a block blob or the broker's limit allows.

    Attributes:
        field: The request field that declared the size, when the broker rejected it.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
