"""Frame sequences and time offsets, vectorized with NumPy.

A frame sequence is the run of frames that one swap chain of one process presented.
PresentMon interleaves several sequences in one file, in the order their records
completed, so neither the file order nor the time column is monotonic across them. Metrics that
relate a frame to the one before it (the time between presents, tick frequencies) look
up the previous row of the same sequence.

QueryPerformanceCounter ticks are converted with the counter frequency: given in the
parser options as `qpc_frequency_hz`, or else estimated from the file as the median of
(tick delta / millisecond interval) over consecutive frames of a sequence. Millisecond
columns are rounded to 0.1 us by the tools, so the estimate is close but not exact; an
estimate within 0.1 % of a common counter frequency (10 MHz, which Windows 10 and later
usually report, 3.579545 MHz or 14.31818 MHz) snaps to it.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

COMMON_QPC_HZ = (10_000_000.0, 3_579_545.0, 14_318_180.0)
_SNAP_TOLERANCE = 1e-3
# Intervals shorter than this are too coarse (4 decimals) for a frequency estimate.
_MIN_INTERVAL_MS = 0.5
# Offsets are rounded to the resolution of a 10 MHz counter, removing float noise such as
# `0.00334499999999949`.
OFFSET_DECIMALS = 7


def sequence_ids(keys: list[pa.ChunkedArray], rows: int) -> np.ndarray:
    """Return an integer id per row that is equal for rows with equal key values.

    With no key columns every row belongs to one sequence.
    """
    ids = np.zeros(rows, dtype=np.int64)
    for key in keys:
        encoded = pc.fill_null(pc.cast(key, pa.string()), "")
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        dictionary = encoded.dictionary_encode()
        codes = np.asarray(dictionary.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        ids = ids * len(dictionary.dictionary) + codes
    return ids


def previous_in_sequence(ids: np.ndarray) -> np.ndarray:
    """Return, per row, the index of the previous row with the same id in file order, or -1."""
    count = len(ids)
    if count < 2 or ids.min() == ids.max():
        # One sequence (the usual capture of a single game): the previous row is the one before.
        return np.arange(count, dtype=np.int64) - 1
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    same = sorted_ids[1:] == sorted_ids[:-1]
    previous_sorted = np.full(count, -1, dtype=np.int64)
    previous_sorted[1:] = np.where(same, order[:-1], -1)
    previous = np.empty(count, dtype=np.int64)
    previous[order] = previous_sorted
    return previous


def estimate_ticks_per_ms(
    ticks: np.ndarray, intervals_ms: np.ndarray, previous: np.ndarray
) -> float | None:
    """Estimate counter ticks per millisecond.

    Args:
        ticks: Counter value per row (float, NaN where missing).
        intervals_ms: Per row, the milliseconds between the previous row of its sequence
            and this row (NaN where unknown).
        previous: Previous row of the same sequence (-1 for none).

    Returns:
        Ticks per millisecond, snapped to a common frequency when close, or None when
        no pair of frames gives an estimate.
    """
    has_previous = previous >= 0
    rows = np.flatnonzero(has_previous)
    if len(rows) == 0:
        return None
    delta = ticks[rows] - ticks[previous[rows]]
    interval = intervals_ms[rows]
    usable = (
        np.isfinite(delta) & np.isfinite(interval) & (interval >= _MIN_INTERVAL_MS) & (delta > 0)
    )
    if not usable.any():
        return None
    estimate = float(np.median(delta[usable] / interval[usable]))
    for hz in COMMON_QPC_HZ:
        if abs(estimate / (hz / 1000.0) - 1.0) <= _SNAP_TOLERANCE:
            return hz / 1000.0
    logger.info(
        "estimated counter frequency %.0f Hz matches no common value; using it", estimate * 1000
    )
    return estimate


def relative_seconds(seconds: np.ndarray) -> np.ndarray:
    """Return seconds relative to the first finite value, rounded to `OFFSET_DECIMALS`."""
    finite = np.flatnonzero(np.isfinite(seconds))
    if len(finite) == 0:
        return np.full(len(seconds), np.nan)
    return np.round(seconds - seconds[finite[0]], OFFSET_DECIMALS)


def relative_ticks(ticks: pa.ChunkedArray) -> np.ndarray:
    """Return counter values relative to the first non-null one, as float64 (NaN for null).

    Without nulls the subtraction is done in int64, so it is exact at any magnitude.
    """
    if ticks.null_count == 0:
        exact = np.asarray(ticks.to_numpy(), dtype=np.int64)
        return (exact - exact[0]).astype(np.float64) if len(exact) else np.zeros(0)
    # Arrow returns float64 with NaN for nulls; counter values stay exact below 2**53.
    values = as_float(ticks)
    finite = np.flatnonzero(np.isfinite(values))
    return values - values[finite[0]] if len(finite) else values


def as_float(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Return a column as float64 NumPy values with NaN for null."""
    values = pc.cast(column, pa.float64())
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
