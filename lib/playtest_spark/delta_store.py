"""Delta tables of the job: path-based on a laptop, Unity Catalog tables on Databricks.

Rows are replaced per session: a write deletes the given sessions' rows and inserts the
new ones in one Delta transaction (`replaceWhere`), so writing the same sessions twice
leaves the same rows as writing them once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from playtest_spark.config import JobConfig
from playtest_spark.discovery import LedgerEntry
from playtest_spark.schemas import DELTA_TABLES

logger = logging.getLogger(__name__)

# Large tables are partitioned by session date, so a replace touches only that day's files.
PARTITIONED_TABLES = frozenset({"events", "perf_samples", "log_entries"})


def sql_string_list(values: Iterable[str]) -> str:
    """Return `'a', 'b'` with quotes escaped, for an IN list."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


class DeltaStore:
    """The job's Delta tables for one configuration."""

    def __init__(self, spark: SparkSession, config: JobConfig) -> None:
        self.spark = spark
        self.config = config

    def _location(self, table: str) -> str:
        return self.config.table_name(table) if self.config.catalog else self.config.table_path(table)

    def ensure_tables(self) -> None:
        """Create every missing table with its declared schema."""
        if self.config.catalog:
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.config.catalog}.{self.config.schema}")
        for table, schema in DELTA_TABLES.items():
            if self._exists(table):
                continue
            builder = DeltaTable.createIfNotExists(self.spark).addColumns(schema)
            builder = builder.tableName(self._location(table)) if self.config.catalog else builder.location(self._location(table))
            if table in PARTITIONED_TABLES:
                builder = builder.partitionedBy("session_date")
            builder.execute()

    def _exists(self, table: str) -> bool:
        """Return whether a table exists, without reading its log (a cheap check)."""
        if self.config.catalog:
            return self.spark.catalog.tableExists(self._location(table))
        return (Path(self._location(table)) / "_delta_log").is_dir()

    def read(self, table: str) -> DataFrame:
        """Return a table's current rows."""
        if self.config.catalog:
            return self.spark.read.table(self._location(table))
        return self.spark.read.format("delta").load(self._location(table))

    def replace_sessions(
        self, table: str, df: DataFrame, sessions: Sequence[tuple[dt.date, str]]
    ) -> None:
        """Replace the rows of `sessions` in `table` with `df`, in one transaction.

        Args:
            df: New rows; every row must belong to one of `sessions`.
            sessions: (session date, session id) pairs whose old rows are removed, even
                when `df` has no rows for them.
        """
        if not sessions:
            return
        dates = sorted({d.isoformat() for d, _ in sessions})
        ids = sorted({s for _, s in sessions})
        predicate = (
            f"session_date IN ({sql_string_list(dates)}) AND session_id IN ({sql_string_list(ids)})"
        )
        writer = (
            df.select(*[F.col(f.name) for f in DELTA_TABLES[table]])
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", predicate)
        )
        with self._without_replace_where_check():
            if self.config.catalog:
                writer.saveAsTable(self._location(table))
            else:
                writer.save(self._location(table))
        logger.info("replaced %d session(s) in delta table %s", len(ids), table)

    @contextlib.contextmanager
    def _without_replace_where_check(self) -> Iterator[None]:
        """Skip Delta's per-row check that written rows match `replaceWhere`.

        The rows are selected by session here, so the check cannot fail. It costs about
        3 s per million rows on 2 cores (measured with delta-spark 4.0, local mode).
        The session's setting is restored afterwards.
        """
        key = "spark.databricks.delta.replaceWhere.constraintCheck.enabled"
        previous = self.spark.conf.get(key, None)
        self.spark.conf.set(key, "false")
        try:
            yield
        finally:
            if previous is None:
                self.spark.conf.unset(key)
            else:
                self.spark.conf.set(key, previous)

    def ledger(self, session_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        """Return the ledger entries of `session_ids`, whatever their date."""
        if not session_ids:
            return {}
        rows = (
            self.read("ledger")
            .where(F.col("session_id").isin(list(session_ids)))
            .select("session_id", "session_date", "inventory_hash")
            .collect()
        )
        return {row.session_id: LedgerEntry(row.session_date, row.inventory_hash) for row in rows}

    def upsert_run(self, run: DataFrame) -> None:
        """Insert or update the run's row, keyed by run id."""
        target = (
            DeltaTable.forName(self.spark, self._location("runs")) if self.config.catalog
            else DeltaTable.forPath(self.spark, self._location("runs"))
        )
        (
            target.alias("t")
            .merge(run.alias("s"), "t.run_id = s.run_id")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
