"""How the FlowRunner settles task runs its executor could not carry out (``_Outcomes`` in
``engine/flow_runner.py``): Crashed and Failed through ``state_from_error`` and the
TaskRunner's retry step, runs that never started, and the rounds of a pass.

``LosingExecutor`` is a real executor that runs calls at once, as ``LocalExecutor`` does,
except the task runs it is told to lose on their first attempt: ``collect`` reports those
as ``WorkerCrashed`` (or another ``DaskTaskError``), and the runs that needed them as
``UpstreamCrashed``, as ``DaskExecutor.collect`` does after a worker died. The Dask side is
tested on real clusters in ``tests/executors/test_dask_crashes.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Task, context, task
from flowcore.engine.state import (
    Crashed,
    Failed,
    Pending,
    Retrying,
    State,
    Success,
    TriggerFailed,
)
from flowcore.exceptions import DaskTaskError, UpstreamCrashed, WorkerCrashed
from flowcore.executors import LocalExecutor
from flowcore.triggers import always_run
from flowcore.utilities.debug import raise_on_exception

SHORT = timedelta(milliseconds=10)


class _Lost:
    """What ``LosingExecutor.submit`` returns for a call it lost (or never started)."""

    def __init__(self, label: str, upstream: str | None, error: type[Exception]) -> None:
        self.label, self.upstream, self.error = label, upstream, error


def _find_lost(data: Any) -> _Lost | None:
    if isinstance(data, _Lost):
        return data
    values = (
        data.values() if isinstance(data, dict) else data if isinstance(data, (list, tuple)) else ()
    )
    for value in values:
        found = _find_lost(value)
        if found is not None:
            return found
    return None


class LosingExecutor(LocalExecutor):
    """Loses the first attempt of the task runs named in ``lose`` (see the module docs)."""

    def __init__(self, lose: dict[str, type[Exception]]) -> None:
        super().__init__()
        self.lose = dict(lose)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        extra_context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        extra = extra_context or {}
        index = extra.get("task_index")
        label = f"{extra.get('task_name')}" + (f"[{index}]" if index is not None else "")
        upstream = _find_lost(args)
        if upstream is not None:
            return _Lost(label, upstream.label, UpstreamCrashed)
        error = self.lose.pop(label, None)
        if error is not None:
            return _Lost(label, None, error)
        return fn(*args, **kwargs)

    def collect(self, futures: Any) -> Any:
        if isinstance(futures, _Lost):
            if futures.upstream is not None:
                return UpstreamCrashed(futures.label, futures.upstream)
            if futures.error is WorkerCrashed:
                return WorkerCrashed(
                    futures.label, "lost", f"Task {futures.label!r}: its worker died"
                )
            return futures.error(f"Task {futures.label!r}: its result cannot be pickled")
        if isinstance(futures, dict):
            return {key: self.collect(value) for key, value in futures.items()}
        if isinstance(futures, list):
            return [self.collect(value) for value in futures]
        return futures

    def wait(self, futures: Any) -> Any:
        if _find_lost(futures) is not None:
            raise DaskTaskError("lost")
        return futures


SEEN: list[tuple[str, str, str]] = []


def _seen(task: Task, old: State, new: State) -> None:
    SEEN.append((task.name, type(old).__name__, type(new).__name__))


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    SEEN.clear()


def run(flow: Flow, executor: LosingExecutor) -> State:
    state = flow.run(executor=executor)
    assert state is not None
    return state


def test_a_crashed_run_is_retried_with_the_task_runners_retry_step() -> None:
    counts: list[int] = []

    @task(max_retries=2, retry_delay=SHORT, state_handlers=[_seen])
    def work(x: int) -> int:
        counts.append(context.task_run_count)
        return x + 1

    with Flow("crash") as flow:
        out = work(1)
        after = work(out)
    state = run(flow, LosingExecutor({"work": WorkerCrashed}))
    assert type(state) is Success
    assert state.result[after].result == 3
    assert SEEN.count(("work", "Running", "Crashed")) == 1
    assert SEEN.count(("work", "Crashed", "Retrying")) == 1
    assert counts[0] == 2  # the crashed attempt was the first
    assert counts.count(1) == 1  # ``after`` ran once, after the retry


def test_without_retries_the_run_stays_crashed_and_downstream_meets_its_trigger() -> None:
    @task
    def work(x: int) -> int:
        return x + 1

    @task(trigger=always_run)
    def report(x: Any) -> str:
        return "reported"

    with Flow("crash") as flow:
        first = work(0)
        crashing = work(first, task_args={"name": "crashing"})
        after = work(crashing, task_args={"name": "after"})
        always = report(crashing)
        other = work(10, task_args={"name": "other"})
    state = run(flow, LosingExecutor({"crashing": WorkerCrashed}))
    assert type(state) is Failed
    crashed = state.result[crashing]
    assert type(crashed) is Crashed
    assert crashed.message == "Task 'crashing': its worker died"
    assert isinstance(crashed.result, WorkerCrashed)
    assert type(state.result[after]) is TriggerFailed
    assert state.result[always].result == "reported"
    assert state.result[first].result == 1
    assert state.result[other].result == 11
    assert not [s for s in state.result.values() if type(s) is Pending]


def test_a_crashed_mapped_child_is_retried_alone() -> None:
    counts: dict[int, int] = {}

    @task(max_retries=1, retry_delay=SHORT)
    def child(x: int) -> int:
        counts[x] = counts.get(x, 0) + 1
        return 10 * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("map") as flow:
        children = child.map([1, 2, 3])
        summed = total(children)
    state = run(flow, LosingExecutor({"child[1]": WorkerCrashed}))
    assert type(state) is Success
    assert state.result[summed].result == 60
    assert counts == {1: 1, 2: 1, 3: 1}


def test_a_failure_of_the_machinery_is_failed_on_the_tasks_own_state() -> None:
    @task
    def work(x: int) -> int:
        return x + 1

    with Flow("unpicklable") as flow:
        bad = work(1, task_args={"name": "bad"})
        after = work(bad, task_args={"name": "after"})
    state = run(flow, LosingExecutor({"bad": DaskTaskError}))
    assert type(state) is Failed
    assert type(state.result[bad]) is Failed
    assert state.result[bad].message == "Task 'bad': its result cannot be pickled"
    assert type(state.result[after]) is TriggerFailed


def test_retry_counts_follow_the_prior_state() -> None:
    @task(max_retries=1, retry_delay=SHORT)
    def work() -> int:
        return 1

    with Flow("counts") as flow:
        out = work()
    executor = LosingExecutor({"work": WorkerCrashed})
    state = run(flow, executor)
    assert state.result[out].result == 1
    executor.lose = {"work": WorkerCrashed}
    again = flow.run(executor=executor, task_states={out: Retrying(run_count=1)})
    assert again is not None
    assert type(again.result[out]) is Crashed  # attempt 2 of 2: no retry left


def test_raise_on_exception_raises_the_crash() -> None:
    @task
    def work() -> int:
        return 1

    with Flow("raise") as flow:
        work()
    with raise_on_exception(), pytest.raises(WorkerCrashed, match="its worker died"):
        flow.run(executor=LosingExecutor({"work": WorkerCrashed}))


def test_a_crashed_child_is_recorded_under_its_own_task_run(tmp_path: Path) -> None:
    from flowcore.configuration import config
    from flowcore.runs import open_store

    @task(max_retries=1, retry_delay=SHORT)
    def child(x: int) -> int:
        return 10 * x

    with Flow("recorded crash") as flow:
        child.map([1, 2, 3])
    before = config.get_path("runs.store")
    config.set_path("runs.store", str(tmp_path / "runs.db"))
    try:
        state = run(flow, LosingExecutor({"child[1]": WorkerCrashed}))
        store = open_store()
        assert store is not None
        store.flush()
        history = [t.state for t in store.transitions(str(state.flow_run_id), "child-1", 1)]
        # the driver does not know when the lost run started: its history starts at Crashed
        assert history == ["Crashed", "Retrying", "Running", "Success"]
        assert not [t for t in store.transitions(str(state.flow_run_id)) if t.task_slug == ""]
    finally:
        config.set_path("runs.store", before)
