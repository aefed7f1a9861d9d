"""Secrets from a Databricks secret scope, and access to Databricks utilities (`dbutils`).

On Databricks the job reads its secrets from a secret scope (usually backed by Azure Key
Vault) instead of environment variables. Elsewhere there is no `dbutils`, so a request for
a scope raises a `ConfigError` that names the environment variables to set instead.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from playtest_spark.errors import ConfigError

logger = logging.getLogger(__name__)

# Secret key in the scope -> JobConfig field. Keys missing from the scope are not read, so
# a scope holds only the secrets its deployment needs.
SECRET_KEYS: dict[str, str] = {
    "sql-password": "sql_password",
    "landing-connection-string": "landing_connection_string",
    "landing-account-key": "landing_account_key",
    "landing-sas-token": "landing_sas_token",
    "azure-client-secret": "azure_client_secret",
}
# Databricks secret scope names: letters, digits, dashes, underscores, @ and periods.
SCOPE_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,128}")


def get_dbutils() -> Any:
    """Return the Databricks utilities object of the current Databricks Runtime.

    Raises:
        ConfigError: not running on Databricks, where `dbutils` does not exist.
    """
    try:
        # Present only on Databricks Runtime; open-source PySpark has no such module.
        from pyspark.dbutils import DBUtils  # type: ignore[import-not-found]
    except ImportError:
        DBUtils = None
    if DBUtils is not None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        return DBUtils(spark)

    try:
        import IPython  # type: ignore[import-not-found]
    except ImportError:
        IPython = None
    shell = IPython.get_ipython() if IPython is not None else None
    if shell is not None and "dbutils" in shell.user_ns:
        return shell.user_ns["dbutils"]

    raise ConfigError(
        "Databricks utilities (dbutils) are not available here: secret scopes and service "
        "credentials work only on Databricks. Elsewhere set the secrets as environment "
        "variables (PLAYTEST_SQL_PASSWORD, PLAYTEST_LANDING_CONNECTION_STRING, "
        "AZURE_CLIENT_SECRET) and leave --secret-scope empty."
    )


def read_secret_scope(scope: str, dbutils: Any = None) -> dict[str, str]:
    """Read the job's secrets from a Databricks secret scope.

    Args:
        scope: Name of the secret scope.
        dbutils: Databricks utilities; found with `get_dbutils()` when omitted.

    Returns:
        JobConfig field name -> secret value, for each key of `SECRET_KEYS` that the scope
        contains.

    Raises:
        ConfigError: the scope name is invalid, the scope cannot be listed (missing, or
            no READ permission for the job's identity), or not running on Databricks.
    """
    if not SCOPE_NAME.fullmatch(scope):
        raise ConfigError(
            f"invalid secret scope {scope!r}: use letters, digits, -, _, @ and . (at most 128)"
        )
    utils = dbutils if dbutils is not None else get_dbutils()
    try:
        present = {entry.key for entry in utils.secrets.list(scope)}
    except Exception as exc:  # dbutils raises Py4J and Databricks-specific errors
        raise ConfigError(
            f"secret scope {scope!r} could not be listed ({type(exc).__name__}: "
            f"{str(exc)[:200]}): create it and grant READ on it to the identity the job "
            "runs as"
        ) from exc

    values: dict[str, str] = {}
    for key, field in SECRET_KEYS.items():
        if key in present:
            values[field] = utils.secrets.get(scope=scope, key=key)
    # Key names only: secret values never reach the log.
    logger.info(
        "read %d secret(s) from scope %s: %s", len(values), scope,
        sorted(key for key in SECRET_KEYS if key in present),
    )
    return values


__all__ = ["SECRET_KEYS", "get_dbutils", "read_secret_scope"]
