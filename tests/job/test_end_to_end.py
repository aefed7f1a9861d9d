"""The whole job on a local landing with the embedded SQLite default."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from playtest_spark import job as job_module
from playtest_spark.config import JobConfig
from playtest_spark.demo import add_bad_input_sessions
from playtest_spark.errors import PublishError
from playtest_spark.job import run_job
from playtest_spark.landing.local import LocalLanding
from playtest_spark.sql.connect import sqlite_path
from playtest_spark.synth import SyntheticSpec, generate_day, write_session
from tests.support.snapshot import delta_snapshot, sqlite_snapshot

DAY = dt.date(2026, 12, 3)
SPEC = SyntheticSpec(seconds=5, fps=60.0, events_per_second=4.0)
EVENTS_PER_SESSION = 20
FRAMES_PER_SESSION = 300


def build_landing(root) -> LocalLanding:
    landing = LocalLanding(root)
    generate_day(landing, DAY, 3, SPEC)
    generate_day(landing, DAY - dt.timedelta(days=2), 1, SPEC, seed=11)
    add_bad_input_sessions(landing, DAY)
    return landing


def make_config(tmp_path, name="warehouse", **changes) -> JobConfig:
    return JobConfig.from_sources(
        {"run_date": DAY.isoformat(), "landing": str(tmp_path / "landing"), "warehouse": str(tmp_path / name), **changes},
        environ={},
    )


def sql_rows(config, query):
    connection = sqlite3.connect(sqlite_path(config.effective_sql_url))
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e")
    build_landing(tmp_path / "landing")
    config = make_config(tmp_path)
    report = run_job(spark, config)
    return tmp_path, config, report


def test_job_loads_sessions_of_window(first_run, spark):
    _, config, report = first_run
    sessions = {r.session_id for r in spark.read.format("delta").load(config.table_path("sessions")).collect()}
    assert "syn-20261201-00000" in sessions  # two days late, inside the look-back window
    assert {"syn-20261203-00000", "syn-20261203-00001", "syn-20261203-00002", "bad-input-records"} <= sessions
    assert "bad-input-missing-file" not in sessions
    assert "still-uploading" not in sessions
    assert report.sessions["open"] == 1


def test_job_writes_events_and_frames(first_run, spark):
    _, config, _ = first_run
    events = spark.read.format("delta").load(config.table_path("events"))
    synthetic = events.where("session_id = 'syn-20261203-00000'")
    assert synthetic.count() == EVENTS_PER_SESSION
    assert [r.seq for r in synthetic.orderBy("seq").collect()] == list(range(1, EVENTS_PER_SESSION + 1))
    first = synthetic.orderBy("seq").first()
    assert first.event_time_utc - first.device_time == dt.timedelta(seconds=1.5)
    perf = spark.read.format("delta").load(config.table_path("perf_samples"))
    assert perf.where("session_id = 'syn-20261203-00000'").count() == FRAMES_PER_SESSION


def test_job_publishes_curated_sql(first_run):
    _, config, _ = first_run
    summary = dict(sql_rows(config, "SELECT session_id, event_count FROM session_summary"))
    assert summary["syn-20261203-00001"] == EVENTS_PER_SESSION
    frames = sql_rows(config, "SELECT frame_count, frame_time_p95_ms, fps_1pct_low FROM session_summary "
                              "WHERE session_id = 'syn-20261203-00001'")[0]
    assert frames[0] == FRAMES_PER_SESSION
    assert frames[1] > 0
    assert frames[2] > 0
    seconds = sql_rows(config, "SELECT COUNT(*), SUM(frames) FROM perf_seconds WHERE session_id = 'syn-20261203-00001'")[0]
    assert seconds[0] in (5, 6)
    assert seconds[1] == FRAMES_PER_SESSION
    start = sql_rows(config, "SELECT start_utc, session_date FROM session_summary WHERE session_id = 'syn-20261203-00001'")[0]
    assert start == ("2026-12-03 08:01:00.000000", "2026-12-03")


def test_job_quarantines_bad_records_with_reasons(first_run, spark):
    _, config, _ = first_run
    rows = spark.read.format("delta").load(config.table_path("quarantine")).collect()
    reasons = {(r.session_id, r.source_file, r.position): r.reason for r in rows}
    assert "truncated last line" in reasons[("bad-input-records", "events/truncated.jsonl", "line 3")]
    assert "invalid JSON" in reasons[("bad-input-records", "events/not-json.jsonl", "line 2")]
    assert "empty events file" in reasons[("bad-input-records", "events/empty.jsonl", "file")]
    assert "'logs/never-uploaded.log' is listed in _complete.json but missing" in reasons[("bad-input-missing-file", None, "session")]
    unknown = reasons[("bad-input-records", "performance/unknown-tool.csv", "file")]
    assert "Foo" in unknown
    events = spark.read.format("delta").load(config.table_path("events")).where("session_id = 'bad-input-records'")
    assert events.count() == 4


def test_job_rerun_leaves_every_table_identical(first_run, spark):
    _, config, _ = first_run
    before_delta = delta_snapshot(spark, config)
    before_sql = sqlite_snapshot(config)
    report = run_job(spark, config)
    assert report.message == "nothing new"
    assert delta_snapshot(spark, config) == before_delta
    assert sqlite_snapshot(config) == before_sql


def test_job_reupload_replaces_session_rows(spark, tmp_path):
    landing = build_landing(tmp_path / "landing")
    config = make_config(tmp_path)
    run_job(spark, config)
    line = b'{"type": "only_event", "ts": "2026-12-03T08:00:00Z"}\n'
    write_session(landing, DAY, "syn-20261203-00000", {"events/events.jsonl": line})
    report = run_job(spark, config)
    assert report.sessions["ready"] == 1
    events = spark.read.format("delta").load(config.table_path("events")).where("session_id = 'syn-20261203-00000'")
    assert [r.event_type for r in events.collect()] == ["only_event"]
    perf = spark.read.format("delta").load(config.table_path("perf_samples")).where("session_id = 'syn-20261203-00000'")
    assert perf.count() == 0
    assert sql_rows(config, "SELECT event_type FROM events WHERE session_id = 'syn-20261203-00000'") == [("only_event",)]
    assert sql_rows(config, "SELECT COUNT(*) FROM perf_seconds WHERE session_id = 'syn-20261203-00000'") == [(0,)]


def test_job_crash_before_ledger_recovers_to_clean_state(spark, tmp_path, monkeypatch):
    build_landing(tmp_path / "landing")
    clean = make_config(tmp_path, "clean")
    run_job(spark, clean)

    crashed = make_config(tmp_path, "crashed")
    real_publish = job_module.publish_curated
    calls = []

    def publish_then_fail(*args, **kwargs):
        calls.append(1)
        real_publish(*args, **kwargs)
        raise PublishError("simulated crash after the SQL commit, before the ledger")

    monkeypatch.setattr(job_module, "publish_curated", publish_then_fail)
    with pytest.raises(PublishError):
        run_job(spark, crashed)
    monkeypatch.setattr(job_module, "publish_curated", real_publish)
    run_job(spark, crashed)

    assert calls == [1]
    assert delta_snapshot(spark, crashed, ignore_run_clock=True) == delta_snapshot(spark, clean, ignore_run_clock=True)
    assert sqlite_snapshot(crashed) == sqlite_snapshot(clean)


def test_job_changed_content_holds_session_back(spark, tmp_path):
    landing = LocalLanding(tmp_path / "landing")
    generate_day(landing, DAY, 1, SPEC)
    key = "sessions/2026-12-03/syn-20261203-00000/logs/Player.log"
    data = landing.read_bytes(key)
    landing.write_bytes(key, data.replace(b"Level01", b"Level02"))
    config = make_config(tmp_path)
    report = run_job(spark, config)
    assert report.sessions["incomplete"] == 1
    assert spark.read.format("delta").load(config.table_path("events")).count() == 0
    assert spark.read.format("delta").load(config.table_path("ledger")).count() == 0
    reasons = [r.reason for r in spark.read.format("delta").load(config.table_path("quarantine")).collect()]
    assert any("SHA-256" in reason and "re-upload" in reason for reason in reasons)
