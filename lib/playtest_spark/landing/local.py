"""A landing in a local folder: the embedded default, and Unity Catalog volumes
(`/Volumes/...`), which Databricks mounts as local paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from playtest_spark.errors import LandingError
from playtest_spark.landing.base import LandedObject, Landing


class LocalLanding(Landing):
    """Landing rooted at a folder; keys are `/`-separated paths below it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise ValueError(f"key {key!r} points outside the landing folder {self.root}")
        return path

    def check(self) -> None:
        if not self.root.is_dir():
            raise LandingError(f"landing folder {str(self.root)!r} not found: check --landing or PLAYTEST_LANDING")

    def list_prefix(self, prefix: str) -> Iterator[LandedObject]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath) / name
                if full.is_symlink():
                    continue
                key = full.relative_to(self.root).as_posix()
                yield LandedObject(key=key, size=full.stat().st_size)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open(self, key: str) -> IO[bytes]:
        return self._path(key).open("rb")

    def url_for(self, key: str) -> str:
        return str(self._path(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
