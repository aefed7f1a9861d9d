"""HTTP client of the session broker, for the device.

It uses only the standard library. The broker's base URL is the Function App's API root,
such as `https://<app>.azurewebsites.net/api`. Plain HTTP is accepted only on loopback,
for a broker run on the same machine during development.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from playtest_spark.capture.errors import (
    BrokerAuthorizationError,
    BrokerUnavailableError,
    FileTooLargeError,
    RequestFieldError,
    RequestTooLargeError,
    SessionCompleteError,
    SessionNotFoundError,
)
from playtest_spark.capture.session import (
    MAX_FILES_PER_REQUEST,
    FileRequest,
    OpenedSession,
    SessionRequest,
    UploadGrant,
    file_requests_body,
)
from playtest_spark.errors import CaptureError, ConfigError
from playtest_spark.ids import validate_session_id

logger = logging.getLogger(__name__)

FUNCTION_KEY_HEADER = "x-functions-key"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class HttpBrokerClient:
    """Opens sessions and requests upload URLs from the broker over HTTPS.

    Args:
        base_url: The broker's API root, to which `/sessions` is appended.
        function_key: The Function App's key, sent as `x-functions-key`, or None when
            the broker needs none.
        timeout: Seconds to wait for a connection or a response.
        attempts: Tries per request on connection failures, timeouts and 5xx.
        sleep: Function that waits between tries, replaced in tests.
    """

    def __init__(
        self,
        base_url: str,
        function_key: str | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = check_broker_url(base_url)
        self._function_key = function_key
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HttpBrokerClient({self.base_url!r})"

    @property
    def destination(self) -> dict[str, str]:
        """Where a spooled session uploads, as stored in its `spool.json`."""
        return {"broker_url": self.base_url}

    def open_session(self, request: SessionRequest) -> OpenedSession:
        """Open a session.

        Raises:
            RequestFieldError: the broker rejected a field of the request.
            BrokerUnavailableError: the broker could not be reached, after retries.
        """
        body = self._post("/sessions", request.to_body())
        return OpenedSession.from_body(body)

    def issue_upload_urls(
        self, session_id: str, session_date: dt.date, files: Sequence[FileRequest]
    ) -> UploadGrant:
        """Request SAS URLs for files of a session, in batches the broker accepts.

        Raises:
            InvalidSessionIdError: the session id is invalid. Nothing is sent.
            SessionNotFoundError, SessionCompleteError, FileTooLargeError,
            RequestFieldError, BrokerUnavailableError: the broker's response.
        """
        session_id = validate_session_id(session_id)
        urls: dict[str, str] = {}
        expiry: dt.datetime | None = None
        for start in range(0, len(files), MAX_FILES_PER_REQUEST):
            batch = files[start : start + MAX_FILES_PER_REQUEST]
            body = {"session_date": session_date.isoformat(), "files": file_requests_body(batch)}
            grant = UploadGrant.from_body(
                self._post(f"/sessions/{urllib.parse.quote(session_id)}/upload-urls", body)
            )
            urls.update(grant.urls)
            expiry = grant.expires_utc if expiry is None else min(expiry, grant.expires_utc)
        if expiry is None:
            raise ValueError("files is empty: request URLs for at least one file")
        return UploadGrant(urls=urls, expires_utc=expiry)

    def _post(self, path: str, body: dict[str, Any]) -> object:
        url = self.base_url + path
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._function_key:
            headers[FUNCTION_KEY_HEADER] = self._function_key
        for attempt in range(1, self._attempts + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:
                    return json.loads(response.read(MAX_RESPONSE_BYTES))
            except urllib.error.HTTPError as exc:
                error_body = _error_body(exc)
                if exc.code not in RETRYABLE_STATUSES:
                    raise _broker_error(exc.code, error_body, url) from exc
                failure = f"HTTP {exc.code}: {error_body.get('error', exc.reason)}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                failure = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            except ValueError as exc:
                raise BrokerUnavailableError(
                    f"the broker at {url} sent invalid JSON ({exc})"
                ) from exc
            if attempt == self._attempts:
                raise BrokerUnavailableError(
                    f"the broker at {url} failed {attempt} time(s), last with {failure}; "
                    "the session stays in the spool: run the upload again later"
                )
            delay = min(30.0, 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            logger.warning(
                "broker request %s failed (try %d of %d: %s); retrying in %.1f s",
                url,
                attempt,
                self._attempts,
                failure,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")


def check_broker_url(base_url: str) -> str:
    """Return the broker URL without a trailing slash, requiring HTTPS off loopback.

    Raises:
        ConfigError: the URL is not http(s), has no host, or is plain HTTP to a host
            other than loopback.
    """
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"invalid broker URL {base_url!r}: expected https://<host>/api")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"invalid broker URL {base_url!r}: use https; plain http is allowed only on "
            "127.0.0.1 or localhost"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"invalid broker URL {base_url!r}: remove the query or fragment")
    return base_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_body(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body = json.loads(exc.read(MAX_RESPONSE_BYTES) or b"{}")
    except (ValueError, OSError):
        return {}
    return body if isinstance(body, dict) else {}


def _broker_error(status: int, body: dict[str, Any], url: str) -> CaptureError:
    message = str(body.get("error") or f"HTTP {status} from {url}")
    code = body.get("code")
    field = body.get("field")
    if code == "file_too_large":
        return FileTooLargeError(message, field=field)
    if status == 400:
        return RequestFieldError(str(field or "body"), message.removeprefix(f"{field}: "))
    if status in (401, 403):
        return BrokerAuthorizationError(
            f"the broker at {url} rejected the request ({status}): check the function key "
            "(PLAYTEST_BROKER_KEY)"
        )
    if status == 404 and code == "session_not_found":
        return SessionNotFoundError(message)
    if status == 409:
        return SessionCompleteError(message)
    if status == 413:
        return RequestTooLargeError(message)
    return CaptureError(f"the broker at {url} returned {status}: {message}")
