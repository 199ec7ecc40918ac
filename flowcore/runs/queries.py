"""The run store's reads: small functions from a connection to plain records.

Each takes a connection (in a read transaction, see :func:`flowcore.runs.database.read`)
and returns the records of :mod:`flowcore.runs.records`. Runs are listed newest first
(by ``started``, then id); a run's ``task_counts`` come from one grouped query over its
task runs, for a whole page of runs at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowcore.runs.records import RunInfo, StoredLogLine, TaskRunInfo, Transition
from flowcore.runs.schema import flow_runs, log_lines, state_transitions
from flowcore.runs.schema import task_runs as task_table
from flowcore.runs.states import FAILED_STATES, FINISHED_STATES

__all__ = [
    "count_runs",
    "find_runs",
    "latest_resumable",
    "list_runs",
    "logs",
    "resumes_of",
    "stale_runs",
    "task_runs",
    "transitions",
]

MIN_PREFIX = 4  # characters of a run id that get_run accepts as a prefix
_NEWEST_FIRST = (flow_runs.c.started.desc(), flow_runs.c.run_id.desc())


def list_runs(
    conn: Connection, flow: str | None, state: str | None, limit: int, offset: int
) -> list[RunInfo]:
    query = _filtered(sa.select(flow_runs), flow, state).order_by(*_NEWEST_FIRST)
    rows = conn.execute(query.limit(limit).offset(offset)).all()
    return _run_infos(conn, rows)


def count_runs(conn: Connection, flow: str | None, state: str | None) -> int:
    query = _filtered(sa.select(sa.func.count()).select_from(flow_runs), flow, state)
    return int(conn.execute(query).scalar_one())


def find_runs(conn: Connection, run_id: str) -> list[RunInfo]:
    """The run ``run_id``; else, for a long enough prefix, the runs it starts (at most 11)."""
    rows = conn.execute(sa.select(flow_runs).where(flow_runs.c.run_id == run_id)).all()
    if not rows and len(run_id) >= MIN_PREFIX:
        pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = conn.execute(
            sa.select(flow_runs)
            .where(flow_runs.c.run_id.like(pattern, escape="\\"))
            .order_by(*_NEWEST_FIRST)
            .limit(11)
        ).all()
    return _run_infos(conn, rows)


def resumes_of(conn: Connection, run_id: str) -> list[RunInfo]:
    """The runs that resumed ``run_id``, newest first."""
    rows = conn.execute(
        sa.select(flow_runs).where(flow_runs.c.resumed_from == run_id).order_by(*_NEWEST_FIRST)
    ).all()
    return _run_infos(conn, rows)


def latest_resumable(conn: Connection, flow_name: str) -> RunInfo | None:
    """The newest run of ``flow_name`` that failed or did not finish."""
    row = conn.execute(
        sa.select(flow_runs)
        .where(flow_runs.c.flow_name == flow_name)
        .where(
            sa.or_(flow_runs.c.state.in_(FAILED_STATES), flow_runs.c.state.not_in(FINISHED_STATES))
        )
        .order_by(*_NEWEST_FIRST)
        .limit(1)
    ).first()
    return None if row is None else _run_infos(conn, [row])[0]


def task_runs(conn: Connection, run_id: str) -> list[TaskRunInfo]:
    rows = conn.execute(
        sa.select(task_table)
        .where(task_table.c.run_id == run_id)
        .order_by(task_table.c.task_slug, task_table.c.map_index)
    ).all()
    return [
        TaskRunInfo(r.task_slug, r.map_index, r.state, r.message, r.started, r.ended,
                    r.run_count, r.result_location, r.n_map_states)
        for r in rows
    ]  # fmt: skip


def transitions(
    conn: Connection, run_id: str, task_slug: str | None, map_index: int | None
) -> list[Transition]:
    t = state_transitions.c
    query = sa.select(state_transitions).where(t.run_id == run_id)
    if task_slug is not None:
        query = query.where(t.task_slug == task_slug)
    if map_index is not None:
        query = query.where(t.map_index == map_index)
    rows = conn.execute(query.order_by(t.time, t.id)).all()
    return [Transition(r.task_slug, r.map_index, r.state, r.message, r.time) for r in rows]


def logs(
    conn: Connection, run_id: str, task_slug: str | None, limit: int | None
) -> list[StoredLogLine]:
    """The run's lines oldest first (the last ``limit``), then, unless narrowed to one
    task, a line counting those dropped over ``runs.max_log_lines``, if any."""
    c = log_lines.c
    query = sa.select(log_lines).where(c.run_id == run_id)
    if task_slug is not None:
        query = query.where(c.task_slug == task_slug)
    if limit is not None:
        query = query.order_by(c.time.desc(), c.id.desc()).limit(limit)
    rows = sorted(conn.execute(query).all(), key=lambda r: (r.time, r.id))
    lines = [
        StoredLogLine(r.task_slug, r.map_index, r.time, r.level, r.logger, r.message) for r in rows
    ]
    run = conn.execute(
        sa.select(flow_runs.c.logs_dropped, flow_runs.c.heartbeat).where(
            flow_runs.c.run_id == run_id
        )
    ).first()
    if run is not None and run.logs_dropped and task_slug is None:
        last = conn.execute(sa.select(sa.func.max(c.time)).where(c.run_id == run_id)).scalar()
        dropped = run.logs_dropped
        note = f"{dropped} more log lines were dropped (runs.max_log_lines)"
        lines.append(StoredLogLine(None, -1, last or run.heartbeat, 30, "flowcore.runs", note))
        if limit is not None:
            lines = lines[-limit:] if limit else []
    return lines


def stale_runs(conn: Connection, stale_before: datetime) -> list[Any]:
    """Unfinished runs whose heartbeat is older than ``stale_before``."""
    c = flow_runs.c
    query = (
        sa.select(c.run_id, c.state, c.heartbeat, c.host, c.pid)
        .where(c.state.not_in(FINISHED_STATES))
        .where(c.heartbeat < stale_before)
    )
    return list(conn.execute(query).all())


# -- helpers -------------------------------------------------------------------------------


def _filtered(query: Any, flow: str | None, state: str | None) -> Any:
    if flow is not None:
        query = query.where(flow_runs.c.flow_name == flow)
    if state is not None:
        query = query.where(flow_runs.c.state == state)
    return query


def _run_infos(conn: Connection, rows: Sequence[Any]) -> list[RunInfo]:
    counts: dict[str, dict[str, int]] = {row.run_id: {} for row in rows}
    if counts:
        grouped = conn.execute(
            sa.select(task_table.c.run_id, task_table.c.state, sa.func.count())
            .where(task_table.c.run_id.in_(list(counts)))
            .group_by(task_table.c.run_id, task_table.c.state)
        ).all()
        for run_id, state, n in grouped:
            counts[run_id][state] = int(n)
    return [
        RunInfo(
            run_id=r.run_id, flow_name=r.flow_name, state=r.state, message=r.message,
            started=r.started, ended=r.ended, heartbeat=r.heartbeat, host=r.host, pid=r.pid,
            parameters=json.loads(r.parameters), source=r.source,
            resumed_from=r.resumed_from, structure=json.loads(r.structure),
            task_counts=dict(sorted(counts[r.run_id].items())),
        )
        for r in rows
    ]  # fmt: skip
