"""The demo landing: synthetic sessions, sessions built from real sample files, and
sessions with typical bad input, so one run shows every path of the job.

The demo owns its home folder. `prepare_demo_home` writes a marker file into it and only
ever clears a folder that carries that marker, is empty or does not exist yet.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np

from playtest_spark.errors import ConfigError
from playtest_spark.landing.local import LocalLanding
from playtest_spark.manifest import KIND_FOLDERS, InventoryEntry
from playtest_spark.synth import SyntheticSpec, generate_day, session_files, write_session

logger = logging.getLogger(__name__)

CASES_ENV = "PLAYTEST_CASES_DIR"
# Folder names of the sample-file collection -> landing folder of that kind.
CASE_FOLDERS = {"events": "events", "perf": "performance", "logs": "logs", "forms": "forms", "recordings": "recordings"}

# File that marks a folder as created by the demo, so a later demo may clear it.
DEMO_MARKER = ".playtest-demo"
_MARKER_TEXT = (
    "This folder was created by `playtest {command}`, and the next `playtest {command}` with\n"
    "this folder as --home deletes everything in it. Delete this file to prevent that.\n"
)

RECORDING_SESSION_ID = "demo-with-recording"
RECORDING_PATH = "recordings/gameplay.mp4"
# Codecs tried in order; FFmpeg builds without an H.264 encoder still have MPEG-4 Part 2.
RECORDING_CODECS = ("h264", "mpeg4")
RECORDING_SIZE = 64
RECORDING_FPS = 25
RECORDING_SECONDS = 2


class DemoHomeError(ConfigError):
    """The demo home folder contains files that the demo did not create, so it is left alone."""


def prepare_demo_home(home: Path, marker: str = DEMO_MARKER, command: str = "demo") -> None:
    """Empty `home` for a new demo and write the marker file into it.

    A folder that does not exist is created. An existing folder is cleared only when it
    is empty or contains the marker file that an earlier call wrote. Symbolic links in it
    are removed, never followed.

    Args:
        marker: Name of the marker file.
        command: `playtest` subcommand named in the marker file's text.

    Raises:
        DemoHomeError: `home` is not a folder, or it contains files but no marker file.
        OSError: the folder could not be cleared or created.
    """
    absolute_home = str(home.absolute())
    if home.exists() or home.is_symlink():
        if not home.is_dir():
            raise DemoHomeError(
                f"folder {absolute_home!r} given as --home exists and is not a folder; choose a new or empty folder"
            )
        marker_path = home / marker
        marked = marker_path.is_file() and not marker_path.is_symlink()
        if not marked and any(home.iterdir()):
            raise DemoHomeError(
                f"folder {absolute_home!r} given as --home is not empty and has no {marker} file, so `playtest "
                f"{command}` did not create it and will not delete its contents; choose a new or empty "
                "folder, or delete this one yourself if it contains nothing you need"
            )
        _clear_folder(home)
    home.mkdir(parents=True, exist_ok=True)
    mark_demo_home(home, marker, command)


def mark_demo_home(home: Path, marker: str = DEMO_MARKER, command: str = "demo") -> None:
    """Write the marker file that lets a later `prepare_demo_home` clear `home`."""
    (home / marker).write_text(_MARKER_TEXT.format(command=command), encoding="utf-8")


def _clear_folder(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


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


def encode_demo_recording() -> bytes | None:
    """Encode a short MP4 video (a bar sweeping over a fading background) with PyAV.

    Returns:
        The file content, or None when PyAV is missing or none of `RECORDING_CODECS`
        can encode here; a warning is logged then.
    """
    try:
        import av
    except ImportError as exc:
        logger.warning("PyAV is not installed (%s); the demo has no recording", exc)
        return None
    failures = []
    for codec in RECORDING_CODECS:
        try:
            return _encode_mp4(codec)
        except (av.FFmpegError, ValueError) as exc:
            failures.append(f"{codec}: {exc}")
    logger.warning("PyAV could not encode a demo recording (%s); the demo has no recording", "; ".join(failures))
    return None


def _encode_mp4(codec: str) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream(codec, rate=RECORDING_FPS)
        stream.width = stream.height = RECORDING_SIZE
        stream.pix_fmt = "yuv420p"
        for index in range(RECORDING_FPS * RECORDING_SECONDS):
            pixels = np.zeros((RECORDING_SIZE, RECORDING_SIZE, 3), np.uint8)
            pixels[:, :, 2] = 40 + index * 2
            bar = index * 2 % RECORDING_SIZE
            pixels[:, bar:bar + 8, 1] = 255
            output.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        output.mux(stream.encode())
    return buffer.getvalue()


def add_recording_session(landing: LocalLanding, session_date: dt.date) -> list[str]:
    """Write one synthetic session that also has a gameplay recording; return its id.

    Returns an empty list, and writes nothing, when no recording could be encoded.
    """
    video = encode_demo_recording()
    if video is None:
        return []
    start = dt.datetime.combine(session_date, dt.time(18, 0), tzinfo=dt.timezone.utc)
    spec = SyntheticSpec(seconds=60)
    files = session_files(seed=4242, start=start, spec=spec)
    files[RECORDING_PATH] = video
    write_session(landing, session_date, RECORDING_SESSION_ID, files, start=start,
                  duration_s=spec.seconds, game=spec.game, build=spec.build)
    return [RECORDING_SESSION_ID]


def build_demo_landing(root: Path, session_date: dt.date, sessions: int, cases_dir: Path | None) -> dict[str, int]:
    """Create the demo landing folder; return how many sessions of each sort it holds."""
    landing = LocalLanding(root)
    counts = {"synthetic": len(generate_day(landing, session_date, sessions, SyntheticSpec(seconds=60)))}
    with_recording = add_recording_session(landing, session_date)
    if with_recording:
        counts["with recording"] = len(with_recording)
    if cases_dir is not None and cases_dir.is_dir():
        counts["sample files"] = len(add_case_sessions(landing, session_date, cases_dir))
    else:
        logger.warning("no sample-file folder found at %s; the demo uses synthetic sessions only. "
                       "Set %s to a folder of real capture files to include them", cases_dir, CASES_ENV)
    counts["bad input"] = len(add_bad_input_sessions(landing, session_date))
    return counts


__all__ = ["DEMO_MARKER", "KIND_FOLDERS", "DemoHomeError", "build_demo_landing", "default_cases_dir", "mark_demo_home",
           "prepare_demo_home"]
