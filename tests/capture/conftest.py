"""Fixtures of the capture tests: Azurite, a landing container, the broker and its server."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from playtest_spark.capture.broker import Broker, BrokerSettings
from playtest_spark.capture.devserver import BrokerServer
from playtest_spark.capture.session import SessionRequest
from tests.capture.helpers import make_request
from tests.support.azurite import AzuriteHandle


@pytest.fixture
def container(azurite: AzuriteHandle) -> Iterator[ContainerClient]:
    """A new, empty landing container for one test."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.get_container_client(f"landing-{uuid.uuid4().hex[:12]}")
    client.create_container()
    yield client
    client.delete_container()


@pytest.fixture
def broker_settings(azurite: AzuriteHandle, container: ContainerClient) -> BrokerSettings:
    """Broker settings that sign with Azurite's development account key."""
    return BrokerSettings(
        container=container.container_name, connection_string=azurite.connection_string
    )


@pytest.fixture
def broker(broker_settings: BrokerSettings) -> Broker:
    """A broker in this process, writing to the test's container."""
    return Broker.from_settings(broker_settings)


@pytest.fixture
def broker_server(broker: Broker) -> Iterator[BrokerServer]:
    """The broker served over HTTP on 127.0.0.1."""
    with BrokerServer(broker) as server:
        yield server


@pytest.fixture
def session_request() -> SessionRequest:
    """A valid session request."""
    return make_request()


@pytest.fixture
def utc_now() -> dt.datetime:
    """The current time in UTC."""
    return dt.datetime.now(dt.timezone.utc)
