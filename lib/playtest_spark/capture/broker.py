"""The session broker: opens sessions and issues one SAS URL per blob.

A flat-namespace storage account has no SAS scoped to a directory, so the broker signs
each blob on its own, with create and write permission only. The device cannot read,
list or delete anything, nor write outside the blobs it was given. Block uploads need the
write permission, which is why create alone does not do.

The HTTP layer (the Azure Function in `broker/function_app.py`, or `devserver` on a
laptop) only passes request bodies to `handle_open_session` and `handle_upload_urls`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
    UserDelegationKey,
    generate_blob_sas,
)

from playtest_spark.capture.errors import (
    FileTooLargeError,
    RequestFieldError,
    RequestTooLargeError,
    SessionCompleteError,
    SessionNotFoundError,
)
from playtest_spark.capture.session import (
    FileRequest,
    OpenedSession,
    SessionRequest,
    UploadGrant,
    build_session_manifest,
    decode_json_body,
    new_session_id,
    parse_file_requests,
    parse_session_date,
    parse_session_id,
)
from playtest_spark.errors import CaptureError, ConfigError
from playtest_spark.manifest import COMPLETE_FILE, SESSION_FILE, session_prefix

logger = logging.getLogger(__name__)

DEFAULT_CONTAINER = "landing"
DEFAULT_SAS_MINUTES = 60
# A user delegation key, and so every SAS signed with it, is valid for at most 7 days.
MAX_SAS_TTL = dt.timedelta(days=7)
DEFAULT_MAX_BODY_BYTES = 256 * 1024
# Lifetime requested for a user delegation key. One key signs every SAS until it nears expiry.
DELEGATION_KEY_LIFETIME = dt.timedelta(hours=6)
# Start the key a little in the past, so that clock skew between hosts does not void it.
CLOCK_SKEW = dt.timedelta(minutes=5)
# Attempts at a fresh session id when `session.json` already exists (64 random bits each).
SESSION_ID_ATTEMPTS = 3

ENV_CONTAINER = "PLAYTEST_BROKER_CONTAINER"
ENV_CONNECTION_STRING = "PLAYTEST_BROKER_CONNECTION_STRING"
ENV_ACCOUNT_URL = "PLAYTEST_BROKER_ACCOUNT_URL"
ENV_CLIENT_ID = "AZURE_CLIENT_ID"
ENV_SAS_MINUTES = "PLAYTEST_BROKER_SAS_MINUTES"
ENV_MAX_FILE_BYTES = "PLAYTEST_BROKER_MAX_FILE_BYTES"


def utc_now() -> dt.datetime:
    """Return the current time in UTC."""
    return dt.datetime.now(dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class BrokerSettings:
    """Settings of the broker, read from the Function App's application settings.

    Attributes:
        container: Container of the landing.
        connection_string: Connection string with an account key (Azurite, or an
            account where shared keys are allowed). When set, SAS tokens are signed with
            the account key.
        account_url: `https://<account>.blob.core.windows.net`. Used when no connection
            string is set: the broker authenticates with its managed identity and signs
            with a user delegation key.
        managed_identity_client_id: Client id of a user-assigned managed identity, or None
            selects the system-assigned one.
        sas_ttl: How long an issued SAS URL stays valid.
        max_file_bytes: Largest file size the broker issues a URL for, or None for no limit
            beyond the block blob's own.
        max_body_bytes: Largest request body accepted.
    """

    container: str = DEFAULT_CONTAINER
    connection_string: str | None = dataclasses.field(default=None, repr=False)
    account_url: str | None = None
    managed_identity_client_id: str | None = None
    sas_ttl: dt.timedelta = dt.timedelta(minutes=DEFAULT_SAS_MINUTES)
    max_file_bytes: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not self.connection_string and not self.account_url:
            raise ConfigError(
                f"the broker has no storage: set {ENV_CONNECTION_STRING} (account key) or "
                f"{ENV_ACCOUNT_URL} (managed identity)"
            )
        if not dt.timedelta(seconds=1) <= self.sas_ttl <= MAX_SAS_TTL:
            raise ConfigError(
                f"invalid SAS lifetime {self.sas_ttl}: use 1 second to 7 days "
                f"({ENV_SAS_MINUTES} in minutes)"
            )
        if self.max_file_bytes is not None and self.max_file_bytes < 1:
            raise ConfigError(f"invalid max_file_bytes {self.max_file_bytes!r}: use >= 1")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> BrokerSettings:
        """Read the settings from environment variables (`PLAYTEST_BROKER_*`).

        Raises:
            ConfigError: no storage is configured, or a number is invalid.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "container": environ.get(ENV_CONTAINER) or DEFAULT_CONTAINER,
            "connection_string": environ.get(ENV_CONNECTION_STRING) or None,
            "account_url": environ.get(ENV_ACCOUNT_URL) or None,
            "managed_identity_client_id": environ.get(ENV_CLIENT_ID) or None,
        }
        minutes = environ.get(ENV_SAS_MINUTES)
        if minutes:
            values["sas_ttl"] = dt.timedelta(minutes=_parse_number(ENV_SAS_MINUTES, minutes))
        max_file_bytes = environ.get(ENV_MAX_FILE_BYTES)
        if max_file_bytes:
            values["max_file_bytes"] = int(_parse_number(ENV_MAX_FILE_BYTES, max_file_bytes))
        return cls(**values)


class SasSigner(Protocol):
    """Signs a SAS token for one blob, allowing create and write only."""

    def sign(self, container: str, blob_name: str, expiry: dt.datetime) -> str:
        """Return the SAS query string (without `?`) for `blob_name`."""
        ...


class AccountKeySigner:
    """Signs with the storage account key (Azurite, or accounts that allow shared keys)."""

    def __init__(self, account_name: str, account_key: str, https_only: bool) -> None:
        self._account_name = account_name
        self._account_key = account_key
        self._protocol = "https" if https_only else None

    def sign(self, container: str, blob_name: str, expiry: dt.datetime) -> str:
        return generate_blob_sas(
            account_name=self._account_name,
            container_name=container,
            blob_name=blob_name,
            account_key=self._account_key,
            permission=BlobSasPermissions(create=True, write=True),
            expiry=expiry,
            protocol=self._protocol,
        )


class UserDelegationSigner:
    """Signs with a user delegation key obtained through the broker's Entra ID identity.

    The identity needs a data role that allows
    `Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action`
    (Storage Blob Data Contributor does) and write access to the container.

    NOTE: the tests build this signer but never sign with it: Azurite issues no user
    delegation keys over plain HTTP, and the tests reach no real storage account.
    """

    def __init__(
        self, service: BlobServiceClient, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self._service = service
        self._clock = clock
        self._key: UserDelegationKey | None = None
        self._key_expiry: dt.datetime | None = None
        self._lock = threading.Lock()

    def sign(self, container: str, blob_name: str, expiry: dt.datetime) -> str:
        return generate_blob_sas(
            account_name=self._service.account_name,
            container_name=container,
            blob_name=blob_name,
            user_delegation_key=self._key_for(expiry),
            permission=BlobSasPermissions(create=True, write=True),
            expiry=expiry,
            protocol="https",
        )

    def _key_for(self, expiry: dt.datetime) -> UserDelegationKey:
        with self._lock:
            if self._key is None or self._key_expiry is None or self._key_expiry < expiry:
                now = self._clock()
                key_expiry = max(now + DELEGATION_KEY_LIFETIME, expiry)
                logger.info("requesting a user delegation key valid until %s", key_expiry)
                self._key = self._service.get_user_delegation_key(now - CLOCK_SKEW, key_expiry)
                self._key_expiry = key_expiry
            return self._key


class Broker:
    """Opens sessions in the landing container and issues per-blob SAS URLs."""

    def __init__(
        self,
        container: ContainerClient,
        signer: SasSigner,
        settings: BrokerSettings,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.container = container
        self.signer = signer
        self.settings = settings
        self._clock = clock

    @classmethod
    def from_settings(
        cls, settings: BrokerSettings, clock: Callable[[], dt.datetime] = utc_now
    ) -> Broker:
        """Build a broker, with account-key signing or a managed identity.

        Raises:
            ConfigError: the connection string has no account key.
        """
        if settings.connection_string:
            service = BlobServiceClient.from_connection_string(settings.connection_string)
            credential = service.credential
            account_key = getattr(credential, "account_key", None)
            if not account_key:
                raise ConfigError(
                    f"{ENV_CONNECTION_STRING} has no AccountKey: use an account-key "
                    f"connection string, or set {ENV_ACCOUNT_URL} for a managed identity"
                )
            signer: SasSigner = AccountKeySigner(
                service.account_name, account_key, https_only=service.scheme == "https"
            )
        else:
            # Imported here: only the Azure deployment needs azure-identity at run time.
            from azure.identity import ManagedIdentityCredential

            assert settings.account_url is not None  # guaranteed by BrokerSettings
            identity = ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
            service = BlobServiceClient(settings.account_url, credential=identity)
            signer = UserDelegationSigner(service, clock)
        return cls(service.get_container_client(settings.container), signer, settings, clock)

    def open_session(self, request: SessionRequest) -> OpenedSession:
        """Make a session id and write the session's `session.json`.

        Raises:
            CaptureError: every attempted id already existed.
            azure.core.exceptions.AzureError: Blob Storage failed.
        """
        for _ in range(SESSION_ID_ATTEMPTS):
            now = self._clock()
            opened = OpenedSession(new_session_id(now), now.astimezone(dt.timezone.utc).date(), now)
            manifest = build_session_manifest(request, opened.session_id, now)
            blob = self.container.get_blob_client(f"{opened.directory}/{SESSION_FILE}")
            try:
                blob.upload_blob(
                    manifest.to_json().encode("utf-8"),
                    overwrite=False,
                    content_settings=ContentSettings(content_type="application/json"),
                )
            except ResourceExistsError:
                logger.warning("session id %s exists already; making another", opened.session_id)
                continue
            logger.info(
                "opened session %s in %s (game %r, build %r)",
                opened.session_id,
                opened.directory,
                request.game,
                request.build,
            )
            return opened
        raise CaptureError(
            f"could not make a new session id in {SESSION_ID_ATTEMPTS} attempts: every one "
            "existed already; check the broker's random source"
        )

    def issue_upload_urls(
        self, session_id: str, session_date: dt.date, files: Sequence[FileRequest]
    ) -> UploadGrant:
        """Return a create-and-write SAS URL for each file of an open session.

        Raises:
            SessionNotFoundError: the session has no `session.json` on that date.
            SessionCompleteError: the session's `_complete.json` exists.
            FileTooLargeError: a file is above `settings.max_file_bytes`.
            azure.core.exceptions.AzureError: Blob Storage failed.
        """
        directory = session_prefix(session_date, session_id)
        limit = self.settings.max_file_bytes
        for index, item in enumerate(files):
            if limit is not None and item.size > limit:
                raise FileTooLargeError(
                    f"file {item.path!r} has {item.size} bytes, above the broker's limit of "
                    f"{limit} bytes",
                    field=f"files[{index}].size",
                )
        if not self.container.get_blob_client(f"{directory}/{SESSION_FILE}").exists():
            raise SessionNotFoundError(
                f"session {session_id!r} was not found on {session_date.isoformat()}: "
                "open it first, and send the session_date that the broker returned"
            )
        if self.container.get_blob_client(f"{directory}/{COMPLETE_FILE}").exists():
            raise SessionCompleteError(
                f"session {session_id!r} is complete ({COMPLETE_FILE} exists): "
                "it accepts no more files; open a new session"
            )
        expiry = self._clock() + self.settings.sas_ttl
        urls: dict[str, str] = {}
        for item in files:
            blob_name = f"{directory}/{item.path}"
            token = self.signer.sign(self.container.container_name, blob_name, expiry)
            urls[item.path] = f"{self.container.get_blob_client(blob_name).url}?{token}"
        logger.info(
            "issued %d upload URL(s) for session %s, valid until %s",
            len(urls),
            session_id,
            expiry.isoformat(),
        )
        return UploadGrant(urls=urls, expires_utc=expiry)


@dataclasses.dataclass(frozen=True)
class BrokerResponse:
    """Status and JSON body of a response, independent of the HTTP framework."""

    status: int
    body: Mapping[str, Any]

    def body_bytes(self) -> bytes:
        """Return the body encoded as UTF-8 JSON."""
        return json.dumps(self.body).encode("utf-8")


def handle_open_session(broker: Broker, body: bytes) -> BrokerResponse:
    """Handle `POST /sessions`: 201 with the opened session, or an error status."""
    return _guarded("open a session", lambda: _open_session(broker, body))


def handle_upload_urls(broker: Broker, session_id: str, body: bytes) -> BrokerResponse:
    """Handle `POST /sessions/{session_id}/upload-urls`: 200 with the URLs, or an error."""
    return _guarded(
        f"issue upload URLs for {session_id!r}",
        lambda: _upload_urls(broker, session_id, body),
    )


def error_response(
    status: int, code: str, message: str, field: str | None = None
) -> BrokerResponse:
    """Return an error response: `{"error": message, "code": code, "field": field}`."""
    body: dict[str, Any] = {"error": message, "code": code}
    if field is not None:
        body["field"] = field
    return BrokerResponse(status, body)


def _open_session(broker: Broker, body: bytes) -> BrokerResponse:
    request = SessionRequest.from_body(decode_json_body(body, broker.settings.max_body_bytes))
    return BrokerResponse(201, broker.open_session(request).to_body())


def _upload_urls(broker: Broker, session_id: str, body: bytes) -> BrokerResponse:
    session_id = parse_session_id(session_id)
    decoded = decode_json_body(body, broker.settings.max_body_bytes)
    if not isinstance(decoded, dict):
        raise RequestFieldError("body", "expected a JSON object with session_date and files")
    unknown = sorted(set(decoded) - {"session_date", "files"})
    if unknown:
        raise RequestFieldError(unknown[0], "unknown field; expected session_date and files")
    session_date = parse_session_date(decoded.get("session_date"))
    files = parse_file_requests(decoded.get("files"), broker.settings.max_file_bytes)
    grant = broker.issue_upload_urls(session_id, session_date, files)
    return BrokerResponse(200, grant.to_body())


def _guarded(action: str, work: Callable[[], BrokerResponse]) -> BrokerResponse:
    try:
        return work()
    except RequestFieldError as exc:
        logger.info("rejected a request to %s: %s", action, exc)
        return error_response(400, "invalid_field", str(exc), exc.field)
    except RequestTooLargeError as exc:
        logger.info("rejected a request to %s: %s", action, exc)
        return error_response(413, "body_too_large", str(exc))
    except FileTooLargeError as exc:
        logger.info("rejected a request to %s: %s", action, exc)
        return error_response(400, "file_too_large", str(exc), exc.field)
    except SessionNotFoundError as exc:
        return error_response(404, "session_not_found", str(exc))
    except SessionCompleteError as exc:
        return error_response(409, "session_complete", str(exc))
    except AzureError as exc:
        logger.exception("Blob Storage failed while trying to %s", action)
        return error_response(
            503,
            "storage_unavailable",
            f"the landing storage failed ({type(exc).__name__}); retry later",
        )
    except CaptureError as exc:
        logger.error("failed to %s: %s", action, exc)
        return error_response(500, "broker_failed", str(exc))


def _parse_number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError as exc:
        raise ConfigError(f"invalid {name} {value!r}: expected a number") from exc
