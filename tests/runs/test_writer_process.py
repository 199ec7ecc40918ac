"""The writer process: it ends with its parent, it can die, it may not start.

Real processes throughout: the store's own writer process, a recording process killed
with SIGKILL (``tests/runs/writer_process.py``), a flow run in a fresh interpreter.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowcore.runs import RunStore, RunStoreError
from tests.runs.conftest import flow_state, started, task_state

ROOT = Path(__file__).resolve().parents[2]


def _ended(pid: int) -> bool:
    """The process ``pid`` has ended (gone, or a zombie its new parent has yet to reap:
    a zombie runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_until_ended(pid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not _ended(pid):
        assert time.monotonic() < deadline, f"the writer process {pid} is still running"
        time.sleep(0.05)


def test_the_writer_runs_in_its_own_process_and_ends_at_close(sqlite_url: str) -> None:
    store = RunStore(sqlite_url)
    store.submit(started("w"))
    store.flush()
    pid = store.writer_pid
    assert pid is not None and pid != os.getpid()
    assert not _ended(pid)
    store.close()
    assert store.writer_pid is None
    assert not Path(f"/proc/{pid}").exists()  # ended, and reaped by this process
    assert store.get_run("w") is not None


def test_the_writer_process_ends_when_its_parent_is_killed(sqlite_url: str) -> None:
    recording = subprocess.Popen(
        [sys.executable, "-m", "tests.runs.writer_process", sqlite_url, "orphan", "0", "--forever"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert recording.stdout is not None
    line = recording.stdout.readline().decode()
    assert line.startswith("writer pid "), line + recording.communicate()[0].decode()[-3000:]
    writer_pid = int(line.split()[-1])
    assert not _ended(writer_pid)
    time.sleep(0.5)  # a few batches
    os.kill(recording.pid, signal.SIGKILL)
    recording.communicate(timeout=60)
    _wait_until_ended(writer_pid)
    # what it was handed before the kill is written
    store = RunStore(sqlite_url)
    assert len(store.task_runs("orphan")) > 10
    store.close()


def test_a_killed_writer_process_is_replaced_by_a_thread(
    sqlite_url: str, logs: pytest.LogCaptureFixture
) -> None:
    store = RunStore(sqlite_url)
    store.submit(started("k"))
    store.flush()
    pid = store.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    store.submit(task_state("k", "t-1", "Success", 1))
    with pytest.raises(RunStoreError, match="lost its writer process"):
        store.flush()
    store.submit(task_state("k", "t-2", "Success", 2))
    store.submit(flow_state("k", "Success", 3))
    store.flush()  # written on a thread of this process now
    assert store.writer_pid is None
    assert {t.task_slug for t in store.task_runs("k")} >= {"t-2"}
    assert store.get_run("k").state == "Success"  # type: ignore[union-attr]
    errors = [r for r in logs.records if r.levelno == logging.ERROR and r.name == "flowcore.runs"]
    assert len(errors) == 1 and "writer process" in errors[0].getMessage()
    assert not Path(f"/proc/{pid}").exists()  # reaped, not a zombie
    store.close()


def test_a_flow_runs_and_is_recorded_when_the_writer_process_cannot_start(
    tmp_path: Path,
) -> None:
    """An embedded interpreter does not know its executable (``sys.executable`` is
    empty), so no writer process can be started: an ERROR says so, and the run is
    recorded by a thread of the flow's own process."""
    script = tmp_path / "embedded.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            sys.executable = ""  # as in an embedded interpreter
            from flowcore import Flow, task

            @task
            def inc(x):
                return x + 1

            with Flow("embedded") as flow:
                inc.map([1, 2, 3])
            state = flow.run()
            print("RUN", state.flow_run_id, state.is_successful())
            """
        )
    )
    env = {**os.environ, "FLOWCORE__RUNS__STORE": str(tmp_path / "runs.db")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "could not start its writer process" in done.stdout + done.stderr
    run_line = [line for line in done.stdout.splitlines() if line.startswith("RUN ")]
    _, run_id, succeeded = run_line[0].split()
    assert succeeded == "True"
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    run = store.get_run(run_id)
    assert run is not None and run.state == "Success"
    assert len(store.task_runs(run_id)) == 5  # the list, the mapped parent, its 3 children
    store.close()


def test_a_thread_writer_when_asked(sqlite_url: str) -> None:
    store = RunStore(sqlite_url, writer="thread")
    store.submit(started("t"))
    store.submit(task_state("t", "a-1", "Success", 1))
    store.flush()
    assert store.writer_pid is None
    assert [t.task_slug for t in store.task_runs("t")] == ["a-1"]
    store.close()
    with pytest.raises(ValueError, match="writer='fork'"):
        RunStore(sqlite_url, writer="fork")


WRITE_WITHOUT_SQLALCHEMY = """
import sys
from flowcore.runs import RunStore
from tests.runs.conftest import flow_state, started, task_state

store = RunStore(sys.argv[1], writer="thread")  # the writer's code, on a thread of this process
store.submit(started("s"))
store.submit(task_state("s", "a-1", "Success", 1))
store.submit(flow_state("s", "Success", 2))
store.flush()
assert store.prune(retention_days=30, max_runs=1000) == 0
print(sorted({m.split(".")[0] for m in sys.modules} & {"sqlalchemy", "alembic"}))
print(store.get_run("s").state, [t.task_slug for t in store.task_runs("s")])
store.close()
"""


def test_a_sqlite_store_at_the_newest_schema_is_written_without_sqlalchemy(
    sqlite_url: str,
) -> None:
    first = RunStore(sqlite_url)  # creates the file (through SQLAlchemy and Alembic)
    first.submit(started("first"))
    first.flush()
    first.close()
    done = subprocess.run(
        [sys.executable, "-c", WRITE_WITHOUT_SQLALCHEMY, sqlite_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # (modules listed after the writes and the pruning: reading the run back folds its
    # journal, which goes through SQLAlchemy)
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "Success ['a-1']"


REMOVED_HOME = """
import shutil, sys, tempfile
from flowcore import Flow, task
from flowcore.runs import open_store
from flowcore.utilities.configuration import set_temporary_config

@task
def one():
    return 1

with Flow("removed-home") as flow:
    one()

written_first = sys.argv[1] == "after-writing"
for _ in range(2):  # as a test suite with a temporary home directory per test does
    home = tempfile.mkdtemp()
    with set_temporary_config({"home_dir": home}):
        flow.run()
        if written_first:
            open_store().flush()  # the writer has opened the database and written
            flow.run()
    shutil.rmtree(home)
    print("REMOVED", home, flush=True)
"""


@pytest.mark.parametrize("when", ["before-opening", "after-writing"])
def test_a_store_whose_directory_was_removed_warns_once_and_is_not_an_error(
    tmp_path: Path, when: str
) -> None:
    script = tmp_path / "removed_home.py"
    script.write_text(textwrap.dedent(REMOVED_HOME))
    env = {k: v for k, v in os.environ.items() if k != "FLOWCORE__RUNS__STORE"}
    done = subprocess.run(
        [sys.executable, str(script), when],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    removed = [line.split()[1] for line in output.splitlines() if line.startswith("REMOVED ")]
    assert len(removed) == 2
    assert "ERROR - flowcore.runs" not in output, output
    warnings = [line for line in output.splitlines() if "WARNING - flowcore.runs" in line]
    for home in removed:
        assert not Path(home).exists()  # nothing recreated it
        found = [line for line in warnings if f"its directory {home} was removed" in line]
        assert len(found) <= 1, warnings


DECOY_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])  # the flowcore under test, as an installed one would be
from flowcore.runs import RunStore
from tests.runs.conftest import started

store = RunStore(sys.argv[1])
store.submit(started("beside-a-decoy"))
store.flush()
store.close()
print("WRITTEN")
"""


def test_the_writer_process_imports_the_flowcore_that_started_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    """``python -c`` puts the working directory first on the path: a writer process
    started from a directory holding another flowcore (a checkout of another version)
    must still import this one."""
    decoy = tmp_path / "flowcore"
    (decoy / "runs").mkdir(parents=True)
    (decoy / "__init__.py").write_text("")
    (decoy / "runs" / "__init__.py").write_text("")
    (decoy / "runs" / "writer.py").write_text("raise SystemExit('the decoy flowcore was imported')")
    script = tmp_path / "record.py"
    script.write_text(DECOY_WRITER)
    done = subprocess.run(
        [sys.executable, str(script), sqlite_url, str(ROOT)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "WRITTEN" in done.stdout
    assert "decoy" not in done.stderr
    assert RunStore(sqlite_url).get_run("beside-a-decoy") is not None
