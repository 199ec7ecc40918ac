"""TaskRunner steps called the way Prefect 1 users' unit tests call them: on a runner made
inside ``with flowcore.context(...)``, without ``initialize_run`` or ``run``. Each step then
reads that context, calls the state handlers and turns signals into states, as inside a run.

Every expectation was verified against prefect 1.4.1 (the same calls on its TaskRunner),
except where a comment names a deliberate difference.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

import flowcore
from flowcore import Parameter, Task, task
from flowcore.core.edge import Edge
from flowcore.engine import signals
from flowcore.engine.cache_validators import duration_only
from flowcore.engine.result import Result
from flowcore.engine.results import LocalResult, PrefectResult
from flowcore.engine.runner import ENDRUN
from flowcore.engine.state import (
    Cached,
    Failed,
    Paused,
    Pending,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
)
from flowcore.engine.task_runner import TaskRunner
from flowcore.triggers import manual_only
from flowcore.utilities.configuration import set_temporary_config
from flowcore.utilities.debug import raise_on_exception


def later(minutes: int = 1) -> pendulum.DateTime:
    return pendulum.now("UTC").add(minutes=minutes)


def transitions(log: list[tuple[str, str]]) -> Any:
    def handler(obj: Any, old: State, new: State) -> None:
        log.append((type(old).__name__, type(new).__name__))

    return handler


# -- the runner's context -------------------------------------------------------------------


def test_runner_context_is_the_context_it_was_made_in() -> None:
    # verified against prefect 1.4.1 (TestContext.test_task_runner_inits_with_current_context)
    assert "chris" not in TaskRunner(Task()).context
    with flowcore.context(chris="foo"):
        runner = TaskRunner(Task())
    assert "chris" not in flowcore.context
    assert runner.context["chris"] == "foo"


def test_steps_read_the_context_current_at_the_call() -> None:
    # verified against prefect 1.4.1: its steps read prefect.context when called, so a runner
    # made outside the block sees the block's keys
    @task(result=PrefectResult())
    def fn(x: int) -> int:
        return x + 1

    runner = TaskRunner(fn)
    with flowcore.context(checkpointing=True):
        new = runner.get_task_run_state(state=Running(), inputs={"x": Result(2)})
    assert new._result.location == "3"


def test_initialize_run_fills_the_context_given() -> None:
    # verified against prefect 1.4.1: task_run_count, task_name and checkpointing (from
    # context.config.flows.checkpointing) are put in the context passed in
    with set_temporary_config({"flows.checkpointing": True}), flowcore.context() as ctx:
        assert "checkpointing" not in ctx
        result = TaskRunner(Task(name="t")).initialize_run(state=None, context=ctx)
        assert result.context is ctx
        assert (ctx.checkpointing, ctx.task_run_count, ctx.task_name) == (True, 1, "t")
    with flowcore.context() as ctx:
        TaskRunner(Task()).initialize_run(state=Retrying(run_count=2), context=ctx)
        assert ctx.task_run_count == 3


def test_initialize_run_with_a_bare_dict_reads_checkpointing_from_the_config() -> None:
    # as Prefect 1.4.1: no config in the context -> flowcore.config.flows.checkpointing
    with set_temporary_config({"flows.checkpointing": True}):
        _, context = TaskRunner(Task()).initialize_run(None, {})
    assert context["checkpointing"] is True


# -- check_target ---------------------------------------------------------------------------


def test_check_target_reads_a_template_filled_from_the_context(tmp_path: Path) -> None:
    # verified against prefect 1.4.1 (test_check_target_exists)
    LocalResult(dir=str(tmp_path), location="Task-test-file").write(1)
    result = LocalResult(dir=str(tmp_path))
    with flowcore.context(task_name="Task"):
        runner = TaskRunner(Task(target="{task_name}-test-file", result=result))
        new = runner.check_target(state=Running(result=result), inputs={})
    assert type(new) is Cached
    assert new.result == 1
    assert new._result.location == "Task-test-file"
    assert new.message == "Result found at task target Task-test-file"


def test_check_target_calls_the_state_handlers() -> None:
    # verified against prefect 1.4.1 (test_check_target_calls_state_handlers)
    log: list[tuple[str, str]] = []
    t = Task(target="42", result=PrefectResult(location="42"), state_handlers=[transitions(log)])
    new = TaskRunner(t).check_target(state=Pending(), inputs={})
    assert type(new) is Cached
    assert new.result == 42
    assert log == [("Pending", "Cached")]


def test_check_target_callable_receives_the_context(tmp_path: Path) -> None:
    # verified against prefect 1.4.1: the callable gets the context keys as keyword arguments
    # (a returned string with braces is formatted again by Prefect 1, not by flowcore:
    # docs/migrating.md, "A callable target is not formatted twice")
    LocalResult(dir=str(tmp_path), location="call-target").write(2)
    result = LocalResult(dir=str(tmp_path))
    with flowcore.context(task_name="target"):
        t = Task(target=lambda **kwargs: "call-" + kwargs["task_name"], result=result)
        new = TaskRunner(t).check_target(state=Pending(), inputs={})
    assert type(new) is Cached
    assert (new.result, new._result.location) == (2, "call-target")


@pytest.mark.parametrize(
    "state",
    [Failed(result=1), Skipped(result=1), Pending(result=1), Running(result=1)],
    ids=lambda s: type(s).__name__,
)
def test_check_target_without_a_value_there_keeps_the_state(state: State, tmp_path: Path) -> None:
    # verified against prefect 1.4.1 (test_check_target_not_exists, test_check_target)
    with_target = Task(target="missing", result=LocalResult(dir=str(tmp_path)))
    assert TaskRunner(with_target).check_target(state=state, inputs={}) is state
    assert TaskRunner(Task()).check_target(state=state, inputs={}) is state


# -- check_task_is_cached and cache_result --------------------------------------------------


@pytest.mark.parametrize("cache_key", [None, "FOO"])
def test_check_task_is_cached_reads_context_caches(cache_key: str | None) -> None:
    # verified against prefect 1.4.1 (test_reads_result_from_context[_with_cache_key]_if_
    # cached_valid): the valid candidate itself is returned
    cached = Cached(result=PrefectResult(value=2), cached_result_expiration=later())
    t = Task(cache_for=timedelta(minutes=1), cache_validator=duration_only, cache_key=cache_key)
    with flowcore.context(caches={cache_key or "Task": [cached]}):
        new = TaskRunner(t).check_task_is_cached(state=Pending(), inputs={"a": Result(1)})
    assert new is cached
    assert new.result == 2


def test_check_task_is_cached_keeps_a_pending_state_on_an_expired_entry() -> None:
    # verified against prefect 1.4.1: Pending goes on (Prefect 1 also logs a WARNING;
    # flowcore logs one INFO line saying why)
    expired = Cached(result=2, cached_result_expiration=later(-1))
    state = Pending()
    with flowcore.context(caches={"Task": [expired]}):
        new = TaskRunner(Task(cache_for=timedelta(minutes=1))).check_task_is_cached(state, {})
    assert new is state


def test_check_task_is_cached_prefers_the_state_given_over_the_caches() -> None:
    # verified against prefect 1.4.1 (test_state_kwarg_is_prioritized_over_context_caches)
    in_cache = Cached(result=PrefectResult(value=2), cached_result_expiration=later())
    given = Cached(result=PrefectResult(value=99), cached_result_expiration=later())
    with flowcore.context(caches={"Task": [in_cache]}):
        new = TaskRunner(Task(cache_for=timedelta(minutes=1))).check_task_is_cached(given, {})
    assert new is given


def test_cache_result_returns_a_new_cached_state() -> None:
    # verified against prefect 1.4.1 (test_success_state_with_cache_for): a new object that
    # keeps the message and the Result of the success
    @task(cache_for=timedelta(minutes=10))
    def fn(x: int) -> int:
        return x + 1

    success = Success(result=2, message="hello")
    new = TaskRunner(fn).cache_result(state=success, inputs={"x": Result(5)})
    assert new is not success
    assert type(new) is Cached
    assert (new.message, new.result) == ("hello", 2)
    assert new._result is success._result


# -- get_task_run_state: checkpointing --------------------------------------------------------


@pytest.mark.parametrize("checkpoint", [True, None])
def test_checkpointing_in_the_context_writes_the_result(checkpoint: bool | None) -> None:
    # verified against prefect 1.4.1 (test_success_state_with_checkpointing_in_context,
    # test_success_state_is_checkpointed_if_result_handler_present)
    @task(checkpoint=checkpoint, result=PrefectResult())
    def fn(x: int) -> int:
        return x + 1

    with flowcore.context(checkpointing=True):
        new = TaskRunner(fn).get_task_run_state(state=Running(), inputs={"x": Result(2)})
    assert type(new) is Success
    assert new._result.location == "3"
    with flowcore.context(checkpointing=False):
        new = TaskRunner(fn).get_task_run_state(state=Running(), inputs={"x": Result(2)})
    assert new._result.location is None


def test_parameter_success_is_checkpointed_as_json() -> None:
    # verified against prefect 1.4.1 (test_success_state_for_parameter)
    with flowcore.context(checkpointing=True):
        new = TaskRunner(Parameter("p", default=2)).get_task_run_state(state=Running(), inputs={})
    assert type(new) is Success
    assert isinstance(new._result, PrefectResult)
    assert new._result.location == "2"


class BadResult(Result):
    def write(self, value_: Any, **kwargs: Any) -> Result:
        raise SyntaxError("Oh boy")


@pytest.mark.parametrize(
    ("checkpoint", "expected"), [(True, Failed), (None, Failed), (False, Success)]
)
def test_a_result_that_cannot_be_written_fails_the_task(
    checkpoint: bool | None, expected: type[State]
) -> None:
    # verified against prefect 1.4.1 (test_success_state_with_bad_result_results_in_failed_
    # state, ..._and_checkpointing_disabled): Failed, the message naming the SyntaxError,
    # unless the task does not checkpoint
    @task(checkpoint=checkpoint, result=BadResult())
    def fn(x: int) -> int:
        return x + 1

    with flowcore.context(checkpointing=True):
        new = TaskRunner(fn).get_task_run_state(state=Running(), inputs={"x": Result(1)})
    assert type(new) is expected
    if expected is Failed:
        assert "SyntaxError" in str(new.message)
        assert isinstance(new.result, SyntaxError)


@pytest.mark.parametrize("error", [ValueError("boom"), signals.FAIL("no")], ids=["error", "FAIL"])
def test_raise_on_exception_applies_to_a_step_called_on_its_own(error: BaseException) -> None:
    # verified against prefect 1.4.1: under raise_on_exception() the step raises what the
    # task raised instead of returning a state
    @task
    def boom() -> None:
        raise error

    with raise_on_exception(), pytest.raises(type(error)):
        TaskRunner(boom).get_task_run_state(state=Running(), inputs={})


# -- set_task_run_name, check_for_retry, check_task_trigger ---------------------------------


def test_set_task_run_name_sets_it_in_the_current_context() -> None:
    # verified against prefect 1.4.1 (test_task_runner_set_task_name): the keyword is
    # task_inputs, and the name goes to the context current at the call
    runner = TaskRunner(Task(name="test", task_run_name="run-{x}"))
    with flowcore.context():
        runner.set_task_run_name(task_inputs={"x": Result(5)})
        assert flowcore.context.get("task_run_name") == "run-5"
    assert flowcore.context.get("task_run_name") is None
    callable_name = TaskRunner(Task(task_run_name=lambda **kwargs: "name"))
    with flowcore.context():
        callable_name.set_task_run_name(task_inputs={})
        assert flowcore.context.get("task_run_name") == "name"


def test_check_for_retry_counts_the_first_attempt_without_a_run_count() -> None:
    # verified against prefect 1.4.1 (test_failed_one_max_retry): no task_run_count in the
    # context is attempt 1
    new = TaskRunner(Task(max_retries=1, retry_delay=timedelta(0))).check_for_retry(
        state=Failed(), inputs={}
    )
    assert type(new) is Retrying
    assert new.run_count == 1
    assert new.message == "Retrying Task (after attempt 1 of 2)"


def test_check_for_retry_reads_the_run_count_from_the_context() -> None:
    # verified against prefect 1.4.1 (test_failed_one_max_retry_second_run)
    failed = Failed()
    with flowcore.context(task_run_count=2):
        runner = TaskRunner(Task(max_retries=1, retry_delay=timedelta(0)))
        assert runner.check_for_retry(state=failed, inputs={}) is failed


def test_check_for_retry_caches_the_inputs() -> None:
    # flowcore's input caching for retries (SPEC B1): the Retrying state carries its inputs,
    # so the retry can run without its upstream states (prefect 1.4.1 sets no
    # cached_inputs here and relies on the upstream states kept in memory)
    inputs = {"x": Result(1)}
    new = TaskRunner(Task(max_retries=1, retry_delay=timedelta(0))).check_for_retry(
        state=Failed(), inputs=inputs
    )
    assert type(new) is Retrying
    assert new.cached_inputs == inputs


def test_check_task_trigger_manual_only_with_plain_upstream_keys() -> None:
    # verified against prefect 1.4.1 (TestCheckTaskTrigger.test_manual_only): unit tests key
    # the upstream states by anything, not only by Edge. The Paused state's cached_inputs
    # (from the Edge keys) are flowcore's (SPEC B1); Prefect 1.4.1 leaves them empty.
    upstream_edge = Edge(Task(), Task(), key="x")
    upstream: dict[Any, State] = {1: Success(), 2: Pending(), upstream_edge: Success(result=3)}
    runner = TaskRunner(Task(trigger=manual_only))
    with pytest.raises(ENDRUN) as info:
        runner.check_task_trigger(state=Pending(), upstream_states=upstream)
    assert type(info.value.state) is Paused
    assert info.value.state.cached_inputs == {"x": upstream[upstream_edge]._result}
