"""Who gets the weekly digest: opt-in on /settings, opt-out there or through the mail's link.

The e-mail address is stored only while someone is opted in: opting out deletes the row
(docs/PRIVACY.md). The address and groups are the session's at the moment of opting in, and
are refreshed each time the person saves the setting again.

Unsubscribe links carry a signed token (itsdangerous, salted for this one purpose) holding the
pseudonymous user id: it works without a session, as RFC 8058's one-click POST from a mail
provider must, and cannot be made for anyone else without the secret key.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.dialects import postgresql, sqlite

from launcher.auth.user import User
from launcher.errors import BadRequest
from launcher.models import DigestSubscriber, table

T_SUBSCRIBER = table(DigestSubscriber)
_SALT = "launcher-digest-unsubscribe"


def subscribe(engine: sa.Engine, user: User, lang: str, now: dt.datetime | None = None) -> None:
    """Opt ``user`` in (again): their current address, groups and language are stored."""
    if not user.email or "@" not in user.email:
        raise BadRequest("digest: your account has no e-mail address to send the digest to.")
    values = {
        "user_id": user.user_id,
        "email": user.email,
        "groups": ",".join(user.groups)[:4000],
        "language": lang if lang in ("nl", "en") else "",
        "created_at": now or dt.datetime.now(dt.UTC),
    }
    with engine.begin() as conn:
        insert = (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(
            T_SUBSCRIBER
        ).values(values)
        update = {k: insert.excluded[k] for k in ("email", "groups", "language")}
        conn.execute(insert.on_conflict_do_update(index_elements=["user_id"], set_=update))


def unsubscribe(engine: sa.Engine, user_id: str) -> bool:
    """Opt out: the row and the address in it go. False when they were not opted in."""
    with engine.begin() as conn:
        deleted = conn.execute(sa.delete(T_SUBSCRIBER).where(T_SUBSCRIBER.c.user_id == user_id))
    return bool(deleted.rowcount)


def address(engine: sa.Engine, user_id: str) -> str | None:
    """The address the digest goes to, or None when this person is not opted in."""
    with engine.connect() as conn:
        email = conn.execute(
            sa.select(T_SUBSCRIBER.c.email).where(T_SUBSCRIBER.c.user_id == user_id)
        ).scalar_one_or_none()
    return email


def token_for(secret: str, user_id: str) -> str:
    """The unsubscribe token in this person's digest links."""
    return URLSafeSerializer(secret, salt=_SALT).dumps(user_id)


def user_of(secret: str, token: str) -> str | None:
    """The user id in a genuine unsubscribe token; None for anything else."""
    try:
        user_id = URLSafeSerializer(secret, salt=_SALT).loads(token)
    except BadSignature:
        return None
    return user_id if isinstance(user_id, str) else None
