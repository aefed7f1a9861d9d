"""Request validation, session ids, upload paths and block sizes (no server needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from playtest_spark.capture.blocks import (
    MAX_BLOCK_SIZE,
    MAX_BLOCKS,
    MIB,
    MIN_BLOCK_SIZE,
    block_id,
    choose_block_size,
    content_type_of,
    sas_expiry_of,
)
from playtest_spark.capture.errors import FileTooLargeError, RequestFieldError
from playtest_spark.capture.session import (
    OpenedSession,
    SessionRequest,
    UploadGrant,
    new_session_id,
    parse_file_requests,
    validate_upload_path,
)
from playtest_spark.errors import InvalidSessionIdError
from playtest_spark.ids import is_valid_session_id
from tests.capture.helpers import request_body

INVALID_SESSION_IDS = ["a/b", "..", "../x", "a.b", "", "x" * 65, "a b", "a\\b", "é", "a%2Fb"]


def test_session_request_round_trips_through_body() -> None:
    request = SessionRequest.from_body(request_body(attributes={"rig": "lab-3"}))

    again = SessionRequest.from_body(request.to_body())

    assert again == request


def test_session_request_reads_time_without_offset_as_utc() -> None:
    request = SessionRequest.from_body(request_body(device_start="2025-03-01T10:00:00"))

    assert request.device_start.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"game": None}, "game"),
        ({"build": ""}, "build"),
        ({"platform": "   "}, "platform"),
        ({"device_model": 3}, "device_model"),
        ({"player_id": "ann@example.com"}, "player_id"),
        ({"player_id": "p" * 201}, "player_id"),
        ({"game": "Sky\nfarer"}, "game"),
        ({"device_start": None}, "device_start"),
        ({"device_start": "yesterday"}, "device_start"),
        ({"device_start": 1700000000}, "device_start"),
        ({"attributes": ["rig"]}, "attributes"),
        ({"attributes": {"rig": 3}}, "attributes.rig"),
        ({"event_fields": {"type": None}}, "event_fields.type"),
        ({"sesion_id": "x"}, "sesion_id"),
    ],
)
def test_session_request_rejects_invalid_field(overrides: dict, field: str) -> None:
    with pytest.raises(RequestFieldError) as caught:
        SessionRequest.from_body(request_body(**overrides))

    assert caught.value.field == field


def test_session_request_rejects_non_object() -> None:
    with pytest.raises(RequestFieldError) as caught:
        SessionRequest.from_body(["game"])

    assert caught.value.field == "body"


def test_new_session_id_is_valid_and_unique() -> None:
    now = dt.datetime(2025, 3, 1, 23, 59, 59, tzinfo=dt.timezone.utc)

    ids = {new_session_id(now) for _ in range(1000)}

    assert len(ids) == 1000
    assert all(is_valid_session_id(item) for item in ids)
    assert all(item.startswith("20250301T235959Z-") for item in ids)


@pytest.mark.parametrize("session_id", INVALID_SESSION_IDS)
def test_opened_session_rejects_invalid_id(session_id: str) -> None:
    with pytest.raises(InvalidSessionIdError):
        OpenedSession(session_id, dt.date(2025, 3, 1), dt.datetime.now(dt.timezone.utc))


def test_opened_session_directory_uses_utc_date() -> None:
    opened = OpenedSession("s-1", dt.date(2025, 3, 1), dt.datetime.now(dt.timezone.utc))

    assert opened.directory == "sessions/2025-03-01/s-1"


@pytest.mark.parametrize(
    "path",
    ["events/a.jsonl", "recordings/cam1/take.mp4", "_complete.json", "logs/Game (1).log"],
)
def test_validate_upload_path_accepts(path: str) -> None:
    assert validate_upload_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "session.json",
        "../events/a",
        "events/../../x",
        "/events/a",
        "events\\a",
        "events/",
        "other/a.txt",
        "events",
        "events//a",
        "./events/a",
        "events/a\x00",
        "x" * 2000,
        "",
    ],
)
def test_validate_upload_path_rejects(path: str) -> None:
    with pytest.raises(RequestFieldError):
        validate_upload_path(path)


def test_parse_file_requests_names_the_bad_entry() -> None:
    files = [{"path": "logs/a.log", "size": 3}, {"path": "logs/b.log", "size": -1}]

    with pytest.raises(RequestFieldError) as caught:
        parse_file_requests(files)

    assert caught.value.field == "files[1].size"


def test_parse_file_requests_rejects_duplicate_path() -> None:
    files = [{"path": "logs/a.log", "size": 3}, {"path": "logs/a.log", "size": 3}]

    with pytest.raises(RequestFieldError) as caught:
        parse_file_requests(files)

    assert caught.value.field == "files[1].path"


def test_parse_file_requests_applies_size_limit() -> None:
    with pytest.raises(FileTooLargeError) as caught:
        parse_file_requests([{"path": "recordings/a.mp4", "size": 11}], max_file_bytes=10)

    assert caught.value.field == "files[0].size"


def test_upload_grant_hides_urls_in_repr() -> None:
    grant = UploadGrant(
        {"logs/a.log": "http://127.0.0.1/x?sig=secret"}, dt.datetime.now(dt.timezone.utc)
    )

    assert "secret" not in repr(grant)


@pytest.mark.parametrize(
    ("file_size", "expected"),
    [
        (0, MIN_BLOCK_SIZE),
        (100 * MIB, MIN_BLOCK_SIZE),
        (MAX_BLOCKS * MIN_BLOCK_SIZE, MIN_BLOCK_SIZE),
        (MAX_BLOCKS * MIN_BLOCK_SIZE + 1, 5 * MIB),
        (MAX_BLOCKS * MAX_BLOCK_SIZE, MAX_BLOCK_SIZE),
    ],
)
def test_choose_block_size_stays_within_block_limit(file_size: int, expected: int) -> None:
    size = choose_block_size(file_size)

    assert size == expected
    assert -(-file_size // size) <= MAX_BLOCKS


def test_choose_block_size_rejects_file_too_large() -> None:
    with pytest.raises(FileTooLargeError):
        choose_block_size(MAX_BLOCKS * MAX_BLOCK_SIZE + 1)


def test_block_ids_have_one_length() -> None:
    lengths = {len(block_id("0123456789abcdef", index)) for index in (0, 9, 49_999)}

    assert lengths == {len(block_id("0123456789abcdef", 0))}


def test_sas_expiry_of_reads_se_parameter() -> None:
    url = "http://127.0.0.1:1/acct/c/b?se=2025-03-01T10%3A00%3A00Z&sp=cw&sig=x"

    assert sas_expiry_of(url) == dt.datetime(2025, 3, 1, 10, tzinfo=dt.timezone.utc)


def test_content_type_of_known_kinds() -> None:
    assert content_type_of("events/a.jsonl") == "application/x-ndjson"
    assert content_type_of("recordings/a.mp4") == "video/mp4"
    assert content_type_of("logs/noext") == "application/octet-stream"
