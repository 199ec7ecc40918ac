"""``flowcore.core.edge.Edge`` (Prefect 1.4.1 semantics, reference section 1.9)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from flowcore import Flow, Task
from flowcore.core.edge import Edge
from flowcore.tasks.core.collections import List
from flowcore.tasks.core.constants import Constant
from flowcore.utilities.edges import flatten, mapped, unmapped


def test_defaults() -> None:
    a, b = Task(name="a"), Task(name="b")
    edge = Edge(a, b)
    assert (edge.upstream_task, edge.downstream_task) == (a, b)
    assert (edge.key, edge.mapped, edge.flattened) == (None, False, False)
    assert edge.tasks == {a, b}


def test_repr_matches_prefect() -> None:
    a, b = Task(name="a"), Task(name="b")
    assert repr(Edge(a, b, key="x")) == "<Edge(key=x, mapped=False, flattened=False): a to b>"
    assert (
        repr(Edge(a, b, mapped=True, flattened=True))
        == "<Edge(key=None, mapped=True, flattened=True): a to b>"
    )


def test_equality_and_hash_use_all_fields() -> None:
    a, b = Task(name="a"), Task(name="b")
    assert Edge(a, b) == Edge(a, b)
    assert len({Edge(a, b), Edge(a, b)}) == 1
    assert Edge(a, b, key="x") != Edge(a, b)
    assert Edge(a, b, mapped=True) != Edge(a, b)
    assert Edge(a, b, flattened=True) != Edge(a, b)
    assert Edge(a, b) != Edge(b, a)
    assert Edge(a, b) != (a, b)


@pytest.mark.parametrize("end", [Task(), 1, None], ids=["task", "constant", "none"])
def test_self_edges_are_rejected_with_prefects_sentence(end: Any) -> None:
    # Prefect 1.4.1 compares the two ends as given, so Edge(1, 1) is a self edge too, and
    # its message starts "Edges can not connect a task to itself".
    with pytest.raises(ValueError, match="^Edges can not connect a task to itself"):
        Edge(end, end)


@pytest.mark.parametrize("key", ["not valid", "class", "1x", 3, ""])
def test_key_must_be_an_identifier_and_not_a_keyword(key: Any) -> None:
    with pytest.raises(ValueError, match="identifier"):
        Edge(Task(), Task(), key=key)


def test_valid_keys() -> None:
    assert Edge(Task(), Task(), key="_private1").key == "_private1"


def test_constants_are_wrapped() -> None:
    edge = Edge(3, Task())
    assert isinstance(edge.upstream_task, Constant)
    assert edge.upstream_task.value == 3 and edge.upstream_task.auto_generated


def test_collections_with_tasks_are_wrapped_in_the_given_flow() -> None:
    flow = Flow("f")
    a, b = Task(name="a"), Task(name="b")
    edge = Edge([a, 1], b, key="x", flow=flow)
    assert isinstance(edge.upstream_task, List)
    assert edge.upstream_task in flow.tasks and a in flow.tasks
    # the List task itself was bound in the flow; this edge is not added
    assert b not in flow.tasks
    assert [e.key for e in flow.edges_to(edge.upstream_task)] == ["arg_1"]


@pytest.mark.parametrize(
    ("upstream", "mapped_arg", "flattened_arg", "expected"),
    [
        (unmapped, True, None, (False, False)),
        (mapped, False, None, (True, False)),
        (flatten, False, False, (False, True)),
        (None, True, True, (True, True)),
        (lambda t: flatten(unmapped(t)), True, False, (False, True)),
    ],
)
def test_annotations_override_the_arguments(
    upstream: Any, mapped_arg: bool, flattened_arg: bool | None, expected: tuple[bool, bool]
) -> None:
    a, b = Task(name="a"), Task(name="b")
    value = a if upstream is None else upstream(a)
    edge = Edge(value, b, mapped=mapped_arg, flattened=flattened_arg)
    assert edge.upstream_task is a
    assert (edge.mapped, edge.flattened) == expected


def test_pickle_round_trip_keeps_equality_and_hash() -> None:
    a, b = Task(name="a"), Task(name="b")
    edge = Edge(a, b, key="x", mapped=True)
    flow = Flow("f")
    flow.add_edge(a, b, key="x", mapped=True)
    copied_flow = pickle.loads(pickle.dumps(flow))
    (copied,) = copied_flow.edges
    assert copied.key == "x" and copied.mapped is True
    assert hash(copied) == hash(Edge(copied.upstream_task, copied.downstream_task, "x", True))
    assert edge == Edge(a, b, key="x", mapped=True)


def test_edge_module_exposes_task_as_prefect_1s_does() -> None:
    """Prefect 1.4.1 (verified): ``from prefect.core.edge import Edge, Task`` works."""
    from flowcore.core import edge as edge_module

    assert edge_module.Task is Task
    assert set(edge_module.__all__) == {"Edge", "Task"}
