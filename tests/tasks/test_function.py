"""``flowcore.tasks.core.function.FunctionTask`` and what ``@task`` builds (reference 1.3)."""

from __future__ import annotations

import functools
import inspect
import pickle
from typing import Any

import pytest

from flowcore import Flow, Task, task
from flowcore.tasks.core.function import FunctionTask


def add(x: int, y: int = 2) -> int:
    """Add two numbers."""
    return x + y


def test_function_becomes_run_without_self() -> None:
    t = FunctionTask(add)
    assert t.run is add
    assert t.run(1) == 3
    assert t.run(1, y=5) == 6


def test_name_doc_and_wrapped_come_from_the_function() -> None:
    t = FunctionTask(add)
    assert t.name == "add"
    assert t.__name__ == "add"
    assert t.__doc__ == "Add two numbers."
    assert t.__wrapped__ is add
    assert repr(t) == "<Task: add>"


def test_explicit_name_and_task_kwargs() -> None:
    t = FunctionTask(add, name="custom", tags=["x"], checkpoint=False)
    assert (t.name, t.__name__, t.tags, t.checkpoint) == ("custom", "add", {"x"}, False)
    assert t.logger.name == "flowcore.custom"


def test_lambda_and_partial_names() -> None:
    assert FunctionTask(lambda x: x).name == "<lambda>"
    assert FunctionTask(functools.partial(add, 1)).name == "FunctionTask"


def test_fn_must_be_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        FunctionTask(3)  # type: ignore[arg-type]


def test_signature_is_validated() -> None:
    def star(*args: Any) -> None:
        pass

    def reserved(flow: Any) -> None:
        pass

    def positional(x: int, /) -> None:
        pass

    with pytest.raises(ValueError, match=r"\*args"):
        FunctionTask(star)
    with pytest.raises(ValueError, match="flow"):
        FunctionTask(reserved)
    with pytest.raises(TypeError, match="positional-only"):
        FunctionTask(positional)


def test_signature_includes_the_call_extras() -> None:
    params = inspect.signature(FunctionTask(add)).parameters
    assert list(params) == ["x", "y", "mapped", "task_args", "upstream_tasks", "flow"]


def test_nout_from_annotation_and_explicit() -> None:
    def pair() -> tuple[int, int]:
        return 1, 2

    assert FunctionTask(pair).nout == 2
    assert FunctionTask(pair, nout=3).nout == 3
    assert FunctionTask(add).nout is None


def test_each_call_is_a_new_function_task_in_the_flow() -> None:
    template = FunctionTask(add)
    with Flow("f") as flow:
        a = template(1)
        b = template(a, 10)
    assert type(a) is FunctionTask and a.run is add
    state = flow.run()
    assert (state.result[a].result, state.result[b].result) == (3, 13)


def test_function_task_pickles() -> None:
    t = pickle.loads(pickle.dumps(task(add)))
    assert t.run(1) == 3 and t.name == "add"


def test_is_a_task() -> None:
    assert isinstance(FunctionTask(add), Task)
