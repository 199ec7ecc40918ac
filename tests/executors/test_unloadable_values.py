"""Exceptions and results that pickle but cannot be loaded again (``engine/_stand_in.py``,
``executors/_pools.check_picklable``, docs/executors.md "What must be picklable").

On real pools of processes: ``LocalDaskExecutor("processes")`` and a ``DaskExecutor`` on
the session's ``local_cluster`` (two worker processes). Such a value fails its own task
alone; every other task, and every other child of a batch, keeps its state.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from flowcore import Flow, unmapped
from flowcore.engine.state import Failed, State, Success
from flowcore.exceptions import DaskTaskError
from flowcore.executors import DaskExecutor, Executor, LocalDaskExecutor
from tests.executors import unloadable
from tests.executors.conftest import REPO
from tests.executors.unloadable import NoReduce

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["processes", "dask"])
def executor(request: Any) -> Executor:
    if request.param == "processes":
        return LocalDaskExecutor("processes", num_workers=2)
    cluster = request.getfixturevalue("local_cluster")
    return DaskExecutor(address=cluster.scheduler_address)


def run(flow: Flow, executor: Executor) -> State:
    state = flow.run(executor=executor)
    assert state is not None
    return state


def in_a_new_process(code: str) -> None:
    """Run ``code`` in a new Python process: in this one, a test that imported
    ``dask.multiprocessing`` may have installed tblib's pickling for every exception class
    that existed then, which loads these without their ``__init__``."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr


def test_a_failed_state_carries_an_exception_that_cannot_be_loaded_rebuilt() -> None:
    in_a_new_process("""
        import pickle, cloudpickle
        from flowcore.engine.state import Failed
        from tests.executors.unloadable import NoReduce

        error = NoReduce(1, 2)
        error.code = 7
        loaded = pickle.loads(cloudpickle.dumps(Failed("boom", result=error)))
        assert type(loaded.result) is NoReduce, repr(loaded.result)
        assert loaded.result.args == ("1-2",) and loaded.result.code == 7
    """)


def test_an_exception_that_cannot_be_rebuilt_travels_as_a_stand_in() -> None:
    in_a_new_process("""
        import pickle, cloudpickle
        from flowcore.engine.state import Failed
        from tests.executors.unloadable import NoNew

        loaded = pickle.loads(cloudpickle.dumps(Failed("boom", result=NoNew(1, 2))))
        error = loaded.result
        assert type(error).__name__ == "NoNew" and not isinstance(error, NoNew), repr(error)
        assert repr(error) == "NoNew('1-2')"
        assert "missing 1 required positional argument: 'b'" in error.reason, error.reason
        again = pickle.loads(pickle.dumps(loaded))  # it travels on, as the same class
        assert type(again.result) is type(error) and again.result.args == ("1-2",)
    """)


def test_an_exception_that_cannot_be_loaded_fails_its_task_alone(executor: Executor) -> None:
    with Flow("noreduce") as flow:
        failing = unloadable.raise_noreduce(1)
        other = unloadable.ok(5)
    state = run(flow, executor)
    assert type(state) is Failed and state.message == "Some reference tasks failed."
    assert type(state.result[failing]) is Failed
    assert state.result[failing].message == "Error during execution of task: NoReduce('1-2')"
    error = state.result[failing].result
    assert type(error) is NoReduce and error.args == ("1-2",)
    assert type(state.result[other]) is Success and state.result[other].result == 5


def test_in_a_batched_map_only_the_child_whose_exception_cannot_be_loaded_fails(
    executor: Executor,
) -> None:
    with Flow("noreduce-map") as flow:
        children = unloadable.child.map(list(range(30)), batch_size=10)
    state = run(flow, executor)
    states = state.result[children].map_states
    failed = [i for i, child in enumerate(states) if child.is_failed()]
    assert failed == [13]
    assert states[13].message == "Error during execution of task: NoReduce('1-2')"
    assert type(states[13].result) is NoReduce
    assert [child.result for i, child in enumerate(states) if i != 13] == [
        i for i in range(30) if i != 13
    ]


@pytest.mark.parametrize("how", ["return", "fail"])
def test_in_a_batched_map_only_the_child_whose_state_cannot_be_pickled_fails(
    executor: Executor, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to fail every child of its batch (as ``load[0-3]``), and their downstream."""
    with Flow("unpicklable-child") as flow:
        children = unloadable.lock_on.map(list(range(8)), unmapped(3), unmapped(how), batch_size=4)
        after = unloadable.ok.map(children, batch_size=4)
    state = run(flow, executor)
    states = state.result[children].map_states
    assert [type(child) for child in states] == [Success] * 3 + [Failed] + [Success] * 4
    assert states[3].message.startswith(
        "Task 'lock_on[3]': its result cannot be pickled to leave the worker process "
        "(TypeError: cannot pickle '_thread.lock' object)"
    )
    assert isinstance(states[3].result, DaskTaskError)
    downstream = state.result[after].map_states
    assert [type(child).__name__ for child in downstream] == ["Success"] * 3 + ["TriggerFailed"] + [
        "Success"
    ] * 4
    assert state.result[after].map_states[7].result == 7
    errors = [
        r
        for r in caplog.records
        if r.levelname == "ERROR" and "cannot be pickled" in r.getMessage()
    ]
    assert len(errors) == 1


def _failed_beside_an_ok_task(executor: Executor, failing: Any) -> str:
    """The message of ``failing()``'s task, run beside a task that succeeds: a Failed
    holding a DaskTaskError, the other task untouched."""
    with Flow("unloadable-result") as flow:
        returned = failing()
        other = unloadable.ok(5)
    state = run(flow, executor)
    assert type(state.result[returned]) is Failed
    assert isinstance(state.result[returned].result, DaskTaskError)
    assert state.result[other].result == 5
    return str(state.result[returned].message)


def test_a_result_that_cannot_be_loaded_fails_its_task_naming_it(executor: Executor) -> None:
    message = _failed_beside_an_ok_task(executor, lambda: unloadable.returns_noreduce_inside(1))
    assert message.startswith(
        "Task 'returns_noreduce_inside': its result cannot be loaded after pickling "
        "(TypeError: NoReduce.__init__() missing 1 required positional argument: 'b')"
    )


def test_a_result_the_flows_process_cannot_load_fails_its_task_naming_it(
    executor: Executor,
) -> None:
    message = _failed_beside_an_ok_task(
        executor, lambda: unloadable.returns_unloadable_in(os.getpid())
    )
    assert message.startswith(
        "Task 'returns_unloadable_in': its result cannot be loaded in the flow's process "
        f"after pickling (RuntimeError: NotInThatProcess cannot be loaded in process "
        f"{os.getpid()})"
    )
