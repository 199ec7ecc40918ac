"""Dask workers that die under a task run (``executors/_dask_outcomes.py``, docs/executors.md
"When a worker dies").

The tests share one temporary cluster that the ``DaskExecutor`` creates (so flowcore's crash
policy is installed): two worker processes of one thread each, under nannies that start a
new worker when one dies. A child kills its worker with ``os._exit`` on its first attempt;
files count every run of every child.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from flowcore import Flow, unmapped
from flowcore.engine.state import Crashed, Failed, Pending, State, Success, TriggerFailed
from flowcore.exceptions import UpstreamCrashed, WorkerCrashed
from flowcore.executors import DaskExecutor
from flowcore.executors._dask_outcomes import ResultLost, WorkerDied, describe_failure
from tests.executors import flows

pytestmark = pytest.mark.timeout(180)


def run(flow: Flow, executor: DaskExecutor) -> State:
    state = flow.run(executor=executor)
    assert state is not None
    return state


def test_a_crashed_child_is_retried_and_no_other_child_runs_twice(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    with Flow("crash-retried") as flow:
        items = flows.crash_once_retried.map(list(range(6)), unmapped(str(tmp_path)))
        summed = flows.total(items)
        other = flows.inc(1)
    flows.SEEN.clear()
    state = run(flow, temporary_cluster)
    assert type(state) is Success
    assert state.result[items].result == [1, 2, 3, 4, 5, 6]
    assert state.result[summed].result == 21
    assert state.result[other].result == 2
    assert ("Running", "Crashed") in flows.SEEN
    assert ("Crashed", "Retrying") in flows.SEEN
    assert flows.runs_of(str(tmp_path)) == {0: 2, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}


def test_without_retries_the_child_ends_crashed_and_its_downstream_trigger_fails(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    with Flow("crash") as flow:
        items = flows.crash_once.map(list(range(6)), unmapped(str(tmp_path)))
        summed = flows.total(items)
        other = flows.inc(1)
    state = run(flow, temporary_cluster)
    assert type(state) is Failed
    children = state.result[items].map_states
    crashed = children[0]
    assert type(crashed) is Crashed
    assert crashed.message == "Task 'crash_once[0]': its Dask worker died while it ran"
    assert isinstance(crashed.result, WorkerCrashed)
    assert [type(child) for child in children[1:]] == [Success] * 5
    assert [child.result for child in children[1:]] == [2, 3, 4, 5, 6]
    assert type(state.result[summed]) is TriggerFailed
    assert type(state.result[other]) is Success
    assert flows.runs_of(str(tmp_path)) == dict.fromkeys(range(6), 1)


def test_a_task_downstream_of_a_crash_is_not_reported_crashed(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    counted = tmp_path / "first.txt"
    with Flow("crash-chain") as flow:
        first = flows.record(str(counted), 0)
        crashing = flows.crash_once(first, str(tmp_path))
        after = flows.inc(crashing)
        independent = flows.inc(10)
    state = run(flow, temporary_cluster)
    assert type(state) is Failed
    assert type(state.result[first]) is Success
    assert type(state.result[crashing]) is Crashed
    assert state.result[crashing].message == "Task 'crash_once': its Dask worker died while it ran"
    assert type(state.result[after]) is TriggerFailed
    assert state.result[independent].result == 11
    assert counted.read_text() == "0\n"  # ran once, though its result may have died with the worker
    assert not any(type(s) is Pending for s in state.result.values())


def test_state_of_every_task_when_a_mapped_child_crashes(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    with Flow("crash-map-of-map") as flow:
        items = flows.crash_once.map(list(range(4)), unmapped(str(tmp_path)))
        again = flows.inc.map(items)
    state = run(flow, temporary_cluster)
    assert type(state) is Failed
    assert [type(s) for s in state.result[items].map_states] == [Crashed, Success, Success, Success]
    assert [type(s) for s in state.result[again].map_states] == [
        TriggerFailed,
        Success,
        Success,
        Success,
    ]
    assert [s.result for s in state.result[again].map_states[1:]] == [3, 4, 5]


def _untranslated(exc: BaseException) -> Exception:
    raise AssertionError(f"not a failure of the machinery: {exc!r}")


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            WorkerDied("the Dask worker tcp://w:1 died while it ran"),
            "Task 'load[3]': its Dask worker died while it ran",
        ),
        (
            ResultLost("gone"),
            "Task 'load[3]': the Dask worker holding its result died before flowcore collected the result",
        ),
    ],
)
def test_a_dead_worker_is_a_worker_crash_of_the_run_it_hit(error: Exception, message: str) -> None:
    described = describe_failure(error, "load[3]", None, None, _untranslated)
    assert isinstance(described, WorkerCrashed)
    assert str(described) == message
    assert described.label == "load[3]"


def test_a_run_that_failed_because_its_input_did_is_upstream_crashed() -> None:
    described = describe_failure(ResultLost("gone"), "total", "load[3]", None, _untranslated)
    assert isinstance(described, UpstreamCrashed)
    assert (described.label, described.upstream) == ("total", "load[3]")
    assert (
        str(described)
        == "Task 'total' did not run: the run of 'load[3]' it depends on did not finish"
    )


def test_a_run_on_a_worker_that_died_is_crashed_whatever_failed_next() -> None:
    """A crashed run waiting for an input lost with the same worker fails for that input;
    the crash policy's record still makes it the crash."""
    described = describe_failure(ResultLost("gone"), "crash", "first", "tcp://w:1", _untranslated)
    assert isinstance(described, WorkerCrashed)
    assert str(described) == "Task 'crash': its Dask worker died while it ran"


def test_crash_exceptions_survive_pickling() -> None:
    for error in (
        WorkerCrashed("a[1]", "cause", "Task 'a[1]': gone"),
        UpstreamCrashed("b", "a[1]"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.label == error.label
