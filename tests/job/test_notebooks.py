"""The notebooks run top to bottom on a warehouse the job wrote."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from playtest_spark.config import JobConfig
from playtest_spark.job import run_job
from playtest_spark.landing.local import LocalLanding
from playtest_spark.synth import SyntheticSpec, generate_day, write_session

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
DAY = dt.date(2026, 12, 3)


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("notebooks")
    landing = LocalLanding(tmp_path / "landing")
    generate_day(landing, DAY, 4, SyntheticSpec(seconds=3, fps=30.0))
    crash_log = b"Loaded scene 'Arena'\nNullReferenceException: Object reference not set\n  at Player.Update () [0x0] in <x>:0\n"
    write_session(landing, DAY, "with-error", {"logs/Player.log": crash_log})
    config = JobConfig.from_sources(
        {"run_date": DAY.isoformat(), "landing": str(tmp_path / "landing"), "warehouse": str(tmp_path / "w")}, environ={}
    )
    run_job(spark, config)
    return tmp_path / "w"


def test_notebooks_found():
    assert [path.name for path in NOTEBOOKS] == ["explore_sessions.ipynb", "log_issues.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_on_job_output(path, warehouse, monkeypatch, capsys):
    monkeypatch.setenv("PLAYTEST_WAREHOUSE", str(warehouse))
    monkeypatch.delenv("PLAYTEST_CATALOG", raising=False)
    cells = json.loads(path.read_text())["cells"]
    namespace: dict = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)  # noqa: S102
    output = capsys.readouterr().out
    expected = "NullReferenceException" if path.stem == "log_issues" else "syn-20261203-00000"
    assert expected in output
