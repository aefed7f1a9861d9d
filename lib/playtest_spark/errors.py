"""Exception hierarchy shared by the capture client and the nightly job.

Every message quotes the value that was rejected and says what to do next.
"""

from __future__ import annotations


class PlaytestError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(PlaytestError):
    """A setting is missing or invalid; the run stops before any work."""


class InvalidSessionIdError(PlaytestError, ValueError):
    """A session id is not 1 to 64 characters of A-Z a-z 0-9 - _."""


class InvalidRunDateError(ConfigError, ValueError):
    """A run date is not an ISO date (YYYY-MM-DD)."""


class LandingError(PlaytestError):
    """The landing storage could not be listed or read."""


class PublishError(PlaytestError):
    """Publishing curated tables to the SQL database failed; nothing was committed."""


class CaptureError(PlaytestError):
    """Opening, spooling or uploading a session failed."""
