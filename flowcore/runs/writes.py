"""The run store's writes: a batch of events, the journal and its folding, heartbeats,
crashed runs, pruning.

Each function takes a connection already inside a write transaction (see
:func:`flowcore.runs.database.write`).

**The writer** (:func:`write_events`, :mod:`flowcore.runs.writer`) keeps what it does per
task run tiny: it ran on a thread sharing the GIL with the flow it records, and still does
when its process cannot be started. A batch's flow-level events are written as they
are (a few rows: ``flow_runs``, and the flow's own ``state_transitions``); its task states
and log lines, one or more per task run, go into ``run_journal`` as one row per run: a
pickle of plain tuples (about 0.1 us a task run, in C), with no per-row work in Python.

**Readers fold** (:func:`fold`) the runs they are about to read, and only those: the
runs' journal rows are claimed (deleted, returning their contents) and turned into rows of
the tables, in one transaction, so a row is folded once however many readers there are
(the writer process also folds, at its process's exit, the runs it wrote):

1. every run gets a ``flow_runs`` row if it has none (insert, or do nothing), so that
   events arriving before their ``FlowRunStarted`` are kept;
2. every task state is appended to ``state_transitions`` (a task state that carries
   ``started`` adds the ``Running`` it folds in), many rows per statement;
3. one INSERT ... SELECT then upserts ``task_runs`` from the transitions just appended,
   in SQL: per (run, task, map index) the latest state wins, ``started`` keeps the first
   ``Running``, ``ended`` the latest finished state;
4. log lines are inserted up to ``max_log_lines`` per run; the rest are counted in
   ``flow_runs.logs_dropped``.

The journal never holds anything but tuples of plain values, and reading it refuses
anything else (:class:`_JournalLoader`).
"""

from __future__ import annotations

import functools
import io
import json
import pickle
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from flowcore.runs.events import (
    FlowRunStarted,
    FlowRunState,
    Heartbeat,
    LogLine,
    RunEvent,
    TaskRunState,
    structure_json,
)
from flowcore.runs.schema import flow_runs, log_lines, run_journal, state_transitions, task_runs
from flowcore.runs.states import FINISHED_STATES, is_finished
from flowcore.runs.times import chunks, from_epoch, time_param

__all__ = ["beat", "fold", "mark_crashed", "prune", "write_events"]

# rows per multi-row INSERT: SQLite prepares a statement of a few hundred rows once and
# reuses it; one of thousands costs more to prepare than it saves
_ROWS_PER_INSERT = 200


def write_events(
    conn: Connection,
    events: Sequence[RunEvent],
    states: Sequence[tuple[Any, ...]],
    lines: Sequence[tuple[Any, ...]],
) -> None:
    """Write one batch: the flow runs' own events (``FlowRunStarted``, ``FlowRunState``,
    ``Heartbeat``, in the order they were submitted) into ``flow_runs`` and
    ``state_transitions``, and the task states and log lines (plain tuples of
    :class:`TaskRunState`'s and :class:`LogLine`'s fields, given apart: the store's feeder
    splits them off) into the journal, one row per run (see the module docstring)."""
    flow_events: list[FlowRunStarted | FlowRunState] = []
    beats: dict[str, datetime] = {}
    for e in events:
        if isinstance(e, Heartbeat):
            beats[e.run_id] = max(e.time, beats.get(e.run_id, e.time))
        elif isinstance(e, (FlowRunStarted, FlowRunState)):
            flow_events.append(e)
    earliest = {e[0]: e[3] for e in reversed(lines)}  # run id -> epoch seconds
    earliest.update({e[0]: e[5] for e in reversed(states)})
    first = {run_id: from_epoch(when) for run_id, when in earliest.items()}
    first.update({e.run_id: e.time for e in reversed(flow_events)})
    if first:  # a row for every run (a placeholder before its FlowRunStarted), so reads find it
        _ensure_runs(conn, first)
    for e in flow_events:
        if isinstance(e, FlowRunStarted):
            _start(conn, e)
        else:
            ended = e.time if is_finished(e.state) else None
            conn.execute(
                flow_runs.update()
                .where(flow_runs.c.run_id == e.run_id)
                .values(state=e.state, message=e.message, ended=ended, heartbeat=e.time)
            )
    if beats:
        beat_each(conn, beats)
    _append_transitions(conn, [e for e in flow_events if isinstance(e, FlowRunState)])
    if states or lines:
        conn.execute(run_journal.insert(), _journal_rows(states, lines))


def _journal_rows(
    states: Sequence[tuple[Any, ...]], lines: Sequence[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """One journal row per run: a pickle of its task states and log lines, plain tuples
    (run id first)."""
    run_ids = {e[0] for e in states} | {e[0] for e in lines}
    if len(run_ids) > 1:
        return [
            row
            for run_id in sorted(run_ids)
            for row in _journal_rows(
                [e for e in states if e[0] == run_id], [e for e in lines if e[0] == run_id]
            )
        ]
    blob = pickle.dumps((states, lines), protocol=5)
    return [{"run_id": run_ids.pop(), "events": blob}]


def fold(conn: Connection, max_log_lines: int, run_ids: Sequence[str]) -> int:
    """Move the journal rows of the runs ``run_ids`` into the tables: the task states into
    ``state_transitions`` and ``task_runs``, the log lines into ``log_lines`` (at most
    ``max_log_lines`` per run). The rows are deleted as they are claimed, in the same
    transaction, so two readers folding at once fold each row once. Returns how many
    events were folded."""
    claimed: list[Any] = []
    for chunk in chunks(run_ids):
        claimed += conn.execute(
            sa.delete(run_journal)
            .where(run_journal.c.run_id.in_(list(chunk)))
            .returning(run_journal.c.id, run_journal.c.events)
        ).all()
    if not claimed:
        return 0
    states: list[TaskRunState] = []
    lines: list[LogLine] = []
    for _, blob in sorted(claimed, key=lambda row: row[0]):
        state_rows, line_rows = _JournalLoader(io.BytesIO(blob)).load()
        states += [TaskRunState._make(row) for row in state_rows]
        lines += [LogLine._make(row) for row in line_rows]
    first: dict[str, datetime] = {}
    for line in reversed(lines):
        first[line.run_id] = from_epoch(line.time)
    for state in reversed(states):
        first[state.run_id] = from_epoch(state.time)
    _ensure_runs(conn, first)
    _append_transitions(conn, states)
    _insert_logs(conn, lines, max_log_lines)
    return len(states) + len(lines)


class _JournalLoader(pickle.Unpickler):
    """Journal rows hold tuples of plain values only: anything else in one (a row written
    by something other than this module) is refused, so reading a shared database never
    runs code it names."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"run journal: unexpected object {module}.{name}")


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
    for chunk in chunks(ids):
        for table in (run_journal, log_lines, state_transitions, task_runs, flow_runs):
            conn.execute(table.delete().where(table.c.run_id.in_(chunk)))
    return len(ids)


# -- helpers -------------------------------------------------------------------------------


def _insert_rows(
    conn: Connection, table: sa.Table, keys: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """INSERT ``rows`` (values in ``keys`` order, already in the driver's terms: see
    :func:`flowcore.runs.times.time_param`) into ``table``, many rows per statement, through the driver.

    The writer may share the GIL with the flow it records, so the inserts that grow with
    the flow (transitions, log lines) keep Python's share small: no SQLAlchemy processing
    of each parameter (a few microseconds a row), and multi-row ``VALUES`` rather than
    ``executemany``, whose every row takes and releases the GIL again (a few hundred rows a
    statement: see ``_ROWS_PER_INSERT``). Driver errors become
    SQLAlchemy's, as on every other statement.
    """
    dialect = conn.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    one_row = "(" + ", ".join([mark] * len(keys)) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(keys)}) VALUES "
    per_statement = max(1, min(_ROWS_PER_INSERT, _max_parameters(conn) // len(keys)))
    dbapi = dialect.loaded_dbapi
    cursor = conn.connection.cursor()
    sql = ""
    try:
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            sql = head + ", ".join([one_row] * len(part))
            cursor.execute(sql, list(chain.from_iterable(part)))
    except dbapi.Error as error:
        raise exc.DBAPIError.instance(sql, None, error, dbapi.Error, dialect=dialect) from error
    finally:
        cursor.close()


def _max_parameters(conn: Connection) -> int:
    """How many bound parameters one statement may have."""
    if conn.dialect.name == "postgresql":
        return 65_535
    driver = conn.connection.driver_connection
    getlimit = getattr(driver, "getlimit", None)  # Python >= 3.11
    if getlimit is None:
        return 999
    return int(getlimit(getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", 9)))


def _dialect_module(name: str) -> Any:
    """SQLAlchemy's dialect package for ``name`` (its INSERT can say ON CONFLICT), imported
    when first needed: the PostgreSQL one takes about 0.1 s, which a SQLite reader of the
    CLI should not pay."""
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql
    from sqlalchemy.dialects import sqlite

    return sqlite


def _insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that can say ON CONFLICT, for this connection's dialect."""
    dialect = _dialect_module(conn.dialect.name)
    return dialect.insert(table)


def _ensure_runs(conn: Connection, first: dict[str, datetime]) -> None:
    """A ``flow_runs`` row (a placeholder, until its FlowRunStarted) for each run of
    ``first`` (run id -> the time of its earliest event here) that has none."""
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
            structure=structure_json(event.structure),
            source=event.source,
            resumed_from=event.resumed_from,
        )
    )


_TRANSITION_KEYS = (
    "run_id", "task_slug", "map_index", "state", "message", "time", "run_count",
    "result_location", "n_map_states",
)  # fmt: skip
_LOG_KEYS = ("run_id", "task_slug", "map_index", "time", "level", "logger", "message")


def _transition(
    run_id: str, slug: str | None, index: int, state: str, message: str | None, time: datetime
) -> dict[str, Any]:
    return {"run_id": run_id, "task_slug": slug, "map_index": index, "state": state,
            "message": message, "time": time}  # fmt: skip


def _append_transitions(
    conn: Connection, states: Sequence[FlowRunState] | Sequence[TaskRunState]
) -> None:
    """Append the states, then bring ``task_runs`` up to date from them in SQL."""
    if not states:
        return
    time = time_param(conn.dialect.name)
    rows: list[tuple[Any, ...]] = []
    for e in states:
        if isinstance(e, TaskRunState):
            if e.started is not None:  # a quick task run's Running, folded into its end
                rows.append((e.run_id, e.task_slug, e.map_index, "Running", None,
                             time(from_epoch(e.started)), e.run_count, None, None))  # fmt: skip
            rows.append((e.run_id, e.task_slug, e.map_index, e.state, e.message,
                         time(from_epoch(e.time)), e.run_count, e.result_location,
                         e.n_map_states))  # fmt: skip
        else:
            rows.append((e.run_id, None, -1, e.state, e.message, time(e.time), None, None, None))
    task_runs_of = sorted({e.run_id for e in states if isinstance(e, TaskRunState)})
    before = conn.execute(sa.select(sa.func.max(state_transitions.c.id))).scalar() or 0
    _insert_rows(conn, state_transitions, _TRANSITION_KEYS, rows)
    if task_runs_of:
        derive = _task_runs_from_transitions(conn.dialect.name)
        params: dict[str, Any] = {"after": before}
        if conn.dialect.name != "sqlite":
            params["runs"] = task_runs_of
        conn.execute(derive, params)


@functools.cache
def _task_runs_from_transitions(dialect_name: str) -> Any:
    """Upsert ``task_runs`` from the transitions after id ``:after`` of the runs ``:runs``:
    per task run, the latest state (with its message, time and run count), the first
    ``Running`` (kept when the row has one), the latest finished state, and the latest
    result location and child count given."""
    t = state_transitions
    per_task = sa.select(
        t.c.run_id,
        t.c.task_slug,
        t.c.map_index,
        sa.func.max(t.c.id).label("last_id"),
        sa.func.min(sa.case((t.c.state == "Running", t.c.time))).label("started"),
        sa.func.max(sa.case((t.c.state.in_(sorted(FINISHED_STATES)), t.c.time))).label("ended"),
        sa.func.max(sa.case((t.c.result_location.is_not(None), t.c.id))).label("location_id"),
        sa.func.max(sa.case((t.c.n_map_states.is_not(None), t.c.id))).label("n_map_id"),
    ).where(t.c.id > sa.bindparam("after"), t.c.task_slug.is_not(None))
    if dialect_name != "sqlite":
        # other writers' rows may interleave with this batch's ids; on SQLite the batch
        # holds the write lock, and an IN on run_id would make SQLite use the run_id index
        # (a scan of the whole run on every batch) rather than the id range
        per_task = per_task.where(t.c.run_id.in_(sa.bindparam("runs", expanding=True)))
    batch = per_task.group_by(t.c.run_id, t.c.task_slug, t.c.map_index).cte("batch")
    last, location, n_map = t.alias("last"), t.alias("location"), t.alias("n_map")
    rows = (
        sa.select(
            batch.c.run_id,
            batch.c.task_slug,
            batch.c.map_index,
            last.c.state,
            last.c.message,
            last.c.time,
            batch.c.started,
            batch.c.ended,
            last.c.run_count,
            location.c.result_location,
            n_map.c.n_map_states,
        )  # fmt: skip
        .join_from(batch, last, last.c.id == batch.c.last_id)
        .outerjoin(location, location.c.id == batch.c.location_id)
        .outerjoin(n_map, n_map.c.id == batch.c.n_map_id)
        .where(sa.true())  # SQLite reads "INSERT ... SELECT ... ON CONFLICT" only after a WHERE
    )
    insert = _dialect_module(dialect_name).insert(task_runs)
    columns = [
        "run_id", "task_slug", "map_index", "state", "message", "updated", "started", "ended",
        "run_count", "result_location", "n_map_states",
    ]  # fmt: skip
    insert = insert.from_select(columns, rows)
    new, old = insert.excluded, task_runs.c
    return insert.on_conflict_do_update(
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
    )


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
    time = time_param(conn.dialect.name)
    rows: list[tuple[Any, ...]] = []
    counts: list[dict[str, Any]] = []
    for run_id, run_lines in by_run.items():
        room = max(0, max_log_lines - kept_so_far.get(run_id, 0))
        keep = run_lines[:room]
        rows += [
            (run_id, x.task_slug, x.map_index, time(from_epoch(x.time)), x.level, x.logger,
             x.message)
            for x in keep
        ]  # fmt: skip
        counts.append({"rid": run_id, "kept": len(keep), "dropped": len(run_lines) - len(keep)})
    if rows:
        _insert_rows(conn, log_lines, _LOG_KEYS, rows)
    conn.execute(
        flow_runs.update()
        .where(flow_runs.c.run_id == sa.bindparam("rid"))
        .values(
            log_lines=flow_runs.c.log_lines + sa.bindparam("kept"),
            logs_dropped=flow_runs.c.logs_dropped + sa.bindparam("dropped"),
        ),
        counts,
    )
