"""launcher/i18n.py: language negotiation and the translator, called directly."""

from __future__ import annotations

import pytest

from launcher import i18n


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        pytest.param(None, "nl", "nl", id="no header"),
        pytest.param("", "en", "en", id="empty header"),
        pytest.param("nl-NL,nl;q=0.9,en;q=0.8", "en", "nl", id="Dutch first"),
        pytest.param("en-GB,en;q=0.9,nl;q=0.8", "nl", "en", id="English first"),
        pytest.param("nl;q=0.5,en;q=0.9", "nl", "en", id="by quality, not order"),
        pytest.param("en,nl", "nl", "en", id="equal quality: the first"),
        pytest.param("de-DE,fr;q=0.9", "nl", "nl", id="neither: the default"),
        pytest.param("de,nl;q=0.3", "en", "nl", id="a supported one further down"),
        pytest.param("nl;q=0,en;q=0.1", "nl", "en", id="q=0 means not wanted"),
        pytest.param("nl;q=abc", "en", "en", id="bad quality counts as zero"),
        pytest.param("NL-be", "en", "nl", id="case and region ignored"),
        pytest.param("*", "en", "en", id="wildcard: the default"),
        pytest.param(",,;", "nl", "nl", id="garbage"),
    ],
)
def test_negotiate(header: str | None, default: str, expected: str) -> None:
    assert i18n.negotiate(header, default) == expected


def test_translator_translates_to_dutch_and_leaves_english_and_unknown_text() -> None:
    nl, en = i18n.translator("nl"), i18n.translator("en")
    assert nl("Sign out") == "Uitloggen"
    assert en("Sign out") == "Sign out"
    assert nl("no such message") == "no such message"


def test_every_dutch_string_is_translated() -> None:
    assert all(i18n._NL.values())
