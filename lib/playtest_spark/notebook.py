"""Helpers for notebooks: open the Delta tables on a laptop or on Databricks."""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from playtest_spark.curated import frame_rows
from playtest_spark.schemas import DELTA_TABLES


def delta_tables(
    spark: SparkSession,
    warehouse: str | None = None,
    catalog: str | None = None,
    schema: str = "playtest",
) -> dict[str, DataFrame]:
    """Return every Delta table of the job by name.

    Args:
        warehouse: Folder of path-based tables (laptop); `$PLAYTEST_WAREHOUSE` or
            `.playtest/demo/warehouse` when neither it nor `catalog` is given.
        catalog: Unity Catalog name; the tables are then `catalog.schema.<table>`.
    """
    if catalog:
        return {name: spark.read.table(f"{catalog}.{schema}.{name}") for name in DELTA_TABLES}
    folder = warehouse or os.environ.get("PLAYTEST_WAREHOUSE") or ".playtest/demo/warehouse"
    return {name: spark.read.format("delta").load(f"{folder}/delta/{name}") for name in DELTA_TABLES}


def session_frames(tables: dict[str, DataFrame], session_id: str) -> DataFrame:
    """Return one session's frames of the main process of each capture, in order, with
    the frame time and the FPS it implies."""
    perf = tables["perf_samples"].where(F.col("session_id") == session_id)
    return (
        frame_rows(perf)
        .withColumn("fps", F.when(F.col("frame_time_ms") > 0, 1000.0 / F.col("frame_time_ms")))
        .orderBy("source_file", "sample_no")
    )
