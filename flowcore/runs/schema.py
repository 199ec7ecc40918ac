"""The run store's tables (SQLAlchemy Core), as of the newest migration.

Six tables, no foreign keys (events may arrive in any order, and pruning deletes a run's
rows table by table)::

    flow_runs          one row per flow run: the latest flow state, who drives it
      run_id PK, flow_name, state, message, started, ended, heartbeat, host, pid,
      parameters (JSON text), structure (JSON text: '{}' since structures are stored
      apart; a run recorded before keeps its own), structure_digest (its flow's
      structure in flow_structures), source, resumed_from, log_lines (lines kept),
      logs_dropped (lines over runs.max_log_lines)

    flow_structures    each flow structure (JSON text of its tasks and edges) once
      digest PK (SHA-256 of the text), body

    task_runs          one row per (run, task, map index): its latest state
      (run_id, task_slug, map_index) PK, state, message, updated (time of that state),
      started (first Running), ended (latest finished state), run_count,
      result_location, n_map_states

    state_transitions  every state a flow run or task run entered, appended
      id PK, run_id, task_slug (NULL for the flow run), map_index, state, message, time,
      run_count, result_location, n_map_states (as the task run's event gave them)

    log_lines          the run's log lines, at most runs.max_log_lines per run
      id PK, run_id, task_slug, map_index, time, level, logger, message

    run_journal        task states and log lines not folded into the tables above yet:
      id PK, run_id, events (one batch of one run, see flowcore.runs.writes)

``map_index`` is -1 for an unmapped task and for a mapped task's parent. Times are stored
in UTC: SQLite has no time zones, so they are naive UTC text there
(:mod:`flowcore.runs.times`).

The Alembic revisions in ``flowcore/runs/migrations/versions`` create and change these
tables; each revision spells out its own DDL (a revision is history and must not change
when this module does). ``HEAD`` and ``REVISIONS`` (:mod:`flowcore.runs.revisions`) name
them so that a reader can check a database's revision without importing Alembic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from flowcore.runs.revisions import HEAD, REVISIONS, VERSION_TABLE

__all__ = [
    "HEAD",
    "REVISIONS",
    "VERSION_TABLE",
    "flow_runs",
    "flow_structures",
    "log_lines",
    "metadata",
    "run_journal",
    "state_transitions",
    "task_runs",
]


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A time column: ``timestamptz`` on PostgreSQL, naive UTC text of fixed width on
    SQLite (so text order is time order). The store's reads and writes are SQL text and
    convert times themselves (:mod:`flowcore.runs.times`); the type says what the columns
    are, for the migrations' comparison with this schema.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String())
        return dialect.type_descriptor(sa.DateTime(timezone=True))


metadata = sa.MetaData()

flow_runs = sa.Table(
    "flow_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("flow_name", sa.String(255), nullable=False),
    sa.Column("state", sa.String(64), nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("ended", UTCDateTime),
    sa.Column("heartbeat", UTCDateTime, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("structure", sa.Text, nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("resumed_from", sa.String(64)),
    sa.Column("log_lines", sa.Integer, nullable=False, server_default="0"),
    sa.Column("logs_dropped", sa.Integer, nullable=False, server_default="0"),
    sa.Column("structure_digest", sa.String(64)),
    sa.Index("ix_flow_runs_started", "started"),
    sa.Index("ix_flow_runs_flow_name_started", "flow_name", "started"),
    sa.Index("ix_flow_runs_state_started", "state", "started"),
)

task_runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("task_slug", sa.String(255), primary_key=True),
    sa.Column("map_index", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(64), nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("started", UTCDateTime),
    sa.Column("ended", UTCDateTime),
    sa.Column("run_count", sa.Integer, nullable=False),
    sa.Column("result_location", sa.Text),
    sa.Column("n_map_states", sa.Integer),
)

state_transitions = sa.Table(
    "state_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("task_slug", sa.String(255)),
    sa.Column("map_index", sa.Integer, nullable=False),
    sa.Column("state", sa.String(64), nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("time", UTCDateTime, nullable=False),
    sa.Column("run_count", sa.Integer),
    sa.Column("result_location", sa.Text),
    sa.Column("n_map_states", sa.Integer),
    sa.Index("ix_state_transitions_run_id", "run_id"),
)

log_lines = sa.Table(
    "log_lines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("task_slug", sa.String(255)),
    sa.Column("map_index", sa.Integer, nullable=False),
    sa.Column("time", UTCDateTime, nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("logger", sa.String(255), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_log_lines_run_id", "run_id"),
)

flow_structures = sa.Table(
    "flow_structures",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)

run_journal = sa.Table(
    "run_journal",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("events", sa.LargeBinary, nullable=False),
    sa.Index("ix_run_journal_run_id", "run_id"),
)
