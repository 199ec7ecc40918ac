"""``flow.run``: parameters, the result map, the passes, run ids (reference 2.5, 2.6, 7.3)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from flowcore import Flow, Parameter, context, task
from flowcore.engine import signals
from flowcore.engine.flow_runner import FlowRunner
from flowcore.engine.state import Failed, Pending, Skipped, State, Success
from flowcore.utilities.debug import raise_on_exception


@task
def add(x: int, y: int) -> int:
    return x + y


def run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


def test_result_map_holds_every_task() -> None:
    with Flow("f") as flow:
        a = add(1, 2)
        b = add(a, 10)
        c = add.map([1, 2], [3, 4])
    state = run(flow)
    assert type(state) is Success
    assert set(state.result) == set(flow.tasks)
    assert (state.result[a].result, state.result[b].result, state.result[c].result) == (
        3,
        13,
        [4, 6],
    )


def test_unreached_tasks_are_pending_task_not_run() -> None:
    with Flow("f") as flow:
        a = add(1, 2)
    state = run(flow, state=Success("already done"))
    assert state.message == "already done"
    assert type(state.result[a]) is Pending
    assert state.result[a].message == "Task not run."


def test_parameters_by_keyword_and_dict_and_defaults() -> None:
    with Flow("f") as flow:
        x = Parameter("x")
        y = Parameter("y", default=10)
        a = add(x, y)
    assert run(flow, x=1).result[a].result == 11
    assert run(flow, parameters={"x": 1, "y": 2}).result[a].result == 3
    assert run(flow, parameters={"x": 1}, y=5).result[a].result == 6


def test_parameters_in_context_include_defaults() -> None:
    @task
    def params() -> dict[str, Any]:
        return dict(context.parameters)

    with Flow("f") as flow:
        flow.add_task(Parameter("x"))
        flow.add_task(Parameter("y", default=10))
        flow.add_task(Parameter("z", default=None, required=False))
        p = params()
    assert run(flow, x=1).result[p].result == {"x": 1, "y": 10, "z": None}


def test_unknown_parameter_is_an_error() -> None:
    with Flow("f") as flow:
        add(Parameter("x"), 1)
    with pytest.raises(ValueError, match="unexpected parameters: nope"):
        flow.run(parameters={"x": 1, "nope": 2})


def test_missing_required_parameter_fails_before_running() -> None:
    calls: list[int] = []

    @task
    def t(x: int) -> None:
        calls.append(x)

    with Flow("f") as flow:
        t(Parameter("x"))
        t(1)
    with pytest.raises(ValueError, match="required parameters: x"):
        flow.run()
    assert calls == []


def test_return_tasks_keeps_only_the_states_asked_for() -> None:
    """flowcore takes ``return_tasks`` in ``flow.run`` (Prefect 1 raised a ValueError and
    pointed to FlowRunner.run, which takes it): the result holds those tasks only."""
    with Flow("f") as flow:
        a = add(1, 2)
        b = add(a, 10)
        c = add(b, 100)
    state = flow.run(return_tasks=[b])
    assert state.is_successful()
    assert set(state.result) == {b}
    assert state.result[b].result == 13
    assert c in flow.tasks


@pytest.fixture
def store_off() -> Any:
    from flowcore import config

    before = config.get_path("runs.store")
    config.set_path("runs.store", "none")
    try:
        yield
    finally:
        config.set_path("runs.store", before)


def test_return_tasks_releases_other_states_as_the_run_goes(store_off: None) -> None:
    """With the run store off and nothing to retry, a state nobody needs any more is
    dropped during the pass: the reduce sees the children, the result holds only it."""
    seen: list[Any] = []

    @task
    def total(xs: list[int]) -> int:
        seen.append(xs)
        return sum(xs)

    with Flow("f") as flow:
        doubled = add.map([1, 2, 3], [1, 2, 3])
        summed = total(doubled)
        more = add(summed, 1)
    state = flow.run(return_tasks=[more])
    assert set(state.result) == {more}
    assert state.result[more].result == 13
    assert seen == [[2, 4, 6]]


def test_return_tasks_with_a_retry_runs_nothing_twice(store_off: None) -> None:
    runs: list[int] = []

    @task
    def once(x: int) -> int:
        runs.append(x)
        return x

    @task(max_retries=1, retry_delay=timedelta(0))
    def flaky(x: int) -> int:
        if len(runs) == 1:
            runs.append(-1)
            raise ValueError("first attempt")
        return x + 1

    with Flow("f") as flow:
        first = once(1)
        second = flaky(first)
        third = add(second, first)
    state = flow.run(return_tasks=[third])
    assert state.result[third].result == 3
    assert runs == [1, -1]


def test_return_tasks_must_be_tasks_of_the_flow() -> None:
    with Flow("f") as flow:
        add(1, 2)
    with Flow("other"):
        stranger = add(3, 4)
    with pytest.raises(ValueError, match="return_tasks were not found in the flow"):
        flow.run(return_tasks=[stranger])
    with pytest.raises(TypeError, match="iterable of tasks"):
        flow.run(return_tasks=3)


def test_run_inside_the_flow_block_is_an_error() -> None:
    with Flow("f") as flow:
        add(1, 2)
        with pytest.raises(RuntimeError):
            flow.run()


def test_run_while_loading_a_flow_warns_and_returns_none() -> None:
    with Flow("f") as flow:
        add(1, 2)
    with context(loading_flow=True), pytest.warns(UserWarning):
        assert flow.run() is None


def test_failed_flow_state() -> None:
    @task
    def bad() -> None:
        raise ValueError("x")

    with Flow("f") as flow:
        b = bad()
    state = run(flow)
    assert type(state) is Failed
    assert state.message == "Some reference tasks failed."
    assert isinstance(state.result[b].result, ValueError)


def test_flow_run_id_and_name_are_fixed_for_the_whole_run() -> None:
    seen: list[tuple[str, str, str]] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def t() -> None:
        seen.append((context.flow_run_id, context.flow_run_name, context.task_run_id))
        if len(seen) == 1:
            raise ValueError("retry")

    with Flow("f") as flow:
        t()
    run(flow)
    (id1, name1, task_run1), (id2, name2, task_run2) = seen
    assert (id1, name1) == (id2, name2)
    uuid.UUID(id1)
    uuid.UUID(name1)
    # a new task_run_id per pass, as in Prefect 1.4.1
    assert task_run1 != task_run2


def test_flow_run_id_and_name_arguments() -> None:
    @task
    def ids() -> tuple[str, str]:
        return context.flow_run_id, context.flow_run_name

    with Flow("f") as flow:
        i = ids()
    assert run(flow, flow_run_id="id-1", flow_run_name="nightly").result[i].result == (
        "id-1",
        "nightly",
    )


def test_each_flow_run_gets_new_ids() -> None:
    @task
    def ids() -> str:
        return str(context.flow_run_id)

    with Flow("f") as flow:
        i = ids()
    assert run(flow).result[i].result != run(flow).result[i].result


def test_task_states_given_to_flow_run() -> None:
    calls: list[int] = []

    @task
    def source() -> int:
        calls.append(1)
        return 1

    with Flow("f") as flow:
        s = source()
        a = add(s, 1)
    state = run(flow, task_states={s: Success(result=41)})
    assert calls == []
    assert state.result[a].result == 42


def test_rerun_from_a_previous_result_map() -> None:
    calls: list[str] = []

    @task
    def source() -> int:
        calls.append("source")
        return 1

    @task
    def flaky(x: int) -> int:
        calls.append("flaky")
        if calls.count("flaky") == 1:
            raise ValueError("first run fails")
        return x + 1

    with Flow("f") as flow:
        s = source()
        f = flaky(s)
    first = run(flow)
    assert type(first.result[f]) is Failed
    second = run(flow, task_states={s: first.result[s]})
    assert second.result[f].result == 2
    assert calls == ["source", "flaky", "flaky"]


def test_raise_on_exception_propagates_from_flow_run() -> None:
    @task
    def bad() -> None:
        raise ZeroDivisionError("debug")

    with Flow("f") as flow:
        bad()
    with raise_on_exception(), pytest.raises(ZeroDivisionError):
        flow.run()


def test_runner_cls_argument() -> None:
    passes: list[str] = []

    class MyRunner(FlowRunner):
        def run(self, *args: Any, **kwargs: Any) -> State:
            passes.append(self.flow.name)
            return super().run(*args, **kwargs)

    with Flow("f") as flow:
        add(1, 2)
    assert run(flow, runner_cls=MyRunner).is_successful()
    assert passes == ["f"]


def test_retry_passes_rerun_only_unfinished_tasks(logs: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    @task
    def a() -> int:
        calls.append("a")
        return 1

    @task(max_retries=2, retry_delay=timedelta(0))
    def b(x: int) -> int:
        calls.append("b")
        if calls.count("b") < 3:
            raise ValueError("again")
        return x

    @task
    def c(x: int) -> int:
        calls.append("c")
        return x

    with Flow("f") as flow:
        c(b(a()))
    assert run(flow).is_successful()
    assert calls == ["a", "b", "b", "b", "c"]
    assert logs.messages.count("Beginning Flow run for 'f'") == 3


def test_flow_state_argument_pending() -> None:
    with Flow("f") as flow:
        a = add(1, 2)
    assert run(flow, state=Pending()).result[a].result == 3


def test_caches_dict_is_created_in_context() -> None:
    with Flow("f") as flow:
        add(1, 2)
    assert "caches" not in context
    run(flow)
    assert context.caches == {}


def test_flow_run_leaves_no_run_keys_in_context() -> None:
    with Flow("f") as flow:
        add(1, 2)
    run(flow)
    for key in ("flow_name", "flow_run_id", "parameters", "task_name", "today"):
        assert key not in context


# -- signals seen downstream (checked against Prefect 1.4.1) ------------------------------------


def test_success_signal_without_result_reaches_downstream_as_the_signal() -> None:
    @task
    def early() -> None:
        raise signals.SUCCESS("early")

    @task
    def early_with_result() -> None:
        raise signals.SUCCESS("early", result=5)

    @task
    def ident(x: Any) -> Any:
        return x

    with Flow("f") as flow:
        a = ident(early())
        b = ident(early_with_result())
    state = run(flow)
    assert isinstance(state.result[a].result, signals.SUCCESS)
    assert state.result[b].result == 5


def test_skip_propagates_down_the_chain() -> None:
    @task
    def skipper() -> None:
        raise signals.SKIP("nothing to do")

    @task
    def ident(x: Any) -> Any:
        return x

    with Flow("f") as flow:
        first = ident(skipper())
        second = ident(first)
    state = run(flow)
    assert type(state.result[first]) is Skipped
    assert type(state.result[second]) is Skipped
    assert state.message == "All reference tasks succeeded."


def test_skip_on_upstream_skip_false_runs_with_the_skip_signal() -> None:
    @task
    def skipper() -> None:
        raise signals.SKIP("nothing to do")

    @task(skip_on_upstream_skip=False)
    def sees(x: Any) -> str:
        return repr(x)

    with Flow("f") as flow:
        s = sees(skipper())
    assert run(flow).result[s].result == "SKIP('nothing to do')"
