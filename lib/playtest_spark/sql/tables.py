"""Curated SQL tables, defined once and compiled to each dialect's DDL by SQLAlchemy.

Every curated table has a primary key, and every row belongs to one session, so that a
publish can replace a set of sessions' rows in one transaction. Each curated table has a
staging twin (`stg_<name>`, same columns, no key) that Spark fills over JDBC; duplicate
rows from Spark task retries are removed when the publish copies staging to curated.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Unicode,
    UnicodeText,
)
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql import text
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Dialect

STAGING_PREFIX = "stg_"
# Maximum length of a file path inside a session directory. Keys that hold a path stay within SQL
# Server's 900-byte limit for a clustered primary key; longer paths are quarantined.
MAX_PATH_CHARS = 200
# Names a publish replaces rows for: every session the run processed is listed here.
PUBLISHED_SESSIONS = "published_sessions"


@dataclasses.dataclass(frozen=True)
class CuratedTable:
    """A curated table: its columns (in Spark's column names) and its key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def _id(name: str, length: int = 64) -> Column:
    return Column(name, Unicode(length), nullable=False)


def _str(name: str, length: int = 256) -> Column:
    return Column(name, Unicode(length))


def _text(name: str) -> Column:
    # NVARCHAR(max) on SQL Server: NTEXT is deprecated there.
    return Column(name, UnicodeText().with_variant(mssql.NVARCHAR(None), "mssql"))


def _ts(name: str) -> Column:
    # UTC times without a zone; DATETIME2 on SQL Server keeps microseconds.
    return Column(name, DateTime().with_variant(mssql.DATETIME2(), "mssql"))


def _float(name: str) -> Column:
    return Column(name, Float(53))


def _int(name: str) -> Column:
    return Column(name, Integer())


def _long(name: str) -> Column:
    return Column(name, BigInteger())


CURATED_TABLES: tuple[CuratedTable, ...] = (
    CuratedTable(
        "session_summary",
        (
            _id("session_id"),
            Column("session_date", Date().with_variant(mssql.DATE(), "mssql"), nullable=False),
            _str("game"),
            _str("build"),
            _str("platform"),
            _str("device_model"),
            _str("player_id", 128),
            _ts("start_utc"),
            _ts("end_utc"),
            _float("duration_s"),
            _long("event_count"),
            _long("frame_count"),
            _float("frame_time_mean_ms"),
            _float("frame_time_p50_ms"),
            _float("frame_time_p95_ms"),
            _float("frame_time_p99_ms"),
            _float("fps_mean"),
            _float("fps_1pct_low"),
            _long("hitch_count"),
            _long("error_count"),
            _long("warning_count"),
            _long("form_answer_count"),
            _float("form_score_mean"),
            _int("recording_count"),
            _long("quarantined_count"),
            _str("inventory_hash", 64),
            _str("run_id", 128),
        ),
        ("session_id",),
        (("session_date",), ("game", "build")),
    ),
    CuratedTable(
        "session_event_counts",
        (
            _id("session_id"),
            Column("event_type", Unicode(200), nullable=False),
            _long("event_count"),
            _str("run_id", 128),
        ),
        ("session_id", "event_type"),
    ),
    CuratedTable(
        "events",
        (
            _id("session_id"),
            Column("seq", BigInteger(), nullable=False),
            _ts("event_time_utc"),
            _ts("device_time"),
            _str("event_type", 200),
            _text("payload"),
            _str("source_file", MAX_PATH_CHARS),
            _long("line_no"),
            _str("run_id", 128),
        ),
        ("session_id", "seq"),
        (("event_type",), ("event_time_utc",)),
    ),
    CuratedTable(
        "perf_seconds",
        (
            _id("session_id"),
            Column("source_file", Unicode(MAX_PATH_CHARS), nullable=False),
            Column("second", BigInteger(), nullable=False),
            _str("source_tool", 64),
            _ts("second_start_utc"),
            _long("frames"),
            _float("frame_time_mean_ms"),
            _float("frame_time_max_ms"),
            _float("fps"),
            _float("cpu_busy_mean_ms"),
            _float("gpu_busy_mean_ms"),
            _float("cpu_util_pct"),
            _float("gpu_util_pct"),
            _float("memory_mb"),
            _long("hitches"),
            _long("dropped_frames"),
            _str("run_id", 128),
        ),
        ("session_id", "source_file", "second"),
    ),
    CuratedTable(
        "log_fingerprints",
        (
            _id("session_id"),
            Column("fingerprint", Unicode(64), nullable=False),
            _str("build"),
            _str("level", 16),
            _str("category", 200),
            _text("sample_message"),
            _text("sample_stack_trace"),
            _long("occurrences"),
            _ts("first_seen_utc"),
            _ts("last_seen_utc"),
            _str("run_id", 128),
        ),
        ("session_id", "fingerprint"),
        (("fingerprint",),),
    ),
    CuratedTable(
        "form_responses",
        (
            _id("session_id"),
            Column("source_file", Unicode(MAX_PATH_CHARS), nullable=False),
            Column("row_no", BigInteger(), nullable=False),
            Column("question_id", Unicode(128), nullable=False),
            _str("form_id", 200),
            _str("respondent_id", 200),
            _text("question_text"),
            _text("answer_text"),
            _float("answer_number"),
            _ts("answered_at"),
            _str("scale", 200),
            _str("run_id", 128),
        ),
        ("session_id", "source_file", "row_no", "question_id"),
    ),
    CuratedTable(
        "recordings",
        (
            _id("session_id"),
            Column("path", Unicode(MAX_PATH_CHARS), nullable=False),
            _text("blob_url"),
            _str("file_name", MAX_PATH_CHARS),
            _str("container", 64),
            _float("duration_s"),
            _str("video_codec", 64),
            _int("width"),
            _int("height"),
            _float("frame_rate"),
            _str("audio_codec", 64),
            _long("size_bytes"),
            _int("stream_count"),
            _str("status", 32),
            _text("reason"),
            _str("run_id", 128),
        ),
        ("session_id", "path"),
    ),
)

CURATED_BY_NAME: dict[str, CuratedTable] = {table.name: table for table in CURATED_TABLES}

# Grouped issues across sessions and builds, for analysts.
LOG_ISSUES_VIEW = "log_issues"


def build_metadata(schema: str | None) -> MetaData:
    """Return SQLAlchemy metadata with every curated table, its staging twin and the
    published-sessions list, in `schema` (None for SQLite)."""
    metadata = MetaData(schema=schema)
    for table in CURATED_TABLES:
        curated = Table(
            table.name,
            metadata,
            *[column._copy() for column in table.columns],
            PrimaryKeyConstraint(*table.key, name=f"pk_{table.name}"),
        )
        for columns in table.indexes:
            Index(f"ix_{table.name}_{'_'.join(columns)}", *[curated.c[c] for c in columns])
        Table(
            STAGING_PREFIX + table.name,
            metadata,
            *[_nullable_copy(column) for column in table.columns],
        )
    Table(
        STAGING_PREFIX + PUBLISHED_SESSIONS,
        metadata,
        Column("session_id", Unicode(64), nullable=False),
        Column("run_id", Unicode(128)),
    )
    return metadata


def log_issues_view_sql(schema: str | None, dialect: Dialect) -> str:
    """Return `CREATE VIEW` text for the cross-session log issues view."""
    preparer = dialect.identifier_preparer
    prefix = f"{preparer.quote_schema(schema)}." if schema else ""
    source = f"{prefix}{preparer.quote('log_fingerprints')}"
    view = f"{prefix}{preparer.quote(LOG_ISSUES_VIEW)}"
    return (
        f"CREATE VIEW {view} AS "
        "SELECT fingerprint, MAX(level) AS level, MAX(category) AS category, "
        "MAX(sample_message) AS sample_message, "
        "SUM(occurrences) AS occurrences, "
        "COUNT(DISTINCT session_id) AS session_count, "
        "COUNT(DISTINCT build) AS build_count, "
        "MIN(first_seen_utc) AS first_seen_utc, MAX(last_seen_utc) AS last_seen_utc "
        f"FROM {source} GROUP BY fingerprint"
    )


def ddl_statements(schema: str | None, dialect: Dialect) -> list[str]:
    """Return the DDL that creates every table, index and view, compiled for `dialect`."""
    metadata = build_metadata(schema)
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in table.indexes:
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    statements.append(log_issues_view_sql(schema, dialect))
    return statements


def _nullable_copy(column: Column) -> Column:
    copy = column._copy()
    copy.nullable = True
    return copy


__all__ = [
    "CURATED_BY_NAME",
    "CURATED_TABLES",
    "CuratedTable",
    "LOG_ISSUES_VIEW",
    "PUBLISHED_SESSIONS",
    "STAGING_PREFIX",
    "build_metadata",
    "ddl_statements",
    "log_issues_view_sql",
    "text",
]
