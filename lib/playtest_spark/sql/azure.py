"""Azure SQL Database with Microsoft Entra ID access tokens: Spark JDBC, pyodbc, SQLAlchemy.

The job never stores a database password for Azure SQL. It requests an access token
for the scope `https://database.windows.net/.default` from azure-identity, using

- `entra-managed-identity`: a Unity Catalog service credential on Databricks (its access
  connector's managed identity) when `azure_service_credential` is set, otherwise
  `ManagedIdentityCredential` (Azure VMs, Functions, containers);
- `entra-service-principal`: `ClientSecretCredential`, with the secret from the
  environment or a Databricks secret scope.

A token is checked only when a connection logs in, and each connection needs its own:

- Spark JDBC takes the token as the `accessToken` connection property. Spark copies the
  options into every task, and each task opens its own connection with that same string.
  `jdbc_options` is therefore called once per write call and returns a token that stays
  valid for at least `WRITE_MIN_VALIDITY_S`; see its docstring for the limits.
- pyodbc takes the token as the connection attribute `SQL_COPT_SS_ACCESS_TOKEN` (1256)
  before login, in the structure `token_struct` builds. The SQLAlchemy engine sets it on
  every new connection through a `do_connect` event, so a long publish never reuses an
  expired token for a new connection.

NOTE: Without an Azure SQL server and an Entra ID tenant, the tests prove only the token
structure, the refresh rules, the connection strings and options, and that no token or
secret reaches a repr or a log. These remain unproven here: that Azure SQL accepts the
token structure and the `accessToken` property, that the job's identity is a database
user with the needed rights, that an open connection outlives its token's expiry, the
speed of `useBulkCopyForBatchInsert` with these tables and batch size, that the ODBC
Driver 18 keywords used here are accepted, and the Unity Catalog service credential path
on Databricks.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from playtest_spark.config import JobConfig
from playtest_spark.errors import ConfigError, PublishError

logger = logging.getLogger(__name__)

SQL_SCOPE = "https://database.windows.net/.default"
# Connection attribute of the Microsoft ODBC driver (msodbcsql.h) that carries a token.
SQL_COPT_SS_ACCESS_TOKEN = 1256
ODBC_DRIVER = "ODBC Driver 18 for SQL Server"
JDBC_DRIVER_CLASS = "com.microsoft.sqlserver.jdbc.SQLServerDriver"
DEFAULT_PORT = 1433
LOGIN_TIMEOUT_S = 30
# A cached token is replaced when it has less than this left, before any caller sees it.
REFRESH_MARGIN_S = 300
# Every task of one Spark write call logs in with the same token, so a write call gets a
# token with at least this much life left. Entra ID tokens usually live 60 to 90 minutes
# for a service principal and longer for a managed identity.
WRITE_MIN_VALIDITY_S = 1800
# Option and connection-string keys whose values never appear in a repr or a log.
SECRET_OPTION_KEYS = frozenset({"accessToken", "password", "PWD"})


# -- token ------------------------------------------------------------------------------


def token_struct(token: str) -> bytes:
    """Encode an access token as the ODBC driver expects it for attribute 1256.

    The structure is the token's byte length as a 4-byte little-endian unsigned integer,
    followed by the token encoded as UTF-16-LE, as Microsoft documents for
    `SQL_COPT_SS_ACCESS_TOKEN`.

    Raises:
        ValueError: the token is empty.
    """
    if not token:
        raise ValueError("empty access token: the credential returned no token")
    data = token.encode("utf-16-le")
    return struct.pack("<I", len(data)) + data


class AccessTokenProvider:
    """Entra ID access tokens for one identity, cached and refreshed before they expire.

    Thread-safe. The token itself never appears in `repr`, `str` or log messages.

    Args:
        credential_factory: Builds an azure-identity style credential (an object with
            `get_token(scope)` returning `token` and `expires_on`, epoch seconds).
        scope: Token scope; Azure SQL's by default.
        refresh_margin_s: A cached token with less life left than this is replaced.
        clock: Returns the current time in epoch seconds; replaceable in tests.
    """

    def __init__(
        self,
        credential_factory: Callable[[], Any],
        *,
        scope: str = SQL_SCOPE,
        refresh_margin_s: float = REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential_factory = credential_factory
        self._credential: Any = None
        self._scope = scope
        self._refresh_margin_s = refresh_margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on: float | None = None

    @property
    def expires_on(self) -> float | None:
        """Expiry of the cached token in epoch seconds, or None before the first token."""
        return self._expires_on

    def token(self, min_valid_s: float = 0.0) -> str:
        """Return an access token that stays valid for at least `min_valid_s` seconds.

        A cached token is returned while it has more than `max(refresh_margin_s,
        min_valid_s)` left. Otherwise the credential is asked again. When the credential
        hands back a token that still expires too soon (azure-identity keeps its own
        cache), a new credential object is built and asked once more. If even that token
        is too short-lived, it is returned with a warning, because Entra ID sets token
        lifetimes and no client can ask for longer.

        Raises:
            PublishError: the credential could not get a token.
        """
        with self._lock:
            needed = max(self._refresh_margin_s, min_valid_s)
            if self._token is None or self._remaining() < needed:
                self._fetch(needed)
            assert self._token is not None
            return self._token

    def _remaining(self) -> float:
        return (self._expires_on or 0.0) - self._clock()

    def _fetch(self, needed: float) -> None:
        if self._credential is None:
            self._credential = self._credential_factory()
        self._store(self._get_token())
        if self._remaining() >= needed:
            return
        logger.info(
            "cached access token for %s has %.0f s left, %.0f s needed: asking a new credential",
            self._scope, self._remaining(), needed,
        )
        self._credential = self._credential_factory()
        self._store(self._get_token())
        if self._remaining() < needed:
            logger.warning(
                "access token for %s is valid for only %.0f s, less than the %.0f s requested; "
                "connections opened after it expires will fail to log in",
                self._scope, self._remaining(), needed,
            )

    def _get_token(self) -> Any:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return self._credential.get_token(self._scope)
        except ClientAuthenticationError as exc:
            raise PublishError(
                f"could not get an Entra ID access token for {self._scope} "
                f"({type(self._credential).__name__}): {exc.message or type(exc).__name__}. "
                "Check the identity settings (sql_auth, AZURE_TENANT_ID, AZURE_CLIENT_ID, "
                "azure_service_credential) and that the identity exists."
            ) from exc

    def _store(self, access_token: Any) -> None:
        self._token = access_token.token
        self._expires_on = float(access_token.expires_on)
        logger.info(
            "got an access token for %s, valid for %.0f s", self._scope, self._remaining()
        )

    def __repr__(self) -> str:
        state = "empty" if self._token is None else f"expires_on={self._expires_on:.0f}"
        return f"AccessTokenProvider(scope={self._scope!r}, {state})"

    __str__ = __repr__


def credential_factory(config: JobConfig, dbutils: Any = None) -> Callable[[], Any]:
    """Return a function that builds the azure-identity credential for `config.sql_auth`.

    Args:
        config: The job configuration; `sql_auth` must be an `entra-*` mode.
        dbutils: Databricks utilities, for a Unity Catalog service credential; found with
            `playtest_spark.secrets.get_dbutils()` when omitted.

    Raises:
        ConfigError: `sql_auth` does not use Entra ID.
    """
    if config.sql_auth == "entra-service-principal":
        from azure.identity import ClientSecretCredential

        tenant_id = config.azure_tenant_id
        client_id = config.azure_client_id
        secret = config.azure_client_secret
        return lambda: ClientSecretCredential(tenant_id, client_id, secret)

    if config.sql_auth == "entra-managed-identity":
        service_credential = config.azure_service_credential
        if service_credential:

            def databricks_service_credential() -> Any:
                from playtest_spark.secrets import get_dbutils

                utils = dbutils if dbutils is not None else get_dbutils()
                return utils.credentials.getServiceCredentialsProvider(service_credential)

            return databricks_service_credential

        from azure.identity import ManagedIdentityCredential

        client_id = config.azure_client_id
        if client_id:
            return lambda: ManagedIdentityCredential(client_id=client_id)
        return ManagedIdentityCredential

    raise ConfigError(
        f"sql_auth {config.sql_auth!r} does not use an Entra ID token: use "
        "'entra-managed-identity' or 'entra-service-principal'"
    )


_PROVIDERS: dict[tuple[str | None, ...], AccessTokenProvider] = {}
_PROVIDERS_LOCK = threading.Lock()


def token_provider(config: JobConfig) -> AccessTokenProvider:
    """Return the process-wide token provider for the identity that `config` names.

    Raises:
        ConfigError: `sql_auth` does not use Entra ID.
    """
    key = (
        config.sql_auth,
        config.azure_tenant_id,
        config.azure_client_id,
        config.azure_service_credential,
    )
    with _PROVIDERS_LOCK:
        provider = _PROVIDERS.get(key)
        if provider is None:
            provider = AccessTokenProvider(credential_factory(config))
            _PROVIDERS[key] = provider
        return provider


def clear_token_providers() -> None:
    """Forget every cached token provider (for tests and credential rotation)."""
    with _PROVIDERS_LOCK:
        _PROVIDERS.clear()


# -- server address ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SqlServerAddress:
    """Host, port and database of a SQL Server or Azure SQL database."""

    host: str
    port: int
    database: str

    @property
    def host_name_in_certificate(self) -> str:
        """Name the server certificate must match: `*.database.windows.net` for Azure SQL."""
        _, dot, domain = self.host.partition(".")
        return f"*.{domain}" if dot and domain else self.host


def parse_jdbc_url(jdbc_url: str) -> SqlServerAddress:
    """Read host, port and database from `jdbc:sqlserver://host[:port][;key=value]...`.

    Raises:
        ConfigError: the URL is not a SQL Server JDBC URL or names no host or database.
    """
    prefix = "jdbc:sqlserver://"
    if not jdbc_url.startswith(prefix):
        raise ConfigError(f"invalid sql_url: expected {prefix}<host>:1433;database=<name>")
    location, _, rest = jdbc_url[len(prefix):].partition(";")
    host, _, port_text = location.partition(":")
    properties: dict[str, str] = {}
    for item in rest.split(";"):
        key, eq, value = item.partition("=")
        if eq:
            properties[key.strip().lower()] = value.strip()
    database = properties.get("database") or properties.get("databasename")
    if not host or not database:
        raise ConfigError(
            f"invalid sql_url for host {host!r}: name the server and the database, as in "
            "jdbc:sqlserver://<server>.database.windows.net:1433;database=<name>"
        )
    try:
        port = int(port_text or properties.get("portnumber") or DEFAULT_PORT)
    except ValueError as exc:
        raise ConfigError(f"invalid port {port_text!r} in sql_url: expected a number") from exc
    return SqlServerAddress(host=host, port=port, database=database)


# -- pyodbc and SQLAlchemy --------------------------------------------------------------


def odbc_connection_string(address: SqlServerAddress, *, driver: str = ODBC_DRIVER) -> str:
    """Return an ODBC connection string with encryption and certificate checks on.

    The string carries no UID, PWD, Authentication or Trusted_Connection keyword, because
    the ODBC driver rejects them when an access token is set. `odbc_credentials` adds
    them for SQL authentication.
    """
    parts = [
        ("Driver", driver),
        ("Server", f"tcp:{address.host},{address.port}"),
        ("Database", address.database),
        ("Encrypt", "yes"),
        ("TrustServerCertificate", "no"),
        ("HostNameInCertificate", address.host_name_in_certificate),
    ]
    return ";".join(f"{key}={_odbc_value(value)}" for key, value in parts)


def odbc_credentials(user: str, password: str) -> str:
    """Return the `UID=...;PWD=...` part of an ODBC connection string, values braced."""
    return f"UID={_odbc_value(user)};PWD={_odbc_value(password)}"


def _odbc_value(value: str) -> str:
    # ODBC braces a value that contains separators; a closing brace inside is doubled.
    if any(char in value for char in ";{}= ") or value != value.strip():
        return "{" + value.replace("}", "}}") + "}"
    return value


def access_token_attrs(provider: AccessTokenProvider) -> dict[int, bytes]:
    """Return pyodbc `attrs_before` that log in with a current token of `provider`."""
    return {SQL_COPT_SS_ACCESS_TOKEN: token_struct(provider.token())}


def connect(config: JobConfig, *, connect_fn: Callable[..., Any] | None = None) -> Any:
    """Open a pyodbc connection to the Azure SQL database of `config`.

    Args:
        config: The job configuration; `sql_url` must be a `jdbc:sqlserver:` URL.
        connect_fn: The DB-API connect function; `pyodbc.connect` when omitted.

    Raises:
        ConfigError: the URL or the authentication settings are invalid.
        PublishError: no access token could be obtained.
    """
    address = parse_jdbc_url(config.effective_sql_url)
    if connect_fn is None:
        import pyodbc

        connect_fn = pyodbc.connect
    if config.sql_auth == "password":
        connection_string = odbc_connection_string(address) + ";" + odbc_credentials(
            config.sql_user or "", config.sql_password or ""
        )
        return connect_fn(connection_string, timeout=LOGIN_TIMEOUT_S)
    attrs = access_token_attrs(token_provider(config))
    return connect_fn(odbc_connection_string(address), attrs_before=attrs, timeout=LOGIN_TIMEOUT_S)


def create_engine(config: JobConfig, *, module: Any = None) -> Any:
    """Return a SQLAlchemy `mssql+pyodbc` engine on the Azure SQL database of `config`.

    Every new DB-API connection gets a current Entra ID token (or, with `sql_auth`
    `password`, the user and password) through a `do_connect` event, so the engine URL
    and its repr hold no secret. The engine keeps no idle connections (`NullPool`), so
    each checkout logs in afresh.

    Args:
        config: The job configuration; `sql_url` must be a `jdbc:sqlserver:` URL.
        module: DB-API module passed to SQLAlchemy instead of importing pyodbc, which
            needs the unixODBC library to import.

    Raises:
        ConfigError: the URL or the authentication settings are invalid.
    """
    import urllib.parse

    import sqlalchemy
    from sqlalchemy.pool import NullPool

    address = parse_jdbc_url(config.effective_sql_url)
    if config.sql_auth == "password":
        set_login = _credentials_setter(config.sql_user or "", config.sql_password or "")
    else:
        set_login = _token_setter(token_provider(config))

    url = "mssql+pyodbc:///?odbc_connect=" + urllib.parse.quote_plus(odbc_connection_string(address))
    kwargs: dict[str, Any] = {
        "poolclass": NullPool,
        "fast_executemany": True,
        "connect_args": {"timeout": LOGIN_TIMEOUT_S},
        "hide_parameters": True,
    }
    if module is not None:
        kwargs["module"] = module
    engine = sqlalchemy.create_engine(url, **kwargs)
    sqlalchemy.event.listen(engine, "do_connect", set_login)
    return engine


def _token_setter(provider: AccessTokenProvider) -> Callable[..., None]:
    def set_access_token(dialect: Any, connection_record: Any, cargs: list, cparams: dict) -> None:
        cparams["attrs_before"] = access_token_attrs(provider)

    return set_access_token


def _credentials_setter(user: str, password: str) -> Callable[..., None]:
    def set_credentials(dialect: Any, connection_record: Any, cargs: list, cparams: dict) -> None:
        cargs[0] = f"{cargs[0]};{odbc_credentials(user, password)}"

    return set_credentials


# -- Spark JDBC -------------------------------------------------------------------------


class SecretOptions(dict):
    """A dict of connection options whose repr and str hide secret values."""

    def __repr__(self) -> str:
        return repr(redact_options(self))

    __str__ = __repr__


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of `options` with secret values replaced by `***`."""
    return {key: ("***" if key in SECRET_OPTION_KEYS else value) for key, value in options.items()}


def jdbc_options(config: JobConfig, *, min_valid_s: float = WRITE_MIN_VALIDITY_S) -> SecretOptions:
    """Return the SQL Server specific Spark JDBC options for one write call.

    Call it once per `DataFrameWriter.jdbc`/`save` call, never once per job: each call
    returns a token that stays valid for at least `min_valid_s` seconds.

    Limits: every task of the write call, and every retry of a task, logs in with the
    token of this one call. A task that opens its connection after the token has expired
    fails to log in, and so do its retries. Keep one write call shorter than `min_valid_s`
    (split a large table into several calls).

    Bulk copy: with `useBulkCopyForBatchInsert`, the Microsoft JDBC driver (9.2 and
    later) sends each JDBC batch of Spark's parameterised `INSERT` as one bulk copy, so
    `batchsize` rows travel in one round trip. The default of 10,000 rows keeps a batch
    of wide rows to a few megabytes of executor memory.

    Raises:
        ConfigError: the URL or the authentication settings are invalid.
        PublishError: no access token could be obtained.
    """
    address = parse_jdbc_url(config.effective_sql_url)
    options = SecretOptions(
        driver=JDBC_DRIVER_CLASS,
        encrypt="true",
        trustServerCertificate="false",
        hostNameInCertificate=address.host_name_in_certificate,
        loginTimeout=str(LOGIN_TIMEOUT_S),
        useBulkCopyForBatchInsert="true",
        batchsize=str(config.sql_batch_size),
    )
    if config.sql_auth == "password":
        options["user"] = config.sql_user or ""
        options["password"] = config.sql_password or ""
    elif config.sql_auth.startswith("entra-"):
        options["accessToken"] = token_provider(config).token(min_valid_s=min_valid_s)
    else:
        raise ConfigError(
            "sql_auth 'none' cannot log in to Azure SQL: use 'entra-managed-identity', "
            "'entra-service-principal' or 'password'"
        )
    return options


__all__ = [
    "AccessTokenProvider",
    "JDBC_DRIVER_CLASS",
    "ODBC_DRIVER",
    "SQL_COPT_SS_ACCESS_TOKEN",
    "SQL_SCOPE",
    "SecretOptions",
    "SqlServerAddress",
    "access_token_attrs",
    "clear_token_providers",
    "connect",
    "create_engine",
    "credential_factory",
    "jdbc_options",
    "odbc_connection_string",
    "odbc_credentials",
    "parse_jdbc_url",
    "redact_options",
    "token_provider",
    "token_struct",
]
