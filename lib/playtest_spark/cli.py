"""The `playtest` command line: run the job, the demo and the benchmark, capture sessions."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from playtest_spark.config import ENV_NAMES
from playtest_spark.errors import PlaytestError
from playtest_spark.ids import parse_run_date

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Playtest data platform.")
console = Console(width=None if sys.stdout.isatty() else 140)
logger = logging.getLogger("playtest_spark.cli")

try:  # The capture commands need only the light client dependencies.
    from playtest_spark.capture.cli import session_app

    app.add_typer(session_app, name="session", help="Open, fill and upload play sessions.")
except ImportError as exc:  # pragma: no cover - only without the capture package
    logger.debug("capture commands unavailable: %s", exc)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
        force=True,
    )
    for noisy in ("py4j", "azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _env_hint(name: str) -> str:
    """Return an `[env NAME]` help suffix, escaped so rich markup does not swallow it."""
    return rf"\[env {name}]"


RunDate = Annotated[Optional[str], typer.Option("--run-date", help="Logical date to process, YYYY-MM-DD (UTC).")]
Landing = Annotated[Optional[str], typer.Option(
    "--landing", help=f"Landing folder or Blob container URL {_env_hint(ENV_NAMES['landing'])}.")]
Warehouse = Annotated[Optional[str], typer.Option(
    "--warehouse", help=f"Folder of the Delta tables and the SQLite file {_env_hint(ENV_NAMES['warehouse'])}.")]
SqlUrl = Annotated[Optional[str], typer.Option(
    "--sql-url",
    help=f"JDBC URL of the SQL database; default: SQLite in the warehouse {_env_hint(ENV_NAMES['sql_url'])}.")]
Lookback = Annotated[Optional[int], typer.Option(
    "--lookback-days",
    help=f"Days before the run date searched for late uploads (default 3) {_env_hint(ENV_NAMES['lookback_days'])}.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")]

# Reason shown for sessions whose upload has not finished.
OPEN_REASON = ("open: no _complete.json yet, so the upload has not finished; a later run "
               "processes it if the upload finishes within the look-back window")


@app.command()
def run(
    run_date: RunDate = None,
    landing: Landing = None,
    warehouse: Warehouse = None,
    sql_url: SqlUrl = None,
    lookback_days: Lookback = None,
    run_id: Annotated[Optional[str], typer.Option(
        "--run-id", help=f"Run id written to rows; default daily-<run date> {_env_hint(ENV_NAMES['run_id'])}.")] = None,
    verbose: Verbose = False,
) -> None:
    """Process one day of landed sessions into Delta tables and the SQL database."""
    _setup_logging(verbose)
    from playtest_spark.config import JobConfig

    try:
        config = JobConfig.from_sources({
            "run_date": run_date, "landing": landing, "warehouse": warehouse, "sql_url": sql_url,
            "lookback_days": lookback_days, "run_id": run_id,
        })
    except PlaytestError as exc:
        _print_error(exc)
        raise typer.Exit(2) from exc
    _run_and_print(config)


@app.command()
def demo(
    run_date: RunDate = None,
    sessions: Annotated[int, typer.Option("--sessions", min=0, help="Synthetic one-minute sessions to generate.")] = 20,
    home: Annotated[Path, typer.Option(
        "--home", help="Folder for the demo landing, Delta tables and SQLite file. It must be new, empty "
                       "or made by an earlier demo.")] = Path(".playtest/demo"),
    cases_dir: Annotated[Optional[Path], typer.Option(
        "--cases-dir", help=f"Real sample files to add as sessions {_env_hint('PLAYTEST_CASES_DIR')}.")] = None,
    verbose: Verbose = False,
) -> None:
    """Build a demo landing (synthetic, real-file and bad-input sessions) and run the job on it.

    The demo folder is emptied and refilled on every call.
    """
    _setup_logging(verbose)
    from playtest_spark.config import JobConfig
    from playtest_spark.demo import build_demo_landing, default_cases_dir

    session_date = _demo_session_date(run_date)
    _prepare_home(home, "demo")
    landing_dir = home / "landing"
    counts = build_demo_landing(landing_dir, session_date, sessions, cases_dir or default_cases_dir())
    console.print(f"demo landing at [bold]{escape(str(landing_dir))}[/bold]: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + " sessions")
    config = JobConfig.from_sources({"run_date": session_date.isoformat(), "landing": str(landing_dir),
                                     "warehouse": str(home / "warehouse")}, environ={})
    _run_and_print(config)


def _demo_session_date(run_date: str | None) -> dt.date:
    """Return the parsed `--run-date`, or today (UTC); exit with code 2 on an invalid date."""
    if not run_date:
        return dt.datetime.now(dt.timezone.utc).date()
    try:
        return parse_run_date(run_date)
    except PlaytestError as exc:
        _print_error(exc)
        raise typer.Exit(2) from exc


def _prepare_home(home: Path, command: str) -> None:
    """Empty a `--home` folder that `command` made, or exit with code 2 when it contains other files.

    An I/O error while emptying or creating the folder exits with code 1.
    """
    from playtest_spark.demo import prepare_demo_home

    try:
        prepare_demo_home(home, marker=_marker_name(command), command=command)
    except PlaytestError as exc:
        _print_error(exc)
        raise typer.Exit(2) from exc
    except OSError as exc:
        _print_error(f"could not empty or create folder {str(home)!r}: {exc}")
        raise typer.Exit(1) from exc


def _marker_name(command: str) -> str:
    return f".playtest-{command}"


def _print_error(message: object) -> None:
    console.print(f"[red]error:[/red] {escape(str(message))}")


@app.command()
def bench(
    sessions: Annotated[int, typer.Option("--sessions", min=1, help="Synthetic sessions to generate.")] = 200,
    seconds: Annotated[int, typer.Option("--seconds", min=1, help="Length of each session in seconds.")] = 60,
    home: Annotated[Path, typer.Option(
        "--home", help="Working folder, emptied on every call. It must be new, empty or made by an earlier bench.",
    )] = Path(".playtest/bench"),
    cores: Annotated[int, typer.Option("--cores", min=1, help="Local Spark cores.")] = 2,
    verbose: Verbose = False,
) -> None:
    """Generate N synthetic sessions and print wall time and rows per second per stage."""
    _setup_logging(verbose)
    from playtest_spark.bench import run_benchmark
    from playtest_spark.demo import mark_demo_home

    _prepare_home(home, "bench")
    try:
        run_benchmark(console, sessions=sessions, seconds=seconds, home=home, cores=cores)
    finally:
        # run_benchmark deletes and recreates the folder, marker included.
        if home.is_dir():
            mark_demo_home(home, marker=_marker_name("bench"), command="bench")


def _run_and_print(config) -> None:  # type: ignore[no-untyped-def]
    from playtest_spark.job import run_job
    from playtest_spark.spark import get_spark

    spark = get_spark()
    try:
        report = run_job(spark, config)
    except PlaytestError as exc:
        console.print(f"[red]run failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    print_report(report, config)


def print_report(report, config) -> None:  # type: ignore[no-untyped-def]
    """Print a run's summary: sessions, rows per table, quarantined records, locations."""
    console.rule(f"run {report.run_id} ({report.status})")
    sessions = Table("session state", "count", title="Sessions")
    for state, count in report.sessions.items():
        sessions.add_row(state, str(count))
    console.print(sessions)
    rows = Table("table", "rows written", title="Rows")
    for table, count in report.rows_out.items():
        rows.add_row(table, f"{count:,}")
    console.print(rows)
    held_back = _held_back_rows(report)
    if held_back:
        held_table = Table("session", "reason", title="Sessions held back")
        for session_id, reason in held_back:
            held_table.add_row(escape(session_id), escape(reason))
        console.print(held_table)
    if report.quarantine_reasons:
        grouped = Counter((s, f, r) for s, f, _, r in report.quarantine_reasons)
        quarantine = Table("session", "file", "records", "reason", title="Quarantined (first 30 groups)")
        for (session_id, source_file, reason), count in grouped.most_common(30):
            quarantine.add_row(escape(session_id), escape(source_file), str(count), escape(reason))
        console.print(quarantine)
    if report.message:
        console.print(escape(report.message))
    location = config.table_name("<table>") if config.catalog else config.table_path("<table>")
    console.print(f"Delta tables: [bold]{location}[/bold]")
    console.print(f"SQL database: [bold]{config.effective_sql_url}[/bold]")


def _held_back_rows(report) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Return (session, reason) rows for incomplete, invalid and still-open sessions.

    Open sessions are listed by id when the report has an `open_sessions` list (ids, or
    (id, reason) pairs). Otherwise one row gives their count from `report.sessions`.
    """
    rows = [(str(session_id), str(reason)) for session_id, reason in report.incomplete]
    open_sessions = getattr(report, "open_sessions", None)
    if open_sessions:
        for entry in open_sessions:
            session_id, reason = entry if isinstance(entry, tuple) else (entry, OPEN_REASON)
            rows.append((str(session_id), str(reason)))
    elif report.sessions.get("open"):
        count = report.sessions["open"]
        rows.append((f"{count} open session{'s' if count != 1 else ''}", OPEN_REASON))
    return rows


def main() -> None:
    """Console entry point of `playtest`."""
    app()


if __name__ == "__main__":
    main()
