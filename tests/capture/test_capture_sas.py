"""What a file's SAS URL allows against Azurite: create and write that blob, nothing else."""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobSasPermissions,
    ContainerClient,
    generate_blob_sas,
)

from playtest_spark.capture.blocks import UploadOptions
from playtest_spark.capture.broker import Broker, BrokerSettings
from playtest_spark.capture.errors import SasExpiredError, UploadAuthorizationError
from playtest_spark.capture.session import FileRequest, OpenedSession, UploadGrant
from playtest_spark.capture.spool import STATUS_INCOMPLETE, Spool
from playtest_spark.capture.upload import BlobTarget, upload_session
from tests.capture.helpers import make_request

pytestmark = pytest.mark.azurite

# Blob Storage returns 403 for a SAS-authorised request that the SAS does not permit.
FORBIDDEN = 403


def _grant(broker: Broker, paths: list[str]) -> tuple[OpenedSession, UploadGrant]:
    opened = broker.open_session(make_request())
    grant = broker.issue_upload_urls(
        opened.session_id, opened.session_date, [FileRequest(path, 16) for path in paths]
    )
    return opened, grant


def _status(call: Callable[[], object]) -> int:
    try:
        call()
    except HttpResponseError as exc:
        return int(exc.status_code or 0)
    return 200


def _client(url: str) -> BlobClient:
    return BlobClient.from_blob_url(url, retry_total=0)


def _token(url: str) -> str:
    return urllib.parse.urlsplit(url).query


def _write(client: BlobClient, data: bytes = b"0123456789abcdef") -> None:
    client.stage_block("block-000000", data, validate_content=True)
    client.commit_block_list([BlobBlock("block-000000")])


def test_sas_writes_its_own_blob(broker: Broker, container: ContainerClient) -> None:
    opened, grant = _grant(broker, ["logs/a.log"])

    _write(_client(grant.urls["logs/a.log"]))

    data = container.get_blob_client(f"{opened.directory}/logs/a.log").download_blob().readall()
    assert data == b"0123456789abcdef"


def test_sas_cannot_read_its_blob(broker: Broker) -> None:
    _, grant = _grant(broker, ["logs/a.log"])
    client = _client(grant.urls["logs/a.log"])
    _write(client)

    assert _status(lambda: client.download_blob().readall()) == FORBIDDEN
    assert _status(client.get_blob_properties) == FORBIDDEN
    assert _status(lambda: client.get_block_list("all")) == FORBIDDEN


def test_sas_cannot_delete_its_blob(broker: Broker, container: ContainerClient) -> None:
    opened, grant = _grant(broker, ["logs/a.log"])
    client = _client(grant.urls["logs/a.log"])
    _write(client)

    assert _status(client.delete_blob) == FORBIDDEN
    assert container.get_blob_client(f"{opened.directory}/logs/a.log").exists()


def test_sas_cannot_list_container(broker: Broker, container: ContainerClient) -> None:
    _, grant = _grant(broker, ["logs/a.log"])
    token = _token(grant.urls["logs/a.log"])
    account_url = container.url.rsplit("/", 1)[0]
    listing = ContainerClient(
        account_url, container.container_name, credential=token, retry_total=0
    )
    raw_url = f"{container.url}?restype=container&comp=list&{token}"

    assert _status(lambda: list(listing.list_blobs())) == FORBIDDEN
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(raw_url, timeout=10)
    assert caught.value.code == FORBIDDEN


def test_sas_cannot_write_another_blob(broker: Broker, container: ContainerClient) -> None:
    opened, grant = _grant(broker, ["logs/a.log"])
    token = _token(grant.urls["logs/a.log"])
    other, _ = _grant(broker, ["logs/a.log"])
    account_url = container.url.rsplit("/", 1)[0]
    targets = [
        f"{opened.directory}/logs/b.log",
        f"{opened.directory}/session.json",
        f"{opened.directory}/_complete.json",
        f"{other.directory}/logs/a.log",
        "sessions/outside.log",
    ]

    for name in targets:
        client = BlobClient(
            account_url, container.container_name, name, credential=token, retry_total=0
        )
        assert (
            _status(lambda client=client: client.upload_blob(b"x", overwrite=True)) == FORBIDDEN
        ), name
        assert _status(lambda client=client: _write(client)) == FORBIDDEN, name


def test_sas_of_one_container_cannot_write_another(
    broker: Broker, container: ContainerClient
) -> None:
    opened, grant = _grant(broker, ["logs/a.log"])
    url = grant.urls["logs/a.log"].replace(
        f"/{container.container_name}/", f"/{container.container_name}x/", 1
    )

    assert _status(lambda: _write(_client(url))) == FORBIDDEN


def _expired_broker(settings: BrokerSettings) -> Broker:
    two_hours_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    expiring = BrokerSettings(
        container=settings.container,
        connection_string=settings.connection_string,
        sas_ttl=dt.timedelta(minutes=1),
    )
    return Broker.from_settings(expiring, clock=lambda: two_hours_ago)


def test_expired_sas_raises_sas_expired_error(
    broker_settings: BrokerSettings, tmp_path: Path
) -> None:
    broker = _expired_broker(broker_settings)
    session = Spool(tmp_path / "spool").start(broker, make_request())
    session.append_event({"type": "start"})

    with pytest.raises(SasExpiredError, match="expired at"):
        upload_session(session, BlobTarget(broker, session.opened, UploadOptions(attempts=1)))

    assert session.status() == STATUS_INCOMPLETE
    assert "SasExpiredError" in str(session.load_state().last_error)


def test_wrong_signature_raises_authorization_error(
    broker: Broker, azurite, tmp_path: Path
) -> None:
    class WrongKeyIssuer:
        def issue_upload_urls(self, session_id, session_date, files):  # type: ignore[no-untyped-def]
            grant = broker.issue_upload_urls(session_id, session_date, files)
            urls = {}
            for path, url in grant.urls.items():
                blob_name = urllib.parse.unquote(urllib.parse.urlsplit(url).path).split("/", 3)[3]
                token = generate_blob_sas(
                    azurite.account_name,
                    broker.container.container_name,
                    blob_name,
                    account_key="d3Jvbmcga2V5" * 8,
                    permission=BlobSasPermissions(create=True, write=True),
                    expiry=grant.expires_utc,
                )
                urls[path] = url.split("?", 1)[0] + "?" + token
            return UploadGrant(urls, grant.expires_utc)

    session = Spool(tmp_path / "spool").start(broker, make_request())
    session.append_event({"type": "start"})

    with pytest.raises(UploadAuthorizationError) as caught:
        upload_session(
            session, BlobTarget(WrongKeyIssuer(), session.opened, UploadOptions(attempts=1))
        )

    assert not isinstance(caught.value, SasExpiredError)
    assert "rejected the SAS URL" in str(caught.value)
    assert session.status() == STATUS_INCOMPLETE
