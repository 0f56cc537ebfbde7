"""A report table: a title, column names and rows, written as CSV or as text for a terminal.

``columns`` are the stable names (as in the JSON API); ``headers`` are what a reader sees at
the top of the CSV and the page, in the report's language.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Table:
    name: str  # the CSV file name and the ?table= value
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    headers: tuple[str, ...] = ()  # the columns in the report's language; () = the names

    @property
    def heads(self) -> tuple[str, ...]:
        return self.headers or self.columns

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.heads)
        for row in self.rows:
            writer.writerow([_safe_cell(v) for v in row])
        return out.getvalue()


def _safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run: text starting like a formula gets a quote
    (department names come from the identity provider's claims). Numbers stay numbers."""
    if value is None:
        return ""
    formula = isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r")
    if formula and not re.fullmatch(r"[-+]?\d[\d.,]*%?", value):
        return "'" + value
    return value


def as_text(table: Table, number: Callable[[float], str] = str) -> str:
    """The table aligned for a terminal; numbers right-aligned, written by ``number`` (the
    language's separators)."""

    def text(v: Any) -> str:
        if v is None:
            return ""
        return number(v) if isinstance(v, int | float) and not isinstance(v, bool) else str(v)

    cells = [list(table.heads)] + [[text(v) for v in r] for r in table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
    numeric = [
        all(
            isinstance(r[i], int | float) or r[i] is None or str(r[i]).startswith("< ")
            for r in table.rows
        )
        for i in range(len(table.columns))
    ]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                v.rjust(w) if numeric[i] and n else v.ljust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
