"""Entry point of the nightly Databricks job (and of `python -m playtest_spark.entry`).

Parameters arrive as command-line style arguments, as Databricks passes job parameters to
a Python wheel task: `--run-date 2026-12-03 --landing /Volumes/... --catalog main`. Only
`--run-date` is required, with no default: the scheduler passes the logical date, so the
job never reads the wall clock to decide what to process.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from playtest_spark.config import JobConfig
from playtest_spark.errors import ConfigError, PlaytestError

logger = logging.getLogger(__name__)

# Job parameter -> JobConfig field. The bundle's job definition passes these names.
PARAMETERS: dict[str, str] = {
    "run-date": "run_date",
    "landing": "landing",
    "landing-auth": "landing_auth",
    "warehouse": "warehouse",
    "catalog": "catalog",
    "schema": "schema",
    "sql-url": "sql_url",
    "sql-auth": "sql_auth",
    "sql-user": "sql_user",
    "sql-schema": "sql_schema",
    "azure-tenant-id": "azure_tenant_id",
    "azure-client-id": "azure_client_id",
    "lookback-days": "lookback_days",
    "run-id": "run_id",
    "sql-batch-size": "sql_batch_size",
}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the job's parameters."""
    parser = argparse.ArgumentParser(
        prog="playtest-daily",
        description="Process one day of landed playtest sessions into Delta and SQL.",
    )
    for name, field in PARAMETERS.items():
        parser.add_argument(f"--{name}", dest=field, required=(name == "run-date"))
    parser.add_argument(
        "--secret-scope",
        dest="secret_scope",
        help="Databricks secret scope holding sql-password, landing-connection-string "
        "and azure-client-secret (read only on Databricks)",
    )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> JobConfig:
    """Parse job parameters into a `JobConfig`, reading secrets from the environment or
    from a Databricks secret scope.

    Raises:
        ConfigError: a parameter is missing or invalid.
    """
    args = vars(build_parser().parse_args(argv))
    scope = args.pop("secret_scope", None)
    options = {key: value for key, value in args.items() if value not in (None, "")}
    if scope:
        from playtest_spark.secrets import read_secret_scope

        options.update(read_secret_scope(scope))
    return JobConfig.from_sources(options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the nightly job and return 0.

    Raises:
        SystemExit: with code 1 on a configuration or service error. A Databricks wheel
            task calls this function and ignores its return value, so only an exception
            marks the run as failed.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        logger.error("invalid job configuration: %s", exc)
        raise SystemExit(1) from exc

    from playtest_spark.job import run_job
    from playtest_spark.spark import get_spark

    spark = get_spark()
    try:
        report = run_job(spark, config)
    except PlaytestError as exc:
        logger.error("run %s failed: %s", config.effective_run_id, exc)
        raise SystemExit(1) from exc
    logger.info("run %s finished: %s", config.effective_run_id, report.one_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
