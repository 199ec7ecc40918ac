"""Several processes on one SQLite file, and a writer killed with SIGKILL.

The writers are real processes (``tests/runs/writer_process.py``), started with the
repository as their working directory.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

from flowcore.runs import RunStore
from tests.runs.conftest import started

ROOT = Path(__file__).resolve().parents[2]


def _writer(url: str, run_id: str, n: int, *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.runs.writer_process", url, run_id, str(n), *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _count(path: Path, sql: str) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(sql).fetchone()[0])


def _written(path: Path) -> int:
    """Journal rows in the database, each a batch of task states (0 while the writer has
    not created the database yet)."""
    if not path.exists():
        return 0
    try:
        return _count(path, "SELECT count(*) FROM run_journal")
    except sqlite3.OperationalError as error:
        assert "no such table" in str(error)
        return 0


def test_four_processes_writing_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}"
    n = 2500
    writers = [_writer(url, f"proc-{i}", n) for i in range(4)]
    for writer in writers:
        output, _ = writer.communicate(timeout=300)
        assert writer.returncode == 0, output.decode()[-3000:]

    assert _count(path, "SELECT count(*) FROM flow_runs") == 4
    assert _count(path, "SELECT count(*) FROM run_journal") > 0  # not folded yet
    store = RunStore(url)
    assert store.count_runs() == 4  # counting runs folds nothing
    assert _count(path, "SELECT count(*) FROM task_runs") == 0
    runs = store.list_runs()  # listing runs folds theirs (for their task counts)
    assert _count(path, "SELECT count(*) FROM run_journal") == 0
    assert _count(path, "SELECT count(*) FROM task_runs") == 4 * n
    assert _count(path, "SELECT count(*) FROM state_transitions") == 4 * (n + 2)
    assert _count(path, "SELECT count(*) FROM log_lines") == 4 * n // 5
    assert sorted(r.run_id for r in runs) == [f"proc-{i}" for i in range(4)]
    assert {r.state for r in runs} == {"Success"}
    assert all(r.task_counts == {"Success": n} for r in runs)
    store.close()


def test_a_writer_killed_with_sigkill_leaves_a_sound_database(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    url = f"sqlite:///{path}"
    writer = _writer(url, "killed", 0, "--forever")
    deadline = time.monotonic() + 120
    while _written(path) < 3:  # three batches (0.2 s each) written
        assert writer.poll() is None, writer.communicate()[0].decode()[-3000:]
        assert time.monotonic() < deadline, "the writer wrote nothing"
        time.sleep(0.1)
    os.kill(writer.pid, signal.SIGKILL)
    killed_at = datetime.now(timezone.utc)
    writer.communicate(timeout=60)
    assert writer.returncode == -signal.SIGKILL

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = RunStore(url)
    tasks = store.task_runs("killed")
    # what was written is everything submitted up to some moment: no gaps...
    assert [t.map_index for t in tasks] == list(range(len(tasks)))
    # ...and that moment is at most about a second before the kill
    last_written = max(t.ended for t in tasks if t.ended is not None)
    assert killed_at - last_written < timedelta(seconds=2.5)
    # the database takes new writes
    store.submit(started("after"))
    store.flush()
    assert store.count_runs() == 2
    store.close()
