"""Capture to SQL through Azurite: broker, spool, upload, then the nightly job.

The job reads the landing with azure-storage-blob, the same code path as for Azure
Storage. Only the endpoint and the credential differ: here a connection string with
Azurite's development key.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid

import pytest
from azure.storage.blob import BlobServiceClient

from playtest_spark.capture.broker import Broker, BrokerSettings
from playtest_spark.capture.client import HttpBrokerClient
from playtest_spark.capture.devserver import BrokerServer
from playtest_spark.capture.spool import Spool
from playtest_spark.capture.upload import target_for, upload_session
from playtest_spark.config import JobConfig
from playtest_spark.job import run_job
from playtest_spark.sql.connect import sqlite_path
from tests.capture.helpers import make_request
from tests.support.snapshot import sqlite_snapshot

pytestmark = pytest.mark.azurite

PERF_CSV = "Application,ProcessID,TimeInSeconds,MsBetweenPresents,MsUntilRenderComplete,Dropped\n" + "".join(
    f"Game.exe,100,{i / 60:.5f},16.667,9.000,0\n" for i in range(120)
)


@pytest.fixture
def landing_container(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client(f"landing-{uuid.uuid4().hex[:10]}")
    container.create_container()
    yield container
    container.delete_container()


def test_capture_to_sql_through_azurite(spark, azurite, landing_container, tmp_path):
    broker = Broker.from_settings(
        BrokerSettings(container=landing_container.container_name, connection_string=azurite.connection_string)
    )
    with BrokerServer(broker) as server:
        session = Spool(tmp_path / "spool").start(HttpBrokerClient(server.url), make_request())
        start = session.opened.broker_start_utc
        for index in range(25):
            moment = start + dt.timedelta(seconds=index)
            session.append_event({"type": "tick" if index % 5 else "wave", "ts": moment.isoformat(), "n": index})
        (tmp_path / "frames.csv").write_text(PERF_CSV)
        session.add_performance(tmp_path / "frames.csv", name="presentmon.csv")
        (tmp_path / "Player.log").write_text("Loaded scene 'Arena'\nNullReferenceException: boom\n  at Foo.Bar () [0x0] in <x>:0\n")
        session.add_log(tmp_path / "Player.log")
        session.add_form({"fun": 4, "comment": "tight controls"}, name="exit.json")
        report = upload_session(session, target_for(session))
    assert report.status == "uploaded"

    session_id = session.opened.session_id
    config = JobConfig.from_sources(
        {
            "run_date": session.opened.session_date.isoformat(),
            "landing": f"{azurite.blob_endpoint}/{landing_container.container_name}",
            "landing_connection_string": azurite.connection_string,
            "warehouse": str(tmp_path / "warehouse"),
        },
        environ={},
    )
    run_report = run_job(spark, config)
    assert run_report.sessions["ready"] == 1

    connection = sqlite3.connect(sqlite_path(config.effective_sql_url))
    try:
        summary = connection.execute(
            "SELECT event_count, frame_count, error_count, form_answer_count FROM session_summary WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        waves = connection.execute(
            "SELECT event_count FROM session_event_counts WHERE session_id = ? AND event_type = 'wave'", (session_id,)
        ).fetchone()
        payload = connection.execute("SELECT payload FROM events WHERE session_id = ? AND seq = 1", (session_id,)).fetchone()
    finally:
        connection.close()
    assert summary == (25, 120, 1, 2)
    assert waves == (5,)
    assert json.loads(payload[0])["n"] == 0

    before = sqlite_snapshot(config)
    assert run_job(spark, config).message == "nothing new"
    assert sqlite_snapshot(config) == before
