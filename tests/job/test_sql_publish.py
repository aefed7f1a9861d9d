"""The atomic SQL publish on SQLite and on a real PostgreSQL server over JDBC."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
import sqlalchemy

from playtest_spark.config import JobConfig
from playtest_spark.errors import PublishError
from playtest_spark.job import run_job
from playtest_spark.landing.local import LocalLanding
from playtest_spark.sql.connect import create_engine
from playtest_spark.sql.publish import publish_curated
from playtest_spark.sql.tables import CURATED_TABLES
from playtest_spark.synth import SyntheticSpec, generate_day, write_session
from tests.support.postgres import find_bin_dir, start_postgres

DAY = dt.date(2026, 12, 3)
SPEC = SyntheticSpec(seconds=3, fps=30.0, events_per_second=2.0)


@pytest.fixture(scope="module")
def postgres():
    if find_bin_dir() is None:
        if os.environ.get("PLAYTEST_REQUIRE_SERVICES"):
            pytest.fail("PostgreSQL is required here but not installed: apt-get install postgresql")
        pytest.skip("PostgreSQL server binaries not found; install the postgresql package to run these tests")
    server = start_postgres()
    yield server
    server.stop()


def config_for(tmp_path, sql_url=None) -> JobConfig:
    options = {"run_date": DAY.isoformat(), "landing": str(tmp_path / "landing"), "warehouse": str(tmp_path / "w")}
    if sql_url:
        options["sql_url"] = sql_url
    return JobConfig.from_sources(options, environ={})


def curated_rows(config) -> dict[str, list[tuple]]:
    engine = create_engine(config)
    schema = config.effective_sql_schema
    try:
        with engine.connect() as connection:
            return {
                table.name: sorted(
                    (tuple(row) for row in connection.execute(
                        sqlalchemy.text(f"SELECT * FROM {schema + '.' if schema else ''}{table.name}"))),
                    key=repr,
                )
                for table in CURATED_TABLES
            }
    finally:
        engine.dispose()


def frames_for(spark, rows_by_table):
    from playtest_spark.sql.tables import CURATED_BY_NAME

    frames = {}
    for table in CURATED_TABLES:
        columns = CURATED_BY_NAME[table.name].column_names
        rows = rows_by_table.get(table.name, [])
        schema_df = spark.createDataFrame([], _spark_schema(table))
        frames[table.name] = spark.createDataFrame(rows, schema_df.schema) if rows else schema_df
        assert frames[table.name].columns == columns
    return frames


def _spark_schema(table):
    from pyspark.sql.types import DateType, DoubleType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

    # DATETIME before DATE: the first matching prefix wins.
    mapping = {"DATETIME": TimestampType(), "DATE": DateType(), "FLOAT": DoubleType(), "INTEGER": IntegerType(),
               "BIGINT": LongType()}
    fields = []
    for column in table.columns:
        name = type(column.type).__name__.upper()
        data_type = next((t for key, t in mapping.items() if name.startswith(key)), StringType())
        fields.append(StructField(column.name, data_type))
    return StructType(fields)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_publish_deduplicates_retried_rows(spark, tmp_path, dialect, request):
    url = request.getfixturevalue("postgres").jdbc_url if dialect == "postgresql" else None
    config = config_for(tmp_path, url)
    event = ("s1", 1, dt.datetime(2026, 12, 3, 10), dt.datetime(2026, 12, 3, 10), "start", "{}", "events/e.jsonl", 1, "r")
    frames = frames_for(spark, {"events": [event, event, event]})
    counts = publish_curated(spark, config, frames, ["s1"])
    rows = curated_rows(config)["events"]
    assert counts["events"] == 1
    assert len(rows) == 1
    published_time = rows[0][2]
    if isinstance(published_time, str):  # SQLite stores ISO text
        published_time = dt.datetime.fromisoformat(published_time)
    assert published_time == dt.datetime(2026, 12, 3, 10)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_publish_replaces_only_given_sessions(spark, tmp_path, dialect, request):
    url = request.getfixturevalue("postgres").jdbc_url if dialect == "postgresql" else None
    config = config_for(tmp_path, url)
    if dialect == "postgresql":
        _drop_schema(config)

    def event(session_id, seq, kind):
        return (session_id, seq, dt.datetime(2026, 12, 3, 10), None, kind, "{}", "events/e.jsonl", seq, "r")

    publish_curated(spark, config, frames_for(spark, {"events": [event("a", 1, "old"), event("b", 1, "keep")]}), ["a", "b"])
    publish_curated(spark, config, frames_for(spark, {"events": [event("a", 1, "new"), event("a", 2, "new")]}), ["a"])
    rows = {(r[0], r[1]): r[4] for r in curated_rows(config)["events"]}
    assert rows == {("a", 1): "new", ("a", 2): "new", ("b", 1): "keep"}


def test_publish_unreachable_server_raises_publish_error(spark, tmp_path):
    config = config_for(tmp_path, "jdbc:postgresql://127.0.0.1:1/nowhere?user=x")
    frames = frames_for(spark, {})
    with pytest.raises(PublishError, match="postgresql"):
        publish_curated(spark, config, frames, ["s1"])


def test_job_on_postgres_rerun_identical(spark, tmp_path, postgres):
    landing = LocalLanding(tmp_path / "landing")
    generate_day(landing, DAY, 2, SPEC)
    long_type = "x" * 300
    wide = json.dumps({"type": long_type, "ts": "2026-12-03T12:00:00Z", "note": "nul \u0000 inside"}) + "\n"
    write_session(landing, DAY, "wide-values", {"events/e.jsonl": wide.encode()}, build="b" * 300)
    config = config_for(tmp_path, postgres.jdbc_url)
    _drop_schema(config)

    run_job(spark, config)
    first = curated_rows(config)
    assert len(first["session_summary"]) == 3
    wide_event = [row for row in first["events"] if row[0] == "wide-values"][0]
    assert wide_event[4] == "x" * 200
    assert "\\u0000" in wide_event[5]
    first["session_summary"] = [row for row in first["session_summary"] if row[0] != "wide-values"]
    first["events"] = [row for row in first["events"] if row[0] != "wide-values"]

    assert len(first["events"]) == 2 * 6
    assert sum(row[5] for row in first["perf_seconds"]) == 2 * 90
    engine = create_engine(config)
    try:
        with engine.connect() as connection:
            issues = connection.execute(sqlalchemy.text("SELECT COUNT(*) FROM playtest.log_issues")).scalar()
            column_type = connection.execute(sqlalchemy.text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = 'playtest' "
                "AND table_name = 'events' AND column_name = 'event_time_utc'")).scalar()
    finally:
        engine.dispose()
    assert issues >= 1
    assert column_type == "timestamp without time zone"

    run_job(spark, config.replace(run_id="second-attempt"))
    again = curated_rows(config)
    again["session_summary"] = [row for row in again["session_summary"] if row[0] != "wide-values"]
    again["events"] = [row for row in again["events"] if row[0] != "wide-values"]
    assert again == first


def _drop_schema(config):
    engine = create_engine(config)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("DROP SCHEMA IF EXISTS playtest CASCADE"))
    finally:
        engine.dispose()
