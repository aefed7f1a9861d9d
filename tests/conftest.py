"""Fixtures shared by the whole suite: one SparkSession per run, sample-file paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cases_dir() -> Path:
    """Return the real sample-file folder: `$PLAYTEST_CASES_DIR` or `../shared/cases`."""
    configured = os.environ.get("PLAYTEST_CASES_DIR")
    return Path(configured) if configured else REPO.parent / "shared" / "cases"


@pytest.fixture(scope="session")
def cases() -> Path:
    """The real sample files; tests using them skip where the folder is absent."""
    folder = cases_dir()
    if not folder.is_dir():
        pytest.skip(f"sample-file folder {folder} not found; set PLAYTEST_CASES_DIR to run these tests")
    return folder


@pytest.fixture(scope="session")
def azurite():
    """Azurite's blob service on a free loopback port, for the whole test session."""
    from tests.support.azurite import AzuriteUnavailableError, start_azurite

    try:
        handle = start_azurite()
    except AzuriteUnavailableError as exc:
        if os.environ.get("PLAYTEST_REQUIRE_SERVICES"):
            pytest.fail(f"Azurite is required here but cannot run: {exc}")
        pytest.skip(f"Azurite cannot run: {exc}")
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def spark():
    """The suite's one SparkSession (local, 2 cores, Delta and JDBC drivers)."""
    pytest.importorskip("pyspark")
    from playtest_spark.spark import get_spark

    session = get_spark("playtest-tests", cores=2)
    yield session
    session.stop()
