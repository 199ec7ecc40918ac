"""The run store's writes: a batch of events, heartbeats, crashed runs, pruning.

Each function takes a connection already inside a write transaction (see
:func:`flowcore.runs.database.write`) and issues a few statements per batch, whatever its
size, so that the writer thread keeps up with a 100,000-child map:

1. every run the batch mentions gets a ``flow_runs`` row if it has none (insert, or do
   nothing), so that events arriving before their ``FlowRunStarted`` are kept;
2. ``FlowRunStarted`` fills the row in; ``FlowRunState`` sets the run's state (and its
   ``ended`` when finished); ``Heartbeat`` moves the heartbeat;
3. the ``TaskRunState`` events are folded per (run, task, map index) into one row each and
   upserted in one statement: the latest state wins, ``started`` keeps the first
   ``Running``, ``ended`` the latest finished state;
4. every flow and task state is appended to ``state_transitions``;
5. log lines are inserted up to ``max_log_lines`` per run; the rest are counted in
   ``flow_runs.logs_dropped``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from flowcore.runs.events import (
    FlowRunStarted,
    FlowRunState,
    Heartbeat,
    LogLine,
    RunEvent,
    TaskRunState,
)
from flowcore.runs.schema import flow_runs, log_lines, state_transitions, task_runs
from flowcore.runs.states import FINISHED_STATES, is_finished

__all__ = ["beat", "mark_crashed", "prune", "write_events"]

_CHUNK = 500  # ids per IN (...) clause


def write_events(conn: Connection, events: Sequence[RunEvent], max_log_lines: int) -> None:
    """Write one batch of events (in the order they were submitted)."""
    _ensure_runs(conn, events)
    for event in events:
        if isinstance(event, FlowRunStarted):
            _start(conn, event)
        elif isinstance(event, FlowRunState):
            ended = event.time if is_finished(event.state) else None
            conn.execute(
                flow_runs.update()
                .where(flow_runs.c.run_id == event.run_id)
                .values(state=event.state, message=event.message, ended=ended, heartbeat=event.time)
            )
    beats: dict[str, datetime] = {}
    for e in events:
        if isinstance(e, Heartbeat):
            beats[e.run_id] = max(e.time, beats.get(e.run_id, e.time))
    if beats:
        beat_each(conn, beats)
    _upsert_task_runs(conn, [e for e in events if isinstance(e, TaskRunState)])
    _append_transitions(conn, events)
    _insert_logs(conn, [e for e in events if isinstance(e, LogLine)], max_log_lines)


def beat(conn: Connection, run_ids: Iterable[str], now: datetime) -> None:
    """Stamp the heartbeat of the runs ``run_ids`` (those still unfinished)."""
    beat_each(conn, dict.fromkeys(run_ids, now))


def beat_each(conn: Connection, times: dict[str, datetime]) -> None:
    """Move each run's heartbeat forward to its time (never backwards)."""
    conn.execute(
        flow_runs.update()
        .where(flow_runs.c.run_id == sa.bindparam("rid"))
        .where(flow_runs.c.heartbeat < sa.bindparam("time"))
        .where(flow_runs.c.ended.is_(None))  # not finished
        .values(heartbeat=sa.bindparam("time")),
        [{"rid": run_id, "time": time} for run_id, time in times.items()],
    )


def mark_crashed(conn: Connection, run: Any, message: str, now: datetime) -> None:
    """Set ``run`` (a row of ``queries.stale_runs``) and its unfinished task runs to
    ``Crashed``, unless the run moved on since it was read."""
    changed = conn.execute(
        flow_runs.update()
        .where(flow_runs.c.run_id == run.run_id)
        .where(flow_runs.c.state == run.state)
        .where(flow_runs.c.heartbeat == run.heartbeat)
        .values(state="Crashed", message=message, ended=run.heartbeat)
    ).rowcount
    if not changed:
        return
    unfinished = conn.execute(
        sa.select(task_runs.c.task_slug, task_runs.c.map_index)
        .where(task_runs.c.run_id == run.run_id)
        .where(task_runs.c.state.not_in(FINISHED_STATES))
    ).all()
    task_message = f"{message} while this task run was unfinished"
    conn.execute(
        task_runs.update()
        .where(task_runs.c.run_id == run.run_id)
        .where(task_runs.c.state.not_in(FINISHED_STATES))
        .values(state="Crashed", message=task_message, updated=now, ended=run.heartbeat)
    )
    rows = [_transition(run.run_id, None, -1, "Crashed", message, now)]
    rows += [
        _transition(run.run_id, slug, index, "Crashed", task_message, now)
        for slug, index in unfinished
    ]
    conn.execute(state_transitions.insert(), rows)


def prune(conn: Connection, cutoff: datetime | None, max_runs: int | None) -> int:
    """Delete finished runs started before ``cutoff`` or beyond the newest ``max_runs``;
    returns how many."""
    doomed: set[str] = set()
    if cutoff is not None:
        doomed.update(
            conn.execute(
                sa.select(flow_runs.c.run_id)
                .where(flow_runs.c.started < cutoff)
                .where(flow_runs.c.state.in_(FINISHED_STATES))
            ).scalars()
        )
    if max_runs is not None:
        beyond = conn.execute(
            sa.select(flow_runs.c.run_id, flow_runs.c.state)
            .order_by(flow_runs.c.started.desc(), flow_runs.c.run_id.desc())
            .offset(max_runs)
        ).all()
        doomed.update(run_id for run_id, state in beyond if is_finished(state))
    ids = sorted(doomed)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for table in (log_lines, state_transitions, task_runs, flow_runs):
            conn.execute(table.delete().where(table.c.run_id.in_(chunk)))
    return len(ids)


# -- helpers -------------------------------------------------------------------------------


def _insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that can say ON CONFLICT, for this connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _ensure_runs(conn: Connection, events: Sequence[RunEvent]) -> None:
    first: dict[str, datetime] = {}
    for event in events:
        first.setdefault(event.run_id, event.time)
    rows = [
        {"run_id": run_id, "flow_name": "", "state": "Pending", "started": time,
         "heartbeat": time, "host": "", "pid": 0, "parameters": "{}", "structure": "{}"}
        for run_id, time in first.items()
    ]  # fmt: skip
    if rows:
        conn.execute(_insert(conn, flow_runs).on_conflict_do_nothing(), rows)


def _start(conn: Connection, event: FlowRunStarted) -> None:
    conn.execute(
        flow_runs.update()
        .where(flow_runs.c.run_id == event.run_id)
        .values(
            flow_name=event.flow_name,
            started=event.time,
            heartbeat=event.time,
            host=event.host,
            pid=event.pid,
            parameters=json.dumps(event.parameters, sort_keys=True),
            structure=json.dumps(event.structure),
            source=event.source,
            resumed_from=event.resumed_from,
        )
    )


def _upsert_task_runs(conn: Connection, events: list[TaskRunState]) -> None:
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for e in events:
        row = rows.setdefault(
            (e.run_id, e.task_slug, e.map_index),
            {"run_id": e.run_id, "task_slug": e.task_slug, "map_index": e.map_index,
             "started": None, "ended": None, "result_location": None, "n_map_states": None},
        )  # fmt: skip
        row.update(state=e.state, message=e.message, updated=e.time, run_count=e.run_count)
        if e.state == "Running" and row["started"] is None:
            row["started"] = e.time
        if is_finished(e.state):
            row["ended"] = e.time
        if e.result_location is not None:
            row["result_location"] = e.result_location
        if e.n_map_states is not None:
            row["n_map_states"] = e.n_map_states
    if not rows:
        return
    insert = _insert(conn, task_runs)
    new, old = insert.excluded, task_runs.c
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["run_id", "task_slug", "map_index"],
            set_={
                "state": new.state,
                "message": new.message,
                "updated": new.updated,
                "run_count": new.run_count,
                "started": sa.func.coalesce(old.started, new.started),
                "ended": sa.func.coalesce(new.ended, old.ended),
                "result_location": sa.func.coalesce(new.result_location, old.result_location),
                "n_map_states": sa.func.coalesce(new.n_map_states, old.n_map_states),
            },
        ),
        list(rows.values()),
    )


def _transition(
    run_id: str, slug: str | None, index: int, state: str, message: str | None, time: datetime
) -> dict[str, Any]:
    return {"run_id": run_id, "task_slug": slug, "map_index": index, "state": state,
            "message": message, "time": time}  # fmt: skip


def _append_transitions(conn: Connection, events: Sequence[RunEvent]) -> None:
    rows = [
        _transition(e.run_id, e.task_slug, e.map_index, e.state, e.message, e.time)
        if isinstance(e, TaskRunState)
        else _transition(e.run_id, None, -1, e.state, e.message, e.time)
        for e in events
        if isinstance(e, (TaskRunState, FlowRunState))
    ]
    if rows:
        conn.execute(state_transitions.insert(), rows)


def _insert_logs(conn: Connection, lines: list[LogLine], max_log_lines: int) -> None:
    if not lines:
        return
    by_run: dict[str, list[LogLine]] = {}
    for line in lines:
        by_run.setdefault(line.run_id, []).append(line)
    kept_so_far = dict(
        conn.execute(
            sa.select(flow_runs.c.run_id, flow_runs.c.log_lines).where(
                flow_runs.c.run_id.in_(list(by_run))
            )
        ).all()
    )
    rows: list[dict[str, Any]] = []
    counts: list[dict[str, Any]] = []
    for run_id, run_lines in by_run.items():
        room = max(0, max_log_lines - kept_so_far.get(run_id, 0))
        keep = run_lines[:room]
        rows += [
            {"run_id": run_id, "task_slug": line.task_slug, "map_index": line.map_index,
             "time": line.time, "level": line.level, "logger": line.logger,
             "message": line.message}
            for line in keep
        ]  # fmt: skip
        counts.append({"rid": run_id, "kept": len(keep), "dropped": len(run_lines) - len(keep)})
    if rows:
        conn.execute(log_lines.insert(), rows)
    conn.execute(
        flow_runs.update()
        .where(flow_runs.c.run_id == sa.bindparam("rid"))
        .values(
            log_lines=flow_runs.c.log_lines + sa.bindparam("kept"),
            logs_dropped=flow_runs.c.logs_dropped + sa.bindparam("dropped"),
        ),
        counts,
    )
