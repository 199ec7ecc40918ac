"""``flowcore.core.flow.Flow``: building (functional and imperative), introspection, running.

Expected names and behaviours were checked against Prefect 1.4.1 (see
``reference/prefect1-semantics.md`` sections 2.1-2.6). Where flowcore deliberately differs
(deterministic order, cycle messages naming the cycle, independent copies), the test says so.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flowcore import Flow, Parameter, Task, context, task
from flowcore.core.edge import Edge
from flowcore.engine.state import Failed, Pending, Success
from flowcore.tasks.core.constants import Constant
from flowcore.utilities.configuration import set_temporary_config
from flowcore.utilities.debug import raise_on_exception


class Add(Task):
    def run(self, x: int, y: int = 2) -> int:
        return x + y


@task
def one() -> int:
    return 1


def names(tasks: Any) -> list[str]:
    return sorted(t.name for t in tasks)


def chain_of(*names_: str) -> tuple[Flow, list[Task]]:
    flow = Flow("f")
    tasks = [Task(name=n) for n in names_]
    flow.chain(*tasks)
    return flow, tasks


# -- constructor and identity ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["", None])
def test_flow_name_is_required(name: Any) -> None:
    with pytest.raises(ValueError, match="name"):
        Flow(name)


def test_constructor_attributes() -> None:
    flow = Flow("f")
    assert flow.name == "f"
    assert flow.tasks == set() and flow.edges == set()
    assert flow.constants == {} and flow.slugs == {}
    assert flow.reference_tasks() == set()
    assert flow.logger.name == "flowcore.f"


def test_constructor_takes_tasks_edges_and_reference_tasks() -> None:
    a, b, c = Task(name="a"), Task(name="b"), Task(name="c")
    flow = Flow("f", tasks=[a, c], edges=[Edge(a, b, key="x")], reference_tasks=[a])
    assert flow.tasks == {a, b, c}
    assert [(e.upstream_task, e.downstream_task, e.key) for e in flow.edges] == [(a, b, "x")]
    assert flow.reference_tasks() == {a}


def test_constructor_rejects_unknown_reference_tasks() -> None:
    with pytest.raises(ValueError, match="[Rr]eference tasks"):
        Flow("f", reference_tasks=[Task()])


def test_constructor_validate_detects_cycles() -> None:
    a, b = Task(name="a"), Task(name="b")
    with pytest.raises(ValueError, match="Cycle found"):
        Flow("f", edges=[Edge(a, b), Edge(b, a)], validate=True)


def test_repr() -> None:
    assert repr(Flow("my flow")) == '<Flow: name="my flow">'


def test_flows_are_unhashable() -> None:
    with pytest.raises(TypeError, match="unhashable"):
        hash(Flow("f"))
    with pytest.raises(TypeError):
        {Flow("f")}  # noqa: B018


def test_equality_compares_name_tasks_edges_and_reference_tasks() -> None:
    a, b = Task(name="a"), Task(name="b")
    assert Flow("x", tasks=[a]) == Flow("x", tasks=[a])
    assert Flow("x", tasks=[a]) != Flow("y", tasks=[a])
    assert Flow("x", tasks=[a]) != Flow("x")
    assert Flow("x", tasks=[a]) != Flow("x", tasks=[Task(name="a")])
    assert Flow("x", edges=[Edge(a, b)]) != Flow("x", tasks=[a, b])
    assert Flow("x", tasks=[a, b], reference_tasks=[a]) != Flow("x", tasks=[a, b])
    assert Flow("x") != "x"


def test_iter_yields_sorted_tasks() -> None:
    flow = Flow("f")
    a, b = Task(name="a"), Task(name="b")
    flow.add_edge(b, a)
    assert list(flow) == [b, a]


# -- functional API ---------------------------------------------------------------------------


def test_with_block_sets_the_context_flow() -> None:
    with Flow("f") as flow:
        assert context.get("flow") is flow
    assert context.get("flow") is None


def test_nested_with_blocks_add_to_the_innermost_flow() -> None:
    with Flow("outer") as outer:
        with Flow("inner") as inner:
            in_inner = Add()(1)
        in_outer = Add()(2)
    assert outer.tasks == {in_outer}
    assert inner.tasks == {in_inner}


def test_functional_and_imperative_apis_build_the_same_graph() -> None:
    with Flow("f") as functional:
        a = one()
        b = Add()(a, 5)
    imperative = Flow("f")
    b2 = Add()
    imperative.add_edge(a, b2, key="x")
    imperative.add_edge(5, b2, key="y")
    assert names(functional.tasks) == names(imperative.tasks) == ["Add", "one"]
    assert dict(functional.constants[b]) == dict(imperative.constants[b2]) == {"y": 5}
    assert functional.run().result[b].result == imperative.run().result[b2].result == 6


def test_unused_task_warning() -> None:
    with pytest.warns(UserWarning, match=r"created but not added to the flow: <Task: a>"):
        with Flow("f") as flow:
            Task(name="a")
            flow.add_task(Task(name="b"))


def test_unused_parameter_warning() -> None:
    with pytest.warns(UserWarning, match=r"not added to the flow: <Parameter: p>"):
        with Flow("f"):
            Parameter("p")


def test_unused_constants_do_not_warn() -> None:
    with Flow("f") as flow:
        Constant(5)
    assert flow.tasks == set()


def test_no_unused_warning_when_the_block_raises() -> None:
    with pytest.raises(KeyError), Flow("f"):
        Task(name="a")
        raise KeyError("boom")


def test_tasks_created_outside_the_block_are_not_tracked() -> None:
    outside = Task(name="outside")
    with Flow("f") as flow:
        flow.add_task(Task(name="inside"))
    assert outside not in flow.tasks


# -- add_task ------------------------------------------------------------------------------------


def test_add_task_rejects_non_tasks() -> None:
    with pytest.raises(TypeError, match="Task"):
        Flow("f").add_task(3)  # type: ignore[arg-type]


def test_add_task_is_idempotent_and_returns_the_task() -> None:
    flow, t = Flow("f"), Task()
    assert flow.add_task(t) is t
    assert flow.add_task(t) is t
    assert flow.tasks == {t}
    assert flow.slugs == {t: "Task-1"}


def test_add_task_rejects_a_slug_clash() -> None:
    flow = Flow("f")
    flow.add_task(Task(slug="s"))
    with pytest.raises(ValueError, match='slug "s" already exists'):
        flow.add_task(Task(slug="s"))


def test_generated_slugs() -> None:
    flow = Flow("f")
    tasks = [
        Task(name="show"),
        Task(name="show"),
        Task(name="show", tags=["b", "a"]),
        Task(name="show", tags=["a", "b"]),
        Task(name="other"),
        Task(slug="custom"),
    ]
    for t in tasks:
        flow.add_task(t)
    assert [flow.slugs[t] for t in tasks] == [
        "show-1",
        "show-2",
        "show-a-b-1",
        "show-a-b-2",
        "other-1",
        "custom",
    ]
    # the flow records slugs; it does not set them on the tasks
    assert [t.slug for t in tasks] == [None] * 5 + ["custom"]


def test_generated_slug_skips_an_explicit_slug_already_taken() -> None:
    flow = Flow("f")
    flow.add_task(Task(slug="show-1"))
    t = flow.add_task(Task(name="show"))
    assert flow.slugs[t] == "show-2"


# -- add_edge ------------------------------------------------------------------------------------


def test_add_edge_adds_both_tasks_and_returns_the_edge() -> None:
    flow = Flow("f")
    a, b = Task(name="a"), Add()
    edge = flow.add_edge(a, b, key="x", mapped=True)
    assert isinstance(edge, Edge)
    assert (edge.upstream_task, edge.downstream_task, edge.key, edge.mapped) == (a, b, "x", True)
    assert flow.tasks == {a, b} and flow.edges == {edge}


def test_add_edge_is_idempotent() -> None:
    flow = Flow("f")
    a, b = Task(name="a"), Task(name="b")
    flow.add_edge(a, b)
    flow.add_edge(a, b)
    assert len(flow.edges) == 1


def test_constant_optimisation_adds_no_task_or_edge() -> None:
    flow = Flow("f")
    t = Add()
    edge = flow.add_edge(5, t, key="x")
    assert flow.tasks == {t} and flow.edges == set()
    assert dict(flow.constants[t]) == {"x": 5}
    assert edge not in flow.edges and isinstance(edge.upstream_task, Constant)


@pytest.mark.parametrize(
    "kwargs", [{"key": "x", "mapped": True}, {"key": "x", "flattened": True}, {}]
)
def test_mapped_flattened_or_unkeyed_constants_stay_constant_tasks(kwargs: dict[str, Any]) -> None:
    flow = Flow("f")
    t = Add()
    edge = flow.add_edge([1, 2], t, **kwargs)
    assert edge in flow.edges
    assert isinstance(edge.upstream_task, Constant) and edge.upstream_task in flow.tasks
    assert edge.upstream_task.auto_generated is True
    assert dict(flow.constants[t]) == {}


def test_constants_are_injected_at_run_time() -> None:
    with Flow("f") as flow:
        t = Add()(1, 2)
    assert (len(flow.tasks), len(flow.edges)) == (1, 0)
    assert flow.run().result[t].result == 3


def test_add_edge_into_a_parameter_raises() -> None:
    flow = Flow("f")
    with pytest.raises(ValueError, match="Parameters must be root tasks"):
        flow.add_edge(Task(), Parameter("p"))


def test_add_edge_does_not_validate_by_default() -> None:
    flow = Flow("f")
    a, b = Task(name="a"), Task(name="b")
    flow.add_edge(a, b)
    flow.add_edge(b, a)
    assert len(flow.edges) == 2


def test_add_edge_validate_argument_detects_cycles() -> None:
    flow = Flow("f")
    a, b = Task(name="a"), Task(name="b")
    flow.add_edge(a, b)
    with pytest.raises(ValueError, match="Cycle found; flows must be acyclic!"):
        flow.add_edge(b, a, validate=True)


def test_running_a_flow_with_a_cycle_fails_it_as_prefect_1_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Prefect 1.4.1 (verified): ``flow.run()`` returns ``Failed("Unexpected error:
    ValueError('Cycle found; flows must be acyclic!')")`` and logs the error; under
    ``raise_on_exception`` it raises."""
    flow = Flow("cyc")
    a, b = Task(name="a"), Task(name="b")
    flow.add_edge(a, b)
    flow.add_edge(b, a)
    with caplog.at_level(logging.ERROR, logger="flowcore"):
        state = flow.run()
    assert isinstance(state, Failed) and isinstance(state.result, ValueError)
    assert state.message == (
        "Unexpected error: ValueError('Cycle found; flows must be acyclic! a -> b -> a')"
    )
    assert "Unexpected error occured in FlowRunner: ValueError('Cycle found" in caplog.text
    with raise_on_exception(), pytest.raises(ValueError, match="Cycle found"):
        flow.run()


def test_edges_given_to_flow_or_update_are_checked_as_add_edge_checks_them() -> None:
    """Prefect 1.4.1 (verified): ``Flow(edges=..., validate=True)`` and
    ``update(..., validate=True)`` add each edge with that ``validate`` (they were added
    unchecked, so an unknown argument or a second edge on one argument got in)."""

    @task
    def add(x: int, y: int = 1) -> int:
        return x + y

    a, b = Task(name="a"), Task(name="b")
    with pytest.raises(TypeError, match="zz"):
        Flow("f", edges=[Edge(a, add.copy(), key="zz")], validate=True)
    twice = add.copy()
    with pytest.raises(ValueError, match='Argument "x" .* has already been assigned'):
        Flow("f", edges=[Edge(a, twice, key="x"), Edge(b, twice, key="x")], validate=True)
    first, second, shared = Flow("one"), Flow("two"), add.copy()
    first.add_edge(a, shared, key="x")
    second.add_edge(b, shared, key="x")
    with pytest.raises(ValueError, match='Argument "x" .* has already been assigned'):
        first.update(second, validate=True)
    with set_temporary_config({"flows.eager_edge_validation": True}):
        with pytest.raises(ValueError, match="Cycle found"):
            Flow("f", edges=[Edge(a, b), Edge(b, a)])


def test_a_flow_name_must_be_text() -> None:
    with pytest.raises(TypeError, match="A flow's name is a str; Flow\\(\\) got int 3"):
        Flow(3)  # type: ignore[arg-type]


def test_loggers_of_flows_and_tasks_can_be_assigned() -> None:
    """Prefect 1's ``logger`` is a plain attribute: ``flow.logger = ...`` and a task class
    setting ``self.logger`` in ``__init__`` work."""
    mine = logging.getLogger("mine")

    class Logs(Task):
        def __init__(self) -> None:
            self.logger = mine
            super().__init__(name="logs")

        def run(self) -> str:
            return self.logger.name

    flow = Flow("f")
    assert flow.logger.name == "flowcore.f"
    flow.logger = mine
    assert flow.logger is mine
    assert Logs().logger is mine and Task(name="t").logger.name == "flowcore.t"


def test_a_copy_of_a_flow_has_its_own_with_block() -> None:
    original = Flow("f")
    copy = original.copy()
    with copy:
        copy.add_task(Task(name="inside"))
        assert original.run().is_successful()  # (the original is not in a with block)


def test_eager_edge_validation_config() -> None:
    a, b = Task(name="a"), Task(name="b")
    with set_temporary_config({"flows.eager_edge_validation": True}):
        flow = Flow("f")
        flow.add_edge(a, b)
        flow.add_edge(b, a, validate=False)
        with pytest.raises(ValueError, match="Cycle found"):
            Flow("g").chain(a, b, a)


def test_duplicate_key_binding_only_caught_with_validation() -> None:
    flow = Flow("f")
    t = Add()
    flow.add_edge(Task(name="a"), t, key="x")
    flow.add_edge(Task(name="b"), t, key="x")
    assert sorted(e.upstream_task.name for e in flow.edges_to(t)) == ["a", "b"]
    with pytest.raises(ValueError, match='Argument "x" for task <Task: Add> has already been'):
        flow.add_edge(Task(name="c"), t, key="x", validate=True)


def test_unknown_key_only_caught_with_validation() -> None:
    flow = Flow("f")
    flow.add_edge(Task(name="a"), Add(), key="zz")
    with pytest.raises(TypeError, match="unexpected keyword argument 'zz'"):
        flow.add_edge(Task(name="b"), Add(), key="zz", validate=True)


def test_any_key_is_valid_for_var_keyword_runs() -> None:
    class Kw(Task):
        def run(self, **kwargs: Any) -> None:
            pass

    edge = Flow("f").add_edge(Task(), Kw(), key="anything", validate=True)
    assert edge.key == "anything"


# -- set_dependencies and chain ------------------------------------------------------------------


def test_set_dependencies() -> None:
    flow = Flow("f")
    t, up, down = Add(), Task(name="up"), Task(name="down")
    flow.set_dependencies(
        t, upstream_tasks=[up], downstream_tasks=[down], keyword_tasks={"x": one, "y": 3}
    )
    assert flow.tasks == {t, up, down, one}
    assert {(e.upstream_task.name, e.downstream_task.name, e.key) for e in flow.edges} == {
        ("up", "Add", None),
        ("one", "Add", "x"),
        ("Add", "down", None),
    }
    assert dict(flow.constants[t]) == {"y": 3}


def test_set_dependencies_wraps_a_non_task() -> None:
    flow = Flow("f")
    flow.set_dependencies(5, downstream_tasks=[Task(name="d")])
    (edge,) = flow.edges
    assert isinstance(edge.upstream_task, Constant) and edge.upstream_task.value == 5


def test_set_dependencies_with_mapped() -> None:
    flow = Flow("f")
    t = Add()
    flow.set_dependencies(t, keyword_tasks={"x": [1, 2, 3]}, mapped=True)
    assert flow.run().result[t].result == [3, 4, 5]


def test_chain() -> None:
    flow, (a, b, c) = chain_of("a", "b", "c")
    assert {(e.upstream_task, e.downstream_task, e.key) for e in flow.edges} == {
        (a, b, None),
        (b, c, None),
    }
    assert flow.chain() == [] and flow.chain(a) == []
    assert [(e.upstream_task, e.downstream_task) for e in flow.chain(c, Task(name="d"))][0][0] is c


# -- update, replace, copy ------------------------------------------------------------------------


def test_update_copies_tasks_edges_and_constants() -> None:
    with Flow("other") as other:
        t = Add()(one(), 3)
    flow = Flow("f")
    flow.add_task(Task(name="mine"))
    flow.update(other)
    assert names(flow.tasks) == ["Add", "mine", "one"]
    assert flow.edges == other.edges
    assert dict(flow.constants[t]) == {"y": 3}
    assert flow.run().result[t].result == 4


def test_update_with_clashing_parameters_raises_without_merge() -> None:
    with Flow("a") as first:
        Add()(Parameter("p", default=2))
    with Flow("b") as second:
        Add()(Parameter("p", default=1))
    with pytest.raises(ValueError, match='slug "p"'):
        first.update(second)


def test_update_merge_parameters_uses_the_other_flows_parameter() -> None:
    with Flow("a") as first:
        mine = Parameter("p", default=2)
        t1 = Add()(mine)
    with Flow("b") as second:
        theirs = Parameter("p", default=1)
        t2 = Add()(theirs, 3)
    first.update(second, merge_parameters=True)
    assert first.parameters() == {theirs}
    assert [e.upstream_task for e in first.edges_to(t1)] == [theirs]
    state = first.run()
    assert (state.result[t1].result, state.result[t2].result) == (3, 4)


def test_update_merge_parameters_validates() -> None:
    first, (a, b) = chain_of("a", "b")
    second = Flow("g")
    second.add_edge(b, a)
    with pytest.raises(ValueError, match="Cycle found"):
        first.update(second, merge_parameters=True)


def test_update_reference_tasks() -> None:
    a, b, c = Task(name="a"), Task(name="b"), Task(name="c")
    first = Flow("f", tasks=[a], reference_tasks=[a])
    second = Flow("g")
    second.chain(b, c)
    second.set_reference_tasks([b])
    merged = first.copy()
    first.update(second)
    assert first.reference_tasks() == {a}
    merged.update(second, merge_reference_tasks=True)
    assert merged.reference_tasks() == {a, b}


def test_update_merge_reference_tasks_uses_default_reference_tasks() -> None:
    first, (a, b) = chain_of("a", "b")
    second, (c, d) = chain_of("c", "d")
    second.set_reference_tasks([c])
    first.update(second, merge_reference_tasks=True)
    assert first.reference_tasks() == {b, c, d}


def test_replace_rewires_edges_and_reference_tasks() -> None:
    with Flow("f") as flow:
        a = one()
        b = Add()(a, 5)
        c = Add()(b)
    flow.set_reference_tasks([b])
    new = Add(name="new")
    flow.replace(b, new)
    assert names(flow.tasks) == ["Add", "new", "one"]
    assert [(e.upstream_task, e.key) for e in flow.edges_to(c)] == [(new, "x")]
    assert [(e.upstream_task, e.key) for e in flow.edges_to(new)] == [(a, "x")]
    assert flow.reference_tasks() == {new}
    assert b not in flow.slugs


def test_replace_moves_constant_inputs_to_the_new_task() -> None:
    # Prefect 1.4.1 leaves them on the old task, so the new task runs without them;
    # flowcore keeps the graph equivalent (constants are just optimised edges)
    with Flow("f") as flow:
        b = Add()(1, 5)
    new = Add(name="new")
    flow.replace(b, new)
    assert dict(flow.constants[new]) == {"x": 1, "y": 5}
    assert b not in flow.constants
    assert flow.run().result[new].result == 6


def test_replace_unknown_task_raises() -> None:
    with pytest.raises(ValueError, match="Task <Task: Task> was not found in Flow"):
        Flow("f").replace(Task(), Task())


def test_copy_has_independent_containers() -> None:
    flow, (a, b) = chain_of("a", "b")
    with flow:
        t = Add()(1)
    flow.set_reference_tasks([b])
    new = flow.copy()
    assert new == flow and new is not flow
    new.add_edge(b, Task(name="c"))
    new.constants[t]["y"] = 99
    new.set_reference_tasks([a])
    assert names(flow.tasks) == ["Add", "a", "b"]
    assert len(flow.edges) == 1 and len(new.edges) == 2
    assert dict(flow.constants[t]) == {"x": 1}
    assert flow.reference_tasks() == {b}
    assert len(new.slugs) == 4 and len(flow.slugs) == 3


# -- validate ------------------------------------------------------------------------------------


def test_validate_names_the_cycle() -> None:
    flow, (a, b, c) = chain_of("a", "b", "c")
    flow.add_edge(c, a)
    with pytest.raises(ValueError, match=r"Cycle found; flows must be acyclic! a -> b -> c -> a"):
        flow.validate()


def test_validate_unknown_reference_tasks() -> None:
    flow = Flow("f", tasks=[Task(name="a"), Task(name="b")])
    b = flow.get_tasks(name="b")[0]
    flow.set_reference_tasks([b])
    flow.tasks.discard(b)
    with pytest.raises(ValueError, match="reference tasks"):
        flow.validate()


def test_validate_edges_to_tasks_outside_the_flow() -> None:
    flow = Flow("f")
    a = flow.add_task(Task(name="a"))
    flow.edges.add(Edge(a, Task(name="b")))
    with pytest.raises(ValueError, match="edges"):
        flow.validate()


def test_validate_passes_on_a_good_flow() -> None:
    flow, _ = chain_of("a", "b")
    flow.validate()


# -- sorted_tasks ---------------------------------------------------------------------------------


def test_sorted_tasks_is_topological_with_insertion_order_ties() -> None:
    # Prefect 1 breaks ties by object id; flowcore by insertion order
    flow = Flow("f")
    tasks = [flow.add_task(Task(name=str(i))) for i in range(8)]
    flow.add_edge(tasks[5], tasks[1])
    order = [t.name for t in flow.sorted_tasks()]
    assert order == ["0", "2", "3", "4", "5", "1", "6", "7"]
    assert isinstance(flow.sorted_tasks(), tuple)


def test_sorted_tasks_restricted_to_root_tasks() -> None:
    flow, (a, b, c) = chain_of("a", "b", "c")
    d, e = Task(name="d"), Task(name="e")
    flow.chain(d, e)
    flow.add_edge(d, c)
    assert [t.name for t in flow.sorted_tasks(root_tasks=[b])] == ["b", "c"]
    assert set(flow.sorted_tasks(root_tasks=[d])) == {d, c, e}
    downstream_of_d = flow.sorted_tasks(root_tasks=[d])
    assert downstream_of_d[0] is d


def test_sorted_tasks_with_empty_root_tasks_sorts_everything() -> None:
    flow, tasks = chain_of("a", "b")
    assert flow.sorted_tasks(root_tasks=[]) == tuple(tasks)


def test_sorted_tasks_with_an_unknown_root_raises() -> None:
    flow, _ = chain_of("a")
    with pytest.raises(ValueError, match="not found"):
        flow.sorted_tasks(root_tasks=[Task(name="z")])


def test_sorted_tasks_cycle_raises_with_the_cycle() -> None:
    flow, (a, b, c) = chain_of("a", "b", "c")
    flow.add_edge(c, b)
    with pytest.raises(ValueError) as info:
        flow.sorted_tasks()
    assert str(info.value) == "Cycle found; flows must be acyclic! b -> c -> b"


def test_sorted_tasks_is_recomputed_after_changes() -> None:
    flow, (a, b) = chain_of("a", "b")
    assert flow.sorted_tasks() == (a, b)
    c = Task(name="c")
    flow.add_edge(c, a)
    assert flow.sorted_tasks() == (c, a, b)


# -- introspection -------------------------------------------------------------------------------


def test_root_and_terminal_tasks() -> None:
    flow, (a, b, c) = chain_of("a", "b", "c")
    d = flow.add_task(Task(name="d"))
    assert flow.root_tasks() == {a, d}
    assert flow.terminal_tasks() == {c, d}


def test_reference_tasks_default_and_explicit() -> None:
    flow, (a, b, c) = chain_of("a", "b", "c")
    d = flow.add_task(Task(name="d"))
    assert flow.reference_tasks() == {c, d}
    flow.set_reference_tasks([a])
    assert flow.reference_tasks() == {a}
    flow.set_reference_tasks([])
    assert flow.reference_tasks() == {c, d}


def test_set_reference_tasks_rejects_unknown_tasks() -> None:
    flow, _ = chain_of("a")
    with pytest.raises(ValueError, match="[Rr]eference tasks"):
        flow.set_reference_tasks([Task()])


def test_reference_tasks_decide_the_flow_state() -> None:
    @task
    def boom() -> None:
        raise ValueError("no")

    with Flow("f") as flow:
        ok = one()
        bad = boom()
    assert flow.run().is_failed()
    flow.set_reference_tasks([ok])
    state = flow.run()
    assert state.is_successful()
    assert isinstance(state.result[bad], Failed)


def test_get_tasks_filters() -> None:
    flow = Flow("f")
    a = flow.add_task(Task(name="a", tags=["t1", "t2"]))
    b = flow.add_task(Task(name="b", tags=["t1"]))
    p = flow.add_task(Parameter("c"))
    d = flow.add_task(Task(name="a", slug="dd"))
    assert set(flow.get_tasks()) == {a, b, p, d}
    assert set(flow.get_tasks(name="a")) == {a, d}
    assert set(flow.get_tasks(tags=["t1"])) == {a, b}
    assert flow.get_tasks(tags=["t1", "t2"]) == [a]
    assert flow.get_tasks(task_type=Parameter) == [p]
    assert flow.get_tasks(slug="dd") == [d]
    assert flow.get_tasks(slug=flow.slugs[b]) == [b]
    assert flow.get_tasks(name="a", tags=["t2"]) == [a]
    assert flow.get_tasks(name="zz") == []


def test_edges_and_neighbours() -> None:
    flow = Flow("f")
    a, b, c = Task(name="a"), Add(), Task(name="c")
    e1 = flow.add_edge(a, b, key="x")
    e2 = flow.add_edge(b, c)
    assert flow.edges_to(b) == {e1} and flow.edges_from(b) == {e2}
    assert flow.edges_to(a) == set() and flow.edges_from(c) == set()
    assert flow.upstream_tasks(b) == {a} and flow.downstream_tasks(b) == {c}
    assert flow.all_upstream_edges() == {a: set(), b: {e1}, c: {e2}}
    assert flow.all_downstream_edges() == {a: {e1}, b: {e2}, c: set()}


@pytest.mark.parametrize("method", ["edges_to", "edges_from", "upstream_tasks", "downstream_tasks"])
def test_neighbour_queries_reject_unknown_tasks(method: str) -> None:
    with pytest.raises(ValueError, match="not found"):
        getattr(Flow("f"), method)(Task(name="q"))


def test_parameters() -> None:
    with Flow("f") as flow:
        p = Parameter("p", default=1)
        Add()(p, one())
    assert flow.parameters() == {p}


# -- run -----------------------------------------------------------------------------------------


def test_run_inside_its_own_with_block_raises() -> None:
    with pytest.raises(RuntimeError, match="with Flow"), Flow("f") as flow:
        Add()(1)
        flow.run()


def test_run_inside_its_own_block_raises_even_within_another_block() -> None:
    with pytest.raises(RuntimeError, match="with Flow"), Flow("outer") as outer:
        Add()(1)
        with Flow("inner"):
            outer.run()


def test_run_after_the_block_works_again() -> None:
    with Flow("f") as flow:
        t = Add()(1)
    assert flow.run().result[t].result == 3
    with flow:
        pass
    assert flow.run().result[t].result == 3


def test_run_takes_return_tasks() -> None:
    """Prefect 1's flow.run raises a ValueError for return_tasks; flowcore's takes it (as
    FlowRunner.run does): docs/migrating.md."""
    with Flow("f") as flow:
        added = Add()(1)
    state = flow.run(return_tasks=[])
    assert state.is_successful()
    assert state.result == {}
    assert flow.run(return_tasks=[added]).result[added].result == 3


def test_run_parameters_from_dict_and_kwargs() -> None:
    with Flow("f") as flow:
        t = Add()(Parameter("p"), Parameter("q", default=2))
    assert flow.run(p=1).result[t].result == 3
    assert flow.run(parameters={"p": 10, "q": 20}).result[t].result == 30
    assert flow.run(parameters={"p": 10}, q=5).result[t].result == 15


def test_run_does_not_mutate_the_parameters_dict() -> None:
    with Flow("f") as flow:
        Add()(Parameter("p"), Parameter("q", default=2))
    given = {"p": 1}
    flow.run(parameters=given, q=3)
    assert given == {"p": 1}


def test_run_rejects_unexpected_parameters() -> None:
    with Flow("f") as flow:
        Add()(Parameter("p", default=1))
    with pytest.raises(
        ValueError, match="Flow.run received the following unexpected parameters: zz"
    ):
        flow.run(parameters={"zz": 1})
    with pytest.raises(ValueError, match="unexpected parameters") as info:
        flow.run(parameters={"zz": 1, "aa": 2})
    assert "zz" in str(info.value) and "aa" in str(info.value)


def test_run_rejects_missing_required_parameters_before_running() -> None:
    ran: list[int] = []

    @task
    def record() -> None:
        ran.append(1)

    with Flow("f") as flow:
        Add()(Parameter("p"), Parameter("q"))
        record()
    with pytest.raises(
        ValueError, match="Flow.run did not receive the following required parameters: p, q"
    ):
        flow.run()
    with pytest.raises(ValueError, match="required parameters: p$"):
        flow.run(q=1)
    assert ran == []


def test_unknown_keyword_arguments_are_not_parameters() -> None:
    with Flow("f") as flow:
        Add()(1)
    with pytest.raises(TypeError, match="zz"):
        flow.run(zz=1)


def test_run_returns_a_state_for_every_task() -> None:
    @task
    def boom() -> None:
        raise ValueError("no")

    with Flow("f") as flow:
        a = boom()
        b = Add()(a)
    state = flow.run()
    assert isinstance(state, Failed)
    assert set(state.result) == {a, b}
    assert isinstance(state.result[a].result, ValueError)


def test_run_success_messages() -> None:
    with Flow("f") as flow:
        t = Add()(1)
    state = flow.run()
    assert isinstance(state, Success)
    assert state.message == "All reference tasks succeeded."
    assert state.result[t].result == 3
    assert not isinstance(state.result[t], Pending)


def test_edges_and_tasks_changed_directly_are_the_flow_when_it_runs_or_validates() -> None:
    """Prefect 1 code edits ``flow.edges`` and ``flow.tasks`` directly, to drop a dependency
    (``flow.edges.remove(edge)``) or add one; as in Prefect 1, the sets are the flow. (A
    removed edge was still followed by the run, and a task added to the set failed it
    with a KeyError.)"""
    ran: list[str] = []

    @task
    def fail() -> None:
        raise ValueError("upstream fails")

    @task
    def after() -> str:
        ran.append("after")
        return "ran"

    flow = Flow("f")
    failing, later = fail.copy(), after.copy()
    flow.add_edge(failing, later)
    flow.edges.remove(next(iter(flow.edges_to(later))))
    extra = after.copy(name="extra")
    flow.tasks.add(extra)
    state = flow.run()
    assert type(state.result[later]).__name__ == "Success" and state.result[extra].result == "ran"
    assert flow.upstream_tasks(later) == set() and extra in flow.slugs
    a, b = Task(name="a"), Task(name="b")
    other = Flow("g", tasks=[a, b])
    other.edges.add(Edge(a, b))
    other.validate()
    assert other.upstream_tasks(b) == {a}

    @task
    def value(x: int) -> int:
        return x

    swapped, one, two, shown = Flow("s"), value.copy(), value.copy(), value.copy()
    swapped.add_edge(swapped.add_task(one), shown, key="x")
    swapped.add_task(two)
    swapped.constants[one]["x"], swapped.constants[two]["x"] = 1, 2
    swapped.edges.remove(next(iter(swapped.edges_to(shown))))  # one edge for another: the
    swapped.edges.add(Edge(two, shown, key="x"))  # same count (it was counted only)
    assert swapped.run().result[shown].result == 2
    alone = Task(name="alone")
    swapped.add_task(alone)
    swapped.tasks.remove(alone)  # a task with no edges taken out: it does not run
    assert alone not in swapped.run().result
