"""Uploads against Azurite: broker, spool and block uploads end to end, resumes and failures."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseTimeoutError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import ContainerClient

from playtest_spark.capture.blocks import MIB, UploadOptions, call_with_retries
from playtest_spark.capture.broker import Broker, BrokerSettings
from playtest_spark.capture.client import HttpBrokerClient, check_broker_url
from playtest_spark.capture.devserver import BrokerServer
from playtest_spark.capture.errors import (
    BrokerUnavailableError,
    FileTooLargeError,
    RequestFieldError,
    RequestTooLargeError,
    SessionCompleteError,
    UploadAuthorizationError,
    UploadServiceError,
    UploadTimeoutError,
)
from playtest_spark.capture.session import FileRequest, UploadGrant
from playtest_spark.capture.spool import (
    STATE_FILE,
    STATUS_INCOMPLETE,
    STATUS_UPLOADED,
    Spool,
    SpoolSession,
)
from playtest_spark.capture.state import FileUploadState
from playtest_spark.capture.upload import BlobTarget, target_for, upload_session
from playtest_spark.errors import CaptureError, ConfigError, InvalidSessionIdError
from playtest_spark.manifest import CompletionManifest, SessionManifest
from tests.capture.helpers import (
    make_request,
    sha256_of_blob,
    sha256_of_file,
    write_random_file,
)

pytestmark = pytest.mark.azurite

QUICK_RETRIES = UploadOptions(attempts=3, initial_backoff=0.01, max_backoff=0.02)


def _fill(session: SpoolSession, tmp_path: Path) -> None:
    with session.event_writer() as events:
        for index in range(200):
            events.append(
                {"type": "tick", "seq": index, "t": f"2025-03-01T10:00:{index % 60:02d}Z"}
            )
    perf = tmp_path / "frames.csv"
    perf.write_text(
        "frame,frame_ms,cpu_ms\n" + "".join(f"{i},16.{i % 10},9.1\n" for i in range(500))
    )
    session.add_performance(perf)
    log = tmp_path / "Game.log"
    log.write_text("[2025.03.01-10.00.01:000][  0]LogInit: Warning: low memory\n")
    session.add_log(log)
    session.add_form({"fun": 4, "difficulty": "hard"}, name="exit.json")
    write_random_file(tmp_path / "take1.mp4", 5 * MIB + 123)
    session.add_recording(tmp_path / "take1.mp4", name="cam/take1.mp4")


def _blobs(container: ContainerClient, directory: str) -> dict[str, object]:
    return {
        blob.name.removeprefix(directory + "/"): blob
        for blob in container.list_blobs(name_starts_with=directory + "/", include=["metadata"])
    }


# -- end to end ---------------------------------------------------------------------------


def test_session_through_broker_lands_complete(
    broker_server: BrokerServer, container: ContainerClient, tmp_path: Path
) -> None:
    client = HttpBrokerClient(broker_server.url)
    session = Spool(tmp_path / "spool").start(client, make_request())
    _fill(session, tmp_path)

    report = upload_session(session, target_for(session))

    blobs = _blobs(container, session.opened.directory)
    complete = CompletionManifest.from_json(
        container.get_blob_client(f"{session.opened.directory}/_complete.json")
        .download_blob()
        .readall()
    )
    manifest = SessionManifest.from_json(
        container.get_blob_client(f"{session.opened.directory}/session.json")
        .download_blob()
        .readall()
    )
    local = {item.path: item for item in session.files()}
    assert report.status == "uploaded"
    assert sorted(blobs) == sorted([*local, "session.json", "_complete.json"])
    assert manifest.session_id == session.session_id
    assert complete.session_id == session.session_id
    assert complete.device_end == session.device_end
    assert sorted(entry.path for entry in complete.files) == sorted(local)
    for entry in complete.files:
        assert entry.size == local[entry.path].size, entry.path
        assert entry.sha256 == sha256_of_file(local[entry.path].local_path), entry.path
        assert blobs[entry.path].size == entry.size, entry.path  # type: ignore[attr-defined]
        assert blobs[entry.path].metadata["sha256"] == entry.sha256, entry.path  # type: ignore[attr-defined]
        assert sha256_of_blob(container, f"{session.opened.directory}/{entry.path}") == entry.sha256
    assert session.status() == STATUS_UPLOADED


def test_content_types_follow_file_kinds(
    broker: Broker, container: ContainerClient, tmp_path: Path
) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    _fill(session, tmp_path)

    upload_session(session, BlobTarget(broker, session.opened))

    directory = session.opened.directory
    properties = container.get_blob_client(
        f"{directory}/recordings/cam/take1.mp4"
    ).get_blob_properties()
    assert properties.content_settings.content_type == "video/mp4"


def test_upload_again_creates_nothing_twice(
    broker: Broker, container: ContainerClient, tmp_path: Path
) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    _fill(session, tmp_path)
    upload_session(session, BlobTarget(broker, session.opened))
    before = {name: blob.etag for name, blob in _blobs(container, session.opened.directory).items()}  # type: ignore[attr-defined]

    again = upload_session(session, BlobTarget(broker, session.opened))
    (session.folder / STATE_FILE).unlink()
    after_lost_state = upload_session(session, BlobTarget(broker, session.opened))

    after = {name: blob.etag for name, blob in _blobs(container, session.opened.directory).items()}  # type: ignore[attr-defined]
    assert again.status == "already uploaded"
    assert after_lost_state.status == "already uploaded"
    assert after == before
    assert session.status() == STATUS_UPLOADED


def test_complete_marker_written_only_after_every_file(
    broker: Broker, container: ContainerClient, tmp_path: Path
) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    _fill(session, tmp_path)
    options = UploadOptions(max_file_bytes=MIB)

    with pytest.raises(FileTooLargeError, match="take1.mp4"):
        upload_session(session, BlobTarget(broker, session.opened, options))

    blobs = _blobs(container, session.opened.directory)
    assert "_complete.json" not in blobs
    assert "events/events.jsonl" in blobs
    assert session.status() == STATUS_INCOMPLETE
    assert "FileTooLargeError" in str(session.load_state().last_error)


def test_recording_of_100_mb_uploads(
    broker_server: BrokerServer, container: ContainerClient, tmp_path: Path
) -> None:
    session = Spool(tmp_path / "spool").start(HttpBrokerClient(broker_server.url), make_request())
    digest = write_random_file(tmp_path / "long.mp4", 100 * MIB)
    session.add_recording(tmp_path / "long.mp4", move=True)

    started = time.monotonic()
    report = upload_session(session, target_for(session))
    seconds = time.monotonic() - started

    name = f"{session.opened.directory}/recordings/long.mp4"
    properties = container.get_blob_client(name).get_blob_properties()
    assert report.stats.blocks_staged == 25  # 100 MiB in 4 MiB blocks
    assert properties.size == 100 * MIB
    assert properties.metadata["sha256"] == digest
    assert sha256_of_blob(container, name) == digest
    assert seconds < 120, f"100 MiB took {seconds:.1f} s against Azurite on loopback"


# -- resume after a kill ------------------------------------------------------------------

KILLED_UPLOADER = textwrap.dedent(
    """
    import os, signal, sys
    import playtest_spark.capture.state as state_module
    from playtest_spark.capture.blocks import UploadOptions
    from playtest_spark.capture.broker import Broker, BrokerSettings
    from playtest_spark.capture.spool import Spool
    from playtest_spark.capture.upload import BlobTarget, upload_session

    spool_folder, session_id, container, kill_after = sys.argv[1:5]
    state_module.STATE_SAVE_INTERVAL = 0  # record every block, so the resume is measurable
    broker = Broker.from_settings(BrokerSettings(
        container=container, connection_string=os.environ["AZURITE_CONNECTION_STRING"]))
    session = Spool(spool_folder).get(session_id)

    class KillMidFile:
        staged = 0
        def file_started(self, path, size): pass
        def file_done(self, path): pass
        def advance(self, path, nbytes):
            self.staged += 1
            if self.staged == int(kill_after):
                os.kill(os.getpid(), signal.SIGKILL)

    options = UploadOptions(block_size=1024 * 1024, max_concurrency=2)
    upload_session(session, BlobTarget(broker, session.opened, options), KillMidFile())
    sys.exit("the upload finished: it should have been killed")
    """
)


def test_kill_mid_upload_then_resume_is_byte_identical(
    broker: Broker, broker_settings: BrokerSettings, container: ContainerClient, tmp_path: Path
) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    digest = write_random_file(tmp_path / "take.mkv", 24 * MIB + 7)
    session.add_recording(tmp_path / "take.mkv")
    environment = dict(os.environ, AZURITE_CONNECTION_STRING=str(broker_settings.connection_string))

    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_UPLOADER,
            str(session.folder.parent),
            session.session_id,
            broker_settings.container,
            "8",
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    name = f"{session.opened.directory}/recordings/take.mkv"
    state = session.load_state()
    recorded = state.files["recordings/take.mkv"]
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not recorded.committed
    assert len(recorded.staged) >= 8
    assert not container.get_blob_client(name).exists()
    assert session.status() == "pending"

    resumed = upload_session(
        session, BlobTarget(broker, session.opened, UploadOptions(block_size=MIB))
    )

    assert resumed.status == "uploaded"
    assert resumed.stats.blocks_reused == len(recorded.staged)
    assert resumed.stats.blocks_staged == 25 - len(recorded.staged)
    assert resumed.stats.restarts == 0
    assert sha256_of_blob(container, name) == digest
    assert container.get_blob_client(f"{session.opened.directory}/_complete.json").exists()


def test_lost_staged_blocks_restart_file_cleanly(
    broker: Broker, container: ContainerClient, tmp_path: Path
) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    digest = write_random_file(tmp_path / "take.webm", 3 * MIB + 5)
    session.add_recording(tmp_path / "take.webm")
    spooled = session.files()[0]
    state = session.load_state()
    state.files[spooled.path] = FileUploadState(
        spooled.size, spooled.mtime_ns, MIB, "0000000000000000", staged={0, 1, 2, 3}
    )
    state.save()

    report = upload_session(session, BlobTarget(broker, session.opened))

    assert report.stats.restarts == 1
    assert sha256_of_blob(container, f"{session.opened.directory}/{spooled.path}") == digest


def test_changed_file_restarts_upload(
    broker: Broker, container: ContainerClient, tmp_path: Path
) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    session.append_event({"type": "a"})
    spooled = session.files()[0]
    state = session.load_state()
    state.files[spooled.path] = FileUploadState(
        spooled.size + 1, spooled.mtime_ns, MIB, "0000000000000000", staged={0}
    )
    state.save()

    report = upload_session(session, BlobTarget(broker, session.opened))

    assert report.stats.blocks_reused == 0
    assert sha256_of_blob(
        container, f"{session.opened.directory}/{spooled.path}"
    ) == sha256_of_file(spooled.local_path)


# -- retries and failures -----------------------------------------------------------------


class FlakyTransport(RequestsTransport):
    """Fails the first `failures` requests: a read timeout, or a 503 after the real call."""

    def __init__(self, failures: int, mode: str) -> None:
        super().__init__()
        self.failures = failures
        self.mode = mode
        self.requests = 0

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.requests += 1
        if self.requests > self.failures:
            return super().send(request, **kwargs)
        if self.mode == "timeout":
            raise ServiceResponseTimeoutError("simulated read timeout")
        response = super().send(request, **kwargs)
        response.status_code = 503
        response.internal_response.status_code = 503
        return response


@pytest.mark.parametrize("mode", ["timeout", "503"])
def test_upload_retries_transient_failures(
    broker: Broker, container: ContainerClient, tmp_path: Path, mode: str
) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    digest = write_random_file(tmp_path / "take.mp4", 2 * MIB)
    session.add_recording(tmp_path / "take.mp4")
    transport = FlakyTransport(failures=2, mode=mode)
    target = BlobTarget(broker, session.opened, QUICK_RETRIES, {"transport": transport})

    report = upload_session(session, target)

    assert report.status == "uploaded"
    assert transport.requests > 2
    assert sha256_of_blob(container, f"{session.opened.directory}/recordings/take.mp4") == digest


def test_persistent_timeouts_leave_session_incomplete(
    broker: Broker, container: ContainerClient, tmp_path: Path
) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    session.append_event({"type": "a"})
    target = BlobTarget(
        broker, session.opened, QUICK_RETRIES, {"transport": FlakyTransport(99, "timeout")}
    )

    with pytest.raises(UploadTimeoutError, match="timed out 3 time"):
        upload_session(session, target)

    assert session.status() == STATUS_INCOMPLETE
    assert not container.get_blob_client(f"{session.opened.directory}/_complete.json").exists()
    assert upload_session(session, BlobTarget(broker, session.opened)).status == "uploaded"
    assert session.status() == STATUS_UPLOADED


def test_call_with_retries_backs_off_then_succeeds() -> None:
    outcomes: list[object] = [ServiceResponseTimeoutError("slow"), _status_error(503), "done"]
    delays: list[float] = []

    def action() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = call_with_retries(
        action, "block 0", UploadOptions(initial_backoff=1.0), None, delays.append
    )

    assert result == "done"
    assert len(delays) == 2
    assert 0.5 <= delays[0] <= 1.0
    assert 1.0 <= delays[1] <= 2.0


def test_call_with_retries_reports_server_errors() -> None:
    def action() -> None:
        raise _status_error(500)

    with pytest.raises(UploadServiceError, match="failed 2 time"):
        call_with_retries(action, "block 0", UploadOptions(attempts=2), None, lambda _: None)


def test_call_with_retries_passes_client_errors_through() -> None:
    calls: list[int] = []

    def action() -> None:
        calls.append(1)
        raise _status_error(404)

    with pytest.raises(HttpResponseError):
        call_with_retries(action, "block 0", UploadOptions(), None, lambda _: None)
    assert calls == [1]


def _status_error(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"simulated {status}")
    error.status_code = status
    return error


# -- the uploader's own checks ------------------------------------------------------------


@pytest.mark.parametrize("session_id", ["a/b", "..", "../x", "a.b", "", "x" * 65])
def test_broker_client_rejects_invalid_session_id(session_id: str) -> None:
    # Port 9 is closed: any request would fail with BrokerUnavailableError, not this.
    client = HttpBrokerClient("http://127.0.0.1:9/api", attempts=1)

    with pytest.raises(InvalidSessionIdError):
        client.issue_upload_urls(session_id, dt.date(2025, 3, 1), [FileRequest("logs/a.log", 1)])


def test_spool_with_tampered_session_id_is_rejected(broker: Broker, tmp_path: Path) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    meta_path = session.folder / "spool.json"
    meta = json.loads(meta_path.read_text())
    meta["session"]["session_id"] = "../other"
    meta_path.write_text(json.dumps(meta))

    with pytest.raises(RequestFieldError, match="invalid session id") as caught:
        Spool(tmp_path / "spool").get(session.session_id)
    assert caught.value.field == "session_id"


def test_spool_folder_must_match_session_id(broker: Broker, tmp_path: Path) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    session.folder.rename(session.folder.parent / "other-id")

    with pytest.raises(CaptureError, match="folder name must be the session id"):
        Spool(tmp_path / "spool").get("other-id")


def test_uploader_rejects_url_outside_session(
    broker: Broker, container: ContainerClient, tmp_path: Path
) -> None:
    session = Spool(tmp_path / "spool").start(broker, make_request())
    session.append_event({"type": "a"})
    other = broker.open_session(make_request())

    class MisdirectingIssuer:
        def issue_upload_urls(self, session_id, session_date, files):  # type: ignore[no-untyped-def]
            return broker.issue_upload_urls(other.session_id, other.session_date, files)

    with pytest.raises(UploadAuthorizationError, match="outside the session directory"):
        upload_session(session, BlobTarget(MisdirectingIssuer(), session.opened))

    assert list(container.list_blobs(name_starts_with=other.directory + "/events")) == []


def test_broker_client_maps_statuses_to_errors(
    broker_server: BrokerServer, container: ContainerClient
) -> None:
    client = HttpBrokerClient(broker_server.url)
    opened = client.open_session(make_request())
    container.upload_blob(f"{opened.directory}/_complete.json", b"{}")

    with pytest.raises(SessionCompleteError):
        client.issue_upload_urls(
            opened.session_id, opened.session_date, [FileRequest("logs/a.log", 1)]
        )
    with pytest.raises(RequestFieldError) as caught:
        client.issue_upload_urls(
            opened.session_id, opened.session_date, [FileRequest("tmp/a.log", 1)]
        )
    assert caught.value.field == "files[0].path"
    with pytest.raises(RequestTooLargeError):
        client._post("/sessions", {"padding": "x" * 300_000})


def test_broker_client_gives_up_on_unreachable_broker() -> None:
    client = HttpBrokerClient("http://127.0.0.1:9/api", attempts=2, timeout=2, sleep=lambda _: None)

    with pytest.raises(BrokerUnavailableError, match="failed 2 time"):
        client.open_session(make_request())


@pytest.mark.parametrize(
    "url", ["http://broker.example/api", "ftp://127.0.0.1/api", "https://x/api?code=1", "nohost"]
)
def test_check_broker_url_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        check_broker_url(url)


def test_check_broker_url_accepts_https_and_loopback() -> None:
    assert (
        check_broker_url("https://app.azurewebsites.net/api/")
        == "https://app.azurewebsites.net/api"
    )
    assert check_broker_url("http://127.0.0.1:7071/api") == "http://127.0.0.1:7071/api"


def test_expired_grant_is_refreshed_once(
    broker_settings: BrokerSettings, container: ContainerClient, tmp_path: Path
) -> None:
    fresh = Broker.from_settings(broker_settings)
    expired_clock = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    stale = Broker.from_settings(
        BrokerSettings(
            container=broker_settings.container,
            connection_string=broker_settings.connection_string,
            sas_ttl=dt.timedelta(minutes=1),
        ),
        clock=lambda: expired_clock,
    )

    class ExpiringThenFreshIssuer:
        calls = 0

        def issue_upload_urls(self, session_id, session_date, files) -> UploadGrant:  # type: ignore[no-untyped-def]
            self.calls += 1
            source = stale if self.calls == 1 else fresh
            return source.issue_upload_urls(session_id, session_date, files)

    session = Spool(tmp_path / "spool").start(fresh, make_request())
    session.append_event({"type": "a"})
    issuer = ExpiringThenFreshIssuer()

    report = upload_session(session, BlobTarget(issuer, session.opened, UploadOptions(attempts=1)))

    assert report.status == "uploaded"
    assert (
        issuer.calls == 3
    )  # the first grant, then one new URL for the file and one for the marker
