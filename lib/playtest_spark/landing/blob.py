"""A landing in an Azure Blob Storage container (or Azurite), read with azure-storage-blob.

The job lists one date prefix at a time, so a listing never walks the whole history.

NOTE: Azurite and Azure Storage go through this same code. Only two things differ:
Azurite's URLs carry the account name in the path (`split_container_url`), and the tests
authenticate with Azurite's development key, while Azure uses `DefaultAzureCredential`
(a managed identity or service principal), which is not run here.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import IO
from urllib.parse import urlsplit

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.storage.blob import ContainerClient

from playtest_spark.errors import ConfigError, LandingError
from playtest_spark.landing.base import LandedObject, Landing, LandingSpec, parse_abfss

logger = logging.getLogger(__name__)

# Read granularity of `open()` streams: PyAV reads headers in small pieces.
RANGE_READ_BYTES = 4 * 1024 * 1024


def split_container_url(uri: str) -> tuple[str, str, str]:
    """Split a container URL into account URL, container and a path prefix.

    Azurite's URLs carry the account name as the first path segment
    (`http://127.0.0.1:10000/devstoreaccount1/<container>`); Azure's carry it in the host.
    """
    if uri.startswith(("abfss://", "abfs://")):
        return parse_abfss(uri)
    parts = urlsplit(uri)
    segments = [segment for segment in parts.path.split("/") if segment]
    path_style = parts.hostname in ("127.0.0.1", "localhost", "::1") or (
        parts.port is not None and parts.port in (10000, 10001)
    )
    needed = 2 if path_style else 1
    if len(segments) < needed:
        raise ConfigError(f"invalid landing URL {uri!r}: it names no container")
    account_path = "/" + segments[0] if path_style else ""
    account_url = f"{parts.scheme}://{parts.netloc}{account_path}"
    container = segments[needed - 1]
    prefix = "/".join(segments[needed:])
    return account_url, container, prefix


class BlobLanding(Landing):
    """Landing in a Blob Storage container, optionally below a path prefix."""

    def __init__(self, container: ContainerClient, prefix: str = "") -> None:
        self.container = container
        self.prefix = prefix.strip("/")

    @classmethod
    def from_spec(cls, spec: LandingSpec) -> BlobLanding:
        """Build the client from a spec: connection string, account key, SAS token or
        `DefaultAzureCredential`, in that order when `auth` is `auto`."""
        account_url, container_name, prefix = split_container_url(spec.uri)
        auth = spec.auth
        if auth == "auto":
            auth = (
                "connection-string" if spec.connection_string
                else "account-key" if spec.account_key
                else "sas" if spec.sas_token
                else "default"
            )
        if auth == "connection-string":
            if not spec.connection_string:
                raise ConfigError("landing_auth 'connection-string' needs PLAYTEST_LANDING_CONNECTION_STRING")
            client = ContainerClient.from_connection_string(spec.connection_string, container_name)
        elif auth == "account-key":
            if not spec.account_key:
                raise ConfigError("landing_auth 'account-key' needs PLAYTEST_LANDING_ACCOUNT_KEY")
            account_name = _account_name(account_url)
            credential = {"account_name": account_name, "account_key": spec.account_key}
            client = ContainerClient(account_url, container_name, credential=credential)
        elif auth == "sas":
            if not spec.sas_token:
                raise ConfigError("landing_auth 'sas' needs PLAYTEST_LANDING_SAS_TOKEN")
            client = ContainerClient(account_url, container_name, credential=spec.sas_token)
        else:
            from azure.identity import DefaultAzureCredential

            client = ContainerClient(account_url, container_name, credential=DefaultAzureCredential())
        return cls(client, prefix)

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def check(self) -> None:
        try:
            self.container.get_container_properties()
        except ResourceNotFoundError as exc:
            raise LandingError(
                f"landing container {self.container.container_name!r} not found at {self.container.url}: "
                "check --landing or PLAYTEST_LANDING"
            ) from exc
        except HttpResponseError as exc:
            raise LandingError(
                f"cannot read landing container {self.container.url}: {exc.reason or exc}; check the "
                "credential (landing_auth) and the storage firewall"
            ) from exc
        except ServiceRequestError as exc:
            raise LandingError(f"cannot reach {self.container.url}: {exc}") from exc

    def list_prefix(self, prefix: str) -> Iterator[LandedObject]:
        for blob in self.container.list_blobs(name_starts_with=self._name(prefix), include=["metadata"]):
            metadata = blob.metadata or {}
            yield LandedObject(key=self._key(blob.name), size=blob.size, sha256=metadata.get("sha256"))

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.container.download_blob(self._name(key), max_concurrency=2).readall()
        except ResourceNotFoundError as exc:
            raise FileNotFoundError(f"blob {self._name(key)!r} not found") from exc

    def open(self, key: str) -> IO[bytes]:
        blob = self.container.get_blob_client(self._name(key))
        try:
            size = blob.get_blob_properties().size
        except ResourceNotFoundError as exc:
            raise FileNotFoundError(f"blob {self._name(key)!r} not found") from exc
        return io.BufferedReader(_RangeReader(blob, size), buffer_size=RANGE_READ_BYTES)

    def url_for(self, key: str) -> str:
        name = self._name(key)
        if not name:
            return self.container.url
        return self.container.get_blob_client(name).url

    def write_bytes(self, key: str, data: bytes) -> None:
        self.container.upload_blob(self._name(key), data, overwrite=True)


class _RangeReader(io.RawIOBase):
    """A seekable stream over a blob that downloads only the ranges read."""

    def __init__(self, blob, size: int) -> None:  # type: ignore[no-untyped-def]
        self._blob = blob
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self._position >= self._size:
            return 0
        length = min(len(buffer), self._size - self._position)
        data = self._blob.download_blob(offset=self._position, length=length).readall()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def _account_name(account_url: str) -> str:
    parts = urlsplit(account_url)
    if parts.hostname and parts.hostname.count(".") >= 2 and parts.path in ("", "/"):
        return parts.hostname.split(".", 1)[0]
    return parts.path.strip("/")
