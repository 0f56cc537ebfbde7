"""Interface text, dates and numbers per language, through Babel.

English strings are the message ids. Each other language is a catalogue a translator edits,
``launcher/locale/<lang>/LC_MESSAGES/messages.po`` (``launcher/locale/messages.pot`` is the
template for a new one): adding a language is adding a file, not changing code. Building the
wheel compiles each into a ``messages.mo`` beside it (setup.py, launcher/catalogues.py); a
catalogue is read the first time its language is used: from the ``.mo`` of an installed wheel,
else from the ``.po`` (a source checkout, which has no ``.mo``: nothing to compile first).
Babel itself is imported on first use: a worker that answers launches never needs it.

The language of a page: the person's choice (the ``launcher_lang`` cookie, set by the switch in
the header), else the browser's ``Accept-Language``, else the registry's default.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE = "en"  # the language of the message ids
COOKIE = "launcher_lang"
COOKIE_AGE = 365 * 24 * 60 * 60  # a year: a choice, not a session


def _available() -> tuple[str, ...]:
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob("*/LC_MESSAGES/messages.po"))
    return tuple(dict.fromkeys(["nl", SOURCE, *found]))  # nl first: the portal's home


LANGUAGES = _available()  # a directory listing, not state: the files ship with the package


@cache
def _messages(lang: str) -> dict[str, str]:
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == SOURCE or not path.is_file():
        return {}
    compiled = path.with_suffix(".mo")
    if compiled.is_file():
        from babel.messages.mofile import read_mo

        with compiled.open("rb") as f:
            catalogue = read_mo(f)  # fuzzy entries were left out when it was compiled
    else:
        from babel.messages.pofile import read_po

        with path.open("rb") as f:
            catalogue = read_po(f, locale=lang)
    # untranslated and fuzzy entries fall back to English
    return {
        str(m.id): str(m.string)
        for m in catalogue
        if m.id and m.string and not m.fuzzy and isinstance(m.id, str)
    }


def negotiate(accept_language: str | None, default: str) -> str:
    """The first of LANGUAGES that the browser asks for, by quality; else the portal default."""
    if not accept_language:
        return default
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else default


def choose(cookie: str | None, accept_language: str | None, default: str) -> str:
    """The person's choice when it is a language we have, else :func:`negotiate`."""
    if cookie in LANGUAGES:
        return cookie
    return negotiate(accept_language, default)


def translator(lang: str) -> Callable[[str], str]:
    messages = _messages(lang)
    if not messages:
        return lambda text: text
    return lambda text: messages.get(text, text)


@cache  # every page's header asks; Babel parses the locale each time
def language_name(lang: str) -> str:
    """A language's name in that language ("Nederlands", "English"), for the switch."""
    from babel import Locale

    name: str = Locale.parse(lang).get_display_name(lang) or lang
    return name[:1].upper() + name[1:]


def format_date(value: dt.date, lang: str) -> str:
    """A date as people write it in ``lang`` ("3 mrt 2026", "Mar 3, 2026")."""
    from babel.dates import format_date as _format_date

    return str(_format_date(value, format="medium", locale=lang))


def format_number(value: float, lang: str) -> str:
    """A number with the separators of ``lang`` ("12.345,6" in Dutch)."""
    from babel.numbers import format_decimal

    return str(format_decimal(value, locale=lang))


def format_ago(seconds: float, lang: str) -> str:
    """A time span in words ("5 minuten", "2 hours")."""
    from babel.dates import format_timedelta as _format_timedelta

    return str(_format_timedelta(dt.timedelta(seconds=seconds), locale=lang, threshold=1.0))


MINUS = "\u2212"  # the minus sign, not a hyphen: read as "minus" and as wide as "+"


def format_percent(value: float, lang: str, *, signed: bool = False, digits: int = 1) -> str:
    """A share as a percentage in ``lang`` ("12,5%" in Dutch, "12.5%" in English); ``signed``
    writes "+" or "−" in front, for a change."""
    from babel.numbers import format_percent as _format_percent

    pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    text = str(_format_percent(abs(value) if signed else value, pattern, locale=lang))
    if not signed:
        return text.replace("-", MINUS)
    return ("+" if value > 0 else MINUS if value < 0 else "±") + text


def format_signed(value: float, lang: str, digits: int = 1) -> str:
    """A change as a signed number in ``lang`` ("−3,2", "+1")."""
    from babel.numbers import format_decimal

    text = str(format_decimal(abs(value), format="#,##0." + "0" * digits, locale=lang))
    return ("+" if value > 0 else MINUS if value < 0 else "±") + text
