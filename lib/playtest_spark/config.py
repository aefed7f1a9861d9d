"""One configuration object for every environment-specific value of the job.

Values come, in order of precedence, from explicit arguments (command-line options or job
parameters), then `PLAYTEST_*` environment variables, then defaults for a laptop. Secrets
are read from environment variables only and never appear in `repr` or logs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from playtest_spark.errors import ConfigError
from playtest_spark.ids import parse_run_date

SQL_AUTH_MODES = ("none", "password", "entra-managed-identity", "entra-service-principal")
LANDING_AUTH_MODES = ("auto", "default", "connection-string", "account-key", "sas")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
DEFAULT_HOME = Path(".playtest")
SERVICE_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,254}")

# Environment variable for each setting; secrets are marked so they stay out of repr.
ENV_NAMES: dict[str, str] = {
    "landing": "PLAYTEST_LANDING",
    "landing_auth": "PLAYTEST_LANDING_AUTH",
    "landing_connection_string": "PLAYTEST_LANDING_CONNECTION_STRING",
    "landing_account_key": "PLAYTEST_LANDING_ACCOUNT_KEY",
    "landing_sas_token": "PLAYTEST_LANDING_SAS_TOKEN",
    "warehouse": "PLAYTEST_WAREHOUSE",
    "catalog": "PLAYTEST_CATALOG",
    "schema": "PLAYTEST_SCHEMA",
    "sql_url": "PLAYTEST_SQL_URL",
    "sql_auth": "PLAYTEST_SQL_AUTH",
    "sql_user": "PLAYTEST_SQL_USER",
    "sql_password": "PLAYTEST_SQL_PASSWORD",
    "sql_schema": "PLAYTEST_SQL_SCHEMA",
    "azure_tenant_id": "AZURE_TENANT_ID",
    "azure_client_id": "AZURE_CLIENT_ID",
    "azure_client_secret": "AZURE_CLIENT_SECRET",
    "azure_service_credential": "PLAYTEST_AZURE_SERVICE_CREDENTIAL",
    "lookback_days": "PLAYTEST_LOOKBACK_DAYS",
    "run_id": "PLAYTEST_RUN_ID",
    "sql_batch_size": "PLAYTEST_SQL_BATCH_SIZE",
}
SECRET_FIELDS = frozenset(
    {"landing_connection_string", "landing_account_key", "landing_sas_token", "sql_password",
     "azure_client_secret"}
)


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """Settings of one run of the nightly job.

    Attributes:
        run_date: The logical date whose sessions the run processes (UTC start date).
        landing: A local folder (also a Unity Catalog volume path such as
            `/Volumes/main/playtest/landing`), a Blob Storage container URL
            (`https://<account>.blob.core.windows.net/<container>`, or Azurite's
            `http://127.0.0.1:10000/devstoreaccount1/<container>`), or an
            `abfss://<container>@<account>.dfs.core.windows.net` URL.
        landing_auth: How the job authenticates to Blob Storage: `auto` picks a
            connection string, then an account key, then a SAS token, then
            `DefaultAzureCredential`.
        warehouse: Folder of path-based Delta tables (laptop, CI). Unused when `catalog`
            is set.
        catalog: Unity Catalog name; the Delta tables are then `catalog.schema.table`.
        schema: Schema of the Delta tables in the catalog.
        sql_url: JDBC URL of the curated SQL database. Defaults to a SQLite file in the
            warehouse folder.
        sql_auth: `none` (SQLite), `password`, `entra-managed-identity` or
            `entra-service-principal` (Azure SQL with an Entra ID access token).
        sql_schema: Schema of the curated tables; ignored for SQLite, which has none.
        azure_tenant_id: Entra ID tenant of the service principal (`entra-service-principal`).
        azure_client_id: Application (client) id of the service principal, or of a
            user-assigned managed identity (`entra-managed-identity`; empty means the
            system-assigned identity).
        azure_service_credential: Name of a Unity Catalog service credential whose managed
            identity (the access connector's) gets the SQL access token on Databricks
            (`entra-managed-identity` only). On Databricks, a service credential is how
            job code uses a managed identity.
        lookback_days: How many days before `run_date` are searched for late uploads.
        run_id: Identifier written to every row of the run. Defaults to
            `daily-<run_date>`, so that a rerun after a crash writes the same rows.
        sql_batch_size: Rows per JDBC batch insert.
    """

    run_date: dt.date
    landing: str
    warehouse: str | None = None
    catalog: str | None = None
    schema: str = "playtest"
    landing_auth: str = "auto"
    sql_url: str | None = None
    sql_auth: str = "none"
    sql_user: str | None = None
    sql_schema: str | None = "playtest"
    azure_tenant_id: str | None = None
    azure_client_id: str | None = None
    azure_service_credential: str | None = None
    lookback_days: int = 3
    run_id: str | None = None
    sql_batch_size: int = 10_000
    landing_connection_string: str | None = dataclasses.field(default=None, repr=False)
    landing_account_key: str | None = dataclasses.field(default=None, repr=False)
    landing_sas_token: str | None = dataclasses.field(default=None, repr=False)
    sql_password: str | None = dataclasses.field(default=None, repr=False)
    azure_client_secret: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._validate()

    # -- derived values -------------------------------------------------------------

    @property
    def effective_run_id(self) -> str:
        """Run id written to rows: the given one, or `daily-<run_date>`."""
        return self.run_id or f"daily-{self.run_date.isoformat()}"

    @property
    def effective_sql_url(self) -> str:
        """JDBC URL of the SQL database, defaulting to `<warehouse>/playtest.db` (SQLite)."""
        if self.sql_url:
            return self.sql_url
        assert self.warehouse is not None  # guaranteed by _validate
        return f"jdbc:sqlite:{Path(self.warehouse).resolve() / 'playtest.db'}"

    @property
    def sql_dialect(self) -> str:
        """`sqlite`, `postgresql` or `mssql`, read from the JDBC URL."""
        return sql_dialect_of(self.effective_sql_url)

    @property
    def effective_sql_schema(self) -> str | None:
        """Schema of the curated SQL tables; None for SQLite."""
        return None if self.sql_dialect == "sqlite" else self.sql_schema

    @property
    def look_back_dates(self) -> list[dt.date]:
        """The run date and the `lookback_days` days before it, newest first."""
        return [self.run_date - dt.timedelta(days=n) for n in range(self.lookback_days + 1)]

    def table_name(self, table: str) -> str:
        """Return the Unity Catalog name of a Delta table, or raise when path-based."""
        if not self.catalog:
            raise ConfigError("Delta tables are path-based here: set catalog to use table names")
        return f"{self.catalog}.{self.schema}.{table}"

    def table_path(self, table: str) -> str:
        """Return the folder of a path-based Delta table."""
        if not self.warehouse:
            raise ConfigError("no warehouse folder is set: pass --warehouse or PLAYTEST_WAREHOUSE")
        return str(Path(self.warehouse).resolve() / "delta" / table)

    def replace(self, **changes: Any) -> JobConfig:
        """Return a copy with `changes` applied and validated."""
        return dataclasses.replace(self, **changes)

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_sources(
        cls,
        options: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> JobConfig:
        """Build the configuration from options, then environment variables, then defaults.

        Args:
            options: Values given on the command line or as job parameters; None and
                empty strings count as not given.
            environ: Environment variables; `os.environ` when omitted.

        Raises:
            ConfigError: a setting is missing or invalid. The message names the option
                and its environment variable.
        """
        environ = os.environ if environ is None else environ
        options = dict(options or {})
        unknown = set(options) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}")

        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            given = options.get(field.name)
            if given in (None, ""):
                env_name = ENV_NAMES.get(field.name)
                given = environ.get(env_name) if env_name else None
            if given in (None, ""):
                continue
            values[field.name] = given

        if "run_date" not in values:
            raise ConfigError("missing setting run_date: pass --run-date YYYY-MM-DD")
        values["run_date"] = parse_run_date(values["run_date"])
        for name in ("lookback_days", "sql_batch_size"):
            if name in values:
                values[name] = _parse_int(name, values[name])
        if "landing" not in values:
            raise ConfigError(
                f"missing setting landing: pass --landing or set {ENV_NAMES['landing']}"
            )
        if "warehouse" not in values and "catalog" not in values:
            values["warehouse"] = str(DEFAULT_HOME / "warehouse")
        return cls(**values)

    # -- validation -------------------------------------------------------------------

    def _validate(self) -> None:
        if not isinstance(self.run_date, dt.date) or isinstance(self.run_date, dt.datetime):
            raise ConfigError(f"invalid run_date {self.run_date!r}: expected a date")
        if not self.landing:
            raise ConfigError("missing setting landing: a folder or a Blob Storage URL")
        if not self.warehouse and not self.catalog:
            raise ConfigError("set either warehouse (a folder) or catalog (Unity Catalog)")

        for name in ("catalog", "schema", "sql_schema"):
            value = getattr(self, name)
            if value is not None and not IDENTIFIER.fullmatch(value):
                raise ConfigError(f"invalid {name} {value!r}: use letters, digits and _")

        if not 0 <= self.lookback_days <= 60:
            raise ConfigError(f"invalid lookback_days {self.lookback_days!r}: use 0 to 60")
        if not 1 <= self.sql_batch_size <= 1_000_000:
            raise ConfigError(f"invalid sql_batch_size {self.sql_batch_size!r}: use 1 to 1000000")

        if self.sql_auth not in SQL_AUTH_MODES:
            raise ConfigError(f"invalid sql_auth {self.sql_auth!r}: use one of {SQL_AUTH_MODES}")
        if self.landing_auth not in LANDING_AUTH_MODES:
            raise ConfigError(
                f"invalid landing_auth {self.landing_auth!r}: use one of {LANDING_AUTH_MODES}"
            )
        if self.run_id is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", self.run_id):
            raise ConfigError(f"invalid run_id {self.run_id!r}: use A-Z a-z 0-9 _ . : -")

        self._validate_sql_auth()

    def _validate_sql_auth(self) -> None:
        dialect = sql_dialect_of(self.effective_sql_url)
        if self.sql_auth == "password" and not (self.sql_user and self.sql_password):
            raise ConfigError(
                "sql_auth 'password' needs sql_user and PLAYTEST_SQL_PASSWORD to be set"
            )
        if self.sql_auth == "entra-service-principal" and not (
            self.azure_tenant_id and self.azure_client_id and self.azure_client_secret
        ):
            raise ConfigError(
                "sql_auth 'entra-service-principal' needs AZURE_TENANT_ID, AZURE_CLIENT_ID "
                "and AZURE_CLIENT_SECRET"
            )
        if self.azure_service_credential is not None:
            if self.sql_auth != "entra-managed-identity":
                raise ConfigError(
                    f"azure_service_credential {self.azure_service_credential!r} works only "
                    f"with sql_auth 'entra-managed-identity', not {self.sql_auth!r}"
                )
            if not SERVICE_CREDENTIAL_NAME.fullmatch(self.azure_service_credential):
                raise ConfigError(
                    f"invalid azure_service_credential {self.azure_service_credential!r}: "
                    "use the Unity Catalog service credential name (letters, digits, _ and -)"
                )
        if self.sql_auth.startswith("entra-") and dialect != "mssql":
            raise ConfigError(
                f"sql_auth {self.sql_auth!r} works only with Azure SQL (jdbc:sqlserver:...), "
                f"not with {dialect}"
            )


def sql_dialect_of(jdbc_url: str) -> str:
    """Return `sqlite`, `postgresql` or `mssql` for a JDBC URL.

    Raises:
        ConfigError: the URL is not one of those three kinds.
    """
    for prefix, dialect in (
        ("jdbc:sqlite:", "sqlite"),
        ("jdbc:postgresql:", "postgresql"),
        ("jdbc:sqlserver:", "mssql"),
    ):
        if jdbc_url.startswith(prefix):
            return dialect
    raise ConfigError(
        f"unsupported sql_url {_redact_url(jdbc_url)!r}: use jdbc:sqlite:, jdbc:postgresql: "
        "or jdbc:sqlserver:"
    )


def _parse_int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {name} {value!r}: expected a whole number") from exc


def _redact_url(url: str) -> str:
    return re.sub(r"(?i)(password|pwd|accesstoken)=[^;&]*", r"\1=***", url)
