"""Builders shared by the capture tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from azure.storage.blob import ContainerClient

from playtest_spark.capture.session import SessionRequest


def make_request(**overrides: Any) -> SessionRequest:
    """Return a valid session request, with `overrides` applied to its body."""
    body: dict[str, Any] = {
        "game": "Skyfarer",
        "build": "0.9.3-rc1",
        "platform": "Windows",
        "device_model": "Desktop-RTX3060",
        "player_id": "p-7f3a9c",
        "device_start": "2025-03-01T09:59:58.500+00:00",
    }
    body.update(overrides)
    return SessionRequest.from_body(body)


def request_body(**overrides: Any) -> dict[str, Any]:
    """Return a valid session request body, with `overrides` applied (None deletes)."""
    body = make_request().to_body()
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def write_random_file(path: Path, size: int, chunk: int = 8 * 1024 * 1024) -> str:
    """Write `size` random bytes to `path` and return their hex SHA-256."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            data = os.urandom(min(chunk, remaining))
            digest.update(data)
            handle.write(data)
            remaining -= len(data)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_blob(container: ContainerClient, name: str) -> str:
    """Download a blob with the account key and return its hex SHA-256."""
    digest = hashlib.sha256()
    for chunk in container.get_blob_client(name).download_blob().chunks():
        digest.update(chunk)
    return digest.hexdigest()
