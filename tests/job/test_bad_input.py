"""Bad input found by breaking the job: each case is quarantined or refused clearly,
and the run goes on."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from playtest_spark.config import JobConfig
from playtest_spark.errors import ConfigError, LandingError, PublishError
from playtest_spark.job import run_job
from playtest_spark.landing.local import LocalLanding
from playtest_spark.synth import write_session

DAY = dt.date(2026, 12, 3)
OK_LINE = b'{"type": "ok", "ts": "2026-12-03T12:00:00Z"}\n'
PERF_HEADER = b"Application,ProcessID,TimeInSeconds,MsBetweenPresents,MsUntilRenderComplete,Dropped\n"


def config_for(tmp_path, **changes) -> JobConfig:
    options = {"run_date": DAY.isoformat(), "landing": str(tmp_path / "landing"), "warehouse": str(tmp_path / "w")}
    options.update(changes)
    return JobConfig.from_sources(options, environ={})


@pytest.fixture(scope="module")
def bad_run(spark, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bad")
    landing = LocalLanding(tmp_path / "landing")
    write_session(landing, DAY, "surrogate", {"events/e.jsonl": OK_LINE + b'{"type":"\\ud800","ts":"2026-12-03T12:00:01Z"}\n'})
    write_session(landing, DAY, "perf-not-finite", {"performance/p.csv": PERF_HEADER
                  + b"Game.exe,1,0.0,16.6,8.0,0\nGame.exe,1,inf,16.6,8.0,0\nGame.exe,1,1e400,NaN,8.0,0\nGame.exe,1,0.5,16.6,8.0,0\n"})
    write_session(landing, DAY, "form-string", {"forms/str.json": b'"hello"', "events/e.jsonl": OK_LINE})
    write_session(landing, DAY, "bool-version", {"events/e.jsonl": OK_LINE})
    key = "sessions/2026-12-03/bool-version/session.json"
    body = json.loads(landing.read_bytes(key))
    body["schema_version"] = True
    landing.write_bytes(key, json.dumps(body).encode())
    write_session(landing, DAY - dt.timedelta(days=1), "twice", {"events/e.jsonl": OK_LINE})
    write_session(landing, DAY, "twice", {"events/e.jsonl": OK_LINE * 2})
    config = config_for(tmp_path)
    report = run_job(spark, config)
    return config, report


def rows(spark, config, table):
    return spark.read.format("delta").load(config.table_path(table))


def reasons(spark, config, session_id):
    return [r.reason for r in rows(spark, config, "quarantine").where(F.col("session_id") == session_id).collect()]


def test_bad_input_run_finishes(bad_run):
    _, report = bad_run
    assert report.status == "succeeded"


def test_bad_input_surrogate_event_loads_rest(spark, bad_run):
    config, _ = bad_run
    events = rows(spark, config, "events").where(F.col("session_id") == "surrogate").collect()
    assert len(events) >= 1
    assert "ok" in {e.event_type for e in events}


def test_bad_input_non_finite_samples_become_null(spark, bad_run):
    config, _ = bad_run
    perf = rows(spark, config, "perf_samples").where(F.col("session_id") == "perf-not-finite")
    offsets = [r.offset_s for r in perf.orderBy("sample_no").collect()]
    assert len(offsets) == 4
    assert offsets[0] == 0.0
    assert all(o is None or abs(o) < 1e9 for o in offsets)


def test_bad_input_form_without_records_quarantined(spark, bad_run):
    config, _ = bad_run
    assert any("holds no" in reason for reason in reasons(spark, config, "form-string"))


def test_bad_input_boolean_schema_version_invalid(spark, bad_run):
    config, _ = bad_run
    found = reasons(spark, config, "bool-version")
    assert any("invalid schema_version True" in reason for reason in found)
    assert rows(spark, config, "sessions").where(F.col("session_id") == "bool-version").count() == 0


def test_bad_input_duplicate_session_id_loaded_once(spark, bad_run):
    config, _ = bad_run
    assert rows(spark, config, "events").where(F.col("session_id") == "twice").count() == 1
    assert any("also landed on 2026-12-02" in reason for reason in reasons(spark, config, "twice"))


def test_bad_input_missing_landing_refused(spark, tmp_path):
    with pytest.raises(LandingError, match="not found"):
        run_job(spark, config_for(tmp_path, landing=str(tmp_path / "nowhere")))


def test_bad_input_warehouse_file_refused(spark, tmp_path):
    (tmp_path / "landing").mkdir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        run_job(spark, config_for(tmp_path, warehouse=str(tmp_path / "afile")))


def test_bad_input_failed_run_recorded(spark, tmp_path, monkeypatch):
    write_session(LocalLanding(tmp_path / "landing"), DAY, "s1", {"events/e.jsonl": OK_LINE})
    config = config_for(tmp_path)

    def fail(*args, **kwargs):
        raise PublishError("database unreachable (simulated)")

    monkeypatch.setattr("playtest_spark.job.publish_curated", fail)
    with pytest.raises(PublishError):
        run_job(spark, config)
    run = rows(spark, config, "runs").first()
    assert run.status == "failed"
    assert "database unreachable" in run.message
