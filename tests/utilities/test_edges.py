"""``flowcore.utilities.edges``: mapped / unmapped / flatten annotations (reference 1.6)."""

from __future__ import annotations

from typing import Any

import pytest

import flowcore
from flowcore import Flow, Task, task
from flowcore.utilities.edges import EdgeAnnotation, flatten, mapped, unmapped


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def nested() -> list[list[int]]:
    return [[1, 2], [3]]


def test_single_annotations() -> None:
    t = Task()
    assert unmapped(t).annotations == {"mapped": False}
    assert mapped(t).annotations == {"mapped": True}
    assert flatten(t).annotations == {"flattened": True}
    assert unmapped(t).value is t


def test_instances_do_not_share_the_class_dict() -> None:
    a = mapped(1)
    a.annotations["extra"] = True
    assert mapped(2).annotations == {"mapped": True}
    assert mapped.annotations == {"mapped": True}


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda t: flatten(mapped(t)), {"mapped": True, "flattened": True}),
        (lambda t: mapped(flatten(t)), {"mapped": True, "flattened": True}),
        (lambda t: flatten(unmapped(t)), {"mapped": False, "flattened": True}),
        # on a conflict the inner annotation wins, as in Prefect 1.4.1
        (lambda t: unmapped(mapped(t)), {"mapped": True}),
        (lambda t: mapped(unmapped(t)), {"mapped": False}),
        (lambda t: unmapped(flatten(mapped(t))), {"mapped": True, "flattened": True}),
    ],
)
def test_nested_annotations_merge(build: Any, expected: dict[str, bool]) -> None:
    t = Task()
    annotation = build(t)
    assert annotation.annotations == expected
    assert annotation.value is t


def test_repr() -> None:
    assert repr(unmapped([1])) == "unmapped([1])"


def test_exported_at_the_top_level() -> None:
    assert (flowcore.mapped, flowcore.unmapped, flowcore.flatten) == (mapped, unmapped, flatten)
    assert all(issubclass(c, EdgeAnnotation) for c in (mapped, unmapped, flatten))


def test_mapped_annotation_maps_one_argument_without_map() -> None:
    with Flow("f") as flow:
        t = add(x=mapped([1, 2, 3]), y=10)
    (edge,) = flow.edges_to(t)
    assert (edge.key, edge.mapped) == ("x", True)
    assert dict(flow.constants[t]) == {"y": 10}
    assert flow.run().result[t].result == [11, 12, 13]


def test_unmapped_argument_of_map_is_passed_whole() -> None:
    with Flow("f") as flow:
        t = add.map([1, 2], y=unmapped(10))
    assert dict(flow.constants[t]) == {"y": 10}
    assert flow.run().result[t].result == [11, 12]


def test_flatten_a_task_result() -> None:
    with Flow("f") as flow:
        n = nested()
        t = add.map(flatten(n), y=unmapped(1))
    (edge,) = [e for e in flow.edges_to(t) if e.key == "x"]
    assert (edge.mapped, edge.flattened) == (True, True)
    assert flow.run().result[t].result == [2, 3, 4]


def test_flatten_a_constant_keeps_a_constant_task() -> None:
    with Flow("f") as flow:
        t = add.map(flatten([[1], [2, 3]]), y=unmapped(0))
    (edge,) = flow.edges_to(t)
    assert edge.flattened and edge.upstream_task in flow.tasks
    assert flow.run().result[t].result == [1, 2, 3]


def test_flatten_without_mapping() -> None:
    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("f") as flow:
        t = total(flatten(nested()))
    (edge,) = flow.edges_to(t)
    assert (edge.mapped, edge.flattened) == (False, True)
    assert flow.run().result[t].result == 6
