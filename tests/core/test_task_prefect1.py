"""``Task`` behaviours and messages that Prefect 1 users and their tests rely on.

Each test states Prefect 1.4.1's behaviour, verified against prefect 1.4.1 (same code run in
a separate virtual environment). Error and warning texts: the first sentence is Prefect 1's,
word for word; flowcore may add a second sentence naming the task and the fix.
"""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from typing import Any

import pytest

from flowcore import Flow, Parameter, Task, context, task
from flowcore.core.edge import Edge
from flowcore.engine.cache_validators import all_inputs
from flowcore.engine.results import LocalResult
from flowcore.tasks.core import collections
from flowcore.tasks.core.function import FunctionTask


class Add(Task):
    def run(self, x: int, y: int) -> int:
        return x + y


# -- signatures -----------------------------------------------------------------------------


def test_signature_of_an_instance_is_run_plus_the_call_arguments() -> None:
    class Sig(Task):
        def run(self, x: int, y: bool, z: int = 1, **kwargs: Any) -> None:
            pass

    sig = inspect.signature(Sig())
    for name, param in inspect.signature(Sig().run).parameters.items():
        assert sig.parameters[name] == param
    assert {"mapped", "task_args", "upstream_tasks", "flow"} <= set(sig.parameters)
    assert list(sig.parameters)[-1] == "kwargs"  # **kwargs stays last
    assert sig.return_annotation == "Task"
    # the class keeps its constructor's signature
    assert "name" in inspect.signature(Sig).parameters


def test_unsupported_callables() -> None:
    with pytest.raises(ValueError, match="This function can not be inspected"):
        task(getattr)  # (zip has a signature since Python 3.13)


def test_run_with_star_args_or_reserved_names() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape("Tasks with variable positional arguments (*args) are not supported"),
    ):

        class Star(Task):
            def run(self, *args: Any) -> None:
                pass

    with pytest.raises(
        ValueError,
        match=re.escape(
            "Tasks cannot have the following argument names: upstream_tasks, flow. These are "
            "reserved keyword arguments."
        ),
    ):

        class Reserved(Task):
            def run(self, upstream_tasks: Any, flow: Any) -> None:
                pass


def test_positional_only_parameters_fail_when_the_task_is_made() -> None:
    def dummy_task(a: int, b: int, /) -> None:
        pass

    with pytest.raises(
        TypeError,
        match=re.escape(
            "Found positional-only parameters in the function signature for task "
            "dummy_task: ['a', 'b']. flowcore passes arguments using keywords and does not "
            "support positional-only parameters."
        ),
    ):
        task(dummy_task)


# -- dependencies outside a flow, chaining, | ------------------------------------------------


@pytest.mark.parametrize("method", ["set_upstream", "set_downstream"])
def test_set_upstream_and_downstream_without_a_flow(method: str) -> None:
    with pytest.raises(ValueError, match="No Flow was passed"):
        getattr(Task(), method)(Task())
    with pytest.raises(
        ValueError,
        match=re.escape("No Flow was passed, and could not infer an active Flow context."),
    ):
        Task().set_dependencies(upstream_tasks=[Task()])


def test_dependency_setters_return_the_task_so_calls_chain() -> None:
    flow = Flow("test")
    t1, t2, t3 = Task(name="t1"), Task(name="t2"), Task(name="t3")
    assert t1.set_dependencies(flow, upstream_tasks=[t2]).set_downstream(t3, flow=flow) is t1
    assert t1.set_upstream(Task(), flow=flow) is t1
    assert {Edge(t2, t1), Edge(t1, t3)} <= flow.edges


def test_pipe_operator_with_constants() -> None:
    with Flow("test") as flow:
        t1 = Task()
        t1 | 1  # noqa: B018
    assert len(flow.tasks) == 2 and len(flow.edges) == 1
    with Flow("test") as flow:
        t2 = Task()
        1 | t2  # noqa: B018
    assert len(flow.tasks) == 2 and len(flow.edges) == 1
    [edge] = flow.edges
    assert edge.downstream_task is t2 and edge.key is None


def test_pipe_operator_chains() -> None:
    with Flow("test") as flow:
        t1, t2, t3 = Task(name="t1"), Task(name="t2"), Task(name="t3")
        t1 | t2 | t3  # noqa: B018
    assert flow.edges == {Edge(t1, t2), Edge(t2, t3)}


# -- task_args, calling outside a flow -------------------------------------------------------


def test_tags_are_appended_to_when_updating_with_task_args() -> None:
    t = Add(tags=["math"])
    with context(tags=["test"]), Flow("test"):
        t2 = t(1, 2, task_args={"name": "test-tags", "tags": ["new-tag"]})
    assert t2.tags == {"math", "test", "new-tag"}
    assert t2.name == "test-tags"


def test_task_args_must_name_attributes() -> None:
    t = Task()
    with (
        Flow("test"),
        pytest.raises(AttributeError, match="<Task: Task> does not have foo as an attribute"),
    ):
        t(task_args={"foo": "bar"})


@pytest.mark.parametrize("use_function_task", [True, False])
def test_calling_a_task_outside_a_flow(use_function_task: bool) -> None:
    if use_function_task:

        @task
        def fn(x: int) -> int:
            return x

        t: Task = fn
        run_call = "`fn.run(...)`"
    else:

        class Fn(Task):
            def run(self, x: int) -> int:
                return x

        t = Fn()
        run_call = "`Fn(...).run(...)`"
    with pytest.raises(
        ValueError, match=f"Could not infer an active Flow context while creating edge to {t}"
    ) as info:
        t(1)
    assert (
        "If you're trying to run this task outside of a Flow context, you need to call "
        f"{run_call}" in str(info)
    )


def test_calling_a_parameter_outside_a_flow() -> None:
    with pytest.raises(ValueError, match="infer an active Flow"):
        Parameter("x")()


# -- construction warnings ------------------------------------------------------------------


def test_passing_a_task_to_a_task_constructor_warns() -> None:
    class MyTask(Task):
        def __init__(self, a: Any, b: Any, **kwargs: Any) -> None:
            self.a, self.b = a, b
            super().__init__(**kwargs)

        def run(self) -> int:
            return 1

    with pytest.warns(UserWarning, match="A Task was passed as an argument to MyTask"):
        MyTask(1, Task())


def test_a_subclass_setting_a_reserved_attribute_warns() -> None:
    class MyTask(Task):
        def __init__(self, **kwargs: Any) -> None:
            self.target = "x"
            super().__init__(**kwargs)

    with pytest.warns(UserWarning, match="`MyTask` sets a `target` attribute"):
        MyTask()


def test_a_subclass_with_a_reserved_class_attribute_warns() -> None:
    class Named(Task):
        name = "fixed"  # hidden by the instance attribute Task.__init__ sets

        def run(self) -> int:
            return 1

    with pytest.warns(UserWarning, match="`Named` sets a `name` attribute"):
        t = Named()
    assert t.name == "Named"


def test_copying_a_task_with_dependencies_warns() -> None:
    with Flow("test") as flow:
        t1, t2 = Task(), Task()
        t1.set_downstream(t2)
        with pytest.warns(UserWarning, match="You are making a copy"):
            flow.add_task(t1.copy())


def test_a_cache_validator_without_cache_for_warns() -> None:
    with pytest.warns(UserWarning, match=".*Task will not be cached.*"):
        Task(cache_validator=all_inputs)


def test_a_target_replaces_the_result_location_with_a_warning(tmp_path: Any) -> None:
    with pytest.warns(
        UserWarning, match=re.escape("Both `result.location` and `target` were provided.")
    ):
        t = Task(result=LocalResult(dir=tmp_path, location="a.txt"), target="b.txt")
    assert t.result is not None and t.result.location == "b.txt"


# -- retries, timeouts, tags, handlers ------------------------------------------------------

MAX_RETRIES_NEEDED = (
    "A `max_retries` argument greater than 0 must be provided if specifying a retry delay"
)


def test_retry_delay_without_max_retries() -> None:
    with pytest.raises(ValueError, match=MAX_RETRIES_NEEDED):
        Task(retry_delay=timedelta(seconds=1))


@pytest.mark.parametrize("max_retries", [None, 0, False])
def test_retry_delay_with_invalid_max_retries(max_retries: Any) -> None:
    with pytest.raises(ValueError, match=MAX_RETRIES_NEEDED):
        Task(max_retries=max_retries, retry_delay=timedelta(seconds=1))


def test_max_retries_without_retry_delay() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape("A datetime.timedelta `retry_delay` must be provided if max_retries > 0"),
    ):
        Task(max_retries=1)


def test_retry_on() -> None:
    assert Task().retry_on is None
    with pytest.raises(ValueError, match=" `max_retries` must be provided"):
        Task(retry_on={RuntimeError})
    with pytest.raises(TypeError, match="exception type but got an instance of str"):
        Task(retry_on={"foo"}, max_retries=2, retry_delay=timedelta(seconds=1))  # type: ignore[arg-type]
    with pytest.raises(
        TypeError,
        match=re.escape("Invalid `retry_on` value <class 'int'>. Expected an exception subclass."),
    ):
        Task(retry_on={int}, max_retries=2, retry_delay=timedelta(seconds=1))  # type: ignore[arg-type]
    t = Task(retry_on={RuntimeError, ValueError}, max_retries=2, retry_delay=timedelta(seconds=1))
    assert t.retry_on == {RuntimeError, ValueError}
    assert Task(retry_on=KeyError, max_retries=1, retry_delay=timedelta(0)).retry_on == {KeyError}


def test_timeouts() -> None:
    with pytest.raises(
        TypeError, match=re.escape("Only integer timeouts (representing seconds) are supported.")
    ):
        Task(timeout="3")  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="Task timeouts do not support a sub-second resolution"):
        t = Task(timeout=timedelta(seconds=3, milliseconds=1))
    assert t.timeout == 3


def test_tags_and_state_handlers_are_checked() -> None:
    with pytest.raises(TypeError, match=re.escape("Tags should be a set of tags, not a string.")):
        Task(tags="a")
    with pytest.raises(TypeError, match=re.escape("state_handlers should be iterable.")):
        Task(state_handlers=lambda *a: None)  # type: ignore[arg-type]


# -- nout and mapping -----------------------------------------------------------------------

NOT_ITERABLE = re.escape(
    "Task is not iterable. If your task returns multiple results, pass `nout` to the task "
    "decorator/constructor, or provide a `Tuple` return-type annotation to your task."
)


def test_a_task_without_nout_is_not_iterable() -> None:
    @task
    def pair(a: int) -> Any:
        return a + 1, a - 1

    with Flow("test"), pytest.raises(TypeError, match=NOT_ITERABLE):
        a, b = pair(1)


def test_a_task_with_nout_unpacks() -> None:
    @task(nout=2)
    def pair(a: int) -> Any:
        return a + 1, a - 1

    with Flow("test") as flow:
        a, b = pair(1)
    assert (a.name, b.name) == ("pair[0]", "pair[1]")
    state = flow.run()
    assert state is not None
    assert (state.result[a].result, state.result[b].result) == (2, 0)


def test_mapped_tasks_do_not_keep_nout() -> None:
    @task(nout=2)
    def pair(a: int) -> Any:
        return a + 1, a - 1

    with Flow("test"):
        mapped = pair.map(range(10))
        assert mapped.nout is None
        with pytest.raises(TypeError, match="Task is not iterable"):
            a, b = mapped


def test_mapping_over_an_unsubscriptable_argument() -> None:
    add = Add()
    with (
        Flow("test"),
        pytest.raises(
            TypeError,
            match=re.escape("Cannot map over unsubscriptable object of type <class 'int'>: 1..."),
        ),
    ):
        add.map(1, [2])


# -- FunctionTask and collection tasks ------------------------------------------------------


def test_function_task_docstrings() -> None:
    def my_fn() -> None:
        """An example docstring."""

    assert FunctionTask.__doc__ is not None and "FunctionTask" in FunctionTask.__doc__
    assert FunctionTask(fn=my_fn).__doc__ == my_fn.__doc__
    assert FunctionTask(fn=lambda x: x + 1).__doc__ is None


@pytest.mark.parametrize(
    ("cls", "expected"),
    [(collections.List, [1, 2]), (collections.Tuple, (1, 2)), (collections.Set, {1, 2})],
)
def test_collection_tasks_bind_positional_arguments(cls: type[Task], expected: Any) -> None:
    t1, t2 = Task(), Task()
    with Flow("test") as flow:
        built = cls().bind(t1, t2)
    assert {Edge(t1, built, key="arg_1"), Edge(t2, built, key="arg_2")} == flow.edges
    with Flow("test") as flow:
        constant = cls().bind(1, 2)
    state = flow.run()
    assert state is not None and state.result[constant].result == expected
