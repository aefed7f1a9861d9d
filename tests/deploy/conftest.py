"""Fixtures of the deployment tests: the bundle YAML and the Data Factory JSON, loaded once."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_files import load_adf, load_bundle


@pytest.fixture(scope="session")
def bundle() -> dict[str, Any]:
    return load_bundle()


@pytest.fixture(scope="session")
def adf() -> dict[str, dict[str, dict[str, Any]]]:
    return load_adf()
