"""Parse every file of the ready sessions in one Spark pass.

The driver packs whole sessions into bins of similar size, one bin per partition, and a
single `mapInArrow` runs the plain-Python parsers on each partition. Every output row
carries a `record_type` and one filled struct (an event, a performance sample, a problem,
a file report ...). So one pass feeds every table, and the number of Spark jobs does not
grow with the number of sessions. Keeping a session in one partition also lets the
parsers number its events and samples without a shuffle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import posixpath
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType

from playtest_spark import schemas
from playtest_spark.discovery import SessionCandidate, parser_options
from playtest_spark.landing import LandingSpec, open_landing
from playtest_spark.parsers import parser_for
from playtest_spark.parsers.base import BytesSource, FileContext, ParseResult, Problem, bound_excerpt

logger = logging.getLogger(__name__)

# One task per bin. A bin contains whole sessions and at most about this many bytes.
TARGET_BIN_BYTES = 64 * 1024 * 1024
OUTPUT_BATCH_ROWS = 65_536

FILE_TASK = StructType([
    StructField("session_date", DateType()),
    StructField("session_id", StringType()),
    StructField("path", StringType()),
    StructField("key", StringType()),
    StructField("kind", StringType()),
    StructField("size", LongType()),
    StructField("sha256", StringType()),
    StructField("options", StringType()),
])

FILE_REPORT = StructType([
    StructField("format", StringType()),
    StructField("size_bytes", LongType()),
    StructField("sha256", StringType()),
    StructField("status", StringType()),
    StructField("detail", StringType()),
    StructField("records", LongType()),
    StructField("rejected", LongType()),
])

# record_type -> struct column and its schema.
RECORD_COLUMNS: dict[str, tuple[str, StructType]] = {
    "event": ("event", schemas.EVENT_RECORD),
    "perf": ("perf", schemas.PERF_RECORD),
    "log": ("log", schemas.LOG_RECORD),
    "form": ("form", schemas.FORM_RECORD),
    "recording": ("recording", schemas.RECORDING_RECORD),
    "problem": ("problem", schemas.PROBLEM_RECORD),
    "attribute": ("attribute", schemas.ATTRIBUTE_RECORD),
    "file": ("file", FILE_REPORT),
}
# Formats that are valid without records of their own.
RECORDLESS_FORMATS = frozenset({"questionnaire-definition"})
KIND_RECORD_TYPE = {
    "events": "event",
    "performance": "perf",
    "logs": "log",
    "forms": "form",
    "recordings": "recording",
}

PARSED = StructType(
    [
        StructField("session_date", DateType()),
        StructField("session_id", StringType()),
        StructField("source_file", StringType()),
        StructField("kind", StringType()),
        StructField("record_type", StringType()),
        StructField("seq", LongType()),
    ]
    + [StructField(column, schema) for column, schema in RECORD_COLUMNS.values()]
)


@dataclasses.dataclass(frozen=True)
class FileTask:
    session_date: Any
    session_id: str
    path: str
    key: str
    kind: str
    size: int
    sha256: str
    options: str


def plan_bins(candidates: Sequence[SessionCandidate], min_bins: int) -> list[list[FileTask]]:
    """Pack the loadable files of whole sessions into bins of similar total size.

    Greedy largest-first packing: each session goes to the currently smallest bin.
    """
    sessions = []
    for candidate in candidates:
        options = parser_options(candidate)
        tasks = [
            FileTask(candidate.session_date, candidate.session_id, f.path, f.key, f.kind or "",
                     f.size, f.sha256, options)
            for f in candidate.files if f.status == "load"
        ]
        if tasks:
            sessions.append((sum(t.size for t in tasks), tasks))
    if not sessions:
        return []
    total = sum(size for size, _ in sessions)
    count = max(min_bins, -(-total // TARGET_BIN_BYTES))
    count = min(count, len(sessions))
    bins: list[list[FileTask]] = [[] for _ in range(count)]
    loads = [0] * count
    for size, tasks in sorted(sessions, key=lambda item: -item[0]):
        smallest = loads.index(min(loads))
        bins[smallest].extend(tasks)
        loads[smallest] += size
    return bins


def parse_sessions(
    spark: SparkSession, candidates: Sequence[SessionCandidate], spec: LandingSpec
) -> DataFrame:
    """Return the lazily parsed files of `candidates` as one DataFrame of `PARSED` rows."""
    bins = plan_bins(candidates, min_bins=spark.sparkContext.defaultParallelism * 2)
    if not bins:
        return spark.createDataFrame([], PARSED)
    rows = spark.sparkContext.parallelize(
        [[dataclasses.astuple(task) for task in bin_] for bin_ in bins], len(bins)
    ).flatMap(lambda bin_: bin_)
    tasks = spark.createDataFrame(rows, FILE_TASK)
    return tasks.mapInArrow(_make_partition_parser(spec), PARSED)


class SessionForms:
    """Form answers of the current session, held until all its form files are parsed.

    Answers are mapped to questionnaire scales only when every definition file of the
    session is known; sessions arrive whole and in order within a partition.
    """

    def __init__(self) -> None:
        self.session_id: str | None = None
        self._answers: list[tuple[dict[str, Any], Sequence[Any]]] = []
        self._sources: list[Any] = []

    def add(self, task: dict[str, Any], records: Sequence[Any], source: Any) -> None:
        self.session_id = task["session_id"]
        self._sources.append(source)
        if records:
            self._answers.append((task, records))

    def flush(self, counters: dict[tuple[str, str], int]) -> Iterator[pa.RecordBatch]:
        """Yield the held answers with definitions applied, and forget the session."""
        answers, sources = self._answers, self._sources
        self.session_id, self._answers, self._sources = None, [], []
        if not answers:
            return
        from playtest_spark.parsers import forms

        definitions = [d for d in (forms.read_definition(source) for source in sources) if d is not None]
        for task, records in answers:
            if definitions:
                records = forms.apply_definitions(records, definitions)
            key = (task["session_id"], "form")
            start = counters.get(key, 0)
            counters[key] = start + len(records)
            problems: list[Problem] = []
            yield from _record_batches(task, "form", records, start, problems)
            if problems:
                yield _batch(task, "problem", [dataclasses.asdict(p) for p in problems])


def _make_partition_parser(spec: LandingSpec):  # type: ignore[no-untyped-def]
    def parse_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        counters: dict[tuple[str, str], int] = {}
        session_forms = SessionForms()
        for batch in batches:
            for task in batch.to_pylist():
                if session_forms.session_id not in (None, task["session_id"]):
                    yield from session_forms.flush(counters)
                yield from parse_file_task(task, spec, counters, session_forms)
        yield from session_forms.flush(counters)

    return parse_partition


def parse_file_task(
    task: dict[str, Any],
    spec: LandingSpec,
    counters: dict[tuple[str, str], int],
    session_forms: SessionForms | None = None,
) -> Iterator[pa.RecordBatch]:
    """Read, verify and parse one file; yield its rows as `PARSED` record batches.

    A file whose bytes differ from the inventory is reported (status `hash_mismatch`) and
    not parsed. A parser that fails on a file is a bug, but it must not stop the run: the
    file is reported with the error as a problem. Form answers go to `session_forms` and
    are yielded when the session ends.
    """
    kind = task["kind"]
    report = {"format": None, "size_bytes": task["size"], "sha256": task["sha256"],
              "status": "loaded", "detail": None, "records": 0, "rejected": 0}
    landing = open_landing(spec)
    context = FileContext(task["session_id"], task["path"], kind, json.loads(task["options"] or "{}"))
    source: Any
    if kind == "recordings":
        # Recordings can be many GB: they are read by range, and their hash is checked
        # against blob metadata at discovery rather than by reading the whole file.
        source = _LandingSource(landing, task["key"], task["size"])
    else:
        try:
            data = landing.read_bytes(task["key"])
        except FileNotFoundError as exc:
            report.update(status="missing", detail=f"file vanished after discovery: {exc}")
            yield _batch(task, "file", [report])
            return
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != task["size"] or (task["sha256"] and digest != task["sha256"]):
            report.update(
                status="hash_mismatch", size_bytes=len(data), sha256=digest,
                detail=f"content has SHA-256 {digest}, _complete.json says {task['sha256']}; "
                "re-upload the session",
            )
            yield _batch(task, "file", [report])
            return
        source = BytesSource(posixpath.basename(task["path"]), data)

    result = _run_parser(kind, source, context)
    record_type = KIND_RECORD_TYPE[kind]
    found_problems = len(result.problems)
    if record_type == "form" and session_forms is not None and not isinstance(result.records, pa.Table):
        session_forms.add(task, list(result.records), source)
    else:
        counter_key = (task["session_id"], record_type)
        start = counters.get(counter_key, 0)
        counters[counter_key] = start + result.record_count
        yield from _record_batches(task, record_type, result.records, start, result.problems)
    loaded = result.record_count - (len(result.problems) - found_problems)
    if result.record_count == 0 and not result.problems and result.format not in RECORDLESS_FORMATS:
        result.problems.append(Problem("file", f"the file holds no {kind} records (format {result.format!r}); "
                                               "check that the game wrote it completely"))

    report.update(format=result.format, records=loaded, rejected=len(result.problems))
    if loaded == 0 and result.problems:
        report.update(status="rejected", detail=result.problems[0].reason)
    elif record_type == "recording" and _all_unreadable(result.records):
        report.update(status="unreadable", detail=result.problems[0].reason if result.problems else None)
    if result.problems:
        yield _batch(task, "problem", [dataclasses.asdict(p) for p in result.problems])
    if result.attributes:
        yield _batch(task, "attribute", [{"name": k, "value": bound_excerpt(str(v))}
                                          for k, v in sorted(result.attributes.items())])
    yield _batch(task, "file", [report])


def _run_parser(kind: str, source: Any, context: FileContext) -> ParseResult:
    try:
        return parser_for(kind)(source, context)
    except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the run; it is reported
        logger.warning("parser for %s failed on %s/%s: %r", kind, context.session_id, context.path, exc)
        return ParseResult(
            problems=[Problem("file", f"the {kind} parser failed ({type(exc).__name__}: {exc}); "
                                      "report this file to the playtest-spark maintainers")],
            format="error",
        )


def _all_unreadable(records: Any) -> bool:
    rows = records.to_pylist() if isinstance(records, pa.Table) else list(records)
    return bool(rows) and all(row.get("status") == "unreadable" for row in rows)


class _LandingSource:
    def __init__(self, landing: Any, key: str, size: int) -> None:
        self._landing = landing
        self._key = key
        self.size = size
        self.name = posixpath.basename(key)

    def read_bytes(self) -> bytes:
        return self._landing.read_bytes(self._key)

    def open(self):  # type: ignore[no-untyped-def]
        return self._landing.open(self._key)


_ARROW_PARSED = to_arrow_schema(PARSED)
_ARROW_RECORDS = {name: to_arrow_schema(schema) for name, (_, schema) in RECORD_COLUMNS.items()}


def _record_batches(task: dict[str, Any], record_type: str, records: Any, start: int,
                    problems: list[Problem] | None = None) -> Iterator[pa.RecordBatch]:
    schema = _ARROW_RECORDS[record_type]
    if isinstance(records, pa.Table):
        table = _conform(records, schema)
    else:
        table = _table_from_rows(list(records), schema, problems if problems is not None else [])
    table = _finite_only(table)
    for offset in range(0, table.num_rows, OUTPUT_BATCH_ROWS):
        chunk = table.slice(offset, OUTPUT_BATCH_ROWS)
        seq = pa.array(range(start + offset + 1, start + offset + chunk.num_rows + 1), pa.int64())
        yield _assemble(task, record_type, chunk, seq)


def _table_from_rows(rows: list[dict[str, Any]], schema: pa.Schema, problems: list[Problem]) -> pa.Table:
    """Convert parser rows to Arrow; a row Arrow cannot store becomes a problem.

    Conversion is tried for all rows at once and, only when that fails, row by row.
    """
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError):
        storable = []
        for index, row in enumerate(rows, start=1):
            try:
                pa.Table.from_pylist([row], schema=schema)
            except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError) as exc:
                position = f"line {row['line_no']}" if row.get("line_no") else f"record {index}"
                problems.append(Problem(position, f"the record contains a value that cannot be stored "
                                                  f"({type(exc).__name__}: {exc}); fix the writer", repr(row)))
                continue
            storable.append(row)
        return pa.Table.from_pylist(storable, schema=schema)


def _finite_only(table: pa.Table) -> pa.Table:
    """Replace NaN and infinite doubles with null: they are no measurement."""
    columns = []
    for column, field in zip(table.columns, table.schema):
        if pa.types.is_floating(field.type) and table.num_rows:
            column = pc.if_else(pc.is_finite(column), column, pa.scalar(None, field.type))
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast a parser's Arrow table to a record schema; absent columns are null."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _batch(task: dict[str, Any], record_type: str, rows: list[dict[str, Any]]) -> pa.RecordBatch:
    table = pa.Table.from_pylist(rows, schema=_ARROW_RECORDS[record_type])
    return _assemble(task, record_type, table, pa.nulls(table.num_rows, pa.int64()))


def _assemble(task: dict[str, Any], record_type: str, table: pa.Table, seq: pa.Array) -> pa.RecordBatch:
    n = table.num_rows
    arrays = []
    for field in _ARROW_PARSED:
        name = field.name
        if name == "session_date":
            arrays.append(pa.array([task["session_date"]] * n, field.type))
        elif name == "session_id":
            arrays.append(pa.array([task["session_id"]] * n, field.type))
        elif name == "source_file":
            arrays.append(pa.array([task["path"]] * n, field.type))
        elif name == "kind":
            arrays.append(pa.array([task["kind"]] * n, field.type))
        elif name == "record_type":
            arrays.append(pa.array([record_type] * n, field.type))
        elif name == "seq":
            arrays.append(seq)
        elif name == RECORD_COLUMNS[record_type][0]:
            combined = table.combine_chunks()
            arrays.append(pa.StructArray.from_arrays(
                [combined.column(i).combine_chunks() if combined.num_rows else pa.array([], f.type)
                 for i, f in enumerate(field.type)],
                fields=list(field.type),
            ))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=_ARROW_PARSED)


# -- splitting the parsed rows into tables ------------------------------------------------------


def records_of(parsed: DataFrame, record_type: str) -> DataFrame:
    """Return the rows of one record type, with the struct's fields as columns."""
    column = RECORD_COLUMNS[record_type][0]
    return parsed.where(F.col("record_type") == record_type).select(
        "session_date", "session_id", "source_file", "kind", "seq", f"{column}.*"
    )
