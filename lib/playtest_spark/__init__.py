"""Playtest data platform: session capture, the nightly Spark job and its tables."""

__version__ = "0.1.0"
