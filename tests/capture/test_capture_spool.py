"""The device spool and its upload state (no server needed)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from playtest_spark.capture.errors import SessionClosedError
from playtest_spark.capture.local import LocalBroker
from playtest_spark.capture.spool import (
    STATE_FILE,
    STATUS_INCOMPLETE,
    STATUS_OPEN,
    STATUS_PENDING,
    Spool,
    SpoolSession,
)
from playtest_spark.capture.state import FileUploadState, UploadState
from playtest_spark.errors import CaptureError, InvalidSessionIdError
from playtest_spark.manifest import KINDS
from tests.capture.helpers import make_request


@pytest.fixture
def spooled(tmp_path: Path) -> SpoolSession:
    return Spool(tmp_path / "spool").start(LocalBroker(tmp_path / "landing"), make_request())


def test_spool_start_creates_kind_folders(spooled: SpoolSession) -> None:
    for kind in KINDS:
        assert (spooled.folder / kind).is_dir()


def test_spool_start_records_destination(spooled: SpoolSession, tmp_path: Path) -> None:
    assert spooled.destination == {"landing": str((tmp_path / "landing").resolve())}


def test_append_event_writes_one_line_each(spooled: SpoolSession) -> None:
    spooled.append_event({"type": "level_start", "level": 1})
    spooled.append_event({"type": "death", "cause": "fall", "note": "ünïcode"})

    lines = (spooled.folder / "events" / "events.jsonl").read_text("utf-8").splitlines()

    assert [json.loads(line)["type"] for line in lines] == ["level_start", "death"]
    assert json.loads(lines[1])["note"] == "ünïcode"


def test_event_writer_rejects_nan_and_non_mapping(spooled: SpoolSession) -> None:
    with spooled.event_writer() as writer:
        with pytest.raises(ValueError):
            writer.append({"fps": float("nan")})
        with pytest.raises(TypeError):
            writer.append(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_event_writer_starts_new_line_after_cut_line(spooled: SpoolSession) -> None:
    path = spooled.folder / "events" / "events.jsonl"
    path.write_bytes(b'{"type":"a"}\n{"type":"cut mid-wri')

    spooled.append_event({"type": "b"})

    lines = path.read_bytes().split(b"\n")
    assert lines[1] == b'{"type":"cut mid-wri'
    assert json.loads(lines[2]) == {"type": "b"}


# Appends events without closing the writer, then SIGKILLs its own process: only what
# `append` already flushed can survive.
APPEND_THEN_CRASH = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from playtest_spark.capture.spool import Spool

    folder = Path(sys.argv[1])
    writer = Spool(folder.parent).get(folder.name).event_writer()
    for index in range(int(sys.argv[2])):
        writer.append({"type": "tick", "index": index})
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_events_survive_a_crash_of_the_writer(spooled: SpoolSession) -> None:
    crashed = subprocess.run(
        [sys.executable, "-c", APPEND_THEN_CRASH, str(spooled.folder), "50"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    lines = (spooled.folder / "events" / "events.jsonl").read_text().splitlines()

    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(lines) == 50
    assert json.loads(lines[-1]) == {"type": "tick", "index": 49}


def test_add_file_copies_into_kind_folder(spooled: SpoolSession, tmp_path: Path) -> None:
    source = tmp_path / "Game.log"
    source.write_text("[Error] boom\n")

    relative = spooled.add_log(source)

    assert relative == "logs/Game.log"
    assert (spooled.folder / relative).read_text() == "[Error] boom\n"
    assert source.exists()


def test_add_recording_move_removes_source(spooled: SpoolSession, tmp_path: Path) -> None:
    source = tmp_path / "take1.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42")

    relative = spooled.add_recording(source, name="cam1/take1.mp4", move=True)

    assert relative == "recordings/cam1/take1.mp4"
    assert not source.exists()


def test_add_file_rejects_existing_name(spooled: SpoolSession, tmp_path: Path) -> None:
    source = tmp_path / "perf.csv"
    source.write_text("frame,ms\n1,16.6\n")
    spooled.add_performance(source)

    with pytest.raises(CaptureError, match="already has performance/perf.csv"):
        spooled.add_performance(source)


@pytest.mark.parametrize("name", ["../escape.log", ".hidden.log", "a/../../b.log", "/abs.log"])
def test_add_file_rejects_unsafe_name(spooled: SpoolSession, tmp_path: Path, name: str) -> None:
    source = tmp_path / "x.log"
    source.write_text("x")

    with pytest.raises(CaptureError):
        spooled.add_log(source, name=name)


def test_add_file_rejects_missing_source(spooled: SpoolSession, tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        spooled.add_log(tmp_path / "missing.log")


def test_add_form_writes_mapping_as_json(spooled: SpoolSession) -> None:
    relative = spooled.add_form({"fun": 4, "comment": "too hard"}, name="exit-survey.json")

    assert json.loads((spooled.folder / relative).read_text()) == {"fun": 4, "comment": "too hard"}


def test_files_skip_hidden_partial_copies(spooled: SpoolSession) -> None:
    (spooled.folder / "recordings" / ".take.mp4.partial").write_bytes(b"half")
    spooled.append_event({"type": "a"})

    paths = [item.path for item in spooled.files()]

    assert paths == ["events/events.jsonl"]


def test_seal_rejects_later_adds_and_keeps_end(spooled: SpoolSession, tmp_path: Path) -> None:
    end = dt.datetime(2025, 3, 1, 11, tzinfo=dt.timezone.utc)
    spooled.seal(end)
    source = tmp_path / "late.log"
    source.write_text("late")

    with pytest.raises(SessionClosedError):
        spooled.add_log(source)
    with pytest.raises(SessionClosedError):
        spooled.append_event({"type": "late"})
    assert spooled.seal() == end


def test_seal_is_seen_by_other_handles(spooled: SpoolSession, tmp_path: Path) -> None:
    other = Spool(spooled.folder.parent).get(spooled.session_id)
    spooled.seal()

    with pytest.raises(SessionClosedError):
        other.append_event({"type": "late"})


def test_status_follows_upload_state(spooled: SpoolSession) -> None:
    assert spooled.status() == STATUS_OPEN
    spooled.seal()
    assert spooled.status() == STATUS_PENDING
    state = spooled.load_state()
    state.last_error = "UploadTimeoutError: timed out"
    state.save()
    assert spooled.status() == STATUS_INCOMPLETE


def test_upload_state_round_trips(tmp_path: Path) -> None:
    state = UploadState(tmp_path / STATE_FILE)
    state.files["recordings/a.mp4"] = FileUploadState(10, 5, 4, "tok", staged={2, 0})
    state.save()

    loaded = UploadState.load(tmp_path / STATE_FILE)

    assert loaded.files["recordings/a.mp4"].staged == {0, 2}
    assert loaded.files["recordings/a.mp4"].token == "tok"


def test_upload_state_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    state = UploadState(tmp_path / STATE_FILE)
    state.save()

    assert sorted(path.name for path in tmp_path.iterdir()) == [STATE_FILE]


def test_upload_state_ignores_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text('{"files": {"a": {"size"')

    state = UploadState.load(tmp_path / STATE_FILE)

    assert state.files == {}


def test_session_lock_rejects_second_holder(spooled: SpoolSession) -> None:
    other = Spool(spooled.folder.parent).get(spooled.session_id)

    with (
        spooled.lock(),
        pytest.raises(CaptureError, match="locked by another upload"),
        other.lock(),
    ):
        pass


def test_spool_get_rejects_invalid_id(tmp_path: Path) -> None:
    with pytest.raises(InvalidSessionIdError):
        Spool(tmp_path).get("../etc")


def test_spool_lists_pending_and_latest_open(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    landing = LocalBroker(tmp_path / "landing")
    first = spool.start(landing, make_request())
    second = spool.start(landing, make_request())
    second.seal()

    assert [item.session_id for item in spool.pending()] == [first.session_id, second.session_id]
    assert spool.latest_open().session_id == first.session_id  # type: ignore[union-attr]
