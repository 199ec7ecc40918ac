"""The run journal: task states and log lines land as one row per batch, folded later.

A task run of a trivial task takes about 20 us; writing its state as rows of
``state_transitions`` and ``task_runs`` as it happens costs the flow's process about half
of that again (the writer thread shares the GIL with the flow). The writer now appends a
batch's task states and log lines to ``run_journal`` as one row per run (a pickle of plain
tuples), and readers fold pending rows into the tables before they read (see
:mod:`flowcore.runs.writes`). Nothing is moved: existing rows are already folded.

Revision ID: 0003_run_journal
Revises: 0002_listing_indexes_log_counts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_run_journal"
down_revision: str | None = "0002_listing_indexes_log_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_journal",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("events", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_run_journal_run_id", "run_journal", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_journal_run_id", "run_journal")
    op.drop_table("run_journal")
