"""The run store's reads: small functions from a :class:`Reader` to plain records.

Reads are SQL text that SQLite and PostgreSQL both understand, run through a
:class:`Reader`: on SQLite the standard library's ``sqlite3`` (so ``flowcore runs ls``,
resume and the UI read without importing SQLAlchemy, about 170 ms), on PostgreSQL a
SQLAlchemy connection. The tables are defined once, in :mod:`flowcore.runs.schema`; the
reads name their columns. Each function returns the records of
:mod:`flowcore.runs.records`. Runs are listed newest first (by ``started``, then id); a
run's ``task_counts`` come from one grouped query over its task runs, for a whole page of
runs at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from flowcore.runs.records import RunInfo, StoredLogLine, TaskRunInfo, TaskSummary, Transition
from flowcore.runs.sql import in_list, open_sqlite, transaction
from flowcore.runs.states import FINISHED_STATES
from flowcore.runs.times import chunks, stored_time, time_param, utc_time

__all__ = [
    "AlchemyReader",
    "Reader",
    "SqliteReader",
    "StaleRun",
    "children",
    "count_runs",
    "find_runs",
    "list_runs",
    "logs",
    "pending_runs",
    "resumes_of",
    "stale_runs",
    "task_runs",
    "task_summaries",
    "transitions",
]

T = TypeVar("T")

MIN_PREFIX = 4  # characters of a run id that get_run accepts as a prefix
_NEWEST_FIRST = "ORDER BY started DESC, run_id DESC"
_TASK_RUN_COLUMNS = (
    "task_slug, map_index, state, message, started, ended, run_count, result_location, n_map_states"
)
_RUN_COLUMNS = (
    "run_id, flow_name, state, message, started, ended, heartbeat, host, pid, parameters, "
    "source, resumed_from, coalesce((SELECT body FROM flow_structures "
    "WHERE digest = structure_digest), structure)"
)


class Reader:
    """A connection that reads: runs a read's SQL (``:name`` parameters). One read of the
    store (:meth:`flowcore.runs.store.RunStore._read`) opens one, and runs each step on it
    (crash detection, the journal check, the query) in a read transaction of its own
    (:meth:`transaction`): each step sees what was committed before it began, a journal
    folded by another connection in between included. See the two kinds below."""

    dialect = "sqlite"
    read_only = False  # (the store's file cannot be written here: see SqliteReader.open)

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        raise NotImplementedError

    def transaction(self, query: Callable[[Reader], T]) -> T:
        """``query(self)`` in one read transaction."""
        raise NotImplementedError

    def time(self, value: datetime) -> Any:
        """A time as a parameter: what the column holds."""
        return time_param(self.dialect)(value)


class SqliteReader(Reader):
    """A read on a ``sqlite3`` connection (SQLite keeps times as text: see
    :func:`flowcore.runs.times.sqlite_time`). The connection is in autocommit mode (the
    transactions are this class's own ``BEGIN``), so between them it holds no lock and
    no snapshot: WAL readers never block the writer, and a step sees the folds before it."""

    def __init__(self, conn: sqlite3.Connection, read_only: bool = False) -> None:
        self.conn = conn
        self.read_only = read_only

    @classmethod
    def open(cls, path: str) -> SqliteReader | None:
        """A reader of the SQLite file ``path`` when it exists and is at the newest schema;
        None otherwise (the store's engine then opens, creates or migrates it). A file
        in a directory this user cannot write is read without writing (``read_only``:
        see :func:`flowcore.runs.sql.open_sqlite`)."""
        conn = open_sqlite(path)
        if conn is not None:
            return cls(conn)
        if os.access(os.path.dirname(path) or ".", os.W_OK):
            return None
        conn = open_sqlite(path, read_only=True)
        return None if conn is None else cls(conn, read_only=True)

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        return self.conn.execute(sql, dict(params or {})).fetchall()

    def transaction(self, query: Callable[[Reader], T]) -> T:
        with transaction(self.conn):
            return query(self)

    def close(self) -> None:
        self.conn.close()


class AlchemyReader(Reader):
    """A read on a SQLAlchemy connection (PostgreSQL, or SQLite while it is migrated)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        import sqlalchemy as sa

        return list(self.conn.execute(sa.text(sql), dict(params or {})).all())

    def transaction(self, query: Callable[[Reader], T]) -> T:
        with self.conn.begin():
            return query(self)


class StaleRun(NamedTuple):
    """An unfinished run whose heartbeat is old (:func:`stale_runs`)."""

    run_id: str
    state: str
    heartbeat: datetime
    host: str
    pid: int
    started: datetime


def list_runs(
    reader: Reader, flow: str | None, state: str | None, limit: int, offset: int
) -> list[RunInfo]:
    where, params = _where(flow_name=flow, state=state)
    rows = reader.all(
        f"SELECT {_RUN_COLUMNS} FROM flow_runs{where} {_NEWEST_FIRST} LIMIT :limit OFFSET :offset",
        {**params, "limit": limit, "offset": offset},
    )
    return _run_infos(reader, rows)


def count_runs(reader: Reader, flow: str | None, state: str | None) -> int:
    where, params = _where(flow_name=flow, state=state)
    return int(reader.all(f"SELECT count(*) FROM flow_runs{where}", params)[0][0])


def find_runs(reader: Reader, run_id: str) -> list[RunInfo]:
    """The run ``run_id``; else, for a long enough prefix, the runs it starts (at most 11)."""
    rows = reader.all(f"SELECT {_RUN_COLUMNS} FROM flow_runs WHERE run_id = :id", {"id": run_id})
    if not rows and len(run_id) >= MIN_PREFIX:
        pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = reader.all(
            f"SELECT {_RUN_COLUMNS} FROM flow_runs WHERE run_id LIKE :pattern ESCAPE '\\' "
            f"{_NEWEST_FIRST} LIMIT 11",
            {"pattern": pattern},
        )
    return _run_infos(reader, rows)


def resumes_of(reader: Reader, run_id: str) -> list[RunInfo]:
    """The runs that resumed ``run_id``, newest first."""
    rows = reader.all(
        f"SELECT {_RUN_COLUMNS} FROM flow_runs WHERE resumed_from = :id {_NEWEST_FIRST}",
        {"id": run_id},
    )
    return _run_infos(reader, rows)


def task_runs(
    reader: Reader, run_id: str, task_slug: str | None = None, map_index: int | None = None
) -> list[TaskRunInfo]:
    where, params = _where(run_id=run_id, task_slug=task_slug, map_index=map_index)
    rows = reader.all(
        f"SELECT {_TASK_RUN_COLUMNS} FROM task_runs{where} ORDER BY task_slug, map_index", params
    )
    return _task_run_infos(rows)


def children(
    reader: Reader, run_id: str, task_slug: str, state: str | None, offset: int, limit: int
) -> list[TaskRunInfo]:
    """A page of a task's mapped children, by map index (the primary key's order)."""
    where, params = _where(run_id=run_id, task_slug=task_slug, state=state)
    rows = reader.all(
        f"SELECT {_TASK_RUN_COLUMNS} FROM task_runs{where} AND map_index >= 0 "
        "ORDER BY map_index LIMIT :limit OFFSET :offset",
        {**params, "limit": limit, "offset": offset},
    )
    return _task_run_infos(rows)


def task_summaries(reader: Reader, run_id: str) -> list[TaskSummary]:
    """Each task's own record, and its children grouped by state (count and span), in
    two queries whatever the number of children."""
    own = reader.all(
        f"SELECT {_TASK_RUN_COLUMNS} FROM task_runs WHERE run_id = :run_id AND map_index < 0",
        {"run_id": run_id},
    )
    grouped = reader.all(
        "SELECT task_slug, state, count(*), min(coalesce(started, ended)), "
        "max(coalesce(ended, started)) FROM task_runs WHERE run_id = :run_id "
        "AND map_index >= 0 GROUP BY task_slug, state ORDER BY task_slug, state",
        {"run_id": run_id},
    )
    records = {record.task_slug: record for record in _task_run_infos(own)}
    counts: dict[str, dict[str, int]] = {}
    spans: dict[str, tuple[datetime, datetime]] = {}
    for slug, state, n, first, last in grouped:
        counts.setdefault(slug, {})[state] = int(n)
        if first is not None:  # (last too: both come from the same children)
            start, end = stored_time(first), stored_time(last)
            if slug in spans:
                start, end = min(start, spans[slug][0]), max(end, spans[slug][1])
            spans[slug] = (start, end)
    return [
        TaskSummary(slug, records.get(slug), counts.get(slug, {}), *spans.get(slug, (None, None)))
        for slug in sorted(records.keys() | counts.keys())
    ]


def transitions(
    reader: Reader, run_id: str, task_slug: str | None, map_index: int | None
) -> list[Transition]:
    where, params = _where(run_id=run_id, task_slug=task_slug, map_index=map_index)
    rows = reader.all(
        f"SELECT task_slug, map_index, state, message, time FROM state_transitions{where} "
        "ORDER BY time, id",
        params,
    )
    return [
        Transition(slug, index, state, message, stored_time(time))
        for slug, index, state, message, time in rows
    ]


def logs(
    reader: Reader, run_id: str, task_slug: str | None, limit: int | None,
    map_index: int | None = None,
) -> list[StoredLogLine]:  # fmt: skip
    """The run's lines oldest first (the last ``limit``; ``map_index``: only those of that
    mapped child, -1 the task's own), then, unless narrowed to one task, a line counting
    those dropped over ``runs.max_log_lines``, if any."""
    where, params = _where(run_id=run_id, task_slug=task_slug, map_index=map_index)
    sql = f"SELECT id, task_slug, map_index, time, level, logger, message FROM log_lines{where}"
    if limit is not None:
        sql += " ORDER BY time DESC, id DESC LIMIT :limit"
        params["limit"] = limit
    rows = sorted(reader.all(sql, params), key=lambda r: (r[3], r[0]))
    lines = [
        StoredLogLine(slug, index, stored_time(time), level, logger, message)
        for _, slug, index, time, level, logger, message in rows
    ]
    run = reader.all(
        "SELECT logs_dropped, heartbeat FROM flow_runs WHERE run_id = :id", {"id": run_id}
    )
    if run and run[0][0] and task_slug is None:
        last = reader.all("SELECT max(time) FROM log_lines WHERE run_id = :id", {"id": run_id})
        dropped = run[0][0]
        note = f"{dropped} more log lines were dropped (runs.max_log_lines)"
        when = (
            stored_time(last[0][0]) if last and last[0][0] is not None else stored_time(run[0][1])
        )
        lines.append(StoredLogLine(None, -1, when, 30, "flowcore.runs", note))
        if limit is not None:
            lines = lines[-limit:] if limit else []
    return lines


def stale_runs(reader: Reader, stale_before: datetime) -> list[StaleRun]:
    """Unfinished runs whose heartbeat is older than ``stale_before``.

    Every read asks this first, so it is two cheap questions rather than one scan of the
    runs: which states runs are in (answered from the index on ``state``, not the rows),
    then, only when some are unfinished, the runs in those states (found by that index)."""
    states = [row[0] for row in reader.all("SELECT DISTINCT state FROM flow_runs")]
    unfinished = sorted(state for state in states if state not in FINISHED_STATES)
    if not unfinished:
        return []
    where, params = in_list("state", unfinished)
    rows = reader.all(
        f"SELECT run_id, state, heartbeat, host, pid, started FROM flow_runs{where} "
        "AND heartbeat < :stale",
        {**params, "stale": reader.time(stale_before)},
    )
    return [StaleRun(r[0], r[1], stored_time(r[2]), r[3], r[4], stored_time(r[5])) for r in rows]


def pending_runs(reader: Reader, run_ids: Sequence[str]) -> list[str]:
    """Those of ``run_ids`` that have journal rows waiting to be folded
    (:func:`flowcore.runs.writes.fold`)."""
    found: list[str] = []
    for chunk in chunks(run_ids):
        where, params = in_list("run_id", chunk)
        found += [
            row[0] for row in reader.all(f"SELECT DISTINCT run_id FROM run_journal{where}", params)
        ]
    return found


# -- helpers -------------------------------------------------------------------------------


def _where(**equal: Any) -> tuple[str, dict[str, Any]]:
    """A WHERE clause (with its parameters) asking each column named to equal its value;
    a None value asks nothing of its column.

    >>> _where(run_id="r1", task_slug=None, map_index=3)
    (' WHERE run_id = :run_id AND map_index = :map_index', {'run_id': 'r1', 'map_index': 3})
    """
    params = {column: value for column, value in equal.items() if value is not None}
    conditions = " AND ".join(f"{column} = :{column}" for column in params)
    return (" WHERE " + conditions if conditions else ""), params


def _task_run_infos(rows: Sequence[Sequence[Any]]) -> list[TaskRunInfo]:
    return [
        TaskRunInfo(slug, index, state, message, utc_time(started), utc_time(ended), run_count,
                    location, n_map)
        for slug, index, state, message, started, ended, run_count, location, n_map in rows
    ]  # fmt: skip


def _run_infos(reader: Reader, rows: Sequence[Sequence[Any]]) -> list[RunInfo]:
    counts: dict[str, dict[str, int]] = {row[0]: {} for row in rows}
    ids = list(counts)
    for chunk in chunks(ids):
        where, params = in_list("run_id", chunk)
        grouped = reader.all(
            f"SELECT run_id, state, count(*) FROM task_runs{where} GROUP BY run_id, state", params
        )
        for run_id, state, n in grouped:
            counts[run_id][state] = int(n)
    return [
        RunInfo(
            run_id=run_id, flow_name=flow_name, state=state, message=message,
            started=stored_time(started), ended=utc_time(ended), heartbeat=stored_time(heartbeat),
            host=host, pid=pid, parameters=json.loads(parameters), source=source,
            resumed_from=resumed_from, structure=json.loads(structure),
            task_counts=dict(sorted(counts[run_id].items())),
        )
        for (run_id, flow_name, state, message, started, ended, heartbeat, host, pid,
             parameters, source, resumed_from, structure) in rows
    ]  # fmt: skip
