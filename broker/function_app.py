"""The session broker as an Azure Function App (Python v2 programming model).

Routes, below the `api` prefix:
    POST /api/sessions                              open a session (201)
    POST /api/sessions/{session_id}/upload-urls     SAS URLs for files of a session (200)

Both need a function key (`x-functions-key` header). The logic lives in
`playtest_spark.capture.broker`, and this module only adapts HTTP requests to it. Settings
come from application settings (`PLAYTEST_BROKER_*`, see `BrokerSettings`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import azure.functions as func

from playtest_spark.capture.broker import (
    Broker,
    BrokerResponse,
    BrokerSettings,
    error_response,
    handle_open_session,
    handle_upload_urls,
)
from playtest_spark.errors import ConfigError

logger = logging.getLogger(__name__)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@functools.lru_cache(maxsize=1)
def get_broker() -> Broker:
    """Build the broker once per worker process from the application settings."""
    return Broker.from_settings(BrokerSettings.from_environ())


@app.route(route="sessions", methods=["POST"])
def open_session(req: func.HttpRequest) -> func.HttpResponse:
    """Open a session: validate the request, write session.json, return the id."""
    return _respond(req, lambda broker: handle_open_session(broker, req.get_body()))


@app.route(route="sessions/{session_id}/upload-urls", methods=["POST"])
def issue_upload_urls(req: func.HttpRequest) -> func.HttpResponse:
    """Return a create-and-write SAS URL for each requested file of an open session."""
    session_id = req.route_params.get("session_id", "")
    return _respond(req, lambda broker: handle_upload_urls(broker, session_id, req.get_body()))


def _respond(
    req: func.HttpRequest, handle: Callable[[Broker], BrokerResponse]
) -> func.HttpResponse:
    try:
        broker = get_broker()
    except ConfigError as exc:
        logger.error("the broker is misconfigured: %s", exc)
        return _http(error_response(500, "broker_misconfigured", "the broker is misconfigured"))
    declared = req.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > broker.settings.max_body_bytes:
        return _http(
            error_response(
                413,
                "body_too_large",
                f"request body of {declared} bytes is larger than the limit of "
                f"{broker.settings.max_body_bytes} bytes",
            )
        )
    return _http(handle(broker))


def _http(response: BrokerResponse) -> func.HttpResponse:
    return func.HttpResponse(
        body=response.body_bytes(), status_code=response.status, mimetype="application/json"
    )
