"""Transforms from parsed rows to Delta tables and from Delta tables to curated SQL."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from playtest_spark import curated, transforms

pytestmark = pytest.mark.usefixtures("spark")

PERF = StructType([
    StructField("session_id", StringType()),
    StructField("source_file", StringType()),
    StructField("process_name", StringType()),
    StructField("source_tool", StringType()),
    StructField("offset_s", DoubleType()),
    StructField("frame_time_ms", DoubleType()),
    StructField("cpu_busy_ms", DoubleType()),
    StructField("gpu_busy_ms", DoubleType()),
    StructField("cpu_util_pct", DoubleType()),
    StructField("gpu_util_pct", DoubleType()),
    StructField("memory_mb", DoubleType()),
    StructField("dropped", BooleanType()),
])


def perf_rows(spark, rows):
    full = [r + (None,) * (len(PERF.fields) - len(r)) for r in rows]
    return spark.createDataFrame(full, PERF)


def test_corrected_time_adds_clock_offset(spark):
    df = spark.createDataFrame(
        [(dt.datetime(2026, 12, 3, 10, 0, 0, 500000), 1500), (None, 10)], "device_time timestamp, offset long"
    )
    result = df.select(transforms.corrected_time(F.col("device_time"), F.col("offset")).alias("t"))
    expected = spark.createDataFrame([(dt.datetime(2026, 12, 3, 10, 0, 2),), (None,)], "t timestamp")
    assert_df_equality(result, expected, ignore_nullable=True)


def test_conform_orders_and_casts_columns(spark):
    schema = StructType([StructField("b", LongType()), StructField("a", StringType())])
    df = spark.createDataFrame([("x", 1, "extra")], "a string, b int, c string")
    result = transforms.conform(df, schema)
    assert result.schema == schema
    assert result.collect()[0].asDict() == {"b": 1, "a": "x"}


def test_frame_rows_keeps_main_process_only(spark):
    df = perf_rows(spark, [
        ("s", "p.csv", "Game.exe", "presentmon", 0.0, 16.0),
        ("s", "p.csv", "Game.exe", "presentmon", 0.016, 17.0),
        ("s", "p.csv", "dwm.exe", "presentmon", 0.01, 8.0),
        ("s", "ab.csv", None, "afterburner", 0.0, 16.0),
    ])
    result = curated.frame_rows(df).select("process_name", "frame_time_ms").orderBy("frame_time_ms")
    expected = spark.createDataFrame([("Game.exe", 16.0), ("Game.exe", 17.0)], "process_name string, frame_time_ms double")
    assert_df_equality(result, expected, ignore_nullable=True)


def test_frame_stats_percentiles_and_hitches(spark):
    frames = [("s", "p.csv", "G", "presentmon", i * 0.01, float(ms)) for i, ms in enumerate(list(range(1, 100)) + [200])]
    stats = curated.frame_stats(perf_rows(spark, frames)).collect()[0]
    assert stats.frame_count == 100
    assert stats.frame_time_p50_ms == 50.0
    assert stats.frame_time_p99_ms == 99.0
    assert stats.hitch_count == 50
    assert stats.fps_1pct_low == pytest.approx(1000 / 99.0)
    assert stats.frame_time_mean_ms == pytest.approx((sum(range(1, 100)) + 200) / 100)


def test_perf_seconds_rolls_up_per_second(spark):
    df = perf_rows(spark, [
        ("s", "p.csv", "G", "presentmon", 0.2, 10.0, None, None, None, None, None, True),
        ("s", "p.csv", "G", "presentmon", 0.9, 60.0),
        ("s", "p.csv", "G", "presentmon", 1.1, 20.0),
    ])
    sessions = spark.createDataFrame([("s", dt.datetime(2026, 12, 3, 10, 0, 0))], "session_id string, broker_start_utc timestamp")
    rows = {r.second: r for r in curated.perf_seconds(df, sessions, "run").collect()}
    assert rows[0].frames == 2
    assert rows[0].frame_time_mean_ms == 35.0
    assert rows[0].frame_time_max_ms == 60.0
    assert rows[0].hitches == 1
    assert rows[0].dropped_frames == 1
    assert rows[1].second_start_utc == dt.datetime(2026, 12, 3, 10, 0, 1)
    assert rows[1].fps == 50.0


def test_log_fingerprints_group_and_keep_first_sample(spark):
    schema = "session_id string, source_file string, line_no long, logged_at timestamp, level string, category string, message string, stack_trace string, fingerprint string"
    logs = spark.createDataFrame([
        ("s", "a.log", 5, None, "ERROR", "Net", "timeout 2", None, "f1"),
        ("s", "a.log", 2, None, "ERROR", "Net", "timeout 1", "at X", "f1"),
        ("s", "a.log", 9, None, "WARNING", "UI", "slow", None, "f2"),
    ], schema)
    sessions = spark.createDataFrame([("s", "1.0")], "session_id string, build string")
    rows = {r.fingerprint: r for r in curated.log_fingerprints(logs, sessions, "run").collect()}
    assert rows["f1"].occurrences == 2
    assert rows["f1"].sample_message == "timeout 1"
    assert rows["f1"].sample_stack_trace == "at X"
    assert rows["f1"].build == "1.0"
    assert rows["f2"].occurrences == 1


def test_session_summary_zero_counts_for_empty_kinds(spark):
    sessions = spark.createDataFrame(
        [("s", dt.date(2026, 12, 3), "g", "b", "p", "d", "pl", dt.datetime(2026, 12, 3, 10), dt.datetime(2026, 12, 3, 11), 3600.0, "h", "r")],
        "session_id string, session_date date, game string, build string, platform string, device_model string, "
        "player_id string, broker_start_utc timestamp, end_utc timestamp, duration_s double, inventory_hash string, run_id string",
    )
    empty = lambda schema: spark.createDataFrame([], schema)  # noqa: E731
    summary = curated.session_summary(
        sessions,
        empty("session_id string, event_type string"),
        perf_rows(spark, []),
        empty("session_id string, level string, fingerprint string"),
        empty("session_id string, answer_number double"),
        empty("session_id string"),
        empty("session_id string"),
    ).collect()[0]
    assert summary.event_count == 0
    assert summary.frame_count == 0
    assert summary.error_count == 0
    assert summary.frame_time_p95_ms is None
    assert summary.start_utc == dt.datetime(2026, 12, 3, 10)
