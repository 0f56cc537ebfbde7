"""A progress bar for ``launcher import-signins`` on a terminal: one line on stderr per file."""

from __future__ import annotations

import sys
from pathlib import Path

WIDTH = 30


class Bar:
    """Redraws the line of the file being read; :meth:`close` ends the last line."""

    def __init__(self) -> None:
        self._path: Path | None = None

    def __call__(self, path: Path, records: int, done: int, size: int) -> None:
        if self._path is not None and path != self._path:
            sys.stderr.write("\n")  # the previous file's line stays as it ended
        self._path = path
        share = min(1.0, done / size) if size else 1.0
        filled = int(WIDTH * share)
        sys.stderr.write(
            f"\r  {path.name}: [{'#' * filled}{'.' * (WIDTH - filled)}] {share:4.0%} "
            f"{records:,} records"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self._path is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._path = None
