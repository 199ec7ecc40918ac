"""``flowcore.tasks.core.constants.Constant`` (reference 1.5)."""

from __future__ import annotations

from typing import Any

import pytest

from flowcore import Flow, Task, task
from flowcore.engine.results import ConstantResult
from flowcore.tasks.core.constants import Constant


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (1, "1"),
        ("abcdef", "'abcdef'"),
        ("abcdefgh", "Constant[str]"),
        ([1, 2, 3], "Constant[list]"),
        ({"a": 1}, "{'a': 1}"),
        (1.5, "1.5"),
        (None, "None"),
        (123456789, "Constant[int]"),
        ((1, 2), "(1, 2)"),
    ],
)
def test_name_is_repr_up_to_8_characters(value: Any, name: str) -> None:
    assert Constant(value).name == name


def test_explicit_name() -> None:
    assert Constant(5, name="five").name == "five"


def test_value_result_and_run() -> None:
    c = Constant([1, 2])
    assert c.value == [1, 2]
    assert c.run() == [1, 2]
    assert isinstance(c.result, ConstantResult)
    assert c.result.value == [1, 2]
    assert c.auto_generated is False


def test_a_constant_task_in_a_flow_gives_its_value() -> None:
    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("f") as flow:
        c = Constant([1, 2, 3])
        out = total(c)
    # an explicit Constant task on a keyed edge is optimised like any constant
    assert c not in flow.tasks
    assert flow.run().result[out].result == 6


def test_the_runner_never_calls_run_on_a_constant() -> None:
    class Loud(Constant):
        def run(self) -> Any:
            raise AssertionError("a Constant must not be run")

    flow = Flow("f")
    c = Loud(4)
    follower = Task(name="after")
    flow.add_edge(c, follower)
    state = flow.run()
    assert state.result[c].is_successful()
    assert state.result[c].result == 4


def test_unused_constants_in_a_flow_block_do_not_warn() -> None:
    with Flow("f") as flow:
        Constant(1)
    assert flow.tasks == set()
