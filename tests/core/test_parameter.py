"""``flowcore.core.parameter``: Parameter and DateTimeParameter (reference section 1.8)."""

from __future__ import annotations

import datetime
from typing import Any

import pendulum
import pytest

from flowcore import Flow, Parameter, Task, context, task
from flowcore.core.parameter import DateTimeParameter
from flowcore.engine import signals
from flowcore.engine.results import PrefectResult
from flowcore.engine.serializers import DateTimeSerializer


@task
def ident(x: Any) -> Any:
    return x


@pytest.mark.parametrize(
    ("kwargs", "default", "required"),
    [
        ({}, None, True),
        ({"default": 3}, 3, False),
        ({"default": None}, None, False),
        ({"default": None, "required": True}, None, True),
        ({"required": False}, None, False),
    ],
)
def test_required_and_default(kwargs: dict[str, Any], default: Any, required: bool) -> None:
    p = Parameter("p", **kwargs)
    assert (p.default, p.required) == (default, required)


def test_attributes() -> None:
    p = Parameter("p", tags=["t"])
    assert (p.name, p.slug) == ("p", "p")
    assert p.tags == {"t"}
    assert isinstance(p.result, PrefectResult)
    assert p.checkpoint is True
    assert repr(p) == "<Parameter: p>"


def test_slug_is_the_name_so_duplicates_clash() -> None:
    with pytest.raises(ValueError, match='slug "p" already exists'), Flow("f"):
        ident(Parameter("p"))
        ident(Parameter("p"))


def test_same_parameter_used_twice_is_one_task() -> None:
    with Flow("f") as flow:
        p = Parameter("p")
        ident(p)
        ident(p)
    assert flow.parameters() == {p}
    assert flow.slugs[p] == "p"


def test_parameter_must_be_a_root_task() -> None:
    flow = Flow("f")
    with pytest.raises(ValueError, match="root"):
        flow.add_edge(Task(), Parameter("p"))
    with pytest.raises(ValueError, match="root"):
        flow.add_edge(Task(), Parameter("q"), key="x")


def test_call_adds_without_copying() -> None:
    with Flow("f") as flow:
        p = Parameter("p", default=1)
        assert p() is p
    assert flow.tasks == {p}


def test_call_with_explicit_flow() -> None:
    flow = Flow("f")
    p = Parameter("p")
    assert p(flow=flow) is p and flow.tasks == {p}


def test_call_without_a_flow_raises() -> None:
    # verified against prefect 1.4.1: the message of Task.bind without a flow
    with pytest.raises(ValueError, match="Could not infer an active Flow context"):
        Parameter("p")()


def test_copy_needs_a_new_name_and_the_slug_follows() -> None:
    p = Parameter("p", default=1)
    q = p.copy("q")
    assert (q.name, q.slug, q.default, q.required) == ("q", "q", 1, False)
    assert (p.name, p.slug) == ("p", "p")
    with pytest.raises(TypeError):
        p.copy()  # type: ignore[call-arg]


def test_copies_with_new_names_coexist() -> None:
    p = Parameter("p", default=1)
    q = p.copy("q")
    with Flow("f") as flow:
        a = ident(p)
        b = ident(q)
    state = flow.run(q=5)
    assert (state.result[a].result, state.result[b].result) == (1, 5)


def test_unused_parameter_warns() -> None:
    with pytest.warns(UserWarning, match="Parameter: p"), Flow("f"):
        Parameter("p")


def test_add_task_silences_the_unused_warning() -> None:
    with Flow("f") as flow:
        flow.add_task(Parameter("p", default=1))
    assert flow.run().is_successful()


def test_run_reads_context_parameters_then_default() -> None:
    p = Parameter("p", default=3)
    assert p.run() == 3
    with context(parameters={"p": 7}):
        assert p.run() == 7


def test_run_of_a_missing_required_parameter_fails() -> None:
    with pytest.raises(signals.FAIL, match="required"):
        Parameter("p").run()


def test_parameter_values_flow_through_a_run() -> None:
    with Flow("f") as flow:
        p = Parameter("p")
        q = Parameter("q", default=[1, 2])
        a, b = ident(p), ident(q)
    state = flow.run(p={"x": 1})
    assert state.result[a].result == {"x": 1}
    assert state.result[b].result == [1, 2]
    assert state.result[p].result == {"x": 1}


def test_defaults_are_not_checked_for_json() -> None:
    marker = object()
    with Flow("f") as flow:
        out = ident(Parameter("p", default=marker))
    assert flow.run().result[out].result is marker


def test_datetime_parameter_attributes() -> None:
    p = DateTimeParameter("d")
    assert p.required is True
    assert isinstance(p.result, PrefectResult)
    assert isinstance(p.result.serializer, DateTimeSerializer)
    assert DateTimeParameter("e", required=False).required is False


def test_datetime_parameter_parses_values() -> None:
    with Flow("f") as flow:
        from_str = DateTimeParameter("a")
        from_dt = DateTimeParameter("b", required=False)
        from_default = DateTimeParameter("c", default="2020-01-02", required=False)
        missing = DateTimeParameter("d", required=False)
        for p in (from_str, from_dt, from_default, missing):
            flow.add_task(p)
    state = flow.run(a="2021-03-04T05:06:07", b=datetime.datetime(2020, 1, 1, 3))
    assert state.result[from_str].result == pendulum.datetime(2021, 3, 4, 5, 6, 7)
    assert isinstance(state.result[from_str].result, pendulum.DateTime)
    assert state.result[from_dt].result == pendulum.datetime(2020, 1, 1, 3)
    assert state.result[from_default].result == pendulum.datetime(2020, 1, 2)
    assert state.result[missing].result is None


def test_datetime_parameter_is_required_by_default_even_with_a_default() -> None:
    with Flow("f") as flow:
        flow.add_task(DateTimeParameter("d", default="2020-01-02"))
    with pytest.raises(ValueError, match="required parameters: d"):
        flow.run()
