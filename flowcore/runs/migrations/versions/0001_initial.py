"""The first run store schema: flow runs, task runs, state transitions and log lines.

Revision ID: 0001_initial
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "flow_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("flow_name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("started", when, nullable=False),
        sa.Column("ended", when),
        sa.Column("heartbeat", when, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("structure", sa.Text, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("resumed_from", sa.String(64)),
    )
    op.create_table(
        "task_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("task_slug", sa.String(255), primary_key=True),
        sa.Column("map_index", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("updated", when, nullable=False),
        sa.Column("started", when),
        sa.Column("ended", when),
        sa.Column("run_count", sa.Integer, nullable=False),
        sa.Column("result_location", sa.Text),
        sa.Column("n_map_states", sa.Integer),
    )
    op.create_table(
        "state_transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("task_slug", sa.String(255)),
        sa.Column("map_index", sa.Integer, nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("time", when, nullable=False),
        sa.Column("run_count", sa.Integer),
        sa.Column("result_location", sa.Text),
        sa.Column("n_map_states", sa.Integer),
    )
    op.create_index("ix_state_transitions_run_id", "state_transitions", ["run_id"])
    op.create_table(
        "log_lines",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("task_slug", sa.String(255)),
        sa.Column("map_index", sa.Integer, nullable=False),
        sa.Column("time", when, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("logger", sa.String(255), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_log_lines_run_id", "log_lines", ["run_id"])


def downgrade() -> None:
    for table in ("log_lines", "state_transitions", "task_runs", "flow_runs"):
        op.drop_table(table)
