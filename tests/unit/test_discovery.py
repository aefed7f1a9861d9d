"""Discovery: which session directories of the window a run processes."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from playtest_spark.discovery import LedgerEntry, SessionState, discover_sessions
from playtest_spark.ingest import plan_bins
from playtest_spark.landing.local import LocalLanding
from playtest_spark.manifest import InventoryEntry
from playtest_spark.synth import write_session

DAY = dt.date(2026, 12, 3)
LINE = b'{"type": "a", "ts": "2026-12-03T10:00:00Z"}\n'


@pytest.fixture
def landing(tmp_path):
    return LocalLanding(tmp_path)


def states(discovery):
    return {c.session_id: c.state for c in discovery.candidates}


def test_discovery_complete_session_ready(landing):
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE})
    discovery = discover_sessions(landing, [DAY], ledger={})
    assert states(discovery) == {"s1": SessionState.READY}
    assert [f.path for f in discovery.ready[0].files] == ["events/e.jsonl"]


def test_discovery_without_marker_is_open(landing):
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE}, complete=False)
    assert states(discover_sessions(landing, [DAY], ledger={})) == {"s1": SessionState.OPEN}


def test_discovery_missing_file_incomplete(landing):
    entry = InventoryEntry("logs/gone.log", 4, hashlib.sha256(b"gone").hexdigest())
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE}, inventory_override={entry.path: entry})
    candidate = discover_sessions(landing, [DAY], ledger={}).candidates[0]
    assert candidate.state is SessionState.INCOMPLETE
    assert "'logs/gone.log' is listed in _complete.json but missing" in candidate.reason


def test_discovery_size_mismatch_incomplete(landing):
    entry = InventoryEntry("events/e.jsonl", len(LINE) + 5, hashlib.sha256(LINE).hexdigest())
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE}, inventory_override={entry.path: entry})
    candidate = discover_sessions(landing, [DAY], ledger={}).candidates[0]
    assert candidate.state is SessionState.INCOMPLETE
    assert "bytes" in candidate.reason


def test_discovery_processed_inventory_skipped(landing):
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE})
    first = discover_sessions(landing, [DAY], ledger={}).ready[0]
    again = discover_sessions(landing, [DAY], ledger={"s1": LedgerEntry(DAY, first.inventory_hash)})
    assert states(again) == {"s1": SessionState.PROCESSED}


def test_discovery_reupload_processed_again(landing):
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE})
    discovery = discover_sessions(landing, [DAY], ledger={"s1": LedgerEntry(DAY, "0" * 64)})
    assert states(discovery) == {"s1": SessionState.READY}


def test_discovery_invalid_directory_name_rejected(landing):
    landing.write_bytes("sessions/2026-12-03/bad.id/_complete.json", b"{}")
    candidate = discover_sessions(landing, [DAY], ledger={}).candidates[0]
    assert candidate.state is SessionState.INVALID
    assert "invalid session id 'bad.id'" in candidate.reason


def test_discovery_manifest_naming_other_session_invalid(landing):
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE})
    text = landing.read_bytes("sessions/2026-12-03/s1/session.json").replace(b'"s1"', b'"s2"')
    landing.write_bytes("sessions/2026-12-03/s1/session.json", text)
    candidate = discover_sessions(landing, [DAY], ledger={}).candidates[0]
    assert candidate.state is SessionState.INVALID
    assert "names session 's2'" in candidate.reason


def test_discovery_lists_only_window_dates(landing):
    write_session(landing, DAY, "today", {"events/e.jsonl": LINE})
    write_session(landing, DAY - dt.timedelta(days=9), "old", {"events/e.jsonl": LINE})
    discovery = discover_sessions(landing, [DAY, DAY - dt.timedelta(days=1)], ledger={})
    assert states(discovery) == {"today": SessionState.READY}


def test_discovery_file_outside_inventory_not_loaded(landing):
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE})
    landing.write_bytes("sessions/2026-12-03/s1/events/late.jsonl", LINE)
    landing.write_bytes("sessions/2026-12-03/s1/notes.txt", b"x")
    files = {f.path: f.status for f in discover_sessions(landing, [DAY], ledger={}).ready[0].files}
    assert files == {"events/e.jsonl": "load", "events/late.jsonl": "not_in_inventory", "notes.txt": "not_in_inventory"}


def test_plan_bins_keeps_sessions_whole_and_balanced(landing):
    for index in range(6):
        write_session(landing, DAY, f"s{index}", {"events/a.jsonl": LINE * (index + 1), "events/b.jsonl": LINE})
    bins = plan_bins(discover_sessions(landing, [DAY], ledger={}).ready, min_bins=3)
    assert len(bins) == 3
    sessions_per_bin = [{task.session_id for task in bin_} for bin_ in bins]
    assert sum(len(s) for s in sessions_per_bin) == 6
    assert set().union(*sessions_per_bin) == {f"s{i}" for i in range(6)}
    sizes = [sum(task.size for task in bin_) for bin_ in bins]
    assert max(sizes) - min(sizes) <= len(LINE) * 6


def test_discovery_same_id_on_two_dates_invalid(landing):
    write_session(landing, DAY - dt.timedelta(days=1), "twice", {"events/e.jsonl": LINE})
    write_session(landing, DAY, "twice", {"events/e.jsonl": LINE})
    discovery = discover_sessions(landing, [DAY, DAY - dt.timedelta(days=1)], ledger={})
    by_date = {c.session_date: c for c in discovery.candidates}
    assert by_date[DAY - dt.timedelta(days=1)].state is SessionState.READY
    assert by_date[DAY].state is SessionState.INVALID
    assert "also landed on 2026-12-02" in by_date[DAY].reason


def test_discovery_id_processed_for_other_date_invalid(landing):
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE})
    ledger = {"s1": LedgerEntry(DAY - dt.timedelta(days=30), "0" * 64)}
    candidate = discover_sessions(landing, [DAY], ledger=lambda ids: ledger).candidates[0]
    assert candidate.state is SessionState.INVALID
    assert "already processed for 2026-11-03" in candidate.reason


def test_discovery_end_before_start_invalid(landing):
    write_session(landing, DAY, "s1", {"events/e.jsonl": LINE}, duration_s=-60)
    candidate = discover_sessions(landing, [DAY], ledger={}).candidates[0]
    assert candidate.state is SessionState.INVALID
    assert "before session.json device_start" in candidate.reason
