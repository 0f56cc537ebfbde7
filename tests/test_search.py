"""launcher/search.py, called directly. tests/test_browser.py runs the same CASES through
static/portal.js, so the server's ``/?q=`` and the script find the same apps."""

from __future__ import annotations

import pytest

from launcher import search

# (query, the app's texts, found?) -- shared with the browser test of static/portal.js
CASES: list[tuple[str, list[str], bool]] = [
    ("epd", ["Elektronisch patiëntendossier", "EPD", "HiX"], True),
    ("EPD", ["HiX", "epd"], True),
    ("clientdossier", ["Cliëntdossier"], True),
    ("clientdossier", ["Cliënt dossier"], True),
    ("cliëntdossier", ["Clientdossier"], True),
    ("CLIËNT", ["cliëntdossier"], True),
    ("roostr", ["Roosterplanning"], True),
    ("roosterplaning", ["Roosterplanning"], True),
    ("temas", ["Microsoft Teams"], True),
    ("outlok", ["Outlook"], True),
    ("xoutlook", ["Outlook"], True),
    ("otulook", ["Outlook"], True),
    ("outl00k", ["Outlook"], False),
    ("epx", ["EPD"], False),
    ("ep", ["EPD"], True),
    ("agenda", ["Outlook", "Mail and calendar", "Mail en agenda"], True),
    ("mail agenda", ["Outlook", "Mail en agenda"], True),
    ("mail rooster", ["Outlook", "Mail en agenda"], False),
    ("e-mail", ["email"], True),
    ("  ", ["anything"], True),
    ("", ["anything"], True),
    ("teams", ["Outlook", "Communication"], False),
    ("communicatie", ["Teams", "Communication", "Communicatie"], True),
    ("naïve café", ["Naive Cafe"], True),
    ("straße", ["Strasse"], False),
    ("qwxyzzy", ["Microsoft Teams", "chat"], False),
]


@pytest.mark.parametrize(("query", "texts", "found"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_matches(query: str, texts: list[str], found: bool) -> None:
    assert search.matches(query, search.haystack(texts)) is found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Cliëntdossier", "clientdossier", id="accent"),
        pytest.param("  Drive, Docs  & Sheets ", "drive docs sheets", id="punctuation"),
        pytest.param("e-mail_adres", "e mail adres", id="hyphen and underscore"),
        pytest.param("ÉÈÊ", "eee", id="capital accents"),
        pytest.param("ﬁle", "file", id="ligature (NFKD)"),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert search.normalise(text) == expected


@pytest.mark.parametrize(
    ("word", "text", "distance"),
    [
        ("roost", "rooster", 0),
        ("roostr", "rooster", 1),
        ("rooster", "roster", 1),
        ("teasm", "teams", 1),
        ("abcd", "xyzw", 4),
        ("", "abc", 0),
    ],
)
def test_prefix_distance(word: str, text: str, distance: int) -> None:
    assert search.prefix_distance(word, text) == distance


def test_haystack_skips_missing_parts() -> None:
    assert search.haystack(["Teams", None, "", "chat"]) == "teams chat"
