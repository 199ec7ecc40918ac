"""FlowRunner: one pass over a flow (reference 7.1, 7.2, 7.5). Checked against Prefect 1.4.1."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from flowcore import Flow, Parameter, Task, context, task
from flowcore.core.edge import Edge
from flowcore.engine.flow_runner import FlowRunner, FlowRunnerInitializeResult
from flowcore.engine.result import Result
from flowcore.engine.results import ConstantResult
from flowcore.engine.state import (
    Cached,
    Cancelled,
    Failed,
    Looped,
    Mapped,
    Pending,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Submitted,
    Success,
    TriggerFailed,
)
from flowcore.engine.task_runner import TaskRunner
from flowcore.executors import LocalExecutor
from flowcore.triggers import any_failed
from flowcore.utilities.configuration import set_temporary_config


class RecordingExecutor(LocalExecutor):
    """A LocalExecutor that remembers what it ran (importable for config paths)."""

    submitted: list[str] = []

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        extra_context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        RecordingExecutor.submitted.append((extra_context or {}).get("task_name", "?"))
        return super().submit(fn, *args, **kwargs)


class CountingTaskRunner(TaskRunner):
    """A TaskRunner subclass that counts its runs (importable for config paths)."""

    runs: list[str] = []

    def run(self, *args: Any, **kwargs: Any) -> State:
        CountingTaskRunner.runs.append(self.task.name)
        return super().run(*args, **kwargs)


@pytest.fixture(autouse=True)
def _reset_recorders() -> None:
    RecordingExecutor.submitted = []
    CountingTaskRunner.runs = []


@task
def one() -> int:
    return 1


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def bad() -> None:
    raise ValueError("bad")


def simple_flow() -> tuple[Flow, Task]:
    with Flow("f") as flow:
        a = one()
    return flow, a


# -- final state ------------------------------------------------------------------------------


def test_all_reference_tasks_succeeded(logs: pytest.LogCaptureFixture) -> None:
    flow, a = simple_flow()
    state = FlowRunner(flow).run(return_tasks=[a])
    assert type(state) is Success
    assert state.message == "All reference tasks succeeded."
    assert state.result[a].result == 1
    messages = [r.getMessage() for r in logs.records if r.levelno >= logging.INFO]
    assert messages[0] == "Beginning Flow run for 'f'"
    assert messages[-1] == "Flow run SUCCESS: all reference tasks succeeded"


def test_some_reference_tasks_failed(logs: pytest.LogCaptureFixture) -> None:
    with Flow("f") as flow:
        b = bad()
    state = FlowRunner(flow).run(return_tasks=[b])
    assert type(state) is Failed
    assert state.message == "Some reference tasks failed."
    assert "Flow run FAILED: some reference tasks failed." in logs.messages


@pytest.mark.parametrize("finished", [Cancelled(), Looped()], ids=lambda s: type(s).__name__)
def test_no_reference_tasks_failed(finished: State, logs: pytest.LogCaptureFixture) -> None:
    flow, a = simple_flow()
    state = FlowRunner(flow).run(task_states={a: finished})
    assert type(state) is Success
    assert state.message == "No reference tasks failed."
    assert "Flow run SUCCESS: no reference tasks failed" in logs.messages


def test_unfinished_terminal_task_keeps_the_flow_running(logs: pytest.LogCaptureFixture) -> None:
    @task(max_retries=1, retry_delay=timedelta(minutes=5))
    def flaky() -> None:
        raise ValueError("later")

    with Flow("f") as flow:
        f = flaky()
    state = FlowRunner(flow).run(return_tasks=[f])
    assert type(state) is Running
    assert state.message == "Running flow."
    assert type(state.result[f]) is Retrying
    assert "Flow run RUNNING: terminal tasks are incomplete." in logs.messages


def test_skipped_reference_tasks_count_as_success() -> None:
    flow, a = simple_flow()
    state = FlowRunner(flow).run(task_states={a: Skipped()})
    assert state.message == "All reference tasks succeeded."


def test_failure_handled_downstream_does_not_fail_the_flow() -> None:
    @task(trigger=any_failed)
    def recover(x: Any) -> str:
        return "recovered"

    with Flow("f") as flow:
        b = bad()
        r = recover(b)
    state = FlowRunner(flow).run(return_tasks=[b, r])
    assert type(state.result[b]) is Failed
    assert state.result[r].result == "recovered"
    assert state.message == "All reference tasks succeeded."


def test_custom_reference_tasks() -> None:
    @task(trigger=any_failed)
    def recover(x: Any) -> str:
        return "recovered"

    with Flow("f") as flow:
        b = bad()
        recover(b)
    flow.set_reference_tasks([b])
    assert FlowRunner(flow).run().message == "Some reference tasks failed."


def test_non_reference_failure_in_the_middle_is_ignored() -> None:
    with Flow("f") as flow:
        b = bad()
        a = one()
    flow.set_reference_tasks([a])
    state = FlowRunner(flow).run(return_tasks=[a, b])
    assert type(state) is Success
    assert type(state.result[b]) is Failed


def test_trigger_failed_reference_fails_the_flow() -> None:
    with Flow("f") as flow:
        a = add(bad(), 1)
    state = FlowRunner(flow).run(return_tasks=[a])
    assert type(state.result[a]) is TriggerFailed
    assert type(state) is Failed


# -- states given to the runner ---------------------------------------------------------------


def test_finished_task_state_is_reused_not_rerun() -> None:
    calls: list[int] = []

    @task
    def source() -> int:
        calls.append(1)
        return 1

    with Flow("f") as flow:
        s = source()
        a = add(s, 10)
    given = Success(result=100)
    state = FlowRunner(flow).run(task_states={s: given}, return_tasks=[s, a])
    assert calls == []
    assert state.result[s] is given
    assert state.result[a].result == 110


def test_failed_state_given_is_kept() -> None:
    calls: list[int] = []

    @task
    def t() -> None:
        calls.append(1)

    with Flow("f") as flow:
        a = t()
    given = Failed("from before")
    state = FlowRunner(flow).run(task_states={a: given}, return_tasks=[a])
    assert state.result[a] is given
    assert calls == []
    assert state.message == "Some reference tasks failed."


def test_valid_cached_state_given_is_kept() -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(minutes=1))
    def t() -> int:
        calls.append(1)
        return 5

    with Flow("f") as flow:
        a = t()
    given = Cached(result=7, cached_result_expiration=pendulum.now("UTC").add(minutes=1))
    state = FlowRunner(flow).run(task_states={a: given}, return_tasks=[a])
    assert state.result[a] is given
    assert calls == []


def test_expired_cached_state_given_is_rerun() -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(minutes=1))
    def t() -> int:
        calls.append(1)
        return 5

    with Flow("f") as flow:
        a = t()
    given = Cached(result=7, cached_result_expiration=pendulum.now("UTC").subtract(minutes=1))
    state = FlowRunner(flow).run(task_states={a: given}, return_tasks=[a])
    assert calls == [1]
    assert type(state.result[a]) is Cached
    assert state.result[a].result == 5


def test_given_task_states_dict_is_not_mutated() -> None:
    with Flow("f") as flow:
        s = one()
        add(s, 1)
    given = {s: Success(result=1)}
    FlowRunner(flow).run(task_states=given)
    assert list(given) == [s]


def test_single_pass_leaves_dependants_of_a_retrying_task_pending() -> None:
    @task(max_retries=1, retry_delay=timedelta(0))
    def flaky() -> int:
        raise ValueError("x")

    with Flow("f") as flow:
        f = flaky()
        a = add(f, 1)
    state = FlowRunner(flow).run(return_tasks=[f, a])
    assert type(state.result[f]) is Retrying
    assert type(state.result[a]) is Pending
    assert state.is_running()


# -- constants --------------------------------------------------------------------------------


def test_constants_are_injected_as_successful_constant_results() -> None:
    seen: dict[str, State] = {}

    def trigger(upstream_states: dict[Edge, State]) -> bool:
        seen.update({str(e.key): s for e, s in upstream_states.items()})
        return True

    @task(trigger=trigger)
    def t(x: int, y: int) -> int:
        return x + y

    with Flow("f") as flow:
        a = t(1, y=2)
    assert len(flow.tasks) == 1
    state = FlowRunner(flow).run(return_tasks=[a])
    assert state.result[a].result == 3
    assert set(seen) == {"x", "y"}
    assert all(type(s) is Success for s in seen.values())
    assert isinstance(seen["x"]._result, ConstantResult)
    assert seen["x"].result == 1


def test_constant_tasks_are_not_run() -> None:
    with Flow("f") as flow:
        m = add.map([1, 2], [10, 20])
    constants = [t for t in flow.tasks if t is not m]
    state = FlowRunner(flow).run(return_tasks=flow.tasks)
    for constant in constants:
        assert type(state.result[constant]) is Success
    assert sorted(state.result[c].result for c in constants) == [[1, 2], [10, 20]]
    assert state.result[m].result == [11, 22]


# -- flow states ------------------------------------------------------------------------------


def test_finished_flow_state_is_returned_unchanged(logs: pytest.LogCaptureFixture) -> None:
    flow, a = simple_flow()
    done = Success("done")
    assert FlowRunner(flow).run(state=done) is done
    assert "Flow run has already finished." in logs.messages


def test_failed_flow_state_is_returned_unchanged() -> None:
    flow, a = simple_flow()
    failed = Failed("x")
    assert FlowRunner(flow).run(state=failed) is failed


def test_future_scheduled_flow_state_waits() -> None:
    flow, a = simple_flow()
    later = Scheduled(start_time=pendulum.now("UTC").add(hours=1))
    assert FlowRunner(flow).run(state=later) is later


def test_running_flow_state_runs() -> None:
    flow, a = simple_flow()
    state = FlowRunner(flow).run(state=Running("already"), return_tasks=[a])
    assert state.message == "All reference tasks succeeded."


def test_meta_flow_state_is_unwrapped() -> None:
    flow, a = simple_flow()
    state = FlowRunner(flow).run(state=Submitted(state=Pending()))
    assert type(state) is Success


def test_unknown_return_task_fails_the_run() -> None:
    flow, a = simple_flow()
    state = FlowRunner(flow).run(return_tasks=[Task(name="other")])
    assert type(state) is Failed
    assert str(state.message).startswith(
        "Unexpected error: ValueError('Some tasks in return_tasks were not found in the flow"
    )
    assert isinstance(state.result, ValueError)


def test_only_return_tasks_are_in_the_result() -> None:
    with Flow("f") as flow:
        s = one()
        a = add(s, 1)
    state = FlowRunner(flow).run(return_tasks=[a])
    assert list(state.result) == [a]
    assert FlowRunner(flow).run().result == {}


def test_mapped_reference_task_result_is_the_child_list() -> None:
    with Flow("f") as flow:
        m = add.map([1, 2], [1, 1])
    state = FlowRunner(flow).run(return_tasks=[m])
    assert type(state.result[m]) is Mapped
    assert state.result[m].result == [2, 3]


# -- initialize_run ---------------------------------------------------------------------------


def test_initialize_run_fills_parameters_and_flow_keys() -> None:
    with Flow("f") as flow:
        p = Parameter("p", default=1)
        q = Parameter("q", default=2)
        a = add(p, q)
    result = FlowRunner(flow).initialize_run(
        None, {}, {"date": "2020-01-02"}, {a: {"mine": 1}}, {"q": 20}
    )
    assert isinstance(result, FlowRunnerInitializeResult)
    assert type(result.state) is Pending
    ctx = result.context
    assert ctx["parameters"] == {"p": 1, "q": 20}
    assert ctx["flow_name"] == "f"
    assert isinstance(ctx["scheduled_start_time"], pendulum.DateTime)
    assert ctx["date"] == pendulum.datetime(2020, 1, 2)
    assert (ctx["today"], ctx["yesterday"], ctx["tomorrow"]) == (
        "2020-01-02",
        "2020-01-01",
        "2020-01-03",
    )
    assert (ctx["today_nodash"], ctx["yesterday_nodash"], ctx["tomorrow_nodash"]) == (
        "20200102",
        "20200101",
        "20200103",
    )
    assert result.task_contexts[a] == {"mine": 1, "task_name": "add", "task_slug": flow.slugs[a]}
    assert result.task_contexts[p]["task_slug"] == "p"


def test_initialize_run_keeps_user_date_keys() -> None:
    flow, a = simple_flow()
    ctx = (
        FlowRunner(flow)
        .initialize_run(None, {}, {"date": "2020-01-02", "today": "mine"}, {}, {})
        .context
    )
    assert ctx["today"] == "mine"
    assert ctx["tomorrow"] == "2020-01-03"


def test_a_surrounding_context_s_date_keys_reach_the_run_and_its_targets(tmp_path: Path) -> None:
    """Prefect 1 starts a run's context from the surrounding one: a backfill written as
    ``with prefect.context(today=...): flow.run()`` names its targets by that day."""
    from flowcore.engine.results import LocalResult

    seen = []

    @task(result=LocalResult(dir=str(tmp_path)), target="{task_name}-{today}.txt", checkpoint=True)
    def day() -> str:
        ctx = context
        seen.append((ctx.today, ctx.yesterday, ctx.today_nodash))
        return ctx.today

    with Flow("backfill") as flow:
        day()
    with context(today="2020-01-01", today_nodash="20200101", checkpointing=True):
        state = flow.run()
    assert state.is_successful()
    today = pendulum.now("UTC")
    assert seen[0][0] == "2020-01-01" and seen[0][2] == "20200101"
    assert seen[0][1] in {today.subtract(days=d).strftime("%Y-%m-%d") for d in (1, 2)}
    assert (tmp_path / "day-2020-01-01.txt").exists()


def test_initialize_run_unparsable_date_warns_and_uses_now(logs: pytest.LogCaptureFixture) -> None:
    # Prefect 1.4.1 keeps `date` as given and derives `today` and friends from the clock
    flow, a = simple_flow()
    ctx = FlowRunner(flow).initialize_run(None, {}, {"date": "not a date"}, {}, {}).context
    assert ctx["date"] == "not a date"
    assert ctx["today"] == pendulum.now("UTC").strftime("%Y-%m-%d")
    [warning] = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert warning.startswith("`date` was set in the context manually but could not be parsed")


def test_initialize_run_scheduled_start_time_kept() -> None:
    flow, a = simple_flow()
    when = pendulum.datetime(2021, 5, 6)
    ctx = FlowRunner(flow).initialize_run(None, {}, {"scheduled_start_time": when}, {}, {}).context
    assert ctx["scheduled_start_time"] == when


# -- executors and runner classes -------------------------------------------------------------


def test_executor_argument_is_used() -> None:
    flow, a = simple_flow()
    FlowRunner(flow).run(executor=RecordingExecutor())
    assert RecordingExecutor.submitted == ["one"]


def test_flow_executor_is_used() -> None:
    with Flow("f", executor=RecordingExecutor()) as flow:
        one()
    FlowRunner(flow).run()
    assert RecordingExecutor.submitted == ["one"]


def test_argument_wins_over_flow_executor() -> None:
    other = LocalExecutor()
    with Flow("f", executor=RecordingExecutor()) as flow:
        one()
    FlowRunner(flow).run(executor=other)
    assert RecordingExecutor.submitted == []


def test_config_default_executor_is_used() -> None:
    flow, a = simple_flow()
    path = f"{__name__}.RecordingExecutor"
    with set_temporary_config({"engine.executor.default_class": path}):
        FlowRunner(flow).run()
        flow.run()
    assert RecordingExecutor.submitted == ["one", "one"]


def test_task_runner_class_argument() -> None:
    flow, a = simple_flow()
    FlowRunner(flow, task_runner_cls=CountingTaskRunner).run()
    assert CountingTaskRunner.runs == ["one"]


def test_task_runner_class_from_config() -> None:
    flow, a = simple_flow()
    with set_temporary_config(
        {"engine.task_runner.default_class": f"{__name__}.CountingTaskRunner"}
    ):
        FlowRunner(flow).run()
    assert CountingTaskRunner.runs == ["one"]


def test_flow_result_is_the_default_task_result() -> None:
    results: list[Result] = []

    class ResultSpy(TaskRunner):
        def run(self, *args: Any, **kwargs: Any) -> State:
            results.append(self.result)
            return super().run(*args, **kwargs)

    flow_result = Result(location="flow-level")
    with Flow("f", result=flow_result) as flow:
        one()
    FlowRunner(flow, task_runner_cls=ResultSpy).run()
    assert [r.location for r in results] == ["flow-level"]
    assert results[0] is not flow_result


def test_flow_context_is_visible_to_tasks() -> None:
    @task
    def read() -> tuple[Any, Any, Any]:
        return context.flow_name, context.get("extra"), context.get("mine")

    with Flow("f") as flow:
        r = read()
    state = FlowRunner(flow).run(
        context={"extra": 1}, task_contexts={r: {"mine": 2}}, return_tasks=[r]
    )
    assert state.result[r].result == ("f", 1, 2)
    assert "flow_name" not in context


def test_flow_handlers_see_the_failure_of_initialize_run() -> None:
    # Prefect 1.4.1: an error in initialize_run fails the run through the flow's handlers
    # (Pending -> Failed), and the state carries the exception.
    class BadRunner(FlowRunner):
        def initialize_run(self, *args: Any, **kwargs: Any) -> FlowRunnerInitializeResult:
            raise SyntaxError("bad")

    seen: list[tuple[str, str]] = []

    def handler(flow: Flow, old: State, new: State) -> State:
        seen.append((type(old).__name__, type(new).__name__))
        return new

    state = BadRunner(flow=Flow("f", state_handlers=[handler])).run()
    assert state.is_failed() and isinstance(state.result, SyntaxError)
    assert state.message == "Unexpected error while running flow: SyntaxError('bad')"
    assert seen == [("Pending", "Failed")]


class _MyExecutor(LocalExecutor):
    pass


def test_default_classes_follow_the_config_as_paths_or_classes() -> None:
    from flowcore import engine

    assert engine.get_default_executor_class() is LocalExecutor
    assert engine.get_default_flow_runner_class() is FlowRunner
    assert engine.get_default_task_runner_class() is TaskRunner
    with set_temporary_config({"engine.executor.default_class": f"{__name__}._MyExecutor"}):
        assert engine.get_default_executor_class() is _MyExecutor
    with set_temporary_config({"engine.executor.default_class": _MyExecutor}):
        assert engine.get_default_executor_class() is _MyExecutor
        # flow.run() accepts the class itself too
        assert Flow("f", tasks=[Task()]).run().is_successful()


@pytest.mark.parametrize(
    ("key", "fallback"),
    [("executor", LocalExecutor), ("flow_runner", FlowRunner), ("task_runner", TaskRunner)],
)
def test_default_class_with_a_bad_path_warns_and_falls_back(key: str, fallback: type) -> None:
    # Prefect 1.4.1's get_default_*_class: UserWarning "Could not import ...", then the
    # built-in class. (flow.run() itself raises ImportError for such a path.)
    from flowcore import engine

    with set_temporary_config({f"engine.{key}.default_class": "flowcore.engine. bad path"}):
        with pytest.warns(UserWarning, match="^Could not import flowcore.engine. bad path"):
            assert getattr(engine, f"get_default_{key}_class")() is fallback


def test_debug_lines_as_prefect_1_writes_them(logs: pytest.LogCaptureFixture) -> None:
    """With DEBUG on, the flow and task runners say what Prefect 1.4.1's say: the executor,
    the flow's state changes, and the call of ``task.run``."""

    @task
    def t() -> int:
        return 1

    with Flow("lg") as flow:
        t()
    assert flow.run(executor=LocalExecutor()).is_successful()
    debug = [r.getMessage() for r in logs.records if r.levelno == logging.DEBUG]
    assert "Using executor type LocalExecutor" in debug
    assert "Flow 'lg': Handling state change from Scheduled to Running" in debug
    assert "Flow 'lg': Handling state change from Running to Success" in debug
    assert "Task 't': Calling task.run() method..." in debug
