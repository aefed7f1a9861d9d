"""DataFrame -> DataFrame transforms from the Delta tables to the curated SQL tables.

The SQL side gets per-session summaries and per-second roll-ups; Delta keeps every frame.
Percentiles are approximate (`percentile_approx`, relative error about 1/accuracy):
exact ones cost a sort per session.
"""

from __future__ import annotations

import sqlalchemy
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from playtest_spark.sql.tables import CURATED_BY_NAME

# A frame slower than this is a hitch (20 FPS).
HITCH_MS = 50.0
PERCENTILE_ACCURACY = 10_000
# Tools that log one sample per second, not one row per frame: excluded from frame stats.
PER_SECOND_TOOLS = ("afterburner",)
# Maximum length of a sample message or stack trace copied to SQL. The full text stays
# in the Delta table `log_entries`.
MAX_SAMPLE_CHARS = 8_000
# Samples further than this from a capture's start (about 31 years) are clock garbage.
MAX_OFFSET_S = 1e9


def curated_select(df: DataFrame, table: str) -> DataFrame:
    """Select the curated table's columns in order: the SQL schema contract.

    Text is made to fit SQL: NUL characters are removed (PostgreSQL rejects them) and
    text longer than its column is cut to the column's length (Delta keeps it whole).
    """
    columns = []
    for column in CURATED_BY_NAME[table].columns:
        value = F.col(column.name)
        if isinstance(column.type, sqlalchemy.String):
            value = F.translate(value, "\u0000", "")
            if column.type.length:
                value = F.substring(value, 1, column.type.length)
            value = value.alias(column.name)
        columns.append(value)
    return df.select(*columns)


def frame_rows(perf: DataFrame) -> DataFrame:
    """Keep the per-frame rows of the main process of each capture.

    A PresentMon capture records every process that presents (the game, dwm.exe,
    overlays). The process with the most frames in a file is taken as the game; rows
    without a process name are kept.
    """
    per_frame = perf.where(~F.coalesce(F.col("source_tool").isin(*PER_SECOND_TOOLS), F.lit(False)))
    counts = per_frame.groupBy("session_id", "source_file", "process_name").agg(F.count("*").alias("frames"))
    ranked = counts.withColumn(
        "rank",
        F.row_number().over(
            Window.partitionBy("session_id", "source_file").orderBy(
                F.col("frames").desc(), F.col("process_name").asc_nulls_last()
            )
        ),
    )
    main_process = ranked.where(F.col("rank") == 1).select("session_id", "source_file", F.col("process_name").alias("main_process"))
    return (
        per_frame.join(main_process, on=["session_id", "source_file"], how="inner")
        .where(F.col("process_name").isNull() | (F.col("process_name") == F.col("main_process")))
        .drop("main_process")
    )


def frame_stats(perf: DataFrame) -> DataFrame:
    """Return per-session frame-time statistics of the main process.

    `fps_1pct_low` is 1000 / the 99th percentile frame time, the frame rate that 99 %
    of frames reach or beat.
    """
    frames = frame_rows(perf).where(F.col("frame_time_ms").isNotNull() & (F.col("frame_time_ms") > 0))
    quantiles = F.percentile_approx("frame_time_ms", [0.5, 0.95, 0.99], PERCENTILE_ACCURACY)
    return (
        frames.groupBy("session_id")
        .agg(
            F.count("*").alias("frame_count"),
            F.avg("frame_time_ms").alias("frame_time_mean_ms"),
            quantiles.alias("q"),
            F.sum(F.when(F.col("frame_time_ms") > HITCH_MS, 1).otherwise(0)).alias("hitch_count"),
        )
        .select(
            "session_id",
            "frame_count",
            "frame_time_mean_ms",
            F.col("q")[0].alias("frame_time_p50_ms"),
            F.col("q")[1].alias("frame_time_p95_ms"),
            F.col("q")[2].alias("frame_time_p99_ms"),
            (F.lit(1000.0) / F.col("frame_time_mean_ms")).alias("fps_mean"),
            (F.lit(1000.0) / F.col("q")[2]).alias("fps_1pct_low"),
            F.col("hitch_count").cast("long"),
        )
    )


def _count_by_session(df: DataFrame, name: str, condition: Column | None = None) -> DataFrame:
    if condition is not None:
        df = df.where(condition)
    return df.groupBy("session_id").agg(F.count("*").alias(name))


def session_summary(
    sessions: DataFrame,
    events: DataFrame,
    perf: DataFrame,
    logs: DataFrame,
    forms: DataFrame,
    recordings: DataFrame,
    quarantine: DataFrame,
) -> DataFrame:
    """Build `session_summary`: one row per session with its key figures."""
    level = F.upper(F.col("level"))
    form_scores = forms.groupBy("session_id").agg(
        F.count("*").alias("form_answer_count"),
        F.avg("answer_number").alias("form_score_mean"),
    )
    summary = (
        sessions.select(
            "session_id", "session_date", "game", "build", "platform", "device_model", "player_id",
            F.col("broker_start_utc").alias("start_utc"), "end_utc", "duration_s", "inventory_hash", "run_id",
        )
        .join(_count_by_session(events, "event_count"), on="session_id", how="left")
        .join(frame_stats(perf), on="session_id", how="left")
        .join(_count_by_session(logs, "error_count", level.isin("ERROR", "FATAL")), on="session_id", how="left")
        .join(_count_by_session(logs, "warning_count", level == "WARNING"), on="session_id", how="left")
        .join(form_scores, on="session_id", how="left")
        .join(_count_by_session(recordings, "recording_count"), on="session_id", how="left")
        .join(_count_by_session(quarantine, "quarantined_count"), on="session_id", how="left")
    )
    zero_when_missing = ["event_count", "frame_count", "hitch_count", "error_count", "warning_count",
                         "form_answer_count", "recording_count", "quarantined_count"]
    summary = summary.fillna(0, subset=zero_when_missing)
    return summary.withColumn("recording_count", F.col("recording_count").cast("int")).transform(
        lambda df: curated_select(df, "session_summary")
    )


def session_event_counts(events: DataFrame, run_id: str) -> DataFrame:
    """Build `session_event_counts`: events per session and type."""
    return (
        events.where(F.col("event_type").isNotNull())
        .groupBy("session_id", "event_type")
        .agg(F.count("*").alias("event_count"))
        .withColumn("run_id", F.lit(run_id))
        .transform(lambda df: curated_select(df, "session_event_counts"))
    )


def perf_seconds(perf: DataFrame, sessions: DataFrame, run_id: str) -> DataFrame:
    """Build `perf_seconds`: per-second roll-ups of every capture's main process.

    `second` is the whole second since the capture's first sample. `second_start_utc` is
    the session's broker start plus that second, which is an estimate when the capture
    began after the session opened.
    """
    starts = sessions.select("session_id", "broker_start_utc")
    per_frame = frame_rows(perf)
    per_second_tools = perf.where(F.col("source_tool").isin(*PER_SECOND_TOOLS))
    rows = per_frame.unionByName(per_second_tools)
    return (
        rows.where(F.col("offset_s").isNotNull() & (F.abs("offset_s") < MAX_OFFSET_S))
        .withColumn("second", F.floor("offset_s").cast("long"))
        .groupBy("session_id", "source_file", "second")
        .agg(
            F.first("source_tool", ignorenulls=True).alias("source_tool"),
            F.count("*").alias("frames"),
            F.avg("frame_time_ms").alias("frame_time_mean_ms"),
            F.max("frame_time_ms").alias("frame_time_max_ms"),
            F.avg("cpu_busy_ms").alias("cpu_busy_mean_ms"),
            F.avg("gpu_busy_ms").alias("gpu_busy_mean_ms"),
            F.avg("cpu_util_pct").alias("cpu_util_pct"),
            F.avg("gpu_util_pct").alias("gpu_util_pct"),
            F.avg("memory_mb").alias("memory_mb"),
            F.sum(F.when(F.col("frame_time_ms") > HITCH_MS, 1).otherwise(0)).cast("long").alias("hitches"),
            F.sum(F.when(F.col("dropped"), 1).otherwise(0)).cast("long").alias("dropped_frames"),
        )
        .withColumn("fps", F.when(F.col("frame_time_mean_ms") > 0, F.lit(1000.0) / F.col("frame_time_mean_ms")))
        .join(F.broadcast(starts), on="session_id", how="left")
        .withColumn("second_start_utc", F.timestamp_seconds(F.unix_timestamp("broker_start_utc") + F.col("second")))
        .withColumn("run_id", F.lit(run_id))
        .transform(lambda df: curated_select(df, "perf_seconds"))
    )


def log_fingerprints(logs: DataFrame, sessions: DataFrame, run_id: str) -> DataFrame:
    """Build `log_fingerprints`: log entries grouped per session and fingerprint.

    The sample message and stack trace are those of the first occurrence in the file.
    """
    first = F.min_by(F.struct("message", "stack_trace", "level", "category"), F.struct("source_file", "line_no"))
    builds = sessions.select("session_id", "build")
    return (
        logs.where(F.col("fingerprint").isNotNull())
        .groupBy("session_id", "fingerprint")
        .agg(
            first.alias("sample"),
            F.count("*").alias("occurrences"),
            F.min("logged_at").alias("first_seen_utc"),
            F.max("logged_at").alias("last_seen_utc"),
        )
        .join(F.broadcast(builds), on="session_id", how="left")
        .select(
            "session_id", "fingerprint", "build",
            F.col("sample.level").alias("level"),
            F.col("sample.category").alias("category"),
            F.substring("sample.message", 1, MAX_SAMPLE_CHARS).alias("sample_message"),
            F.substring("sample.stack_trace", 1, MAX_SAMPLE_CHARS).alias("sample_stack_trace"),
            "occurrences", "first_seen_utc", "last_seen_utc",
            F.lit(run_id).alias("run_id"),
        )
        .transform(lambda df: curated_select(df, "log_fingerprints"))
    )


def curated_events(events: DataFrame) -> DataFrame:
    return curated_select(events, "events")


def curated_forms(forms: DataFrame) -> DataFrame:
    return curated_select(forms.where(F.col("question_id").isNotNull()), "form_responses")


def curated_recordings(recordings: DataFrame) -> DataFrame:
    return curated_select(recordings, "recordings")
