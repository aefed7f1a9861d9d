"""Connections to the curated SQL database from one JDBC URL.

Spark writes staging tables over JDBC; the publish transaction runs through a SQLAlchemy
engine on the same database: `sqlite` (the embedded default), `postgresql+psycopg`, or
`mssql+pyodbc` for Azure SQL (see `playtest_spark.sql.azure`).
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from playtest_spark.config import JobConfig
from playtest_spark.errors import ConfigError

JDBC_DRIVERS = {
    "sqlite": "org.sqlite.JDBC",
    "postgresql": "org.postgresql.Driver",
    "mssql": "com.microsoft.sqlserver.jdbc.SQLServerDriver",
}


def sqlite_path(jdbc_url: str) -> str:
    """Return the database file of a `jdbc:sqlite:` URL."""
    path = jdbc_url[len("jdbc:sqlite:"):].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ConfigError(f"invalid sql_url {jdbc_url!r}: name a SQLite file, not memory")
    return path


def postgres_parts(jdbc_url: str) -> tuple[str, dict[str, str]]:
    """Split `jdbc:postgresql://host:port/db?k=v` into `host:port/db` and its parameters."""
    rest = jdbc_url[len("jdbc:postgresql://"):]
    location, _, query = rest.partition("?")
    return location, dict(urllib.parse.parse_qsl(query))


def create_engine(config: JobConfig) -> Engine:
    """Return a SQLAlchemy engine on the configured database.

    Raises:
        ConfigError: the URL or its credentials are incomplete.
    """
    url = config.effective_sql_url
    dialect = config.sql_dialect
    if dialect == "sqlite":
        path = Path(sqlite_path(url))
        path.parent.mkdir(parents=True, exist_ok=True)
        # NullPool: no connection stays open while Spark writes to the same file.
        engine = sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=NullPool)

        @sqlalchemy.event.listens_for(engine, "connect")
        def _set_busy_timeout(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout = 30000")

        return engine
    if dialect == "postgresql":
        location, params = postgres_parts(url)
        user = config.sql_user or params.pop("user", None)
        password = config.sql_password or params.pop("password", None)
        params.pop("user", None)
        params.pop("password", None)
        credentials = ""
        if user:
            credentials = urllib.parse.quote(user, safe="")
            if password:
                credentials += ":" + urllib.parse.quote(password, safe="")
            credentials += "@"
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        return sqlalchemy.create_engine(f"postgresql+psycopg://{credentials}{location}{query}", poolclass=NullPool)
    from playtest_spark.sql import azure

    return azure.create_engine(config)


def jdbc_options(config: JobConfig) -> dict[str, str]:
    """Return Spark JDBC writer options (URL, driver, credentials, batch size).

    The result's repr hides passwords and tokens, so it is safe to log.
    """
    from playtest_spark.sql.azure import SecretOptions

    dialect = config.sql_dialect
    options = SecretOptions({
        "url": config.effective_sql_url,
        "driver": JDBC_DRIVERS[dialect],
        "batchsize": str(config.sql_batch_size),
    })
    if dialect == "sqlite":
        # SQLite supports only SERIALIZABLE, and asking for Spark's default logs a warning per write.
        options["isolationLevel"] = "SERIALIZABLE"
        return options
    if dialect == "postgresql":
        if config.sql_user:
            options["user"] = config.sql_user
        if config.sql_password:
            options["password"] = config.sql_password
        options["reWriteBatchedInserts"] = "true"
    else:
        from playtest_spark.sql import azure

        options.update(azure.jdbc_options(config))
    return options
