"""ix_launch_event_user_ts holds the app id as well (user_id, ts, app_id), so that "recently
used" on the grid (launcher/personal.py) and the front-door join's probes
(launcher/signins/stage.py) read the index alone, never a launch row: for a person with 3,000
launches in 90 days the grid's read took 1.4 ms of PostgreSQL's time with a table fetch per
launch, 0.65 ms from the index (bench/README.md, bench_grid.py). About 24 bytes more a launch.

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # on PostgreSQL, on the partitioned table: every partition's index goes and comes with it
    op.drop_index("ix_launch_event_user_ts", table_name="launch_event")
    op.create_index("ix_launch_event_user_ts", "launch_event", ["user_id", "ts", "app_id"])


def downgrade() -> None:
    op.drop_index("ix_launch_event_user_ts", table_name="launch_event")
    op.create_index("ix_launch_event_user_ts", "launch_event", ["user_id", "ts"])
