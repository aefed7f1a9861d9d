"""The nightly job: discover, parse, write Delta, publish SQL, record the run.

Order matters for crash safety. Delta tables and SQL are written first, each replacing
whole sessions; the ledger is written after them, and the run's row last. A crash at any
point leaves the sessions out of the ledger, so the next run processes them again and
replaces their rows, ending in the same state as one clean run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from collections import Counter, defaultdict
from typing import Any

from pyspark import StorageLevel
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from playtest_spark import curated, schemas, transforms
from playtest_spark.config import JobConfig
from playtest_spark.errors import ConfigError, PlaytestError
from playtest_spark.delta_store import DeltaStore
from playtest_spark.discovery import SessionCandidate, SessionState, discover_sessions
from playtest_spark.ingest import parse_sessions, records_of
from playtest_spark.landing import Landing, LandingSpec, open_landing
from playtest_spark.sql.connect import sqlite_path
from playtest_spark.sql.publish import publish_curated

logger = logging.getLogger(__name__)

# Kind of landed file -> Delta table its records go to.
KIND_TABLES = {
    "events": "events",
    "performance": "perf_samples",
    "logs": "log_entries",
    "forms": "form_responses",
    "recordings": "recordings",
}
# Quarantine rows copied into the run report for the summary; the table keeps them all.
MAX_REPORTED_PROBLEMS = 500
FILE_STATUS_REASONS = {
    "not_in_inventory": "the file is not listed in _complete.json, so it was not loaded; "
    "upload it through the uploader, which lists every file",
    "unknown_kind": "the file is not in a known folder (events, performance, logs, forms, "
    "recordings), so no parser reads it; move it into one",
    "path_too_long": "the path is longer than 200 characters, the limit of the SQL keys; "
    "use a shorter file name",
}


@dataclasses.dataclass
class RunReport:
    """Summary of a run, for the command line, the logs and the `runs` table."""

    run_id: str
    run_date: dt.date
    status: str = "succeeded"
    sessions: dict[str, int] = dataclasses.field(default_factory=dict)
    rows_in: dict[str, int] = dataclasses.field(default_factory=dict)
    rows_out: dict[str, int] = dataclasses.field(default_factory=dict)
    quarantine_reasons: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list)
    incomplete: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # Sessions without `_complete.json` yet: their upload has not finished.
    open_sessions: list[str] = dataclasses.field(default_factory=list)
    message: str = ""
    # Wall time of each stage, in seconds, in the order the stages ran.
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of the `with` block to `timings[stage]`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started

    def one_line(self) -> str:
        sessions = ", ".join(f"{k}={v}" for k, v in self.sessions.items() if v)
        rows = ", ".join(f"{k}={v}" for k, v in self.rows_out.items())
        return f"{self.status}; sessions: {sessions or 'none'}; delta rows: {rows or 'none'}"


def landing_spec(config: JobConfig) -> LandingSpec:
    """Return the landing spec of a configuration, with its secrets."""
    return LandingSpec(
        uri=config.landing,
        auth=config.landing_auth,
        connection_string=config.landing_connection_string,
        account_key=config.landing_account_key,
        sas_token=config.landing_sas_token,
    )


def run_job(spark: SparkSession, config: JobConfig) -> RunReport:
    """Process the run date's sessions (and late ones of the look-back window).

    Raises:
        LandingError: the landing could not be listed.
        PublishError: the SQL database rejected the publish.
    """
    started_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    run_id = config.effective_run_id
    logger.info("run %s starts for %s (look-back %d days)", run_id, config.run_date, config.lookback_days)
    check_local_paths(config)
    spec = landing_spec(config)
    landing = open_landing(spec)
    landing.check()
    store = DeltaStore(spark, config)
    store.ensure_tables()
    report = RunReport(run_id, config.run_date)
    try:
        return _run(spark, config, store, landing, spec, report, started_at)
    except PlaytestError as exc:
        report.status = "failed"
        report.message = str(exc)[:2000]
        try:
            _record_run(spark, store, config, report, started_at)
        except PySparkException as record_error:
            logger.warning("run %s: could not record the failed run: %s", run_id, record_error)
        raise


def check_local_paths(config: JobConfig) -> None:
    """Raise ConfigError when a local warehouse or SQLite path cannot be used.

    Raises:
        ConfigError: the warehouse is a file, or the SQLite file is a folder or lies
            below a file.
    """
    if config.warehouse and not config.catalog:
        warehouse = Path(config.warehouse)
        if warehouse.exists() and not warehouse.is_dir():
            raise ConfigError(f"warehouse {str(warehouse)!r} is a file, not a folder: pass another --warehouse")
    if config.sql_dialect == "sqlite":
        database = Path(sqlite_path(config.effective_sql_url))
        if database.is_dir():
            raise ConfigError(f"SQLite database {str(database)!r} is a folder: name a file in --sql-url")
        for parent in database.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ConfigError(f"SQLite database {str(database)!r} lies below the file {str(parent)!r}")
                break


def _run(spark: SparkSession, config: JobConfig, store: DeltaStore, landing: Landing, spec: LandingSpec,
         report: RunReport, started_at: dt.datetime) -> RunReport:
    run_id = report.run_id
    dates = config.look_back_dates
    with report.timed("discover"):
        discovery = discover_sessions(landing, dates, store.ledger)
        ledger = discovery.ledger
    report.sessions = discovery.counts()
    report.open_sessions = [c.session_id for c in discovery.in_state(SessionState.OPEN)]
    for candidate in discovery.candidates:
        if candidate.state in (SessionState.INCOMPLETE, SessionState.INVALID):
            logger.warning("session %s/%s is %s: %s", candidate.session_date, candidate.session_id,
                           candidate.state.value, candidate.reason)
            report.incomplete.append((candidate.session_id, candidate.reason))

    ready = discovery.ready
    parsed = parse_sessions(spark, ready, spec).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with report.timed("parse"):
            file_reports = [row.asDict() for row in records_of(parsed, "file").collect()]
            attributes = records_of(parsed, "attribute").select("session_id", "name", "value").collect()
        failed = _sessions_with_bad_files(file_reports)
        for session_id, reason in sorted(failed.items()):
            logger.warning("session %s is incomplete: %s", session_id, reason)
            report.incomplete.append((session_id, reason))
        good = [c for c in ready if c.session_id not in failed]
        report.sessions["ready"] = len(good)
        report.sessions["incomplete"] = report.sessions.get("incomplete", 0) + len(failed)

        problem_sessions = [
            c for c in discovery.candidates
            if c.state in (SessionState.INCOMPLETE, SessionState.INVALID) and c.session_id not in ledger
        ] + [c for c in ready if c.session_id in failed and c.session_id not in ledger]
        held_back_count = len(problem_sessions)
        problem_sessions = _changed_problem_sessions(store, problem_sessions, failed)
        if not good and not problem_sessions and store_has_run(store, run_id):
            logger.info("run %s: nothing new to process; tables unchanged", run_id)
            report.message = "nothing new"
            return report

        good_ids = {c.session_id for c in good}
        # Filter by the few failed sessions, not by every good one: each table scans this.
        good_parsed = parsed.where(~F.col("session_id").isin(sorted(failed))) if failed else parsed
        tables = _build_tables(spark, config, landing.url_for("").rstrip("/"), good_parsed, good, problem_sessions,
                               file_reports, attributes, failed)
        _count_rows(report, good, file_reports, tables, len(problem_sessions), held_back_count)
        with report.timed("write_delta"):
            _write_delta(store, tables, good, problem_sessions)

        with report.timed("publish_sql"):
            frames = _curated_frames(tables, run_id)
            published = publish_curated(spark, config, frames, sorted(good_ids))
        report.rows_out.update({f"sql.{k}": v for k, v in published.items()})

        with report.timed("ledger"):
            ledger_rows = spark.createDataFrame(
                [(c.session_date, c.session_id, c.inventory_hash, run_id) for c in good], schemas.LEDGER)
            store.replace_sessions("ledger", ledger_rows, [(c.session_date, c.session_id) for c in good])
    finally:
        parsed.unpersist()

    _record_run(spark, store, config, report, started_at)
    logger.info("run %s finished: %s", run_id, report.one_line())
    return report


def _session_problem_reason(candidate: SessionCandidate, failed: dict[str, str]) -> str:
    if candidate.session_id in failed:
        return f"session incomplete: {failed[candidate.session_id]}"
    return f"session {candidate.state.value}: {candidate.reason}"


def _changed_problem_sessions(
    store: DeltaStore, problem_sessions: list[SessionCandidate], failed: dict[str, str]
) -> list[SessionCandidate]:
    """Drop held-back sessions whose quarantine row already states the same reason, so a
    rerun that finds nothing new writes nothing."""
    if not problem_sessions:
        return []
    ids = sorted({c.session_id for c in problem_sessions})
    existing = {
        (row.session_id, row.reason)
        for row in store.read("quarantine")
        .where((F.col("kind") == "session") & F.col("session_id").isin(ids))
        .select("session_id", "reason")
        .collect()
    }
    return [c for c in problem_sessions if (c.session_id, _session_problem_reason(c, failed)) not in existing]


def store_has_run(store: DeltaStore, run_id: str) -> bool:
    """Return whether the `runs` table already has a row for `run_id`."""
    return store.read("runs").where(F.col("run_id") == run_id).limit(1).count() > 0


def _sessions_with_bad_files(file_reports: list[dict[str, Any]]) -> dict[str, str]:
    failed: dict[str, str] = {}
    for file_report in file_reports:
        if file_report["status"] in ("hash_mismatch", "missing"):
            failed.setdefault(
                file_report["session_id"],
                f"{file_report['source_file']!r}: {file_report['detail']}; the session is retried on later runs",
            )
    return failed


def _build_tables(
    spark: SparkSession,
    config: JobConfig,
    landing_url: str,
    parsed: DataFrame,
    good: list[SessionCandidate],
    problem_sessions: list[SessionCandidate],
    file_reports: list[dict[str, Any]],
    attributes: list[Any],
    failed: dict[str, str],
) -> dict[str, DataFrame]:
    run_id = config.effective_run_id
    sessions = spark.createDataFrame(_session_rows(good, attributes, run_id), schemas.SESSIONS)
    quarantine = transforms.quarantine_table(parsed, run_id).unionByName(
        spark.createDataFrame(_discovery_problem_rows(good, problem_sessions, failed, run_id), schemas.QUARANTINE)
    )
    return {
        "landed_files": spark.createDataFrame(_landed_file_rows(good, file_reports, run_id), schemas.LANDED_FILES),
        "sessions": sessions,
        "events": transforms.events_table(parsed, sessions, run_id),
        "perf_samples": transforms.perf_table(parsed, run_id),
        "log_entries": transforms.log_table(parsed, run_id),
        "form_responses": transforms.form_table(parsed, run_id),
        "recordings": transforms.recordings_table(parsed, landing_url, transforms.session_prefix_column(), run_id),
        "quarantine": quarantine,
    }


def _session_rows(good: list[SessionCandidate], attributes: list[Any], run_id: str) -> list[tuple]:
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for row in attributes:
        found[row.session_id].setdefault(row.name, row.value)
    rows = []
    for candidate in good:
        manifest, completion = candidate.manifest, candidate.completion
        assert manifest is not None and completion is not None
        offset = manifest.clock_offset
        offset_ms = round(offset.total_seconds() * 1000)
        end_utc = completion.device_end + offset
        merged = {**found.get(candidate.session_id, {}), **dict(manifest.attributes)}
        rows.append((
            candidate.session_date, candidate.session_id, manifest.schema_version, manifest.game,
            manifest.build, manifest.platform, manifest.device_model, manifest.player_id,
            _naive_utc(manifest.broker_start_utc), _naive_utc(manifest.device_start),
            _naive_utc(completion.device_end), offset_ms, _naive_utc(end_utc),
            (completion.device_end - manifest.device_start).total_seconds(),
            len(completion.files), sum(entry.size for entry in completion.files),
            completion.inventory_hash, "complete", merged, run_id,
        ))
    return rows


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _landed_file_rows(good: list[SessionCandidate], file_reports: list[dict[str, Any]], run_id: str) -> list[tuple]:
    by_file = {(r["session_id"], r["source_file"]): r for r in file_reports}
    rows = []
    for candidate in good:
        for f in candidate.files:
            parsed_report = by_file.get((candidate.session_id, f.path))
            if parsed_report:
                rows.append((candidate.session_date, candidate.session_id, f.path, f.kind,
                             parsed_report["format"], f.size, f.sha256, parsed_report["status"],
                             parsed_report["detail"], parsed_report["records"], parsed_report["rejected"], run_id))
            else:
                rows.append((candidate.session_date, candidate.session_id, f.path, f.kind, None, f.size,
                             f.sha256 or None, f.status, FILE_STATUS_REASONS.get(f.status), 0, 0, run_id))
    return rows


def _discovery_problem_rows(
    good: list[SessionCandidate], problem_sessions: list[SessionCandidate], failed: dict[str, str], run_id: str
) -> list[tuple]:
    rows = []
    for candidate in good:
        for f in candidate.files:
            if f.status != "load":
                rows.append((candidate.session_date, candidate.session_id, f.path, f.kind or "unknown",
                             "file", FILE_STATUS_REASONS[f.status], "", run_id))
    for candidate in problem_sessions:
        rows.append((candidate.session_date, candidate.session_id, None, "session", "session",
                     _session_problem_reason(candidate, failed), "", run_id))
    return rows


def _count_rows(report: RunReport, good: list[SessionCandidate], file_reports: list[dict[str, Any]],
                tables: dict[str, DataFrame], written_session_rows: int, held_back_sessions: int) -> None:
    """Fill the report's row counts from the file reports; only quarantine needs an action.

    Held-back sessions count whether or not their quarantine row was rewritten, so a
    repeated run reports the same numbers as the first.
    """
    good_ids = {c.session_id for c in good}
    records: Counter[str] = Counter()
    rejected = 0
    for file_report in file_reports:
        if file_report["session_id"] not in good_ids:
            continue
        records[KIND_TABLES.get(file_report["kind"], file_report["kind"])] += file_report["records"] or 0
        rejected += file_report["rejected"] or 0
        report.rows_in["files"] = report.rows_in.get("files", 0) + 1
    report.rows_in["sessions"] = len(good)
    report.rows_out["sessions"] = len(good)
    for table in KIND_TABLES.values():
        report.rows_out[table] = records.get(table, 0)
    quarantine = tables["quarantine"]
    report.rows_out["quarantine"] = quarantine.count() - written_session_rows + held_back_sessions
    sample = quarantine.select("session_id", "source_file", "position", "reason").limit(MAX_REPORTED_PROBLEMS).collect()
    report.quarantine_reasons = [(p.session_id or "", p.source_file or "", p.position or "", p.reason) for p in sample]


def _write_delta(store: DeltaStore, tables: dict[str, DataFrame], good: list[SessionCandidate],
                 problem_sessions: list[SessionCandidate]) -> None:
    good_keys = [(c.session_date, c.session_id) for c in good]
    problem_keys = [(c.session_date, c.session_id) for c in problem_sessions]
    for name, df in tables.items():
        keys = good_keys + problem_keys if name == "quarantine" else good_keys
        store.replace_sessions(name, df, keys)


def _curated_frames(tables: dict[str, DataFrame], run_id: str) -> dict[str, DataFrame]:
    sessions, events, perf = tables["sessions"], tables["events"], tables["perf_samples"]
    logs, forms, recordings = tables["log_entries"], tables["form_responses"], tables["recordings"]
    good_quarantine = tables["quarantine"].join(sessions.select("session_id"), on="session_id", how="inner")
    return {
        "session_summary": curated.session_summary(sessions, events, perf, logs, forms, recordings, good_quarantine),
        "session_event_counts": curated.session_event_counts(events, run_id),
        "events": curated.curated_events(events),
        "perf_seconds": curated.perf_seconds(perf, sessions, run_id),
        "log_fingerprints": curated.log_fingerprints(logs, sessions, run_id),
        "form_responses": curated.curated_forms(forms),
        "recordings": curated.curated_recordings(recordings),
    }


def _record_run(spark: SparkSession, store: DeltaStore, config: JobConfig, report: RunReport,
                started_at: dt.datetime) -> None:
    finished_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    row = (
        report.run_id, config.run_date, config.lookback_days, started_at, finished_at, report.status,
        sum(report.sessions.values()), report.sessions.get("ready", 0),
        report.sessions.get("incomplete", 0) + report.sessions.get("invalid", 0),
        {k: int(v) for k, v in report.rows_in.items()}, {k: int(v) for k, v in report.rows_out.items()},
        report.message or None,
    )
    store.upsert_run(spark.createDataFrame([row], schemas.RUNS))
