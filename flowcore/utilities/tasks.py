"""The ``@task`` decorator, auto-wrapping of constants, ``tags`` and ``pause_task``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flowcore.utilities import context as _context
from flowcore.utilities.edges import EdgeAnnotation, flatten, mapped, unmapped

if TYPE_CHECKING:
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task

__all__ = [
    "apply_map",
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

    if isinstance(x, Task):
        return x
    from flowcore.tasks.core import collections
    from flowcore.tasks.core.constants import Constant

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
    raise signals.PAUSE(
        message or "Pause signal raised during task execution.", start_time=start_time
    )


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


def apply_map(func: Callable[..., Any], *args: Any, flow: Flow | None = None, **kwargs: Any) -> Any:
    """Map ``func``, a function that builds tasks, over its arguments element by element.

    ``func`` is called once, on tasks standing for one element of each argument, inside a
    temporary flow; the tasks and edges it builds (``case`` blocks included) are then
    copied into ``flow`` with every edge from an argument mapped, so the whole sub-graph
    runs once per element. ``unmapped(x)`` passes ``x`` whole to every element and
    ``flatten(x)`` maps over ``x`` flattened one level. Every task ``func`` creates that
    has no upstream inside the sub-graph is made to depend on all mapped arguments (and
    on unmapped task arguments), so each element's sub-graph waits for all its inputs.

    Args:
        func: builds tasks from its arguments and returns anything (usually a task).
        *args: sequences, tasks or annotated values to map over.
        flow: the flow (default: the active one); when given, ``func`` must accept a
            ``flow`` keyword argument.
        **kwargs: keyword arguments to map over.

    Returns:
        whatever ``func`` returned.

    Raises:
        TypeError: an argument is neither a sequence, a task nor an annotation.
        ValueError: no flow is given or active.
    """
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task

    explicit_flow = flow is not None
    if flow is None:
        flow = _context.current().get("flow")
        if flow is None:
            raise ValueError("Couldn't infer a flow in the current context")
    for value in (*args, *kwargs.values()):
        if not isinstance(value, (Task, EdgeAnnotation, Sequence)):
            raise TypeError(f"Cannot map over non-sequence object of type `{type(value).__name__}`")
    before = set(flow.tasks)
    sub = Flow("temporary flow")
    inputs = _MapInputs(flow, sub)
    sub_args = [inputs.add(value) for value in args]
    sub_kwargs = {key: inputs.add(value) for key, value in kwargs.items()}
    wiring_edges = set(sub.edges)
    with _context.context(mapped=True, case=None, resource=None), sub:
        if explicit_flow:
            result = func(*sub_args, flow=sub, **sub_kwargs)
        else:
            result = func(*sub_args, **sub_kwargs)
    inputs.copy_into_flow(wiring_edges)
    inputs.wire_roots(before)
    return result


class _MapInputs:
    """The arguments of one ``apply_map`` call and how to copy its sub-graph back."""

    def __init__(self, flow: Flow, sub: Flow) -> None:
        self.flow = flow
        self.sub = sub
        self.info: dict[Task, tuple[bool, bool, bool]] = {}  # task -> (mapped, constant, flattened)
        self.mapped_constants: dict[int, Task] = {}

    def add(self, value: Any) -> Task:
        annotations = value.annotations if isinstance(value, EdgeAnnotation) else {}
        is_mapped = annotations.get("mapped", True)
        is_flattened = annotations.get("flattened", False)
        with _context.context(case=None, resource=None):
            arg_task = as_task(value, flow=self.sub)
            is_constant = arg_task._is_constant
            if not is_constant:
                self.sub.add_task(arg_task)
        self.info[arg_task] = (is_mapped, is_constant, is_flattened)
        if not is_constant:
            self.flow.add_task(arg_task)
        elif is_mapped:
            self.mapped_constants[id(arg_task.value)] = arg_task  # type: ignore[attr-defined]
        return arg_task

    def copy_into_flow(self, wiring_edges: set[Any]) -> None:
        """Copy the sub-graph's tasks, edges and constants into the flow, mapping the
        edges that leave an argument.

        Edges that only assemble an argument (a list or tuple of tasks) stay as built,
        except those from a mapped task, which are mapped as in Prefect 1: the argument
        ``(mapped_a, mapped_b)`` then stands for the pairs ``(a[i], b[i])``.
        """
        flow, sub = self.flow, self.sub
        order = {task: i for i, task in enumerate(sub.sorted_tasks())}
        for task in order:
            flow.add_task(task)
        for task in order:
            for key, value in sub.constants.get(task, {}).items():
                constant = self.mapped_constants.get(id(value))
                if constant is None:
                    flow.constants[task][key] = value
                else:
                    flattened = self.info[constant][2]
                    flow.add_edge(constant, task, key=key, mapped=True, flattened=flattened)
        edges = sorted(
            sub.edges,
            key=lambda e: (order[e.downstream_task], order[e.upstream_task], e.key or ""),
        )
        for edge in edges:
            if edge in wiring_edges:
                mapped = edge.mapped or self._is_mapped_task(edge.upstream_task)
                flattened = edge.flattened
            else:
                mapped, _, flattened = self.info.get(edge.upstream_task, (True, False, False))
            flow.add_edge(
                edge.upstream_task,
                edge.downstream_task,
                key=edge.key,
                mapped=mapped,
                flattened=flattened,
            )

    def _is_mapped_task(self, task: Task) -> bool:
        """Whether ``task`` is a mapped task of the flow (its result is one per child)."""
        return task in self.flow.tasks and any(e.mapped for e in self.flow.edges_to(task))

    def wire_roots(self, before: set[Task]) -> None:
        """Make each new root of the sub-graph depend on every argument except unmapped
        constants, so that all of an element's inputs are ready before its sub-graph runs."""
        flow = self.flow
        new_tasks = [t for t in self.sub.sorted_tasks() if t not in before and t not in self.info]
        new_set = set(new_tasks)
        for task in new_tasks:
            upstream = flow.upstream_tasks(task)
            if upstream & new_set:
                continue
            for arg_task, (is_mapped, is_constant, is_flattened) in self.info.items():
                if arg_task not in upstream and (is_mapped or not is_constant):
                    flow.add_edge(arg_task, task, mapped=is_mapped, flattened=is_flattened)
