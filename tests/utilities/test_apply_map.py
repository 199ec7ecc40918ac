"""``apply_map``: map a function that builds a sub-graph (reference 1.6)."""

from __future__ import annotations

from typing import Any

import pytest

import flowcore
from flowcore import Flow, Parameter, apply_map, case, flatten, task, unmapped
from flowcore.engine.state import Mapped, Skipped, State, Success
from flowcore.tasks.control_flow import merge
from flowcore.tasks.control_flow.conditional import CompareValue
from flowcore.tasks.core.constants import Constant


@task
def inc(x: int) -> int:
    return x + 1


@task
def add(x: Any, y: Any) -> Any:
    return x + y


@task
def is_even(x: int) -> bool:
    return x % 2 == 0


@task
def numbers() -> list[int]:
    return [1, 2, 3, 4]


@task
def total(xs: list[int]) -> int:
    return sum(xs)


def run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


def edge_flags(flow: Flow) -> set[tuple[str, str, str | None, bool, bool]]:
    return {
        (e.upstream_task.name, e.downstream_task.name, e.key, e.mapped, e.flattened)
        for e in flow.edges
    }


def test_exported_at_prefect1_paths() -> None:
    from flowcore.utilities.tasks import apply_map as path

    assert flowcore.apply_map is path


def test_maps_a_two_task_sub_graph() -> None:
    def inc_then_double(x: Any) -> Any:
        return add(inc(x), inc(x))

    with Flow("am") as flow:
        result = apply_map(inc_then_double, numbers())
        summed = total(result)
    state = run(flow)
    assert isinstance(state.result[result], Mapped)
    assert state.result[result].result == [4, 6, 8, 10]
    assert state.result[summed].result == 28


def test_case_and_merge_inside_apply_map() -> None:
    def inc_if_even(x: Any, y: Any) -> Any:
        with case(is_even(x), True):
            bumped = inc(x)
        with case(is_even(x), False):
            shifted = add(x, y)
        return merge(bumped, shifted)

    with Flow("am") as flow:
        result = apply_map(inc_if_even, numbers(), unmapped(100))
    state = run(flow)
    assert state.result[result].result == [101, 3, 103, 5]
    (compare_true,) = [t for t in flow.tasks if isinstance(t, CompareValue) and t.value is True]
    children = state.result[compare_true].map_states
    assert [type(s) for s in children] == [Skipped, Success, Skipped, Success]
    edges = edge_flags(flow)
    assert ("numbers", "inc", "x", True, False) in edges
    assert ("is_even", "case(True)", "value", True, False) in edges
    assert ("inc", "Merge", "task_1", True, False) in edges
    (shift,) = [t for t in flow.tasks if t.name == "add"]
    assert flow.constants[shift] == {"y": 100}


def test_unmapped_task_and_constant_arguments() -> None:
    @task
    def ten() -> int:
        return 10

    with Flow("am") as flow:
        tens = ten()
        result = apply_map(lambda x, y, z: add(add(x, y), z), [1, 2], unmapped(tens), unmapped(5))
    state = run(flow)
    assert state.result[result].result == [16, 17]
    assert ("ten", "add", "y", False, False) in edge_flags(flow)


def test_keyword_arguments_are_mapped() -> None:
    with Flow("am") as flow:
        result = apply_map(add, x=[1, 2], y=unmapped(10))
    assert run(flow).result[result].result == [11, 12]


def test_flatten_argument() -> None:
    @task
    def nested() -> list[list[int]]:
        return [[1, 2], [3]]

    with Flow("am") as flow:
        result = apply_map(add, flatten(nested()), y=[10, 20, 30])
    assert run(flow).result[result].result == [11, 22, 33]
    assert ("nested", "add", "x", True, True) in edge_flags(flow)


def test_mapped_constants_become_mapped_constant_tasks() -> None:
    with Flow("am") as flow:
        result = apply_map(inc, [1, 2, 3])
    (constant,) = [t for t in flow.tasks if isinstance(t, Constant)]
    assert constant.value == [1, 2, 3]
    assert flow.edges_to(result) == {e for e in flow.edges if e.upstream_task is constant}
    (edge,) = flow.edges_to(result)
    assert (edge.key, edge.mapped) == ("x", True)
    assert run(flow).result[result].result == [2, 3, 4]


def test_tasks_without_inputs_map_over_the_arguments() -> None:
    """A task built inside ``func`` without inputs still runs once per element: it gets
    every argument as an upstream."""
    with Flow("am") as flow:
        result = apply_map(lambda x: inc(1), [7, 8, 9])
    (edge,) = flow.edges_to(result)
    assert (edge.upstream_task.name, edge.key, edge.mapped) == ("Constant[list]", None, True)
    assert run(flow).result[result].result == [2, 2, 2]


def test_roots_of_the_sub_graph_wait_for_every_argument() -> None:
    @task
    def first() -> list[int]:
        return [1, 2]

    @task
    def second() -> list[int]:
        return [10, 20]

    with Flow("am") as flow:
        a, b = first(), second()
        result = apply_map(lambda x, y: inc(x), a, b)
    assert {(e.upstream_task, e.key, e.mapped) for e in flow.edges_to(result)} == {
        (a, "x", True),
        (b, None, True),
    }
    assert run(flow).result[result].result == [2, 3]


def test_a_list_of_tasks_is_mapped_over_as_a_list() -> None:
    """Prefect 1 maps the List task that collects ``[one(), two()]`` over each item too,
    which fails ("No upstream states can be mapped over"); flowcore maps over the list."""

    @task
    def one() -> int:
        return 1

    @task
    def two() -> int:
        return 2

    with Flow("am") as flow:
        result = apply_map(inc, [one(), two()])
    assert ("one", "List", "arg_1", False, False) in edge_flags(flow)
    assert run(flow).result[result].result == [2, 3]


def test_returns_what_func_returns() -> None:
    def two_outputs(x: Any) -> tuple[Any, Any]:
        return inc(x), add(x, 100)

    with Flow("am") as flow:
        plus_one, plus_hundred = apply_map(two_outputs, [1, 2])
    state = run(flow)
    assert (state.result[plus_one].result, state.result[plus_hundred].result) == (
        [2, 3],
        [101, 102],
    )


def test_explicit_flow_is_passed_to_func() -> None:
    flow = Flow("am")
    seen = []

    def build(x: Any, flow: Flow) -> Any:
        seen.append(flow)
        return inc(x, flow=flow)

    result = apply_map(build, [1, 2], flow=flow)
    assert seen[0] is not flow and seen[0].name == "temporary flow"
    assert result in flow.tasks
    assert run(flow).result[result].result == [2, 3]


def test_apply_map_inside_an_outer_case() -> None:
    with Flow("am") as flow:
        cond = Parameter("go", default=False)
        with case(cond, True):
            result = apply_map(inc, [1, 2])
    (compare,) = [t for t in flow.tasks if isinstance(t, CompareValue)]
    assert compare in flow.upstream_tasks(result)
    assert type(run(flow).result[result]) is Skipped
    assert run(flow, go=True).result[result].result == [2, 3]


def test_parameters_as_arguments() -> None:
    with Flow("am") as flow:
        xs = Parameter("xs", default=[1, 2, 3])
        result = apply_map(inc, xs)
    assert run(flow, xs=[10]).result[result].result == [11]


@pytest.mark.parametrize("value", [1, None, 2.5, {1, 2}])
def test_non_sequences_are_rejected(value: Any) -> None:
    with Flow("am"):
        with pytest.raises(TypeError, match="Cannot map over non-sequence object of type"):
            apply_map(inc, value)


def test_needs_a_flow() -> None:
    with pytest.raises(ValueError, match="Couldn't infer a flow in the current context"):
        apply_map(inc, [1])


def test_mapping_inside_func_is_rejected() -> None:
    with Flow("am"):
        with pytest.raises(ValueError, match="mapped=True"):
            apply_map(lambda x: inc.map(x), [1, 2])
        with pytest.raises(ValueError, match="mapped=True"):
            apply_map(lambda xs: apply_map(inc, xs), [[1], [2]])
