"""Secrets from a Databricks secret scope, read through a fake `dbutils`, and the Entra
settings of the job configuration."""

from __future__ import annotations

import datetime as dt
import logging
import types

import pytest

from playtest_spark import secrets
from playtest_spark.config import JobConfig
from playtest_spark.entry import parse_config
from playtest_spark.errors import ConfigError

SQL_URL = "jdbc:sqlserver://sql-playtest.database.windows.net:1433;database=sqldb-playtest"
PASSWORD = "scope-password-91c2"


class FakeSecrets:
    """The `dbutils.secrets` interface over an in-memory dict of scopes."""

    def __init__(self, scopes: dict[str, dict[str, str]]) -> None:
        self.scopes = scopes
        self.reads: list[tuple[str, str]] = []

    def list(self, scope: str) -> list[types.SimpleNamespace]:
        if scope not in self.scopes:
            raise RuntimeError(f"Scope {scope} does not exist!")
        return [types.SimpleNamespace(key=key) for key in self.scopes[scope]]

    def get(self, scope: str, key: str) -> str:
        self.reads.append((scope, key))
        return self.scopes[scope][key]


def fake_dbutils(scopes: dict[str, dict[str, str]]) -> types.SimpleNamespace:
    return types.SimpleNamespace(secrets=FakeSecrets(scopes))


def test_read_secret_scope_maps_keys_to_fields():
    dbutils = fake_dbutils({"playtest": {"sql-password": PASSWORD, "azure-client-secret": "s2"}})
    values = secrets.read_secret_scope("playtest", dbutils=dbutils)
    assert values == {"sql_password": PASSWORD, "azure_client_secret": "s2"}


def test_read_secret_scope_skips_absent_keys():
    dbutils = fake_dbutils({"playtest": {"unrelated": "x"}})
    assert secrets.read_secret_scope("playtest", dbutils=dbutils) == {}
    assert dbutils.secrets.reads == []


def test_read_secret_scope_missing_scope_is_config_error():
    with pytest.raises(ConfigError, match="secret scope 'absent' could not be listed"):
        secrets.read_secret_scope("absent", dbutils=fake_dbutils({}))


def test_read_secret_scope_rejects_invalid_name():
    with pytest.raises(ConfigError, match="invalid secret scope"):
        secrets.read_secret_scope("bad scope/name", dbutils=fake_dbutils({}))


def test_read_secret_scope_logs_names_not_values(caplog):
    dbutils = fake_dbutils({"playtest": {"sql-password": PASSWORD}})
    with caplog.at_level(logging.DEBUG, logger="playtest_spark.secrets"):
        secrets.read_secret_scope("playtest", dbutils=dbutils)
    assert "sql-password" in caplog.text
    assert PASSWORD not in caplog.text


def test_get_dbutils_outside_databricks_is_config_error():
    with pytest.raises(ConfigError, match="only on Databricks"):
        secrets.get_dbutils()


def test_secret_keys_name_secret_config_fields():
    from playtest_spark.config import SECRET_FIELDS

    assert set(secrets.SECRET_KEYS.values()) == SECRET_FIELDS


def test_parse_config_reads_password_from_scope(monkeypatch):
    dbutils = fake_dbutils({"playtest": {"sql-password": PASSWORD}})
    monkeypatch.setattr(secrets, "get_dbutils", lambda: dbutils)
    config = parse_config([
        "--run-date=2026-02-28",
        "--landing=/Volumes/playtest/landing/files",
        "--catalog=playtest",
        f"--sql-url={SQL_URL}",
        "--sql-auth=password",
        "--sql-user=playtest_job",
        "--secret-scope=playtest",
    ])
    assert config.sql_password == PASSWORD
    assert PASSWORD not in repr(config)


# -- Entra settings of JobConfig --------------------------------------------------------


def make_config(**changes) -> JobConfig:
    values = {
        "run_date": dt.date(2026, 2, 28),
        "landing": "/Volumes/playtest/landing/files",
        "catalog": "playtest",
        "sql_url": SQL_URL,
        "sql_auth": "entra-managed-identity",
    }
    values.update(changes)
    return JobConfig(**values)


def test_config_accepts_service_credential():
    assert make_config(azure_service_credential="playtest-sql").azure_service_credential == "playtest-sql"


def test_config_reads_service_credential_from_environment():
    config = JobConfig.from_sources(
        {"run_date": "2026-02-28", "landing": "/x", "catalog": "playtest", "sql_url": SQL_URL,
         "sql_auth": "entra-managed-identity"},
        environ={"PLAYTEST_AZURE_SERVICE_CREDENTIAL": "playtest-sql"},
    )
    assert config.azure_service_credential == "playtest-sql"


def test_config_ignores_empty_service_credential_variable():
    config = JobConfig.from_sources(
        {"run_date": "2026-02-28", "landing": "/x", "catalog": "playtest", "sql_url": SQL_URL,
         "sql_auth": "password", "sql_user": "job", "sql_password": PASSWORD},
        environ={"PLAYTEST_AZURE_SERVICE_CREDENTIAL": ""},
    )
    assert config.azure_service_credential is None


def test_config_rejects_service_credential_with_password_auth():
    with pytest.raises(ConfigError, match="works only with sql_auth 'entra-managed-identity'"):
        make_config(sql_auth="password", sql_user="job", sql_password=PASSWORD,
                    azure_service_credential="playtest-sql")


def test_config_rejects_invalid_service_credential_name():
    with pytest.raises(ConfigError, match="invalid azure_service_credential"):
        make_config(azure_service_credential="bad name;")


def test_config_rejects_entra_auth_on_sqlite():
    with pytest.raises(ConfigError, match="works only with Azure SQL"):
        make_config(sql_url="jdbc:sqlite:/tmp/playtest.db")
