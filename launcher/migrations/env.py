"""Alembic environment: the engine comes from launcher.db, never from an ini file."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlmodel import SQLModel

import launcher.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from launcher.partitions import is_partition


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Autogenerate compares the models with the parent tables: a month partition
    (launcher/partitions.py) is no table of the models, and must not be proposed for dropping."""
    return not (type_ == "table" and name is not None and is_partition(name))


engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=include_name,
    )
    context.run_migrations()
