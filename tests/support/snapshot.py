"""Full-content snapshots of the Delta and SQL tables, to compare runs row for row."""

from __future__ import annotations

import sqlite3
from typing import Any

from playtest_spark.config import JobConfig
from playtest_spark.schemas import DELTA_TABLES
from playtest_spark.sql.connect import sqlite_path
from playtest_spark.sql.tables import CURATED_TABLES

# Columns that hold wall-clock times of the run itself, not data.
RUN_CLOCK_COLUMNS = {"started_at", "finished_at"}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def delta_snapshot(spark, config: JobConfig, ignore_run_clock: bool = False) -> dict[str, list[tuple]]:
    """Return every Delta table's rows, sorted, as tuples."""
    snapshot = {}
    for table in DELTA_TABLES:
        df = spark.read.format("delta").load(config.table_path(table))
        if ignore_run_clock:
            df = df.drop(*RUN_CLOCK_COLUMNS)
        rows = [tuple(_freeze(v) for v in row) for row in df.collect()]
        snapshot[table] = sorted(rows, key=repr)
    return snapshot


def sqlite_snapshot(config: JobConfig) -> dict[str, list[tuple]]:
    """Return every curated SQLite table's rows, sorted."""
    connection = sqlite3.connect(sqlite_path(config.effective_sql_url))
    try:
        return {
            table.name: sorted(connection.execute(f"SELECT * FROM {table.name}").fetchall(), key=repr)
            for table in CURATED_TABLES
        }
    finally:
        connection.close()
