"""`playtest session start|add|upload|status` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient
from typer.testing import CliRunner

from playtest_spark.capture.cli import session_app
from playtest_spark.capture.devserver import BrokerServer
from playtest_spark.manifest import CompletionManifest

START = [
    "start",
    "--game",
    "Skyfarer",
    "--build",
    "0.9.3",
    "--platform",
    "Windows",
    "--device-model",
    "Desktop",
    "--player-id",
    "p-42",
]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def _invoke(runner: CliRunner, args: list[str], input: str | None = None) -> object:
    return runner.invoke(session_app, args, input=input, catch_exceptions=False)


def _status(runner: CliRunner, spool: Path) -> list[dict]:
    result = _invoke(runner, ["status", "--json", "--spool", str(spool)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_local_session_start_to_upload(runner: CliRunner, spool: Path, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    log = tmp_path / "Game.log"
    log.write_text("Warning: shader cache miss\n")
    form = tmp_path / "survey.csv"
    form.write_text("question,answer\nfun,4\n")
    perf = tmp_path / "frames.csv"
    perf.write_text("frame,ms\n1,16.6\n")
    video = tmp_path / "take.mp4"
    video.write_bytes(b"\x00" * 1000)

    started = _invoke(
        runner,
        [
            *START,
            "--landing",
            str(landing),
            "--spool",
            str(spool),
            "--attribute",
            "rig=lab-3",
            "--event-field",
            "type=evt",
        ],
    )
    session_id = started.stdout.strip()
    steps = [
        _invoke(runner, ["add", "event", '{"evt": "start"}', "--spool", str(spool)]),
        _invoke(
            runner,
            ["add", "event", "-", "--stream", "combat", "--spool", str(spool)],
            input='{"evt": "hit"}\n\n{"evt": "miss"}\n',
        ),
        _invoke(runner, ["add", "log", str(log), "--spool", str(spool)]),
        _invoke(runner, ["add", "form", str(form), "--spool", str(spool)]),
        _invoke(
            runner, ["add", "performance", str(perf), "--name", "run1.csv", "--spool", str(spool)]
        ),
        _invoke(
            runner,
            [
                "add",
                "recording",
                str(video),
                "--move",
                "--session",
                session_id,
                "--spool",
                str(spool),
            ],
        ),
    ]
    uploaded = _invoke(runner, ["upload", "--no-progress", "--spool", str(spool)])

    assert started.exit_code == 0, started.output
    for step in steps:
        assert step.exit_code == 0, step.output  # type: ignore[attr-defined]
    assert uploaded.exit_code == 0, uploaded.output
    assert "uploaded" in uploaded.stderr
    directory = next((landing / "sessions").glob(f"*/{session_id}"))
    complete = CompletionManifest.from_json((directory / "_complete.json").read_text())
    assert sorted(entry.path for entry in complete.files) == [
        "events/combat.jsonl",
        "events/events.jsonl",
        "forms/survey.csv",
        "logs/Game.log",
        "performance/run1.csv",
        "recordings/take.mp4",
    ]
    assert (directory / "events" / "combat.jsonl").read_text().splitlines() == [
        '{"evt":"hit"}',
        '{"evt":"miss"}',
    ]
    session_json = json.loads((directory / "session.json").read_text())
    assert session_json["attributes"] == {"rig": "lab-3"}
    assert session_json["event_fields"] == {"type": "evt"}
    assert not video.exists()
    assert _status(runner, spool)[0]["status"] == "uploaded"


def test_cli_status_table_lists_sessions(runner: CliRunner, spool: Path, tmp_path: Path) -> None:
    started = _invoke(runner, [*START, "--landing", str(tmp_path / "l"), "--spool", str(spool)])

    result = _invoke(runner, ["status", "--spool", str(spool)])

    assert result.exit_code == 0
    assert started.stdout.strip()[:12] in result.stdout
    assert "open" in result.stdout


def test_cli_start_rejects_invalid_field(runner: CliRunner, spool: Path, tmp_path: Path) -> None:
    args = [*START, "--landing", str(tmp_path / "l"), "--spool", str(spool)]
    args[args.index("p-42")] = "ann@example.com"

    result = _invoke(runner, args)

    assert result.exit_code == 1
    assert "player_id" in result.stderr


def test_cli_start_rejects_url_as_landing(runner: CliRunner, spool: Path) -> None:
    result = _invoke(
        runner, [*START, "--landing", "https://acct.blob.core.windows.net/c", "--spool", str(spool)]
    )

    assert result.exit_code == 1
    assert "pass --broker" in result.stderr


def test_cli_add_event_rejects_invalid_json(runner: CliRunner, spool: Path, tmp_path: Path) -> None:
    _invoke(runner, [*START, "--landing", str(tmp_path / "l"), "--spool", str(spool)])

    result = _invoke(runner, ["add", "event", "{oops", "--spool", str(spool)])

    assert result.exit_code == 1
    assert "not valid JSON" in result.stderr


def test_cli_add_needs_an_open_session(runner: CliRunner, spool: Path) -> None:
    result = _invoke(runner, ["add", "event", "{}", "--spool", str(spool)])

    assert result.exit_code == 1
    assert "no open session" in result.stderr


def test_cli_add_rejects_sealed_session(runner: CliRunner, spool: Path, tmp_path: Path) -> None:
    started = _invoke(runner, [*START, "--landing", str(tmp_path / "l"), "--spool", str(spool)])
    session_id = started.stdout.strip()
    _invoke(runner, ["upload", "--no-progress", "--spool", str(spool)])

    result = _invoke(runner, ["add", "event", "{}", "--session", session_id, "--spool", str(spool)])

    assert result.exit_code == 1
    assert "sealed" in result.stderr


def test_cli_upload_nothing_pending(runner: CliRunner, spool: Path) -> None:
    result = _invoke(runner, ["upload", "--pending", "--spool", str(spool)])

    assert result.exit_code == 0
    assert "nothing to upload" in result.stderr


@pytest.mark.azurite
def test_cli_upload_pending_after_crash_through_broker(
    runner: CliRunner, spool: Path, broker_server: BrokerServer, container: ContainerClient
) -> None:
    first = _invoke(runner, [*START, "--broker", broker_server.url, "--spool", str(spool)])
    _invoke(runner, ["add", "event", '{"type": "a"}', "--spool", str(spool)])
    second = _invoke(runner, [*START, "--broker", broker_server.url, "--spool", str(spool)])
    _invoke(runner, ["add", "event", '{"type": "b"}', "--spool", str(spool)])
    # Neither session was uploaded, as after a crash of the game. The next launch sends both.

    result = _invoke(runner, ["upload", "--pending", "--spool", str(spool)])

    assert result.exit_code == 0, result.output
    for started in (first, second):
        session_id = started.stdout.strip()
        markers = [
            blob.name
            for blob in container.list_blobs()
            if blob.name.endswith(f"{session_id}/_complete.json")
        ]
        assert len(markers) == 1, session_id
    assert {row["status"] for row in _status(runner, spool)} == {"uploaded"}


@pytest.mark.azurite
def test_cli_upload_failure_leaves_session_incomplete(
    runner: CliRunner, spool: Path, broker_server: BrokerServer, container: ContainerClient
) -> None:
    started = _invoke(runner, [*START, "--broker", broker_server.url, "--spool", str(spool)])
    _invoke(runner, ["add", "event", '{"type": "a"}', "--spool", str(spool)])
    session_id = started.stdout.strip()
    for blob in container.list_blobs():
        if blob.name.endswith(f"{session_id}/session.json"):
            container.delete_blob(blob.name)

    result = _invoke(runner, ["upload", "--spool", str(spool)])

    rows = _status(runner, spool)
    assert result.exit_code == 1
    assert "stays incomplete" in result.stderr
    assert "SessionNotFoundError" in rows[0]["last_error"]
    assert rows[0]["status"] == "incomplete"


def test_cli_event_nan_rejected_cleanly(runner: CliRunner, spool: Path, tmp_path: Path) -> None:
    _invoke(runner, [*START, "--landing", str(tmp_path / "landing"), "--spool", str(spool)])
    result = runner.invoke(
        session_app, ["add", "event", '{"type": "a", "ts": NaN}', "--spool", str(spool)]
    )

    assert result.exit_code != 0
    assert "NaN" in result.output
    assert "Traceback" not in result.output
