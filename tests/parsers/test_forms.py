"""Form parsing: in-game JSON, survey CSV exports, questionnaire definitions."""

from __future__ import annotations

import codecs
import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from playtest_spark.parsers import forms
from playtest_spark.parsers.base import BytesSource, FileContext, ParseResult
from playtest_spark.schemas import FORM_RECORD

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "forms"
ANSWER_FIXTURES = sorted(
    path.name
    for path in FIXTURES.iterdir()
    if "definition" not in path.name and path.name not in ("no_header.csv",)
)
UTC = dt.timezone.utc

ARROW_SCHEMA = pa.schema(
    [
        ("form_id", pa.string()),
        ("respondent_id", pa.string()),
        ("row_no", pa.int64()),
        ("question_id", pa.string()),
        ("question_text", pa.string()),
        ("answer_text", pa.string()),
        ("answer_number", pa.float64()),
        ("answered_at", pa.timestamp("us", tz="UTC")),
        ("scale", pa.string()),
    ]
)


def parse_bytes(data: bytes, name: str, options: dict[str, Any] | None = None) -> ParseResult:
    context = FileContext("s1", f"forms/{name}", "forms", options or {})
    return forms.parse(BytesSource(name, data), context)


def parse_fixture(name: str, options: dict[str, Any] | None = None) -> ParseResult:
    return parse_bytes((FIXTURES / name).read_bytes(), name, options)


def answers(result: ParseResult) -> dict[tuple[int, str], dict[str, Any]]:
    return {(record["row_no"], record["question_id"]): record for record in result.records}


def definition(name: str) -> forms.Questionnaire:
    questionnaire = forms.read_definition(BytesSource(name, (FIXTURES / name).read_bytes()))
    assert questionnaire is not None
    return questionnaire


# -- properties of every answer fixture --------------------------------------------------------


@pytest.mark.parametrize("name", ANSWER_FIXTURES)
def test_parse_fixture_records_match_form_record_schema(name: str) -> None:
    result = parse_fixture(name)

    assert result.record_count > 0
    for record in result.records:
        assert list(record) == FORM_RECORD.fieldNames()
        assert record["question_id"]
        assert len(record["question_id"]) <= forms.MAX_QUESTION_ID_CHARS
    table = pa.Table.from_pylist(list(result.records), schema=ARROW_SCHEMA)
    assert table.num_rows == result.record_count


@pytest.mark.parametrize("name", ANSWER_FIXTURES)
def test_parse_fixture_row_and_question_are_unique(name: str) -> None:
    result = parse_fixture(name)

    assert len(answers(result)) == result.record_count


@pytest.mark.parametrize("name", ANSWER_FIXTURES)
def test_parse_fixture_stores_no_personal_metadata(name: str) -> None:
    result = parse_fixture(name)
    text = json.dumps([list(record.values()) for record in result.records], default=str)

    for secret in (
        "198.51.100",
        "203.0.113",
        "192.0.2.",
        "OrbitClient",
        "RESEARCHER",
        "token=abc",
        "frank",
        "gina",
    ):
        assert secret not in text
    assert "\r" not in text
    assert "\\ufeff" not in text


# -- in-game form JSON -------------------------------------------------------------------------


def test_ingame_form_single_object() -> None:
    result = parse_fixture("ingame_form_single.json")
    rows = answers(result)

    assert result.format == forms.FORM_JSON_FORMAT
    assert result.problems == []
    assert result.record_count == 8
    fun = rows[(1, "mini_geq_definition:core.0")]
    assert fun["form_id"] == "post_match_v3"
    assert fun["respondent_id"] == "p-42"
    assert fun["question_text"] == "I felt content"
    assert fun["answer_text"] == "3"
    assert fun["answer_number"] == 3.0
    assert fun["answered_at"] == dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    assert fun["scale"] is None


def test_ingame_form_list_answer_gives_row_per_option() -> None:
    rows = answers(parse_fixture("ingame_form_single.json"))

    assert rows[(1, "modes[coop]")]["answer_text"] == "coop"
    assert rows[(1, "modes[pvp]")]["question_text"] == "Modes played"


def test_ingame_form_value_kinds() -> None:
    rows = answers(parse_fixture("ingame_form_single.json"))

    assert (rows[(1, "fps_ok")]["answer_text"], rows[(1, "fps_ok")]["answer_number"]) == (
        "false",
        0.0,
    )
    assert (rows[(1, "age")]["answer_text"], rows[(1, "age")]["answer_number"]) == ("34", None)
    assert rows[(1, "comment")]["answer_text"] == (
        'Crashed twice, "again" at C:\\Users\\<user>\\Saved\\crash.dmp'
    )
    assert rows[(1, "late")]["answered_at"] == dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def test_ingame_form_skips_empty_and_na_answers() -> None:
    question_ids = {
        record["question_id"] for record in parse_fixture("ingame_form_single.json").records
    }

    assert "skipped" not in question_ids
    assert "na" not in question_ids


def test_ingame_form_list_with_aliases_and_problems() -> None:
    result = parse_fixture("ingame_forms_list.json")
    rows = answers(result)

    assert result.record_count == 4
    assert rows[(1, "clear")]["form_id"] == "tutorial_feedback"
    assert rows[(1, "clear")]["respondent_id"] == "p-1"
    assert rows[(1, "clear")]["answered_at"] == dt.datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
    assert rows[(2, "clear")]["answer_number"] == 5.0
    assert rows[(2, "clear")]["respondent_id"] == "p-2"
    assert rows[(2, "matrix[sound]")]["answer_number"] == 4.0
    assert [problem.position for problem in result.problems] == ["record 1", "record 3", "record 4"]
    assert "no 'id'" in result.problems[0].reason
    assert "no 'questions' list" in result.problems[1].reason


def test_ingame_form_json_lines() -> None:
    lines = [
        {"form_id": "f", "respondent_id": "a", "questions": [{"id": "q", "answer": 1}]},
        {"form_id": "f", "respondent_id": "b", "questions": [{"id": "q", "answer": 2}]},
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()

    result = parse_bytes(data, "forms.jsonl")

    assert [(r["row_no"], r["respondent_id"], r["answer_number"]) for r in result.records] == [
        (1, "a", 1.0),
        (2, "b", 2.0),
    ]


def test_ingame_form_without_form_id_uses_file_name() -> None:
    data = json.dumps({"questions": [{"id": "q", "answer": "x"}]}).encode()

    assert parse_bytes(data, "exit_survey.json").records[0]["form_id"] == "exit_survey"


def test_invalid_json_is_rejected_with_position() -> None:
    result = parse_bytes(
        b'{"form_id": "f", "questions": [\n  {"id": "q" "answer": 1}]}', "bad.json"
    )

    assert result.record_count == 0
    assert result.problems[0].position == "file"
    assert "line 2 column" in result.problems[0].reason


def test_json_without_form_is_rejected() -> None:
    result = parse_bytes(b'{"settings": {"volume": 3}}', "settings.json")

    assert result.problems[0].position == "file"
    assert "holds no form" in result.problems[0].reason


# -- questionnaire definitions -----------------------------------------------------------------


def test_definition_file_is_recognised_without_rows() -> None:
    result = parse_fixture("mini_geq_definition.json")

    assert result.format == forms.DEFINITION_FORMAT
    assert result.record_count == 0
    assert len(result.problems) == 1
    assert "names item 7" in result.problems[0].reason


def test_read_definition_with_modules() -> None:
    questionnaire = definition("mini_geq_definition.json")

    assert questionnaire.id == "mini_geq_definition"
    assert questionnaire.modules == {"core", "postgame"}
    assert len({item.key for item in questionnaire.items.values()}) == 6
    assert (questionnaire.scale_min, questionnaire.scale_max) == (0.0, 4.0)
    assert questionnaire.labels["extremely"] == 4.0
    assert questionnaire.item("core.1").scale == "core.competence"
    assert questionnaire.item("core[2]").text == "I was interested in the story"
    assert questionnaire.item("postGame_1").scale == "postGame.negative"


def test_read_definition_flat_with_item_ids() -> None:
    questionnaire = definition("flat_definition.json")

    assert questionnaire.id == "sus"
    assert questionnaire.item("sus2").scale == "complexity"
    assert questionnaire.item("0").key == "0"
    assert (questionnaire.scale_min, questionnaire.scale_max) == (1.0, 5.0)


def test_read_definition_of_a_form_is_none() -> None:
    source = BytesSource("f.json", (FIXTURES / "ingame_form_single.json").read_bytes())

    assert forms.read_definition(source) is None


def test_definition_without_items_is_rejected() -> None:
    result = parse_bytes(b'{"dimensions": {"a": [0]}}', "empty_definition.json")

    assert result.format == forms.DEFINITION_FORMAT
    assert "lists no items" in result.problems[0].reason


def test_apply_definitions_by_qualified_question_id() -> None:
    records = parse_fixture("ingame_form_single.json").records
    original = copy.deepcopy(list(records))

    mapped = answers_of(forms.apply_definitions(records, [definition("mini_geq_definition.json")]))

    assert mapped["mini_geq_definition:core.0"]["scale"] == "core.positiveAffect"
    assert mapped["mini_geq_definition:core.0"]["answer_number"] == 3.0
    assert mapped["mini_geq_definition:core.1"]["scale"] == "core.competence"
    assert mapped["mini_geq_definition:core.1"]["answer_number"] == 4.0
    assert mapped["comment"]["scale"] is None
    assert list(records) == original


def test_apply_definitions_by_module_column_in_csv() -> None:
    records = parse_fixture("geq_answers.csv").records
    definitions = [definition("mini_geq_definition.json"), definition("flat_definition.json")]

    mapped = answers_of(forms.apply_definitions(records, definitions))

    assert mapped["core.0"]["scale"] == "core.positiveAffect"
    assert mapped["core.0"]["question_text"] == "I felt content"
    assert mapped["core.1"]["answer_number"] == 3.0
    assert mapped["postGame.1"]["scale"] == "postGame.negative"
    assert mapped["comment"]["scale"] is None


def test_apply_definitions_leaves_values_off_the_scale() -> None:
    records = parse_fixture("geq_answers.csv").records

    mapped = answers_of(forms.apply_definitions(records, [definition("mini_geq_definition.json")]))

    assert mapped["core.3"]["scale"] is None
    assert mapped["core.3"]["answer_number"] == 9.0


def test_apply_definitions_by_form_id_allows_bare_indexes() -> None:
    record = {"form_id": "sus", "question_id": "1", "answer_text": "4", "answer_number": 4.0}

    (mapped,) = forms.apply_definitions([record], [definition("flat_definition.json")])

    assert mapped["scale"] == "complexity"
    assert mapped["question_text"] == "It was needlessly complex"


def test_apply_definitions_ignores_bare_index_without_reference() -> None:
    record = {"form_id": "other", "question_id": "1", "answer_text": "4", "answer_number": 4.0}

    (mapped,) = forms.apply_definitions([record], [definition("flat_definition.json")])

    assert mapped.get("scale") is None


def test_apply_definitions_skips_ambiguous_implicit_match() -> None:
    record = {"form_id": "x", "question_id": "core.0", "answer_text": "2", "answer_number": 2.0}
    first = definition("mini_geq_definition.json")
    second = forms.questionnaire_from_json(
        json.loads((FIXTURES / "mini_geq_definition.json").read_text()), "copy.json"
    )[0]

    (mapped,) = forms.apply_definitions([record], [first, second])

    assert mapped.get("scale") is None


def test_embedded_definition_applies_within_parse() -> None:
    form = {
        "form_id": "sus_form",
        "definition": json.loads((FIXTURES / "flat_definition.json").read_text()),
        "questions": [{"id": "sus1", "answer": 5}, {"id": "sus2", "answer": 9}],
    }

    rows = answers(parse_bytes(json.dumps(form).encode(), "sus.json"))

    assert rows[(1, "sus1")]["scale"] == "usability"
    assert rows[(1, "sus2")]["scale"] is None


def answers_of(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["question_id"]: record for record in records}


# -- survey CSV exports ------------------------------------------------------------------------


def test_limesurvey_yflag_checkbox_columns() -> None:
    result = parse_fixture("limesurvey_yflags_multiline.csv")
    rows = answers(result)

    assert result.format == forms.SURVEY_CSV_FORMAT
    assert result.problems == []
    assert result.record_count == 8
    assert rows[(1, "G01Q02[SQ001]")]["answer_text"] == "Y"
    assert (1, "G01Q02[SQ002]") not in rows
    assert rows[(2, "G01Q02[SQ002]")]["answer_text"] == "Y"
    assert rows[(2, "G01Q02[other]")]["answer_text"] == "Board games"


def test_limesurvey_other_sentinel_and_na() -> None:
    rows = answers(parse_fixture("limesurvey_yflags_multiline.csv"))

    assert rows[(2, "G01Q01")]["answer_text"] == "other"
    assert rows[(2, "G01Q01")]["answer_number"] is None
    assert (1, "G01Q04") not in rows
    assert rows[(2, "G01Q04")]["answer_number"] == 5.0


def test_limesurvey_free_text_with_quotes_commas_and_newlines() -> None:
    rows = answers(parse_fixture("limesurvey_yflags_multiline.csv"))

    assert rows[(1, "G01Q03")]["answer_text"] == 'Great, but "loud" music'
    assert rows[(2, "G01Q03")]["answer_text"] == "Line one\nLine two, with comma"


def test_limesurvey_metadata_is_not_stored_as_answers() -> None:
    question_ids = {
        record["question_id"] for record in parse_fixture("limesurvey_yflags_multiline.csv").records
    }

    assert question_ids == {
        "G01Q01",
        "G01Q02[SQ001]",
        "G01Q02[SQ002]",
        "G01Q02[other]",
        "G01Q03",
        "G01Q04",
    }


def test_limesurvey_submit_time_then_start_time() -> None:
    rows = answers(parse_fixture("limesurvey_yflags_multiline.csv"))

    assert rows[(1, "G01Q01")]["answered_at"] == dt.datetime(2024, 4, 1, 10, 15, tzinfo=UTC)
    assert rows[(2, "G01Q01")]["answered_at"] == dt.datetime(2024, 4, 2, 8, 0, tzinfo=UTC)
    assert rows[(1, "G01Q01")]["respondent_id"] == "1"


def test_fluidsurveys_trailing_space_headers_and_12_hour_times() -> None:
    result = parse_fixture("fluidsurveys_trailing_spaces_12h.csv")
    rows = answers(result)

    assert result.record_count == 3
    assert rows[(1, "q_fun")]["answered_at"] == dt.datetime(2013, 6, 6, 3, 34, 10, tzinfo=UTC)
    assert rows[(2, "q_fun")]["answered_at"] == dt.datetime(2013, 6, 6, 12, 5, tzinfo=UTC)
    assert rows[(2, "comment")]["answer_text"] == "ok,   fine"
    assert rows[(2, "comment")]["question_text"] == "comment"


def test_fluidsurveys_respondent_falls_back_to_tool_id() -> None:
    rows = answers(parse_fixture("fluidsurveys_trailing_spaces_12h.csv"))

    assert rows[(1, "q_fun")]["respondent_id"] == "5001"
    assert rows[(2, "q_fun")]["respondent_id"] == "17"


def test_day_first_dates_semicolons_and_na_cells() -> None:
    result = parse_fixture("dayfirst_semicolon.csv")
    rows = answers(result)

    assert result.record_count == 3
    assert rows[(1, "How fun was it?")]["answered_at"] == dt.datetime(
        2023, 12, 25, 14, 30, tzinfo=UTC
    )
    assert rows[(2, "Would you play again?")]["answered_at"] == dt.datetime(
        2024, 1, 5, 9, 0, tzinfo=UTC
    )
    assert rows[(2, "Would you play again?")]["respondent_id"] == "r2"
    assert (2, "How fun was it?") not in rows
    assert (3, "How fun was it?") not in rows


def test_ambiguous_am_pm_dates_read_month_first() -> None:
    rows = answers(parse_fixture("monthfirst_ampm.csv"))

    assert rows[(1, "Score")]["answered_at"] == dt.datetime(2024, 3, 4, 13, 5, tzinfo=UTC)


def test_date_order_option_decides_ambiguous_dates() -> None:
    rows = answers(parse_fixture("monthfirst_ampm.csv", {"date_order": "dmy"}))

    assert rows[(1, "Score")]["answered_at"] == dt.datetime(2024, 4, 3, 13, 5, tzinfo=UTC)


def test_ragged_rows_are_problems_and_other_rows_load() -> None:
    result = parse_fixture("ragged_rows.csv")

    assert sorted({record["row_no"] for record in result.records}) == [1, 4]
    assert [problem.position for problem in result.problems] == ["row 2", "row 3"]
    assert "(line 3) has 4 cells but the header has 3" in result.problems[0].reason
    assert result.problems[0].excerpt == "2,a,b,c"
    assert "has 2 cells" in result.problems[1].reason


def test_csv_without_header_is_rejected() -> None:
    result = parse_fixture("no_header.csv")

    assert result.record_count == 0
    assert result.problems[0].position == "file"
    assert "no recognisable header" in result.problems[0].reason


def test_qualtrics_header_rows() -> None:
    result = parse_fixture("qualtrics_three_header_rows.csv")
    rows = answers(result)

    assert result.record_count == 2
    assert rows[(1, "Q1")]["question_text"] == "How fun was it?"
    assert rows[(1, "Q1")]["respondent_id"] == "R_abc123"
    assert rows[(1, "Q1")]["answered_at"] == dt.datetime(2024, 2, 1, 10, 5, tzinfo=UTC)
    assert rows[(1, "Q2_1")]["question_text"] == "Which modes? - Coop"


def test_utf16_tab_separated_export() -> None:
    rows = answers(parse_fixture("utf16le_bom_tabs.csv"))

    assert rows[(1, "note")]["answer_text"] == "C:\\Users\\<user>\\Desktop\\shot.png"
    assert rows[(2, "note")]["answer_text"] == "über gut"
    assert rows[(2, "score")]["answer_number"] == 4.0


def test_excel_sep_line_sets_delimiter() -> None:
    rows = answers(parse_bytes(b"sep=;\nid;q1\n1;a,b\n", "excel.csv"))

    assert rows[(1, "q1")]["answer_text"] == "a,b"


def test_code_and_text_header_is_split() -> None:
    rows = answers(parse_bytes(b"id,G01Q01. How old are you?\n1,34\n", "lime.csv"))

    assert rows[(1, "G01Q01")]["question_text"] == "How old are you?"


def test_duplicate_and_long_headers_get_distinct_bounded_ids() -> None:
    long_header = "Q" * 300
    data = f"id,q,q,{long_header}\n1,a,b,c\n".encode()

    rows = parse_bytes(data, "dupes.csv").records

    ids = [record["question_id"] for record in rows]
    assert ids[:2] == ["q", "q#2"]
    assert len(ids[2]) == forms.MAX_QUESTION_ID_CHARS
    assert rows[2]["question_text"] == long_header


@pytest.mark.parametrize("data", [b"", b"  \n"])
def test_empty_form_file_is_rejected(data: bytes) -> None:
    result = parse_bytes(data, "empty.csv")

    assert result.problems[0].position == "file"


def test_binary_form_file_is_rejected() -> None:
    result = parse_bytes(codecs.BOM_UTF8 + b"PK\x03\x04\x00\x00\x00" * 10, "answers.csv")

    assert "not a text form" in result.problems[0].reason


# -- time parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("2013/06/06 1:59:49 AM", "DMY", dt.datetime(2013, 6, 6, 1, 59, 49, tzinfo=UTC)),
        ("2013/06/06 12:05:00 PM", "DMY", dt.datetime(2013, 6, 6, 12, 5, tzinfo=UTC)),
        ("2013/06/07 12:20:30 AM", "DMY", dt.datetime(2013, 6, 7, 0, 20, 30, tzinfo=UTC)),
        ("25/12/2023 14:30", "DMY", dt.datetime(2023, 12, 25, 14, 30, tzinfo=UTC)),
        ("12/25/2023 2:30 PM", "MDY", dt.datetime(2023, 12, 25, 14, 30, tzinfo=UTC)),
        ("05.01.24", "DMY", dt.datetime(2024, 1, 5, tzinfo=UTC)),
        ("2024-05-01T12:30:00+02:00", "DMY", dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
        ("2024-05-01 12:30:00.250", "DMY", dt.datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=UTC)),
        ("2024-05-01T12:30:00Z", "DMY", dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("31/02/2024", "DMY", None),
        ("soon", "DMY", None),
        ("", "DMY", None),
    ],
)
def test_parse_time(text: str, order: str, expected: dt.datetime | None) -> None:
    assert forms.parse_time(text, order) == expected


def test_flat_answer_map_is_a_form() -> None:
    result = parse_bytes(b'{"fun": 4, "comment": "tight controls", "form_id": "exit"}', "exit.json")

    rows = {row["question_id"]: row for row in result.records}
    assert result.problems == []
    assert rows["fun"]["answer_number"] == 4.0
    assert rows["comment"]["answer_text"] == "tight controls"
    assert rows["fun"]["form_id"] == "exit"


def test_answers_object_is_a_form() -> None:
    result = parse_bytes(b'{"form_id": "x", "answers": {"a": 1, "b": "no"}}', "x.json")

    assert [row["question_id"] for row in result.records] == ["a", "b"]
