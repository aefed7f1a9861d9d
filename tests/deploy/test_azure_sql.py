"""Azure SQL access without a server: token structure, token refresh, connection strings,
Spark JDBC options, redaction, and the T-SQL DDL compiled from the curated tables.

The credentials here are small fakes implementing azure-identity's `get_token`; no test
opens a network connection.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import struct
import threading
import types
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from sqlalchemy import BigInteger, DateTime
from sqlalchemy.dialects import mssql

from playtest_spark.config import JobConfig
from playtest_spark.errors import ConfigError, PublishError
from playtest_spark.sql import azure
from playtest_spark.sql.tables import (
    CURATED_TABLES,
    LOG_ISSUES_VIEW,
    STAGING_PREFIX,
    build_metadata,
    ddl_statements,
)

SQL_URL = "jdbc:sqlserver://sql-playtest.database.windows.net:1433;database=sqldb-playtest"
SECRET = "client-secret-value-7f3a"
# SQL Server limits: a clustered index key (the primary key) to 900 bytes, a
# nonclustered index key to 1,700 bytes.
MAX_PRIMARY_KEY_BYTES = 900
MAX_INDEX_KEY_BYTES = 1700


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeCredential:
    """azure-identity style credential: each call returns a new token valid `lifetime_s`."""

    def __init__(self, clock: FakeClock, lifetime_s: float = 3600, name: str = "token") -> None:
        self.clock = clock
        self.lifetime_s = lifetime_s
        self.name = name
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes[0])
        return AccessToken(f"{self.name}-{len(self.scopes)}", int(self.clock() + self.lifetime_s))


class CachingCredential(FakeCredential):
    """Returns the same token until it expires, like azure-identity's in-memory cache."""

    def __init__(self, clock: FakeClock, expires_on: float, name: str) -> None:
        super().__init__(clock, name=name)
        self.expires_on = expires_on

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes[0])
        return AccessToken(f"{self.name}-cached", int(self.expires_on))


class FailingCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise ClientAuthenticationError(message="AADSTS700016: application not found")


def make_config(**changes: Any) -> JobConfig:
    values: dict[str, Any] = {
        "run_date": dt.date(2026, 2, 28),
        "landing": "/Volumes/playtest/landing/files",
        "catalog": "playtest",
        "sql_url": SQL_URL,
        "sql_auth": "entra-managed-identity",
    }
    values.update(changes)
    return JobConfig(**values)


@pytest.fixture(autouse=True)
def fresh_providers():
    azure.clear_token_providers()
    yield
    azure.clear_token_providers()


def install_provider(config: JobConfig, provider: azure.AccessTokenProvider) -> None:
    """Make `token_provider(config)` return `provider` instead of a real credential."""
    key = (config.sql_auth, config.azure_tenant_id, config.azure_client_id, config.azure_service_credential)
    azure._PROVIDERS[key] = provider


# -- token structure --------------------------------------------------------------------


def test_token_struct_ascii_bytes():
    assert azure.token_struct("ab") == b"\x04\x00\x00\x00a\x00b\x00"


def test_token_struct_non_ascii_bytes():
    assert azure.token_struct("é") == b"\x02\x00\x00\x00\xe9\x00"


def test_token_struct_surrogate_pair_counts_four_bytes():
    assert azure.token_struct("\U0001F600") == b"\x04\x00\x00\x00\x3d\xd8\x00\xde"


def test_token_struct_length_is_little_endian():
    token = "x" * 1500
    data = azure.token_struct(token)
    assert data[:4] == b"\xb8\x0b\x00\x00"
    assert len(data) == 4 + 3000


def test_token_struct_matches_documented_formula():
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.payload.signature"
    raw = token.encode("utf-16-le")
    assert azure.token_struct(token) == struct.pack(f"<I{len(raw)}s", len(raw), raw)


def test_token_struct_rejects_empty_token():
    with pytest.raises(ValueError, match="empty access token"):
        azure.token_struct("")


# -- token provider ---------------------------------------------------------------------


def test_provider_caches_valid_token():
    clock = FakeClock()
    credential = FakeCredential(clock)
    provider = azure.AccessTokenProvider(lambda: credential, clock=clock)
    assert provider.token() == provider.token()
    assert credential.scopes == [azure.SQL_SCOPE]


def test_provider_refreshes_inside_margin():
    clock = FakeClock()
    credential = FakeCredential(clock, lifetime_s=3600)
    provider = azure.AccessTokenProvider(lambda: credential, refresh_margin_s=300, clock=clock)
    first = provider.token()
    clock.now += 3600 - 301
    assert provider.token() == first
    clock.now += 2
    assert provider.token() != first


def test_provider_refreshes_for_long_write():
    clock = FakeClock()
    credential = FakeCredential(clock, lifetime_s=3600)
    provider = azure.AccessTokenProvider(lambda: credential, clock=clock)
    first = provider.token()
    clock.now += 2000
    assert provider.token(min_valid_s=1800) != first
    assert provider.expires_on == pytest.approx(clock.now + 3600)


def test_provider_builds_new_credential_when_cache_is_stale():
    clock = FakeClock()
    built: list[CachingCredential] = []

    def factory() -> Any:
        # The first credential's cache holds a token with 10 minutes left.
        expires_on = clock.now + (600 if not built else 3600)
        built.append(CachingCredential(clock, expires_on, name=f"credential{len(built)}"))
        return built[-1]

    provider = azure.AccessTokenProvider(factory, clock=clock)
    assert provider.token(min_valid_s=1800) == "credential1-cached"
    assert len(built) == 2


def test_provider_warns_when_token_lifetime_too_short(caplog):
    clock = FakeClock()
    provider = azure.AccessTokenProvider(lambda: FakeCredential(clock, lifetime_s=900), clock=clock)
    with caplog.at_level(logging.WARNING, logger="playtest_spark.sql.azure"):
        token = provider.token(min_valid_s=1800)
    assert token.startswith("token-")
    assert "valid for only 900 s" in caplog.text


def test_provider_turns_auth_failure_into_publish_error():
    provider = azure.AccessTokenProvider(FailingCredential)
    with pytest.raises(PublishError, match="AADSTS700016"):
        provider.token()


def test_provider_fetches_once_under_concurrency():
    clock = FakeClock()
    credential = FakeCredential(clock)
    provider = azure.AccessTokenProvider(lambda: credential, clock=clock)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(provider.token())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert len(credential.scopes) == 1


def test_provider_repr_and_logs_hide_token(caplog):
    clock = FakeClock()
    provider = azure.AccessTokenProvider(lambda: FakeCredential(clock, name="SECRETTOKEN"), clock=clock)
    with caplog.at_level(logging.DEBUG, logger="playtest_spark.sql.azure"):
        token = provider.token()
    assert token not in repr(provider)
    assert token not in str(provider)
    assert "SECRETTOKEN" not in caplog.text


# -- credentials ------------------------------------------------------------------------


def test_credential_for_service_principal():
    config = make_config(
        sql_auth="entra-service-principal",
        azure_tenant_id="00000000-0000-0000-0000-000000000001",
        azure_client_id="00000000-0000-0000-0000-000000000002",
        azure_client_secret=SECRET,
    )
    assert isinstance(azure.credential_factory(config)(), ClientSecretCredential)


def test_credential_for_system_assigned_identity():
    assert isinstance(azure.credential_factory(make_config())(), ManagedIdentityCredential)


def test_credential_for_user_assigned_identity():
    config = make_config(azure_client_id="00000000-0000-0000-0000-000000000003")
    assert isinstance(azure.credential_factory(config)(), ManagedIdentityCredential)


def test_credential_for_databricks_service_credential():
    clock = FakeClock()
    requested: list[str] = []
    fake_credential = FakeCredential(clock)

    def get_provider(name: str) -> FakeCredential:
        requested.append(name)
        return fake_credential

    dbutils = types.SimpleNamespace(credentials=types.SimpleNamespace(getServiceCredentialsProvider=get_provider))
    config = make_config(azure_service_credential="playtest-sql")
    assert azure.credential_factory(config, dbutils=dbutils)() is fake_credential
    assert requested == ["playtest-sql"]


def test_credential_rejects_password_auth():
    config = make_config(sql_auth="password", sql_user="job", sql_password=SECRET)
    with pytest.raises(ConfigError, match="does not use an Entra ID token"):
        azure.credential_factory(config)


def test_token_provider_is_shared_per_identity():
    first = azure.token_provider(make_config())
    assert azure.token_provider(make_config(run_date=dt.date(2026, 3, 1))) is first
    assert azure.token_provider(make_config(azure_client_id="other")) is not first


# -- addresses and connection strings ---------------------------------------------------


def test_parse_jdbc_url_reads_host_port_database():
    assert azure.parse_jdbc_url(SQL_URL) == azure.SqlServerAddress(
        "sql-playtest.database.windows.net", 1433, "sqldb-playtest"
    )


def test_parse_jdbc_url_defaults_port_and_accepts_database_name():
    url = "jdbc:sqlserver://db.example.org;encrypt=true;databaseName=curated"
    assert azure.parse_jdbc_url(url) == azure.SqlServerAddress("db.example.org", 1433, "curated")


@pytest.mark.parametrize(
    "url",
    [
        "jdbc:sqlserver://sql-playtest.database.windows.net:1433",
        "jdbc:sqlserver://:1433;database=x",
        "jdbc:postgresql://localhost/db",
        "jdbc:sqlserver://host:port;database=x",
    ],
)
def test_parse_jdbc_url_rejects_incomplete(url):
    with pytest.raises(ConfigError):
        azure.parse_jdbc_url(url)


def test_host_name_in_certificate_uses_domain_wildcard():
    address = azure.parse_jdbc_url(SQL_URL)
    assert address.host_name_in_certificate == "*.database.windows.net"


def test_odbc_connection_string_for_token_login():
    text = azure.odbc_connection_string(azure.parse_jdbc_url(SQL_URL))
    assert text == (
        "Driver={ODBC Driver 18 for SQL Server};Server=tcp:sql-playtest.database.windows.net,1433;"
        "Database=sqldb-playtest;Encrypt=yes;TrustServerCertificate=no;"
        "HostNameInCertificate=*.database.windows.net"
    )
    for keyword in ("UID=", "PWD=", "Authentication=", "Trusted_Connection"):
        assert keyword not in text


def test_odbc_credentials_brace_special_characters():
    assert azure.odbc_credentials("job", "p;w}d") == "UID=job;PWD={p;w}}d}"


def test_connect_sets_token_attribute():
    clock = FakeClock()
    config = make_config()
    install_provider(config, azure.AccessTokenProvider(lambda: FakeCredential(clock), clock=clock))
    calls: list[tuple[tuple, dict]] = []
    azure.connect(config, connect_fn=lambda *args, **kwargs: calls.append((args, kwargs)))
    ((args, kwargs),) = calls
    assert kwargs["attrs_before"] == {azure.SQL_COPT_SS_ACCESS_TOKEN: azure.token_struct("token-1")}
    assert kwargs["timeout"] == azure.LOGIN_TIMEOUT_S
    assert "PWD=" not in args[0]


def test_connect_with_password_sends_credentials_in_string():
    config = make_config(sql_auth="password", sql_user="job", sql_password=SECRET)
    calls: list[tuple[tuple, dict]] = []
    azure.connect(config, connect_fn=lambda *args, **kwargs: calls.append((args, kwargs)))
    ((args, kwargs),) = calls
    assert args[0].endswith(f";UID=job;PWD={SECRET}")
    assert "attrs_before" not in kwargs


class _DbapiCursor:
    def nextset(self) -> None:
        return None


# Enough of pyodbc's module interface for SQLAlchemy to build an engine without importing
# pyodbc, which needs the unixODBC shared library. Nothing connects through it.
PYODBC_STAND_IN = types.SimpleNamespace(paramstyle="qmark", version="5.1.0", Error=Exception, Cursor=_DbapiCursor)


def fire_do_connect(engine: Any) -> tuple[list, dict]:
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    cargs = list(cargs)
    engine.dialect.dispatch.do_connect(engine.dialect, None, cargs, cparams)
    return cargs, cparams


def test_engine_sets_fresh_token_per_connection():
    clock = FakeClock()
    config = make_config()
    install_provider(config, azure.AccessTokenProvider(lambda: FakeCredential(clock, lifetime_s=3600), clock=clock))
    engine = azure.create_engine(config, module=PYODBC_STAND_IN)
    _, first = fire_do_connect(engine)
    clock.now += 3500
    _, second = fire_do_connect(engine)
    assert first["attrs_before"] == {1256: azure.token_struct("token-1")}
    assert second["attrs_before"] == {1256: azure.token_struct("token-2")}


def test_engine_url_has_no_credentials():
    config = make_config(sql_auth="password", sql_user="job", sql_password=SECRET)
    engine = azure.create_engine(config, module=PYODBC_STAND_IN)
    assert SECRET not in str(engine.url)
    assert SECRET not in repr(engine)
    cargs, _ = fire_do_connect(engine)
    assert cargs[0].endswith(f"UID=job;PWD={SECRET}")


def test_engine_uses_fast_executemany():
    clock = FakeClock()
    config = make_config()
    install_provider(config, azure.AccessTokenProvider(lambda: FakeCredential(clock), clock=clock))
    engine = azure.create_engine(config, module=PYODBC_STAND_IN)
    assert engine.dialect.fast_executemany is True
    assert engine.dialect.name == "mssql"


# -- Spark JDBC options -----------------------------------------------------------------


def test_jdbc_options_for_token_login():
    clock = FakeClock()
    config = make_config()
    install_provider(config, azure.AccessTokenProvider(lambda: FakeCredential(clock), clock=clock))
    options = azure.jdbc_options(config)
    assert options == {
        "driver": "com.microsoft.sqlserver.jdbc.SQLServerDriver",
        "encrypt": "true",
        "trustServerCertificate": "false",
        "hostNameInCertificate": "*.database.windows.net",
        "loginTimeout": "30",
        "useBulkCopyForBatchInsert": "true",
        "batchsize": "10000",
        "accessToken": "token-1",
    }


def test_jdbc_options_get_new_token_per_write_call():
    clock = FakeClock()
    config = make_config()
    install_provider(config, azure.AccessTokenProvider(lambda: FakeCredential(clock, lifetime_s=3600), clock=clock))
    first = azure.jdbc_options(config)["accessToken"]
    clock.now += 1000
    assert azure.jdbc_options(config)["accessToken"] == first
    clock.now += 1000
    assert azure.jdbc_options(config)["accessToken"] != first


def test_jdbc_options_use_configured_batch_size():
    clock = FakeClock()
    config = make_config(sql_batch_size=50_000)
    install_provider(config, azure.AccessTokenProvider(lambda: FakeCredential(clock), clock=clock))
    assert azure.jdbc_options(config)["batchsize"] == "50000"


def test_jdbc_options_repr_hides_token():
    clock = FakeClock()
    config = make_config()
    install_provider(config, azure.AccessTokenProvider(lambda: FakeCredential(clock, name="SECRETTOKEN"), clock=clock))
    options = azure.jdbc_options(config)
    assert "SECRETTOKEN" not in repr(options)
    assert "SECRETTOKEN" not in str(options)
    assert "SECRETTOKEN" not in f"{options}"
    assert azure.redact_options(options)["accessToken"] == "***"


def test_jdbc_options_with_password_hide_it():
    config = make_config(sql_auth="password", sql_user="job", sql_password=SECRET)
    options = azure.jdbc_options(config)
    assert (options["user"], options["password"]) == ("job", SECRET)
    assert "accessToken" not in options
    assert SECRET not in repr(options)


def test_jdbc_options_reject_no_auth():
    with pytest.raises(ConfigError, match="sql_auth 'none'"):
        azure.jdbc_options(make_config(sql_auth="none"))


def test_config_repr_hides_client_secret():
    config = make_config(
        sql_auth="entra-service-principal",
        azure_tenant_id="tenant",
        azure_client_id="client",
        azure_client_secret=SECRET,
    )
    assert SECRET not in repr(config)


# -- T-SQL DDL --------------------------------------------------------------------------


def azure_sql_dialect() -> Any:
    """Return the SQL Server dialect as a connection to Azure SQL Database configures it.

    Azure SQL Database reports server version 12.0. SQLAlchemy emits DATE and
    NVARCHAR(max) only when the server version is SQL Server 2008 (10.0) or later.
    """
    dialect = mssql.dialect()
    dialect.server_version_info = AZURE_SQL_VERSION
    dialect._supports_nvarchar_max = True
    return dialect


AZURE_SQL_VERSION = (12, 0, 2000, 8)
MSSQL = azure_sql_dialect()


def compiled_type(column: Any) -> str:
    return column.type.compile(dialect=MSSQL)


def key_bytes(type_name: str) -> float:
    """Bytes one key column takes in a SQL Server index; NVARCHAR(max) cannot be a key."""
    if match := re.fullmatch(r"NVARCHAR\((\d+)\)", type_name):
        return 2 * int(match.group(1))
    sizes = {"BIGINT": 8, "INTEGER": 4, "DATE": 3, "DATETIME2": 8, "FLOAT(53)": 8, "FLOAT": 8}
    if type_name in sizes:
        return sizes[type_name]
    return float("inf")


@pytest.fixture(scope="module")
def metadata():
    return build_metadata("playtest")


@pytest.fixture(scope="module")
def ddl():
    return ddl_statements("playtest", MSSQL)


def test_ddl_text_columns_are_nvarchar(metadata):
    for table in metadata.tables.values():
        for column in table.columns:
            type_name = compiled_type(column)
            assert not re.match(r"(VARCHAR|CHAR|TEXT|NTEXT)\b", type_name), f"{table.name}.{column.name}: {type_name}"
            if "CHAR" in type_name:
                assert type_name.startswith("NVARCHAR"), f"{table.name}.{column.name}: {type_name}"


def test_ddl_times_are_datetime2(metadata):
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, DateTime):
                assert compiled_type(column) == "DATETIME2", f"{table.name}.{column.name}"


def test_ddl_has_no_legacy_types(ddl):
    text = "\n".join(ddl)
    assert not re.search(r"\bDATETIME\b(?!2)", text)
    assert not re.search(r"\bNTEXT\b|\bTEXT\b|\bIMAGE\b", text)


def test_ddl_big_integers_are_bigint(metadata):
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, BigInteger):
                assert compiled_type(column) == "BIGINT", f"{table.name}.{column.name}"


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("session_summary", "event_count"),
        ("session_summary", "frame_count"),
        ("session_event_counts", "event_count"),
        ("log_fingerprints", "occurrences"),
        ("recordings", "size_bytes"),
    ],
)
def test_ddl_row_counts_are_bigint(metadata, table, column):
    assert compiled_type(metadata.tables[f"playtest.{table}"].c[column]) == "BIGINT"


def test_ddl_dates_are_date(metadata):
    assert compiled_type(metadata.tables["playtest.session_summary"].c.session_date) == "DATE"


def test_ddl_dates_are_date_without_server_version():
    ddl = ddl_statements("playtest", mssql.dialect())
    assert not any(re.search(r"\bDATETIME\b(?!2)", statement) for statement in ddl)


def test_ddl_seq_and_second_are_bigint(metadata):
    assert compiled_type(metadata.tables["playtest.events"].c.seq) == "BIGINT"
    assert compiled_type(metadata.tables["playtest.perf_seconds"].c.second) == "BIGINT"


def test_ddl_declares_named_primary_keys(ddl):
    for table in CURATED_TABLES:
        (statement,) = [s for s in ddl if s.startswith(f"CREATE TABLE playtest.{table.name} ")]
        columns = ", ".join(table.key)
        assert f"CONSTRAINT pk_{table.name} PRIMARY KEY ({columns})" in statement


def test_ddl_staging_tables_have_no_key(ddl):
    staging = [s for s in ddl if s.startswith(f"CREATE TABLE playtest.{STAGING_PREFIX}")]
    assert len(staging) == len(CURATED_TABLES) + 1
    for statement in staging:
        assert "PRIMARY KEY" not in statement


def test_ddl_creates_declared_indexes(ddl):
    for table in CURATED_TABLES:
        for columns in table.indexes:
            name = f"ix_{table.name}_{'_'.join(columns)}"
            expected = f"CREATE INDEX {name} ON playtest.{table.name} ({', '.join(columns)})"
            assert expected in ddl


def test_ddl_primary_keys_fit_900_bytes(metadata):
    for table in CURATED_TABLES:
        sql_table = metadata.tables[f"playtest.{table.name}"]
        size = sum(key_bytes(compiled_type(sql_table.c[name])) for name in table.key)
        assert size <= MAX_PRIMARY_KEY_BYTES, f"{table.name} key is {size} bytes"


def test_ddl_index_keys_fit_limit(metadata):
    for table in CURATED_TABLES:
        sql_table = metadata.tables[f"playtest.{table.name}"]
        for columns in table.indexes:
            size = sum(key_bytes(compiled_type(sql_table.c[name])) for name in columns)
            assert size <= MAX_INDEX_KEY_BYTES, f"{table.name} index {columns} is {size} bytes"


def test_ddl_key_columns_are_not_null(metadata):
    for table in CURATED_TABLES:
        sql_table = metadata.tables[f"playtest.{table.name}"]
        for name in table.key:
            assert sql_table.c[name].nullable is False, f"{table.name}.{name}"


def test_ddl_view_is_schema_qualified(ddl):
    assert ddl[-1].startswith(f"CREATE VIEW playtest.{LOG_ISSUES_VIEW} AS SELECT")
    assert "FROM playtest.log_fingerprints GROUP BY fingerprint" in ddl[-1]


def test_key_bytes_rejects_max_columns():
    assert key_bytes("NVARCHAR(max)") == float("inf")
    assert key_bytes("NVARCHAR(64)") == 128
