"""LocalExecutor (reference 10) and the executor contract every executor must meet.

``ExecutorContract`` is written against the public interface only (``start``, ``submit``,
``wait``, pickling, running flows), so other executors' tests can subclass it with their
own ``executor`` fixture.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

import flowcore
from flowcore import Flow, context, task
from flowcore.engine.state import Failed, State, Success
from flowcore.executors import Executor, LocalExecutor
from flowcore.utilities.configuration import set_temporary_config


def _double(x: int) -> int:
    return 2 * x


def _fail(message: str) -> None:
    raise KeyError(message)


def _run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


class ExecutorContract:
    """Behaviour shared by every executor; subclasses provide the ``executor`` fixture."""

    @pytest.fixture
    def executor(self) -> Executor:
        raise NotImplementedError

    def test_submit_and_wait(self, executor: Executor) -> None:
        with executor.start():
            future = executor.submit(_double, 21)
            assert executor.wait(future) == 42

    def test_submit_keyword_arguments_and_extra_context(self, executor: Executor) -> None:
        with executor.start():
            future = executor.submit(_double, x=4, extra_context={"task_name": "double"})
            assert executor.wait(future) == 8

    def test_wait_resolves_nested_structures(self, executor: Executor) -> None:
        with executor.start():
            futures = {"a": executor.submit(_double, 1), "b": [executor.submit(_double, 2), 7]}
            assert executor.wait(futures) == {"a": 2, "b": [4, 7]}

    def test_start_is_reentrant(self, executor: Executor) -> None:
        with executor.start():
            with executor.start():
                inner = executor.submit(_double, 1)
            assert executor.wait(inner) == 2
            assert executor.wait(executor.submit(_double, 2)) == 4

    def test_executor_pickles(self, executor: Executor) -> None:
        with executor.start():
            copy = pickle.loads(pickle.dumps(executor))
        assert type(copy) is type(executor)
        with copy.start():
            assert copy.wait(copy.submit(_double, 3)) == 6

    def test_flow_runs(self, executor: Executor) -> None:
        @task
        def inc(x: int) -> int:
            return x + 1

        @task
        def total(xs: list[int]) -> int:
            return sum(xs)

        with Flow("f") as flow:
            t = total(inc.map([1, 2, 3]))
        state = _run(flow, executor=executor)
        assert type(state) is Success
        assert state.result[t].result == 9

    def test_failure_inside_a_flow(self, executor: Executor) -> None:
        @task
        def bad() -> None:
            raise ValueError("x")

        with Flow("f") as flow:
            b = bad()
        state = _run(flow, executor=executor)
        assert type(state.result[b]) is Failed

    def test_retries_inside_a_flow(self, executor: Executor) -> None:
        @task(max_retries=2, retry_delay=timedelta(0))
        def flaky() -> int:
            # flowcore.context, not a module-level `context`: task code sent to worker
            # processes by value cannot carry the context object (as in Prefect 1)
            if flowcore.context.task_run_count < 3:
                raise ValueError("again")
            return flowcore.context.task_run_count

        with Flow("f") as flow:
            f = flaky()
        assert _run(flow, executor=executor).result[f].result == 3


class SessionCounter(LocalExecutor):
    """Counts the sessions ``start()`` opens (and its instances, for config paths)."""

    instances: list[SessionCounter] = []

    def __init__(self) -> None:
        super().__init__()
        SessionCounter.instances.append(self)
        self.sessions = 0
        self.submitted: list[dict[str, Any]] = []

    @contextmanager
    def _session(self) -> Iterator[None]:
        self.sessions += 1
        yield

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        extra_context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        self.submitted.append(dict(extra_context or {}))
        return super().submit(fn, *args, **kwargs)


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Executor:
        return LocalExecutor()

    def test_submit_runs_at_once_and_returns_the_value(self) -> None:
        calls: list[int] = []
        executor = LocalExecutor()
        result = executor.submit(lambda x: calls.append(x) or x, 5)
        assert calls == [5]
        assert result == 5

    def test_submit_does_not_pass_extra_context_to_the_function(self) -> None:
        def fn(**kwargs: Any) -> dict[str, Any]:
            return kwargs

        assert LocalExecutor().submit(fn, a=1, extra_context={"task_name": "t"}) == {"a": 1}

    def test_wait_is_the_identity(self) -> None:
        value = {"a": [1, 2]}
        assert LocalExecutor().wait(value) is value

    def test_errors_propagate_from_submit(self) -> None:
        with pytest.raises(KeyError, match="boom"):
            LocalExecutor().submit(_fail, "boom")

    def test_tasks_run_in_the_calling_thread(self) -> None:
        @task
        def where() -> str:
            return threading.current_thread().name

        with Flow("f") as flow:
            w = where()
        assert (
            _run(flow, executor=LocalExecutor()).result[w].result == threading.current_thread().name
        )

    def test_repr(self) -> None:
        assert repr(LocalExecutor()) == "<Executor: LocalExecutor>"

    def test_is_the_config_default(self) -> None:
        from flowcore import config

        assert config.engine.executor.default_class == "flowcore.executors.LocalExecutor"

    def test_session_is_closed_after_an_error(self) -> None:
        executor = SessionCounter()
        with pytest.raises(KeyError), executor.start():
            executor.submit(_fail, "inside")
        with executor.start():
            assert executor.submit(_double, 1) == 2
        assert executor.sessions == 2

    def test_nested_start_opens_one_session(self) -> None:
        executor = SessionCounter()
        with executor.start(), executor.start(), executor.start():
            pass
        assert executor.sessions == 1

    def test_one_session_for_all_retry_passes(self, logs: pytest.LogCaptureFixture) -> None:
        @task(max_retries=2, retry_delay=timedelta(0))
        def flaky() -> None:
            if context.task_run_count < 3:
                raise ValueError("again")

        with Flow("f") as flow:
            flaky()
        executor = SessionCounter()
        assert _run(flow, executor=executor).is_successful()
        assert logs.messages.count("Beginning Flow run for 'f'") == 3
        assert executor.sessions == 1

    def test_submit_gets_task_names_and_map_indexes(self) -> None:
        @task
        def inc(x: int) -> int:
            return x + 1

        with Flow("f") as flow:
            inc.map([1, 2])
        executor = SessionCounter()
        _run(flow, executor=executor)
        named = [
            (c.get("task_name"), c.get("task_index"))
            for c in executor.submitted
            if c.get("task_name") == "inc"
        ]
        assert named == [("inc", None), ("inc", 0), ("inc", 1)]

    def test_flow_executor_attribute_is_used_by_flow_run(self) -> None:
        executor = SessionCounter()

        @task
        def one() -> int:
            return 1

        with Flow("f", executor=executor) as flow:
            one()
        _run(flow)
        assert executor.sessions == 1

    def test_config_default_class_is_used_by_flow_run(self) -> None:
        @task
        def one() -> int:
            return 1

        with Flow("f") as flow:
            one()
        path = f"{__name__}.SessionCounter"
        SessionCounter.instances = []
        with set_temporary_config({"engine.executor.default_class": path}):
            assert _run(flow).is_successful()
        [used] = SessionCounter.instances
        assert used.sessions == 1
        assert [c["task_name"] for c in used.submitted] == ["one"]

    def test_bad_config_default_class_is_a_clear_error(self) -> None:
        @task
        def one() -> int:
            return 1

        with Flow("f") as flow:
            one()
        with set_temporary_config({"engine.executor.default_class": "no.such.Executor"}):
            with pytest.raises(ImportError, match="no.such.Executor"):
                flow.run()


def test_base_executor_requires_submit_and_wait() -> None:
    executor = Executor()
    with pytest.raises(NotImplementedError):
        executor.submit(_double, 1)
    with pytest.raises(NotImplementedError):
        executor.wait(1)


def test_a_plain_flow_run_on_the_local_executor_loads_no_module_it_does_not_use() -> None:
    # the Dask executors and their process pools; cache policies, when no task has one;
    # cloudpickle (only values written or progress sent need it); ctypes (timeouts)
    code = (
        "import sys\n"
        "from flowcore import Flow, task\n"
        "from flowcore.executors import LocalExecutor\n"
        "with Flow('f') as flow:\n"
        "    task(lambda x: x + 1)(1)\n"
        "assert flow.run(executor=LocalExecutor()).is_successful()\n"
        "assert flow.run().is_successful()\n"
        "heavy = ('flowcore.executors.dask', 'multiprocessing', 'concurrent.futures.process',\n"
        "         'flowcore.cache_policies', 'flowcore.caching.code', 'cloudpickle', 'ctypes')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "from flowcore.executors import DaskExecutor, LocalDaskExecutor\n"
        "print(DaskExecutor.__name__, LocalDaskExecutor.__name__)\n"
    )
    env = {**os.environ, "FLOWCORE__RUNS__STORE": "none"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-2:] == ["[]", "DaskExecutor LocalDaskExecutor"]


def test_only_an_executor_that_runs_calls_in_turn_shares_a_runner_among_children(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A map's children share one TaskRunner only on an executor that says it runs calls
    one after another (``runs_in_turn``); one that runs them at once, without saying so,
    gets a runner per child, and each child's lines name it."""
    from concurrent.futures import Future, ThreadPoolExecutor

    class Threads(Executor):
        def __init__(self) -> None:
            super().__init__()
            self.pool = ThreadPoolExecutor(4)

        def submit(self, fn: Any, *args: Any, extra_context: Any = None, **kwargs: Any) -> Any:
            return self.pool.submit(fn, *args, **kwargs)

        def wait(self, futures: Any) -> Any:
            if isinstance(futures, Future):
                return futures.result()
            if isinstance(futures, dict):
                return {k: self.wait(v) for k, v in futures.items()}
            if isinstance(futures, (list, tuple)):
                return type(futures)(self.wait(v) for v in futures)
            return futures

    from flowcore.executors import LocalDaskExecutor

    assert LocalExecutor().runs_in_turn() is True
    assert Executor().runs_in_turn() is False
    assert LocalDaskExecutor("synchronous").runs_in_turn() is False

    @task
    def nap(x: int) -> str:
        time.sleep(0.002)
        return str(flowcore.context.task_full_name)

    with Flow("threads") as flow:
        naps = nap.map(list(range(40)))
    executor = Threads()
    try:
        with (
            caplog.at_level("INFO", logger="flowcore"),
            set_temporary_config({"runs.store": "none"}),
        ):
            state = flow.run(executor=executor)
    finally:
        executor.pool.shutdown()
    assert state.result[naps].result == [f"nap[{i}]" for i in range(40)]
    finished = sorted(
        r.getMessage()
        for r in caplog.records
        if "'nap[" in r.getMessage() and "Finished" in r.getMessage()
    )
    expected = sorted(
        f"Task 'nap[{i}]': Finished task run for task with final state: 'Success'"
        for i in range(40)
    )
    assert finished == expected
