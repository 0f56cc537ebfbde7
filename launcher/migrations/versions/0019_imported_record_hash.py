"""Imported sign-ins found again by a 64-bit hash of their record id, not a unique index on
the text ids; and their record keys stored.

imported_signin gains ``record_hash`` (launcher/signins/record.py ``record_hash``: the first
8 bytes of the md5 of ``provider|record_id`` as a signed 64-bit integer), filled here for the
rows there are, and a plain index on it; the unique constraint on ``(provider, record_id)``
goes. An import still stores each record once: it looks the record up by its hash and
compares the id itself, and imports exclude each other (launcher/signins/importer.py). The
unique index on random text ids was half of a PostgreSQL import's insert (bench/README.md).

``record_key`` is the row's cell key (launcher/reports/cellkey.py ``imported_key``), computed
by the import as it reads and summed by the rollups (it was computed per row in SQL, by an
md5 on PostgreSQL and a Python function on SQLite); filled here for the rows there are.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def _hash(provider: str, record_id: str) -> int:
    """As launcher/signins/record.py record_hash at this revision."""
    digest = hashlib.md5(f"{provider}|{record_id}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _record_key(user_id: str, provider: str, record_id: str) -> int:
    """As launcher/reports/cellkey.py imported_key at this revision."""
    text = f"i|{user_id}|{provider}|{record_id}"
    return int.from_bytes(hashlib.md5(text.encode(), usedforsecurity=False).digest()[:4], "big")


def upgrade() -> None:
    with op.batch_alter_table("imported_signin") as batch:
        for name in ("record_hash", "record_key"):
            batch.add_column(sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        raw: Any = bind.connection.driver_connection
        raw.create_function("launcher_record_hash", 2, _hash, deterministic=True)
        raw.create_function("launcher_record_key", 3, _record_key, deterministic=True)
        op.execute(
            "UPDATE imported_signin SET record_hash = launcher_record_hash(provider, record_id), "
            "record_key = launcher_record_key(user_id, provider, record_id)"
        )
    else:
        op.execute(
            "UPDATE imported_signin SET record_hash = "
            "('x' || substr(md5(provider || '|' || record_id), 1, 16))::bit(64)::bigint, "
            "record_key = ('x' || substr(md5('i|' || user_id || '|' || provider || '|' "
            "|| record_id), 1, 8))::bit(32)::bigint"
        )
    with op.batch_alter_table("imported_signin") as batch:
        batch.drop_constraint("uq_imported_signin_record", type_="unique")
    op.create_index("ix_imported_signin_record_hash", "imported_signin", ["record_hash"])


def downgrade() -> None:
    op.drop_index("ix_imported_signin_record_hash", table_name="imported_signin")
    with op.batch_alter_table("imported_signin") as batch:
        batch.create_unique_constraint("uq_imported_signin_record", ["provider", "record_id"])
        batch.drop_column("record_key")
        batch.drop_column("record_hash")
