"""Flow structures stored once: ``flow_structures``, and ``flow_runs.structure_digest``.

A flow run recorded the JSON of its flow's structure (tasks, edges) in its own
``flow_runs.structure``: 40-70 KB a run for a flow of 500 tasks, the same text every run,
so a store of a thousand runs held tens of megabytes of copies, and every run's writing
wrote one more. A structure is now written once, under the SHA-256 of its text, to
``flow_structures``, and a run names it by ``structure_digest``; its own ``structure``
column keeps ``'{}'``. Nothing is moved: a run recorded before keeps its text (readers
take the stored structure when there is one, else the run's own column).

Revision ID: 0004_flow_structures
Revises: 0003_run_journal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_flow_structures"
down_revision: str | None = "0003_run_journal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_structures",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.add_column("flow_runs", sa.Column("structure_digest", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("flow_runs") as batch:
        batch.drop_column("structure_digest")
    op.drop_table("flow_structures")
