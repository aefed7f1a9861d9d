"""DataFrame -> DataFrame transforms from parsed rows to the Delta staging tables.

Each function selects exactly its table's columns in the schema's order, so `select` is
the schema contract and a table write never depends on column order by accident.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from playtest_spark import schemas
from playtest_spark.ingest import records_of


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """Select the columns of `schema`, in its order, cast to its types."""
    return df.select(*[F.col(field.name).cast(field.dataType).alias(field.name) for field in schema])


def corrected_time(device_time: Column, clock_offset_ms: Column) -> Column:
    """Return a device time moved onto the broker's clock: device time + clock offset."""
    return F.timestamp_micros(F.unix_micros(device_time) + clock_offset_ms * F.lit(1000))


def with_run_id(run_id: str):  # type: ignore[no-untyped-def]
    """Return a transform that sets `run_id` on every row."""

    def transform(df: DataFrame) -> DataFrame:
        return df.withColumn("run_id", F.lit(run_id))

    return transform


def events_table(parsed: DataFrame, sessions: DataFrame, run_id: str) -> DataFrame:
    """Build `events`: one row per event, with the time corrected to UTC broker time."""
    offsets = sessions.select("session_id", "clock_offset_ms")
    return (
        records_of(parsed, "event")
        .join(F.broadcast(offsets), on="session_id", how="left")
        .withColumn("event_time_utc", corrected_time(F.col("device_time"), F.col("clock_offset_ms")))
        .transform(with_run_id(run_id))
        .transform(lambda df: conform(df, schemas.EVENTS))
    )


def _record_table(parsed: DataFrame, record_type: str, schema: StructType, run_id: str) -> DataFrame:
    return (
        records_of(parsed, record_type)
        .transform(with_run_id(run_id))
        .transform(lambda df: conform(df, schema))
    )


def perf_table(parsed: DataFrame, run_id: str) -> DataFrame:
    """Build `perf_samples`: one row per frame or sample."""
    return _record_table(parsed, "perf", schemas.PERF_SAMPLES, run_id)


def log_table(parsed: DataFrame, run_id: str) -> DataFrame:
    """Build `log_entries`: one row per log record."""
    return _record_table(parsed, "log", schemas.LOG_ENTRIES, run_id)


def form_table(parsed: DataFrame, run_id: str) -> DataFrame:
    """Build `form_responses`: one row per answer."""
    return _record_table(parsed, "form", schemas.FORM_RESPONSES, run_id)


def recordings_table(parsed: DataFrame, landing_url: str, session_prefix: Column, run_id: str) -> DataFrame:
    """Build `recordings`: one row per video file, with the URL where it can be opened.

    Args:
        landing_url: URL or folder of the landing root, without a trailing slash.
        session_prefix: Column with `sessions/<date>/<id>/` for each row.
    """
    return (
        records_of(parsed, "recording")
        .withColumn("path", F.col("source_file"))
        .withColumn("blob_url", F.concat(F.lit(landing_url + "/"), session_prefix, F.col("source_file")))
        .transform(with_run_id(run_id))
        .transform(lambda df: conform(df, schemas.RECORDINGS))
    )


def session_prefix_column() -> Column:
    """Return `sessions/<session_date>/<session_id>/` as a column."""
    return F.concat(F.lit("sessions/"), F.date_format("session_date", "yyyy-MM-dd"), F.lit("/"),
                    F.col("session_id"), F.lit("/"))


def quarantine_table(parsed: DataFrame, run_id: str) -> DataFrame:
    """Build `quarantine` rows from the parsers' problems."""
    return _record_table(parsed, "problem", schemas.QUARANTINE, run_id)
