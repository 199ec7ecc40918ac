"""Indexes for listing runs by time, flow and state; per-run log line counters.

``flowcore runs ls --flow F --state S`` and retention read flow runs newest first: the
indexes let them do so without a scan. ``log_lines`` and ``logs_dropped`` let the writer
keep ``runs.max_log_lines`` per run without counting a run's lines on every batch, and
record how many lines it dropped; existing runs get their current line count.

Revision ID: 0002_listing_indexes_log_counts
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_listing_indexes_log_counts"
down_revision: str | None = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "flow_runs", sa.Column("log_lines", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column(
        "flow_runs", sa.Column("logs_dropped", sa.Integer, nullable=False, server_default="0")
    )
    op.execute(
        "UPDATE flow_runs SET log_lines = "
        "(SELECT count(*) FROM log_lines WHERE log_lines.run_id = flow_runs.run_id)"
    )
    op.create_index("ix_flow_runs_started", "flow_runs", ["started"])
    op.create_index("ix_flow_runs_flow_name_started", "flow_runs", ["flow_name", "started"])
    op.create_index("ix_flow_runs_state_started", "flow_runs", ["state", "started"])


def downgrade() -> None:
    op.drop_index("ix_flow_runs_state_started", "flow_runs")
    op.drop_index("ix_flow_runs_flow_name_started", "flow_runs")
    op.drop_index("ix_flow_runs_started", "flow_runs")
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("logs_dropped")
        batch.drop_column("log_lines")
