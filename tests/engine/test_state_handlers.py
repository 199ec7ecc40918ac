"""State handlers: which transitions they see, and what they may do (reference 6.4, 7.2).

The transition sequences were checked against Prefect 1.4.1.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowcore import Flow, Task, task
from flowcore.engine import signals
from flowcore.engine.flow_runner import FlowRunner
from flowcore.engine.runner import ENDRUN
from flowcore.engine.state import Failed, Pending, Running, Skipped, State, Success, TriggerFailed
from flowcore.engine.task_runner import TaskRunner
from flowcore.utilities.debug import raise_on_exception

Transitions = list[tuple[str, str]]


def recorder(log: Transitions) -> Any:
    def handler(obj: Any, old: State, new: State) -> None:
        log.append((type(old).__name__, type(new).__name__))

    return handler


def test_success_sequence() -> None:
    log: Transitions = []

    @task(state_handlers=[recorder(log)])
    def t() -> int:
        return 1

    TaskRunner(t).run()
    assert log == [("Pending", "Running"), ("Running", "Success")]


def test_success_with_cache_for_sequence() -> None:
    log: Transitions = []

    @task(state_handlers=[recorder(log)], cache_for=timedelta(minutes=1))
    def t() -> int:
        return 1

    TaskRunner(t).run()
    assert log == [("Pending", "Running"), ("Running", "Success"), ("Success", "Cached")]


def test_failure_with_retry_sequence_across_passes() -> None:
    log: Transitions = []
    calls: list[int] = []

    @task(state_handlers=[recorder(log)], max_retries=1, retry_delay=timedelta(0))
    def t() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first attempt")
        return 1

    with Flow("f") as flow:
        t()
    assert flow.run().is_successful()
    assert log == [
        ("Pending", "Running"),
        ("Running", "Failed"),
        ("Failed", "Retrying"),
        ("Retrying", "Running"),
        ("Running", "Success"),
    ]


def test_trigger_failure_sequence() -> None:
    log: Transitions = []

    @task
    def bad() -> None:
        raise ValueError("x")

    @task(state_handlers=[recorder(log)])
    def after(x: Any) -> None:
        pass

    with Flow("f") as flow:
        after(bad())
    flow.run()
    assert log == [("Pending", "TriggerFailed")]


def test_skip_signal_and_upstream_skip_sequences() -> None:
    skipper_log: Transitions = []
    after_log: Transitions = []

    @task(state_handlers=[recorder(skipper_log)])
    def skipper() -> None:
        raise signals.SKIP("no")

    @task(state_handlers=[recorder(after_log)])
    def after(x: Any) -> None:
        pass

    with Flow("f") as flow:
        after(skipper())
    flow.run()
    assert skipper_log == [("Pending", "Running"), ("Running", "Skipped")]
    assert after_log == [("Pending", "Skipped")]


def test_cache_hit_sequence() -> None:
    log: Transitions = []

    @task(state_handlers=[recorder(log)], cache_for=timedelta(minutes=1))
    def t() -> int:
        return 1

    with Flow("f") as flow:
        t()
    flow.run()
    log.clear()
    flow.run()
    assert log == [("Pending", "Cached")]


def test_handler_return_value_replaces_the_state() -> None:
    seen: list[Any] = []

    def replace(t: Task, old: State, new: State) -> State | None:
        if isinstance(new, Success):
            return Success("replaced", result=99)
        return None

    def second(t: Task, old: State, new: State) -> None:
        seen.append(new.message)

    @task(state_handlers=[replace, second])
    def t() -> int:
        return 1

    state = TaskRunner(t).run()
    assert (state.message, state.result) == ("replaced", 99)
    assert seen == ["Starting task run.", "replaced"]


def test_handler_returning_none_keeps_the_state() -> None:
    @task(state_handlers=[lambda t, old, new: None])
    def t() -> int:
        return 1

    assert TaskRunner(t).run().result == 1


def test_handler_exception_fails_the_task_without_running_it() -> None:
    calls: list[int] = []
    error = ValueError("handler boom")

    def boom(t: Task, old: State, new: State) -> None:
        if isinstance(new, Running):
            raise error

    @task(state_handlers=[boom])
    def t() -> None:
        calls.append(1)

    state = TaskRunner(t).run()
    assert type(state) is Failed
    assert (
        state.message == "Unexpected error while calling state handlers: ValueError('handler boom')"
    )
    assert state.result is error
    assert calls == []


def test_handler_exception_after_success_fails_the_task() -> None:
    def boom(t: Task, old: State, new: State) -> None:
        if isinstance(new, Success):
            raise KeyError("late")

    @task(state_handlers=[boom])
    def t() -> int:
        return 1

    state = TaskRunner(t).run()
    assert type(state) is Failed
    assert state.message == "Unexpected error while calling state handlers: KeyError('late')"


def test_handler_raising_skip_becomes_the_state() -> None:
    calls: list[int] = []

    def skip(t: Task, old: State, new: State) -> None:
        if isinstance(new, Running):
            raise signals.SKIP("from handler")

    @task(state_handlers=[skip])
    def t() -> None:
        calls.append(1)

    state = TaskRunner(t).run()
    assert type(state) is Skipped
    assert state.message == "from handler"
    assert calls == []


def test_handler_raising_fail_after_success() -> None:
    def fail(t: Task, old: State, new: State) -> None:
        if isinstance(new, Success):
            raise signals.FAIL("late fail")

    @task(state_handlers=[fail])
    def t() -> int:
        return 1

    state = TaskRunner(t).run()
    assert type(state) is Failed
    assert state.message == "late fail"


def test_handler_raising_pause_pauses_the_task() -> None:
    def pause(t: Task, old: State, new: State) -> None:
        if isinstance(new, Running):
            raise signals.PAUSE("handler pause")

    @task(state_handlers=[pause])
    def t() -> int:
        return 1

    state = TaskRunner(t).run()
    assert state.message == "handler pause"
    assert type(state).__name__ == "Paused"


@pytest.mark.parametrize("level", ["task", "runner"])
def test_handler_returning_neither_a_state_nor_none_fails_the_task(level: str) -> None:
    # verified against prefect 1.4.1: a handler returning True ends the run Failed, and in
    # debug mode (raise_on_exception) raises AttributeError (Prefect 1: "'bool' object has
    # no attribute 'is_running'", one step later; flowcore names the handler's value)
    def make() -> TaskRunner:
        if level == "task":
            return TaskRunner(Task(state_handlers=[lambda *a: True]))
        return TaskRunner(Task(), state_handlers=[lambda *a: True])

    state = make().run()
    assert type(state) is Failed
    assert isinstance(state.result, AttributeError)
    with raise_on_exception(), pytest.raises(AttributeError):
        make().run()


def test_a_non_state_handler_result_reaches_the_next_handler() -> None:
    # verified against prefect 1.4.1: handlers are chained on the previous one's value, so
    # the next handler sees True (its assertion error is what debug mode raises)
    def strict(obj: Any, old: State, new: State) -> None:
        assert isinstance(new, State)

    with raise_on_exception(), pytest.raises(AssertionError):
        TaskRunner(Task(state_handlers=[lambda *a: True, strict])).run()
    with raise_on_exception(), pytest.raises(AssertionError):
        TaskRunner(Task(), state_handlers=[lambda *a: Ellipsis, strict]).run()


def test_steps_called_directly_call_the_handlers() -> None:
    # verified against prefect 1.4.1: a step called on its own (users' unit tests) calls the
    # task's and the runner's handlers on a change, and none when the state is unchanged
    log: Transitions = []
    runner = TaskRunner(Task(state_handlers=[recorder(log)]), state_handlers=[recorder(log)])
    assert type(runner.set_task_to_running(Pending(), inputs={})) is Running
    assert log == [("Pending", "Running"), ("Pending", "Running")]
    with pytest.raises(ENDRUN):
        runner.check_task_is_ready(Success())
    assert len(log) == 2


def test_runner_handlers_run_after_the_task_handlers() -> None:
    order: list[Any] = []

    def task_handler(t: Task, old: State, new: State) -> State | None:
        order.append(("task", t.name, type(new).__name__))
        if isinstance(new, Success):
            return Success("from task handler", result=2)
        return None

    def runner_handler(runner: Any, old: State, new: State) -> None:
        order.append(("runner", type(runner).__name__, new.message))

    @task(state_handlers=[task_handler])
    def t() -> int:
        return 1

    TaskRunner(t, state_handlers=[runner_handler]).run()
    assert order == [
        ("task", "t", "Running"),
        ("runner", "TaskRunner", "Starting task run."),
        ("task", "t", "Success"),
        ("runner", "TaskRunner", "from task handler"),
    ]


def test_task_runner_state_handlers_through_flow_run() -> None:
    log: Transitions = []

    @task
    def t() -> int:
        return 1

    with Flow("f") as flow:
        t()
    flow.run(task_runner_state_handlers=[recorder(log)])
    assert log == [("Pending", "Running"), ("Running", "Success")]


def test_on_failure_fires_on_every_failed_attempt() -> None:
    failures: list[tuple[str, str]] = []

    def on_failure(t: Task, state: State) -> None:
        failures.append((t.name, type(state).__name__))

    @task(on_failure=on_failure, max_retries=2, retry_delay=timedelta(0))
    def always() -> None:
        raise ValueError("x")

    @task(on_failure=on_failure)
    def after(x: Any) -> None:
        pass

    with Flow("f") as flow:
        after(always())
    flow.run()
    assert failures == [("always", "Failed")] * 3 + [("after", "TriggerFailed")]


def test_on_failure_not_called_on_success() -> None:
    failures: list[Any] = []

    @task(on_failure=lambda t, s: failures.append(s))
    def t() -> int:
        return 1

    TaskRunner(t).run()
    assert failures == []


def test_on_failure_fires_on_timeout() -> None:
    failures: list[str] = []

    @task(on_failure=lambda t, s: failures.append(type(s).__name__))
    def slow() -> None:
        import time

        time.sleep(1)

    slow.timeout = 0.05  # type: ignore[assignment]  # sub-second for speed; init takes ints
    TaskRunner(slow).run()
    assert failures == ["TimedOut"]


# -- flow handlers ----------------------------------------------------------------------------


def test_flow_state_handlers_see_the_flow_transitions() -> None:
    log: Transitions = []
    calls: list[int] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def t() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("retry me")

    with Flow("f", state_handlers=[recorder(log)]) as flow:
        t()
    flow.run()
    assert log == [("Scheduled", "Running"), ("Running", "Success")]


def test_flow_on_failure() -> None:
    failures: list[tuple[str, str]] = []

    @task
    def bad() -> None:
        raise ValueError("x")

    with Flow("f", on_failure=lambda f, s: failures.append((f.name, str(s.message)))) as flow:
        bad()
    flow.run()
    assert failures == [("f", "Some reference tasks failed.")]


def test_flow_handler_error_fails_the_flow(logs: pytest.LogCaptureFixture) -> None:
    def boom(f: Flow, old: State, new: State) -> None:
        if isinstance(new, Success):
            raise ValueError("flow handler")

    @task
    def t() -> int:
        return 1

    with Flow("f", state_handlers=[boom]) as flow:
        t()
    state = flow.run()
    assert state is not None
    assert type(state) is Failed
    assert (
        state.message == "Unexpected error while calling state handlers: ValueError('flow handler')"
    )
    assert isinstance(state.result, ValueError)
    assert "Unexpected error occured in FlowRunner: ValueError('flow handler')" in logs.messages


def test_flow_runner_level_handlers() -> None:
    log: list[Any] = []

    @task
    def t() -> int:
        return 1

    with Flow("f") as flow:
        t()

    def handler(runner: Any, old: State, new: State) -> None:
        log.append((type(runner).__name__, type(old).__name__, type(new).__name__))

    FlowRunner(flow, state_handlers=[handler]).run()
    assert log == [("FlowRunner", "Pending", "Running"), ("FlowRunner", "Running", "Success")]


def test_terminal_state_handler_replaces_the_flow_state() -> None:
    seen: list[Any] = []

    @task
    def bad() -> None:
        raise ValueError("x")

    def handler(flow: Flow, state: State, reference_states: set[State]) -> State:
        seen.append((type(state).__name__, sorted(type(s).__name__ for s in reference_states)))
        return Success("Overridden by the terminal state handler.")

    with Flow("f", terminal_state_handler=handler) as flow:
        b = bad()
    state = flow.run()
    assert state is not None
    assert type(state) is Success
    assert state.message == "Overridden by the terminal state handler."
    assert seen == [("Failed", ["Failed"])]
    # flowcore keeps the task states on a replacement that has no result (Prefect crashed)
    assert type(state.result[b]) is Failed


def test_terminal_state_handler_returning_none_keeps_the_state() -> None:
    @task
    def t() -> int:
        return 1

    with Flow("f", terminal_state_handler=lambda f, s, r: None) as flow:
        t()
    state = flow.run()
    assert state is not None
    assert state.message == "All reference tasks succeeded."


def test_terminal_state_handler_called_on_each_pass() -> None:
    seen: list[str] = []
    calls: list[int] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def t() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("retry me")

    def handler(flow: Flow, state: State, reference_states: set[State]) -> None:
        seen.append(type(state).__name__)

    with Flow("f", terminal_state_handler=handler) as flow:
        t()
    flow.run()
    assert seen == ["Running", "Success"]


def test_mapped_children_call_the_handlers() -> None:
    log: list[str] = []

    def handler(t: Task, old: State, new: State) -> None:
        from flowcore import context

        log.append(f"{context.task_full_name}:{type(new).__name__}")

    @task(state_handlers=[handler])
    def double(x: int) -> int:
        return 2 * x

    with Flow("f") as flow:
        double.map([1, 2])
    flow.run()
    assert log == [
        "double:Mapped",
        "double[0]:Running",
        "double[0]:Success",
        "double[1]:Running",
        "double[1]:Success",
    ]


def test_trigger_failed_state_handed_to_handler_is_the_final_state() -> None:
    finals: list[State] = []

    @task
    def bad() -> None:
        raise ValueError("x")

    @task(state_handlers=[lambda t, old, new: finals.append(new)])
    def after(x: Any) -> None:
        pass

    with Flow("f") as flow:
        a = after(bad())
    state = flow.run()
    assert state is not None
    assert finals == [state.result[a]]
    assert type(finals[0]) is TriggerFailed
