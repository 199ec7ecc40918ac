"""``Flow`` behaviours and messages that Prefect 1 users and their tests rely on.

Each test states Prefect 1.4.1's behaviour, verified against prefect 1.4.1 (same code run in
a separate virtual environment). Error texts: the first sentence is Prefect 1's, word for
word, so that ``pytest.raises(..., match=...)`` in users' tests keeps matching; flowcore
may add a second sentence that names the task or flow and the fix.
"""

from __future__ import annotations

import re
from typing import Any

import cloudpickle
import pytest

from flowcore import Flow, Parameter, Task, apply_map, task
from flowcore.core.edge import Edge
from flowcore.engine.state import State
from flowcore.tasks.core.constants import Constant
from flowcore.utilities.configuration import set_temporary_config


class Add(Task):
    def run(self, x: int, y: int) -> int:
        return x + y


@task
def inc(x: int) -> int:
    return x + 1


def two_task_flow() -> tuple[Flow, Task, Task]:
    flow, a, b = Flow("test"), Task(name="a"), Task(name="b")
    flow.add_edge(a, b)
    return flow, a, b


# -- error texts (verified against prefect 1.4.1) -------------------------------------------


def test_a_parameter_cannot_be_downstream() -> None:
    with pytest.raises(ValueError, match="can not have upstream dependencies"):
        Flow("test").add_edge(upstream_task=Task(), downstream_task=Parameter("p"))


def test_a_key_bound_twice_is_caught_with_validation() -> None:
    flow, t, add = Flow("test"), Task(), Add()
    flow.add_edge(upstream_task=t, downstream_task=add, key="x")
    with pytest.raises(
        ValueError,
        match=re.escape(
            'Argument "x" for task <Task: Add> has already been assigned in this flow. If you '
            "are trying to call the task again with new arguments, call Task.copy() before "
            "adding the result to this flow."
        ),
    ):
        flow.add_edge(upstream_task=t, downstream_task=add, key="x", validate=True)


def test_an_unknown_key_is_caught_with_validation() -> None:
    with pytest.raises(TypeError, match="got an unexpected keyword argument 'zz'"):
        Flow("test").add_edge(Task(), Add(), key="zz", validate=True)


@pytest.mark.parametrize("query", ["edges_to", "edges_from", "upstream_tasks", "downstream_tasks"])
def test_graph_queries_on_a_task_not_in_the_flow(query: str) -> None:
    flow, _, _ = two_task_flow()
    with pytest.raises(ValueError, match="was not found in Flow"):
        getattr(flow, query)(Task(name="ghost"))


def test_sorted_tasks_from_a_root_not_in_the_flow() -> None:
    flow, _, _ = two_task_flow()
    with pytest.raises(ValueError, match="Task <Task: ghost> was not found in Flow"):
        flow.sorted_tasks(root_tasks=[Task(name="ghost")])


def test_replace_a_task_not_in_the_flow() -> None:
    flow, a, _ = two_task_flow()
    with pytest.raises(ValueError, match="was not found in Flow"):
        flow.replace(Task(name="ghost"), a)


def test_validate_edges_to_a_task_outside_the_flow() -> None:
    flow, _, b = two_task_flow()
    flow.tasks.remove(b)
    with pytest.raises(
        ValueError, match=re.escape("Some edges refer to tasks not contained in this flow.")
    ):
        flow.validate()


def test_validate_reference_tasks_outside_the_flow() -> None:
    flow, a, b = Flow("test"), Task(name="a"), Task(name="b")
    flow.add_task(a)
    flow.add_task(b)
    flow.set_reference_tasks([a])
    flow.tasks.remove(a)
    with pytest.raises(
        ValueError, match=re.escape("Some reference tasks are not contained in this flow.")
    ):
        flow.validate()


def test_reference_tasks_must_be_in_the_flow() -> None:
    with pytest.raises(ValueError, match=re.escape("reference tasks must be part of the flow.")):
        Flow("test", reference_tasks=[Task()])
    with pytest.raises(ValueError, match="must be part of the flow"):
        Flow("test").set_reference_tasks([Task()])


def test_a_cycle() -> None:
    flow, a, b = two_task_flow()
    flow.add_edge(b, a)
    with pytest.raises(ValueError, match=re.escape("Cycle found; flows must be acyclic!")):
        flow.validate()
    with set_temporary_config({"flows.eager_edge_validation": True}):
        other, c, d = two_task_flow()
        with pytest.raises(ValueError, match="Cycle found"):
            other.add_edge(d, c)


def test_construction_errors() -> None:
    with pytest.raises(ValueError, match=re.escape("A name must be provided for the flow.")):
        Flow("")
    with pytest.raises(TypeError, match=re.escape("state_handlers should be iterable.")):
        Flow("test", state_handlers=lambda *a: None)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=re.escape("Tasks must be Task instances (received <class 'int'>)")
    ):
        Flow("test").add_task(1)  # type: ignore[arg-type]


def test_two_tasks_with_one_slug() -> None:
    flow = Flow("test")
    flow.add_task(Task(slug="a"))
    with pytest.raises(
        ValueError, match=re.escape('A task with the slug "a" already exists in this flow.')
    ):
        flow.add_task(Task(slug="a"))


@pytest.mark.parametrize("how", ["map", "set_dependencies", "add_edge"])
def test_mapped_true_inside_apply_map(how: str) -> None:
    def build(x: Task, flow: Flow) -> None:
        if how == "map":
            inc.map(x, flow=flow)
        elif how == "set_dependencies":
            flow.set_dependencies(inc, keyword_tasks={"x": x}, mapped=True)
        else:
            flow.add_edge(x, inc, key="x", mapped=True)

    with pytest.raises(
        ValueError, match="Cannot set `mapped=True` when running from inside a mapped context"
    ):
        apply_map(build, [1, 2, 3], flow=Flow("test"))


def test_run_inside_its_own_with_block() -> None:
    with pytest.raises(RuntimeError) as info:
        with Flow("test") as flow:
            flow.run()
    assert "Don't call `flow.run()` from within a `Flow` context manager." in str(info.value)


def test_created_but_unused_tasks_warn() -> None:
    with pytest.warns(UserWarning, match="Tasks were created but not added to the flow"):
        with Flow("test"):
            Task(name="lost")


# -- flow._cache (verified against prefect 1.4.1) ---------------------------------------------


SORTED_KEY = ("_sorted_tasks", (("root_tasks", ()),))


def test_cache_starts_empty() -> None:
    assert Flow("test")._cache == {}


def test_sorted_tasks_are_cached_under_prefect_1s_key() -> None:
    flow, a, b = two_task_flow()
    flow.sorted_tasks()
    assert flow._cache[SORTED_KEY] == (a, b)
    flow._cache[SORTED_KEY] = 1  # the cache is read
    assert flow.sorted_tasks() == 1  # type: ignore[comparison-overlap]
    c = Task(name="c")
    flow.add_edge(b, c)  # and invalidated when the graph changes
    assert flow.sorted_tasks() == (a, b, c)


def test_sorted_tasks_with_roots_are_cached_per_roots() -> None:
    flow, a, b = two_task_flow()
    flow.sorted_tasks([b])
    key = ("_sorted_tasks", (("root_tasks", (b,)),))
    assert flow._cache[key] == (b,)
    flow._cache[key] = 1
    assert flow.sorted_tasks([b]) == 1  # type: ignore[comparison-overlap]
    assert flow.sorted_tasks() == (a, b)


@pytest.mark.parametrize("query", ["root_tasks", "terminal_tasks"])
def test_root_and_terminal_tasks_are_cached(query: str) -> None:
    flow, a, b = two_task_flow()
    expected = {"root_tasks": {a}, "terminal_tasks": {b}}[query]
    assert getattr(flow, query)() == expected
    assert flow._cache[(query, ())] == expected
    flow._cache[(query, ())] = 1
    assert getattr(flow, query)() == 1
    flow.add_edge(b, Task(name="c"))
    assert getattr(flow, query)() != 1


@pytest.mark.parametrize("query", ["all_upstream_edges", "all_downstream_edges"])
def test_edge_maps_are_cached(query: str) -> None:
    flow, a, b = two_task_flow()
    edges = getattr(flow, query)()
    assert (
        edges
        == {
            "all_upstream_edges": {a: set(), b: {Edge(a, b)}},
            "all_downstream_edges": {a: {Edge(a, b)}, b: set()},
        }[query]
    )
    flow._cache[(query, ())] = 1
    assert getattr(flow, query)() == 1
    flow.add_edge(b, Task(name="c"))
    assert getattr(flow, query)() != 1


def test_query_answers_are_the_callers_to_change() -> None:
    flow, a, b = two_task_flow()
    flow.root_tasks().add(b)
    flow.all_upstream_edges()[a].add(Edge(b, a))
    assert flow.root_tasks() == {a}
    assert flow.all_upstream_edges()[a] == set()


def test_adding_tasks_edges_and_reference_tasks_clears_the_cache() -> None:
    flow = Flow("test")
    t = Task()
    for change in (
        lambda: flow.add_task(t),
        lambda: flow.add_edge(Task(), Task()),
        lambda: flow.set_reference_tasks([t]),
    ):
        flow._cache[1] = 2
        change()
        assert 1 not in flow._cache


def test_cache_survives_pickling() -> None:
    flow, _, _ = two_task_flow()
    flow.sorted_tasks()
    flow._cache[SORTED_KEY] = 1
    flow._cache["flowcore.run_plan"] = ["the engine's memo"]  # rebuilt, not pickled
    copy = cloudpickle.loads(cloudpickle.dumps(flow))
    assert copy.sorted_tasks() == 1
    assert "flowcore.run_plan" not in copy._cache
    copy.add_edge(Task(), Task())
    assert copy.sorted_tasks() != 1


# -- copy(), replace() and update() (verified against prefect 1.4.1) ---------------------------


def test_copy_has_its_own_constants() -> None:
    with Flow("foo") as original:
        x = Parameter("x")
        inc(x)
    assert not original.constants
    copied = original.copy()
    copied.replace(x, 1)
    assert copied.constants
    assert not original.constants


def test_replace_with_a_constant() -> None:
    add = Add()
    with Flow("test") as flow:
        x, y = Parameter("x"), Parameter("y")
        res = add(x, y)
    flow.replace(x, 55)
    # the constant is a task of the flow; its value is a constant input of `add`
    assert len(flow.tasks) == 3
    assert [type(t) for t in flow.tasks if t not in (y, res)] == [Constant]
    assert dict(flow.constants[res]) == {"x": 55}
    state = flow.run(y=6)
    assert state is not None and state.is_successful()
    assert state.result[res].result == 61


def test_replace_with_collections() -> None:
    add = Add()
    with Flow("test") as flow:
        x, y = Parameter("x"), Parameter("y")
        res = add(x, y)
    flow.replace(x, [55, 56])
    flow.replace(y, [1, 2])
    assert len(flow.tasks) == 3
    state = flow.run()
    assert state is not None and state.is_successful()
    assert state.result[res].result == [55, 56, 1, 2]


def test_replace_with_a_collection_of_tasks() -> None:
    add = Add()
    with Flow("test") as flow:
        x, y = Parameter("x"), Parameter("y", default=[0])
        res = add(x, y)
    one, two = inc(1, flow=flow), inc(2, flow=flow)
    flow.replace(x, [one, two])
    state = flow.run()
    assert state is not None and state.result[res].result == [2, 3, 0]


def update_flows() -> tuple[Flow, Flow, Task, Task]:
    @task
    def add_one(a_number: int) -> int:
        return a_number + 1

    @task
    def mult_one(z: int) -> int:
        return z * 1

    @task
    def sub_one(a_number: int, another_number: int) -> int:
        return a_number - another_number

    with Flow("Add") as add_flow:
        pos_two = mult_one(add_one(Parameter("a_number", default=1)))
    with Flow("Subtract") as subtract_flow:
        a_number = Parameter("a_number", default=2)
        neg_one = mult_one(sub_one(a_number, Parameter("another_number", default=2)))
    return add_flow, subtract_flow, pos_two, neg_one


def test_update_without_merging_parameters_clashes_on_their_slugs() -> None:
    add_flow, subtract_flow, _, _ = update_flows()
    with pytest.raises(
        ValueError, match='A task with the slug "a_number" already exists in this flow.'
    ):
        add_flow.update(subtract_flow)


def test_update_merging_parameters_uses_the_other_flows_parameters() -> None:
    add_flow, subtract_flow, pos_two, neg_one = update_flows()
    add_flow.update(subtract_flow, merge_parameters=True)
    assert sorted(p.name for p in add_flow.parameters()) == ["a_number", "another_number"]
    state = add_flow.run()
    assert state is not None and state.is_successful()
    # both branches read the Subtract flow's a_number (default 2)
    assert state.result[pos_two].result == 3
    assert state.result[neg_one].result == 0


def test_apply_map_over_the_results_of_apply_map() -> None:
    @task
    def combine(pair: tuple[int, int]) -> int:
        return pair[0] + pair[1]

    def first(item: Any) -> tuple[Task, Task]:
        return inc(item), inc(inc(item))

    with Flow("test") as flow:
        one = apply_map(first, [1, 2, 3])
        two = apply_map(lambda pair: combine(pair), one)
    state = flow.run()
    assert state is not None and state.is_successful()
    assert state.result[one[0]].result == [2, 3, 4]
    assert state.result[one[1]].result == [3, 4, 5]
    # the tuple of two mapped results is mapped element-wise: (2, 3), (3, 4), (4, 5)
    assert state.result[two].result == [5, 7, 9]


# -- terminal_state_handler (verified against prefect 1.4.1) -----------------------------------


def test_a_flow_without_the_terminal_state_handler_attribute_runs() -> None:
    # flows pickled before the attribute existed have none in their __dict__
    with Flow("test") as flow:
        inc(1)
    flow.__dict__.pop("terminal_state_handler")
    state = flow.run()
    assert state is not None and state.is_successful()


def test_the_terminal_state_handler_gets_the_flow_state_and_reference_states() -> None:
    seen: list[Any] = []

    def handler(flow: Flow, state: State, reference_task_states: set[State]) -> State | None:
        seen.append((flow.name, type(state).__name__, len(reference_task_states)))
        state.message = "Custom message here"
        return state

    with Flow("test", terminal_state_handler=handler) as flow:
        inc(1)
    state = flow.run()
    assert state is not None and state.message == "Custom message here"
    assert seen == [("test", "Success", 1)]
