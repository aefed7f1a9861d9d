"""Find the sessions a run must process.

For each date of the look-back window the landing is listed once under
`sessions/<date>/`, so the cost of a run follows the number of sessions in its window,
never the whole history. A session is ready when `_complete.json` exists, its inventory
matches the files in the directory (path, size, and the SHA-256 that the uploader stored
in blob metadata where present) and the ledger has not processed that inventory yet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from playtest_spark.errors import LandingError
from playtest_spark.ids import is_valid_session_id
from playtest_spark.landing import LandedObject, Landing
from playtest_spark.manifest import (
    COMPLETE_FILE,
    SESSION_FILE,
    SESSIONS_PREFIX,
    CompletionManifest,
    InventoryEntry,
    ManifestError,
    SessionManifest,
    kind_of,
)
from playtest_spark.sql.tables import MAX_PATH_CHARS

logger = logging.getLogger(__name__)

# Threads that read manifests on the driver: reads are small and latency-bound on Blob.
MANIFEST_READ_THREADS = 16


class SessionState(str, enum.Enum):
    """Outcome of discovery for one session directory."""

    READY = "ready"
    OPEN = "open"  # no _complete.json yet: the upload has not finished
    INCOMPLETE = "incomplete"  # _complete.json disagrees with the directory
    INVALID = "invalid"  # bad session id or unreadable session.json/_complete.json
    PROCESSED = "processed"  # the ledger already contains this inventory


@dataclasses.dataclass(frozen=True)
class SessionFile:
    """A file of a ready session that the job will load or report."""

    path: str
    key: str
    kind: str | None
    size: int
    sha256: str
    status: str  # "load", or why it is not loaded: "not_in_inventory", "unknown_kind", "path_too_long"


@dataclasses.dataclass(frozen=True)
class SessionCandidate:
    """A session directory found in the window, with what discovery decided."""

    session_date: dt.date
    session_id: str
    state: SessionState
    reason: str = ""
    manifest: SessionManifest | None = None
    completion: CompletionManifest | None = None
    files: tuple[SessionFile, ...] = ()

    @property
    def inventory_hash(self) -> str | None:
        return self.completion.inventory_hash if self.completion else None


@dataclasses.dataclass(frozen=True)
class LedgerEntry:
    """Ledger row of a processed session."""

    session_date: dt.date
    inventory_hash: str


LedgerLookup = Callable[[Sequence[str]], Mapping[str, LedgerEntry]]


@dataclasses.dataclass(frozen=True)
class Discovery:
    """All session directories of the window, grouped by state.

    Attributes:
        candidates: One entry per session directory found.
        ledger: Ledger entries of the session ids found, from any date.
    """

    candidates: tuple[SessionCandidate, ...]
    ledger: Mapping[str, LedgerEntry] = dataclasses.field(default_factory=dict)

    def in_state(self, state: SessionState) -> list[SessionCandidate]:
        return [c for c in self.candidates if c.state is state]

    @property
    def ready(self) -> list[SessionCandidate]:
        return self.in_state(SessionState.READY)

    def counts(self) -> dict[str, int]:
        totals = {state.value: 0 for state in SessionState}
        for candidate in self.candidates:
            totals[candidate.state.value] += 1
        return totals


def discover_sessions(
    landing: Landing,
    dates: Iterable[dt.date],
    ledger: Mapping[str, LedgerEntry] | LedgerLookup,
) -> Discovery:
    """List the window's session directories and decide what to do with each.

    Session ids are unique across dates: an id found on two dates of the window, or
    already processed for another date, is invalid, because its rows would replace the
    other session's rows.

    Args:
        landing: Where sessions land.
        dates: Session dates to search (the run date and its look-back days).
        ledger: Processed sessions by id, or a function that returns those of a list
            of ids (so the ledger is read only for the sessions found).

    Raises:
        LandingError: the landing could not be listed.
    """
    dates = list(dates)
    groups: dict[tuple[dt.date, str], list[LandedObject]] = defaultdict(list)
    for session_date in dates:
        prefix = f"{SESSIONS_PREFIX}/{session_date.isoformat()}/"
        try:
            objects = list(landing.list_prefix(prefix))
        except OSError as exc:
            raise LandingError(f"could not list {prefix!r} in the landing: {exc}") from exc
        for obj in objects:
            rest = obj.key[len(prefix):]
            if "/" not in rest:
                logger.warning("ignoring %r: files belong in a session directory", obj.key)
                continue
            session_dir, _ = rest.split("/", 1)
            groups[(session_date, session_dir)].append(obj)

    found_ids = sorted({session_id for _, session_id in groups})
    entries = ledger(found_ids) if callable(ledger) else ledger
    first_date: dict[str, dt.date] = {}
    for session_date, session_id in sorted(groups):
        first_date.setdefault(session_id, session_date)

    def inspect(item: tuple[tuple[dt.date, str], list[LandedObject]]) -> SessionCandidate:
        (session_date, session_id), objects = item
        other_date = first_date[session_id]
        processed = entries.get(session_id)
        if other_date != session_date:
            return SessionCandidate(
                session_date, session_id, SessionState.INVALID,
                f"session id {session_id!r} also landed on {other_date}; session ids must be unique, "
                "so open a new session through the broker and upload the files again",
            )
        if processed is not None and processed.session_date != session_date:
            return SessionCandidate(
                session_date, session_id, SessionState.INVALID,
                f"session id {session_id!r} was already processed for {processed.session_date}; "
                "session ids must be unique, so open a new session through the broker and upload again",
            )
        return _inspect_session(landing, session_date, session_id, objects,
                                processed.inventory_hash if processed else None)

    with ThreadPoolExecutor(max_workers=MANIFEST_READ_THREADS) as pool:
        candidates = list(pool.map(inspect, sorted(groups.items())))
    discovery = Discovery(tuple(candidates), dict(entries))
    logger.info("discovered sessions in %d day(s): %s", len(dates), discovery.counts())
    return discovery


def _inspect_session(
    landing: Landing,
    session_date: dt.date,
    session_dir: str,
    objects: list[LandedObject],
    processed_hash: str | None,
) -> SessionCandidate:
    if not is_valid_session_id(session_dir):
        return SessionCandidate(
            session_date, session_dir, SessionState.INVALID,
            f"invalid session id {session_dir!r}: use 1 to 64 characters of A-Z a-z 0-9 - _",
        )
    prefix = f"{SESSIONS_PREFIX}/{session_date.isoformat()}/{session_dir}/"
    by_path = {obj.key[len(prefix):]: obj for obj in objects}
    if COMPLETE_FILE not in by_path:
        return SessionCandidate(session_date, session_dir, SessionState.OPEN, "no _complete.json yet")
    if SESSION_FILE not in by_path:
        return SessionCandidate(
            session_date, session_dir, SessionState.INVALID,
            "session.json is missing: the broker writes it when the session opens; "
            "re-open the session through the broker",
        )
    try:
        manifest = SessionManifest.from_json(landing.read_bytes(prefix + SESSION_FILE))
        completion = CompletionManifest.from_json(landing.read_bytes(prefix + COMPLETE_FILE))
    except ManifestError as exc:
        return SessionCandidate(session_date, session_dir, SessionState.INVALID, str(exc))
    except FileNotFoundError as exc:
        return SessionCandidate(session_date, session_dir, SessionState.OPEN, f"manifest vanished: {exc}")
    for name, found in (("session.json", manifest.session_id), ("_complete.json", completion.session_id)):
        if found != session_dir:
            return SessionCandidate(
                session_date, session_dir, SessionState.INVALID,
                f"{name} names session {found!r} but lies in directory {session_dir!r}",
            )

    problems = _compare_inventory(completion.files, by_path)
    if problems:
        return SessionCandidate(
            session_date, session_dir, SessionState.INCOMPLETE,
            "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            + "; the session is retried on later runs",
            manifest, completion,
        )
    if completion.device_end < manifest.device_start:
        return SessionCandidate(
            session_date, session_dir, SessionState.INVALID,
            f"_complete.json device_end {completion.device_end.isoformat()} is before session.json "
            f"device_start {manifest.device_start.isoformat()}; fix the device clock or the uploader",
        )
    if processed_hash == completion.inventory_hash:
        return SessionCandidate(session_date, session_dir, SessionState.PROCESSED, "", manifest, completion)

    files = _session_files(prefix, completion.files, by_path)
    return SessionCandidate(session_date, session_dir, SessionState.READY, "", manifest, completion, files)


def _compare_inventory(entries: Iterable[InventoryEntry], by_path: Mapping[str, LandedObject]) -> list[str]:
    problems = []
    for entry in entries:
        found = by_path.get(entry.path)
        if found is None:
            problems.append(f"{entry.path!r} is listed in _complete.json but missing")
        elif found.size != entry.size:
            problems.append(f"{entry.path!r} has {found.size} bytes, _complete.json says {entry.size}")
        elif found.sha256 and found.sha256.lower() != entry.sha256:
            problems.append(f"{entry.path!r} has SHA-256 {found.sha256[:12]}…, _complete.json says {entry.sha256[:12]}…")
    return problems


def _session_files(
    prefix: str, entries: Iterable[InventoryEntry], by_path: Mapping[str, LandedObject]
) -> tuple[SessionFile, ...]:
    listed = {entry.path: entry for entry in entries}
    files = []
    for path, obj in sorted(by_path.items()):
        if path in (SESSION_FILE, COMPLETE_FILE):
            continue
        entry = listed.get(path)
        kind = kind_of(path)
        if entry is None:
            status = "not_in_inventory"
        elif len(path) > MAX_PATH_CHARS:
            status = "path_too_long"
        elif kind is None:
            status = "unknown_kind"
        else:
            status = "load"
        files.append(SessionFile(path, obj.key, kind, obj.size, entry.sha256 if entry else "", status))
    return tuple(files)


def parser_options(candidate: SessionCandidate) -> str:
    """Return the per-session parser options as JSON (event field mapping, device start)."""
    manifest = candidate.manifest
    if manifest is None:
        return "{}"
    return json.dumps({
        "event_fields": dict(manifest.event_fields),
        "device_start": manifest.device_start.isoformat(),
    })
