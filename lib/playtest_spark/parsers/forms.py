"""Player forms and surveys: in-game form JSON, survey-tool CSV exports, questionnaires.

`parse` reads one file of a session's `forms/` folder and returns FORM_RECORD rows in
long format, one row per answer. A row has `form_id`, `respondent_id`, `row_no`,
`question_id`, `question_text`, `answer_text`, `answer_number` (the answer as a number,
when it is one), `answered_at` (UTC) and `scale` (the questionnaire dimension, see
below). Empty answers
(empty cells, white space, `NA`, `N/A`, `#N/A`, `null`) yield no row. Every stored string
passes through `privacy.scrub_text`. The file kind is found from the content: JSON
(an object, an array or JSON Lines) or else CSV.

In-game form JSON
-----------------
One form object, a list of them, an object with a `forms` (or `responses`,
`submissions`) list, or JSON Lines with one form per line. A form may also give its
answers as a map of question id to answer, under `answers` or as a flat object
(`{"fun": 4, "comment": "tight controls"}`), which is what the capture client's
`add_form` writes for a mapping::

    {
      "form_id": "post_match_v3",            # also "formId" or "id"; else the file name
      "respondent_id": "p-42",               # optional; also "respondent", "player_id"
      "submitted_at": "2024-05-01T10:00:00Z",  # optional; also "answered_at", "timestamp"
      "definition": "geq-core-en.json",      # optional, see "Questionnaire definitions"
      "questions": [                         # also "answers"
        {"id": "fun", "text": "How fun was it?", "type": "scale", "answer": 4},
        {"id": "modes", "text": "Modes played", "type": "multiple", "answer": ["coop", "pvp"]},
        {"id": "comment", "text": "Anything else?", "type": "text", "answer": "Too dark"}
      ]
    }

A question needs an `id` (also `question_id`, `key`); its text may be in `text`,
`question`, `label` or `title`; its answer in `answer`, `value` or `response`, and an
`answered_at` overrides the form's time. A list answer gives one row per element, with
question id `<id>[<element>]`; an object answer gives one row per key, with question id
`<id>[<key>]`. Booleans become `true`/`false` with numbers 1 and 0. A string answer that
is a number also gets `answer_number`, unless the question's `type` is a text type
(`text`, `string`, `free_text`, `textarea`, `comment`, `open`). `row_no` is the 1-based
position of the form in the file.

Survey-tool CSV exports
-----------------------
One row per respondent and one column per question, as LimeSurvey, FluidSurveys,
SurveyMonkey, Google Forms and Qualtrics write them. The delimiter (`,`, `;`, tab or
`|`) is taken from the header line, or from an Excel `sep=` first line; quoted values may
hold delimiters, quotes and line breaks. Header names are stripped of surrounding space.
A LimeSurvey `code. question text` header gives question id and text separately; a
Qualtrics export's question-text row and `{"ImportId": ...}` row are read as headers.
Checkbox questions spread over one column per option (`q[SQ001]`, `q_option`, with `Y`
or empty) give one row per ticked option, with the column name as question id. The
LimeSurvey `-oth-` answer (the respondent chose "Other") is stored as `other`.
`row_no` is the 1-based respondent row after the header rows.

Columns that hold no answer are not stored:

- `respondent_id` comes from the first non-empty of the `id`, respondent, participant,
  player and response id columns (see `_RESPONDENT_KEYS`), so a FluidSurveys row without
  a participant `id` falls back to the tool's `_id`;
- `answered_at` comes from the submit-time column, or else the start-time column;
- personal data (IP address, referrer, user agent, e-mail, names, user name, invitation
  token, location) is dropped and never stored: see `_PERSONAL_KEYS`;
- other tool metadata (columns whose name starts with `_`, LimeSurvey's `lastpage`,
  `seed`, `startlanguage`, timings, Qualtrics' `Status`, `Progress`, `Finished`, ...) is
  dropped as well.

Times may be ISO 8601, `YYYY/MM/DD`, or day-first or month-first dates, with 24-hour or
12-hour (`1:59:49 AM`) clocks. The order of an ambiguous `NN/NN/YYYY` column is decided
from all its values (a first number above 12 means day-first, a second above 12 means
month-first); when every value is ambiguous, the `date_order` option (`DMY` or `MDY`)
decides, and without it a column with AM/PM times is read as month-first and any other
as day-first. A time without an offset is taken as UTC.

A row with more or fewer cells than the header is rejected as a problem, with its row
and line numbers, and the other rows still load.

Questionnaire definitions
-------------------------
A JSON object with items, a scale and dimension mappings, in either of two shapes::

    {"id": "geq-core", "scale": {"min": 0, "max": 4, "labels": {"not at all": 0, ...}},
     "items": ["I felt content", ...] or [{"id": "content", "text": "..."}, ...],
     "dimensions": {"competence": [1, 4, 9], ...}}

    {"modules": {"core": {"questions": ["I felt content", ...],
                          "dimensions": {"competence": {"name": "...", "items": [1, 4]}}}},
     "ui": {"scaleLabels": [{"value": 0, "label": "not at all"}, ...]}}

Item indexes are 0-based. The scale comes from `scale` (`min`, `max`, `labels`), or from
`scaleLabels` at the top or under `ui`. `parse` recognises such a file (format
`questionnaire-definition`) and returns no rows. A definition's names are its `id` (or
`questionnaire_id`), its file name and its file name without extension.

After all form files of a session are parsed, the job reads the definitions with
`read_definition` and calls `apply_definitions(records, definitions)`. An answer is
matched to an item, in this order:

1. its question id is `<definition name>:<item key>`. `parse` writes such ids for an
   in-game form whose `definition` names a definition file, for the questions whose id
   is an index key (`"definition": "geq-fr.json"` and `"id": "core.3"` give
   `geq-fr:core.3`, while `"id": "comment"` stays `comment`);
2. its `form_id` is a definition name, and its question id is an item key;
3. its question id is a module-qualified item key or a named item id that exactly one of
   the session's definitions knows (so a CSV column `core.3` matches).

An item key is `<module>.<index>` (also `<module>[<index>]`, `<module>_<index>`), a bare
`<index>` for a definition with at most one module, or an item's `id`. A matched answer
whose number (or label, compared case-insensitively) lies on the scale gets `scale` set to
its dimension (`<module>.<dimension>` when the definition has modules; several
dimensions are joined with `,`) and `answer_number` set to its value on the scale; an
empty question text is filled from the item. An in-game form may also embed the
definition object under `definition`; `parse` then applies it to that form's answers.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from playtest_spark.parsers.base import FileContext, FileSource, ParseResult, Problem
from playtest_spark.parsers.privacy import scrub_optional, scrub_text
from playtest_spark.parsers.text import decode_text

logger = logging.getLogger(__name__)

FORM_JSON_FORMAT = "form-json"
SURVEY_CSV_FORMAT = "survey-csv"
DEFINITION_FORMAT = "questionnaire-definition"

# Maximum length of a question id in the curated table.
MAX_QUESTION_ID_CHARS = 128

_MISSING_VALUES = frozenset({"", "na", "n/a", "#n/a", "null", "nan"})
_TEXT_TYPES = frozenset({"text", "string", "free_text", "freetext", "textarea", "comment", "open"})
_OTHER_SENTINEL = "-oth-"

# JSON field names, in order of preference.
_FORM_ID_KEYS = ("form_id", "formId", "form", "id")
_FORM_RESPONDENT_KEYS = (
    "respondent_id", "respondentId", "respondent", "player_id", "playerId",
    "participant_id", "participant",
)
_FORM_TIME_KEYS = (
    "submitted_at", "submittedAt", "answered_at", "answeredAt", "completed_at", "timestamp",
    "time", "created_at",
)
_FORM_LIST_KEYS = ("forms", "responses", "submissions")
_QUESTION_LIST_KEYS = ("questions", "answers")
_QUESTION_ID_KEYS = ("id", "question_id", "questionId", "key")
_QUESTION_TEXT_KEYS = ("text", "question", "label", "title", "prompt")
_ANSWER_KEYS = ("answer", "value", "response")

# CSV header names (lower case, single spaces), in order of preference.
_RESPONDENT_KEYS = (
    "id", "respondent id", "respondent_id", "respondentid", "respondent",
    "participant id", "participant_id", "participantid", "participant",
    "player id", "player_id",
    "response id", "responseid", "response_id", "_id",
)
_SUBMIT_KEYS = (
    "submitdate", "date submitted", "submitted", "submitted at", "submitted_at", "submit date",
    "end date", "enddate", "recordeddate", "recorded date",
    "completed at", "completed_at", "completion date", "_updated_at",
    "timestamp", "datestamp", "date last action", "end time",
)
_START_KEYS = (
    "startdate", "date started", "start date", "started at", "started_at", "_created_at",
    "created_at", "start time",
)
# Personal data that a survey tool records about the respondent: never stored.
_PERSONAL_KEYS = frozenset({
    "ipaddr", "ip address", "ip_address", "ipaddress", "ip", "_ip_address",
    "refurl", "referrer url", "referrer", "referer", "_referrer", "http_referer",
    "user agent", "useragent", "user_agent", "_user_agent",
    "email", "email address", "e-mail", "_invite_email", "recipientemail", "recipient email",
    "_invite_name", "recipientfirstname", "recipientlastname", "first name", "last name",
    "_username", "username", "token",
    "locationlatitude", "locationlongitude", "location latitude", "location longitude",
    "latitude", "longitude",
})
# Survey-tool bookkeeping that is no answer.
_TOOL_METADATA_KEYS = frozenset({
    "lastpage", "last page", "startlanguage", "start language", "seed", "interviewtime",
    "total time", "status", "progress", "duration (in seconds)", "finished",
    "distributionchannel", "userlanguage", "externalreference", "collector id",
    "custom data 1",
})
_GROUP_TIME = re.compile(r"^grouptime\d*$")
_CODE_AND_TEXT = re.compile(r"^(?P<code>[A-Za-z_]\w*(?:\[[^\]]+\])*)\.\s+(?P<text>\S.*)$")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_DELIMITERS = (",", ";", "\t", "|")
_EXCEL_SEP = re.compile(r"^\"?sep=(?P<sep>.)\"?\s*$")


class DefinitionError(ValueError):
    """A questionnaire definition is not usable as a whole."""


def parse(source: FileSource, context: FileContext) -> ParseResult:
    """Parse a form file into FORM_RECORD rows; bad rows become problems."""
    data = source.read_bytes()
    if not data.strip():
        return ParseResult.rejected(
            f"empty form file {source.name!r}: nothing was exported; check the export step",
            format="empty",
        )
    text = decode_text(data)
    if "\x00" in text[:8192]:
        return ParseResult.rejected(
            f"file {source.name!r} is not a text form (it holds binary data); upload the "
            "form JSON or the survey tool's CSV export",
            excerpt=data[:200],
            format="binary",
        )
    if text.lstrip()[:1] in ("{", "["):
        return _parse_json(text, source.name)
    return _parse_csv(text, source.name, context.options)


# -- small value helpers -----------------------------------------------------------------------


def _file_stem(name: str) -> str:
    base = re.split(r"[\\/]", name)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def _is_missing(text: str) -> bool:
    return text.strip().lower() in _MISSING_VALUES


def _to_number(text: str) -> float | None:
    candidate = text.strip()
    if not _NUMBER.match(candidate):
        return None
    number = float(candidate)
    return number if math.isfinite(number) else None


def _bounded_id(text: str) -> str:
    """Return a question id that fits the curated table, keeping long ids distinct."""
    if len(text) <= MAX_QUESTION_ID_CHARS:
        return text
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=4).hexdigest()
    return f"{text[: MAX_QUESTION_ID_CHARS - 9]}#{digest}"


def _first(mapping: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value is not None and value != "":
            return value
    return None


def _first_text(mapping: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    value = _first(mapping, keys)
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value).strip() or None


# -- time parsing ------------------------------------------------------------------------------

_DATE_TIME = re.compile(
    r"^(?P<a>\d{1,4})(?P<sep>[-/.])(?P<b>\d{1,2})(?P=sep)(?P<c>\d{1,4})"
    r"(?:(?:[ T]|, ?)(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?)?"
    r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}:?\d{2})?$"
)
DATE_ORDERS = ("DMY", "MDY")


def _column_date_order(values: Iterable[str], preferred: str | None) -> str:
    """Decide whether the `NN/NN/YYYY` dates of one column are day-first or month-first."""
    day_first = month_first = has_ampm = False
    for value in values:
        match = _DATE_TIME.match(value.strip())
        if match is None or len(match.group("a")) == 4:
            continue
        if int(match.group("a")) > 12:
            day_first = True
        if int(match.group("b")) > 12:
            month_first = True
        if match.group("ampm"):
            has_ampm = True
    if day_first != month_first:
        return "DMY" if day_first else "MDY"
    if preferred in DATE_ORDERS:
        return preferred
    return "MDY" if has_ampm else "DMY"


def parse_time(text: str, date_order: str = "DMY") -> dt.datetime | None:
    """Parse a survey or form time stamp into an aware UTC datetime, or None.

    Args:
        text: ISO 8601, `YYYY/MM/DD hh:mm[:ss] [AM|PM]` or `NN/NN/YYYY ...` text.
        date_order: `DMY` or `MDY`, for dates that do not start with the year.
    """
    value = text.strip()
    if not value:
        return None
    match = _DATE_TIME.match(value)
    if match is None:
        return _parse_iso(value)
    a, b, c = match.group("a"), match.group("b"), match.group("c")
    if len(a) == 4:
        year, month, day = int(a), int(b), int(c)
    else:
        first, second = int(a), int(b)
        day, month = (first, second) if date_order == "DMY" else (second, first)
        year = int(c)
        if len(c) <= 2:
            year += 2000 if year < 70 else 1900
    hour = int(match.group("hour") or 0)
    ampm = (match.group("ampm") or "").lower().replace(".", "")
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    fraction = (match.group("fraction") or "0")[:6].ljust(6, "0")
    try:
        parsed = dt.datetime(
            year,
            month,
            day,
            hour,
            int(match.group("minute") or 0),
            int(match.group("second") or 0),
            int(fraction),
        )
    except ValueError:
        return None
    zone = match.group("zone")
    if zone and zone not in ("Z", "UTC", "GMT"):
        offset = zone.replace(":", "")
        minutes = int(offset[1:3]) * 60 + int(offset[3:5])
        sign = -1 if offset[0] == "-" else 1
        parsed = parsed.replace(tzinfo=dt.timezone(dt.timedelta(minutes=sign * minutes)))
        return parsed.astimezone(dt.timezone.utc)
    return parsed.replace(tzinfo=dt.timezone.utc)


def _parse_iso(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


# Epoch numbers above this are milliseconds: 1e11 s is the year 5138.
_EPOCH_MS_MIN = 1e11


def _json_time(value: Any) -> dt.datetime | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            return None
        seconds = value / 1000 if value >= _EPOCH_MS_MIN else value
        try:
            return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        return parse_time(value)
    return None


# -- in-game form JSON -------------------------------------------------------------------------


def _parse_json(text: str, name: str) -> ParseResult:
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        document = _json_lines(text)
        if document is None:
            return ParseResult.rejected(
                f"invalid JSON in {name!r} at line {exc.lineno} column {exc.colno}: {exc.msg}; "
                "fix the form writer so it emits one JSON document (or JSON Lines)",
                excerpt=text[max(0, exc.pos - 100) : exc.pos + 100],
                format=FORM_JSON_FORMAT,
            )
    if isinstance(document, dict) and is_definition(document):
        try:
            _, problems = questionnaire_from_json(document, name)
        except DefinitionError as exc:
            return ParseResult.rejected(str(exc), format=DEFINITION_FORMAT)
        return ParseResult(records=[], problems=problems, format=DEFINITION_FORMAT)
    forms = _form_objects(document)
    if forms is None:
        return ParseResult.rejected(
            f"JSON in {name!r} holds no form: expected an object with a 'questions' list, a "
            "list of such objects, or a questionnaire definition with 'dimensions'",
            excerpt=text[:300],
            format=FORM_JSON_FORMAT,
        )
    records: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for index, form in enumerate(forms, 1):
        if not isinstance(form, dict):
            problems.append(
                Problem(
                    f"record {index}",
                    f"form {index} is a JSON {type(form).__name__}, not an object with 'questions'",
                    json.dumps(form, ensure_ascii=False)[:500],
                )
            )
            continue
        records.extend(_form_rows(form, index, name, problems))
    return ParseResult(records=records, problems=problems, format=FORM_JSON_FORMAT)


def _json_lines(text: str) -> list[Any] | None:
    """Return the documents of a JSON Lines text, or None when it is not JSON Lines."""
    documents = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            documents.append(json.loads(line))
        except json.JSONDecodeError:
            return None
    return documents if len(documents) > 1 else None


def _form_objects(document: Any) -> list[Any] | None:
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        return None
    for key in _FORM_LIST_KEYS:
        if isinstance(document.get(key), list):
            return document[key]
    if any(isinstance(document.get(key), list) for key in _QUESTION_LIST_KEYS):
        return [document]
    return _answer_map_form(document)


_FORM_LEVEL_KEYS = frozenset(
    _FORM_ID_KEYS + _FORM_RESPONDENT_KEYS + _FORM_TIME_KEYS + ("definition", "questionnaire")
)


def _is_plain_answer(value: Any) -> bool:
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(item, scalar) for item in value)
    )


def _answer_map_form(document: dict[str, Any]) -> list[Any] | None:
    """Read a form given as a map of question id -> answer.

    Either `{"answers": {"fun": 4, ...}, "form_id": ...}` or a flat object such as
    `{"fun": 4, "comment": "tight controls"}`, where every key other than the form-level
    ones (`form_id`, `respondent_id`, `submitted_at`, ...) is a question and every value
    is a scalar or a list of scalars.
    """
    answers = next((document[k] for k in _QUESTION_LIST_KEYS if isinstance(document.get(k), dict)), None)
    if answers is None:
        answers = {k: v for k, v in document.items() if k not in _FORM_LEVEL_KEYS}
        header = {k: v for k, v in document.items() if k in _FORM_LEVEL_KEYS}
        # A flat object is a form only when every value is an answer, not a nested
        # object such as a settings file.
        if not all(_is_plain_answer(value) for value in answers.values()):
            return None
    else:
        header = {k: v for k, v in document.items() if k not in _QUESTION_LIST_KEYS}
    if not answers:
        return None
    questions = [{"id": str(key), "answer": value} for key, value in answers.items()]
    return [{**header, "questions": questions}]


def _form_rows(
    form: Mapping[str, Any], index: int, name: str, problems: list[Problem]
) -> list[dict[str, Any]]:
    form_id = _first_text(form, _FORM_ID_KEYS) or _file_stem(name)
    questions = _first(form, _QUESTION_LIST_KEYS)
    if not isinstance(questions, list):
        problems.append(
            Problem(
                f"record {index}",
                f"form {form_id!r} has no 'questions' list: add the questions with their answers",
                json.dumps(form, ensure_ascii=False)[:500],
            )
        )
        return []
    respondent = _first_text(form, _FORM_RESPONDENT_KEYS)
    form_time = _json_time(_first(form, _FORM_TIME_KEYS))
    definition = form.get("definition", form.get("questionnaire"))
    embedded: Questionnaire | None = None
    reference = ""
    if isinstance(definition, dict):
        try:
            embedded, definition_problems = questionnaire_from_json(definition, form_id)
            problems.extend(
                dataclasses.replace(problem, position=f"record {index}")
                for problem in definition_problems
            )
        except DefinitionError as exc:
            problems.append(Problem(f"record {index}", str(exc)))
    elif isinstance(definition, str) and definition.strip():
        reference = _file_stem(definition.strip())

    rows: list[dict[str, Any]] = []
    for number, question in enumerate(questions, 1):
        if not isinstance(question, dict):
            problems.append(
                Problem(
                    f"record {index}",
                    f"question {number} of form {form_id!r} is not an object",
                    json.dumps(question, ensure_ascii=False)[:500],
                )
            )
            continue
        question_id = _first_text(question, _QUESTION_ID_KEYS)
        if question_id is None:
            problems.append(
                Problem(
                    f"record {index}",
                    f"question {number} of form {form_id!r} has no 'id': give every question a "
                    "stable id so answers can be compared across sessions",
                    json.dumps(question, ensure_ascii=False)[:500],
                )
            )
            continue
        question_type = str(question.get("type") or "").strip().lower()
        answered_at = _json_time(question.get("answered_at")) or form_time
        text = _first_text(question, _QUESTION_TEXT_KEYS)
        if reference and _INDEX_KEY.match(question_id):
            question_id = f"{reference}:{question_id}"
        for suffix, value in _answer_parts(_first(question, _ANSWER_KEYS)):
            answer_text, answer_number = _answer_value(value, question_type)
            if answer_text is None:
                continue
            rows.append(
                _record(
                    form_id,
                    respondent,
                    index,
                    _bounded_id(question_id + suffix),
                    text,
                    answer_text,
                    answer_number,
                    answered_at,
                )
            )
    if embedded is not None:
        rows = apply_definitions(rows, [embedded], form_definition=embedded)
    return rows


def _answer_parts(answer: Any) -> Iterator[tuple[str, Any]]:
    """Split an answer into (question id suffix, scalar value) pairs."""
    if isinstance(answer, list):
        for element in answer:
            key = (
                element
                if not isinstance(element, (dict, list))
                else json.dumps(element, ensure_ascii=False, sort_keys=True)
            )
            yield f"[{_scalar_text(key)}]", element
    elif isinstance(answer, dict):
        for key, value in answer.items():
            yield f"[{key}]", value
    else:
        yield "", answer


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _answer_value(value: Any, question_type: str) -> tuple[str | None, float | None]:
    """Return the text and number of one answer value; None text means no answer."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return ("true", 1.0) if value else ("false", 0.0)
    if isinstance(value, (int, float)):
        number = float(value)
        return _scalar_text(value), number if math.isfinite(number) else None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True), None
    text = str(value).strip()
    if _is_missing(text):
        return None, None
    if text == _OTHER_SENTINEL:
        return "other", None
    number = None if question_type in _TEXT_TYPES else _to_number(text)
    return text, number


def _record(
    form_id: str | None,
    respondent_id: str | None,
    row_no: int,
    question_id: str,
    question_text: str | None,
    answer_text: str,
    answer_number: float | None,
    answered_at: dt.datetime | None,
) -> dict[str, Any]:
    return {
        "form_id": scrub_optional(form_id),
        "respondent_id": scrub_optional(respondent_id),
        "row_no": row_no,
        "question_id": scrub_text(question_id),
        "question_text": scrub_optional(question_text),
        "answer_text": scrub_text(answer_text),
        "answer_number": answer_number,
        "answered_at": answered_at,
        "scale": None,
    }


# -- survey CSV exports ------------------------------------------------------------------------


@dataclasses.dataclass
class _Column:
    index: int
    question_id: str
    question_text: str | None


@dataclasses.dataclass
class _Layout:
    """Roles of a CSV export's columns: answers, respondent ids, submit and start times."""

    answers: list[_Column]
    respondent: list[int]
    submitted: int | None
    started: int | None
    width: int


def _normalize_header(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip().strip('"').strip()).lower()


def _looks_like_data(cell: str) -> bool:
    value = cell.strip()
    return not value or _to_number(value) is not None or _DATE_TIME.match(value) is not None


def _layout(header: list[str], texts: list[str] | None) -> _Layout:
    keys = [_normalize_header(name) for name in header]
    present = {key: index for index, key in reversed(list(enumerate(keys)))}
    respondent = [present[key] for key in _RESPONDENT_KEYS if key in present]
    submit_columns = [present[key] for key in _SUBMIT_KEYS if key in present]
    start_columns = [present[key] for key in _START_KEYS if key in present]
    submitted = submit_columns[0] if submit_columns else None
    started = start_columns[0] if start_columns else None
    # Every id and time column is metadata, also those after the first one used.
    consumed = set(respondent) | set(submit_columns) | set(start_columns)
    answers: list[_Column] = []
    seen: dict[str, int] = {}
    for index, (name, key) in enumerate(zip(header, keys)):
        if index in consumed or _is_metadata(key):
            continue
        label = name.strip() or f"column_{index + 1}"
        question_id, question_text = label, label
        code_and_text = _CODE_AND_TEXT.match(label)
        if code_and_text:
            question_id, question_text = code_and_text.group("code"), code_and_text.group("text")
        if texts is not None and index < len(texts) and texts[index].strip():
            question_text = texts[index].strip()
        question_id = _bounded_id(question_id)
        seen[question_id] = seen.get(question_id, 0) + 1
        if seen[question_id] > 1:
            question_id = _bounded_id(f"{question_id}#{seen[question_id]}")
        answers.append(_Column(index, question_id, question_text))
    return _Layout(answers, respondent, submitted, started, len(header))


def _is_metadata(key: str) -> bool:
    return (
        key.startswith("_")
        or key in _PERSONAL_KEYS
        or key in _TOOL_METADATA_KEYS
        or _GROUP_TIME.match(key) is not None
    )


def _sniff_delimiter(text: str) -> tuple[str, str, int]:
    """Return the delimiter, the text without an Excel `sep=` line, and the lines skipped."""
    first_line, _, rest = text.partition("\n")
    excel = _EXCEL_SEP.match(first_line)
    if excel:
        return excel.group("sep"), rest, 1
    counts = {delimiter: first_line.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return (best if counts[best] else ","), text, 0


def _read_rows(
    text: str, delimiter: str, skipped_lines: int, problems: list[Problem]
) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line number, cells) of each CSV record; unreadable records are problems."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    while True:
        line = reader.line_num + 1 + skipped_lines
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(
                Problem(
                    f"line {line}",
                    f"unreadable CSV record at line {line}: {exc}; check its quotes",
                )
            )
            if reader.line_num + 1 + skipped_lines == line:
                return
            continue
        yield line, cells


def _parse_csv(text: str, name: str, options: Mapping[str, Any]) -> ParseResult:
    delimiter, body, skipped_lines = _sniff_delimiter(text)
    problems: list[Problem] = []
    rows = [
        (line, cells)
        for line, cells in _read_rows(body, delimiter, skipped_lines, problems)
        if any(cell.strip() for cell in cells)
    ]
    if not rows:
        return ParseResult.rejected(
            f"CSV {name!r} has no header and no rows", format=SURVEY_CSV_FORMAT
        )
    header_line, header = rows[0]
    if all(_looks_like_data(cell) for cell in header):
        return ParseResult.rejected(
            f"CSV {name!r} has no recognisable header: its first row holds only numbers, "
            "dates or empty cells; export the survey with question codes or texts as headers",
            excerpt=delimiter.join(header),
            format=SURVEY_CSV_FORMAT,
        )
    data_rows = rows[1:]
    texts, data_rows = _qualtrics_header_rows(data_rows)
    layout = _layout(header, texts)

    preferred = str(options.get("date_order") or "").upper() or None
    orders = {
        column: _column_date_order(
            (cells[column] for _, cells in data_rows if column < len(cells)), preferred
        )
        for column in (layout.submitted, layout.started)
        if column is not None
    }
    records: list[dict[str, Any]] = []
    form_id = _file_stem(name)
    for row_no, (line, cells) in enumerate(data_rows, 1):
        if len(cells) != layout.width:
            problems.append(
                Problem(
                    f"row {row_no}",
                    f"row {row_no} (line {line}) has {len(cells)} cells but the header has "
                    f"{layout.width}: a value with an unquoted {delimiter!r} or a cut line; fix "
                    "the export and upload it again",
                    delimiter.join(cells),
                )
            )
            continue
        records.extend(_csv_row_records(cells, row_no, layout, orders, form_id))
    return ParseResult(records=records, problems=problems, format=SURVEY_CSV_FORMAT)


def _qualtrics_header_rows(
    rows: list[tuple[int, list[str]]],
) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """Take Qualtrics' question-text row and ImportId row off the data rows."""
    for position in range(min(2, len(rows))):
        if any(cell.lstrip().startswith('{"ImportId"') for cell in rows[position][1]):
            texts = rows[0][1] if position == 1 else None
            return texts, rows[position + 1 :]
    return None, rows


def _csv_row_records(
    cells: list[str],
    row_no: int,
    layout: _Layout,
    orders: Mapping[int, str],
    form_id: str,
) -> list[dict[str, Any]]:
    respondent = next(
        (cells[index].strip() for index in layout.respondent if not _is_missing(cells[index])),
        None,
    )
    answered_at = None
    for column in (layout.submitted, layout.started):
        if column is not None and answered_at is None:
            answered_at = parse_time(cells[column], orders.get(column, "DMY"))
    records = []
    for column in layout.answers:
        answer_text, answer_number = _answer_value(cells[column.index], "")
        if answer_text is None:
            continue
        records.append(
            _record(
                form_id,
                respondent,
                row_no,
                column.question_id,
                column.question_text,
                answer_text,
                answer_number,
                answered_at,
            )
        )
    return records


# -- questionnaire definitions -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QuestionnaireItem:
    """One item of a questionnaire definition.

    Attributes:
        key: Canonical item key: `<module>.<index>`, `<index>` or the item's id.
        text: The item's text, if the definition gives one.
        scale: Dimension keys joined with `,`, the value stored in the `scale` column.
    """

    key: str
    text: str | None
    scale: str | None


@dataclasses.dataclass(frozen=True, eq=False)
class Questionnaire:
    """A questionnaire definition: items, their dimensions, and the answer scale.

    Attributes:
        id: The definition's `id`, or its file name without extension.
        names: Lower-case names a form may use to refer to it.
        items: Lower-case item key or id -> item.
        modules: Lower-case module names.
        scale_min: Lowest value on the scale, if known.
        scale_max: Highest value on the scale, if known.
        labels: Lower-case answer label -> value on the scale.
    """

    id: str
    names: frozenset[str]
    items: Mapping[str, QuestionnaireItem]
    modules: frozenset[str]
    scale_min: float | None
    scale_max: float | None
    labels: Mapping[str, float]

    def item(self, key: str, allow_bare_index: bool = True) -> QuestionnaireItem | None:
        """Return the item a question key names, or None."""
        lookup = key.strip().lower()
        found = self.items.get(lookup)
        if found is not None:
            return found if allow_bare_index or not lookup.isdigit() else None
        qualified = _MODULE_ITEM.match(lookup)
        if qualified and qualified.group("module") in self.modules:
            return self.items.get(f"{qualified.group('module')}.{int(qualified.group('index'))}")
        if allow_bare_index and lookup.isdigit() and len(self.modules) == 1:
            (module,) = self.modules
            return self.items.get(f"{module}.{int(lookup)}")
        return None

    def value(self, answer_text: str | None, answer_number: float | None) -> float | None:
        """Return an answer's value on the scale, or None when it is not on the scale."""
        number = answer_number
        if number is None and answer_text is not None:
            number = self.labels.get(answer_text.strip().lower())
        if number is None:
            return None
        if self.scale_min is not None and number < self.scale_min:
            return None
        if self.scale_max is not None and number > self.scale_max:
            return None
        return number


_MODULE_ITEM = re.compile(r"^(?P<module>[\w-]+?)\s*(?:\.|\[|_|/)\s*(?P<index>\d+)\]?$")
# Item keys given by index: `3`, `core.3`, `core[3]`, `core_3`.
_INDEX_KEY = re.compile(r"^(?:\d+|[\w-]+?\s*(?:\.|\[|_|/)\s*\d+\]?)$")


def is_definition(document: Mapping[str, Any]) -> bool:
    """Return whether a JSON object is a questionnaire definition rather than a form."""
    if isinstance(document.get("dimensions"), dict):
        return True
    if any(key in document for key in _QUESTION_LIST_KEYS + _FORM_LIST_KEYS):
        return False
    modules = document.get("modules")
    return isinstance(modules, dict) and any(
        isinstance(module, dict) and isinstance(module.get("dimensions"), dict)
        for module in modules.values()
    )


def read_definition(source: FileSource) -> Questionnaire | None:
    """Return the questionnaire definition in a form file, or None if it holds none.

    Unusable definitions are logged and give None, like files that are no definition:
    `parse` reports their problems.
    """
    text = decode_text(source.read_bytes())
    if text.lstrip()[:1] != "{":
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(document, dict) or not is_definition(document):
        return None
    try:
        questionnaire, _ = questionnaire_from_json(document, source.name)
    except DefinitionError as exc:
        logger.warning("questionnaire definition %s is not usable: %s", source.name, exc)
        return None
    return questionnaire


def questionnaire_from_json(
    document: Mapping[str, Any], name: str
) -> tuple[Questionnaire, list[Problem]]:
    """Build a questionnaire from a definition object; see the module doc for its shapes.

    Returns:
        The questionnaire, and problems for dimension entries that name no item.

    Raises:
        DefinitionError: the definition has no items.
    """
    identifier = _first_text(document, ("id", "questionnaire_id", "questionnaireId"))
    identifier = identifier or _file_stem(name)
    names = {identifier.lower(), _file_stem(name).lower(), name.strip().lower()}
    problems: list[Problem] = []
    items: dict[str, QuestionnaireItem] = {}
    modules = document.get("modules")
    module_names: set[str] = set()
    if isinstance(modules, dict):
        for module_key, module in modules.items():
            if isinstance(module, dict):
                module_names.add(str(module_key).lower())
                items.update(_module_items(module, str(module_key), problems))
    else:
        items.update(_module_items(document, None, problems))
    if not items:
        raise DefinitionError(
            f"questionnaire definition {name!r} lists no items: give 'items' (or 'questions') "
            "as a list, at the top or in each module"
        )
    scale_min, scale_max, labels = _scale(document)
    questionnaire = Questionnaire(
        id=identifier,
        names=frozenset(names),
        items=items,
        modules=frozenset(module_names),
        scale_min=scale_min,
        scale_max=scale_max,
        labels=labels,
    )
    return questionnaire, problems


def _module_items(
    module: Mapping[str, Any], module_key: str | None, problems: list[Problem]
) -> dict[str, QuestionnaireItem]:
    raw_items = _first(module, ("items", "questions"))
    if not isinstance(raw_items, list):
        return {}
    dimensions_by_index: dict[int, list[str]] = {}
    dimensions = module.get("dimensions")
    for dimension_key, dimension in (dimensions.items() if isinstance(dimensions, dict) else []):
        indexes = dimension.get("items") if isinstance(dimension, dict) else dimension
        label = f"{module_key}.{dimension_key}" if module_key else str(dimension_key)
        for position in indexes if isinstance(indexes, list) else []:
            if (
                isinstance(position, int)
                and not isinstance(position, bool)
                and 0 <= position < len(raw_items)
            ):
                dimensions_by_index.setdefault(position, []).append(label)
            else:
                problems.append(
                    Problem(
                        "file",
                        f"dimension {label!r} names item {position!r}, but the "
                        f"{'module' if module_key else 'definition'} has items 0 to "
                        f"{len(raw_items) - 1}: fix the 0-based item index",
                    )
                )
    items: dict[str, QuestionnaireItem] = {}
    for position, raw in enumerate(raw_items):
        key = f"{module_key}.{position}" if module_key else str(position)
        item_id = None
        text = raw if isinstance(raw, str) else None
        if isinstance(raw, dict):
            item_id = _first_text(raw, ("id", "key", "code"))
            text = _first_text(raw, ("text", "question", "label", "title"))
        scale = ",".join(sorted(dimensions_by_index.get(position, []))) or None
        item = QuestionnaireItem(key=key, text=text, scale=scale)
        items[key.lower()] = item
        if item_id:
            items.setdefault(item_id.lower(), item)
    return items


def _scale(document: Mapping[str, Any]) -> tuple[float | None, float | None, dict[str, float]]:
    labels: dict[str, float] = {}
    scale = document.get("scale")
    ui = document.get("ui") if isinstance(document.get("ui"), dict) else {}
    raw_labels: Any = None
    scale_min = scale_max = None
    if isinstance(scale, dict):
        scale_min = _number_or_none(scale.get("min"))
        scale_max = _number_or_none(scale.get("max"))
        raw_labels = scale.get("labels")
    elif isinstance(scale, list):
        raw_labels = scale
    if raw_labels is None:
        raw_labels = document.get("scaleLabels", ui.get("scaleLabels"))
    if isinstance(raw_labels, dict):
        for label, value in raw_labels.items():
            number = _number_or_none(value)
            if number is not None:
                labels[str(label).strip().lower()] = number
    elif isinstance(raw_labels, list):
        for entry in raw_labels:
            if isinstance(entry, dict):
                number = _number_or_none(entry.get("value"))
                label = entry.get("label")
                if number is not None and isinstance(label, str):
                    labels[label.strip().lower()] = number
    if labels:
        scale_min = min(labels.values()) if scale_min is None else scale_min
        scale_max = max(labels.values()) if scale_max is None else scale_max
    return scale_min, scale_max, labels


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return _to_number(value)
    return None


def apply_definitions(
    records: Iterable[Mapping[str, Any]],
    definitions: Sequence[Questionnaire],
    form_definition: Questionnaire | None = None,
) -> list[dict[str, Any]]:
    """Map answers to questionnaire items: set `scale`, and `answer_number` on the scale.

    A pure function: it returns new dicts and changes none of its inputs. The matching
    rules are in the module doc.

    Args:
        records: FORM_RECORD rows of one session.
        definitions: The session's questionnaire definitions (see `read_definition`).
        form_definition: A definition that every record answers, as when a form embeds it.
    """
    by_name = {name: definition for definition in definitions for name in definition.names}
    mapped = []
    for record in records:
        row = dict(record)
        match = _match_item(row, definitions, by_name, form_definition)
        if match is not None:
            definition, item = match
            value = definition.value(row.get("answer_text"), row.get("answer_number"))
            if value is not None and item.scale is not None:
                row["scale"] = item.scale
                row["answer_number"] = value
            if item.text and (
                not row.get("question_text") or row["question_text"] == row.get("question_id")
            ):
                row["question_text"] = scrub_text(item.text)
        mapped.append(row)
    return mapped


def _match_item(
    row: Mapping[str, Any],
    definitions: Sequence[Questionnaire],
    by_name: Mapping[str, Questionnaire],
    form_definition: Questionnaire | None,
) -> tuple[Questionnaire, QuestionnaireItem] | None:
    question_id = str(row.get("question_id") or "")
    if not question_id:
        return None
    if form_definition is not None:
        item = form_definition.item(question_id)
        return (form_definition, item) if item is not None else None
    reference, separator, key = question_id.partition(":")
    if separator and reference.strip().lower() in by_name:
        definition = by_name[reference.strip().lower()]
        item = definition.item(key)
        return (definition, item) if item is not None else None
    form_id = str(row.get("form_id") or "").strip().lower()
    if form_id in by_name:
        definition = by_name[form_id]
        item = definition.item(question_id)
        return (definition, item) if item is not None else None
    found = [
        (definition, item)
        for definition in definitions
        if (item := definition.item(question_id, allow_bare_index=False)) is not None
    ]
    return found[0] if len(found) == 1 else None


__all__ = [
    "DEFINITION_FORMAT",
    "FORM_JSON_FORMAT",
    "SURVEY_CSV_FORMAT",
    "DefinitionError",
    "Questionnaire",
    "QuestionnaireItem",
    "apply_definitions",
    "is_definition",
    "parse",
    "parse_time",
    "questionnaire_from_json",
    "read_definition",
]
