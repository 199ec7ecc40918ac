"""The executor contract: every flow behaves the same on every executor.

Each test runs against the ``executor`` fixture of ``conftest.py``: LocalExecutor,
LocalDaskExecutor (sync, threads, processes) and DaskExecutor on a LocalCluster of two worker
processes. The expectations are literal states, so a test states what Prefect 1 semantics
give and every executor must give exactly that. To add a behaviour, add a test taking
``executor``; task code goes into ``tests/executors/flows.py`` so Dask workers can import it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Parameter, unmapped
from flowcore.engine.results import LocalResult
from flowcore.engine.state import (
    Cached,
    Failed,
    Looped,
    Mapped,
    Paused,
    Pending,
    Retrying,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)
from flowcore.executors import Executor
from tests.executors import flows
from tests.executors.flows import summary

pytestmark = pytest.mark.timeout(180)


def run(flow: Flow, executor: Executor, **kwargs: Any) -> State:
    state = flow.run(executor=executor, **kwargs)
    assert state is not None
    return state


# -- mapping ------------------------------------------------------------------------------


def test_map_and_reduce(executor: Executor) -> None:
    flow, mapped, reduced = flows.map_reduce_flow([1, 2, 3])
    state = run(flow, executor)
    assert type(state) is Success
    assert summary(state.result[mapped]) == (
        "Mapped",
        [("Success", 2), ("Success", 3), ("Success", 4)],
    )
    assert state.result[mapped].result == [2, 3, 4]
    assert summary(state.result[reduced]) == ("Success", 9)


def test_map_over_a_map_with_an_unmapped_argument(executor: Executor) -> None:
    flow, first, second, reduced = flows.map_of_map_flow(4)
    state = run(flow, executor)
    assert state.result[first].result == [1, 2, 3, 4]
    assert state.result[second].result == [101, 102, 103, 104]
    assert state.result[reduced].result == 410


def test_map_over_nothing(executor: Executor) -> None:
    flow, mapped, reduced = flows.map_reduce_flow([])
    state = run(flow, executor)
    assert summary(state.result[mapped]) == ("Mapped", [])
    assert summary(state.result[reduced]) == ("Success", 0)


def test_flatten(executor: Executor) -> None:
    flow, flat, literal = flows.flatten_flow()
    state = run(flow, executor)
    assert state.result[flat].result == [2, 11, 3, 21, 4, 31]
    assert state.result[literal].result == [2, 3, 4]


def test_child_context(executor: Executor) -> None:
    with Flow("context") as flow:
        described = flows.describe.map([5, 6])
    state = run(flow, executor)
    assert state.result[described].result == [
        {"x": 5, "map_index": 0, "task_full_name": "describe[0]", "flow_name": "context", "parameters": {}},
        {"x": 6, "map_index": 1, "task_full_name": "describe[1]", "flow_name": "context", "parameters": {}},
    ]  # fmt: skip


# -- failures, triggers, skips, signals ---------------------------------------------------


def test_a_failed_child_and_the_reduce_step(executor: Executor) -> None:
    with Flow("failures") as flow:
        checked = flows.fail_on.map([1, 2, 3], unmapped(2))
        strict = flows.total(checked)
        lenient = flows.count_finished(checked)
    state = run(flow, executor)
    assert type(state) is Failed
    assert summary(state.result[checked]) == (
        "Mapped",
        [("Success", 1), ("Failed", "Boom: bad item 2"), ("Success", 3)],
    )
    assert type(state.result[strict]) is TriggerFailed
    assert summary(state.result[lenient]) == ("Success", 3)


def test_all_failed_trigger(executor: Executor) -> None:
    with Flow("cleanup") as flow:
        failed = flows.raise_fail()
        cleaned = flows.cleanup(upstream_tasks=[failed])
    flow.set_reference_tasks([cleaned])
    state = run(flow, executor)
    assert summary(state.result[failed]) == ("Failed", "FAIL: failed on purpose")
    assert summary(state.result[cleaned]) == ("Success", "cleaned")
    assert type(state) is Success


def test_skips_propagate(executor: Executor) -> None:
    with Flow("skips") as flow:
        checked = flows.skip_on.map([1, 2], unmapped(2))
        reduced = flows.total(checked)
        counted = flows.count_finished(checked)
    state = run(flow, executor)
    assert summary(state.result[checked]) == (
        "Mapped",
        [("Success", 1), ("Skipped", "SKIP: skipping 2")],
    )
    assert type(state.result[reduced]) is Skipped
    assert summary(state.result[counted]) == ("Skipped", None)
    assert type(state) is Success


def test_success_signal_and_loop(executor: Executor) -> None:
    with Flow("signals") as flow:
        early = flows.raise_success()
        looped = flows.loop_to(4)
    state = run(flow, executor)
    assert summary(state.result[early]) == ("Success", 42)
    assert state.result[early].message == "done early"
    assert summary(state.result[looped]) == ("Success", 10)
    assert not isinstance(state.result[looped], Looped)


def test_task_errors_come_back_as_failed_states(executor: Executor) -> None:
    with Flow("errors") as flow:
        checked = flows.fail_on(7, 7)
    state = run(flow, executor)
    failed = state.result[checked]
    assert type(failed) is Failed
    assert isinstance(failed.result, flows.Boom)
    assert failed.message == "Error during execution of task: Boom('bad item 7')"


def test_a_paused_task_leaves_the_run_running(executor: Executor) -> None:
    with Flow("pause") as flow:
        approved = flows.approve(flows.inc(1))
        after = flows.inc(approved)
    state = run(flow, executor)
    assert state.is_running()
    assert type(state.result[approved]) is Paused
    assert state.result[approved].cached_inputs["x"].value == 2
    assert type(state.result[after]) is Pending


# -- retries ------------------------------------------------------------------------------


def test_retries_of_a_task_and_of_a_mapped_child(executor: Executor) -> None:
    with Flow("retries") as flow:
        single = flows.flaky(1, 3)
        children = flows.flaky.map([10, 20], unmapped(2))
    state = run(flow, executor)
    assert type(state) is Success
    assert summary(state.result[single]) == ("Success", (1, 3))
    assert state.result[children].result == [(10, 2), (20, 2)]


def test_one_pass_leaves_a_retrying_state(executor: Executor) -> None:
    from flowcore.engine.flow_runner import FlowRunner

    with Flow("one pass") as flow:
        single = flows.flaky(1, 2)
    state = FlowRunner(flow).run(executor=executor, return_tasks=[single])
    assert state.is_running()
    retrying = state.result[single]
    assert type(retrying) is Retrying
    assert retrying.run_count == 1


# -- constants, parameters ----------------------------------------------------------------


def test_constants_and_parameters(executor: Executor) -> None:
    flow, out = flows.parameter_flow()
    assert run(flow, executor, step=10).result[out].result == 11
    assert run(flow, executor, parameters={"start": 5, "step": 1}).result[out].result == 6
    with Flow("constants") as constant_flow:
        summed = flows.add(2, 3)
        items = flows.add.map([1, 2], [10, 20])
    state = run(constant_flow, executor)
    assert state.result[summed].result == 5
    assert state.result[items].result == [11, 22]


def test_parameters_reach_the_task_context(executor: Executor) -> None:
    with Flow("context") as flow:
        size = Parameter("size", default=2)
        described = flows.describe(size)
    state = run(flow, executor, size=3)
    assert state.result[described].result["parameters"] == {"size": 3}


# -- timeouts -----------------------------------------------------------------------------


def test_a_timeout_stops_the_task(executor: Executor, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks"
    slow = flows.tick_until_stopped.copy(timeout=1)
    with Flow("timeout") as flow:
        out = slow(str(ticks), 30)
    state = run(flow, executor)
    assert type(state.result[out]) is TimedOut
    assert type(state) is Failed
    time.sleep(0.1)
    stopped_at = ticks.stat().st_size
    time.sleep(0.2)
    assert ticks.stat().st_size == stopped_at  # the task's loop was stopped, not abandoned


# -- results, checkpointing, caching ------------------------------------------------------


def test_checkpointed_results_and_targets(executor: Executor, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = LocalResult(dir=tmp_path / "results")
    recorded = flows.record.copy(result=result, target="{task_name}-{value}.pkl", checkpoint=True)
    with Flow("targets") as flow:
        out = recorded(str(runs), 7)
        children = recorded.map(unmapped(str(runs)), [1, 2])
    first = run(flow, executor, context={"checkpointing": True})
    assert summary(first.result[out]) == ("Success", 7)
    assert first.result[out]._result.location == str(tmp_path / "results" / "record-7.pkl")
    assert first.result[children].result == [1, 2]
    assert sorted(runs.read_text().split()) == ["1", "2", "7"]
    second = run(flow, executor, context={"checkpointing": True})
    assert type(second.result[out]) is Cached
    assert second.result[out].result == 7
    assert [type(s) for s in second.result[children].map_states] == [Cached, Cached]
    assert sorted(runs.read_text().split()) == ["1", "2", "7"]


def test_output_cache_across_runs(executor: Executor, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with Flow("cache") as flow:
        out = flows.cached_record(str(runs), 3)
    first = run(flow, executor)
    second = run(flow, executor)
    assert type(first.result[out]) is Cached
    assert type(second.result[out]) is Cached
    assert second.result[out].result == 3
    assert runs.read_text().split() == ["3"]


def test_mapped_states_are_plain_values_on_the_client(executor: Executor) -> None:
    flow, mapped, _ = flows.map_reduce_flow([1])
    state = run(flow, executor)
    parent = state.result[mapped]
    assert isinstance(parent, Mapped)
    assert all(type(child) is Success for child in parent.map_states)
