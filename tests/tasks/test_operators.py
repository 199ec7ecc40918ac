"""``flowcore.tasks.core.operators`` and the Task operators that build them (reference 1.7).

Every operator is built in a flow *and* run through ``flow.run`` to check its value.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import pytest

from flowcore import Flow, Task, task
from flowcore.core.task import no_default
from flowcore.tasks.core import operators
from flowcore.tasks.core.operators import GetAttr, GetItem


@task
def three() -> int:
    return 3


CASES: list[tuple[str, Callable[[Task], Task], type[Task], Any]] = [
    ("add", lambda t: t + 2, operators.Add, 5),
    ("radd", lambda t: 2 + t, operators.Add, 5),
    ("sub", lambda t: t - 5, operators.Sub, -2),
    ("rsub", lambda t: 5 - t, operators.Sub, 2),
    ("mul", lambda t: t * 4, operators.Mul, 12),
    ("rmul", lambda t: 4 * t, operators.Mul, 12),
    ("div", lambda t: t / 4, operators.Div, 0.75),
    ("rdiv", lambda t: 6 / t, operators.Div, 2.0),
    ("floordiv", lambda t: t // 2, operators.FloorDiv, 1),
    ("rfloordiv", lambda t: 7 // t, operators.FloorDiv, 2),
    ("mod", lambda t: t % 2, operators.Mod, 1),
    ("rmod", lambda t: 7 % t, operators.Mod, 1),
    ("pow", lambda t: t**2, operators.Pow, 9),
    ("rpow", lambda t: 2**t, operators.Pow, 8),
    ("and", lambda t: t & 0, operators.And, 0),
    ("rand", lambda t: 0 & t, operators.And, 0),
    ("gt", lambda t: t > 2, operators.GreaterThan, True),
    ("ge", lambda t: t >= 4, operators.GreaterThanOrEqual, False),
    ("lt", lambda t: t < 2, operators.LessThan, False),
    ("le", lambda t: t <= 3, operators.LessThanOrEqual, True),
    ("is_equal", lambda t: t.is_equal(3), operators.Equal, True),
    ("is_not_equal", lambda t: t.is_not_equal(3), operators.NotEqual, False),
    ("not_", lambda t: t.not_(), operators.Not, False),
    ("or_", lambda t: t.or_(0), operators.Or, 3),
    ("getitem", lambda t: t.pipe(range_task)[1], GetItem, 1),
]


@task
def range_task(n: int) -> list[int]:
    return list(range(n))


@pytest.mark.parametrize(("label", "build", "kind", "expected"), CASES, ids=[c[0] for c in CASES])
def test_operator_builds_and_runs(
    label: str, build: Callable[[Task], Task], kind: type[Task], expected: Any
) -> None:
    with Flow("f") as flow:
        result = build(three())
    assert type(result) is kind
    assert result in flow.tasks
    value = flow.run().result[result].result
    assert value == expected and type(value) is type(expected)


def test_reversed_operators_swap_the_operands() -> None:
    with Flow("f") as flow:
        t = three()
        left = t - 5
        right = 5 - t
    assert [(e.key, e.upstream_task) for e in flow.edges_to(left)] == [("x", t)]
    assert dict(flow.constants[left]) == {"y": 5}
    assert [(e.key, e.upstream_task) for e in flow.edges_to(right)] == [("y", t)]
    assert dict(flow.constants[right]) == {"x": 5}


def test_operator_names_are_class_names() -> None:
    with Flow("f"):
        t = three()
        assert (t + 1).name == "Add"
        assert (t > 1).name == "GreaterThan"
        assert t.not_().name == "Not"


def test_operators_between_two_tasks() -> None:
    with Flow("f") as flow:
        a, b = three(), three()
        total = a * b + a
    assert flow.run().result[total].result == 12


def test_equality_operator_keeps_identity() -> None:
    a, b = Task(), Task()
    assert (a == b) is False
    assert (a != b) is True


def test_or_operator_is_a_dependency_not_an_or_task() -> None:
    with Flow("f") as flow:
        a, b = three(), Task(name="b")
        assert (a | b) is b
    assert not flow.get_tasks(task_type=operators.Or)


def test_operators_need_a_flow() -> None:
    with pytest.raises(ValueError, match="Could not infer an active Flow context"):
        Task() + 1  # noqa: B018


@pytest.mark.parametrize(
    ("cls", "args", "expected"),
    [
        (operators.Add, (1, 2), 3),
        (operators.Sub, (1, 2), -1),
        (operators.Mul, (2, 3), 6),
        (operators.Div, (1, 4), 0.25),
        (operators.FloorDiv, (7, 2), 3),
        (operators.Mod, (7, 4), 3),
        (operators.Pow, (2, 5), 32),
        (operators.And, (1, 0), 0),
        (operators.Or, (0, "x"), "x"),
        (operators.Equal, (1, 1), True),
        (operators.NotEqual, (1, 1), False),
        (operators.GreaterThan, (2, 1), True),
        (operators.GreaterThanOrEqual, (1, 1), True),
        (operators.LessThan, (2, 1), False),
        (operators.LessThanOrEqual, (2, 1), False),
    ],
)
def test_binary_run_directly(cls: type[Task], args: tuple[Any, Any], expected: Any) -> None:
    assert cls().run(*args) == expected


def test_not_run_directly() -> None:
    assert operators.Not().run(0) is True
    assert operators.Not().run([1]) is False


def test_getitem_run() -> None:
    assert GetItem().run({"a": 1}, "a") == 1
    assert GetItem().run([1, 2], -1) == 2
    with pytest.raises(KeyError):
        GetItem().run({}, "a")
    with pytest.raises(IndexError):
        GetItem().run([1], 3)


def test_getitem_default() -> None:
    assert GetItem(default=0).run({}, "a") == 0
    assert GetItem(default=0).run([], 2) == 0
    assert GetItem().run({}, "a", default=5) == 5
    assert GetItem(default=0).run({"a": 1}, "a") == 1
    assert GetItem().default is no_default
    # a TypeError is not a missing key
    with pytest.raises(TypeError):
        GetItem(default=0).run(3, "a")


def test_getitem_in_a_flow_fails_on_a_missing_key() -> None:
    @task
    def data() -> dict[str, int]:
        return {"a": 1}

    with Flow("f") as flow:
        d = data()
        present, missing = d["a"], d["b"]
    state = flow.run()
    assert state.result[present].result == 1
    assert state.result[missing].is_failed()
    assert isinstance(state.result[missing].result, KeyError)


def test_getattr_run() -> None:
    class Obj:
        inner = operator

    assert GetAttr().run(Obj(), "inner.add") is operator.add
    assert GetAttr(default=None).run(Obj(), "missing") is None
    with pytest.raises(AttributeError):
        GetAttr().run(Obj(), "missing")


def test_operator_modules_exports() -> None:
    for name in operators.__all__:
        assert issubclass(getattr(operators, name), Task)
