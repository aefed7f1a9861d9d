"""A throwaway PostgreSQL server on loopback for the tests, from Debian's packages.

The server runs from a temporary data folder on a free port and is stopped afterwards.
As root, it runs as the `postgres` system user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


@dataclasses.dataclass
class PostgresServer:
    """A running server: its port, database and JDBC URL."""

    port: int
    data_dir: Path
    bin_dir: Path
    run_as: list[str]
    database: str = "playtest"
    user: str = "playtest"

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{self.database}?user={self.user}"

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        subprocess.run(self.run_as + [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"],
                       capture_output=True, check=False)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def find_bin_dir() -> Path | None:
    """Return the folder of `initdb`/`pg_ctl`, newest version first, or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_postgres() -> PostgresServer:
    """Start a server with trust authentication on 127.0.0.1 and create the database.

    Raises:
        RuntimeError: PostgreSQL is not installed or did not start.
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="playtest-pg-"))
    data_dir = root / "data"
    socket_dir = root / "sock"
    socket_dir.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        shutil.chown(socket_dir, "postgres")
        os.chmod(root, 0o755)
    port = _free_port()
    subprocess.run(run_as + [str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "playtest",
                             "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -h 127.0.0.1 -k {socket_dir} -c fsync=off -c full_page_writes=off"
    subprocess.run(run_as + [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l",
                             str(root / "server.log"), "-w", "start"], check=True, capture_output=True)
    server = PostgresServer(port, data_dir, bin_dir, run_as)
    deadline = time.monotonic() + 30
    while True:
        result = subprocess.run([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "playtest",
                                 "-d", "postgres", "-c", "CREATE DATABASE playtest"], capture_output=True, text=True)
        if result.returncode == 0:
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"PostgreSQL did not accept connections: {result.stderr.strip()}")
        time.sleep(0.5)
