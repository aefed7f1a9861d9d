"""Real logs and forms from other people's tools: counts and exact values per file.

The files live outside the repository, in the folder named by PLAYTEST_CASES_DIR
(default `<repo>/../shared/cases`); the tests skip when it is absent.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest

from playtest_spark.parsers import forms, logs
from playtest_spark.parsers.base import BytesSource, FileContext, ParseResult

pytestmark = pytest.mark.cases

REPO = Path(__file__).resolve().parents[2]
CASES = Path(os.environ.get("PLAYTEST_CASES_DIR", REPO.parent / "shared" / "cases"))
UTC = dt.timezone.utc


def case_path(kind: str, name: str) -> Path:
    path = CASES / kind / name
    if not path.is_file():
        pytest.skip(f"sample file {path} is absent; set PLAYTEST_CASES_DIR to the cases folder")
    return path


def parse_log(name: str) -> ParseResult:
    data = case_path("logs", name).read_bytes()
    return logs.parse(BytesSource(name, data), FileContext("case", f"logs/{name}", "logs"))


def parse_form(name: str) -> ParseResult:
    data = case_path("forms", name).read_bytes()
    return forms.parse(BytesSource(name, data), FileContext("case", f"forms/{name}", "forms"))


def by_line(result: ParseResult) -> dict[int, dict[str, Any]]:
    return {record["line_no"]: record for record in result.records}


def levels(result: ParseResult) -> collections.Counter[str]:
    return collections.Counter(record["level"] for record in result.records)


def all_strings(result: ParseResult) -> list[str]:
    return [
        value for record in result.records for value in record.values() if isinstance(value, str)
    ]


def list_case_files(kind: str) -> list[str]:
    folder = CASES / kind
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


# -- every file --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_case_files("logs") or ["(no log cases)"])
def test_case_log_loads_clean_values(name: str) -> None:
    result = parse_log(name)

    assert result.problems == []
    assert result.record_count > 0
    for value in all_strings(result):
        assert "\r" not in value
        assert "\ufeff" not in value
        assert "Users/USERNAME" not in value
        assert "Users/User/" not in value


@pytest.mark.parametrize("name", list_case_files("forms") or ["(no form cases)"])
def test_case_form_is_recognised(name: str) -> None:
    result = parse_form(name)

    assert result.problems == []
    assert result.format in (forms.SURVEY_CSV_FORMAT, forms.DEFINITION_FORMAT)
    for value in all_strings(result):
        assert "\r" not in value
        assert "\ufeff" not in value


# -- Godot 4 .NET ------------------------------------------------------------------------------

GODOT = "godot4-mono-sts2-multiline-exceptions-head.log"


def test_case_godot_counts() -> None:
    result = parse_log(GODOT)

    assert result.format == "godot"
    assert result.record_count == 243
    assert levels(result) == {"INFO": 155, "ERROR": 79, "WARNING": 9}


def test_case_godot_errors_carry_backtraces() -> None:
    errors = [record for record in parse_log(GODOT).records if record["level"] == "ERROR"]

    assert all(record["stack_trace"] for record in errors)
    assert (
        sum("C# backtrace (most recent call first):" in record["stack_trace"] for record in errors)
        == 78
    )
    fingerprints = collections.Counter(record["fingerprint"] for record in errors)
    assert fingerprints.most_common(1)[0][1] == 76


def test_case_godot_first_error_exact() -> None:
    record = by_line(parse_log(GODOT))[220]

    assert (
        record["message"]
        == "System.NullReferenceException: Object reference not set to an instance of an object."
    )
    assert record["stack_trace"].splitlines()[0] == (
        "at MegaCrit.Sts2.Core.Bindings.MegaSpine.MegaSpineBinding.Call("
        "String methodName, Variant[] args)"
    )
    assert len(record["stack_trace"].splitlines()) == 64


def test_case_godot_game_error_and_debug_block() -> None:
    result = parse_log(GODOT)
    records = by_line(result)

    assert records[337]["level"] == "ERROR"
    assert (
        records[337]["message"]
        == "System.NullReferenceException: Object reference not set to an instance of an object."
    )
    assert records[143]["message"].count("\n") == 49
    assert "Data Directory: C:/Users/<user>/AppData/Roaming" in records[143]["message"]
    assert records[32]["message"].endswith("Success ✓")
    assert result.attributes["gpu"] == "NVIDIA GeForce RTX 4080"
    assert result.attributes["cpu"] == "13th Gen Intel(R) Core(TM) i9-13900KF"
    assert result.attributes["engine_version"] == "4.5.1.m.8.mono.custom_build"


# -- Unity Player.log with crash ---------------------------------------------------------------

UNITY = "unity-player-rimworld-oom-crash-tr.log"


def test_case_unity_counts() -> None:
    result = parse_log(UNITY)

    assert result.format == "unity"
    assert result.record_count == 685
    assert levels(result)["FATAL"] == 1
    assert [record["line_no"] for record in result.records if record["level"] == "ERROR"] == [
        896,
        910,
    ]


def test_case_unity_crash_block_is_one_entry() -> None:
    record = by_line(parse_log(UNITY))[927]

    assert record["level"] == "FATAL"
    assert record["message"] == "Crash!!!"
    lines = record["stack_trace"].splitlines()
    assert len(lines) == 133
    assert lines[-1] == "========== END OF STACKTRACE ==========="
    assert "0x00000223DDCD1CDB (Mono JIT Code) Verse.StaticTextureAtlas:Bake (bool)" in lines
    assert "Geçersiz adrese erişim isteği" in record["stack_trace"]
    assert "UserName: '<user>'" in record["stack_trace"]


def test_case_unity_trailers_dropped_and_stray_cr_removed() -> None:
    result = parse_log(UNITY)
    records = by_line(result)

    assert not any("(Filename:" in record["message"] for record in result.records)
    assert records[14]["message"] == "<RI> Initializing input."
    assert len(records[485]["stack_trace"].splitlines()) == 25
    assert records[19]["message"].startswith(
        "Command line arguments: -savedatafolder=C:\\Users\\<user>\\AppData\\LocalLow"
    )


def test_case_unity_attributes() -> None:
    attributes = parse_log(UNITY).attributes

    assert attributes["engine_version"] == "2019.4.30f1"
    assert attributes["gpu"] == "Radeon RX 570 Series"
    assert attributes["driver"] == "31.0.14043.7000"


# -- Unreal Engine 4 editor with ensures -------------------------------------------------------

UE4 = "unreal-ue4-editor-ensure-crlf-mixed-lf.log"


def test_case_ue4_counts() -> None:
    result = parse_log(UE4)

    assert result.format == "unreal"
    assert result.record_count == 2451
    assert levels(result) == {"INFO": 2095, "WARNING": 338, "ERROR": 11, "DEBUG": 7}


def test_case_ue4_ensures_are_single_records() -> None:
    result = parse_log(UE4)
    ensures = [
        record
        for record in result.records
        if record["category"] == "LogOutputDevice" and record["level"] == "ERROR"
    ]

    assert [(record["line_no"], len(record["stack_trace"].splitlines())) for record in ensures] == [
        (1950, 20),
        (2482, 39),
    ]
    assert ensures[0]["message"].startswith("Ensure condition failed: PlacementEditMode ")
    assert (
        ensures[0]["stack_trace"].splitlines()[0]
        == "0x00007ff98ce921d9 UE4Editor-PlacementMode.dll!UnknownFunction []"
    )
    assert result.records[-1] is ensures[1]


def test_case_ue4_prefix_time_and_script_stack_warning() -> None:
    records = by_line(parse_log(UE4))

    assert records[1]["message"] == "Log file open, 06/09/22 08:34:04"
    assert records[231]["logged_at"] == dt.datetime(2022, 6, 9, 2, 34, 5, 175000, tzinfo=UTC)
    assert records[1945]["level"] == "WARNING"
    assert records[1945]["message"] == "Script Stack (0 frames):"


def test_case_ue4_attributes() -> None:
    attributes = parse_log(UE4).attributes

    assert attributes["engine_version"] == "4.27.2"
    assert attributes["os"] == "Windows 10 (Release 2009)"
    assert attributes["cpu"] == "Intel(R) Core(TM) i7-7700HQ CPU @ 2.80GHz"
    assert attributes["gpu"] == "NVIDIA GeForce GTX 1080 with Max-Q Design"
    assert attributes["driver"] == "512.95"


# -- Unreal Editor for Fortnite ----------------------------------------------------------------

UEFN = "unreal-uefn-editor-bom-head.log"


def test_case_uefn_counts_and_prefix_switch() -> None:
    result = parse_log(UEFN)
    records = by_line(result)

    assert result.format == "unreal"
    assert result.record_count == 3985
    assert levels(result) == {"INFO": 3850, "WARNING": 121, "ERROR": 12, "DEBUG": 2}
    assert records[1190]["logged_at"] is None
    assert records[1191]["logged_at"] == dt.datetime(2025, 1, 15, 18, 39, 20, 916000, tzinfo=UTC)
    assert sum(record["logged_at"] is None for record in result.records) == 1188


def test_case_uefn_continuations_and_privacy() -> None:
    records = by_line(parse_log(UEFN))

    assert records[326]["message"].count("\n") == 2
    assert (
        records[2431]["message"].splitlines()[1]
        == "- Resolution: 0x0@120.0Hz at 0.0% 3D Resolution"
    )
    assert records[2177]["message"] == "Computer: <computer>"
    assert records[2178]["message"] == "User: <user>"
    assert records[3138]["category"] == "LogGameFeatures"
    assert records[3138]["level"] == "ERROR"


def test_case_uefn_attributes() -> None:
    attributes = parse_log(UEFN).attributes

    assert attributes["engine_version"] == "5.6.0"
    assert attributes["gpu"] == "NVIDIA GeForce RTX 4070 Ti"
    assert attributes["cpu"] == "Intel(R) Core(TM) i7-14700K"
    assert attributes["driver"] == "566.14"


# -- forms -------------------------------------------------------------------------------------

FLUID = "fluidsurveys-zombie-playtest-raw-export.csv"
LIME = "limesurvey-game-studies-responses-yflags.csv"
GEQ = "geq-questionnaire-definition-fr.json"


def answers(result: ParseResult) -> dict[tuple[int, str], dict[str, Any]]:
    return {(record["row_no"], record["question_id"]): record for record in result.records}


def test_case_fluidsurveys_counts() -> None:
    result = parse_form(FLUID)

    assert result.format == forms.SURVEY_CSV_FORMAT
    assert result.record_count == 6243
    assert len({record["row_no"] for record in result.records}) == 113
    assert sum(record["question_id"] == "comment" for record in result.records) == 72


def test_case_fluidsurveys_exact_values() -> None:
    rows = answers(parse_form(FLUID))

    assert rows[(2, "pens.0")]["respondent_id"] == "5166891"
    assert rows[(2, "pens.0")]["answer_number"] == 4.0
    assert rows[(2, "pens.0")]["answered_at"] == dt.datetime(2013, 6, 6, 3, 34, 58, tzinfo=UTC)
    assert rows[(5, "dmg.4")]["answer_text"] == "Computer Science"
    assert rows[(5, "dmg.4")]["respondent_id"] == "2"
    assert rows[(5, "dmg.4")]["answered_at"] == dt.datetime(2013, 6, 7, 23, 27, 52, tzinfo=UTC)


def test_case_fluidsurveys_drops_metadata() -> None:
    result = parse_form(FLUID)
    text = "\n".join(all_strings(result))

    assert not any(record["question_id"].startswith("_") for record in result.records)
    assert "192.0.2." not in text
    assert "RESEARCHER" not in text
    assert "c=inbetween" not in text


def test_case_limesurvey_counts() -> None:
    result = parse_form(LIME)

    assert result.record_count == 1430
    assert len({record["row_no"] for record in result.records}) == 100
    assert sum(record["answer_text"] == "Y" for record in result.records) == 400
    assert sum(record["answer_text"] == "other" for record in result.records) == 13


def test_case_limesurvey_sparse_row() -> None:
    rows = [record for record in parse_form(LIME).records if record["respondent_id"] == "63"]

    assert [(row["question_id"], row["answer_text"]) for row in rows] == [
        ("whakgwds", "0"),
        ("whkontexterlernt1", "Y"),
        ("whrolle", "other"),
        ("whanstellung", "0"),
    ]
    assert rows[0]["answered_at"] == dt.datetime(2025, 5, 18, 15, 35, 28, tzinfo=UTC)


def test_case_geq_definition_recognised() -> None:
    result = parse_form(GEQ)
    questionnaire = forms.read_definition(BytesSource(GEQ, case_path("forms", GEQ).read_bytes()))

    assert result.format == forms.DEFINITION_FORMAT
    assert result.record_count == 0
    assert questionnaire is not None
    assert len({item.key for item in questionnaire.items.values()}) == 81
    assert questionnaire.modules == {"postgame", "core", "ingame", "socialpresence"}
    assert (questionnaire.scale_min, questionnaire.scale_max) == (0.0, 4.0)
    assert questionnaire.item("core.1").scale == "core.competence"


def test_case_geq_definition_maps_session_answers() -> None:
    questionnaire = forms.read_definition(BytesSource(GEQ, case_path("forms", GEQ).read_bytes()))
    assert questionnaire is not None
    form = {
        "form_id": "post_session",
        "definition": GEQ,
        "questions": [
            {"id": "core.1", "answer": 3},
            {"id": "inGame.0", "answer": "Tout à fait"},
            {"id": "postGame.16", "answer": 7},
            {"id": "notes", "answer": "fun"},
        ],
    }
    parsed = forms.parse(
        BytesSource("answers.json", json.dumps(form).encode()),
        FileContext("case", "forms/answers.json", "forms"),
    )

    mapped = {
        row["question_id"]: row for row in forms.apply_definitions(parsed.records, [questionnaire])
    }

    stem = "geq-questionnaire-definition-fr"
    assert mapped[f"{stem}:core.1"]["scale"] == "core.competence"
    assert mapped[f"{stem}:core.1"]["question_text"] == "Je me suis senti habile"
    assert mapped[f"{stem}:inGame.0"]["answer_number"] == 4.0
    assert mapped[f"{stem}:inGame.0"]["scale"] == "inGame.sensoryImmersion"
    assert mapped[f"{stem}:postGame.16"]["scale"] is None
    assert mapped["notes"]["scale"] is None
