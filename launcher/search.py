"""Forgiving app search: the same rules on the server (``/?q=``) and in the browser.

static/portal.js implements :func:`normalise` and :func:`matches` line for line (its
``launcherSearch`` object); tests/test_search.py holds the table of cases both are tested
against, this module directly and the script in the browser (tests/test_browser.py).

The rules, in order:

1. Normalise: Unicode NFKD, combining marks dropped ("cliënt" -> "client"), lower case, every run
   of characters that are neither letters nor digits becomes one space.
2. The query's words must all match (AND). A word matches when it occurs in the app's text, or
   in that text with the spaces taken out ("clientdossier" finds "Cliënt dossier"), or -- for
   words of four or more characters -- when it is one edit (a letter wrong, missing, extra, or
   two swapped) from the start of a word of the text ("roostr" finds "Rooster"). Shorter words
   must match exactly: one edit in three letters matches nearly everything.
3. An app's text is its name, description, keywords and category name, in both languages, so a
   Dutch speaker on an English page still finds "agenda".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

TYPO_MIN = 4  # words this long may carry one typo
_NOT_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Lower case, without accents, words separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_WORD.sub(" ", bare.lower()).strip()


def haystack(parts: Iterable[str | None]) -> str:
    """An app's searchable text, normalised once (per registry load, not per request)."""
    return normalise(" ".join(p for p in parts if p))


def prefix_distance(word: str, text: str) -> int:
    """The fewest edits (optimal string alignment: substitution, insertion, deletion, swap of
    neighbours) that turn ``word`` into some prefix of ``text``."""
    m, n = len(word), len(text)
    # rows[i][j]: edits between word[:i] and text[:j]
    rows = [[j for j in range(n + 1)]]
    for i in range(1, m + 1):
        row = [i] + [0] * n
        for j in range(1, n + 1):
            cost = 0 if word[i - 1] == text[j - 1] else 1
            best = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and word[i - 1] == text[j - 2] and word[i - 2] == text[j - 1]:
                best = min(best, rows[i - 2][j - 2] + 1)
            row[j] = best
        rows.append(row)
    return min(rows[m])


def _word_matches(word: str, text: str, compact: str, words: list[str]) -> bool:
    if word in text or word in compact:
        return True
    if len(word) < TYPO_MIN:
        return False
    return any(prefix_distance(word, w) <= 1 for w in words if len(w) >= TYPO_MIN - 1)


def matches(query: str, text: str) -> bool:
    """Whether the normalised ``text`` (see :func:`haystack`) answers ``query``."""
    wanted = normalise(query).split()
    if not wanted:
        return True
    compact = text.replace(" ", "")
    words = text.split()
    return all(_word_matches(w, text, compact, words) for w in wanted)
