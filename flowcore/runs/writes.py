"""The run store's writes: a batch of events, the journal and its folding, heartbeats,
crashed runs, pruning.

Each function takes a :class:`Changes`, a connection already inside a write transaction
(see :meth:`flowcore.runs.store.RunStore.write`), and runs SQL text that SQLite and
PostgreSQL both read: on a SQLite file the standard library's ``sqlite3``
(:class:`SqliteChanges`), so that the writer process and the CLI do not import SQLAlchemy,
on PostgreSQL a SQLAlchemy connection (:class:`AlchemyChanges`).

**The writer** (:func:`write_events`, :mod:`flowcore.runs.writer`) keeps what it does per
task run tiny: it ran on a thread sharing the GIL with the flow it records, and still does
when its process cannot be started. A batch's flow-level events are written as they
are (a few rows: ``flow_runs``, and the flow's own ``state_transitions``); its task states
and log lines, one or more per task run, come packed by the store's feeder as one
``run_journal`` row per run (:mod:`flowcore.runs.journal`: a pickle of plain tuples,
about 0.1 us a task run, in C), and are inserted as they are: the writer neither
unpacks nor looks at them.

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
anything else (:func:`flowcore.runs.journal.unpack`).
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING, Any

from flowcore.runs import journal
from flowcore.runs.events import (
    FlowRunStarted,
    FlowRunState,
    Heartbeat,
    LogLine,
    RunEvent,
    TaskRunState,
    structure_digest,
    structure_json,
)
from flowcore.runs.journal import Row
from flowcore.runs.sql import in_list, literals
from flowcore.runs.states import FINISHED_STATES, is_finished
from flowcore.runs.times import chunks, epoch_param, from_epoch, time_param

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "AlchemyChanges",
    "Changes",
    "SqliteChanges",
    "beat",
    "fold",
    "mark_crashed",
    "prune",
    "write_events",
]

# rows per multi-row INSERT: SQLite prepares a statement of a few hundred rows once and
# reuses it; one of thousands costs more to prepare than it saves
_ROWS_PER_INSERT = 200


class Changes:
    """A connection inside a write transaction: runs a write's SQL text (``:name``
    parameters, which SQLite and PostgreSQL both read; a list of parameter dicts runs the
    statement once per dict). See the two kinds below."""

    dialect = "sqlite"

    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        """Run ``sql``; how many rows it changed."""
        raise NotImplementedError

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        raise NotImplementedError

    def insert_rows(self, table: str, keys: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """INSERT ``rows`` (values in ``keys`` order, in the driver's terms: see
        :func:`flowcore.runs.times.time_param`) into ``table``, many rows per statement.

        The inserts that grow with a flow (transitions, log lines) keep Python's share
        small: multi-row ``VALUES`` through the driver's cursor, with no processing of
        each parameter, rather than ``executemany``, whose every row takes and releases
        the GIL again (a few hundred rows a statement: see ``_ROWS_PER_INSERT``)."""
        one_row = "(" + ", ".join([self._mark] * len(keys)) + ")"
        head = f"INSERT INTO {table} ({', '.join(keys)}) VALUES "
        per_statement = max(1, min(_ROWS_PER_INSERT, self._max_parameters() // len(keys)))
        cursor = self._cursor()
        try:
            for start in range(0, len(rows), per_statement):
                part = rows[start : start + per_statement]
                cursor.execute(head + ", ".join([one_row] * len(part)), list(chain(*part)))
        finally:
            cursor.close()

    def time(self, value: datetime) -> Any:
        """A time as a parameter: what the column holds."""
        return time_param(self.dialect)(value)

    _mark = "?"  # the driver's parameter mark, for insert_rows

    def _cursor(self) -> Any:
        raise NotImplementedError

    def _max_parameters(self) -> int:
        raise NotImplementedError


class SqliteChanges(Changes):
    """Changes on a ``sqlite3`` connection (:func:`flowcore.runs.sql.open_sqlite`), inside
    the ``BEGIN IMMEDIATE`` its user issued."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        if isinstance(params, Sequence):
            return self.conn.executemany(sql, params).rowcount
        return self.conn.execute(sql, dict(params or {})).rowcount

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        return self.conn.execute(sql, dict(params or {})).fetchall()

    def _cursor(self) -> Any:
        return self.conn.cursor()

    def _max_parameters(self) -> int:
        getlimit = getattr(self.conn, "getlimit", None)  # Python >= 3.11
        if getlimit is None:
            return 999
        return int(getlimit(getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", 9)))


class AlchemyChanges(Changes):
    """Changes on a SQLAlchemy connection in a write transaction (PostgreSQL, or a SQLite
    file while it is created or migrated); the driver's errors come out as SQLAlchemy's,
    which :func:`flowcore.runs.database.translate` names the store by."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        self._mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"

    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        import sqlalchemy as sa

        if isinstance(params, Sequence):
            return int(self.conn.execute(sa.text(sql), [dict(p) for p in params]).rowcount)
        return int(self.conn.execute(sa.text(sql), dict(params or {})).rowcount)

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        import sqlalchemy as sa

        return list(self.conn.execute(sa.text(sql), dict(params or {})).all())

    def insert_rows(self, table: str, keys: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        from sqlalchemy import exc

        dialect = self.conn.dialect
        dbapi = dialect.loaded_dbapi
        try:
            super().insert_rows(table, keys, rows)
        except dbapi.Error as error:
            statement = f"INSERT INTO {table} ({', '.join(keys)}) VALUES ..."
            raise exc.DBAPIError.instance(
                statement, None, error, dbapi.Error, dialect=dialect
            ) from error

    def _cursor(self) -> Any:
        return self.conn.connection.cursor()

    def _max_parameters(self) -> int:
        if self.dialect == "postgresql":
            return 65_535
        driver = self.conn.connection.driver_connection
        return SqliteChanges(driver)._max_parameters()  # type: ignore[arg-type]


def write_events(changes: Changes, events: Sequence[RunEvent], journal: Sequence[Row]) -> None:
    """Write one batch: the flow runs' own events (``FlowRunStarted``, ``FlowRunState``,
    ``Heartbeat``, in the order they were submitted) into ``flow_runs`` and
    ``state_transitions``, and the journal rows the store's feeder packed of the task
    states and log lines (:mod:`flowcore.runs.journal`) into ``run_journal``, as they are."""
    flow_events: list[FlowRunStarted | FlowRunState] = []
    beats: dict[str, datetime] = {}
    for e in events:
        if isinstance(e, Heartbeat):
            beats[e.run_id] = max(e.time, beats.get(e.run_id, e.time))
        elif isinstance(e, (FlowRunStarted, FlowRunState)):
            flow_events.append(e)
    first: dict[str, datetime] = {}
    for run_id, earliest, _ in journal:
        if run_id not in first:
            first[run_id] = from_epoch(earliest)
    first.update({e.run_id: e.time for e in reversed(flow_events)})
    if first:  # a row for every run (a placeholder before its FlowRunStarted), so reads find it
        _ensure_runs(changes, first)
    for e in flow_events:
        if isinstance(e, FlowRunStarted):
            _start(changes, e)
        else:
            changes.execute(
                "UPDATE flow_runs SET state = :state, message = :message, ended = :ended, "
                "heartbeat = :time WHERE run_id = :run_id",
                {
                    "state": e.state,
                    "message": e.message,
                    "ended": changes.time(e.time) if is_finished(e.state) else None,
                    "time": changes.time(e.time),
                    "run_id": e.run_id,
                },
            )
    if beats:
        beat_each(changes, beats)
    flow_states = [e for e in flow_events if isinstance(e, FlowRunState)]
    if flow_states:
        changes.insert_rows(
            "state_transitions",
            _TRANSITION_KEYS,
            [
                (e.run_id, None, -1, e.state, e.message, changes.time(e.time), None, None, None)
                for e in flow_states
            ],
        )
    if journal:
        changes.execute(
            "INSERT INTO run_journal (run_id, events) VALUES (:run_id, :events)",
            [{"run_id": run_id, "events": blob} for run_id, _, blob in journal],
        )


def fold(
    changes: Changes,
    max_log_lines: int,
    run_ids: Sequence[str],
    limit: int,
    up_to: int | None = None,
) -> int:
    """Move the oldest ``limit`` journal rows of the runs ``run_ids`` (with an id up to
    ``up_to``, when given) into the tables: the task states into ``state_transitions`` and
    ``task_runs``, the log lines into ``log_lines`` (at most ``max_log_lines`` per run); a
    later call folds the rest. The rows are deleted as they are claimed, in the same
    transaction, so two readers folding at once fold each row once. Returns how many
    journal rows were claimed."""
    claimed: list[Sequence[Any]] = []
    for chunk in chunks(run_ids):
        if len(claimed) >= limit:
            break
        where, params = in_list("run_id", chunk)
        if up_to is not None:
            where, params = f"{where} AND id <= :up_to", {**params, "up_to": up_to}
        claimed += changes.all(
            f"DELETE FROM run_journal WHERE id IN (SELECT id FROM run_journal{where} "
            f"ORDER BY id LIMIT {int(limit) - len(claimed)}) RETURNING id, run_id, events",
            params,
        )
    if not claimed:
        return 0
    states: list[TaskRunState] = []
    lines: list[LogLine] = []
    for _, run_id, blob in sorted(claimed, key=lambda row: row[0]):
        try:
            state_rows, line_rows = journal.unpack(bytes(blob))
            row_states = [TaskRunState._make(row) for row in state_rows]
            row_lines = [LogLine._make(row) for row in line_rows]
        except Exception as error:  # (damaged, or planted: nothing in it runs, see journal)
            lines.append(_unreadable_row(run_id, error))
            continue
        states += row_states
        lines += row_lines
    earliest: dict[str, float] = {}  # (a run's first task state, else its first line)
    for line in reversed(lines):
        earliest[line.run_id] = line.time
    for state in reversed(states):
        earliest[state.run_id] = state.time
    _ensure_runs(changes, {run_id: from_epoch(time) for run_id, time in earliest.items()})
    _append_transitions(changes, states)
    _insert_logs(changes, lines, max_log_lines)
    return len(claimed)


def _unreadable_row(run_id: str, error: Exception) -> LogLine:
    """(A journal row that cannot be read is dropped, not folded.) A WARNING now, and an
    ERROR line in the run's log, so that whoever reads the run knows it is incomplete."""
    text = (
        f"a journal row of this run could not be read ({type(error).__name__}: {error}) and "
        "was dropped: some of its task states or log lines are missing"
    )
    logging.getLogger("flowcore.runs").warning("run %s: %s", run_id, text)
    return LogLine(str(run_id), None, -1, time.time(), logging.ERROR, "flowcore.runs", text)


def beat(changes: Changes, run_ids: Iterable[str], now: datetime) -> None:
    """Stamp the heartbeat of the runs ``run_ids`` (those still unfinished)."""
    beat_each(changes, dict.fromkeys(run_ids, now))


def beat_each(changes: Changes, times: dict[str, datetime]) -> None:
    """Move each run's heartbeat forward to its time (never backwards)."""
    changes.execute(
        "UPDATE flow_runs SET heartbeat = :time "
        "WHERE run_id = :run_id AND heartbeat < :time AND ended IS NULL",
        [{"run_id": run_id, "time": changes.time(time)} for run_id, time in times.items()],
    )


def mark_crashed(changes: Changes, run: Any, message: str, now: datetime) -> None:
    """Set ``run`` (a row of ``queries.stale_runs``) and its unfinished task runs to
    ``Crashed``, unless the run moved on since it was read. They end at the last thing
    known of the run: its heartbeat, or a later state of one of its task runs (heartbeats
    come every ``heartbeat_every`` seconds, so a run that died between two did work after
    its last)."""
    heartbeat = changes.time(run.heartbeat)
    (latest,) = changes.all(
        "SELECT max(updated) FROM task_runs WHERE run_id = :run_id", {"run_id": run.run_id}
    )[0]
    ended = latest if latest is not None and latest > heartbeat else heartbeat
    changed = changes.execute(
        "UPDATE flow_runs SET state = 'Crashed', message = :message, ended = :ended "
        "WHERE run_id = :run_id AND state = :state AND heartbeat = :heartbeat",
        {
            "message": message,
            "ended": ended,
            "heartbeat": heartbeat,
            "run_id": run.run_id,
            "state": run.state,
        },
    )
    if not changed:
        return
    unfinished_task = f"run_id = :run_id AND state NOT IN ({literals(FINISHED_STATES)})"
    unfinished = changes.all(
        f"SELECT task_slug, map_index FROM task_runs WHERE {unfinished_task}",
        {"run_id": run.run_id},
    )
    task_message = f"{message} while this task run was unfinished"
    time = changes.time(now)
    changes.execute(
        "UPDATE task_runs SET state = 'Crashed', message = :message, updated = :now, "
        f"ended = :ended WHERE {unfinished_task}",
        {"message": task_message, "now": time, "ended": ended, "run_id": run.run_id},
    )
    rows = [(run.run_id, None, -1, "Crashed", message, time, None, None, None)]
    rows += [
        (run.run_id, slug, index, "Crashed", task_message, time, None, None, None)
        for slug, index in unfinished
    ]
    changes.insert_rows("state_transitions", _TRANSITION_KEYS, rows)


def prune(changes: Changes, cutoff: datetime | None, max_runs: int | None) -> int:
    """Delete finished runs started before ``cutoff`` or beyond the newest ``max_runs``;
    returns how many."""
    finished = literals(FINISHED_STATES)
    doomed: set[str] = set()
    if cutoff is not None:
        rows = changes.all(
            f"SELECT run_id FROM flow_runs WHERE started < :cutoff AND state IN ({finished})",
            {"cutoff": changes.time(cutoff)},
        )
        doomed.update(row[0] for row in rows)
    if max_runs is not None:
        beyond = changes.all(
            "SELECT run_id, state FROM flow_runs ORDER BY started DESC, run_id DESC "
            "LIMIT :all OFFSET :offset",
            {"all": 2**62, "offset": max_runs},
        )
        doomed.update(run_id for run_id, state in beyond if is_finished(state))
    ids = sorted(doomed)
    for chunk in chunks(ids):
        where, params = in_list("run_id", chunk)
        for table in ("run_journal", "log_lines", "state_transitions", "task_runs", "flow_runs"):
            changes.execute(f"DELETE FROM {table}{where}", params)
    if ids:  # the structures no run names any more
        changes.execute(
            "DELETE FROM flow_structures WHERE digest NOT IN (SELECT structure_digest "
            "FROM flow_runs WHERE structure_digest IS NOT NULL)"
        )
    return len(ids)


# -- helpers -------------------------------------------------------------------------------


def _ensure_runs(changes: Changes, first: dict[str, datetime]) -> None:
    """A ``flow_runs`` row (a placeholder, until its FlowRunStarted) for each run of
    ``first`` (run id -> the time of its earliest event here) that has none."""
    if first:
        changes.execute(
            "INSERT INTO flow_runs (run_id, flow_name, state, started, heartbeat, host, pid, "
            "parameters, structure) VALUES (:run_id, '', 'Pending', :time, :time, '', 0, "
            "'{}', '{}') ON CONFLICT (run_id) DO NOTHING",
            [{"run_id": run_id, "time": changes.time(time)} for run_id, time in first.items()],
        )


def _start(changes: Changes, event: FlowRunStarted) -> None:
    """The run's row from its FlowRunStarted; its flow's structure is stored once, under
    its digest, in ``flow_structures`` (every run of a flow has the same)."""
    structure = structure_json(event.structure)
    digest = event.structure_digest or structure_digest(structure)
    if not changes.all("SELECT 1 FROM flow_structures WHERE digest = :digest", {"digest": digest}):
        # (looked up first: most runs find their flow's structure stored, and an INSERT
        # that does nothing still builds the row, 66 KB of text for a flow of 500 tasks)
        changes.execute(
            "INSERT INTO flow_structures (digest, body) VALUES (:digest, :body) "
            "ON CONFLICT (digest) DO NOTHING",
            {"digest": digest, "body": structure},
        )
    changes.execute(
        "UPDATE flow_runs SET flow_name = :flow_name, started = :time, heartbeat = :time, "
        "host = :host, pid = :pid, parameters = :parameters, structure = '{}', "
        "structure_digest = :digest, source = :source, resumed_from = :resumed_from "
        "WHERE run_id = :run_id",
        {
            "flow_name": event.flow_name,
            "time": changes.time(event.time),
            "host": event.host,
            "pid": event.pid,
            "parameters": json.dumps(event.parameters, sort_keys=True),
            "digest": digest,
            "source": event.source,
            "resumed_from": event.resumed_from,
            "run_id": event.run_id,
        },
    )


_TRANSITION_KEYS = (
    "run_id", "task_slug", "map_index", "state", "message", "time", "run_count",
    "result_location", "n_map_states",
)  # fmt: skip
_LOG_KEYS = ("run_id", "task_slug", "map_index", "time", "level", "logger", "message")


def _append_transitions(changes: Changes, states: Sequence[TaskRunState]) -> None:
    """(Folding.) Append the task states, then bring ``task_runs`` up to date from them in
    SQL (:func:`_task_runs_from_transitions`)."""
    if not states:
        return
    time = epoch_param(changes.dialect)  # (once, not once a row)
    rows: list[tuple[Any, ...]] = []
    for e in states:
        if e.started is not None:  # a quick task run's Running, folded into its end
            rows.append((e.run_id, e.task_slug, e.map_index, "Running", None,
                         time(e.started), e.run_count, None, None))  # fmt: skip
        rows.append((e.run_id, e.task_slug, e.map_index, e.state, e.message,
                     time(e.time), e.run_count, e.result_location,
                     e.n_map_states))  # fmt: skip
    before = changes.all("SELECT max(id) FROM state_transitions")[0][0] or 0
    changes.insert_rows("state_transitions", _TRANSITION_KEYS, rows)
    params: dict[str, Any] = {"after": before}
    runs = ""
    if changes.dialect != "sqlite":
        # other writers' rows may interleave with this batch's ids; on SQLite the batch
        # holds the write lock, and an IN on run_id would make SQLite use the run_id index
        # (a scan of the whole run on every batch) rather than the id range
        where, in_params = in_list("run_id", sorted({e.run_id for e in states}))
        runs, params = where.replace(" WHERE ", " AND ", 1), {**params, **in_params}
    changes.execute(_task_runs_from_transitions(runs, changes.dialect == "sqlite"), params)


@functools.cache
def _task_runs_from_transitions(runs: str, sqlite: bool) -> str:
    """The upsert of ``task_runs`` from the transitions after id ``:after`` (``runs``: a
    further condition on their run ids): per task run, the latest state (with its
    message, time and run count), the first ``Running`` (kept when the row has one), the
    latest finished state, and the latest result location and child count given.
    SQLite and PostgreSQL both read it (SQLite reads ``INSERT ... SELECT ... ON
    CONFLICT`` only after a ``WHERE``), but for ``NOT INDEXED`` on SQLite: its planner
    would otherwise read the transitions through the run_id index, for the GROUP BY's
    order, which is a scan of the whole table (1.2 s a fold with 20 million transitions)
    rather than the id range of the few just appended."""
    return f"""
        WITH batch AS (
            SELECT run_id, task_slug, map_index, max(id) AS last_id,
                min(CASE WHEN state = 'Running' THEN time END) AS started,
                max(CASE WHEN state IN ({literals(FINISHED_STATES)}) THEN time END) AS ended,
                max(CASE WHEN result_location IS NOT NULL THEN id END) AS location_id,
                max(CASE WHEN n_map_states IS NOT NULL THEN id END) AS n_map_id
            FROM state_transitions{" NOT INDEXED" if sqlite else ""}
            WHERE id > :after AND task_slug IS NOT NULL{runs}
            GROUP BY run_id, task_slug, map_index
        )
        INSERT INTO task_runs (run_id, task_slug, map_index, state, message, updated, started,
            ended, run_count, result_location, n_map_states)
        SELECT batch.run_id, batch.task_slug, batch.map_index, last.state, last.message,
            last.time, batch.started, batch.ended, last.run_count, location.result_location,
            n_map.n_map_states
        FROM batch
        JOIN state_transitions AS last ON last.id = batch.last_id
        LEFT OUTER JOIN state_transitions AS location ON location.id = batch.location_id
        LEFT OUTER JOIN state_transitions AS n_map ON n_map.id = batch.n_map_id
        WHERE 1 = 1
        ON CONFLICT (run_id, task_slug, map_index) DO UPDATE SET
            state = excluded.state,
            message = excluded.message,
            updated = excluded.updated,
            run_count = excluded.run_count,
            started = coalesce(task_runs.started, excluded.started),
            ended = coalesce(excluded.ended, task_runs.ended),
            result_location = coalesce(excluded.result_location, task_runs.result_location),
            n_map_states = coalesce(excluded.n_map_states, task_runs.n_map_states)
    """


def _insert_logs(changes: Changes, lines: list[LogLine], max_log_lines: int) -> None:
    if not lines:
        return
    by_run: dict[str, list[LogLine]] = {}
    for line in lines:
        by_run.setdefault(line.run_id, []).append(line)
    kept_so_far: dict[str, int] = {}
    for chunk in chunks(list(by_run)):
        where, params = in_list("run_id", chunk)
        kept_so_far.update(
            (row[0], row[1])
            for row in changes.all(f"SELECT run_id, log_lines FROM flow_runs{where}", params)
        )
    time = epoch_param(changes.dialect)  # (once, not once a row)
    rows: list[tuple[Any, ...]] = []
    counts: list[dict[str, Any]] = []
    for run_id, run_lines in by_run.items():
        room = max(0, max_log_lines - kept_so_far.get(run_id, 0))
        keep = run_lines[:room]
        rows += [
            (run_id, x.task_slug, x.map_index, time(x.time), x.level, x.logger, x.message)
            for x in keep
        ]  # fmt: skip
        counts.append({"rid": run_id, "kept": len(keep), "dropped": len(run_lines) - len(keep)})
    if rows:
        changes.insert_rows("log_lines", _LOG_KEYS, rows)
    changes.execute(
        "UPDATE flow_runs SET log_lines = log_lines + :kept, "
        "logs_dropped = logs_dropped + :dropped WHERE run_id = :rid",
        counts,
    )
