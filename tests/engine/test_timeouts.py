"""Task timeouts (reference 6.12): SIGALRM in the main thread, a watched helper thread
elsewhere; both end in TimedOut and really stop the task body.

``Task(timeout=...)`` takes whole seconds; these tests set a sub-second ``timeout``
attribute after construction so that they stay fast. The engine accepts any number.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from flowcore import Flow, Task, context, task
from flowcore.engine import signals
from flowcore.engine.state import Failed, Skipped, State, Success, TimedOut
from flowcore.engine.task_runner import TaskRunner
from flowcore.exceptions import TaskTimeoutSignal


def with_timeout(t: Task, seconds: float = 0.1) -> Task:
    t.timeout = seconds  # type: ignore[assignment]
    return t


def run_in_thread(runner: TaskRunner, **kwargs: Any) -> State:
    out: dict[str, State] = {}
    thread = threading.Thread(target=lambda: out.setdefault("state", runner.run(**kwargs)))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    return out["state"]


def test_main_thread_timeout_is_timed_out() -> None:
    @task
    def slow() -> None:
        time.sleep(2)

    state = TaskRunner(with_timeout(slow)).run()
    assert type(state) is TimedOut
    assert state.message == "Task timed out during execution."
    assert isinstance(state.result, TaskTimeoutSignal)


def test_main_thread_timeout_stops_a_busy_loop() -> None:
    counter = {"n": 0}

    @task
    def spin() -> None:
        while True:
            counter["n"] += 1

    assert type(TaskRunner(with_timeout(spin, 0.05)).run()) is TimedOut
    seen = counter["n"]
    time.sleep(0.05)
    assert counter["n"] == seen


def test_fast_task_with_timeout_succeeds_and_clears_the_alarm() -> None:
    previous = signal.getsignal(signal.SIGALRM)

    @task
    def fast() -> int:
        return 1

    state = TaskRunner(with_timeout(fast)).run()
    assert state.result == 1
    assert signal.getsignal(signal.SIGALRM) is previous
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_timeout_in_flow_is_retried_when_allowed() -> None:
    counts: list[int] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def slow() -> None:
        counts.append(context.task_run_count)
        time.sleep(2)

    with Flow("f") as flow:
        s = with_timeout(slow())
    state = flow.run()
    assert state is not None
    assert counts == [1, 2]
    assert type(state.result[s]) is TimedOut
    assert state.message == "Some reference tasks failed."


def test_retry_on_never_matches_a_timeout() -> None:
    counts: list[int] = []

    @task(max_retries=2, retry_delay=timedelta(0), retry_on=Exception)
    def slow() -> None:
        counts.append(1)
        time.sleep(2)

    with Flow("f") as flow:
        s = with_timeout(slow())
    state = flow.run()
    assert state is not None
    assert counts == [1]
    assert type(state.result[s]) is TimedOut


def test_timeout_downstream_trigger_fails() -> None:
    @task
    def slow() -> int:
        time.sleep(2)
        return 1

    @task
    def after(x: int) -> int:
        return x

    with Flow("f") as flow:
        a = after(with_timeout(slow()))
    state = flow.run()
    assert state is not None
    assert state.result[a].is_failed()


# -- outside the main thread ------------------------------------------------------------------


def test_thread_timeout_is_timed_out_and_stops_the_body() -> None:
    counter = {"n": 0}

    @task
    def spin() -> None:
        while True:
            counter["n"] += 1
            time.sleep(0.005)

    state = run_in_thread(TaskRunner(with_timeout(spin, 0.1)))
    assert type(state) is TimedOut
    assert state.message == "Task timed out during execution."
    time.sleep(0.05)
    stopped_at = counter["n"]
    assert stopped_at > 0
    time.sleep(0.15)
    assert counter["n"] == stopped_at


def test_thread_fast_task_returns_its_value() -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    from flowcore.core.edge import Edge

    upstream = {
        Edge(Task(), add, key="x"): Success(result=1),
        Edge(Task(), add, key="y"): Success(result=2),
    }
    state = run_in_thread(TaskRunner(with_timeout(add, 1)), upstream_states=upstream)
    assert state.result == 3


def test_thread_errors_and_signals_cross_back() -> None:
    @task
    def bad() -> None:
        raise ValueError("in helper thread")

    @task
    def skipper() -> None:
        raise signals.SKIP("skip from helper thread")

    failed = run_in_thread(TaskRunner(with_timeout(bad, 1)))
    assert type(failed) is Failed
    assert failed.message == "Error during execution of task: ValueError('in helper thread')"
    assert type(run_in_thread(TaskRunner(with_timeout(skipper, 1)))) is Skipped


def test_thread_timeout_body_sees_the_task_context() -> None:
    @task
    def who() -> tuple[str, int]:
        return context.task_full_name, context.task_run_count

    state = run_in_thread(TaskRunner(with_timeout(who, 1)), context={"map_index": 4})
    assert state.result == ("who[4]", 1)


@pytest.mark.parametrize("seconds", [0, None])
def test_no_timeout_runs_directly(seconds: float | None) -> None:
    @task
    def where() -> str:
        return threading.current_thread().name

    state = run_in_thread(TaskRunner(with_timeout(where, seconds)))  # type: ignore[arg-type]
    assert not str(state.result).startswith("flowcore-timeout")
