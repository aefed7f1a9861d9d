"""Synthetic sessions of realistic size, for the demo, the tests and the benchmark.

A generated session is one minute of play by default: about 3 events a second as JSON
Lines, one PresentMon-style CSV row per frame at about 60 FPS, a short Unity-style log,
and a form. Output is deterministic for a given seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import random

import numpy as np

from playtest_spark.landing.base import Landing
from playtest_spark.manifest import (
    COMPLETE_FILE,
    SESSION_FILE,
    CompletionManifest,
    InventoryEntry,
    SessionManifest,
    session_prefix,
)

EVENT_TYPES = ("level_start", "checkpoint", "enemy_killed", "player_damaged", "item_picked", "menu_opened")
PERF_HEADER = "Application,ProcessID,TimeInSeconds,MsBetweenPresents,MsUntilRenderComplete,Dropped\n"


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Shape of the generated sessions."""

    seconds: int = 60
    fps: float = 60.0
    events_per_second: float = 3.0
    game: str = "demo-game"
    build: str = "1.4.2-synthetic"


def write_session(
    landing: Landing,
    session_date: dt.date,
    session_id: str,
    files: dict[str, bytes],
    *,
    start: dt.datetime | None = None,
    clock_offset_s: float = 0.0,
    duration_s: float = 60.0,
    game: str = "demo-game",
    build: str = "1.0.0",
    platform: str = "Windows",
    event_fields: dict[str, str] | None = None,
    complete: bool = True,
    inventory_override: dict[str, InventoryEntry] | None = None,
) -> None:
    """Write a landed session: `session.json`, the files, then `_complete.json`.

    Args:
        files: Path inside the session directory -> content.
        clock_offset_s: Broker clock minus device clock, in seconds.
        complete: Write `_complete.json`; without it the session is still open.
        inventory_override: Inventory entries to list instead of the real ones, to build
            sessions whose inventory disagrees with their files.
    """
    broker_start = start or dt.datetime.combine(session_date, dt.time(12, 0), tzinfo=dt.timezone.utc)
    device_start = broker_start - dt.timedelta(seconds=clock_offset_s)
    prefix = session_prefix(session_date, session_id)
    manifest = SessionManifest(
        session_id=session_id, game=game, build=build, platform=platform,
        device_model="Synthetic PC", player_id=hashlib.sha256(session_id.encode()).hexdigest()[:16],
        broker_start_utc=broker_start, device_start=device_start, event_fields=event_fields or {},
    )
    landing.write_bytes(f"{prefix}/{SESSION_FILE}", manifest.to_json().encode())
    entries = []
    for path, data in sorted(files.items()):
        landing.write_bytes(f"{prefix}/{path}", data)
        entries.append(InventoryEntry(path, len(data), hashlib.sha256(data).hexdigest()))
    if inventory_override:
        entries = [inventory_override.get(e.path, e) for e in entries]
        entries += [e for p, e in inventory_override.items() if p not in files]
    if complete:
        completion = CompletionManifest(session_id, device_start + dt.timedelta(seconds=duration_s), tuple(entries))
        landing.write_bytes(f"{prefix}/{COMPLETE_FILE}", completion.to_json().encode())


def session_files(seed: int, start: dt.datetime, spec: SyntheticSpec) -> dict[str, bytes]:
    """Return the files of one synthetic session."""
    rng = np.random.default_rng(seed)
    py_rng = random.Random(seed)
    frames = int(spec.seconds * spec.fps)
    frame_ms = np.clip(rng.gamma(shape=30.0, scale=1000.0 / spec.fps / 30.0, size=frames), 2.0, None)
    hitches = rng.random(frames) < 0.002
    frame_ms[hitches] *= rng.uniform(4, 8, size=int(hitches.sum()))
    times = np.cumsum(frame_ms) / 1000.0
    render_ms = frame_ms * rng.uniform(0.4, 0.9, size=frames)
    dropped = (rng.random(frames) < 0.01).astype(int)
    lines = [PERF_HEADER]
    lines.extend(
        f"Game.exe,4242,{t:.5f},{f:.3f},{r:.3f},{d}\n" for t, f, r, d in zip(times, frame_ms, render_ms, dropped)
    )
    perf = "".join(lines).encode()

    events = []
    event_count = int(spec.seconds * spec.events_per_second)
    offsets = sorted(py_rng.uniform(0, spec.seconds) for _ in range(event_count))
    for index, offset in enumerate(offsets):
        moment = start + dt.timedelta(seconds=offset)
        events.append(json.dumps({
            "type": py_rng.choice(EVENT_TYPES),
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": {"index": index, "x": round(py_rng.uniform(-100, 100), 2), "hp": py_rng.randint(0, 100)},
        }))
    log_lines = [
        "Initialize engine version: 2022.3.10f1 (ff3792e53c62)",
        "GfxDevice: creating device client; threaded=1",
        "Loaded scene 'Level01'",
    ]
    if py_rng.random() < 0.3:
        log_lines += [
            "NullReferenceException: Object reference not set to an instance of an object",
            "  at PlayerController.Update () [0x00012] in <a1b2c3>:0 ",
            "",
        ]
    log_lines.append("Shader warning: fallback used for 'Custom/Water'")
    form = {
        "form_id": "post-session",
        "questions": [
            {"id": "fun", "text": "How fun was it?", "type": "scale", "answer": py_rng.randint(1, 5)},
            {"id": "difficulty", "text": "How hard was it?", "type": "scale", "answer": py_rng.randint(1, 5)},
            {"id": "comment", "text": "Anything else?", "type": "text", "answer": "More levels, please"},
        ],
    }
    return {
        "events/events.jsonl": ("\n".join(events) + "\n").encode(),
        "performance/presentmon.csv": perf,
        "logs/Player.log": ("\n".join(log_lines) + "\n").encode(),
        "forms/post-session.json": json.dumps(form).encode(),
    }


def generate_day(
    landing: Landing, session_date: dt.date, count: int, spec: SyntheticSpec | None = None, seed: int = 7
) -> list[str]:
    """Write `count` synthetic complete sessions for `session_date`; return their ids."""
    spec = spec or SyntheticSpec()
    ids = []
    for index in range(count):
        session_id = f"syn-{session_date:%Y%m%d}-{index:05d}"
        start = dt.datetime.combine(session_date, dt.time(8, 0), tzinfo=dt.timezone.utc) + dt.timedelta(minutes=index % 600)
        # Event times are on the device clock, which runs 1.5 s behind the broker's.
        files = session_files(seed * 1_000_003 + index, start - dt.timedelta(seconds=1.5), spec)
        write_session(landing, session_date, session_id, files, start=start, clock_offset_s=1.5,
                      duration_s=spec.seconds, game=spec.game, build=spec.build)
        ids.append(session_id)
    return ids
