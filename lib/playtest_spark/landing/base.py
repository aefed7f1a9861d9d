"""The landing interface and its factory."""

from __future__ import annotations

import abc
import dataclasses
import functools
import re
from collections.abc import Iterator
from typing import IO

from playtest_spark.errors import ConfigError

_ABFSS = re.compile(r"abfss?://(?P<container>[^@/]+)@(?P<account>[^./]+)\.dfs\.(?P<suffix>[^/]+)(?P<path>/.*)?$")


@dataclasses.dataclass(frozen=True)
class LandedObject:
    """A file in the landing, with its key relative to the landing root.

    Attributes:
        key: Path below the landing root, `/`-separated, such as
            `sessions/2026-12-03/abc/events/events.jsonl`.
        size: Size in bytes.
        sha256: SHA-256 from the blob's metadata, when the uploader stored one.
    """

    key: str
    size: int
    sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class LandingSpec:
    """Everything needed to open the landing again inside a Spark worker.

    Secrets travel inside the spec to the workers of the same job; `repr` hides them.
    """

    uri: str
    auth: str = "auto"
    connection_string: str | None = dataclasses.field(default=None, repr=False)
    account_key: str | None = dataclasses.field(default=None, repr=False)
    sas_token: str | None = dataclasses.field(default=None, repr=False)

    @property
    def is_blob(self) -> bool:
        return self.uri.startswith(("http://", "https://", "abfss://", "abfs://"))


class Landing(abc.ABC):
    """Read access to the landing storage."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise LandingError unless the landing exists and can be read."""

    @abc.abstractmethod
    def list_prefix(self, prefix: str) -> Iterator[LandedObject]:
        """Yield every file whose key starts with `prefix` (a folder, ending in `/`)."""

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return a file's whole content.

        Raises:
            FileNotFoundError: no file has that key.
        """

    @abc.abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """Open a file as a seekable binary stream that reads ranges on demand."""

    @abc.abstractmethod
    def url_for(self, key: str) -> str:
        """Return the URL or path where a person can open the file."""

    @abc.abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write a file, replacing it (used by the demo and tests to build landings)."""


def parse_abfss(uri: str) -> tuple[str, str, str]:
    """Turn `abfss://<container>@<account>.dfs.<suffix>/<path>` into the Blob endpoint.

    Returns:
        The account URL (`https://<account>.blob.<suffix>`), the container, and the
        path prefix inside it (may be empty).

    Raises:
        ConfigError: the URL is not of that form.
    """
    match = _ABFSS.match(uri)
    if not match:
        raise ConfigError(
            f"invalid landing URL {uri!r}: expected abfss://<container>@<account>.dfs.core.windows.net/"
        )
    account_url = f"https://{match['account']}.blob.{match['suffix']}"
    return account_url, match["container"], (match["path"] or "").strip("/")


@functools.lru_cache(maxsize=8)
def open_landing(spec: LandingSpec) -> Landing:
    """Return the landing for a spec, cached per process (Spark workers reuse it)."""
    if spec.is_blob:
        from playtest_spark.landing.blob import BlobLanding

        return BlobLanding.from_spec(spec)
    from playtest_spark.landing.local import LocalLanding

    return LocalLanding(spec.uri)
