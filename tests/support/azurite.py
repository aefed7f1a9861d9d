"""Start the Azurite Blob Storage emulator for tests, on 127.0.0.1 only.

Azurite comes from the npm registry (`package.json` pins it), and `start_azurite` runs
`npm ci` when `node_modules` lacks it. Each start uses a free port and an in-memory store,
so runs do not share data. Set `PLAYTEST_AZURITE_BLOB_ENDPOINT` to a loopback endpoint to
reuse an Azurite that is already running instead.
"""

from __future__ import annotations

import atexit
import dataclasses
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Azurite's published development account, which exists only in the emulator.
DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
ENV_ENDPOINT = "PLAYTEST_AZURITE_BLOB_ENDPOINT"
NPM_INSTALL_TIMEOUT = 600
START_TIMEOUT = 60.0


class AzuriteUnavailableError(RuntimeError):
    """Node.js or npm is not installed, so Azurite cannot run here."""


@dataclasses.dataclass
class AzuriteHandle:
    """A running Azurite blob service.

    Attributes:
        blob_endpoint: `http://127.0.0.1:<port>/devstoreaccount1`.
        connection_string: Connection string with the development account key.
        account_name: Always `devstoreaccount1`.
        account_key: Azurite's well-known development key.
    """

    blob_endpoint: str
    connection_string: str
    account_name: str = DEV_ACCOUNT_NAME
    account_key: str = DEV_ACCOUNT_KEY
    process: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)
    workspace: tempfile.TemporaryDirectory[str] | None = dataclasses.field(default=None, repr=False)

    def stop(self) -> None:
        """Stop Azurite if this handle started it, and delete its workspace."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                logger.warning("Azurite (pid %d) ignored SIGTERM; killing it", self.process.pid)
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self.workspace is not None:
            self.workspace.cleanup()
            self.workspace = None

    def __enter__(self) -> AzuriteHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def connection_string_for(blob_endpoint: str) -> str:
    """Return the connection string of the development account at `blob_endpoint`."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT_NAME};"
        f"AccountKey={DEV_ACCOUNT_KEY};BlobEndpoint={blob_endpoint};"
    )


def start_azurite(repo_root: Path = REPO_ROOT, timeout: float = START_TIMEOUT) -> AzuriteHandle:
    """Start Azurite's blob service on a free loopback port and wait until it responds.

    Raises:
        AzuriteUnavailableError: Node.js or npm is missing.
        RuntimeError: `npm ci` failed, or Azurite did not respond within `timeout` seconds.
        ValueError: `PLAYTEST_AZURITE_BLOB_ENDPOINT` is not a loopback URL.
    """
    existing = os.environ.get(ENV_ENDPOINT)
    if existing:
        endpoint = _check_loopback(existing.rstrip("/"))
        _wait_until_ready(endpoint, None, timeout, log_path=None)
        return AzuriteHandle(endpoint, connection_string_for(endpoint))

    executable = ensure_installed(repo_root)
    workspace = tempfile.TemporaryDirectory(prefix="azurite-")
    port = _free_port()
    log_path = Path(workspace.name) / "azurite.log"
    command = [
        str(executable),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--disableProductStyleUrl",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workspace.name,
        )
    endpoint = f"http://127.0.0.1:{port}/{DEV_ACCOUNT_NAME}"
    handle = AzuriteHandle(
        endpoint, connection_string_for(endpoint), process=process, workspace=workspace
    )
    atexit.register(handle.stop)
    try:
        _wait_until_ready(endpoint, process, timeout, log_path)
    except BaseException:
        handle.stop()
        raise
    logger.info("Azurite (pid %d) answers on %s", process.pid, endpoint)
    return handle


def ensure_installed(repo_root: Path = REPO_ROOT) -> Path:
    """Return the `azurite-blob` launcher, running `npm ci` first if it is missing.

    Raises:
        AzuriteUnavailableError: Node.js or npm is missing.
        RuntimeError: the npm install failed.
    """
    executable = repo_root / "node_modules" / ".bin" / "azurite-blob"
    if shutil.which("node") is None:
        raise AzuriteUnavailableError(
            "Node.js is not installed: install node and npm to run Azurite"
        )
    if executable.exists():
        return executable
    npm = shutil.which("npm")
    if npm is None:
        raise AzuriteUnavailableError("npm is not installed: install it to fetch Azurite")
    verb = "ci" if (repo_root / "package-lock.json").exists() else "install"
    logger.info("installing Azurite with npm %s in %s", verb, repo_root)
    result = subprocess.run(
        [npm, verb, "--no-audit", "--no-fund"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=NPM_INSTALL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0 or not executable.exists():
        raise RuntimeError(
            f"npm {verb} failed with exit code {result.returncode}:\n{result.stderr[-2000:]}"
        )
    return executable


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _check_loopback(endpoint: str) -> str:
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"{ENV_ENDPOINT}={endpoint!r}: the tests use Azurite on loopback only")
    return endpoint


def _wait_until_ready(
    endpoint: str,
    process: subprocess.Popen[bytes] | None,
    timeout: float,
    log_path: Path | None,
) -> None:
    deadline = time.monotonic() + timeout
    probe = f"{endpoint}?comp=list"
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # Any HTTP response (403 without credentials) means it is serving.
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Azurite did not respond on {endpoint} within {timeout:.0f} s:\n{_tail(log_path)}"
            )
        time.sleep(0.2)


def _tail(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return "(no log)"
    return log_path.read_text(errors="replace")[-2000:]
