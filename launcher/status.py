"""App status: the server checks each app's ``status_url`` in the background, so that a tile
can say "may be down" before the service desk hears it.

- Only URLs an admin wrote in the registry are checked (https, no placeholders: the registry
  refuses anything else, and :func:`check` refuses it again); nothing a user sends ever makes
  the server connect anywhere.
- A check is one GET with bounded time-outs (connect 3 s, 5 s in all) that follows no redirect:
  2xx and 3xx answers are "up", anything else, a time-out or a failed connection "may be down".
- At most one check per app a minute across every worker and replica: the table ``app_status``
  holds one row per app, and a worker claims a check with a conditional UPDATE that moves
  ``last_checked`` forward only when it is older than a minute; the database lets one claim
  through, so two workers never check the same app in the same minute.
- Every worker reads the table every 15 s (one small query) and keeps the result in memory:
  the grid reads that (:meth:`Board.down`), never the database, and Prometheus gets
  ``launcher_app_up{app=…}`` from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from launcher.models import AppStatus, table
from launcher.registry import RegistryHolder

log = logging.getLogger(__name__)

CHECK_EVERY = 60.0  # seconds: at most one check per app this often, across all workers
READ_EVERY = 15.0  # seconds between a worker's rounds (claim what is due, read the table)
CONNECT_TIMEOUT = 3.0  # seconds
TOTAL_TIMEOUT = 5.0  # seconds for the whole check, however slowly the answer trickles in
PARALLEL = 8  # checks at a time in one round
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # "never checked": due at once
T_STATUS = table(AppStatus)


@dataclass(frozen=True)
class Result:
    """The outcome of one check."""

    ok: bool
    status_code: int | None
    detail: str  # "HTTP 503", "no answer within 5 s", "connection refused", …


@dataclass(frozen=True)
class State:
    """An app's row in ``app_status``: the last check and since when its state holds."""

    app_id: str
    ok: bool | None  # None: claimed, not yet answered
    status_code: int | None
    since: dt.datetime
    last_checked: dt.datetime
    detail: str


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; every time here is UTC
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def claim(engine: sa.Engine, app_ids: Iterable[str], now: dt.datetime | None = None) -> list[str]:
    """The apps among ``app_ids`` whose check is due and is now this caller's to do.

    An app not seen before gets its row first (ON CONFLICT DO NOTHING: another worker may
    insert it at the same moment). The claim itself is ``UPDATE … SET last_checked = now WHERE
    last_checked < now - CHECK_EVERY``: when two workers race, the database applies the second
    UPDATE after the first commits (PostgreSQL re-reads the row; SQLite holds one writer at a
    time), its condition no longer holds, and it changes no row.
    """
    now = now or _now()
    wanted = sorted(set(app_ids))
    if not wanted:
        return []
    cutoff = now - dt.timedelta(seconds=CHECK_EVERY)
    claimed = []
    with engine.begin() as conn:
        insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
        rows = [{"app_id": a, "last_checked": _EPOCH, "since": now, "detail": ""} for a in wanted]
        conn.execute(insert(T_STATUS).values(rows).on_conflict_do_nothing())
        for app_id in wanted:
            moved = conn.execute(
                sa.update(T_STATUS)
                .where(T_STATUS.c.app_id == app_id, T_STATUS.c.last_checked < cutoff)
                .values(last_checked=now)
            )
            if moved.rowcount == 1:
                claimed.append(app_id)
    return claimed


def record(engine: sa.Engine, app_id: str, result: Result, now: dt.datetime | None = None) -> None:
    """Store a check's outcome; ``since`` moves only when the state changes (up <-> down)."""
    now = now or _now()
    unchanged = T_STATUS.c.ok.is_not_distinct_from(result.ok)
    with engine.begin() as conn:
        conn.execute(
            sa.update(T_STATUS)
            .where(T_STATUS.c.app_id == app_id)
            .values(
                ok=result.ok,
                status_code=result.status_code,
                detail=result.detail[:200],
                since=sa.case((unchanged, T_STATUS.c.since), else_=now),
            )
        )


def read(engine: sa.Engine) -> dict[str, State]:
    """Every app's last check (one small query: a row per app with a status_url)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(T_STATUS)).all()
    return {
        row.app_id: State(
            app_id=row.app_id,
            ok=row.ok,
            status_code=row.status_code,
            since=_utc(row.since),
            last_checked=_utc(row.last_checked),
            detail=row.detail,
        )
        for row in rows
    }


def new_client(verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The client of one round: no cookies kept, no redirects followed, no proxy or .netrc
    credentials from the environment (trust_env=False), bounded time-outs."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
        trust_env=False,
        verify=verify,
        headers={"User-Agent": "launcher-status-check"},
    )


async def check(client: httpx.AsyncClient, url: str, total: float = TOTAL_TIMEOUT) -> Result:
    """GET ``url`` (https only) and judge the answer by its status; the body is never read."""
    if urlsplit(url).scheme != "https":
        raise ValueError(f"only https status URLs are checked, got {url!r}")
    try:
        with anyio.fail_after(total):
            async with client.stream("GET", url) as response:
                code = response.status_code
    except (TimeoutError, httpx.TimeoutException):
        return Result(False, None, f"no answer within {total:g} s")
    except httpx.HTTPError as exc:
        return Result(False, None, (str(exc) or type(exc).__name__)[:200])
    return Result(200 <= code < 400, code, f"HTTP {code}")


class Board:
    """One worker's view of the app status table and its share of the checks."""

    def __init__(
        self,
        engine: sa.Engine,
        registry: RegistryHolder,
        gauge: Any = None,  # launcher_app_up (launcher/metrics.py)
        *,
        verify: ssl.SSLContext | bool = True,
        total: float = TOTAL_TIMEOUT,
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._gauge = gauge
        self._verify = verify
        self._total = total
        self._states: dict[str, State] = {}
        self._labelled: set[str] = set()
        # down(), asked by every grid page: worked out again only when the table or the
        # registry in use is another
        self._down: tuple[object, object, dict[str, dt.datetime]] = (None, None, {})

    def targets(self) -> dict[str, str]:
        """App id -> status_url, from the registry in use (admin-declared URLs only)."""
        if not self._registry.ready:
            return {}
        return {a.id: a.status_url for a in self._registry.current.apps if a.status_url}

    def states(self) -> dict[str, State]:
        """The table as last read, for the apps that have a status_url now."""
        targets = self.targets()
        return {k: v for k, v in self._states.items() if k in targets}

    def down(self) -> dict[str, dt.datetime]:
        """App id -> since when it may be down, for the apps whose last check failed (the
        caller must not change it)."""
        registry = self._registry.current if self._registry.ready else None
        states, of_registry, found = self._down
        if states is not self._states or of_registry is not registry:
            found = {k: v.since for k, v in self.states().items() if v.ok is False}
            self._down = (self._states, registry, found)
        return found

    async def check_due(self, now: dt.datetime | None = None) -> list[str]:
        """Claim the checks that are due, do them, store the results; the ids checked."""
        targets = self.targets()
        mine = await anyio.to_thread.run_sync(claim, self._engine, targets, now)
        if not mine:
            return []
        limit = asyncio.Semaphore(PARALLEL)

        async def one(client: httpx.AsyncClient, app_id: str) -> None:
            async with limit:
                result = await check(client, targets[app_id], self._total)
            if not result.ok:
                log.info("status check of %s: %s", app_id, result.detail)
            await anyio.to_thread.run_sync(record, self._engine, app_id, result)

        async with new_client(self._verify) as client:
            await asyncio.gather(*(one(client, app_id) for app_id in mine))
        return mine

    async def refresh(self) -> None:
        """Read the table (what every worker and replica found) and update the gauge."""
        self._states = await anyio.to_thread.run_sync(read, self._engine)
        self._set_gauge(self.states())

    def _set_gauge(self, states: Mapping[str, State]) -> None:
        if self._gauge is None:
            return
        known = {k for k, v in states.items() if v.ok is not None}
        for app_id in self._labelled - known:  # its status_url went, or the app did
            with contextlib.suppress(KeyError):
                self._gauge.remove(app_id)
        for app_id in known:
            self._gauge.labels(app_id).set(1 if states[app_id].ok else 0)
        self._labelled = known

    async def run(self, stop: asyncio.Event) -> None:
        """The background task (launcher/app.py): a round every READ_EVERY s until ``stop``."""
        while not stop.is_set():
            try:
                if self.targets():
                    await self.check_due()
                    await self.refresh()
                elif self._labelled:  # the last status_url went: no gauge left behind
                    self._set_gauge({})
            except sa.exc.SQLAlchemyError as exc:
                log.warning("app status unavailable (will retry): %s", exc)
            except Exception:  # a loop that dies silently would freeze every tile's status
                log.exception("app status round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), READ_EVERY)


@dataclass(frozen=True)
class Check:
    """A line of the admin page's list: an app with a status_url and its last check."""

    app_id: str
    url: str
    state: str  # "up", "down" (may be down) or "unchecked"
    since: dt.datetime | None
    last_checked: dt.datetime | None
    detail: str


def overview(targets: Mapping[str, str], states: Mapping[str, State]) -> list[Check]:
    """Every app with a status_url, in registry order, with its last check (if any)."""
    checks = []
    for app_id, url in targets.items():
        s = states.get(app_id)
        if s is None or s.ok is None:
            checks.append(Check(app_id, url, "unchecked", None, None, ""))
            continue
        state = "up" if s.ok else "down"
        checks.append(Check(app_id, url, state, s.since, s.last_checked, s.detail))
    return checks
