"""``flowcore.tasks.core.collections`` and the auto-wrapping that creates them (reference 1.5)."""

from __future__ import annotations

from typing import Any

import pytest

from flowcore import Flow, Task, task
from flowcore.tasks.core.collections import Dict, List, Set, Tuple


@task
def one() -> int:
    return 1


@task
def ident(x: Any) -> Any:
    return x


def only(flow: Flow, name: str) -> Task:
    (found,) = flow.get_tasks(name=name)
    return found


def test_run_orders_arguments_numerically() -> None:
    values = {f"arg_{i}": i for i in (10, 2, 1, 11, 3)}
    assert List().run(**values) == [1, 2, 3, 10, 11]
    assert Tuple().run(**values) == (1, 2, 3, 10, 11)
    assert Set().run(arg_1=1, arg_2=1, arg_3=2) == {1, 2}
    assert List().run() == []


def test_dict_run() -> None:
    # verified against prefect 1.4.1 (the first sentence of the message)
    assert Dict().run(keys=["a", "b"], values=[1, 2]) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="A different number of keys and values were provided!"):
        Dict().run(keys=["a", "b"], values=[1])


@pytest.mark.parametrize(
    ("make", "kind"),
    [(lambda a: [a, 2, a], List), (lambda a: (a, 2, a), Tuple), (lambda a: {a, 2}, Set)],
)
def test_sequences_with_tasks_become_collection_tasks(make: Any, kind: type[Task]) -> None:
    with Flow("f") as flow:
        a = one()
        out = ident(make(a))
    (collection,) = flow.get_tasks(task_type=kind)
    assert collection.auto_generated is True
    assert [e.upstream_task for e in flow.edges_to(out)] == [collection]
    upstream_keys = {e.key for e in flow.edges_to(collection)}
    constant_keys = set(flow.constants[collection])
    assert all(e.upstream_task is a for e in flow.edges_to(collection))
    assert upstream_keys | constant_keys == {f"arg_{i + 1}" for i in range(len(make(a)))}
    assert 2 in flow.constants[collection].values()


def test_sequence_values_at_run_time() -> None:
    with Flow("f") as flow:
        a = one()
        as_list = ident([a, 2, a])
        as_tuple = ident((a, 3))
        as_set = ident({a, 3})
        long = ident([a, *range(2, 13)])
    state = flow.run()
    assert state.result[as_list].result == [1, 2, 1]
    assert state.result[as_tuple].result == (1, 3)
    assert state.result[as_set].result == {1, 3}
    assert state.result[long].result == list(range(1, 13))


def test_dict_with_tasks_becomes_a_dict_task_bound_with_keys_and_values() -> None:
    with Flow("f") as flow:
        a = one()
        out = ident({"k": a, "j": 2})
    dict_task = only(flow, "Dict")
    assert dict_task.auto_generated is True
    assert dict(flow.constants[dict_task]) == {"keys": ["k", "j"]}
    (values_edge,) = flow.edges_to(dict_task)
    assert values_edge.key == "values" and isinstance(values_edge.upstream_task, List)
    assert flow.run().result[out].result == {"k": 1, "j": 2}


def test_task_as_a_dict_key() -> None:
    with Flow("f") as flow:
        a = one()
        out = ident({a: "k", "z": a})
    assert flow.run().result[out].result == {1: "k", "z": 1}


def test_nested_collections() -> None:
    with Flow("f") as flow:
        a = one()
        nested = ident([[a, 2], 3])
        in_dict = ident({"x": [a]})
    state = flow.run()
    assert state.result[nested].result == [[1, 2], 3]
    assert state.result[in_dict].result == {"x": [1]}


def test_collections_without_tasks_are_plain_constants() -> None:
    with Flow("f") as flow:
        out = ident([1, {"a": (2, 3)}])
    assert flow.tasks == {out}
    assert dict(flow.constants[out]) == {"x": [1, {"a": (2, 3)}]}
    assert flow.run().result[out].result == [1, {"a": (2, 3)}]
