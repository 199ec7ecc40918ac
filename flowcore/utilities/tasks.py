"""The ``@task`` decorator, auto-wrapping of constants, ``tags`` and ``pause_task``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flowcore.utilities import context as _context
from flowcore.utilities.edges import EdgeAnnotation, flatten, mapped, unmapped

if TYPE_CHECKING:
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task

__all__ = [
    "as_task",
    "defaults_from_attrs",
    "flatten",
    "mapped",
    "pause_task",
    "tags",
    "task",
    "unmapped",
]


def task(fn: Callable[..., Any] | None = None, **task_init_kwargs: Any) -> Any:
    """Turn a function into a task (a template to call inside a flow).

    Use as ``@task`` or ``@task(max_retries=2, retry_delay=timedelta(seconds=1))``.
    """
    from flowcore.tasks.core.function import FunctionTask

    if fn is None:
        return lambda fn: FunctionTask(fn=fn, **task_init_kwargs)
    return FunctionTask(fn=fn, **task_init_kwargs)


def _contains_task(value: Any) -> bool:
    from flowcore.core.task import Task

    if isinstance(value, (Task, EdgeAnnotation)):
        return True
    if isinstance(value, (list, tuple, set)):
        return any(_contains_task(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_task(k) or _contains_task(v) for k, v in value.items())
    return False


def as_task(x: Any, flow: Flow | None = None) -> Task:
    """``x`` as a task: tasks as they are, collections holding tasks as collection tasks,
    anything else as an auto-generated ``Constant``."""
    from flowcore.core.task import Task
    from flowcore.tasks.core import collections
    from flowcore.tasks.core.constants import Constant

    if isinstance(x, Task):
        return x
    if isinstance(x, EdgeAnnotation):
        return as_task(x.value, flow=flow)
    if _contains_task(x):
        if isinstance(x, dict):
            keys, values = list(x.keys()), list(x.values())
            dict_task = collections.Dict()
            dict_task.auto_generated = True
            return dict_task.bind(keys=keys, values=values, flow=flow)
        kind = {list: collections.List, tuple: collections.Tuple, set: collections.Set}
        cls = next(c for t, c in kind.items() if isinstance(x, t))
        collection = cls()
        collection.auto_generated = True
        return collection.bind(flow=flow, **{f"arg_{i + 1}": v for i, v in enumerate(x)})
    constant = Constant(value=x)
    constant.auto_generated = True
    return constant


@contextmanager
def tags(*tags: str) -> Iterator[None]:
    """Add ``tags`` to every task created, copied or bound inside the block (nests)."""
    current = set(_context.current().get("tags") or ())
    with _context.context(tags=current | set(tags)):
        yield


def pause_task(message: str | None = None, duration: timedelta | None = None) -> None:
    """Inside a task: pause it (``PAUSE``) unless it is being resumed.

    With ``duration`` the task resumes by itself after that long.
    """
    from flowcore.engine import signals

    if _context.current().get("resume"):
        return
    start_time = None
    if duration is not None:
        import pendulum

        start_time = pendulum.now("UTC") + duration
    raise signals.PAUSE(message or "Pause signal raised during task execution.", start_time=start_time)


def defaults_from_attrs(*attr_args: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``run`` so that keyword arguments not passed default to same-named attributes.

    As in Prefect 1, an argument passed explicitly (even as None) is kept:

    >>> from flowcore import Task
    >>> class Greet(Task):
    ...     def __init__(self, who="world", **kwargs):
    ...         self.who = who
    ...         super().__init__(**kwargs)
    ...     @defaults_from_attrs("who")
    ...     def run(self, who=None):
    ...         return who
    >>> Greet().run(), Greet().run(who="you"), Greet().run(who=None)
    ('world', 'you', None)
    """

    def wrapper(run: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(run)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            for attr in attr_args:
                kwargs.setdefault(attr, getattr(self, attr))
            return run(self, *args, **kwargs)

        return method

    return wrapper
