"""The join's window (launcher/signins/join.py), and its edges as SQLite stores them.

Kept apart from the join so that the reading process (launcher/signins/reading.py), which
computes SQLite's edges per record, imports neither SQLAlchemy nor the database code: it
starts in a few tens of milliseconds and a few MB.
"""

from __future__ import annotations

import datetime as dt

BEFORE_S, AFTER_S = 120, 10  # whole seconds (the import's SQL shifts stored times by them)
BEFORE = dt.timedelta(seconds=BEFORE_S)  # a launch up to this long before the sign-in counts
AFTER = dt.timedelta(seconds=AFTER_S)  # and up to this long after it: clocks differ


class Window:
    """SQLite: the stored text of the first and last time of a launch in a sign-in's join
    window (BEFORE before it, AFTER after it). The window is whole minutes before and under a
    minute after, so an edge differs from the sign-in's text in the minute only (and by AFTER
    in the seconds): per minute seen, the text of the minute BEFORE earlier and of the next one
    are kept, and an edge is a format of two strings -- instead of datetime arithmetic and
    ``isoformat`` twice per record, a sixth of the reading (bench/README.md, 2026-12-02). A
    minute not seen before takes the arithmetic, as every record did; exports come in time
    order (Graph's, Keycloak's, Okta's), so that is rare."""

    SHAPED = BEFORE_S % 60 == 0 and 0 <= AFTER_S < 60  # else: the arithmetic
    MAX_MINUTES = 4096  # minutes kept (about 1 MB), then forgotten

    def __init__(self) -> None:
        self.minutes: dict[str, list[str]] = {}  # minute -> [minute BEFORE earlier, next]

    def edges(self, ts: dt.datetime, text: str) -> tuple[str, str]:
        """(lo, hi) of the sign-in at ``ts`` (UTC), stored as ``text``."""
        minute = text[:16]
        known = self.minutes.get(minute)
        second = int(text[17:19])
        if known is not None:
            lo = known[0] + text[16:]  # the same seconds
            if second < 60 - AFTER_S:
                return lo, f"{minute}:{second + AFTER_S:02d}{text[19:]}"
            if known[1]:
                return lo, f"{known[1]}:{second + AFTER_S - 60:02d}{text[19:]}"
        lo = (ts - BEFORE).isoformat(" ", "microseconds")[:26]
        hi = (ts + AFTER).isoformat(" ", "microseconds")[:26]
        if self.SHAPED:
            if known is None:
                if len(self.minutes) >= self.MAX_MINUTES:
                    self.minutes.clear()
                known = self.minutes[minute] = [lo[:16], ""]
            if second >= 60 - AFTER_S:
                known[1] = hi[:16]
        return lo, hi
