"""The job over sessions built from the real sample files, one session per file."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from pyspark.sql import functions as F

from playtest_spark.config import JobConfig
from playtest_spark.demo import add_case_sessions, case_session_id
from playtest_spark.job import run_job
from playtest_spark.landing.local import LocalLanding
from playtest_spark.sql.connect import sqlite_path

pytestmark = pytest.mark.cases
DAY = dt.date(2026, 12, 3)

# Sample file -> (format, records loaded, records rejected).
EXPECTED_FILES = {
    ("events", "godot-roguelike-sim-events-head.jsonl"): ("jsonl", 300, 0),
    ("events", "pubg-telemetry-2018-one-per-type.json"): ("json-array", 29, 0),
    ("perf", "presentmon-v1metrics-camelcase-bom.csv"): ("presentmon-v1", 192, 0),
    ("perf", "presentmon-v2metrics-frametime-bom.csv"): ("presentmon-v2", 186, 0),
    ("perf", "presentmon-default-ms-qpc-bom.csv"): ("presentmon", 186, 0),
    ("perf", "capframex-csv-comment-header.csv"): ("capframex", 1982, 0),
    ("perf", "frameview-witcher3-log.csv"): ("frameview", 499, 0),
    ("perf", "afterburner-hml-re3-crlf.csv"): ("afterburner", 821, 0),
    ("logs", "godot4-mono-sts2-multiline-exceptions-head.log"): ("godot", 243, 0),
    ("logs", "unity-player-rimworld-oom-crash-tr.log"): ("unity", 685, 0),
    ("logs", "unreal-ue4-editor-ensure-crlf-mixed-lf.log"): ("unreal", 2451, 0),
    ("logs", "unreal-uefn-editor-bom-head.log"): ("unreal", 3985, 0),
    ("forms", "fluidsurveys-zombie-playtest-raw-export.csv"): ("survey-csv", 6243, 0),
    ("forms", "limesurvey-game-studies-responses-yflags.csv"): ("survey-csv", 1430, 0),
    ("forms", "geq-questionnaire-definition-fr.json"): ("questionnaire-definition", 0, 0),
    ("recordings", "chrome-mediarecorder-no-duration-vfr.webm"): ("webm", 1, 0),
    ("recordings", "mkvmerge-h264-vorbis-srt-3tracks.mkv"): ("mkv", 1, 0),
    ("recordings", "mp4-audio-only-no-video.mp4"): ("mp4", 1, 0),
    ("recordings", "ebml-header-only-40b.mkv"): ("recording", 1, 1),
}


@pytest.fixture(scope="module")
def cases_run(spark, cases, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cases")
    add_case_sessions(LocalLanding(tmp_path / "landing"), DAY, cases)
    config = JobConfig.from_sources(
        {"run_date": DAY.isoformat(), "landing": str(tmp_path / "landing"), "warehouse": str(tmp_path / "w")}, environ={}
    )
    run_job(spark, config)
    return config


def table(spark, config, name):
    return spark.read.format("delta").load(config.table_path(name))


def test_cases_every_file_accounted_for(spark, cases_run):
    files = {(r.session_id, r.path.split("/")[-1]): r for r in table(spark, cases_run, "landed_files").collect()}
    for (folder, name), (fmt, records, rejected) in EXPECTED_FILES.items():
        row = files[(case_session_id(folder, name), name)]
        assert (row.format, row.records, row.rejected) == (fmt, records, rejected), name


def test_cases_rows_reach_their_tables(spark, cases_run):
    counts = {
        "events": 329,
        "perf_samples": 192 + 186 + 186 + 1982 + 499 + 821,
        "log_entries": 243 + 685 + 2451 + 3985,
        "form_responses": 6243 + 1430,
        "recordings": 4,
    }
    for name, expected in counts.items():
        assert table(spark, cases_run, name).count() == expected, name


def test_cases_presentmon_column_sets_agree(spark, cases_run):
    perf = table(spark, cases_run, "perf_samples")

    def frames(file_name):
        session_id = case_session_id("perf", file_name)
        return perf.where(F.col("session_id") == session_id).select(
            "process_name", "offset_s", F.col("frame_time_ms").alias(file_name)
        )

    v1 = frames("presentmon-v1metrics-camelcase-bom.csv")
    v2 = frames("presentmon-v2metrics-frametime-bom.csv")
    default = frames("presentmon-default-ms-qpc-bom.csv")
    shared = v1.join(default, on=["process_name", "offset_s"], how="inner").join(v2, on=["process_name", "offset_s"], how="inner")
    rows = shared.collect()
    assert len(rows) == 186
    for row in rows:
        assert row["presentmon-v1metrics-camelcase-bom.csv"] == pytest.approx(row["presentmon-default-ms-qpc-bom.csv"], abs=1e-4)
        if row["presentmon-v2metrics-frametime-bom.csv"] is not None:
            assert row["presentmon-v2metrics-frametime-bom.csv"] == pytest.approx(row["presentmon-v1metrics-camelcase-bom.csv"], abs=1e-4)
    assert sum(1 for row in rows if row["presentmon-v2metrics-frametime-bom.csv"] is not None) == 181


def test_cases_capframex_header_becomes_session_attributes(spark, cases_run):
    session = table(spark, cases_run, "sessions").where(
        F.col("session_id") == case_session_id("perf", "capframex-csv-comment-header.csv")
    ).first()
    assert session.attributes
    assert any("Resident Evil" in value for value in session.attributes.values())


def test_cases_logs_values(spark, cases_run):
    logs = table(spark, cases_run, "log_entries")
    godot = logs.where(F.col("session_id") == case_session_id("logs", "godot4-mono-sts2-multiline-exceptions-head.log"))
    assert godot.where(F.col("level") == "ERROR").count() == 79
    unity = logs.where(F.col("session_id") == case_session_id("logs", "unity-player-rimworld-oom-crash-tr.log"))
    crash = unity.where(F.col("level") == "FATAL").collect()
    assert len(crash) == 1
    assert crash[0].stack_trace.count("\n") > 100
    bad_values = logs.where(F.col("message").contains("\r") | F.col("message").contains("\ufeff")).count()
    assert bad_values == 0


def test_cases_recordings_values(spark, cases_run):
    rows = {r.file_name: r for r in table(spark, cases_run, "recordings").collect()}
    mkv = rows["mkvmerge-h264-vorbis-srt-3tracks.mkv"]
    assert (mkv.width, mkv.height, mkv.video_codec, mkv.stream_count) == (222, 106, "h264", 3)
    audio_only = rows["mp4-audio-only-no-video.mp4"]
    assert audio_only.width is None
    assert audio_only.audio_codec == "aac"
    assert rows["chrome-mediarecorder-no-duration-vfr.webm"].frame_rate is None
    assert rows["ebml-header-only-40b.mkv"].status == "unreadable"
    assert rows["mkvmerge-h264-vorbis-srt-3tracks.mkv"].blob_url.endswith(
        "/case-recordings-mkvmerge-h264-vorbis-srt-3tracks/recordings/mkvmerge-h264-vorbis-srt-3tracks.mkv"
    )
    quarantine = table(spark, cases_run, "quarantine").where(
        F.col("session_id") == case_session_id("recordings", "ebml-header-only-40b.mkv")
    ).collect()
    assert len(quarantine) == 1
    assert quarantine[0].reason


def test_cases_sql_summary_and_issues(cases_run):
    connection = sqlite3.connect(sqlite_path(cases_run.effective_sql_url))
    try:
        summary = dict(connection.execute(
            "SELECT session_id, frame_count FROM session_summary WHERE frame_count > 0").fetchall())
        issues = connection.execute(
            "SELECT COUNT(*), SUM(occurrences) FROM log_issues WHERE level = 'ERROR'").fetchone()
        recordings = connection.execute("SELECT COUNT(*) FROM recordings").fetchone()[0]
        answers = connection.execute("SELECT COUNT(*) FROM form_responses").fetchone()[0]
    finally:
        connection.close()
    assert summary[case_session_id("perf", "presentmon-v1metrics-camelcase-bom.csv")] == 116  # dwm.exe, the main process
    assert case_session_id("perf", "afterburner-hml-re3-crlf.csv") not in summary  # one sample a second, not frames
    assert issues[0] > 0
    assert issues[1] >= 79
    assert recordings == 4
    assert answers == 6243 + 1430
