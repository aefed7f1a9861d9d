"""The `playtest` command line and the demo landing, without starting Spark."""

from __future__ import annotations

import datetime as dt
import io
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from typer.testing import CliRunner

from playtest_spark import cli, demo
from playtest_spark.discovery import SessionState, discover_sessions
from playtest_spark.landing.local import LocalLanding
from playtest_spark.parsers.base import BytesSource, FileContext
from playtest_spark.parsers.recordings import parse as parse_recording

DAY = dt.date(2026, 3, 14)
runner = CliRunner()


def collapse_whitespace(text: str) -> str:
    """Return `text` with line breaks and runs of spaces collapsed, so wrapped output matches."""
    return " ".join(text.split())


@pytest.fixture
def demo_calls(monkeypatch):
    """Replace the landing build and the Spark run of `playtest demo`; record their calls."""
    calls: dict[str, list] = {"build": [], "run": []}

    def fake_build(root, session_date, sessions, cases_dir):
        calls["build"].append((root, session_date))
        root.mkdir(parents=True)
        return {"synthetic": sessions}

    monkeypatch.setattr(cli, "_setup_logging", lambda verbose: None)
    monkeypatch.setattr(demo, "build_demo_landing", fake_build)
    monkeypatch.setattr(cli, "_run_and_print", lambda config: calls["run"].append(config))
    return calls


# --- help text ---------------------------------------------------------------------------


@pytest.mark.parametrize("env_name", ["PLAYTEST_LANDING", "PLAYTEST_WAREHOUSE", "PLAYTEST_SQL_URL",
                                      "PLAYTEST_LOOKBACK_DAYS", "PLAYTEST_RUN_ID"])
def test_run_help_shows_env_names(env_name):
    result = runner.invoke(cli.app, ["run", "--help"])
    assert result.exit_code == 0
    assert env_name in result.output


def test_run_help_keeps_env_hint_brackets():
    result = runner.invoke(cli.app, ["run", "--help"])
    assert result.output.count("[env") == 5
    assert "Blob container URL ." not in result.output


def test_demo_help_shows_cases_env_name():
    result = runner.invoke(cli.app, ["demo", "--help"])
    assert "PLAYTEST_CASES_DIR" in result.output


# --- demo argument checks ----------------------------------------------------------------


@pytest.mark.parametrize("bad_date", ["2026-02-30", "2026-13-01", "yesterday", "2026-1-1"])
def test_demo_invalid_run_date_exits_2(tmp_path, demo_calls, bad_date):
    home = tmp_path / "demo"
    result = runner.invoke(cli.app, ["demo", "--run-date", bad_date, "--home", str(home)])
    assert result.exit_code == 2
    assert f"invalid run date '{bad_date}'" in collapse_whitespace(result.output)
    assert "Traceback" not in result.output
    assert not home.exists()
    assert demo_calls["build"] == []


def test_demo_valid_run_date_used(tmp_path, demo_calls):
    result = runner.invoke(cli.app, ["demo", "--run-date", "2026-02-28", "--home", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert demo_calls["build"][0][1] == dt.date(2026, 2, 28)
    assert demo_calls["run"][0].run_date == dt.date(2026, 2, 28)


# --- demo folder safety ------------------------------------------------------------------


def test_demo_foreign_folder_rejected_and_intact(tmp_path, demo_calls):
    home = tmp_path / "project"
    home.mkdir()
    (home / "notes.txt").write_text("keep me")
    result = runner.invoke(cli.app, ["demo", "--home", str(home)])
    assert result.exit_code == 2
    assert str(home) in collapse_whitespace(result.output)
    assert "choose a new or empty folder" in collapse_whitespace(result.output)
    assert (home / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    assert demo_calls["build"] == []


def test_demo_current_folder_rejected(tmp_path, demo_calls, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / "README.md").write_text("a repository")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli.app, ["demo", "--home", "."])
    assert result.exit_code == 2
    assert (tmp_path / ".git").is_dir()
    assert (tmp_path / "README.md").read_text() == "a repository"
    assert not (tmp_path / demo.DEMO_MARKER).exists()


def test_demo_marked_folder_recreated(tmp_path, demo_calls):
    home = tmp_path / "demo"
    (home / "warehouse" / "delta").mkdir(parents=True)
    (home / "warehouse" / "delta" / "old.parquet").write_bytes(b"old")
    (home / demo.DEMO_MARKER).write_text("made by the demo")
    result = runner.invoke(cli.app, ["demo", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert not (home / "warehouse").exists()
    assert (home / demo.DEMO_MARKER).is_file()
    assert demo_calls["build"][0][0] == home / "landing"


def test_demo_empty_folder_used(tmp_path, demo_calls):
    home = tmp_path / "empty"
    home.mkdir()
    result = runner.invoke(cli.app, ["demo", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert (home / demo.DEMO_MARKER).is_file()


def test_demo_missing_folder_created(tmp_path, demo_calls):
    home = tmp_path / "a" / "b"
    result = runner.invoke(cli.app, ["demo", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert (home / demo.DEMO_MARKER).is_file()


def test_demo_home_file_rejected(tmp_path, demo_calls):
    home = tmp_path / "a-file"
    home.write_text("data")
    result = runner.invoke(cli.app, ["demo", "--home", str(home)])
    assert result.exit_code == 2
    assert "is not a folder" in collapse_whitespace(result.output)
    assert home.read_text() == "data"


def test_prepare_demo_home_marker_folder_not_a_file(tmp_path):
    home = tmp_path / "home"
    (home / demo.DEMO_MARKER).mkdir(parents=True)
    (home / "data.csv").write_text("1,2")
    with pytest.raises(demo.DemoHomeError):
        demo.prepare_demo_home(home)
    assert (home / "data.csv").read_text() == "1,2"


def test_prepare_demo_home_marker_symlink_rejected(tmp_path):
    elsewhere = tmp_path / "marker-elsewhere"
    elsewhere.write_text("x")
    home = tmp_path / "home"
    home.mkdir()
    (home / demo.DEMO_MARKER).symlink_to(elsewhere)
    (home / "data.csv").write_text("1,2")
    with pytest.raises(demo.DemoHomeError):
        demo.prepare_demo_home(home)
    assert (home / "data.csv").read_text() == "1,2"


def test_prepare_demo_home_symlinks_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    home = tmp_path / "home"
    home.mkdir()
    (home / demo.DEMO_MARKER).write_text("made by the demo")
    (home / "link").symlink_to(outside, target_is_directory=True)
    demo.prepare_demo_home(home)
    assert not (home / "link").exists()
    assert (outside / "precious.txt").read_text() == "keep"


def test_prepare_demo_home_marker_explains_itself(tmp_path):
    demo.prepare_demo_home(tmp_path / "home")
    text = (tmp_path / "home" / demo.DEMO_MARKER).read_text()
    assert "playtest demo" in text


def test_bench_foreign_folder_rejected(tmp_path, monkeypatch):
    from playtest_spark import bench

    calls = []
    monkeypatch.setattr(cli, "_setup_logging", lambda verbose: None)
    monkeypatch.setattr(bench, "run_benchmark", lambda *args, **kwargs: calls.append(kwargs))
    home = tmp_path / "work"
    home.mkdir()
    (home / "thesis.tex").write_text("keep")
    result = runner.invoke(cli.app, ["bench", "--home", str(home)])
    assert result.exit_code == 2
    assert (home / "thesis.tex").read_text() == "keep"
    assert calls == []


def test_bench_marks_its_folder(tmp_path, monkeypatch):
    from playtest_spark import bench

    def fake_benchmark(console, *, sessions, seconds, home, cores):
        # Like the real benchmark: delete the folder, then fill it again.
        for child in home.iterdir():
            child.unlink()
        (home / "landing").mkdir()

    monkeypatch.setattr(cli, "_setup_logging", lambda verbose: None)
    monkeypatch.setattr(bench, "run_benchmark", fake_benchmark)
    home = tmp_path / "bench"
    result = runner.invoke(cli.app, ["bench", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert (home / ".playtest-bench").is_file()
    second = runner.invoke(cli.app, ["bench", "--home", str(home)])
    assert second.exit_code == 0, second.output


# --- run summary -------------------------------------------------------------------------


def _report(**overrides):
    values = dict(
        run_id="daily-2026-03-14", status="succeeded", sessions={"ready": 2, "open": 0},
        rows_out={"events": 10}, incomplete=[], quarantine_reasons=[], message="",
    )
    values.update(overrides)
    return SimpleNamespace(**values)


def _printed_report(monkeypatch, report) -> str:
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buffer, width=200, color_system=None))
    config = SimpleNamespace(catalog=None, table_path=lambda name: f"/w/delta/{name}",
                             effective_sql_url="jdbc:sqlite:/w/playtest.db")
    cli.print_report(report, config)
    return buffer.getvalue()


def test_print_report_lists_open_session_ids(monkeypatch):
    report = _report(sessions={"ready": 2, "open": 2}, open_sessions=["still-uploading", "late-one"],
                     incomplete=[("bad-input-missing-file", "missing logs/never-uploaded.log")])
    output = _printed_report(monkeypatch, report)
    assert "Sessions held back" in output
    assert "still-uploading" in output
    assert "late-one" in output
    assert "no _complete.json yet" in output
    assert "bad-input-missing-file" in output


def test_print_report_counts_open_without_ids(monkeypatch):
    output = _printed_report(monkeypatch, _report(sessions={"ready": 2, "open": 1}))
    assert "Sessions held back" in output
    assert "1 open session " in output


def test_print_report_no_held_back_table(monkeypatch):
    output = _printed_report(monkeypatch, _report())
    assert "Sessions held back" not in output


def test_print_report_keeps_brackets(monkeypatch):
    report = _report(
        incomplete=[("s1", "file [bold] is invalid")],
        quarantine_reasons=[("s2", "logs/Player.log", "3", "stack frame [0x00012] not parsed")],
    )
    output = _printed_report(monkeypatch, report)
    assert "file [bold] is invalid" in output
    assert "[0x00012]" in output


# --- demo landing ------------------------------------------------------------------------


def test_demo_recording_readable():
    video = demo.encode_demo_recording()
    assert video is not None
    assert len(video) < 100_000
    result = parse_recording(BytesSource("gameplay.mp4", video),
                             FileContext("s1", demo.RECORDING_PATH, "recordings", {}))
    record = result.records[0]
    assert record["status"] == "ok"
    assert record["container"] == "mp4"
    assert record["width"] == demo.RECORDING_SIZE
    assert record["height"] == demo.RECORDING_SIZE
    assert record["duration_s"] == pytest.approx(demo.RECORDING_SECONDS, abs=0.1)


def test_demo_recording_without_encoder_skipped(monkeypatch, caplog):
    monkeypatch.setattr(demo, "RECORDING_CODECS", ("no-such-codec",))
    with caplog.at_level(logging.WARNING, logger=demo.logger.name):
        assert demo.encode_demo_recording() is None
    assert "no-such-codec" in caplog.text


def test_demo_recording_session_ready(tmp_path):
    landing = LocalLanding(tmp_path)
    assert demo.add_recording_session(landing, DAY) == [demo.RECORDING_SESSION_ID]
    discovery = discover_sessions(landing, [DAY], ledger={})
    candidate = discovery.candidates[0]
    assert candidate.state is SessionState.READY
    assert demo.RECORDING_PATH in [f.path for f in candidate.files]


def test_demo_landing_counts_recording_session(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=demo.logger.name):
        counts = demo.build_demo_landing(tmp_path / "landing", DAY, 1, tmp_path / "no-cases")
    assert counts["with recording"] == 1
    assert counts["synthetic"] == 1
    assert "sample files" not in counts


def test_demo_landing_missing_cases_warning_explains(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=demo.logger.name):
        demo.build_demo_landing(tmp_path / "landing", DAY, 0, tmp_path / "no-cases")
    assert "no sample-file folder found at" in caplog.text
    assert "synthetic sessions only" in caplog.text
    assert "PLAYTEST_CASES_DIR" in caplog.text


def test_demo_landing_without_recording(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "encode_demo_recording", lambda: None)
    counts = demo.build_demo_landing(tmp_path / "landing", DAY, 0, tmp_path / "no-cases")
    assert "with recording" not in counts
    assert not any(Path(tmp_path, "landing").rglob("*.mp4"))
