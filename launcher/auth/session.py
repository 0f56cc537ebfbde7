"""Sessions: a small signed cookie, and server-side revocation without a query per request.

The cookie carries a random session id, the user's display claims and group names, and two
timestamps (created, last seen); never a token. Signing uses itsdangerous with the secret key.

Signing out must kill the session on the server too, in every worker, so that a copied cookie
is useless afterwards. Each sign-out writes a row to the ``revocation`` table; every worker
keeps the live revocations in memory and polls the table for new rows once a second (one
indexed query per second per worker, not one per request). A logout from the provider revokes
by provider session id, or by the provider's raw ``sub`` (kind ``sub``; ``sub_bare`` for only
the sessions that carry no provider session id). ``sub`` is not the stored user id, which may
come from another claim: the table holds a keyed hash of it (``sub_hash``), never the value.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from itsdangerous import BadSignature, Signer

from launcher.auth.user import User
from launcher.models import Revocation, table
from launcher.settings import Settings

log = logging.getLogger(__name__)

_REVOCATION = table(Revocation)
TOUCH_EVERY = 60  # seconds: re-issue the cookie (idle clock) at most once a minute
MAX_COOKIE = 3800  # bytes; browsers drop cookies over 4096
VERIFIED_CACHE = 1024  # cookies already verified and decoded; a hit skips HMAC, base64, JSON


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    user: User
    created: float  # unix seconds, ms precision (a revocation compares against it)
    seen: int
    op_sid: str | None = None  # hash of the provider's session id, for back-channel logout


def op_sid_hash(op_sid: str) -> str:
    return hashlib.sha256(op_sid.encode()).hexdigest()[:32]


class Revocations:
    """The revoked sessions this worker knows about; see the module docstring."""

    # PostgreSQL hands out ids at insert, not at commit: a row can become visible after a
    # higher id was already read. Each poll therefore also re-reads the last two minutes.
    REREAD = dt.timedelta(seconds=120)

    def __init__(
        self,
        engine: sa.Engine,
        poll_interval: float = 1.0,
        sub_hash: Callable[[str], str] | None = None,
    ) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        # the value a "sub" revocation carries for a raw sub; without it those are ignored
        self.sub_hash = sub_hash
        # value -> when the revocation expires (unix seconds); entries go when they expire
        self._sids: dict[str, float] = {}
        self._op_sids: dict[str, float] = {}
        self._users: dict[str, tuple[float, float]] = {}  # user id -> (created before, expiry)
        self._subs: dict[str, tuple[float, float]] = {}  # sub_hash(sub) -> as _users
        self._bare_subs: dict[str, tuple[float, float]] = {}  # the same, sessions without op_sid
        self._last_id = 0
        self._unsaved: list[dict[str, Any]] = []  # written while the database was down
        self._task: asyncio.Task[None] | None = None
        self.healthy = False

    def is_revoked(self, session: Session) -> bool:
        if session.sid in self._sids:
            return True
        if session.op_sid is not None and session.op_sid in self._op_sids:
            return True
        before = self._users.get(session.user.user_id)
        if before is not None and session.created < before[0]:
            return True
        if (self._subs or self._bare_subs) and self.sub_hash is not None:
            key = self.sub_hash(session.user.sub)
            before = self._subs.get(key)
            if session.op_sid is None and key in self._bare_subs:
                before = max(before or (0.0, 0.0), self._bare_subs[key])
            return before is not None and session.created < before[0]
        return False

    def _apply(self, kind: str, value: str, created: dt.datetime, expires: dt.datetime) -> None:
        expiry = _epoch(expires)
        if kind == "sid":
            self._sids[value] = expiry
        elif kind == "op_sid":
            self._op_sids[value] = expiry
        elif kind in ("user", "sub", "sub_bare"):
            users = {"user": self._users, "sub": self._subs, "sub_bare": self._bare_subs}[kind]
            before, old_expiry = users.get(value, (0.0, 0.0))
            users[value] = (max(_epoch(created), before), max(expiry, old_expiry))

    async def revoke(self, kind: str, value: str, lifetime: int) -> None:
        """Revoke now in this worker; persist for the others (retried if the database is down)."""
        now = dt.datetime.now(dt.UTC)
        expires = now + dt.timedelta(seconds=lifetime)
        row = {"kind": kind, "value": value, "created_at": now, "expires_at": expires}
        self._apply(kind, value, now, expires)
        self._unsaved.append(row)
        await anyio.to_thread.run_sync(self._save_unsaved)

    def _save_unsaved(self) -> None:
        if not self._unsaved:
            return
        rows, self._unsaved = self._unsaved, []
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(_REVOCATION), rows)
        except sa.exc.SQLAlchemyError as exc:
            log.error("could not store %d sign-out(s), will retry: %s", len(rows), exc)
            self._unsaved = rows + self._unsaved

    def poll(self) -> None:
        """Fetch revocations written since the last poll (any worker's). Runs in a thread."""
        self._save_unsaved()
        now = dt.datetime.now(dt.UTC)
        r = _REVOCATION.c
        if self._last_id == 0:
            query = sa.select(_REVOCATION).where(r.expires_at > now)
        else:
            query = sa.select(_REVOCATION).where(
                sa.or_(r.id > self._last_id, r.created_at > now - self.REREAD)
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(r.id)).all()
        for row in rows:  # applying a row twice changes nothing
            self._apply(row.kind, row.value, row.created_at, row.expires_at)
            self._last_id = max(self._last_id, row.id)
        self.healthy = True

    def purge(self) -> None:
        """Forget expired revocations, in the database and in this worker's memory."""
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_REVOCATION).where(_REVOCATION.c.expires_at < now))
        cutoff = now.timestamp()
        self._sids = {k: v for k, v in self._sids.items() if v >= cutoff}
        self._op_sids = {k: v for k, v in self._op_sids.items() if v >= cutoff}
        self._users = {k: v for k, v in self._users.items() if v[1] >= cutoff}
        self._subs = {k: v for k, v in self._subs.items() if v[1] >= cutoff}
        self._bare_subs = {k: v for k, v in self._bare_subs.items() if v[1] >= cutoff}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="launcher-revocation-poll")

    async def _run(self) -> None:
        last_purge = time.monotonic()
        while True:
            try:
                await anyio.to_thread.run_sync(self.poll)
                if time.monotonic() - last_purge > 3600:
                    last_purge = time.monotonic()
                    await anyio.to_thread.run_sync(self.purge)
            except sa.exc.SQLAlchemyError as exc:
                if self.healthy:
                    log.error("cannot poll session revocations: %s", exc)
                self.healthy = False
            await asyncio.sleep(self.poll_interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await anyio.to_thread.run_sync(self._save_unsaved)
        if self._unsaved:  # the other workers will not learn of these sign-outs
            log.error(
                "shutting down with %d sign-out(s) not stored (database unavailable); copies "
                "of those session cookies stay valid in other workers until they time out",
                len(self._unsaved),
            )


def _epoch(value: dt.datetime) -> float:
    return value.replace(tzinfo=value.tzinfo or dt.UTC).timestamp()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signs and checks session cookies; applies idle and absolute timeouts and revocations."""

    def __init__(self, settings: Settings, revocations: Revocations) -> None:
        self._signer = Signer(
            settings.secret_keys(), salt="launcher.session", digest_method=hashlib.sha256
        )
        self.idle = settings.session_idle_timeout
        self.absolute = settings.session_absolute_timeout
        self.revocations = revocations
        # Only cookies with a good signature get in, keyed by their exact text; the timeouts
        # and revocations are checked on every request all the same.
        self._verified: dict[str, Session] = {}

    def new(self, user: User, op_sid: str | None, known_groups: Iterable[str] = ()) -> Session:
        now = time.time()
        session = Session(
            sid=secrets.token_urlsafe(18),
            user=user,
            created=round(now, 3),
            seen=int(now),
            op_sid=op_sid_hash(op_sid) if op_sid else None,
        )
        if len(self.dumps(session)) > MAX_COOKIE:
            # Very long group lists (Entra ID can send hundreds) would overflow the cookie:
            # keep only the groups this portal refers to.
            keep = set(known_groups)
            session = replace(
                session, user=replace(user, groups=tuple(g for g in user.groups if g in keep))
            )
        return session

    def dumps(self, session: Session) -> str:
        u = session.user
        payload = [
            session.sid,
            session.created,
            session.seen,
            session.op_sid,
            [u.user_id, u.sub, u.name, u.email, u.upn, u.department, list(u.groups)],
        ]
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return self._signer.sign(_b64(raw)).decode()

    def loads(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The live session in ``cookie``, or None (missing, forged, timed out or revoked)."""
        if not cookie:
            return None
        session = self._verified.get(cookie)
        if session is None:
            session = self._decode(cookie)
            if session is None:
                return None
            if len(self._verified) >= VERIFIED_CACHE:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[cookie] = session
        now = time.time() if now is None else now
        if now - session.created > self.absolute or now - session.seen > self.idle:
            return None
        if self.revocations.is_revoked(session):
            return None
        return session

    def _decode(self, cookie: str) -> Session | None:
        try:
            raw = _unb64(self._signer.unsign(cookie).decode())
            sid, created, seen, op_sid, u = json.loads(raw)
            user = User(u[0], u[1], u[2], u[3], u[4], u[5], tuple(u[6]))
        except (BadSignature, ValueError, TypeError, IndexError):
            return None
        return Session(sid, user, created, seen, op_sid)

    def needs_touch(self, session: Session, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return now - session.seen >= TOUCH_EVERY

    def touched(self, session: Session) -> Session:
        return replace(session, seen=int(time.time()))
