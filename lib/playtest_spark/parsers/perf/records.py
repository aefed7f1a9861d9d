"""The Arrow form of `PERF_RECORD`, the table every performance parser returns."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

# Same names, order and types as `playtest_spark.schemas.PERF_RECORD` (Spark
# TimestampType is UTC microseconds).
PERF_ARROW_SCHEMA = pa.schema(
    [
        ("sample_no", pa.int64()),
        ("offset_s", pa.float64()),
        ("frame_time_ms", pa.float64()),
        ("cpu_busy_ms", pa.float64()),
        ("gpu_busy_ms", pa.float64()),
        ("display_latency_ms", pa.float64()),
        ("dropped", pa.bool_()),
        ("cpu_util_pct", pa.float64()),
        ("gpu_util_pct", pa.float64()),
        ("memory_mb", pa.float64()),
        ("gpu_memory_mb", pa.float64()),
        ("process_name", pa.string()),
        ("sample_time", pa.timestamp("us", tz="UTC")),
        ("source_tool", pa.string()),
    ]
)


def perf_table(
    columns: Mapping[str, pa.Array | pa.ChunkedArray | np.ndarray | None], rows: int, tool: str
) -> pa.Table:
    """Build a table with the full `PERF_ARROW_SCHEMA`.

    Args:
        columns: Field name -> values; NumPy float arrays may use NaN for null. Missing
            or None fields are all null.
        rows: Number of rows.
        tool: Value of `source_tool` for every row.
    """
    arrays = []
    for field in PERF_ARROW_SCHEMA:
        if field.name == "source_tool":
            arrays.append(pa.repeat(pa.scalar(tool, pa.string()), rows))
            continue
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(rows, field.type))
        elif isinstance(values, np.ndarray):
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
        else:
            arrays.append(values.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=PERF_ARROW_SCHEMA)


def empty_perf_table() -> pa.Table:
    """Return a table with the schema and no rows."""
    return PERF_ARROW_SCHEMA.empty_table()
