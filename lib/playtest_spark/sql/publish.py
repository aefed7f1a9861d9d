"""Atomic publish of the curated tables.

1. Spark appends each curated DataFrame to its staging table over JDBC (`stg_<name>`),
   after the staging tables were emptied. Task retries may write a partition twice.
2. One transaction deletes the published sessions' rows from every curated table and
   inserts the staging rows, keeping one row per key (`ROW_NUMBER() ... = 1`).
SQL readers see either the old rows or the new ones, never half a run. Runs must not
overlap, because the staging tables are shared; the job runs one at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import sqlalchemy
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, StructType, TimestampType
from sqlalchemy import MetaData, delete, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from playtest_spark.config import JobConfig
from playtest_spark.errors import PublishError
from playtest_spark.sql.connect import create_engine, jdbc_options
from playtest_spark.sql.tables import (
    CURATED_TABLES,
    LOG_ISSUES_VIEW,
    PUBLISHED_SESSIONS,
    STAGING_PREFIX,
    build_metadata,
    log_issues_view_sql,
)

logger = logging.getLogger(__name__)


def _qualified(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def ensure_sql_schema(engine: Engine, schema: str | None) -> MetaData:
    """Create the schema, tables and view that do not exist yet; return the metadata."""
    metadata = build_metadata(schema)
    with engine.begin() as connection:
        if schema and not sqlalchemy.inspect(connection).has_schema(schema):
            connection.execute(sqlalchemy.schema.CreateSchema(schema))
        metadata.create_all(connection, checkfirst=True)
        views = sqlalchemy.inspect(connection).get_view_names(schema=schema)
        if LOG_ISSUES_VIEW not in views:
            connection.exec_driver_sql(log_issues_view_sql(schema, engine.dialect))
    return metadata


def _clear_staging(connection: Connection, metadata: MetaData, schema: str | None) -> None:
    for table in CURATED_TABLES:
        connection.execute(delete(metadata.tables[_qualified(schema, STAGING_PREFIX + table.name)]))
    connection.execute(delete(metadata.tables[_qualified(schema, STAGING_PREFIX + PUBLISHED_SESSIONS)]))


def _as_sqlite_text(df: DataFrame) -> DataFrame:
    """Format dates and times as the ISO text SQLite tools and SQLAlchemy read back."""
    columns = []
    for field in df.schema.fields:
        column = F.col(field.name)
        if isinstance(field.dataType, DateType):
            column = F.date_format(column, "yyyy-MM-dd")
        elif isinstance(field.dataType, TimestampType):
            column = F.date_format(column, "yyyy-MM-dd HH:mm:ss.SSSSSS")
        columns.append(column.alias(field.name))
    return df.select(*columns)


def _write_staging(df: DataFrame, table: str, options: Mapping[str, str], sqlite: bool) -> None:
    if sqlite:
        # One writer: SQLite locks the whole file for each write transaction.
        df = _as_sqlite_text(df).coalesce(1)
    try:
        df.write.format("jdbc").options(**options).option("dbtable", table).mode("append").save()
    except (PySparkException, Py4JJavaError) as exc:
        raise PublishError(f"writing staging table {table!r} over JDBC failed: {root_cause(exc)}") from exc


def root_cause(exc: BaseException) -> str:
    """Return the innermost message of a Spark or JVM error, such as the database's own
    `ERROR: value too long for type character varying(200)`."""
    texts = [str(exc)]
    java = getattr(exc, "java_exception", None)
    while java is not None:
        texts.append(str(java.toString()))
        java = java.getCause()
    lines = [line.strip() for text in texts for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if not line.startswith("at ") and ("ERROR" in line or "Exception:" in line)]
    if causes:
        return causes[-1]
    if lines:
        return lines[0]
    return type(exc).__name__


def _swap_in(connection: Connection, metadata: MetaData, schema: str | None) -> dict[str, int]:
    published = metadata.tables[_qualified(schema, STAGING_PREFIX + PUBLISHED_SESSIONS)]
    counts = {}
    for table in CURATED_TABLES:
        curated = metadata.tables[_qualified(schema, table.name)]
        staging = metadata.tables[_qualified(schema, STAGING_PREFIX + table.name)]
        connection.execute(delete(curated).where(curated.c.session_id.in_(select(published.c.session_id))))
        key = [staging.c[name] for name in table.key]
        ranked = select(
            *[staging.c[name] for name in table.column_names],
            func.row_number().over(partition_by=key, order_by=key).label("row_rank"),
        ).subquery()
        unique_rows = select(*[ranked.c[name] for name in table.column_names]).where(ranked.c.row_rank == 1)
        connection.execute(insert(curated).from_select(table.column_names, unique_rows))
        # Counted, not taken from rowcount, which some drivers leave at -1 or 0 here.
        counts[table.name] = connection.execute(
            select(func.count()).select_from(curated).where(curated.c.session_id.in_(select(published.c.session_id)))
        ).scalar_one()
    return counts


def publish_curated(
    spark: SparkSession,
    config: JobConfig,
    frames: Mapping[str, DataFrame],
    session_ids: Sequence[str],
) -> dict[str, int]:
    """Publish the curated DataFrames, replacing the rows of `session_ids`.

    Args:
        frames: Curated table name -> DataFrame with exactly that table's columns.
        session_ids: Every session of the run, including those with no rows in a table,
            so that their old rows are removed.

    Returns:
        Rows inserted per curated table.

    Raises:
        PublishError: the database rejected a statement or could not be reached; the
            curated tables are unchanged.
    """
    missing = {table.name for table in CURATED_TABLES} - set(frames)
    if missing:
        raise ValueError(f"no DataFrame for curated table(s) {sorted(missing)}")
    if not session_ids:
        logger.info("no sessions to publish")
        return {table.name: 0 for table in CURATED_TABLES}

    schema = config.effective_sql_schema
    sqlite = config.sql_dialect == "sqlite"
    engine = create_engine(config)
    try:
        metadata = ensure_sql_schema(engine, schema)
        with engine.begin() as connection:
            _clear_staging(connection, metadata, schema)

        for table in CURATED_TABLES:
            # Options per write: on Azure SQL each call carries a freshly valid access token.
            _write_staging(frames[table.name], _qualified(schema, STAGING_PREFIX + table.name),
                           jdbc_options(config), sqlite)
        run_sessions = spark.createDataFrame(
            [(session_id, config.effective_run_id) for session_id in sorted(set(session_ids))],
            StructType([StructField("session_id", StringType()), StructField("run_id", StringType())]),
        )
        _write_staging(run_sessions, _qualified(schema, STAGING_PREFIX + PUBLISHED_SESSIONS),
                       jdbc_options(config), sqlite)

        with engine.begin() as connection:
            counts = _swap_in(connection, metadata, schema)
        with engine.begin() as connection:
            _clear_staging(connection, metadata, schema)
    except SQLAlchemyError as exc:
        raise PublishError(f"publishing to {config.sql_dialect} failed: {exc.__class__.__name__}: {exc}") from exc
    finally:
        engine.dispose()
    logger.info("published %d session(s) to SQL: %s", len(set(session_ids)), counts)
    return counts
