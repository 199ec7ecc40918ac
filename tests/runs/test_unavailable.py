"""A database that is unavailable for a while loses no run record.

What the writer cannot write because the database cannot be reached or written for now (a
PostgreSQL server restarting, a SQLite file locked past the wait) is kept, in order, and
written once it can be; beyond a bound the oldest is dropped, and the runs concerned say so
in their logs. Real components throughout: a PostgreSQL server of the test's own, stopped
and started again; a SQLite file locked by another connection; a flow run in a fresh
interpreter.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flowcore.runs import RunStore, RunStoreError
from flowcore.runs.events import LogLine
from flowcore.runs.journal import pack
from flowcore.runs.store import is_unavailable
from flowcore.runs.writer import Writer
from tests.runs.conftest import flow_state, started, task_state
from tests.servers import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


def _written_within(store: RunStore, seconds: float = 60) -> None:
    """Flush until a flush raises nothing (what was kept is written), or fail."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            store.flush()
            return
        except RunStoreError:
            assert time.monotonic() < deadline, "the kept run records were never written"
            time.sleep(0.2)


def _messages(logs: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in logs.records if r.name == "flowcore.runs" and r.levelno == level
    ]


@contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold the SQLite file's write lock on a connection of this test's own."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A write gives up on a locked SQLite file after 0.2 s and one try (not 30 s and six)."""
    monkeypatch.setattr("flowcore.runs.sql.LOCK_WAIT", 0.2)
    monkeypatch.setattr("flowcore.runs.sql.LOCKED_RETRIES", 0)


# -- which errors say "for now" ----------------------------------------------------------------


def test_a_locked_or_full_database_is_unavailable_and_a_missing_table_is_not(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "x.db")
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    with pytest.raises(sqlite3.Error) as missing:
        conn.execute("SELECT * FROM nowhere")
    with _locked(path), pytest.raises(sqlite3.Error) as locked:
        conn.execute("BEGIN IMMEDIATE")
    conn.close()
    assert is_unavailable(locked.value)
    assert not is_unavailable(missing.value)
    assert not is_unavailable(RunStoreError("run store x: database is locked"))  # no cause
    wrapped = RunStoreError("run store x: database is locked")
    wrapped.__cause__ = locked.value
    assert is_unavailable(wrapped)
    assert not is_unavailable(ValueError("not a database's error"))


# -- SQLite locked past the wait (the writer on a thread, so the wait can be shortened) ------------


def test_states_sent_while_the_file_is_locked_are_written_once_it_is_free(
    sqlite_url: str, short_lock_wait: None, logs: pytest.LogCaptureFixture
) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    store = RunStore(sqlite_url, writer="thread")
    store.submit(started("r"))
    store.submit(task_state("r", "a-1", "Success", 1, index=0))
    store.flush()
    with _locked(path):
        for i in range(1, 50):
            store.submit(task_state("r", "a-1", "Success", 1, index=i))
        store.submit(flow_state("r", "Success", 5))
        for _ in range(2):  # every flush says why, while the records wait
            with pytest.raises(RunStoreError, match="locked"):
                store.flush()
    _written_within(store)
    run = store.get_run("r")
    assert run is not None and run.state == "Success"
    assert sorted(t.map_index for t in store.task_runs("r")) == list(range(50))
    errors = _messages(logs, logging.ERROR)
    assert len(errors) == 1 and "kept in memory" in errors[0] and "locked" in errors[0]
    assert any("writing again" in m for m in _messages(logs, logging.INFO))
    store.close()


def _scripted(steps: list[Any], done: Callable[[], bool]) -> Callable[[float], list[Any]]:
    """A writer's ``read``: each step in turn (a message list, or a callable to call),
    then nothing until ``done()``, then a stop."""

    def read(timeout: float) -> list[Any]:
        if steps:
            step = steps.pop(0)
            if callable(step):
                step()
                return []
            return list(step)
        if done():
            return [("stop", 0, False)]
        time.sleep(min(timeout, 0.05))
        return []

    return read


def _lines(run_id: str, *texts: str) -> list[tuple[str, float, bytes]]:
    return pack([], [tuple(LogLine(run_id, None, -1, time.time(), 20, "test", t)) for t in texts])


def _write_while_locked(sqlite_url: str, messages: list[Any]) -> list[tuple[Any, ...]]:
    """Run a writer of its own on ``sqlite_url`` (on this thread) that is given
    ``messages`` one per read while another connection holds the file's write lock, then
    the lock released; it stops once it keeps nothing. Its replies."""
    replies: list[tuple[Any, ...]] = []
    lock = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    steps: list[Any] = [[message] for message in messages]
    steps.append(lambda: lock.execute("ROLLBACK"))
    writing = RunStore(sqlite_url)
    own = Writer(writing, {"heartbeat_every": 10, "driver_pid": 0}, replies.append)
    try:
        own.run(_scripted(steps, lambda: not own.kept))
    finally:
        writing.close()
        lock.close()
    return replies


def test_a_batch_the_database_refuses_is_dropped_alone_when_the_kept_ones_are_written(
    sqlite_url: str, short_lock_wait: None
) -> None:
    """Kept batches go in one transaction; when the database refuses it for a reason
    other than being unavailable (here a row it cannot bind), they are written one at a
    time, and only the refused one is lost."""
    store = RunStore(sqlite_url, writer="thread")
    store.submit(started("k"))
    store.flush()
    bad_row = ("k", time.time(), [1, 2])  # a list: sqlite3 cannot bind it
    replies = _write_while_locked(
        sqlite_url,
        [
            ("events", [], _lines("k", "first")),
            ("events", [], [bad_row]),
            ("events", [], _lines("k", "third")),
        ],
    )
    assert [line.message for line in store.logs("k")] == ["first", "third"]
    errors = [reply[1] for reply in replies if reply[0] == "error"]
    assert len(errors) == 2
    assert "kept in memory" in errors[0] and "these run records are lost" in errors[1]
    store.close()


def test_beyond_the_bound_the_oldest_kept_batch_is_dropped_and_its_run_says_so(
    sqlite_url: str, short_lock_wait: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(sqlite_url, writer="thread")
    store.submit(started("old"))
    store.submit(started("new"))
    store.flush()
    first, second = _lines("old", "x" * 200), _lines("new", "kept")
    monkeypatch.setattr("flowcore.runs.writer.KEEP_AT_MOST", len(second[0][2]) + 10)
    replies = _write_while_locked(
        sqlite_url, [("events", [], first), ("events", [], second), ("flush", 1)]
    )
    assert [line.message for line in store.logs("new")] == ["kept"]
    old = store.logs("old")
    assert len(old) == 1 and old[0].level == logging.ERROR
    assert "incomplete" in old[0].message and "locked" in old[0].message
    flushed = [reply for reply in replies if reply[0] == "flushed" and reply[1] == 1]
    assert "oldest are dropped" in flushed[0][2]
    assert any(r[0] == "recovered" and "some were dropped" in r[1] for r in replies)
    store.close()


# -- a PostgreSQL server stopped and started again -------------------------------------------------


def test_a_postgresql_restart_during_a_run_loses_no_record(
    own_postgresql_server: PostgresServer, logs: pytest.LogCaptureFixture
) -> None:
    server = own_postgresql_server
    store = RunStore(server.url("flowcore"))  # its writer in a process of its own
    store.submit(started("pg"))
    for i in range(50):
        store.submit(task_state("pg", "a-1", "Success", 1, index=i))
    store.flush()
    server.stop()
    for i in range(50, 100):
        store.submit(task_state("pg", "a-1", "Success", 2, index=i))
    store.submit(flow_state("pg", "Success", 3))
    with pytest.raises(RunStoreError, match="runs.store"):
        store.flush()
    server.start()
    _written_within(store)
    run = store.get_run("pg")
    assert run is not None and run.state == "Success" and run.flow_name == "etl"
    assert sorted(t.map_index for t in store.task_runs("pg")) == list(range(100))
    assert any("kept in memory" in m for m in _messages(logs, logging.ERROR))
    assert any("writing again" in m for m in _messages(logs, logging.INFO))
    store.close()


FLOW = """
from flowcore import Flow, task

@task
def inc(x):
    return x + 1

with Flow("while-down") as flow:
    inc.map(list(range(30)))
state = flow.run()
print("RUN", state.flow_run_id, state.is_successful(), flush=True)
"""


def test_a_run_that_ends_while_postgresql_is_down_is_written_once_it_is_back(
    own_postgresql_server: PostgresServer, tmp_path: Path
) -> None:
    """The flow's process ends at once; its writer process stays (up to a minute) to
    write what it kept, and ends once that is done."""
    server = own_postgresql_server
    url = server.url("flowcore")
    RunStore(url).close()  # the schema exists, as after an earlier run
    server.stop()
    script = tmp_path / "flow.py"
    script.write_text(textwrap.dedent(FLOW))
    env = {**os.environ, "FLOWCORE__RUNS__STORE": url}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kept in memory" in done.stdout + done.stderr
    run_id = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("RUN "))
    server.start()
    store = RunStore(url)
    deadline = time.monotonic() + 60
    while (run := store.get_run(run_id)) is None or run.state != "Success":
        assert time.monotonic() < deadline, "the run was never written"
        time.sleep(0.2)
    assert run.flow_name == "while-down"
    assert len(store.task_runs(run_id)) == 32  # the list, the mapped parent, its 30 children
    store.close()
