"""User names are removed from paths and user-name fields before anything is stored."""

from __future__ import annotations

import pytest

from playtest_spark.parsers.privacy import (
    USER_PLACEHOLDER,
    scrub_optional,
    scrub_text,
    scrub_value,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"C:\Users\alice\AppData\x.log", r"C:\Users\<user>\AppData\x.log"),
        ("C:/Users/alice/AppData/x.log", "C:/Users/<user>/AppData/x.log"),
        (r"d:\users\Alice\Desktop", r"d:\users\<user>\Desktop"),
        (r"C:\\Users\\alice\\x.json", r"C:\\Users\\<user>\\x.json"),
        (r"C:\Users\John Smith\Documents", r"C:\Users\<user>\Documents"),
        (r"C:\Documents and Settings\bob\Desktop", r"C:\Documents and Settings\<user>\Desktop"),
        ("/home/carol/.local/share/game", "/home/<user>/.local/share/game"),
        ("/var/home/dave/x", "/var/home/<user>/x"),
        (
            "/Users/erin/Library/Logs/Unity/Player.log",
            "/Users/<user>/Library/Logs/Unity/Player.log",
        ),
        ("saved to C:/Users/frank", "saved to C:/Users/<user>"),
        ("UserName: 'gina'", "UserName: '<user>'"),
        ("UserName: 'Gina Ray', symOptions: 1", "UserName: '<user>', symOptions: 1"),
        ("USERNAME=hank PATH=x", "USERNAME=<user> PATH=x"),
        ("User name = ivy", "User name = <user>"),
    ],
)
def test_scrub_text_replaces_user_names(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "C:/Users/Public/Documents/x",
        r"C:\Users\Default\AppData",
        "/Users/Shared/x",
        "http://example.org/Users/42/profile",
        "User Index 0, Is Virtual User: 0",
        "no paths here",
        "",
    ],
)
def test_scrub_text_keeps_text_without_user_names(text: str) -> None:
    assert scrub_text(text) == text


def test_scrub_text_is_idempotent() -> None:
    once = scrub_text(r"C:\Users\alice\x and /home/bob/y and UserName: 'carol'")

    assert scrub_text(once) == once
    assert once.count(USER_PLACEHOLDER) == 3


def test_scrub_optional_passes_none() -> None:
    assert scrub_optional(None) is None
    assert scrub_optional("/home/bob/x") == "/home/<user>/x"


def test_scrub_value_scrubs_nested_strings_and_keys() -> None:
    value = {"path": "/home/bob/a", "list": ["C:/Users/bob/b", 3, None], "/home/bob/k": True}

    scrubbed = scrub_value(value)

    assert scrubbed == {
        "path": "/home/<user>/a",
        "list": ["C:/Users/<user>/b", 3, None],
        "/home/<user>/k": True,
    }
