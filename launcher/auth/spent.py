"""Single-use values -- a sign-in ``state``, a logout token's ``jti`` -- used once, in every worker.

Each use inserts (kind, hash of the value) into ``spent_token``. The primary key refuses a
second insert of the same value, in whichever worker it arrives, so a replay is caught without
a read-then-write race. A row lives until its value could not be presented anyway (the login
cookie's 10 minutes, the logout token's expiry) and is purged some time after.

While the database is down this worker's memory still remembers what it has seen: a replay to
the same worker is refused, and a replay across workers costs at most one more call per worker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time

import sqlalchemy as sa

from launcher.models import SpentToken, table

log = logging.getLogger(__name__)

_SPENT = table(SpentToken)
PURGE_EVERY = 600  # seconds between deletions of expired rows, per worker
MAX_LOCAL = 10_000  # values remembered in memory per worker (expired ones go first)


def _digest(value: str) -> str:
    # the raw value never reaches the database: a jti or state is no secret once used, but
    # a fixed-width hash keeps the column small whatever a provider sends
    return hashlib.sha256(value.encode()).hexdigest()


class SpentTokens:
    """The single-use values this portal has seen; see the module docstring."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._local: dict[tuple[str, str], float] = {}  # (kind, digest) -> expiry (unix s)
        self._lock = threading.Lock()
        self._purged_at = time.monotonic()

    def spend(self, kind: str, value: str, until: float) -> bool:
        """True the first time ``value`` of ``kind`` is used, False on any later use (before
        ``until``, unix seconds). Blocking: call it from a worker thread."""
        key = (kind, _digest(value))
        now = time.time()
        with self._lock:
            if self._local.get(key, 0.0) > now:
                return False
            self._remember(key, until, now)
        expires = dt.datetime.fromtimestamp(until, dt.UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(_SPENT).values(kind=kind, value=key[1], expires_at=expires))
        except sa.exc.IntegrityError:
            return False  # another worker (or this one, before a restart) saw it first
        except sa.exc.SQLAlchemyError as exc:
            log.error("could not record a used %s (remembered in this worker only): %s", kind, exc)
            return True
        if time.monotonic() - self._purged_at > PURGE_EVERY:
            self.purge()
        return True

    def _remember(self, key: tuple[str, str], until: float, now: float) -> None:
        if len(self._local) >= MAX_LOCAL:
            self._local = {k: v for k, v in self._local.items() if v > now}
            while len(self._local) >= MAX_LOCAL:  # a flood of live values: oldest first
                del self._local[next(iter(self._local))]
        self._local[key] = until

    def purge(self) -> None:
        """Forget values that can no longer be presented, in the database and in memory."""
        self._purged_at = time.monotonic()
        now = dt.datetime.now(dt.UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(_SPENT).where(_SPENT.c.expires_at < now))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not purge used sign-in states and logout tokens: %s", exc)
        with self._lock:
            cutoff = now.timestamp()
            self._local = {k: v for k, v in self._local.items() if v > cutoff}
