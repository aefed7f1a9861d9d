"""A small HTTP server that runs the broker on a laptop or in tests, without Azure Functions.

It serves the same routes as the Function App (`POST /api/sessions` and
`POST /api/sessions/{session_id}/upload-urls`) with the standard library's threading
HTTP server. It has no authentication, so it binds to loopback by default.
"""

from __future__ import annotations

import http.server
import logging
import re
import threading
import urllib.parse

from playtest_spark.capture.broker import (
    Broker,
    BrokerResponse,
    error_response,
    handle_open_session,
    handle_upload_urls,
)

logger = logging.getLogger(__name__)

UPLOAD_URLS_ROUTE = re.compile(r"/api/sessions/(?P<session_id>[^/]*)/upload-urls")


class BrokerServer:
    """Serves a `Broker` over HTTP in a background thread.

    Use as a context manager, or call `start` and `stop`.
    """

    def __init__(self, broker: Broker, host: str = "127.0.0.1", port: int = 0) -> None:
        self.broker = broker
        handler = _handler_for(broker)
        self._server = http.server.ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API root to give the device, such as `http://127.0.0.1:54321/api`."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api"

    def start(self) -> BrokerServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="playtest-broker", daemon=True
        )
        self._thread.start()
        logger.info("broker serving on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        logger.info("broker on %s stopped", self.url)

    def __enter__(self) -> BrokerServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _handler_for(broker: Broker) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
            path = urllib.parse.urlsplit(self.path).path
            length_text = self.headers.get("Content-Length", "0")
            try:
                length = int(length_text)
            except ValueError:
                self._send(error_response(400, "invalid_field", "invalid Content-Length", "body"))
                return
            if length > broker.settings.max_body_bytes:
                # Respond without reading the body, then close the connection.
                self.close_connection = True
                self._send(
                    error_response(
                        413,
                        "body_too_large",
                        f"request body of {length} bytes is larger than the limit of "
                        f"{broker.settings.max_body_bytes} bytes",
                    )
                )
                return
            body = self.rfile.read(length)
            if path == "/api/sessions":
                self._send(handle_open_session(broker, body))
                return
            match = UPLOAD_URLS_ROUTE.fullmatch(path)
            if match:
                session_id = urllib.parse.unquote(match.group("session_id"))
                self._send(handle_upload_urls(broker, session_id, body))
                return
            self._send(error_response(404, "not_found", f"no route for POST {path}"))

        def _send(self, response: BrokerResponse) -> None:
            data = response.body_bytes()
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            logger.debug("broker %s: " + format, self.address_string(), *args)

    return Handler
