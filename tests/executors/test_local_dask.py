"""LocalDaskExecutor: local pools of threads or processes, or synchronous (reference 10)."""

from __future__ import annotations

import importlib
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dask
import dask.multiprocessing
import pytest

from flowcore import Flow, task, unmapped
from flowcore.engine.state import Crashed, Failed, State, Success, TriggerFailed
from flowcore.executors import Executor, LocalDaskExecutor
from flowcore.executors.dask import DaskTaskError
from flowcore.utilities.configuration import set_temporary_config
from tests.executors import flows
from tests.executors.test_local import ExecutorContract

pytestmark = pytest.mark.timeout(120)

STARTED = threading.Event()
STOPPED = threading.Event()


def _double(x: int) -> int:
    return 2 * x


def _fail(message: str) -> None:
    raise KeyError(message)


def _set_started() -> str:
    STARTED.set()
    return "started"


def _spin_until_interrupted() -> None:
    STARTED.set()
    try:
        for _ in range(500):
            threading.Event().wait(0.01)
    finally:
        STOPPED.set()


def _dask_setting(name: str) -> Any:
    return dask.config.get(name, None)


def run(flow: Flow, executor: LocalDaskExecutor) -> State:
    state = flow.run(executor=executor)
    assert state is not None
    return state


@pytest.mark.parametrize(
    "given, normalized",
    [
        ("threads", "threads"), ("threading", "threads"), ("THREADS", "threads"),
        ("processes", "processes"), ("multiprocessing", "processes"),
        ("sync", "synchronous"), ("synchronous", "synchronous"),
        ("single-threaded", "synchronous"),
    ],
)  # fmt: skip
def test_scheduler_aliases(given: str, normalized: str) -> None:
    executor = LocalDaskExecutor(given)
    assert executor.scheduler == normalized
    assert repr(executor) == f"<Executor: LocalDaskExecutor ({normalized})>"


def test_unknown_scheduler() -> None:
    with pytest.raises(ValueError, match="Unknown scheduler 'gpu'"):
        LocalDaskExecutor("gpu")


def test_default_is_threads_and_kwargs_are_dask_config() -> None:
    executor = LocalDaskExecutor(num_workers=3)
    assert executor.scheduler == "threads"
    assert executor.dask_config == {"num_workers": 3}


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_dask_config_is_set_for_the_session_and_in_the_workers(scheduler: str) -> None:
    executor = LocalDaskExecutor(scheduler, num_workers=1, **{"flowcore-test.setting": "on"})
    assert _dask_setting("flowcore-test.setting") is None
    with executor.start():
        assert _dask_setting("num_workers") == 1
        assert executor.wait(executor.submit(_dask_setting, "flowcore-test.setting")) == "on"
    assert _dask_setting("flowcore-test.setting") is None


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_submit_needs_a_session(scheduler: str) -> None:
    with pytest.raises(ValueError, match="has not been started"):
        LocalDaskExecutor(scheduler).submit(_double, 1)


def test_sync_runs_at_once_without_a_session() -> None:
    STARTED.clear()
    executor = LocalDaskExecutor("sync")
    future = executor.submit(_set_started)
    assert STARTED.is_set() and future.done()
    assert future.compute() == "started"
    assert executor.wait({"a": [future, 4]}) == {"a": ["started", 4]}


@pytest.mark.parametrize("scheduler", ["threads", "processes", "sync"])
def test_submit_returns_futures_with_a_task_key_and_compute(scheduler: str) -> None:
    """As Prefect 1's dask.delayed objects: ``key`` names the task (and map index), and
    ``compute()`` gives the result (raising the task's error)."""
    hex32 = "[0-9a-f]{32}"
    executor = LocalDaskExecutor(scheduler)
    with executor.start():
        child = executor.submit(_double, 4, extra_context={"task_name": "double", "task_index": 2})
        single = executor.submit(_double, child, extra_context={"task_name": "double"})
        unnamed = executor.submit(_double, 1)
        failing = executor.submit(_fail, "no", extra_context={"task_name": "fail"})
        assert re.fullmatch(f"double-2-{hex32}", child.key)
        assert re.fullmatch(f"double-{hex32}", single.key)
        assert re.fullmatch(f"_double-{hex32}", unnamed.key)
        assert single.key != executor.submit(_double, 1, extra_context={"task_name": "double"}).key
        assert (child.compute(), single.compute(), unnamed.compute()) == (8, 16, 2)
        with pytest.raises(KeyError, match="no"):
            failing.compute()
        assert failing.key in repr(failing)


def test_num_workers_comes_from_dask_config() -> None:
    with Flow("workers") as flow:
        out = flows.pool_threads.map(list(range(6)))
    with dask.config.set(num_workers=3):
        state = run(flow, LocalDaskExecutor("threads"))
    assert type(state) is Success
    assert 1 <= len(set(state.result[out].result)) <= 3
    with dask.config.set(num_workers=3):
        state = run(flow, LocalDaskExecutor("threads", num_workers=1))
    assert len(set(state.result[out].result)) == 1


def test_submit_starts_the_work_without_a_wait() -> None:
    STARTED.clear()
    executor = LocalDaskExecutor("threads")
    with executor.start():
        future = executor.submit(_set_started)
        assert STARTED.wait(timeout=10)  # Prefect 1's lazy executor ran nothing before wait()
        assert executor.wait(future) == "started"


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_futures_in_arguments_are_dependencies(scheduler: str) -> None:
    executor = LocalDaskExecutor(scheduler)
    with executor.start():
        first = executor.submit(_double, 1)
        second = executor.submit(_double, x=first)
        third = executor.submit(sum, [first, second])
        assert executor.wait({"all": (first, [second, {"n": third}])}) == {
            "all": (2, [4, {"n": 6}])
        }


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_a_failed_dependency_fails_its_dependents(scheduler: str) -> None:
    executor = LocalDaskExecutor(scheduler)
    with executor.start():
        failed = executor.submit(_fail, "upstream broke")
        dependent = executor.submit(_double, failed)
        with pytest.raises(KeyError, match="upstream broke"):
            executor.wait(dependent)
        assert executor.wait(executor.submit(_double, 5)) == 10


def test_an_error_in_the_session_interrupts_running_threads() -> None:
    STARTED.clear()
    STOPPED.clear()
    executor = LocalDaskExecutor("threads")
    with pytest.raises(RuntimeError, match="caller failed"), executor.start():
        executor.submit(_spin_until_interrupted)
        assert STARTED.wait(timeout=10)
        raise RuntimeError("caller failed")
    assert STOPPED.wait(timeout=10)  # stopped by KeyboardInterrupt, not after 5 s of spinning
    with executor.start():  # and the executor can start again
        assert executor.wait(executor.submit(_double, 3)) == 6


_INTERRUPTED_FLOW = """
import sys
from pathlib import Path

from flowcore import Flow
from flowcore.executors import LocalDaskExecutor
from tests.executors import flows

if __name__ == "__main__":
    with Flow("interrupted") as flow:
        flows.spin_with_pid(sys.argv[2])
    flow.run(executor=LocalDaskExecutor(sys.argv[1], num_workers=1))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_an_interrupt_stops_running_tasks(scheduler: str, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the flow's process) while a task spins: the run ends and the task
    stops at once (a thread gets KeyboardInterrupt, a pool process is terminated), instead
    of spinning on for its 300 seconds."""
    script = tmp_path / "interrupted.py"
    script.write_text(_INTERRUPTED_FLOW)
    marker = tmp_path / "task"
    env = {**os.environ, "PYTHONPATH": str(flows.REPO), "FLOWCORE__RUNS__STORE": "none"}
    proc = subprocess.Popen(
        [sys.executable, str(script), scheduler, str(marker)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        flows.wait_for_file(marker, proc)
        task_pid = int(marker.read_text().split()[0])
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        if scheduler == "processes":
            assert task_pid != proc.pid
            flows.wait_until(lambda: not _alive(task_pid), what="the pool process ending")
        else:
            assert (marker.parent / "task.stopped").read_text() == "KeyboardInterrupt"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its pool processes too (its own session)
            proc.wait()


@pytest.mark.parametrize("scheduler", ["threads", "processes", "sync"])
def test_pickles_inside_a_session(scheduler: str) -> None:
    executor = LocalDaskExecutor(scheduler)
    with executor.start():
        copy = pickle.loads(pickle.dumps(executor))
    assert copy.scheduler == executor.scheduler
    with copy.start():
        assert copy.wait(copy.submit(_double, 3)) == 6


@pytest.mark.parametrize(
    "scheduler, in_main_thread, in_this_process",
    [("sync", True, True), ("threads", False, True), ("processes", True, False)],
)
def test_where_tasks_run(scheduler: str, in_main_thread: bool, in_this_process: bool) -> None:
    """Timeouts: SIGALRM in a main thread (sync, and the pool processes), a watched helper
    thread elsewhere (threads)."""
    with Flow("where") as flow:
        out = flows.where()
    place = run(flow, LocalDaskExecutor(scheduler)).result[out].result
    assert place["main_thread"] is in_main_thread
    assert (place["pid"] == os.getpid()) is in_this_process


def test_processes_fail_a_task_whose_result_cannot_be_pickled_on_its_own_state() -> None:
    with Flow("unpicklable") as flow:
        lock = flows.make_lock()
        after = flows.inc(lock)
        other = flows.inc(1)
    state = run(flow, LocalDaskExecutor("processes"))
    assert type(state) is Failed
    assert type(state.result[lock]) is Failed
    assert isinstance(state.result[lock].result, DaskTaskError)
    assert state.result[lock].message.startswith(
        "Task 'make_lock': its result cannot be pickled to leave the worker process "
        "(TypeError: cannot pickle '_thread.lock' object)"
    )
    assert type(state.result[after]) is TriggerFailed
    assert state.result[other].result == 2


def test_threads_return_unpicklable_results() -> None:
    with Flow("unpicklable") as flow:
        lock = flows.make_lock()
    state = run(flow, LocalDaskExecutor("threads"))
    assert type(state.result[lock].result) is type(threading.Lock())


def test_processes_fail_a_task_the_workers_cannot_import_on_its_own_state(tmp_path: Path) -> None:
    (tmp_path / "parent_only_module.py").write_text("def triple(x):\n    return 3 * x\n")
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("parent_only_module")
    finally:
        sys.path.remove(str(tmp_path))
    try:
        with Flow("unimportable") as flow:
            tripled = task(module.triple)(2)
        state = run(flow, LocalDaskExecutor("processes"))
    finally:
        sys.modules.pop("parent_only_module", None)
    assert type(state) is Failed
    assert type(state.result[tripled]) is Failed
    assert state.result[tripled].message.startswith(
        "Task 'triple': the worker process cannot load the task (ModuleNotFoundError: No "
        "module named 'parent_only_module')"
    )


UNGUARDED_SCRIPT = """
import sys
from pathlib import Path
from flowcore import Flow, task
from flowcore.executors import LocalDaskExecutor

ran = Path(sys.argv[1])

@task
def note(tag):
    with open(ran, "a") as log:
        log.write(tag + "\\n")
    return tag

@task
def square(x):
    return x * x

with Flow("first") as first:
    note("first flow")
first.run()

with Flow("squares") as squares:
    squared = square.map([1, 2, 3])
state = squares.run(executor=LocalDaskExecutor("processes", num_workers=2))
print(state)
if state is not None:
    print("squares", state.result[squared].result)
"""


def test_a_script_without_a_main_guard_runs_its_flows_once_with_a_process_pool(
    tmp_path: Path,
) -> None:
    """As Prefect 1's scripts, which it ran by fork on Linux, often are: a worker started
    with spawn runs the script again, and skips its flow.run() calls (with a warning
    that says how to guard them) instead of running every flow again in every worker."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    ran = tmp_path / "ran.log"
    env = {**os.environ, "FLOWCORE__RUNS__STORE": "none"}
    done = subprocess.run(
        [sys.executable, str(script), str(ran)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "squares [1, 4, 9]" in done.stdout
    assert ran.read_text().split("\n") == ["first flow", ""]  # the parent's run only
    assert "is skipped in this worker process" in done.stderr
    assert 'under `if __name__ == "__main__":`' in done.stderr


def test_a_dead_pool_process_crashes_the_task_without_hanging() -> None:
    with Flow("crash") as flow:
        crashing = flows.crash_worker()
        after = flows.inc(crashing)
    state = run(flow, LocalDaskExecutor("processes"))
    assert type(state) is Failed
    assert type(state.result[crashing]) is Crashed
    assert state.result[crashing].message.startswith(
        "Task 'crash_worker': a process of the pool died while the task ran or waited in the "
        "pool (BrokenProcessPool:"
    )
    assert type(state.result[after]) is TriggerFailed


def test_a_task_that_killed_its_pool_process_is_retried_in_a_new_pool(tmp_path: Path) -> None:
    with Flow("crash-retried") as flow:
        items = flows.crash_once_retried.map(list(range(4)), unmapped(str(tmp_path)))
        summed = flows.total(items)
    flows.SEEN.clear()
    state = run(flow, LocalDaskExecutor("processes", num_workers=2))
    assert type(state) is Success
    assert state.result[summed].result == 10
    assert ("Crashed", "Retrying") in flows.SEEN
    assert flows.runs_of(str(tmp_path))[0] == 2


def test_a_pool_process_sent_sigterm_during_a_call_ends(tmp_path: Path) -> None:
    """The call stops (SystemExit) and the process ends with it: the pool's worker loop
    catches a call's exception and would otherwise wait on for work, while a pool that
    terminates its processes (as a broken one does) waits for them to end."""
    from concurrent.futures import ProcessPoolExecutor

    import cloudpickle

    from flowcore.executors._pools import _call_pickled, init_process

    marker = tmp_path / "pid"
    payload = cloudpickle.dumps((flows.spin_with_pid.run, (str(marker),), {}))
    context = dask.multiprocessing.get_context()  # type: ignore[no-untyped-call]
    pool = ProcessPoolExecutor(1, mp_context=context, initializer=init_process, initargs=({},))
    try:
        future = pool.submit(_call_pickled, payload, "spinner")
        deadline = time.monotonic() + 60
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline, "the call never started"
            time.sleep(0.02)
        pid = int(marker.read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid):
            assert time.monotonic() < deadline, "the pool process outlived its SIGTERM"
            time.sleep(0.02)
        with pytest.raises(BaseException):  # noqa: B017 - the call did not return
            future.result(timeout=30)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class TestLocalDaskExecutorMeetsTheInterfaceContract(ExecutorContract):
    """The interface-level contract of ``test_local.py`` (submit, wait, start, pickling)."""

    @pytest.fixture(params=["sync", "threads", "processes"])
    def executor(self, request: pytest.FixtureRequest) -> Executor:
        return LocalDaskExecutor(request.param)


def test_chosen_by_configuration_with_dask_config_from_the_environment() -> None:
    """``engine.executor.default_class`` picks LocalDaskExecutor for ``flow.run()``, and
    ``num_workers`` comes from dask's configuration (``DASK_NUM_WORKERS`` and so on)."""
    with Flow("configured") as flow:
        place = flows.where()
        threads = flows.pool_threads.map(list(range(4)))
    config = {"engine.executor.default_class": "flowcore.executors.LocalDaskExecutor"}
    with set_temporary_config(config), dask.config.set(num_workers=1):
        state = flow.run()
    assert type(state) is Success
    assert state.result[place].result["main_thread"] is False  # ran in the pool
    assert len(set(state.result[threads].result)) == 1
