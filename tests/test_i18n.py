"""launcher/i18n.py: language negotiation and the translator, called directly."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from launcher import catalogues, i18n
from tests.helpers import ROOT


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


def test_the_dutch_catalogue_is_read_from_its_po_file() -> None:
    messages = i18n._messages("nl")
    assert len(messages) > 50 and all(messages.values())
    assert i18n.LOCALE_DIR.joinpath("nl", "LC_MESSAGES", "messages.po").is_file()


def test_every_message_of_the_template_is_translated_to_dutch() -> None:
    from babel.messages.pofile import read_po

    with i18n.LOCALE_DIR.joinpath("messages.pot").open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    assert wanted - set(i18n._messages("nl")) == set()


def test_every_text_a_template_translates_is_in_the_dutch_catalogue() -> None:
    """Each ``t("…")`` in templates/ (the engage pages' too: their words are in the .po like
    the rest, not in a dict in the code) has its Dutch, and the template names it."""
    from babel.messages.pofile import read_po

    nl = i18n._messages("nl")
    with i18n.LOCALE_DIR.joinpath("messages.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    used = {
        (path.name, text)
        for path in (ROOT / "templates").glob("*")
        for text in re.findall(r'\bt\("((?:[^"\\]|\\.)*)"\)', path.read_text())
    }
    assert len(used) > 100
    assert {(name, text) for name, text in used if text not in nl} == set()
    assert {(name, text) for name, text in used if text not in template} == set()
    assert i18n.translator("nl")("%d launches") % 3 == "3 keer geopend"  # the hallway screen


def test_a_third_language_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text(
        'msgid ""\nmsgstr ""\n"Language: de\\n"\n\nmsgid "Sign out"\nmsgstr "Abmelden"\n\n'
        'msgid "Reports"\nmsgstr ""\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    monkeypatch.setattr(i18n, "LANGUAGES", i18n._available())
    i18n._messages.cache_clear()
    try:
        assert "de" in i18n.LANGUAGES
        assert i18n.negotiate("de-DE,en;q=0.5", "nl") == "de"
        de = i18n.translator("de")
        assert de("Sign out") == "Abmelden"
        assert de("Reports") == "Reports"  # untranslated: English
        assert i18n.language_name("de") == "Deutsch"
    finally:
        i18n._messages.cache_clear()


def test_the_catalogues_compile_and_the_compiled_one_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the wheel's build does (setup.py): every .po into a .mo with the same messages;
    then the .mo is what the portal reads."""
    locale = tmp_path / "locale"
    shutil.copytree(i18n.LOCALE_DIR, locale)
    (mo,) = catalogues.compile_all(locale)
    assert mo == locale / "nl" / "LC_MESSAGES" / "messages.mo"
    from_po = dict(i18n._messages("nl"))
    assert len(from_po) > 250
    # a .po changed after the build is not what an installed portal reads: the .mo is
    po = mo.with_suffix(".po")
    po.write_text(po.read_text(encoding="utf-8").replace('msgstr "Uitloggen"', 'msgstr "Weg"'))
    monkeypatch.setattr(i18n, "LOCALE_DIR", locale)
    i18n._messages.cache_clear()
    try:
        assert i18n._messages("nl") == from_po
        mo.unlink()  # a source checkout: the .po itself
        i18n._messages.cache_clear()
        assert i18n.translator("nl")("Sign out") == "Weg"
    finally:
        i18n._messages.cache_clear()


@pytest.mark.parametrize(
    ("entry", "wanted"),
    [
        pytest.param(
            'msgid "{n} users"\nmsgstr "{m} gebruikers"\n',
            "messages.po:6: the translation of '{n} users' has the placeholders ['m']",
            id="a placeholder renamed",
        ),
        pytest.param(
            'msgid "Imported from {first} to {last}."\nmsgstr "Ingelezen tot {last}."\n',
            "messages.po:6: the translation of 'Imported from {first} to {last}.' has the "
            "placeholders ['last'], the message ['first', 'last']",
            id="a placeholder left out",
        ),
        pytest.param(
            'msgid "Sign out"\nmsgstr "Uitloggen"\nUitloggen\n',
            "messages.po:8: Unknown or misformatted keyword: 'Uitloggen'",
            id="a line that is not a keyword",
        ),
        pytest.param(
            'msgid "Sign out"\n',
            "messages.po:6: missing msgstr for msgid 'Sign out'",
            id="no msgstr",
        ),
    ],
)
def test_a_catalogue_that_would_fail_at_render_time_does_not_compile(
    tmp_path: Path, entry: str, wanted: str
) -> None:
    po = tmp_path / "nl" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text(
        'msgid ""\nmsgstr ""\n"Language: nl\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        + entry,
        encoding="utf-8",
    )
    with pytest.raises(catalogues.CatalogueError) as raised:
        catalogues.compile_all(tmp_path)
    assert wanted in str(raised.value)
    assert str(po) in str(raised.value)
    assert not po.with_suffix(".mo").exists()


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        pytest.param("en", "nl-NL", "en", id="the choice wins over the browser"),
        pytest.param("nl", "en", "nl", id="and the other way round"),
        pytest.param("xx", "en", "en", id="an unknown choice: the browser"),
        pytest.param(None, None, "nl", id="nothing: the default"),
    ],
)
def test_choose(cookie: str | None, header: str | None, expected: str) -> None:
    assert i18n.choose(cookie, header, "nl") == expected


def test_dates_numbers_and_spans_per_language() -> None:
    day = dt.date(2026, 3, 3)
    assert i18n.format_date(day, "nl") == "3 mrt 2026"
    assert i18n.format_date(day, "en") == "Mar 3, 2026"
    assert i18n.format_number(12345.5, "nl") == "12.345,5"
    assert i18n.format_number(12345.5, "en") == "12,345.5"
    assert i18n.format_ago(300, "nl") == "5 minuten"
    assert i18n.format_ago(7200, "en") == "2 hours"
    assert i18n.language_name("nl") == "Nederlands" and i18n.language_name("en") == "English"
