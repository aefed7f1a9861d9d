"""The demo landing: synthetic sessions, sessions built from real sample files, and
sessions with typical bad input, so one run shows every path of the job."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from pathlib import Path

from playtest_spark.landing.local import LocalLanding
from playtest_spark.manifest import KIND_FOLDERS, InventoryEntry
from playtest_spark.synth import SyntheticSpec, generate_day, write_session

logger = logging.getLogger(__name__)

CASES_ENV = "PLAYTEST_CASES_DIR"
# Folder names of the sample-file collection -> landing folder of that kind.
CASE_FOLDERS = {"events": "events", "perf": "performance", "logs": "logs", "forms": "forms", "recordings": "recordings"}


def default_cases_dir() -> Path:
    """Return the sample-file folder: `$PLAYTEST_CASES_DIR`, else `../shared/cases` of the repo."""
    configured = os.environ.get(CASES_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "shared" / "cases"


def case_session_id(kind_folder: str, file_name: str) -> str:
    """Return a valid session id for a sample file, such as `case-perf-capframex-csv-comment`."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", Path(file_name).stem).strip("-").lower()
    return f"case-{kind_folder}-{stem}"[:64].rstrip("-")


def add_case_sessions(landing: LocalLanding, session_date: dt.date, cases_dir: Path) -> list[str]:
    """Write one session per sample file under `cases_dir`; return their ids."""
    ids = []
    for case_folder, kind_folder in CASE_FOLDERS.items():
        folder = cases_dir / case_folder
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            session_id = case_session_id(case_folder, path.name)
            write_session(
                landing, session_date, session_id, {f"{kind_folder}/{path.name}": path.read_bytes()},
                game="sample-files", build=f"case-{case_folder}",
            )
            ids.append(session_id)
    return ids


def add_bad_input_sessions(landing: LocalLanding, session_date: dt.date) -> list[str]:
    """Write sessions with the bad input the job must quarantine or hold back."""
    good_line = b'{"type": "level_start", "ts": "2026-01-01T00:00:00Z"}\n'
    write_session(landing, session_date, "bad-input-records", {
        "events/truncated.jsonl": good_line + b'{"type": "checkpoint", "ts": "2026-01-01T00:00:01Z"}\n{"type": "cra',
        "events/not-json.jsonl": good_line + b"this is not json\n" + good_line,
        "events/empty.jsonl": b"",
        "performance/unknown-tool.csv": b"Foo,Bar,Baz\n1,2,3\n",
    })
    missing = InventoryEntry("logs/never-uploaded.log", 10, hashlib.sha256(b"0123456789").hexdigest())
    write_session(landing, session_date, "bad-input-missing-file", {"events/e.jsonl": good_line},
                  inventory_override={missing.path: missing})
    write_session(landing, session_date, "still-uploading", {"events/e.jsonl": good_line}, complete=False)
    return ["bad-input-records", "bad-input-missing-file", "still-uploading"]


def build_demo_landing(root: Path, session_date: dt.date, sessions: int, cases_dir: Path | None) -> dict[str, int]:
    """Create the demo landing folder; return how many sessions of each sort it holds."""
    landing = LocalLanding(root)
    counts = {"synthetic": len(generate_day(landing, session_date, sessions, SyntheticSpec(seconds=60)))}
    if cases_dir is not None and cases_dir.is_dir():
        counts["sample files"] = len(add_case_sessions(landing, session_date, cases_dir))
    else:
        logger.warning("sample-file folder %s not found: the demo runs on synthetic sessions only; "
                       "set %s to include real files", cases_dir, CASES_ENV)
    counts["bad input"] = len(add_bad_input_sessions(landing, session_date))
    return counts


__all__ = ["KIND_FOLDERS", "build_demo_landing", "default_cases_dir"]
