"""The session broker against Azurite: its logic, its HTTP handlers and the Function App."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import azure.functions as func
import pytest
from azure.storage.blob import ContainerClient

from playtest_spark.capture.broker import (
    AccountKeySigner,
    Broker,
    BrokerSettings,
    UserDelegationSigner,
    handle_open_session,
    handle_upload_urls,
)
from playtest_spark.capture.errors import (
    FileTooLargeError,
    SessionCompleteError,
    SessionNotFoundError,
)
from playtest_spark.capture.session import FileRequest
from playtest_spark.errors import ConfigError
from playtest_spark.manifest import SessionManifest
from tests.capture.helpers import make_request, request_body
from tests.support.azurite import AzuriteHandle

pytestmark = pytest.mark.azurite

REPO_ROOT = Path(__file__).resolve().parents[2]
INVALID_SESSION_IDS = ["a/b", "..", "../x", "a.b", "", "x" * 65, "a b", "a\\b", "%2F"]


def _post(body: object) -> bytes:
    return json.dumps(body).encode()


def _open(broker: Broker) -> dict:
    response = handle_open_session(broker, _post(request_body()))
    assert response.status == 201, response.body
    return dict(response.body)


def _urls_body(session: dict, paths: list[str]) -> bytes:
    files = [{"path": path, "size": 10} for path in paths]
    return _post({"session_date": session["session_date"], "files": files})


# -- opening sessions ---------------------------------------------------------------------


def test_open_session_writes_session_json(broker: Broker, container: ContainerClient) -> None:
    before = dt.datetime.now(dt.timezone.utc)

    session = _open(broker)

    blob = container.get_blob_client(f"{session['directory']}/session.json")
    manifest = SessionManifest.from_json(blob.download_blob().readall())
    assert manifest.session_id == session["session_id"]
    assert manifest.game == "Skyfarer"
    assert manifest.broker_start_utc >= before.replace(microsecond=0)
    assert manifest.device_start == dt.datetime(
        2025, 3, 1, 9, 59, 58, 500000, tzinfo=dt.timezone.utc
    )


def test_open_session_directory_uses_broker_utc_date(
    broker_settings: BrokerSettings, container: ContainerClient
) -> None:
    late_evening = dt.datetime(2025, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    broker = Broker.from_settings(broker_settings, clock=lambda: late_evening)

    session = _open(broker)

    assert session["session_date"] == "2025-03-02"
    assert session["directory"] == f"sessions/2025-03-02/{session['session_id']}"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"game": None}, "game"),
        ({"player_id": "ann@example.com"}, "player_id"),
        ({"device_start": "soon"}, "device_start"),
        ({"attributes": {"rig": 1}}, "attributes.rig"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_open_session_rejects_field_with_400(broker: Broker, overrides: dict, field: str) -> None:
    response = handle_open_session(broker, _post(request_body(**overrides)))

    assert response.status == 400
    assert response.body["field"] == field
    assert field in response.body["error"]


def test_open_session_rejects_invalid_json(broker: Broker) -> None:
    response = handle_open_session(broker, b"{not json")

    assert response.status == 400
    assert response.body["field"] == "body"


def test_open_session_rejects_oversized_body(broker: Broker, container: ContainerClient) -> None:
    body = _post(request_body(attributes={"padding": "x" * 100}) | {"x": "y" * 300_000})

    response = handle_open_session(broker, body)

    assert response.status == 413
    assert response.body["code"] == "body_too_large"
    assert list(container.list_blobs()) == []


# -- upload URLs --------------------------------------------------------------------------


def test_upload_urls_sign_each_blob_create_write(broker: Broker) -> None:
    session = _open(broker)

    response = handle_upload_urls(
        broker, session["session_id"], _urls_body(session, ["logs/a.log", "_complete.json"])
    )

    assert response.status == 200
    urls = response.body["urls"]
    assert sorted(urls) == ["_complete.json", "logs/a.log"]
    assert f"/{session['directory']}/logs/a.log?" in urls["logs/a.log"]
    assert "sp=cw" in urls["logs/a.log"]
    assert "sr=b" in urls["logs/a.log"]


def test_upload_urls_expire_after_configured_time(broker_settings: BrokerSettings) -> None:
    now = dt.datetime(2025, 3, 1, 10, tzinfo=dt.timezone.utc)
    settings = BrokerSettings(
        container=broker_settings.container,
        connection_string=broker_settings.connection_string,
        sas_ttl=dt.timedelta(minutes=15),
    )
    broker = Broker.from_settings(settings, clock=lambda: now)
    session = _open(broker)

    response = handle_upload_urls(
        broker, session["session_id"], _urls_body(session, ["logs/a.log"])
    )

    assert response.body["expires_utc"] == "2025-03-01T10:15:00.000Z"
    assert "se=2025-03-01T10%3A15%3A00Z" in response.body["urls"]["logs/a.log"]


@pytest.mark.parametrize("session_id", INVALID_SESSION_IDS)
def test_upload_urls_reject_invalid_session_id(broker: Broker, session_id: str) -> None:
    body = _post({"session_date": "2025-03-01", "files": [{"path": "logs/a.log", "size": 1}]})

    response = handle_upload_urls(broker, session_id, body)

    assert response.status == 400
    assert response.body["field"] == "session_id"


@pytest.mark.parametrize(
    ("files", "field"),
    [
        ([{"path": "../other/x.log", "size": 1}], "files[0].path"),
        ([{"path": "session.json", "size": 1}], "files[0].path"),
        ([{"path": "logs/a.log", "size": 1}, {"path": "tmp/a", "size": 1}], "files[1].path"),
        ([{"path": "logs/a.log", "size": "big"}], "files[0].size"),
        ([], "files"),
    ],
)
def test_upload_urls_reject_invalid_file(broker: Broker, files: list, field: str) -> None:
    session = _open(broker)
    body = _post({"session_date": session["session_date"], "files": files})

    response = handle_upload_urls(broker, session["session_id"], body)

    assert response.status == 400
    assert response.body["field"] == field


def test_upload_urls_reject_invalid_date(broker: Broker) -> None:
    session = _open(broker)
    body = _post({"session_date": "2025-3-1", "files": [{"path": "logs/a.log", "size": 1}]})

    response = handle_upload_urls(broker, session["session_id"], body)

    assert response.status == 400
    assert response.body["field"] == "session_date"


def test_upload_urls_unknown_session_is_404(broker: Broker) -> None:
    body = _post({"session_date": "2025-03-01", "files": [{"path": "logs/a.log", "size": 1}]})

    response = handle_upload_urls(broker, "never-opened", body)

    assert response.status == 404
    assert response.body["code"] == "session_not_found"


def test_upload_urls_stop_once_complete(broker: Broker, container: ContainerClient) -> None:
    session = _open(broker)
    container.upload_blob(f"{session['directory']}/_complete.json", b"{}")

    response = handle_upload_urls(
        broker, session["session_id"], _urls_body(session, ["logs/a.log"])
    )

    assert response.status == 409
    assert response.body["code"] == "session_complete"
    assert "urls" not in response.body


def test_issue_upload_urls_raises_for_complete_session(
    broker: Broker, container: ContainerClient
) -> None:
    opened = broker.open_session(make_request())
    container.upload_blob(f"{opened.directory}/_complete.json", b"{}")

    with pytest.raises(SessionCompleteError):
        broker.issue_upload_urls(
            opened.session_id, opened.session_date, [FileRequest("logs/a.log", 1)]
        )


def test_issue_upload_urls_raises_for_wrong_date(broker: Broker) -> None:
    opened = broker.open_session(make_request())

    with pytest.raises(SessionNotFoundError):
        broker.issue_upload_urls(
            opened.session_id,
            opened.session_date - dt.timedelta(days=1),
            [FileRequest("logs/a.log", 1)],
        )


def test_upload_urls_apply_max_file_bytes(broker_settings: BrokerSettings) -> None:
    settings = BrokerSettings(
        container=broker_settings.container,
        connection_string=broker_settings.connection_string,
        max_file_bytes=1000,
    )
    broker = Broker.from_settings(settings)
    session = _open(broker)
    body = _post(
        {
            "session_date": session["session_date"],
            "files": [{"path": "recordings/a.mp4", "size": 1001}],
        }
    )

    response = handle_upload_urls(broker, session["session_id"], body)

    assert response.status == 400
    assert response.body["code"] == "file_too_large"
    assert response.body["field"] == "files[0].size"
    with pytest.raises(FileTooLargeError):
        broker.issue_upload_urls(
            session["session_id"],
            dt.date.fromisoformat(session["session_date"]),
            [FileRequest("recordings/a.mp4", 1001)],
        )


# -- settings -----------------------------------------------------------------------------


def test_settings_from_environ_read_account_key(azurite: AzuriteHandle) -> None:
    environ = {
        "PLAYTEST_BROKER_CONNECTION_STRING": azurite.connection_string,
        "PLAYTEST_BROKER_CONTAINER": "landing-x",
        "PLAYTEST_BROKER_SAS_MINUTES": "5",
        "PLAYTEST_BROKER_MAX_FILE_BYTES": "1000",
    }

    settings = BrokerSettings.from_environ(environ)
    broker = Broker.from_settings(settings)

    assert settings.sas_ttl == dt.timedelta(minutes=5)
    assert settings.max_file_bytes == 1000
    assert broker.container.container_name == "landing-x"
    assert isinstance(broker.signer, AccountKeySigner)


def test_settings_with_account_url_use_delegation_key() -> None:
    # Only builds the objects: no token or key is requested, so nothing leaves the machine.
    settings = BrokerSettings.from_environ(
        {"PLAYTEST_BROKER_ACCOUNT_URL": "https://example.invalid"}
    )

    broker = Broker.from_settings(settings)

    assert isinstance(broker.signer, UserDelegationSigner)


def test_settings_reject_missing_storage() -> None:
    with pytest.raises(ConfigError, match="PLAYTEST_BROKER_CONNECTION_STRING"):
        BrokerSettings.from_environ({})


def test_settings_reject_invalid_sas_minutes(azurite: AzuriteHandle) -> None:
    with pytest.raises(ConfigError, match="SAS lifetime"):
        BrokerSettings.from_environ(
            {
                "PLAYTEST_BROKER_CONNECTION_STRING": azurite.connection_string,
                "PLAYTEST_BROKER_SAS_MINUTES": "20000",
            }
        )


def test_settings_reject_connection_string_without_key() -> None:
    settings = BrokerSettings(
        connection_string="BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;SharedAccessSignature=sv=x"
    )

    with pytest.raises(ConfigError, match="no AccountKey"):
        Broker.from_settings(settings)


# -- the Function App -----------------------------------------------------------------------


@pytest.fixture
def function_app(
    broker_settings: BrokerSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    monkeypatch.setenv("PLAYTEST_BROKER_CONNECTION_STRING", str(broker_settings.connection_string))
    monkeypatch.setenv("PLAYTEST_BROKER_CONTAINER", broker_settings.container)
    path = REPO_ROOT / "broker" / "function_app.py"
    spec = importlib.util.spec_from_file_location("playtest_broker_function_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    module.get_broker.cache_clear()


def _request(url: str, body: bytes, route_params: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest(
        method="POST",
        url=url,
        body=body,
        route_params=route_params or {},
        headers={"content-type": "application/json", "content-length": str(len(body))},
    )


def test_function_app_registers_two_routes(function_app: ModuleType) -> None:
    names = sorted(item.get_function_name() for item in function_app.app.get_functions())

    assert names == ["issue_upload_urls", "open_session"]


def test_function_app_opens_session_and_issues_urls(
    function_app: ModuleType, container: ContainerClient
) -> None:
    opened = function_app.open_session(
        _request("http://localhost/api/sessions", _post(request_body()))
    )
    session = json.loads(opened.get_body())
    urls_request = _request(
        f"http://localhost/api/sessions/{session['session_id']}/upload-urls",
        _urls_body(session, ["events/e.jsonl", "_complete.json"]),
        {"session_id": session["session_id"]},
    )

    response = function_app.issue_upload_urls(urls_request)

    assert opened.status_code == 201
    assert opened.mimetype == "application/json"
    assert container.get_blob_client(f"{session['directory']}/session.json").exists()
    assert response.status_code == 200
    assert sorted(json.loads(response.get_body())["urls"]) == ["_complete.json", "events/e.jsonl"]


def test_function_app_rejects_invalid_field(function_app: ModuleType) -> None:
    response = function_app.open_session(
        _request("http://localhost/api/sessions", _post(request_body(platform=None)))
    )

    assert response.status_code == 400
    assert json.loads(response.get_body())["field"] == "platform"


@pytest.mark.parametrize("session_id", ["..", "a.b", "a b"])
def test_function_app_rejects_invalid_session_id(function_app: ModuleType, session_id: str) -> None:
    body = _post({"session_date": "2025-03-01", "files": [{"path": "logs/a.log", "size": 1}]})

    response = function_app.issue_upload_urls(
        _request("http://localhost/api/sessions/x/upload-urls", body, {"session_id": session_id})
    )

    assert response.status_code == 400
    assert json.loads(response.get_body())["field"] == "session_id"


def test_function_app_rejects_declared_oversized_body(function_app: ModuleType) -> None:
    request = func.HttpRequest(
        method="POST",
        url="http://localhost/api/sessions",
        body=b"{}",
        headers={"content-length": str(10 * 1024 * 1024)},
    )

    response = function_app.open_session(request)

    assert response.status_code == 413


def test_function_app_rejects_oversized_body(function_app: ModuleType) -> None:
    response = function_app.open_session(
        _request("http://localhost/api/sessions", b" " * (300 * 1024))
    )

    assert response.status_code == 413


def test_function_app_reports_missing_settings(
    function_app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLAYTEST_BROKER_CONNECTION_STRING")
    function_app.get_broker.cache_clear()

    response = function_app.open_session(
        _request("http://localhost/api/sessions", _post(request_body()))
    )

    assert response.status_code == 500
    assert json.loads(response.get_body())["code"] == "broker_misconfigured"
