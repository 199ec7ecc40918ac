"""LOOP: a task that runs again with ``task_loop_count`` / ``task_loop_result``
(reference 4, 6.15). Sequences checked against Prefect 1.4.1."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowcore import Flow, Task, context, task
from flowcore.engine import signals
from flowcore.engine.state import Cached, Failed, Looped, State, Success
from flowcore.engine.task_runner import TaskRunner


def test_reference_example_loops_by_five_from_three() -> None:
    @task
    def looper(x: int) -> tuple[int, int]:
        n = context.get("task_loop_count", 1)
        r = context.get("task_loop_result", x)
        if n >= 5:
            return (r, n)
        raise signals.LOOP(result=r + 5)

    with Flow("f") as flow:
        loop = looper(3)
    state = flow.run()
    assert state is not None
    assert state.result[loop].result == (23, 5)
    assert type(state.result[loop]) is Success


def test_first_iteration_has_no_loop_keys() -> None:
    seen: list[tuple[Any, Any]] = []

    @task
    def t() -> None:
        seen.append((context.get("task_loop_count"), context.get("task_loop_result")))
        if len(seen) < 3:
            raise signals.LOOP(result=len(seen) * 10)

    TaskRunner(t).run()
    assert seen == [(None, None), (2, 10), (3, 20)]


def test_loop_without_result_passes_the_signal_repr() -> None:
    seen: list[Any] = []

    @task
    def t() -> str:
        seen.append(context.get("task_loop_result"))
        if len(seen) < 2:
            raise signals.LOOP()
        return "done"

    assert TaskRunner(t).run().result == "done"
    assert seen == [None, "LOOP()"]


def test_loop_messages_seen_by_handlers() -> None:
    log: list[tuple[str, str, str]] = []

    def handler(t: Task, old: State, new: State) -> None:
        log.append((type(old).__name__, type(new).__name__, str(new.message)))

    @task(state_handlers=[handler])
    def t() -> int:
        n = context.get("task_loop_count", 1)
        if n == 1:
            raise signals.LOOP(result=1)
        if n == 2:
            raise signals.LOOP("custom message", result=2)
        return n

    assert TaskRunner(t).run().result == 3
    assert log == [
        ("Pending", "Running", "Starting task run."),
        ("Running", "Looped", "Task is looping (1)"),
        ("Pending", "Running", "Starting task run."),
        ("Running", "Looped", "custom message"),
        ("Pending", "Running", "Starting task run."),
        ("Running", "Success", "Task run succeeded."),
    ]


def test_loop_iterations_are_not_logged(logs: pytest.LogCaptureFixture) -> None:
    @task
    def t() -> None:
        if context.get("task_loop_count", 1) < 4:
            raise signals.LOOP(result=0)

    TaskRunner(t).run()
    assert logs.messages.count("Task 't': Starting task run...") == 1
    assert (
        logs.messages.count("Task 't': Finished task run for task with final state: 'Success'") == 1
    )


def test_many_iterations_do_not_hit_the_recursion_limit() -> None:
    @task
    def count_up() -> int:
        n = context.get("task_loop_count", 1)
        if n >= 3000:
            return n
        raise signals.LOOP(result=n)

    with Flow("f") as flow:
        c = count_up()
    state = flow.run()
    assert state is not None
    assert state.result[c].result == 3000


def test_loop_ending_in_failure() -> None:
    @task
    def t() -> None:
        if context.get("task_loop_count", 1) == 3:
            raise ValueError("third time")
        raise signals.LOOP(result=0)

    state = TaskRunner(t).run()
    assert type(state) is Failed
    assert state.message == "Error during execution of task: ValueError('third time')"


def test_loop_with_retry_resumes_at_the_same_iteration() -> None:
    seen: list[tuple[Any, Any, int]] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def looper() -> Any:
        n = context.get("task_loop_count")
        r = context.get("task_loop_result")
        seen.append((n, r, context.task_run_count))
        if n == 3 and [s[0] for s in seen].count(3) == 1:
            raise ValueError("fail at iteration 3")
        if (n or 1) >= 4:
            return r
        raise signals.LOOP(result=(n or 1) * 10)

    with Flow("f") as flow:
        loop = looper()
    state = flow.run()
    assert state is not None
    assert state.result[loop].result == 30
    # flowcore keeps task_run_count=2 for the rest of the retried attempt; Prefect 1.4.1
    # resets it to 1 after the first loop iteration of a retry (so it could retry forever)
    assert seen == [(None, None, 1), (2, 10, 1), (3, 20, 1), (3, 20, 2), (4, 30, 2)]


def test_loop_retry_limit_holds_across_iterations() -> None:
    attempts: list[int] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def looper() -> None:
        attempts.append(context.task_run_count)
        n = context.get("task_loop_count", 1)
        if len(attempts) > 20:
            raise RuntimeError("runaway")
        if n % 2 == 0:
            raise ValueError("every other iteration fails")
        raise signals.LOOP(result=n)

    state = TaskRunner(looper).run()
    while state.is_retrying():
        state = TaskRunner(looper).run(state=state)
    assert type(state) is Failed
    assert attempts == [1, 1, 2]


def test_looping_mapped_children_loop_independently() -> None:
    @task
    def countdown(start: int) -> int:
        value = context.get("task_loop_result", start)
        if value <= 0:
            return context.get("task_loop_count", 1)
        raise signals.LOOP(result=value - 1)

    with Flow("f") as flow:
        m = countdown.map([0, 2, 5])
    state = flow.run()
    assert state is not None
    assert state.result[m].result == [1, 3, 6]


def test_looped_is_not_cached_but_the_final_success_is() -> None:
    log: list[str] = []

    @task(
        cache_for=timedelta(minutes=1),
        state_handlers=[lambda t, o, n: log.append(type(n).__name__)],
    )
    def t() -> int:
        n = context.get("task_loop_count", 1)
        if n < 3:
            raise signals.LOOP(result=n)
        return n

    state = TaskRunner(t).run()
    assert type(state) is Cached
    assert state.result == 3
    assert log == ["Running", "Looped", "Running", "Looped", "Running", "Success", "Cached"]


def test_a_looped_state_given_is_final() -> None:
    looped = Looped(result=1)
    assert TaskRunner(Task()).run(state=looped) is looped


def test_a_retry_that_goes_on_with_a_loop_does_not_say_it_starts_again(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Prefect 1.4.1 writes "Starting task run..." only for a run that does not go on
    with a loop (``task_loop_count`` unset): a retry from the second loop iteration does."""
    runs = {"n": 0}

    @task(max_retries=2, retry_delay=timedelta(seconds=0))
    def loop_then_fail() -> int:
        runs["n"] += 1
        count = context.get("task_loop_count", 1)
        if count == 2 and runs["n"] == 2:
            raise ValueError("flaky at 2")
        if count < 4:
            raise signals.LOOP(result=count)
        return count

    with Flow("loop-retry") as flow:
        out = loop_then_fail()
    state = flow.run()
    assert state.result[out].result == 4 and runs["n"] == 5
    starts = [r for r in logs.records if r.getMessage().endswith("Starting task run...")]
    assert len(starts) == 1
