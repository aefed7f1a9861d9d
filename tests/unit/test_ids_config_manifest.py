"""Session ids, run dates, the configuration object and the landing manifests."""

from __future__ import annotations

import datetime as dt

import pytest

from playtest_spark.config import JobConfig
from playtest_spark.errors import ConfigError, InvalidRunDateError, InvalidSessionIdError
from playtest_spark.ids import parse_run_date, validate_session_id
from playtest_spark.manifest import (
    CompletionManifest,
    InventoryEntry,
    ManifestError,
    SessionManifest,
    validate_relative_path,
)

UTC = dt.timezone.utc


@pytest.mark.parametrize("session_id", ["a", "A-z_0-9", "x" * 64])
def test_session_id_valid_accepted(session_id):
    assert validate_session_id(session_id) == session_id


@pytest.mark.parametrize("session_id", ["", "x" * 65, "a/b", "..", "a.b", "a b", "é", None, 12])
def test_session_id_invalid_rejected_with_value(session_id):
    with pytest.raises(InvalidSessionIdError, match="invalid session id"):
        validate_session_id(session_id)


@pytest.mark.parametrize("value", ["2026-02-30", "2026/12/03", "yesterday", "2026-12-3"])
def test_run_date_invalid_rejected(value):
    with pytest.raises(InvalidRunDateError, match=repr(value).strip("'")):
        parse_run_date(value)


def test_config_requires_run_date():
    with pytest.raises(ConfigError, match="run_date"):
        JobConfig.from_sources({"landing": "/tmp/x"}, environ={})


def test_config_reads_environment_below_options():
    config = JobConfig.from_sources(
        {"run_date": "2026-12-03", "lookback_days": "1"},
        environ={"PLAYTEST_LANDING": "/data/landing", "PLAYTEST_LOOKBACK_DAYS": "5", "PLAYTEST_WAREHOUSE": "/w"},
    )
    assert config.landing == "/data/landing"
    assert config.lookback_days == 1
    assert config.look_back_dates == [dt.date(2026, 12, 3), dt.date(2026, 12, 2)]
    assert config.effective_run_id == "daily-2026-12-03"
    assert config.effective_sql_url.startswith("jdbc:sqlite:/")


def test_config_repr_hides_secrets():
    config = JobConfig.from_sources(
        {"run_date": "2026-12-03", "landing": "/l"},
        environ={"PLAYTEST_SQL_PASSWORD": "hunter2", "PLAYTEST_LANDING_ACCOUNT_KEY": "c2VjcmV0"},
    )
    assert "hunter2" not in repr(config)
    assert "c2VjcmV0" not in repr(config)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"lookback_days": "-1"}, "lookback_days"),
        ({"lookback_days": "many"}, "whole number"),
        ({"sql_url": "jdbc:mysql://x/db"}, "unsupported sql_url"),
        ({"sql_auth": "kerberos"}, "invalid sql_auth"),
        ({"sql_auth": "entra-managed-identity"}, "only with Azure SQL"),
        ({"schema": "bad-name"}, "invalid schema"),
        ({"run_id": "a b"}, "invalid run_id"),
    ],
)
def test_config_invalid_setting_named(options, message):
    with pytest.raises(ConfigError, match=message):
        JobConfig.from_sources({"run_date": "2026-12-03", "landing": "/l", **options}, environ={})


def _session_manifest(**changes) -> SessionManifest:
    values = dict(
        session_id="s1", game="g", build="1.0", platform="Windows", device_model="PC", player_id="p",
        broker_start_utc=dt.datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC),
        device_start=dt.datetime(2026, 12, 3, 10, 0, 2, tzinfo=UTC),
    )
    values.update(changes)
    return SessionManifest(**values)


def test_session_manifest_round_trip_keeps_clock_offset():
    manifest = _session_manifest()
    parsed = SessionManifest.from_json(manifest.to_json())
    assert parsed == manifest
    assert parsed.clock_offset == dt.timedelta(seconds=-2)


@pytest.mark.parametrize("field", ["game", "player_id", "session_id", "broker_start_utc"])
def test_session_manifest_missing_field_named(field):
    import json

    body = json.loads(_session_manifest().to_json())
    del body[field]
    with pytest.raises(ManifestError, match=field if field != "session_id" else "session id"):
        SessionManifest.from_json(json.dumps(body))


def test_completion_manifest_hash_ignores_order():
    a = InventoryEntry("events/a.jsonl", 3, "a" * 64)
    b = InventoryEntry("logs/b.log", 4, "b" * 64)
    end = dt.datetime(2026, 12, 3, 11, tzinfo=UTC)
    assert CompletionManifest("s", end, (a, b)).inventory_hash == CompletionManifest("s", end, (b, a)).inventory_hash
    assert CompletionManifest("s", end, (a,)).inventory_hash != CompletionManifest("s", end, (a, b)).inventory_hash


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../b", "a//b", "a\\b", "./a", "a/\nb", ""])
def test_relative_path_escaping_rejected(path):
    with pytest.raises(ManifestError):
        validate_relative_path(path)


def test_completion_manifest_rejects_bad_hash():
    body = '{"session_id": "s", "device_end": "2026-12-03T10:00:00Z", "files": [{"path": "events/a", "size": 1, "sha256": "xyz"}]}'
    with pytest.raises(ManifestError, match="invalid sha256 'xyz'"):
        CompletionManifest.from_json(body)


@pytest.mark.parametrize("version", [True, 0, 999, "1", None])
def test_session_manifest_bad_schema_version_rejected(version):
    import json

    body = json.loads(_session_manifest().to_json())
    body["schema_version"] = version
    with pytest.raises(ManifestError, match="invalid schema_version"):
        SessionManifest.from_json(json.dumps(body))
