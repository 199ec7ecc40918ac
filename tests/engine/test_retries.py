"""Retries: max_retries, retry_delay, retry_on, RETRY, and the passes of flow.run
(reference 6.13, 7.3, 7.5). Behaviours checked against Prefect 1.4.1."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pendulum
import pytest

from flowcore import Flow, Task, context, task
from flowcore.core.edge import Edge
from flowcore.engine import signals
from flowcore.engine.flow_runner import FlowRunner
from flowcore.engine.result import Result
from flowcore.engine.state import (
    Failed,
    Pending,
    Retrying,
    State,
    TriggerFailed,
)
from flowcore.engine.task_runner import TaskRunner

NO_DELAY = timedelta(0)


def run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


def test_total_attempts_is_max_retries_plus_one() -> None:
    counts: list[int] = []

    @task(max_retries=2, retry_delay=NO_DELAY)
    def always() -> None:
        counts.append(context.task_run_count)
        raise ValueError("never works")

    with Flow("f") as flow:
        a = always()
    state = run(flow)
    assert counts == [1, 2, 3]
    assert type(state.result[a]) is Failed
    assert state.message == "Some reference tasks failed."


def test_retrying_messages() -> None:
    messages: list[str] = []

    def handler(t: Task, old: State, new: State) -> None:
        if isinstance(new, Retrying):
            messages.append(str(new.message))

    @task(max_retries=2, retry_delay=NO_DELAY, state_handlers=[handler])
    def always() -> None:
        raise ValueError("x")

    with Flow("f") as flow:
        always()
    run(flow)
    assert messages == [
        "Retrying Task (after attempt 1 of 3)",
        "Retrying Task (after attempt 2 of 3)",
    ]


def test_retry_then_success() -> None:
    counts: list[int] = []

    @task(max_retries=3, retry_delay=NO_DELAY)
    def flaky() -> str:
        counts.append(context.task_run_count)
        if len(counts) < 2:
            raise ValueError("not yet")
        return "done"

    with Flow("f") as flow:
        f = flaky()
    state = run(flow)
    assert state.is_successful()
    assert state.result[f].result == "done"
    assert counts == [1, 2]


def test_retry_on_matching_exception_retries() -> None:
    counts: list[int] = []

    @task(max_retries=1, retry_delay=NO_DELAY, retry_on=[KeyError, ValueError])
    def t() -> None:
        counts.append(1)
        raise ValueError("x")

    with Flow("f") as flow:
        t()
    run(flow)
    assert len(counts) == 2


def test_retry_on_matches_subclasses() -> None:
    counts: list[int] = []

    @task(max_retries=1, retry_delay=NO_DELAY, retry_on=LookupError)
    def t() -> None:
        counts.append(1)
        raise KeyError("x")

    with Flow("f") as flow:
        t()
    run(flow)
    assert len(counts) == 2


def test_retry_on_not_matching_fails_at_once() -> None:
    counts: list[int] = []

    @task(max_retries=2, retry_delay=NO_DELAY, retry_on=KeyError)
    def t() -> None:
        counts.append(1)
        raise ValueError("x")

    with Flow("f") as flow:
        a = t()
    state = run(flow)
    assert counts == [1]
    assert type(state.result[a]) is Failed


def test_retry_on_and_fail_signal_without_result() -> None:
    # Prefect 1.4.1: a failure whose result is None is retried whatever retry_on says
    counts: list[int] = []

    @task(max_retries=2, retry_delay=NO_DELAY, retry_on=KeyError)
    def t() -> None:
        counts.append(1)
        raise signals.FAIL("no result", result=None)

    with Flow("f") as flow:
        t()
    run(flow)
    assert counts == [1, 1, 1]


def test_fail_signal_is_retried() -> None:
    counts: list[int] = []

    @task(max_retries=1, retry_delay=NO_DELAY)
    def t() -> None:
        counts.append(1)
        raise signals.FAIL("x")

    with Flow("f") as flow:
        t()
    run(flow)
    assert len(counts) == 2


def test_triggerfail_raised_in_run_is_retried() -> None:
    counts: list[int] = []

    @task(max_retries=2, retry_delay=NO_DELAY)
    def t() -> None:
        counts.append(context.task_run_count)
        raise signals.TRIGGERFAIL("from run")

    with Flow("f") as flow:
        a = t()
    state = run(flow)
    assert counts == [1, 2, 3]
    assert type(state.result[a]) is TriggerFailed


def test_downstream_waits_for_the_retrying_task() -> None:
    order: list[str] = []

    @task(max_retries=1, retry_delay=NO_DELAY)
    def flaky() -> int:
        order.append("flaky")
        if order.count("flaky") == 1:
            raise ValueError("first")
        return 5

    @task
    def down(x: int) -> int:
        order.append("down")
        return x * 2

    with Flow("f") as flow:
        d = down(flaky())
    state = run(flow)
    assert order == ["flaky", "flaky", "down"]
    assert state.result[d].result == 10


def test_downstream_is_pending_during_the_retrying_pass() -> None:
    @task(max_retries=1, retry_delay=timedelta(minutes=5))
    def flaky() -> int:
        raise ValueError("first")

    @task
    def down(x: int) -> int:
        return x

    with Flow("f") as flow:
        f = flaky()
        d = down(f)
    state = FlowRunner(flow).run(return_tasks=[f, d])
    assert state.is_running()
    assert type(state.result[f]) is Retrying
    assert type(state.result[d]) is Pending


def test_retrying_state_carries_cached_inputs() -> None:
    @task(max_retries=1, retry_delay=timedelta(minutes=5))
    def needs(x: int, y: int) -> None:
        raise ValueError("later")

    with Flow("f") as flow:
        n = needs(1, y=2)
    state = FlowRunner(flow).run(return_tasks=[n])
    retrying = state.result[n]
    assert type(retrying) is Retrying
    assert {k: r.value for k, r in (retrying.cached_inputs or {}).items()} == {"x": 1, "y": 2}
    assert retrying.run_count == 1


def test_retrying_state_with_cached_inputs_runs_without_upstream_states() -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    state = Retrying(
        run_count=1, start_time=pendulum.now("UTC"), cached_inputs={"x": Result(1), "y": Result(2)}
    )
    upstream = {Edge(Task(), add, key="x"): Pending("Task state not available.")}
    new = TaskRunner(add).run(state=state, upstream_states=upstream)
    assert new.result == 3


def test_task_states_retrying_is_honoured() -> None:
    counts: list[int] = []

    @task
    def t() -> str:
        counts.append(context.task_run_count)
        return "ran"

    with Flow("f") as flow:
        a = t()
    retrying = Retrying(run_count=2, start_time=pendulum.now("UTC").add(seconds=0.1))
    state = run(flow, task_states={a: retrying})
    assert counts == [3]
    assert state.result[a].result == "ran"


def test_task_states_retrying_in_the_future_holds_a_single_pass() -> None:
    counts: list[int] = []

    @task
    def t() -> None:
        counts.append(1)

    with Flow("f") as flow:
        a = t()
    retrying = Retrying(start_time=pendulum.now("UTC").add(hours=1))
    state = FlowRunner(flow).run(task_states={a: retrying}, return_tasks=[a])
    assert state.result[a] is retrying
    assert counts == []


def test_flow_run_sleeps_until_the_retry_is_due(logs: pytest.LogCaptureFixture) -> None:
    retry_at: list[datetime] = []
    attempts: list[datetime] = []

    def handler(t: Task, old: State, new: State) -> None:
        if isinstance(new, Retrying):
            retry_at.append(new.start_time)

    @task(max_retries=1, retry_delay=timedelta(seconds=0.15), state_handlers=[handler])
    def flaky() -> None:
        attempts.append(datetime.now(timezone.utc))
        if len(attempts) == 1:
            raise ValueError("first")

    with Flow("f") as flow:
        flaky()
    assert run(flow).is_successful()
    assert len(attempts) == 2
    assert attempts[1] >= retry_at[0]
    # one pass per attempt: flow.run sleeps rather than spinning through passes
    assert logs.messages.count("Beginning Flow run for 'f'") == 2
    assert any(m.startswith("Waiting for next available Task run at ") for m in logs.messages)


def test_retry_signal_bypasses_max_retries() -> None:
    counts: list[int] = []

    @task
    def stubborn() -> str:
        counts.append(context.task_run_count)
        if len(counts) < 4:
            raise signals.RETRY("again")
        return "finally"

    with Flow("f") as flow:
        s = stubborn()
    state = run(flow)
    assert counts == [1, 2, 3, 4]
    assert state.result[s].result == "finally"


def test_retry_signal_start_time() -> None:
    later = pendulum.now("UTC").add(hours=1)

    @task
    def t() -> None:
        raise signals.RETRY("tomorrow", start_time=later)

    state = TaskRunner(t).run()
    assert type(state) is Retrying
    assert state.start_time == later


def test_retry_signal_ignores_retry_on() -> None:
    counts: list[int] = []

    @task(max_retries=1, retry_delay=NO_DELAY, retry_on=KeyError)
    def t() -> None:
        counts.append(1)
        if len(counts) < 3:
            raise signals.RETRY("again")

    with Flow("f") as flow:
        t()
    assert run(flow).is_successful()
    assert len(counts) == 3


def test_task_run_count_in_context_on_each_attempt_through_task_runner() -> None:
    counts: list[int] = []

    @task(max_retries=2, retry_delay=NO_DELAY)
    def t() -> None:
        counts.append(context.task_run_count)
        raise ValueError("x")

    state: State = TaskRunner(t).run()
    while isinstance(state, Retrying):
        state = TaskRunner(t).run(state=state)
    assert counts == [1, 2, 3]
    assert type(state) is Failed


def test_finished_upstream_is_not_rerun_in_retry_passes() -> None:
    calls: list[str] = []

    @task
    def source() -> int:
        calls.append("source")
        return 1

    @task(max_retries=2, retry_delay=NO_DELAY)
    def flaky(x: int) -> int:
        calls.append("flaky")
        if calls.count("flaky") < 3:
            raise ValueError("x")
        return x

    with Flow("f") as flow:
        flaky(source())
    assert run(flow).is_successful()
    assert calls == ["source", "flaky", "flaky", "flaky"]


def test_retry_gets_the_same_input_values() -> None:
    seen: list[Any] = []

    @task
    def source() -> list[int]:
        return [1, 2]

    @task(max_retries=1, retry_delay=NO_DELAY)
    def flaky(x: list[int]) -> None:
        seen.append(list(x))
        if len(seen) == 1:
            raise ValueError("x")

    with Flow("f") as flow:
        flaky(source())
    run(flow)
    assert seen == [[1, 2], [1, 2]]


def test_success_is_not_retried() -> None:
    counts: list[int] = []

    @task(max_retries=3, retry_delay=NO_DELAY)
    def t() -> None:
        counts.append(1)

    with Flow("f") as flow:
        t()
    assert run(flow).is_successful()
    assert counts == [1]
