"""Validation of session ids and run dates, shared by the broker, the uploader and the job."""

from __future__ import annotations

import datetime as dt
import re

from playtest_spark.errors import InvalidRunDateError, InvalidSessionIdError

SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")


def validate_session_id(session_id: object) -> str:
    """Return the session id unchanged, or raise if it could escape its directory.

    Raises:
        InvalidSessionIdError: the id is empty, longer than 64 characters, or contains a
            character other than A-Z a-z 0-9 - _ (so no slash, dot or space).
    """
    if not isinstance(session_id, str) or not SESSION_ID_PATTERN.fullmatch(session_id):
        raise InvalidSessionIdError(
            f"invalid session id {session_id!r}: use 1 to 64 characters of A-Z a-z 0-9 - _"
        )
    return session_id


def is_valid_session_id(session_id: object) -> bool:
    """Return whether `session_id` passes `validate_session_id`."""
    return isinstance(session_id, str) and SESSION_ID_PATTERN.fullmatch(session_id) is not None


def parse_run_date(value: str | dt.date) -> dt.date:
    """Parse a run date given as YYYY-MM-DD.

    Raises:
        InvalidRunDateError: the value is not a real calendar date in that form.
    """
    if isinstance(value, dt.datetime):
        raise InvalidRunDateError(f"invalid run date {value!r}: pass a date, not a datetime")
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not DATE_PATTERN.fullmatch(text):
        raise InvalidRunDateError(f"invalid run date {value!r}: expected YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRunDateError(f"invalid run date {value!r}: {exc}") from exc
