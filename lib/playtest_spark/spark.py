"""The one place that builds a SparkSession, for the job, the tests, the CLI and notebooks.

On Databricks the cluster's session is returned untouched. Locally, Spark runs in local
mode with Delta and the JDBC drivers. Their jars are resolved from Maven Central by
Spark's own Ivy client into a cache folder, so later runs need no network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

# Maven coordinates of the jars local Spark needs. Delta matches delta-spark 4.0 (Scala
# 2.13), as on Databricks Runtime 17.3 LTS.
JDBC_DRIVER_PACKAGES = (
    "org.xerial:sqlite-jdbc:3.50.3.0",
    "org.postgresql:postgresql:42.7.8",
    "com.microsoft.sqlserver:mssql-jdbc:12.10.1.jre11",
)
DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.0.0"
IVY_CACHE_ENV = "PLAYTEST_IVY_CACHE"
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


def is_databricks() -> bool:
    """Return whether this process runs on a Databricks cluster."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def ivy_cache_dir() -> Path:
    """Return the folder where Spark's Ivy client caches the jars."""
    configured = os.environ.get(IVY_CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "playtest-spark" / "ivy"


def get_spark(app_name: str = "playtest", cores: int | None = None) -> SparkSession:
    """Return the active SparkSession, or build a local one with Delta and JDBC drivers.

    Args:
        app_name: Application name shown in logs.
        cores: Local cores for Spark; all cores when None. Ignored on Databricks.
    """
    if is_databricks():
        active = SparkSession.getActiveSession()
        return active if active is not None else SparkSession.builder.getOrCreate()

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    # Keep the driver on loopback: a laptop's host name may resolve to a LAN address.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers must run this interpreter (the one with this package installed),
    # not whatever `python3` comes first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    cache = ivy_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    master = f"local[{cores}]" if cores else "local[*]"
    packages = (DELTA_PACKAGE, *JDBC_DRIVER_PACKAGES)
    cached_jars = _cached_jars(cache, packages)
    builder = SparkSession.builder.appName(app_name).master(master)
    if cached_jars:
        logger.info("starting local Spark (%s) with %d cached jars", master, len(cached_jars))
        builder = builder.config("spark.jars", ",".join(cached_jars))
    else:
        logger.info("starting local Spark (%s); resolving jars from Maven Central into %s", master, cache)
        builder = builder.config("spark.jars.packages", ",".join(packages)).config("spark.jars.ivy", str(cache))
    builder = (
        builder
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", f"-Duser.timezone=UTC -Dlog4j.configurationFile={LOG4J_CONFIG}")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.debug.maxToStringFields", "200")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        .config("spark.sql.files.openCostInBytes", str(512 * 1024))
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.databricks.delta.properties.defaults.enableChangeDataFeed", "false")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.driver.memory", os.environ.get("PLAYTEST_DRIVER_MEMORY", "4g"))
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if not cached_jars:
        _remember_jars(spark, cache, packages)
    return spark


def _jar_list_file(cache: Path, packages: tuple[str, ...]) -> Path:
    digest = hashlib.sha256(",".join(packages).encode()).hexdigest()[:16]
    return cache / f"resolved-{digest}.txt"


def _cached_jars(cache: Path, packages: tuple[str, ...]) -> list[str]:
    """Return the jars resolved for `packages` by an earlier start, if all still exist."""
    listing = _jar_list_file(cache, packages)
    if not listing.is_file():
        return []
    jars = [line for line in listing.read_text().splitlines() if line]
    return jars if jars and all(Path(jar).is_file() for jar in jars) else []


def _remember_jars(spark: SparkSession, cache: Path, packages: tuple[str, ...]) -> None:
    """Record the jars Ivy resolved, so later starts skip resolution and need no network."""
    resolved = spark.sparkContext.getConf().get("spark.jars", "")
    jars = [uri.removeprefix("file://").removeprefix("file:") for uri in resolved.split(",") if uri.endswith(".jar")]
    if jars and all(Path(jar).is_file() for jar in jars):
        _jar_list_file(cache, packages).write_text("\n".join(jars) + "\n")
