"""Compiling the message catalogues: each ``launcher/locale/<lang>/LC_MESSAGES/messages.po``
(what a translator edits) into the ``messages.mo`` beside it, as the wheel is built (setup.py's
``build_py``). launcher/i18n.py reads the ``.mo`` when it is there, else the ``.po`` itself (a
source checkout, ``make demo``, has no ``.mo``: .gitignore keeps one made by hand out).

A catalogue that cannot be compiled stops the build with the file, line and message named: a
translation whose ``{placeholders}`` differ from its English one would raise at render time
(``str.format``), so it is caught here, as Babel's own checks are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel.messages.catalog import Catalog

PLACEHOLDER = re.compile(r"\{(\w*)\}")


class CatalogueError(Exception):
    """A ``.po`` that must not ship; the message names the file, line and message."""


def _read(po: Path) -> tuple[Catalog | None, list[str]]:
    """One ``.po`` read, and what is wrong with it as "file:line: what" lines (none: it
    compiles)."""
    from babel.messages.pofile import PoFileError, read_po

    try:
        with po.open("rb") as f:
            catalogue = read_po(f, abort_invalid=True)
    except PoFileError as e:  # its lineno counts from 0
        what, line = str(e).rsplit(" on ", 1)[0], e.line.strip()
        return None, [f"{po}:{e.lineno + 1}: {what}" + (f": {line!r}" if line else "")]
    except UnicodeDecodeError as e:
        return None, [f"{po}: not UTF-8 ({e})"]
    found = [
        f"{po}:{message.lineno}: {error}"
        for message, errors in catalogue.check()
        for error in errors
    ]
    for message in catalogue:
        if not (message.id and message.string and isinstance(message.id, str)):
            continue
        wanted = sorted(PLACEHOLDER.findall(message.id))
        given = sorted(PLACEHOLDER.findall(str(message.string)))
        if wanted != given:
            found.append(
                f"{po}:{message.lineno}: the translation of {message.id!r} has the "
                f"placeholders {given}, the message {wanted}"
            )
    return catalogue, found


def compile_catalogue(po: Path) -> Path:
    """``messages.po`` -> ``messages.mo`` beside it (fuzzy entries left out, as English)."""
    from babel.messages.mofile import write_mo

    catalogue, errors = _read(po)
    if catalogue is None or errors:
        raise CatalogueError("\n".join(errors))
    mo = po.with_suffix(".mo")
    with mo.open("wb") as f:
        write_mo(f, catalogue, use_fuzzy=False)
    return mo


def compile_all(locale_dir: Path) -> list[Path]:
    """Every catalogue under ``locale_dir``; the first that cannot be compiled raises."""
    return [compile_catalogue(po) for po in sorted(locale_dir.glob("*/LC_MESSAGES/messages.po"))]
