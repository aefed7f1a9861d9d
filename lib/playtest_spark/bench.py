"""Benchmark: the job on N synthetic sessions, with wall time and rows per second per stage.

Generation of the landing is timed apart and not counted. The job runs once, cold
(JVM start, empty tables), and the figures are for that run, as the nightly job meets
them.
"""

from __future__ import annotations

import datetime as dt
import resource
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from playtest_spark.config import JobConfig
from playtest_spark.demo import prepare_demo_home
from playtest_spark.landing.local import LocalLanding
from playtest_spark.synth import SyntheticSpec, generate_day

BENCH_DATE = dt.date(2026, 1, 15)


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _jvm_peak_rss_mb(spark) -> float | None:  # type: ignore[no-untyped-def]
    """Return the driver JVM's peak resident memory in MB, read from /proc (Linux only)."""
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    status = Path(f"/proc/{pid}/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def run_benchmark(console: Console, sessions: int, seconds: int, home: Path, cores: int) -> dict[str, float]:
    """Generate the landing, run the job once, print and return the figures."""
    prepare_demo_home(home, marker=".playtest-bench", command="bench")
    landing_dir = home / "landing"
    spec = SyntheticSpec(seconds=seconds)

    started = time.perf_counter()
    generate_day(LocalLanding(landing_dir), BENCH_DATE, sessions, spec)
    generate_seconds = time.perf_counter() - started
    landed_mb = _folder_bytes(landing_dir) / 1e6
    console.print(f"generated {sessions} sessions of {seconds} s ({landed_mb:.0f} MB) in {generate_seconds:.1f} s")

    from playtest_spark.job import run_job
    from playtest_spark.spark import get_spark

    started = time.perf_counter()
    spark = get_spark("playtest-bench", cores=cores)
    spark.range(1).collect()
    jvm_seconds = time.perf_counter() - started

    config = JobConfig.from_sources(
        {"run_date": BENCH_DATE.isoformat(), "landing": str(landing_dir), "warehouse": str(home / "warehouse")},
        environ={},
    )
    started = time.perf_counter()
    report = run_job(spark, config)
    job_seconds = time.perf_counter() - started

    rows_in = sum(v for k, v in report.rows_out.items() if k in ("events", "perf_samples", "log_entries", "form_responses"))
    table = Table("stage", "seconds", "rows/s", title=f"Job on {sessions} sessions, local[{cores}]")
    table.add_row("spark start (JVM, jars)", f"{jvm_seconds:.1f}", "")
    for stage, value in report.timings.items():
        table.add_row(stage, f"{value:.1f}", f"{rows_in / value:,.0f}" if value and stage != "discover" else "")
    other = job_seconds - sum(report.timings.values())
    table.add_row("other (table set-up, counts, runs row)", f"{other:.1f}", "")
    table.add_row("job total", f"{job_seconds:.1f}", f"{rows_in / job_seconds:,.0f}")
    console.print(table)
    console.print(f"rows parsed: {rows_in:,} (events {report.rows_out.get('events', 0):,}, "
                  f"frames {report.rows_out.get('perf_samples', 0):,}); landed {landed_mb:.0f} MB")
    jvm_peak = _jvm_peak_rss_mb(spark)
    python_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"peak memory: driver JVM {jvm_peak:.0f} MB, driver Python {python_peak:.0f} MB"
                  if jvm_peak else f"peak memory: driver Python {python_peak:.0f} MB")
    return {"job_seconds": job_seconds, "rows": rows_in, **report.timings}
