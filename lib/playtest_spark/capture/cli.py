"""Command line of session capture: `playtest session start|add|upload|status`.

`session_app` is a Typer app that the `playtest` command mounts as `session`. Without a
broker URL, sessions open and land in a local folder (the embedded default), so every
command works without a server.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from playtest_spark.capture.blocks import MIB, UploadOptions
from playtest_spark.capture.client import HttpBrokerClient
from playtest_spark.capture.errors import RequestFieldError
from playtest_spark.capture.local import LocalBroker
from playtest_spark.capture.session import SessionRequest
from playtest_spark.capture.spool import (
    STATUS_UPLOADED,
    SessionOpener,
    Spool,
    SpoolSession,
)
from playtest_spark.capture.upload import target_for, upload_session
from playtest_spark.errors import PlaytestError

logger = logging.getLogger(__name__)

DEFAULT_SPOOL = Path(".playtest") / "spool"
DEFAULT_LANDING = Path(".playtest") / "landing"

session_app = typer.Typer(
    name="session",
    help="Open a playtest session, spool its files on this device, and upload them.",
    no_args_is_help=True,
)
add_app = typer.Typer(
    help="Add data to a spooled session (the latest open one unless --session is given).",
    no_args_is_help=True,
)
session_app.add_typer(add_app, name="add")

# Messages go to standard error, unwrapped, so that standard output carries only results.
err_console = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
out_console = Console()

SpoolOption = Annotated[
    Path,
    typer.Option("--spool", envvar="PLAYTEST_SPOOL", help="Spool folder on this device."),
]
SessionOption = Annotated[
    str | None,
    typer.Option("--session", "-s", help="Session id; defaults to the latest open session."),
]
BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        envvar="PLAYTEST_BROKER_URL",
        help="Broker API root, such as https://<app>.azurewebsites.net/api.",
    ),
]
BrokerKeyOption = Annotated[
    str | None,
    typer.Option(
        "--broker-key",
        envvar="PLAYTEST_BROKER_KEY",
        show_default=False,
        help="Function key of the broker (prefer the environment variable).",
    ),
]
LandingOption = Annotated[
    str | None,
    typer.Option(
        "--landing",
        help=f"Local landing folder, used when no broker is set \\[default: {DEFAULT_LANDING}].",
    ),
]
NameOption = Annotated[
    str | None,
    typer.Option("--name", help="File name in the spool; defaults to the source's name."),
]
MoveOption = Annotated[
    bool, typer.Option("--move", help="Move the file into the spool instead of copying it.")
]


@session_app.command("start")
def start_command(
    game: Annotated[str, typer.Option(help="Game title or code.")],
    build: Annotated[str, typer.Option(help="Build or version of the game.")],
    platform: Annotated[str, typer.Option(help="Platform, such as Windows or PS5.")],
    device_model: Annotated[str, typer.Option(help="Model of this device.")],
    player_id: Annotated[str, typer.Option(help="Pseudonymous player id (no e-mail).")],
    device_start: Annotated[
        str | None,
        typer.Option(help="Device time at start, ISO 8601 \\[default: now, in UTC]."),
    ] = None,
    event_field: Annotated[
        list[str] | None,
        typer.Option(help="How the game names an event field, as ROLE=NAME (repeatable)."),
    ] = None,
    attribute: Annotated[
        list[str] | None,
        typer.Option(help="Extra KEY=VALUE stored in session.json (repeatable)."),
    ] = None,
    broker: BrokerOption = None,
    broker_key: BrokerKeyOption = None,
    landing: LandingOption = None,
    spool: SpoolOption = DEFAULT_SPOOL,
) -> None:
    """Open a session, create its spool folder and print the session id."""

    def run() -> None:
        body: dict[str, Any] = {
            "game": game,
            "build": build,
            "platform": platform,
            "device_model": device_model,
            "player_id": player_id,
            "device_start": device_start
            or dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "event_fields": _pairs("--event-field", event_field),
            "attributes": _pairs("--attribute", attribute),
        }
        request = SessionRequest.from_body(body)
        opener: SessionOpener
        if landing is not None or not broker:
            opener = LocalBroker(_landing_folder(landing))
        else:
            opener = HttpBrokerClient(broker, function_key=broker_key)
        session = Spool(spool).start(opener, request)
        err_console.print(
            f"opened session {session.session_id} ({session.opened.directory}), "
            f"spooling in {session.folder}"
        )
        typer.echo(session.session_id)

    _run(run)


@add_app.command("event")
def add_event_command(
    event: Annotated[
        str,
        typer.Argument(
            help="One event as a JSON object, or - to read JSON Lines from standard input."
        ),
    ],
    stream: Annotated[str, typer.Option(help="Events file name, without .jsonl.")] = "events",
    session: SessionOption = None,
    spool: SpoolOption = DEFAULT_SPOOL,
) -> None:
    """Append events to events/<stream>.jsonl, one fsynced line each."""

    def run() -> None:
        spooled = _open_session(spool, session)
        lines = sys.stdin if event == "-" else [event]
        count = 0
        with spooled.event_writer(stream) as writer:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    decoded = json.loads(line)
                except ValueError as exc:
                    raise PlaytestError(
                        f"event {number} is not valid JSON ({exc}): {line!r}"
                    ) from exc
                if not isinstance(decoded, dict):
                    raise PlaytestError(f"event {number} is not a JSON object: {line!r}")
                try:
                    writer.append(decoded)
                except ValueError as exc:
                    raise PlaytestError(
                        f"event {number} contains a value JSON cannot store, such as NaN or "
                        f"Infinity ({exc}): {line!r}"
                    ) from exc
                count += 1
        err_console.print(f"appended {count} event(s) to session {spooled.session_id}")

    _run(run)


def _file_command(kind: str, help_text: str) -> Callable[..., None]:
    def command(
        file: Annotated[Path, typer.Argument(help="File to add.")],
        name: NameOption = None,
        move: MoveOption = False,
        session: SessionOption = None,
        spool: SpoolOption = DEFAULT_SPOOL,
    ) -> None:
        def run() -> None:
            spooled = _open_session(spool, session)
            added = spooled.add_file(kind, file, name, move)
            err_console.print(f"added {added} to session {spooled.session_id}")

        _run(run)

    command.__doc__ = help_text
    return command


add_app.command("events")(_file_command("events", "Add a file of events (JSON Lines or JSON)."))
add_app.command("performance")(
    _file_command("performance", "Add a performance capture (CSV or JSON).")
)
add_app.command("log")(_file_command("logs", "Add a log file."))
add_app.command("form")(_file_command("forms", "Add a player form (JSON or a CSV export)."))
add_app.command("recording")(
    _file_command("recordings", "Add a gameplay recording (mp4, mkv, webm).")
)


@session_app.command("upload")
def upload_command(
    session: Annotated[
        str | None,
        typer.Option("--session", "-s", help="Session id; defaults to the latest not uploaded."),
    ] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="Upload every session not uploaded yet.")
    ] = False,
    broker: Annotated[
        str | None,
        typer.Option("--broker", help="Broker API root; overrides the one used at start."),
    ] = None,
    broker_key: BrokerKeyOption = None,
    landing: Annotated[
        str | None,
        typer.Option("--landing", help="Landing folder; overrides the one used at start."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Blocks sent at once.")] = 4,
    block_size_mib: Annotated[
        int | None,
        typer.Option(min=1, max=100, help="Block size in MiB \\[default: from the file size]."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    spool: SpoolOption = DEFAULT_SPOOL,
) -> None:
    """Seal and upload sessions, writing each one's _complete.json last."""
    options = UploadOptions(
        max_concurrency=concurrency,
        block_size=block_size_mib * MIB if block_size_mib else None,
    )
    failures = 0
    try:
        sessions = _sessions_to_upload(Spool(spool), session, pending)
    except PlaytestError as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(1) from exc
    for spooled in sessions:
        try:
            target = target_for(
                spooled,
                options,
                broker_url=broker,
                broker_key=broker_key,
                landing=_landing_folder(landing) if landing else None,
            )
            with _progress_bars(enabled=progress) as bars:
                report = upload_session(spooled, target, bars)
        except (PlaytestError, OSError) as exc:
            failures += 1
            err_console.print(f"error: session {spooled.session_id} stays incomplete: {exc}")
            continue
        err_console.print(
            f"session {report.session_id}: {report.status} ({report.files} file(s), "
            f"{report.total_bytes} bytes, {report.stats.files_sent} sent, "
            f"{report.stats.blocks_reused} block(s) resumed) in {report.seconds:.1f} s"
        )
    if not sessions:
        err_console.print("nothing to upload")
    if failures:
        raise typer.Exit(1)


@session_app.command("status")
def status_command(
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="One session only.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    spool: SpoolOption = DEFAULT_SPOOL,
) -> None:
    """Show the spooled sessions and their upload status."""

    def run() -> None:
        store = Spool(spool)
        sessions = [store.get(session)] if session else store.sessions()
        rows = [_status_row(spooled) for spooled in sessions]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        table = Table(title=f"Sessions in {spool}")
        table.add_column("session", no_wrap=True)
        for column in ("date", "status", "files", "bytes", "uploaded", "last error"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row["session_id"],
                row["session_date"],
                row["status"],
                str(row["files"]),
                str(row["bytes"]),
                str(row["files_uploaded"]),
                row["last_error"] or "",
            )
        out_console.print(table)

    _run(run)


class RichProgress:
    """Progress bars for `upload_session`, one per file, on standard error."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}
        self._sizes: dict[str, int] = {}

    def file_started(self, path: str, size: int) -> None:
        self._sizes[path] = size
        task = self._tasks.get(path)
        if task is None:
            self._tasks[path] = self._progress.add_task(path, total=size)
        else:
            self._progress.reset(task, total=size)

    def advance(self, path: str, nbytes: int) -> None:
        task = self._tasks.get(path)
        if task is not None:
            self._progress.advance(task, nbytes)

    def file_done(self, path: str) -> None:
        task = self._tasks.get(path)
        if task is not None:
            self._progress.update(task, completed=self._sizes[path])


class _progress_bars:  # noqa: N801 - used like a function in a with statement
    def __init__(self, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not enabled,
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return RichProgress(self._progress)

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()


def _run(work: Callable[[], None]) -> None:
    try:
        work()
    except (PlaytestError, OSError) as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(1) from exc


def _open_session(spool: Path, session_id: str | None) -> SpoolSession:
    store = Spool(spool)
    if session_id:
        return store.get(session_id)
    latest = store.latest_open()
    if latest is None:
        raise PlaytestError(
            f"no open session in the spool {str(spool)!r}: run `playtest session start` first "
            "or pass --session"
        )
    return latest


def _sessions_to_upload(store: Spool, session_id: str | None, pending: bool) -> list[SpoolSession]:
    if pending:
        return store.pending()
    if session_id:
        return [store.get(session_id)]
    waiting = [item for item in store.sessions() if item.status() != STATUS_UPLOADED]
    return waiting[-1:]


def _status_row(session: SpoolSession) -> dict[str, Any]:
    state = session.load_state()
    files = session.files()
    return {
        "session_id": session.session_id,
        "session_date": session.opened.session_date.isoformat(),
        "status": session.status(),
        "files": len(files),
        "bytes": sum(item.size for item in files),
        "files_uploaded": sum(1 for item in state.files.values() if item.committed),
        "last_error": state.last_error,
        "destination": session.destination,
    }


def _pairs(option: str, values: list[str] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        key, separator, item = value.partition("=")
        if not separator or not key:
            raise RequestFieldError(option, f"expected KEY=VALUE, got {value!r}")
        pairs[key] = item
    return pairs


def _landing_folder(landing: str | None) -> Path:
    if landing is None:
        return DEFAULT_LANDING
    if "://" in landing:
        raise PlaytestError(f"invalid landing folder {landing!r}: for Blob Storage, pass --broker")
    return Path(landing)
