"""Session capture: the broker, the device spool and the resumable uploader.

This package runs on playtest machines, so it imports neither PySpark nor pyarrow.
A typical test harness does:

    from playtest_spark.capture import (
        HttpBrokerClient, SessionRequest, Spool, target_for, upload_session,
    )

    spool = Spool("C:/PlaytestSpool")
    session = spool.start(HttpBrokerClient(broker_url, function_key), request)
    with session.event_writer() as events:
        events.append({"type": "level_start", "time": "..."})
    session.add_log("Saved/Logs/Game.log")
    upload_session(session, target_for(session, broker_key=function_key))

With `LocalBroker(folder)` in place of the broker client, sessions land in a local
folder and no server is needed.
"""

from playtest_spark.capture.blocks import UploadOptions, UploadProgress, UploadStats
from playtest_spark.capture.broker import Broker, BrokerSettings
from playtest_spark.capture.client import HttpBrokerClient
from playtest_spark.capture.local import LocalBroker
from playtest_spark.capture.session import OpenedSession, SessionRequest, UploadGrant
from playtest_spark.capture.spool import Spool, SpoolSession
from playtest_spark.capture.state import UploadState
from playtest_spark.capture.upload import (
    BlobTarget,
    UploadReport,
    target_for,
    upload_session,
)

__all__ = [
    "BlobTarget",
    "Broker",
    "BrokerSettings",
    "HttpBrokerClient",
    "LocalBroker",
    "OpenedSession",
    "SessionRequest",
    "Spool",
    "SpoolSession",
    "UploadGrant",
    "UploadOptions",
    "UploadProgress",
    "UploadReport",
    "UploadState",
    "UploadStats",
    "target_for",
    "upload_session",
]
