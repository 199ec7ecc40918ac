"""Folding the journal a few rows per transaction, a fold nobody waits for leaving the file
to other writers, and the writer's checkpoint when idle (SQLite)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from flowcore.runs import RunStore, writes
from flowcore.runs.writer import CHECKPOINT_AFTER, Writer
from tests.runs.conftest import started, task_state

ROOT = Path(__file__).resolve().parents[2]


def _journal_rows(store: RunStore) -> int:
    return int(store.write(lambda c: c.all("SELECT count(*) FROM run_journal"))[0][0])


def _batches(store: RunStore, run_id: str, batches: int, per_batch: int) -> None:
    """``batches`` journal rows of ``per_batch`` task states each for ``run_id``."""
    store.submit(started(run_id))
    for batch in range(batches):
        store.submit_task_states(
            [
                tuple(task_state(run_id, f"t-{batch}-{i}", "Success", batch + i / 1000))
                for i in range(per_batch)
            ]
        )
        store.flush()


def test_a_fold_with_a_limit_claims_the_oldest_rows_and_leaves_the_rest(
    make_store: Callable[..., RunStore],
) -> None:
    store = make_store()
    _batches(store, "run-1", 3, 5)
    assert _journal_rows(store) == 3

    claimed = store.write(lambda c: writes.fold(c, 100, ["run-1"], limit=1))

    assert claimed == 1 and _journal_rows(store) == 2
    assert sorted(t.task_slug for t in store.task_runs("run-1")) == [
        f"t-0-{i}" for i in range(5)
    ] + [f"t-{b}-{i}" for b in (1, 2) for i in range(5)]  # a read folds the rest
    assert _journal_rows(store) == 0


def test_a_fold_up_to_an_id_leaves_the_rows_written_after_it(
    make_store: Callable[..., RunStore],
) -> None:
    store = make_store()
    _batches(store, "run-1", 3, 2)
    ids = [row[0] for row in store.write(lambda c: c.all("SELECT id FROM run_journal ORDER BY id"))]

    claimed = store.write(lambda c: writes.fold(c, 100, ["run-1"], limit=10, up_to=ids[1]))

    assert claimed == 2
    remaining = store.write(lambda c: c.all("SELECT id FROM run_journal"))
    assert [row[0] for row in remaining] == [ids[2]]


def test_fold_here_folds_every_row_one_transaction_each(
    make_store: Callable[..., RunStore],
) -> None:
    store = make_store()
    _batches(store, "run-1", 4, 3)
    transactions = []
    write = store.write

    def counting(change: Callable[..., object]) -> object:
        transactions.append(change)
        return write(change)

    store.write = counting  # type: ignore[method-assign,assignment]

    store.fold_here(["run-1"], 100)

    assert len(transactions) == 6  # where the journal ends, a row each, one that finds none
    store.write = write  # type: ignore[method-assign]
    assert _journal_rows(store) == 0
    assert len(store.task_runs("run-1")) == 12


def test_a_fold_nobody_waits_for_lets_another_writer_in(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    folder, other = RunStore(url), RunStore(url)
    try:
        _batches(folder, "big", 150, 200)
        remaining_when_written: list[int] = []
        fold = threading.Thread(target=folder.fold_here, args=(["big"], 100, True))
        fold.start()
        while _journal_rows(other) == 150:  # until the fold is under way
            pass

        other.write(
            lambda c: writes.write_events(c, [started("small")], [])
        )  # waits for the lock between two of the fold's transactions, not for its end
        remaining_when_written.append(_journal_rows(other))
        fold.join()

        assert remaining_when_written[0] > 0
        assert _journal_rows(other) == 0
        assert other.get_run("small") is not None
    finally:
        folder.close()
        other.close()


def test_the_writer_checkpoints_the_wal_when_idle(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = RunStore(f"sqlite:///{path}")
    try:
        store.submit(started("run-1"))
        store.flush()
        size_before = path.stat().st_size
        per_batch = 2000
        written = 0
        batch = 0
        while written < 2 * CHECKPOINT_AFTER:
            store.submit_task_states(
                [
                    tuple(task_state("run-1", f"task-{batch}-{i:06d}" * 4, "Success", i))
                    for i in range(per_batch)
                ]
            )
            store.flush()
            written += per_batch * 100
            batch += 1
        deadline_checks = 0
        while path.stat().st_size - size_before < CHECKPOINT_AFTER and deadline_checks < 500:
            store.flush()  # the writer checkpoints once it finds nothing more to do
            threading.Event().wait(0.01)
            deadline_checks += 1

        # the pages written went from the WAL into the file (SQLite's own checkpoint
        # would wait for 4,000 pages of WAL, and no other connection wrote or closed)
        assert path.stat().st_size - size_before >= CHECKPOINT_AFTER
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("SELECT count(*) FROM run_journal").fetchone()[0] == batch
    finally:
        store.close()


def test_folding_reads_only_the_transitions_it_appended(tmp_path: Path) -> None:
    """The upsert of task_runs reads the id range just appended: SQLite's planner would
    otherwise scan the whole run_id index, for the GROUP BY's order, on every fold."""
    from flowcore.runs.writes import _task_runs_from_transitions

    path = tmp_path / "runs.db"
    store = RunStore(f"sqlite:///{path}")
    store.write(lambda c: None)  # creates the file
    store.close()
    with closing(sqlite3.connect(path)) as conn:
        plan = [
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN " + _task_runs_from_transitions("", True), {"after": 0}
            )
        ]

    (read,) = [step for step in plan if "state_transitions" in step and "last" not in step]
    assert "INTEGER PRIMARY KEY (rowid>?)" in read, plan


def test_the_writer_lets_go_of_stderr_before_its_fold_at_the_end(tmp_path: Path) -> None:
    """A program reading the flow process's output to its end (``subprocess.run(...,
    capture_output=True)``) must not wait for the writer's fold, which nobody waits for."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        _batches(store, "run-1", 3, 5)
        options = {"heartbeat_every": 10, "driver_pid": 0, "fold_at_end": True}
        writer = Writer(store, options, lambda message: None)
        writer.written = {"run-1"}
        rows_when_detached: list[int] = []
        writer.detach = lambda: rows_when_detached.append(_journal_rows(store))

        writer._fold_written()

        assert rows_when_detached == [3]  # before the fold began
        assert _journal_rows(store) == 0
    finally:
        store.close()


def test_detaching_points_stdout_and_stderr_at_the_null_device() -> None:
    code = (
        "import sys\n"
        "from flowcore.runs.writer import _detach_from_stderr\n"
        "print('before', file=sys.stderr, flush=True)\n"
        "_detach_from_stderr()\n"
        "print('after', file=sys.stderr, flush=True)\n"
        "print('after too', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )

    assert (done.stdout, done.stderr) == ("", "before\n")


def test_a_fold_stores_epoch_times_as_the_slow_path_does() -> None:
    """``times.epoch_param`` (a fold's times) gives ``time_param(from_epoch(t))`` exactly:
    the same text on SQLite, whatever the rounding of the microseconds."""
    import random

    from flowcore.runs.times import epoch_param, from_epoch, time_param

    fast, slow = epoch_param("sqlite"), time_param("sqlite")
    rng = random.Random(20261205)
    seconds = [
        0.0,
        0.5,
        1767322800.0,
        1767322800.9999995,  # rounds up into the next second
        1767322800.0000005,
        1767322799.9999999,
        *(rng.uniform(0, 4e9) for _ in range(20_000)),
        *(1767322800 + rng.randrange(10**6) / 1e6 for _ in range(20_000)),
    ]
    for value in seconds:
        assert fast(value) == slow(from_epoch(value)), value
    assert epoch_param("postgresql")(1767322800.25) == from_epoch(1767322800.25)
