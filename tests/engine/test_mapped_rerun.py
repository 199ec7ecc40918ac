"""A mapped parent that is already ``Mapped`` (a retry pass, or ``task_states=`` given by the
user) regenerates its children (reference 6.14). Every expectation here was verified against
prefect 1.4.1 on the same flow (``FlowRunner.run`` with the same ``task_states``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowcore import Flow, Task, task
from flowcore.core.edge import Edge
from flowcore.engine.flow_runner import FlowRunner
from flowcore.engine.state import Mapped, Pending, State, Success
from flowcore.engine.task_runner import TaskRunner
from flowcore.executors import LocalExecutor


@task
def numbers() -> list[int]:
    return [1, 2, 3]


@task
def identity(x: Any) -> Any:
    return x


def mapped_flow() -> tuple[Flow, Task, Task]:
    with Flow("rerun") as flow:
        n = numbers()
        x = identity.map(n)
    return flow, n, x


def run(flow: Flow, task_states: dict[Task, State]) -> State:
    return FlowRunner(flow=flow).run(
        executor=LocalExecutor(), task_states=task_states, return_tasks=flow.tasks
    )


def test_parent_without_children_gets_one_placeholder_per_child() -> None:
    # verified against prefect 1.4.1 (test_mapped_tasks_parent_regenerates_child_pipeline):
    # the parent's run keeps its Mapped state and fills map_states with None placeholders
    state = TaskRunner(Task()).run(
        upstream_states={Edge(Task(), Task(), mapped=True): Success()},
        is_mapped_parent=True,
        state=Mapped(n_map_states=10),
    )
    assert type(state) is Mapped
    assert state.map_states == [None] * 10


def test_upstream_without_a_result_gives_each_child_none() -> None:
    # verified against prefect 1.4.1 (test_task_map_with_no_upstream_results_and_a_mapped_state):
    # the upstream's value is not available, so every child maps over None
    flow, n, x = mapped_flow()
    state = run(flow, {n: Success(), x: Mapped(map_states=[Pending() for _ in range(3)])})
    assert state.is_successful()
    assert state.result[x].result == [None, None, None]
    assert [type(child) for child in state.result[x].map_states] == [Success] * 3


def test_children_are_regenerated_from_the_upstream_values() -> None:
    # verified against prefect 1.4.1: Mapped(n_map_states=3) with no children -> [1, 2, 3]
    flow, _, x = mapped_flow()
    state = run(flow, {x: Mapped(n_map_states=3)})
    assert state.result[x].result == [1, 2, 3]


@pytest.mark.parametrize(
    ("values", "expected"),
    [([5, 6], [5, 6]), ([5, 6, 7, 8], [5, 6, 7])],
    ids=["upstream-shorter", "upstream-longer"],
)
def test_the_shortest_of_upstream_and_children_ends_the_map(
    values: list[int], expected: list[int]
) -> None:
    # verified against prefect 1.4.1: [5, 6] -> [5, 6]; [5, 6, 7, 8] -> [5, 6, 7]
    flow, n, x = mapped_flow()
    state = run(flow, {n: Success(result=values), x: Mapped(n_map_states=3)})
    assert state.is_successful()
    assert state.result[x].result == expected


def test_finished_children_keep_their_states_and_the_others_run() -> None:
    # verified against prefect 1.4.1: [Success(50), Pending, Pending] over [5, 6, 7] ->
    # [50, 6, 7]; with two child states the map has two children -> [50, 6]
    flow, n, x = mapped_flow()
    children: list[State] = [Success(result=50), Pending(), Pending()]
    state = run(flow, {n: Success(result=[5, 6, 7]), x: Mapped(map_states=children)})
    assert state.result[x].result == [50, 6, 7]
    state = run(flow, {n: Success(result=[5, 6, 7]), x: Mapped(map_states=children[:2])})
    assert state.result[x].result == [50, 6]


def test_a_failed_child_is_retried_in_the_next_pass() -> None:
    # verified against prefect 1.4.1: flow.run returns [10, 20, 30]; child 1 ran twice
    calls: list[int] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def flaky(x: int) -> int:
        calls.append(x)
        if x == 2 and calls.count(2) == 1:
            raise ValueError("once")
        return x * 10

    with Flow("retry") as flow:
        y = flaky.map([1, 2, 3])
    state = flow.run()
    assert state.is_successful()
    assert state.result[y].result == [10, 20, 30]
    assert sorted(calls) == [1, 2, 2, 3]
