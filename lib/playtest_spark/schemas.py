"""Schemas of the Delta tables, declared once.

Parsers produce Arrow tables with the `*_RECORD` schemas, the columns a file yields by
itself. The job adds the session and run columns to reach the table schemas.
"""

from __future__ import annotations

from pyspark.sql.types import (
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


def _fields(*specs: tuple[str, object]) -> list[StructField]:
    return [StructField(name, data_type, True) for name, data_type in specs]


# Columns that tie a row to its session, file and run; prepended to every parsed table.
SESSION_KEY_FIELDS = _fields(
    ("session_date", DateType()),
    ("session_id", StringType()),
)
SOURCE_FIELDS = _fields(("source_file", StringType()))
RUN_FIELDS = _fields(("run_id", StringType()))

# -- what one file yields, before session columns are added -----------------------------

EVENT_RECORD = StructType(
    _fields(
        ("line_no", LongType()),
        ("device_time", TimestampType()),
        ("event_type", StringType()),
        ("payload", StringType()),
    )
)

PERF_RECORD = StructType(
    _fields(
        ("sample_no", LongType()),
        ("offset_s", DoubleType()),
        ("frame_time_ms", DoubleType()),
        ("cpu_busy_ms", DoubleType()),
        ("gpu_busy_ms", DoubleType()),
        ("display_latency_ms", DoubleType()),
        ("dropped", BooleanType()),
        ("cpu_util_pct", DoubleType()),
        ("gpu_util_pct", DoubleType()),
        ("memory_mb", DoubleType()),
        ("gpu_memory_mb", DoubleType()),
        ("process_name", StringType()),
        ("sample_time", TimestampType()),
        ("source_tool", StringType()),
    )
)

LOG_RECORD = StructType(
    _fields(
        ("line_no", LongType()),
        ("logged_at", TimestampType()),
        ("level", StringType()),
        ("category", StringType()),
        ("message", StringType()),
        ("stack_trace", StringType()),
        ("fingerprint", StringType()),
        ("log_format", StringType()),
    )
)

FORM_RECORD = StructType(
    _fields(
        ("form_id", StringType()),
        ("respondent_id", StringType()),
        ("row_no", LongType()),
        ("question_id", StringType()),
        ("question_text", StringType()),
        ("answer_text", StringType()),
        ("answer_number", DoubleType()),
        ("answered_at", TimestampType()),
        ("scale", StringType()),
    )
)

RECORDING_RECORD = StructType(
    _fields(
        ("file_name", StringType()),
        ("container", StringType()),
        ("duration_s", DoubleType()),
        ("video_codec", StringType()),
        ("width", IntegerType()),
        ("height", IntegerType()),
        ("frame_rate", DoubleType()),
        ("audio_codec", StringType()),
        ("size_bytes", LongType()),
        ("stream_count", IntegerType()),
        ("status", StringType()),
        ("reason", StringType()),
    )
)

# A rejected record or file: where it was and why.
PROBLEM_RECORD = StructType(
    _fields(
        ("position", StringType()),
        ("reason", StringType()),
        ("excerpt", StringType()),
    )
)

# Hardware and system facts found inside a file (GPU, CPU, driver, OS), kept per session.
ATTRIBUTE_RECORD = StructType(
    _fields(
        ("name", StringType()),
        ("value", StringType()),
    )
)

# -- Delta tables -----------------------------------------------------------------------------

LANDED_FILES = StructType(
    SESSION_KEY_FIELDS
    + _fields(
        ("path", StringType()),
        ("kind", StringType()),
        ("format", StringType()),
        ("size_bytes", LongType()),
        ("sha256", StringType()),
        ("status", StringType()),
        ("detail", StringType()),
        ("records", LongType()),
        ("rejected", LongType()),
    )
    + RUN_FIELDS
)

SESSIONS = StructType(
    SESSION_KEY_FIELDS
    + _fields(
        ("schema_version", IntegerType()),
        ("game", StringType()),
        ("build", StringType()),
        ("platform", StringType()),
        ("device_model", StringType()),
        ("player_id", StringType()),
        ("broker_start_utc", TimestampType()),
        ("device_start", TimestampType()),
        ("device_end", TimestampType()),
        ("clock_offset_ms", LongType()),
        ("end_utc", TimestampType()),
        ("duration_s", DoubleType()),
        ("file_count", IntegerType()),
        ("total_bytes", LongType()),
        ("inventory_hash", StringType()),
        ("status", StringType()),
        ("attributes", MapType(StringType(), StringType())),
    )
    + RUN_FIELDS
)

EVENTS = StructType(
    SESSION_KEY_FIELDS
    + _fields(("seq", LongType()))
    + SOURCE_FIELDS
    + _fields(
        ("line_no", LongType()),
        ("device_time", TimestampType()),
        ("event_time_utc", TimestampType()),
        ("event_type", StringType()),
        ("payload", StringType()),
    )
    + RUN_FIELDS
)

PERF_SAMPLES = StructType(
    SESSION_KEY_FIELDS
    + _fields(("seq", LongType()))
    + SOURCE_FIELDS
    + [f for f in PERF_RECORD.fields if f.name != "sample_no"]
    + _fields(("sample_no", LongType()))
    + RUN_FIELDS
)

LOG_ENTRIES = StructType(
    SESSION_KEY_FIELDS + SOURCE_FIELDS + list(LOG_RECORD.fields) + RUN_FIELDS
)

FORM_RESPONSES = StructType(
    SESSION_KEY_FIELDS + SOURCE_FIELDS + list(FORM_RECORD.fields) + RUN_FIELDS
)

RECORDINGS = StructType(
    SESSION_KEY_FIELDS
    + _fields(("path", StringType()), ("blob_url", StringType()))
    + list(RECORDING_RECORD.fields)
    + RUN_FIELDS
)

QUARANTINE = StructType(
    SESSION_KEY_FIELDS
    + SOURCE_FIELDS
    + _fields(("kind", StringType()))
    + list(PROBLEM_RECORD.fields)
    + RUN_FIELDS
)

LEDGER = StructType(
    SESSION_KEY_FIELDS
    + _fields(("inventory_hash", StringType()))
    + RUN_FIELDS
)

RUNS = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("run_date", DateType(), False),
        StructField("lookback_days", IntegerType(), True),
        StructField("started_at", TimestampType(), True),
        StructField("finished_at", TimestampType(), True),
        StructField("status", StringType(), True),
        StructField("sessions_found", LongType(), True),
        StructField("sessions_processed", LongType(), True),
        StructField("sessions_incomplete", LongType(), True),
        StructField("rows_in", MapType(StringType(), LongType()), True),
        StructField("rows_out", MapType(StringType(), LongType()), True),
        StructField("message", StringType(), True),
    ]
)

# Table name -> schema, in the order the job writes them.
DELTA_TABLES: dict[str, StructType] = {
    "landed_files": LANDED_FILES,
    "sessions": SESSIONS,
    "events": EVENTS,
    "perf_samples": PERF_SAMPLES,
    "log_entries": LOG_ENTRIES,
    "form_responses": FORM_RESPONSES,
    "recordings": RECORDINGS,
    "quarantine": QUARANTINE,
    "ledger": LEDGER,
    "runs": RUNS,
}
