"""``flowcore.utilities.tasks``: ``@task``, ``as_task``, ``tags``, ``defaults_from_attrs``,
``pause_task`` (reference 1.3, 1.5, 1.7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
import pytest

import flowcore
from flowcore import Flow, Task, context
from flowcore.engine import signals
from flowcore.engine.state import Paused
from flowcore.tasks.core.collections import Dict, List, Set, Tuple
from flowcore.tasks.core.constants import Constant
from flowcore.tasks.core.function import FunctionTask
from flowcore.utilities.edges import flatten, mapped, unmapped
from flowcore.utilities.tasks import as_task, defaults_from_attrs, pause_task, tags, task

# -- @task ---------------------------------------------------------------------------------------


def test_bare_decorator_returns_a_function_task_instance() -> None:
    @task
    def f(x: int) -> int:
        """Doc."""
        return x + 1

    assert isinstance(f, FunctionTask)
    assert (f.name, f.__doc__, f.run(1)) == ("f", "Doc.", 2)


def test_decorator_with_arguments() -> None:
    @task(name="renamed", max_retries=2, retry_delay=timedelta(seconds=1), tags=["t"])
    def f() -> None:
        pass

    assert isinstance(f, FunctionTask)
    assert (f.name, f.max_retries, f.retry_delay, f.tags) == (
        "renamed",
        2,
        timedelta(seconds=1),
        {"t"},
    )
    assert f.__name__ == "f"


def test_decorator_validates_task_arguments() -> None:
    with pytest.raises(ValueError, match="retry_delay"):

        @task(max_retries=1)
        def f() -> None:
            pass


def test_decorator_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        task(3)


def test_task_is_exported_at_the_top_level() -> None:
    assert flowcore.task is task
    assert flowcore.tags is tags


# -- as_task -------------------------------------------------------------------------------------


def test_tasks_are_returned_as_they_are() -> None:
    t = Task()
    assert as_task(t) is t


def test_annotations_are_unwrapped() -> None:
    t = Task()
    assert as_task(unmapped(t)) is t
    assert as_task(flatten(mapped(t))) is t
    wrapped = as_task(unmapped(5))
    assert isinstance(wrapped, Constant) and wrapped.value == 5


@pytest.mark.parametrize("value", [5, "s", None, [1, 2], (1,), {1}, {"a": [1]}, Task])
def test_pure_values_become_auto_generated_constants(value: Any) -> None:
    c = as_task(value)
    assert type(c) is Constant
    assert c.value is value
    assert c.auto_generated is True


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda t: [t, 1], List),
        (lambda t: (t, 1), Tuple),
        (lambda t: {t, 1}, Set),
        (lambda t: {"k": t}, Dict),
        (lambda t: [unmapped(t)], List),
        (lambda t: [[t]], List),
    ],
)
def test_collections_with_tasks_become_collection_tasks(make: Any, kind: type[Task]) -> None:
    flow = Flow("f")
    t = Task(name="t")
    collection = as_task(make(t), flow=flow)
    assert type(collection) is kind
    assert collection.auto_generated is True
    assert collection in flow.tasks and t in flow.tasks


def test_collection_keys_are_arg_n() -> None:
    flow = Flow("f")
    t = Task(name="t")
    collection = as_task([t, 1, t], flow=flow)
    assert sorted(e.key for e in flow.edges_to(collection)) == ["arg_1", "arg_3"]
    assert dict(flow.constants[collection]) == {"arg_2": 1}


def test_collection_uses_the_active_flow() -> None:
    with Flow("f") as flow:
        t = Task(name="t")
        collection = as_task([t])
    assert collection in flow.tasks


# -- tags ----------------------------------------------------------------------------------------


def test_tags_apply_to_created_copied_and_bound_tasks() -> None:
    template = Task(name="template")
    bound = Task(name="bound")
    with Flow("f") as flow, tags("a"):
        created = Task(name="created")
        called = template()
        bound.bind()
        flow.add_task(created)
    assert created.tags == {"a"}
    assert called.tags == {"a"}
    assert bound.tags == {"a"}
    assert template.tags == set()


def test_tags_nest_and_unwind() -> None:
    with tags("a"):
        with tags("b", "c"):
            assert context.get("tags") == {"a", "b", "c"}
        assert context.get("tags") == {"a"}
    assert not context.get("tags")


def test_tags_feed_generated_slugs() -> None:
    with tags("outer"), Flow("f") as flow, tags("inner"):
        t = task(lambda: 1)()
    assert t.tags == {"inner", "outer"}
    assert flow.slugs[t] == "<lambda>-inner-outer-1"


# -- defaults_from_attrs -------------------------------------------------------------------------


class Greeter(Task):
    def __init__(self, greeting: str = "hello", who: str = "world", **kwargs: Any) -> None:
        self.greeting = greeting
        self.who = who
        super().__init__(**kwargs)

    @defaults_from_attrs("greeting", "who")
    def run(self, greeting: str | None = None, who: str | None = None) -> str:
        return f"{greeting} {who}"


def test_defaults_from_attrs_fills_missing_keywords() -> None:
    assert Greeter().run() == "hello world"
    assert Greeter(who="you").run(greeting="hi") == "hi you"


def test_defaults_from_attrs_keeps_explicit_none() -> None:
    # Prefect 1.4.1 uses setdefault: an explicit None is passed through
    assert Greeter().run(greeting=None) == "None world"


def test_defaults_from_attrs_keeps_the_signature_and_works_in_a_flow() -> None:
    assert Greeter.run.__name__ == "run"
    assert list(Greeter().inputs()) == ["greeting", "who"]
    with Flow("f") as flow:
        out = Greeter(greeting="hey")(who="there")
        default = Greeter()()
    state = flow.run()
    assert state.result[out].result == "hey there"
    assert state.result[default].result == "hello world"


# -- pause_task ----------------------------------------------------------------------------------


def test_pause_task_raises_pause() -> None:
    with pytest.raises(signals.PAUSE) as info:
        pause_task()
    assert str(info.value) == "Pause signal raised during task execution."
    assert isinstance(info.value.state, Paused)
    assert info.value.state.start_time is None


def test_pause_task_with_message_and_duration() -> None:
    before = pendulum.now("UTC")
    with pytest.raises(signals.PAUSE, match="wait") as info:
        pause_task("wait", duration=timedelta(minutes=5))
    start = info.value.state.start_time
    assert start is not None
    assert before + timedelta(minutes=5) <= start <= pendulum.now("UTC") + timedelta(minutes=5)


def test_pause_task_is_a_no_op_when_resuming() -> None:
    with context(resume=True):
        assert pause_task() is None
