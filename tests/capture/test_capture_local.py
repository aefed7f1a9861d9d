"""The embedded default: sessions open and land in a local folder, with no server."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from playtest_spark.capture.errors import SessionNotFoundError
from playtest_spark.capture.local import LocalBroker
from playtest_spark.capture.spool import STATUS_UPLOADED, Spool, SpoolSession
from playtest_spark.capture.state import FileUploadState
from playtest_spark.capture.upload import target_for, upload_session
from playtest_spark.manifest import CompletionManifest, SessionManifest
from tests.capture.helpers import make_request, sha256_of_file, write_random_file


@pytest.fixture
def landing(tmp_path: Path) -> LocalBroker:
    return LocalBroker(tmp_path / "landing")


@pytest.fixture
def spooled(landing: LocalBroker, tmp_path: Path) -> SpoolSession:
    session = Spool(tmp_path / "spool").start(landing, make_request())
    session.append_event({"type": "start"})
    write_random_file(tmp_path / "take.mp4", 3 * 1024 * 1024 + 1)
    session.add_recording(tmp_path / "take.mp4")
    session.add_form({"fun": 5}, name="exit.json")
    return session


def test_local_open_writes_session_json(landing: LocalBroker) -> None:
    clock = dt.datetime(2025, 3, 1, 23, 59, 59, tzinfo=dt.timezone.utc)
    opened = LocalBroker(landing.root, clock=lambda: clock).open_session(make_request())

    manifest = SessionManifest.from_json(
        (landing.root / opened.directory / "session.json").read_text()
    )

    assert opened.directory.startswith("sessions/2025-03-01/")
    assert manifest.session_id == opened.session_id
    assert manifest.broker_start_utc == clock


def test_local_upload_lands_files_and_marker(spooled: SpoolSession, landing: LocalBroker) -> None:
    report = upload_session(spooled, target_for(spooled))

    folder = landing.root / spooled.opened.directory
    complete = CompletionManifest.from_json((folder / "_complete.json").read_text())
    local = {item.path: item for item in spooled.files()}
    assert report.status == "uploaded"
    assert sorted(entry.path for entry in complete.files) == sorted(local)
    for entry in complete.files:
        assert (folder / entry.path).stat().st_size == entry.size
        assert sha256_of_file(folder / entry.path) == entry.sha256
        assert entry.sha256 == sha256_of_file(local[entry.path].local_path)
    assert spooled.status() == STATUS_UPLOADED


def test_local_upload_again_changes_nothing(spooled: SpoolSession, landing: LocalBroker) -> None:
    upload_session(spooled, target_for(spooled))
    folder = landing.root / spooled.opened.directory
    before = {path: path.stat().st_mtime_ns for path in folder.rglob("*")}

    again = upload_session(spooled, target_for(spooled))
    (spooled.folder / "upload_state.json").unlink()
    after_lost_state = upload_session(spooled, target_for(spooled))

    after = {path: path.stat().st_mtime_ns for path in folder.rglob("*")}
    assert again.status == "already uploaded"
    assert after_lost_state.status == "already uploaded"
    assert after == before


def test_local_upload_restarts_partial_copy_cleanly(
    spooled: SpoolSession, landing: LocalBroker
) -> None:
    folder = landing.root / spooled.opened.directory
    (folder / "recordings").mkdir(parents=True)
    (folder / "recordings" / ".take.mp4.partial").write_bytes(b"left by a killed copy")
    recording = next(item for item in spooled.files() if item.path == "recordings/take.mp4")
    state = spooled.load_state()
    state.files[recording.path] = FileUploadState(recording.size, recording.mtime_ns, 0, "")
    state.save()

    upload_session(spooled, target_for(spooled))

    assert sha256_of_file(folder / "recordings" / "take.mp4") == sha256_of_file(
        recording.local_path
    )
    assert not (folder / "recordings" / ".take.mp4.partial").exists()


def test_local_upload_needs_session_json(spooled: SpoolSession, landing: LocalBroker) -> None:
    (landing.root / spooled.opened.directory / "session.json").unlink()

    with pytest.raises(SessionNotFoundError):
        upload_session(spooled, target_for(spooled))

    assert spooled.status() == "incomplete"


def test_local_upload_to_other_landing(spooled: SpoolSession, tmp_path: Path) -> None:
    other = LocalBroker(tmp_path / "other")
    folder = other.root / spooled.opened.directory
    folder.mkdir(parents=True)
    (folder / "session.json").write_text(json.dumps({"copied": True}))

    upload_session(spooled, target_for(spooled, landing=other.root))

    assert (folder / "_complete.json").is_file()
