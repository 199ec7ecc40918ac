"""TaskRunner steps called one by one on literal states (reference 6.2).

Each step either returns a state (the same object when nothing changes) or raises
``ENDRUN(state)``; these tests pin which, for every step.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
import pytest

from flowcore import Flow, Task, context, task
from flowcore.core.edge import Edge
from flowcore.engine import signals
from flowcore.engine.cache_validators import all_inputs
from flowcore.engine.result import NoResult, Result
from flowcore.engine.runner import ENDRUN
from flowcore.engine.state import (
    Cached,
    Failed,
    Looped,
    Mapped,
    Paused,
    Pending,
    Queued,
    Resume,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Submitted,
    Success,
    TimedOut,
    TriggerFailed,
)
from flowcore.engine.task_runner import TaskRunner, TaskRunnerInitializeResult
from flowcore.exceptions import TaskTimeoutSignal
from flowcore.triggers import manual_only
from flowcore.utilities.configuration import set_temporary_config

SKIP_MESSAGE = (
    "Upstream task was skipped; if this was not the intended behavior, consider changing "
    "`skip_on_upstream_skip=False` for this task."
)


def ready_runner(t: Task, state: State | None = None, **context: Any) -> TaskRunner:
    """A runner whose ``initialize_run`` has filled its context (as ``run`` does)."""
    runner = TaskRunner(t)
    runner.initialize_run(state, dict(context))
    return runner


def edge(key: str | None = "x", mapped: bool = False, downstream: Task | None = None) -> Edge:
    return Edge(Task(name="up"), downstream or Task(name="down"), key=key, mapped=mapped)


def now() -> pendulum.DateTime:
    return pendulum.now("UTC")


# -- initialize_run ---------------------------------------------------------------------------


def test_initialize_run_none_becomes_pending_and_fills_task_keys() -> None:
    t = Task(name="t", tags=["a", "b"])
    context: dict[str, Any] = {}
    result = TaskRunner(t).initialize_run(None, context)
    assert isinstance(result, TaskRunnerInitializeResult)
    assert type(result.state) is Pending
    assert result.context is context
    assert context["task_name"] == "t"
    assert context["task_full_name"] == "t"
    assert context["task_tags"] == {"a", "b"}
    assert context["task_run_count"] == 1
    assert context["map_index"] is None
    assert context["checkpointing"] is False
    assert context["logger"] is t.logger
    assert "resume" not in context


def test_initialize_run_unwraps_nested_meta_states() -> None:
    inner = Pending("inner")
    state, _ = TaskRunner(Task()).initialize_run(Queued(state=Submitted(state=inner)), {})
    assert state is inner


def test_initialize_run_counts_attempts_from_a_wrapped_retrying_state() -> None:
    state, context = TaskRunner(Task()).initialize_run(Submitted(state=Retrying(run_count=3)), {})
    assert isinstance(state, Retrying)
    assert context["task_run_count"] == 4


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (Retrying(run_count=1), 2),
        (Retrying(run_count=2), 3),
        (Pending(context={"task_run_count": 4}), 4),
        (Scheduled(context={"task_run_count": 2}), 2),
        (Pending(), 1),
    ],
)
def test_initialize_run_task_run_count(state: State, expected: int) -> None:
    _, context = TaskRunner(Task()).initialize_run(state, {})
    assert context["task_run_count"] == expected


def test_initialize_run_sets_resume_for_resume_state() -> None:
    _, context = TaskRunner(Task()).initialize_run(Resume(), {})
    assert context["resume"] is True


def test_initialize_run_sets_resume_for_elapsed_pause() -> None:
    _, context = TaskRunner(Task()).initialize_run(Paused(start_time=now().subtract(seconds=1)), {})
    assert context["resume"] is True


@pytest.mark.parametrize("start_time", [None, "future"])
def test_initialize_run_does_not_resume_a_pause_still_waiting(start_time: str | None) -> None:
    when = now().add(hours=1) if start_time == "future" else None
    _, context = TaskRunner(Task()).initialize_run(Paused(start_time=when), {})
    assert "resume" not in context


def test_initialize_run_restores_loop_count_and_result_from_state() -> None:
    state = Retrying(run_count=1, result=7, context={"_loop_count": 3})
    _, context = TaskRunner(Task()).initialize_run(state, {})
    assert context["task_loop_count"] == 3
    assert context["task_loop_result"] == 7
    assert context["task_run_count"] == 2


def test_initialize_run_without_loop_context_sets_no_loop_keys() -> None:
    _, context = TaskRunner(Task()).initialize_run(Retrying(result=7), {})
    assert "task_loop_count" not in context
    assert "task_loop_result" not in context


def test_initialize_run_mapped_child_names_and_logger() -> None:
    t = Task(name="t")
    _, context = TaskRunner(t).initialize_run(None, {"map_index": 2})
    assert context["task_full_name"] == "t[2]"
    assert context["logger"].name == "flowcore.t[2]"
    assert context["task_name"] == "t"


def test_initialize_run_keeps_given_checkpointing_flag() -> None:
    _, context = TaskRunner(Task()).initialize_run(None, {"checkpointing": True})
    assert context["checkpointing"] is True


def test_initialize_run_reads_checkpointing_from_config() -> None:
    with set_temporary_config({"flows.checkpointing": True}):
        from flowcore import config

        _, context = TaskRunner(Task()).initialize_run(None, {"config": config})
    assert context["checkpointing"] is True


# -- check_task_is_ready ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [Pending(), Scheduled(), Retrying(), Paused(), Resume(), Cached(), Mapped()],
    ids=lambda s: type(s).__name__,
)
def test_check_task_is_ready_passes_states_that_can_run(state: State) -> None:
    assert TaskRunner(Task()).check_task_is_ready(state) is state


@pytest.mark.parametrize(
    "state",
    [Running(), Success(), Failed(), Skipped(), Looped(), TimedOut(), TriggerFailed()],
    ids=lambda s: type(s).__name__,
)
def test_check_task_is_ready_ends_run_unchanged(state: State) -> None:
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_task_is_ready(state)
    assert info.value.state is state


# -- check_task_reached_start_time ------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        Scheduled(start_time=pendulum.now("UTC").add(hours=1)),
        Retrying(start_time=pendulum.now("UTC").add(hours=1)),
        Paused(),
        Paused(start_time=pendulum.now("UTC").add(hours=1)),
    ],
    ids=["scheduled", "retrying", "paused-forever", "paused-until"],
)
def test_check_task_reached_start_time_waits(state: State) -> None:
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_task_reached_start_time(state)
    assert info.value.state is state


@pytest.mark.parametrize(
    "state",
    [
        Pending(),
        Scheduled(start_time=pendulum.now("UTC").subtract(seconds=1)),
        Retrying(start_time=pendulum.now("UTC").subtract(seconds=1)),
        Resume(),
    ],
    ids=["pending", "scheduled-past", "retrying-past", "resume"],
)
def test_check_task_reached_start_time_passes(state: State) -> None:
    assert TaskRunner(Task()).check_task_reached_start_time(state) is state


# -- check_upstream_finished / check_upstream_skipped -----------------------------------------


def test_check_upstream_finished_passes_when_all_finished() -> None:
    state = Pending()
    upstream = {edge("x"): Success(), edge("y", mapped=True): Failed(), edge(None): Skipped()}
    assert TaskRunner(Task()).check_upstream_finished(state, upstream) is state


@pytest.mark.parametrize(
    "unfinished", [Pending(), Retrying(), Running(), Paused()], ids=lambda s: type(s).__name__
)
def test_check_upstream_finished_ends_run_with_current_state(unfinished: State) -> None:
    state = Pending("mine")
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_upstream_finished(
            state, {edge("x"): Success(), edge("y"): unfinished}
        )
    assert info.value.state is state


def test_check_upstream_finished_expands_mapped_upstream_on_unmapped_edge() -> None:
    parent = Mapped(map_states=[Success(), Retrying()])
    with pytest.raises(ENDRUN):
        TaskRunner(Task()).check_upstream_finished(Pending(), {edge("x"): parent})


def test_check_upstream_finished_does_not_expand_mapped_edge() -> None:
    parent = Mapped(map_states=[Success(), Retrying()])
    state = Pending()
    assert (
        TaskRunner(Task()).check_upstream_finished(state, {edge("x", mapped=True): parent}) is state
    )


def test_check_upstream_finished_uses_cached_inputs_for_missing_upstream() -> None:
    state = Retrying(cached_inputs={"x": Result(1)})
    upstream = {edge("x"): Pending("Task state not available.")}
    assert TaskRunner(Task()).check_upstream_finished(state, upstream) is state


def test_check_upstream_skipped_ends_run_skipped() -> None:
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_upstream_skipped(
            Pending(), {edge("x"): Success(), edge(None): Skipped()}
        )
    assert type(info.value.state) is Skipped
    assert info.value.state.message == SKIP_MESSAGE
    assert info.value.state.result is None


def test_check_upstream_skipped_sees_a_skipped_mapped_child() -> None:
    parent = Mapped(map_states=[Success(), Skipped()])
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_upstream_skipped(Pending(), {edge("x"): parent})
    assert type(info.value.state) is Skipped


def test_check_upstream_skipped_ignores_children_on_mapped_edge() -> None:
    parent = Mapped(map_states=[Success(), Skipped()])
    state = Pending()
    assert (
        TaskRunner(Task()).check_upstream_skipped(state, {edge("x", mapped=True): parent}) is state
    )


def test_check_upstream_skipped_off_passes() -> None:
    state = Pending()
    runner = TaskRunner(Task(skip_on_upstream_skip=False))
    assert runner.check_upstream_skipped(state, {edge("x"): Skipped()}) is state


# -- get_task_inputs --------------------------------------------------------------------------


def test_get_task_inputs_keyed_edges_give_result_objects() -> None:
    one = Success(result=1)
    inputs = TaskRunner(Task()).get_task_inputs(
        Pending(), {edge("x"): one, edge(None): Success(result=5)}
    )
    assert inputs == {"x": one._result}
    assert inputs["x"] is one._result


def test_get_task_inputs_falls_back_on_cached_inputs() -> None:
    cached = {"x": Result(10), "y": Result(20)}
    state = Retrying(cached_inputs=cached)
    inputs = TaskRunner(Task()).get_task_inputs(
        state, {edge("x"): Pending("Task state not available.")}
    )
    assert {k: r.value for k, r in inputs.items()} == {"x": 10, "y": 20}


def test_get_task_inputs_prefers_finished_upstream_over_cached_inputs() -> None:
    state = Retrying(cached_inputs={"x": Result(10)})
    inputs = TaskRunner(Task()).get_task_inputs(state, {edge("x"): Success(result=99)})
    assert inputs["x"].value == 99


# -- check_task_ready_to_map ------------------------------------------------------------------


def test_check_task_ready_to_map_counts_the_shortest_input() -> None:
    upstream = {
        edge("x", mapped=True): Success(result=[1, 2, 3]),
        edge("y", mapped=True): Success(result=[1, 2]),
        edge("z"): Success(result=[1, 2, 3, 4, 5]),
    }
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_task_ready_to_map(Pending(), upstream)
    assert type(info.value.state) is Mapped
    assert info.value.state.message == "Ready to proceed with mapping."
    assert info.value.state.n_map_states == 2


def test_check_task_ready_to_map_over_mapped_upstream_uses_its_width() -> None:
    upstream = {
        edge("x", mapped=True): Mapped(n_map_states=4),
        edge("y", mapped=True): Success(result="abcde"),
    }
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_task_ready_to_map(Pending(), upstream)
    assert info.value.state.n_map_states == 4


def test_check_task_ready_to_map_without_upstreams_maps_nothing() -> None:
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_task_ready_to_map(Pending(), {})
    assert type(info.value.state) is Mapped
    assert info.value.state.n_map_states == 0


@pytest.mark.parametrize(
    "upstream",
    [
        {edge("x", mapped=True): Failed()},
        {edge("x", mapped=True): Pending()},
        {edge("x"): Success(result=[1, 2])},
    ],
    ids=["failed", "pending", "unmapped-only"],
)
def test_check_task_ready_to_map_nothing_to_map_over(upstream: dict[Edge, State]) -> None:
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_task_ready_to_map(Pending(), upstream)
    assert type(info.value.state) is Failed
    assert info.value.state.message == "No upstream states can be mapped over."


def test_check_task_ready_to_map_unmappable_result() -> None:
    upstream = {
        edge("x", mapped=True): Success(result=5),
        edge("y", mapped=True): Success(result=[1]),
    }
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_task_ready_to_map(Pending(), upstream)
    assert type(info.value.state) is Failed
    assert info.value.state.message == "At least one upstream state has an unmappable result."


def test_check_task_ready_to_map_rerun_keeps_mapped_state_and_records_inputs() -> None:
    state = Mapped(map_states=[Success(), Retrying()])
    upstream_state = Success(result=[1, 2])
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_task_ready_to_map(
            state, {edge("x", mapped=True): upstream_state, edge(None): Success()}
        )
    assert info.value.state is state
    assert state.cached_inputs == {"x": upstream_state._result}


# -- set_task_run_name / formatting_kwargs ----------------------------------------------------


def test_set_task_run_name_formats_template_with_inputs_and_parameters() -> None:
    runner = ready_runner(Task(task_run_name="run-{x}-{p}-{task_name}"), parameters={"p": 9})
    runner.set_task_run_name({"x": Result(3)})
    assert runner.context["task_run_name"] == "run-3-9-Task"


def test_set_task_run_name_calls_a_callable() -> None:
    def name(**kwargs: Any) -> str:
        return f"{kwargs['task_full_name']}:{kwargs['x'] * 2}"

    runner = ready_runner(Task(task_run_name=name), map_index=1)
    runner.set_task_run_name({"x": Result(21)})
    assert runner.context["task_run_name"] == "Task[1]:42"


def test_set_task_run_name_absent_sets_nothing() -> None:
    runner = ready_runner(Task())
    runner.set_task_run_name({"x": Result(1)})
    assert "task_run_name" not in runner.context


def test_formatting_kwargs_order_parameters_context_inputs() -> None:
    runner = ready_runner(
        Task(), parameters={"a": "param", "b": "param", "c": "param"}, b="ctx", c="ctx"
    )
    kwargs = runner.formatting_kwargs({"c": Result("input"), "self": Result("dropped")})
    assert (kwargs["a"], kwargs["b"], kwargs["c"]) == ("param", "ctx", "input")
    assert "self" not in kwargs


# -- check_task_is_cached ---------------------------------------------------------------------


def test_check_task_is_cached_keeps_a_valid_incoming_cached_state() -> None:
    state = Cached(result=1, cached_result_expiration=now().add(minutes=1))
    runner = ready_runner(Task(cache_for=timedelta(minutes=1)))
    assert runner.check_task_is_cached(state, {}) is state


def test_check_task_is_cached_invalid_incoming_state_becomes_pending() -> None:
    state = Cached(result=1, cached_result_expiration=now().subtract(minutes=1))
    new = ready_runner(Task(cache_for=timedelta(minutes=1))).check_task_is_cached(state, {})
    assert type(new) is Pending
    assert new.message == "Cache was invalid; ready to run."


def test_an_invalid_incoming_cached_state_still_lets_the_run_s_caches_be_looked_in() -> None:
    """Prefect 1.4.1: flow.run(task_states={t: expired Cached}) with a valid entry of the
    task in the run's caches is a hit from the caches, not a run."""
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1))
    def c1() -> str:
        calls.append(1)
        return "fresh"

    with Flow("given-and-cached") as flow:
        out = c1()
    expired = Cached(result="old", cached_result_expiration=now().subtract(hours=1))
    valid = Cached(result="from-cache", cached_result_expiration=now().add(hours=1))
    with context(caches={"c1": [valid]}):
        state = flow.run(task_states={out: expired})
    assert calls == [] and isinstance(state.result[out], Cached)
    assert state.result[out].result == "from-cache"


def test_check_task_is_cached_incoming_cached_checked_even_without_cache_for() -> None:
    state = Cached(result=1)
    # no cache_for: the validator is never_use, so the Cached state is not trusted
    assert type(ready_runner(Task()).check_task_is_cached(state, {})) is Pending


def test_check_task_is_cached_without_cache_for_is_a_no_op() -> None:
    state = Pending()
    caches = {"Task": [Cached(result=1, cached_result_expiration=now().add(minutes=1))]}
    assert ready_runner(Task(), caches=caches).check_task_is_cached(state, {}) is state


def test_check_task_is_cached_returns_first_valid_candidate_itself() -> None:
    expired = Cached(result=0, cached_result_expiration=now().subtract(minutes=1))
    good = Cached(result=1, cached_result_expiration=now().add(minutes=1))
    later = Cached(result=2, cached_result_expiration=now().add(minutes=1))
    runner = ready_runner(
        Task(name="t", cache_for=timedelta(minutes=1)), caches={"t": [expired, good, later]}
    )
    assert runner.check_task_is_cached(Pending(), {}) is good


def test_check_task_is_cached_uses_cache_key_over_name() -> None:
    hit = Cached(result=1, cached_result_expiration=now().add(minutes=1))
    t = Task(name="t", cache_for=timedelta(minutes=1), cache_key="shared")
    runner = ready_runner(t, caches={"t": [], "shared": [hit]})
    assert runner.check_task_is_cached(Pending(), {}) is hit


def test_check_task_is_cached_validator_sees_input_values() -> None:
    cached = Cached(
        result=1,
        cached_result_expiration=now().add(minutes=1),
        hashed_inputs=None,
        cached_inputs={"x": Result(1)},
    )
    t = Task(name="t", cache_for=timedelta(minutes=1), cache_validator=all_inputs)
    runner = ready_runner(t, caches={"t": [cached]})
    assert runner.check_task_is_cached(Pending(), {"x": Result(1)}) is cached
    state = Pending()
    assert runner.check_task_is_cached(state, {"x": Result(2)}) is state


def test_check_task_is_cached_miss_on_empty_cache_logs_nothing(
    logs: pytest.LogCaptureFixture,
) -> None:
    runner = ready_runner(Task(name="t", cache_for=timedelta(minutes=1)), caches={})
    state = Pending()
    assert runner.check_task_is_cached(state, {}) is state
    assert not [r for r in logs.records if "cache" in r.getMessage().lower()]


def test_check_task_is_cached_miss_with_stale_records_says_so(
    logs: pytest.LogCaptureFixture,
) -> None:
    stale = Cached(result=1, cached_result_expiration=now().subtract(minutes=1))
    runner = ready_runner(Task(name="t", cache_for=timedelta(minutes=1)), caches={"t": [stale]})
    runner.check_task_is_cached(Pending(), {})
    lines = [r for r in logs.records if "cache miss" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert "cache miss for key 't': the cached value expired at" in lines[0].getMessage()


# -- check_task_trigger -----------------------------------------------------------------------


def test_check_task_trigger_passing_returns_state() -> None:
    state = Pending()
    assert TaskRunner(Task()).check_task_trigger(state, {edge("x"): Success()}) is state


def test_check_task_trigger_false_is_trigger_failed() -> None:
    runner = TaskRunner(Task(trigger=lambda upstream: False))
    with pytest.raises(ENDRUN) as info:
        runner.check_task_trigger(Pending(), {edge("x"): Success()})
    assert type(info.value.state) is TriggerFailed
    assert info.value.state.message == "Trigger failed"


def test_check_task_trigger_default_on_failed_upstream() -> None:
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).check_task_trigger(Pending(), {edge("x"): Failed()})
    assert type(info.value.state) is TriggerFailed
    assert (
        info.value.state.message
        == 'Trigger was "all_successful" but some of the upstream tasks failed.'
    )
    assert isinstance(info.value.state.result, signals.TRIGGERFAIL)


def test_check_task_trigger_signal_gives_its_state() -> None:
    def trigger(upstream: dict[Edge, State]) -> bool:
        raise signals.SKIP("not today")

    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task(trigger=trigger)).check_task_trigger(Pending(), {})
    assert type(info.value.state) is Skipped
    assert info.value.state.message == "not today"


def test_check_task_trigger_error_is_trigger_failed_with_the_exception() -> None:
    error = KeyError("bad")

    def trigger(upstream: dict[Edge, State]) -> bool:
        raise error

    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task(trigger=trigger)).check_task_trigger(Pending(), {})
    assert type(info.value.state) is TriggerFailed
    assert (
        info.value.state.message == "Unexpected error while checking task trigger: KeyError('bad')"
    )
    assert info.value.state.result is error


def test_check_task_trigger_manual_only_pauses_with_inputs() -> None:
    runner = ready_runner(Task(trigger=manual_only))
    upstream = Success(result=4)
    with pytest.raises(ENDRUN) as info:
        runner.check_task_trigger(Pending(), {edge("x"): upstream})
    paused = info.value.state
    assert type(paused) is Paused
    assert paused.start_time is None
    assert paused.message == 'Trigger function is "manual_only"'
    assert paused.cached_inputs == {"x": upstream._result}


def test_check_task_trigger_manual_only_passes_when_resuming() -> None:
    runner = ready_runner(Task(trigger=manual_only), Resume())
    state = Resume()
    with context(resume=True):
        assert runner.check_task_trigger(state, {edge("x"): Success()}) is state


# -- set_task_to_running / get_task_run_state -------------------------------------------------


@pytest.mark.parametrize("state", [Pending(), Retrying(), Resume()], ids=lambda s: type(s).__name__)
def test_set_task_to_running_from_pending(state: State) -> None:
    new = TaskRunner(Task()).set_task_to_running(state, {})
    assert type(new) is Running
    assert new.message == "Starting task run."


@pytest.mark.parametrize(
    "state", [Cached(result=1), Running(), Success(), Mapped()], ids=lambda s: type(s).__name__
)
def test_set_task_to_running_ends_run_for_other_states(state: State) -> None:
    with pytest.raises(ENDRUN) as info:
        TaskRunner(Task()).set_task_to_running(state, {})
    assert info.value.state is state


def test_get_task_run_state_requires_running() -> None:
    state = Pending()
    with pytest.raises(ENDRUN) as info:
        ready_runner(Task()).get_task_run_state(state, {})
    assert info.value.state is state


def test_get_task_run_state_success_wraps_value() -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    new = ready_runner(add).get_task_run_state(Running(), {"x": Result(1), "y": Result(2)})
    assert type(new) is Success
    assert new.message == "Task run succeeded."
    assert new.result == 3
    assert new._result.location is None


def test_get_task_run_state_exception_is_failed() -> None:
    error = ValueError("boom")

    @task
    def bad() -> None:
        raise error

    new = ready_runner(bad).get_task_run_state(Running(), {})
    assert type(new) is Failed
    assert new.message == "Error during execution of task: ValueError('boom')"
    assert new.result is error


def test_get_task_run_state_loop_is_looped_with_default_message() -> None:
    @task
    def looper() -> None:
        raise signals.LOOP(result=5)

    new = ready_runner(looper).get_task_run_state(Running(), {})
    assert type(new) is Looped
    assert new.result == 5
    assert new.loop_count == 1
    assert new.message == "Task is looping (1)"


def test_get_task_run_state_success_signal_keeps_its_message() -> None:
    @task
    def early() -> None:
        raise signals.SUCCESS("early exit", result=8)

    new = ready_runner(early).get_task_run_state(Running(), {})
    assert type(new) is Success
    assert (new.message, new.result) == ("early exit", 8)


@pytest.mark.parametrize(
    ("signal", "state_class"),
    [
        (signals.FAIL, Failed),
        (signals.SKIP, Skipped),
        (signals.PAUSE, Paused),
        (signals.RETRY, Retrying),
    ],
    ids=lambda v: v.__name__,
)
def test_get_task_run_state_called_directly_turns_signals_into_states(
    signal: type[signals.PrefectStateSignal], state_class: type[State]
) -> None:
    # verified against prefect 1.4.1: a step called on its own returns the signal's state
    # (its call_state_handlers wrapper catches the signal), as inside a run
    @task
    def raiser() -> None:
        raise signal("out")

    new = ready_runner(raiser).get_task_run_state(Running(), {})
    assert type(new) is state_class
    assert new.message == "out"


@pytest.mark.parametrize("signal", [signals.PAUSE, signals.RETRY], ids=lambda s: s.__name__)
def test_get_task_run_state_pause_and_retry_carry_the_inputs(
    signal: type[signals.PrefectStateSignal],
) -> None:
    @task
    def raiser(x: int) -> None:
        raise signal("later")

    inputs = {"x": Result(3)}
    new = ready_runner(raiser).get_task_run_state(Running(), inputs)
    assert new.cached_inputs == inputs


def test_get_task_run_state_signal_propagates_in_debug_mode() -> None:
    @task
    def raiser() -> None:
        raise signals.FAIL("out")

    with pytest.raises(signals.FAIL):
        ready_runner(raiser, raise_on_exception=True).get_task_run_state(Running(), {})


def test_get_task_run_state_timeout_is_timed_out() -> None:
    @task
    def hang() -> None:
        raise TaskTimeoutSignal("too slow")

    new = ready_runner(hang).get_task_run_state(Running(), {})
    assert type(new) is TimedOut
    assert new.message == "Task timed out during execution."
    assert isinstance(new.result, TaskTimeoutSignal)


# -- cache_result -----------------------------------------------------------------------------


def test_cache_result_turns_success_into_cached() -> None:
    runner = ready_runner(Task(cache_for=timedelta(minutes=5)), parameters={"p": 1})
    success = Success("Task run succeeded.", result=3)
    before = now()
    new = runner.cache_result(success, {"x": Result(2)})
    assert type(new) is Cached
    assert new._result is success._result
    assert new.message == "Task run succeeded."
    assert new.cached_parameters == {"p": 1}
    assert set(new.hashed_inputs or {}) == {"x"}
    assert new.cached_result_expiration is not None
    assert (
        before + timedelta(minutes=5)
        <= new.cached_result_expiration
        <= now() + timedelta(minutes=5)
    )


@pytest.mark.parametrize("state", [Skipped(), Failed(), Looped()], ids=lambda s: type(s).__name__)
def test_cache_result_leaves_non_success_and_skipped(state: State) -> None:
    assert ready_runner(Task(cache_for=timedelta(minutes=5))).cache_result(state, {}) is state


def test_cache_result_without_cache_for_is_a_no_op() -> None:
    state = Success(result=1)
    assert ready_runner(Task()).cache_result(state, {}) is state


# -- check_for_retry --------------------------------------------------------------------------


def retry_task(**kwargs: Any) -> Task:
    return Task(max_retries=2, retry_delay=timedelta(minutes=1), **kwargs)


def test_check_for_retry_failed_with_attempts_left() -> None:
    runner = ready_runner(retry_task())
    inputs = {"x": Result(1)}
    before = now()
    new = runner.check_for_retry(Failed("no"), inputs)
    assert type(new) is Retrying
    assert new.message == "Retrying Task (after attempt 1 of 3)"
    assert new.run_count == 1
    assert new.cached_inputs == inputs
    assert new.start_time >= before + timedelta(minutes=1)
    assert new._result is NoResult


def test_check_for_retry_counts_from_the_retrying_state() -> None:
    runner = ready_runner(retry_task(), Retrying(run_count=1))
    new = runner.check_for_retry(Failed(), {})
    assert type(new) is Retrying
    assert new.message == "Retrying Task (after attempt 2 of 3)"
    assert new.run_count == 2


def test_check_for_retry_gives_up_after_last_attempt() -> None:
    runner = ready_runner(retry_task(), Retrying(run_count=2))
    state = Failed()
    assert runner.check_for_retry(state, {}) is state


@pytest.mark.parametrize("state", [Success(), Skipped(), Pending()], ids=lambda s: type(s).__name__)
def test_check_for_retry_only_retries_failures(state: State) -> None:
    assert ready_runner(retry_task()).check_for_retry(state, {}) is state


def test_check_for_retry_without_max_retries() -> None:
    state = Failed()
    assert ready_runner(Task()).check_for_retry(state, {}) is state


@pytest.mark.parametrize(
    "state", [TimedOut(), TriggerFailed(), Failed()], ids=lambda s: type(s).__name__
)
def test_check_for_retry_retries_failed_subclasses(state: State) -> None:
    assert type(ready_runner(retry_task()).check_for_retry(state, {})) is Retrying


def test_check_for_retry_retry_on_match() -> None:
    runner = ready_runner(retry_task(retry_on=[KeyError, ValueError]))
    assert type(runner.check_for_retry(Failed(result=KeyError("k")), {})) is Retrying


def test_check_for_retry_retry_on_mismatch_logs_and_keeps_failed(
    logs: pytest.LogCaptureFixture,
) -> None:
    runner = ready_runner(retry_task(retry_on=KeyError))
    state = Failed(result=ValueError("v"))
    assert runner.check_for_retry(state, {}) is state
    assert (
        "Task 'Task': Skipping retry. Exception of type 'ValueError' is not an instance of the "
        "retry on exception types."
    ) in logs.messages


def test_check_for_retry_retry_on_never_matches_a_timeout() -> None:
    runner = ready_runner(retry_task(retry_on=Exception))
    state = TimedOut(result=TaskTimeoutSignal("late"))
    assert runner.check_for_retry(state, {}) is state


def test_check_for_retry_retry_on_retries_a_failure_without_result() -> None:
    # Prefect 1.4.1 only filters on retry_on when the state carries a result
    runner = ready_runner(retry_task(retry_on=KeyError))
    assert type(runner.check_for_retry(Failed(result=None), {})) is Retrying


def test_check_for_retry_while_looping_keeps_the_iteration() -> None:
    runner = ready_runner(retry_task(), task_loop_count=4, task_loop_result=40)
    new = runner.check_for_retry(Failed(), {})
    assert type(new) is Retrying
    assert new.context["_loop_count"] == 4
    assert new.result == 40


# -- check_task_is_looping --------------------------------------------------------------------


def test_check_task_is_looping_prepares_next_iteration() -> None:
    runner = ready_runner(Task())
    new = runner.check_task_is_looping(Looped("again", result=5, loop_count=2))
    assert type(new) is Pending
    assert new.message == "again"
    assert runner.context["task_loop_result"] == 5
    assert runner.context["task_loop_count"] == 3
