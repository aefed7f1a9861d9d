"""The `playtest` command line: run the job, the demo and the benchmark, capture sessions."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from playtest_spark.errors import PlaytestError

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


RunDate = Annotated[Optional[str], typer.Option("--run-date", help="Logical date to process, YYYY-MM-DD (UTC).")]
Landing = Annotated[Optional[str], typer.Option("--landing", help="Landing folder or Blob container URL [env PLAYTEST_LANDING].")]
Warehouse = Annotated[Optional[str], typer.Option("--warehouse", help="Folder of the Delta tables and the SQLite file [env PLAYTEST_WAREHOUSE].")]
SqlUrl = Annotated[Optional[str], typer.Option("--sql-url", help="JDBC URL of the SQL database; default: SQLite in the warehouse [env PLAYTEST_SQL_URL].")]
Lookback = Annotated[Optional[int], typer.Option("--lookback-days", help="Days before the run date searched for late uploads (default 3).")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")]


@app.command()
def run(
    run_date: RunDate = None,
    landing: Landing = None,
    warehouse: Warehouse = None,
    sql_url: SqlUrl = None,
    lookback_days: Lookback = None,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Run id written to rows; default daily-<run date>.")] = None,
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
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    _run_and_print(config)


@app.command()
def demo(
    run_date: RunDate = None,
    sessions: Annotated[int, typer.Option("--sessions", min=0, help="Synthetic one-minute sessions to generate.")] = 20,
    home: Annotated[Path, typer.Option("--home", help="Folder for the demo landing, Delta tables and SQLite file.")] = Path(".playtest/demo"),
    cases_dir: Annotated[Optional[Path], typer.Option("--cases-dir", help="Real sample files to add as sessions [env PLAYTEST_CASES_DIR].")] = None,
    verbose: Verbose = False,
) -> None:
    """Build a demo landing (synthetic, real-file and bad-input sessions) and run the job on it.

    The demo folder is recreated on every call.
    """
    _setup_logging(verbose)
    from playtest_spark.config import JobConfig
    from playtest_spark.demo import build_demo_landing, default_cases_dir

    session_date = dt.date.fromisoformat(run_date) if run_date else dt.datetime.now(dt.timezone.utc).date()
    if home.exists():
        shutil.rmtree(home)
    landing_dir = home / "landing"
    counts = build_demo_landing(landing_dir, session_date, sessions, cases_dir or default_cases_dir())
    console.print(f"demo landing at [bold]{landing_dir}[/bold]: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + " sessions")
    config = JobConfig.from_sources({"run_date": session_date.isoformat(), "landing": str(landing_dir),
                                     "warehouse": str(home / "warehouse")}, environ={})
    _run_and_print(config)


@app.command()
def bench(
    sessions: Annotated[int, typer.Option("--sessions", min=1, help="Synthetic sessions to generate.")] = 200,
    seconds: Annotated[int, typer.Option("--seconds", min=1, help="Length of each session in seconds.")] = 60,
    home: Annotated[Path, typer.Option("--home", help="Working folder, recreated.")] = Path(".playtest/bench"),
    cores: Annotated[int, typer.Option("--cores", min=1, help="Local Spark cores.")] = 2,
    verbose: Verbose = False,
) -> None:
    """Generate N synthetic sessions and print wall time and rows per second per stage."""
    _setup_logging(verbose)
    from playtest_spark.bench import run_benchmark

    run_benchmark(console, sessions=sessions, seconds=seconds, home=home, cores=cores)


def _run_and_print(config) -> None:  # type: ignore[no-untyped-def]
    from playtest_spark.job import run_job
    from playtest_spark.spark import get_spark

    spark = get_spark()
    try:
        report = run_job(spark, config)
    except PlaytestError as exc:
        console.print(f"[red]run failed:[/red] {exc}")
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
    if report.incomplete:
        held = Table("session", "reason", title="Sessions held back")
        for session_id, reason in report.incomplete:
            held.add_row(session_id, reason)
        console.print(held)
    if report.quarantine_reasons:
        grouped = Counter((s, f, r) for s, f, _, r in report.quarantine_reasons)
        quarantine = Table("session", "file", "records", "reason", title="Quarantined (first 30 groups)")
        for (session_id, source_file, reason), count in grouped.most_common(30):
            quarantine.add_row(session_id, source_file, str(count), reason)
        console.print(quarantine)
    if report.message:
        console.print(report.message)
    location = config.table_name("<table>") if config.catalog else config.table_path("<table>")
    console.print(f"Delta tables: [bold]{location}[/bold]")
    console.print(f"SQL database: [bold]{config.effective_sql_url}[/bold]")


def main() -> None:
    """Console entry point of `playtest`."""
    app()


if __name__ == "__main__":
    main()
