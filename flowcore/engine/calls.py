"""The calls the FlowRunner hands an executor, and the state plumbing around them.

Both ways of submitting a task run use these (``engine/flow_runner.py`` for a task or one
mapped child per call, ``engine/batches.py`` for a batch of children per call), so they
live below both::

    run_task(task, state, upstream_states, ...)   what an executor runs for one task run
                                                  (a module-level function, so it pickles)
    shared_runner(task, runner_args, ...)         one TaskRunner ready to run many children
                                                  of a mapped task in turn (None when they
                                                  need a runner each)
    run_child(shared, task, prior, index, ...)    one mapped child: on the shared runner
                                                  when it starts Pending, else run_task
    attach_children(upstream_states, mapped)      a Mapped upstream gets its children's
                                                  states and results back (they travel
                                                  apart from it)
    with_value(state, value)                      a view of a state carrying one value (a
                                                  mapped child's element of its upstream)
    collect(executor, data)                       ``data`` with its futures replaced by
                                                  what they hold (``executor.collect``
                                                  where the executor has it, else ``wait``)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowcore.engine.child_states import child_results
from flowcore.engine.state import Mapped, State
from flowcore.utilities import context as _context

if TYPE_CHECKING:
    from flowcore.core.edge import Edge
    from flowcore.core.task import Task
    from flowcore.engine.result import Result
    from flowcore.engine.task_runner import TaskRunner

__all__ = [
    "attach_children",
    "collect",
    "run_child",
    "run_task",
    "shared_runner",
    "with_value",
]


def run_task(
    task: Task,
    state: State | None,
    upstream_states: dict[Edge, State],
    flow_context: dict[str, Any],
    task_context: dict[str, Any],
    upstream_mapped_states: dict[Edge, list[State]],
    runner_args: tuple[type, list[Callable[..., Any]] | None, Result | None],
    is_mapped_parent: bool = False,
) -> State:
    """One task run, as submitted to an executor (a module-level function, so it pickles)."""
    attach_children(upstream_states, upstream_mapped_states)
    runner_cls, handlers, flow_result = runner_args
    runner = runner_cls(task=task, state_handlers=handlers, flow_result=flow_result)
    token = None if _context._scope.get() is flow_context else _context.push(flow_context)
    try:
        return runner.run(  # type: ignore[no-any-return]
            state=state,
            upstream_states=upstream_states,
            context=task_context,
            is_mapped_parent=is_mapped_parent,
        )
    finally:
        if token is not None:
            _context.pop(token)


def shared_runner(
    task: Task,
    runner_args: tuple[type, list[Callable[..., Any]] | None, Result | None],
    flow_context: dict[str, Any],
    task_context: dict[str, Any],
) -> TaskRunner | None:
    """A TaskRunner for ``task``, prepared to run its children that start Pending one
    after another (``TaskRunner.prepare_children``), or None when each child needs a runner
    of its own. For calls made in turn, never at once: the runner holds the running child."""
    runner_cls, handlers, flow_result = runner_args
    token = None if _context._scope.get() is flow_context else _context.push(flow_context)
    try:
        runner = runner_cls(task=task, state_handlers=handlers, flow_result=flow_result)
        prepare = getattr(runner, "prepare_children", None)  # (a runner class of one's own)
        return runner if prepare is not None and prepare(task_context) else None
    finally:
        if token is not None:
            _context.pop(token)


def run_child(
    shared: TaskRunner | None,
    task: Task,
    prior: State | None,
    index: int,
    upstream_states: dict[Edge, State],
    flow_context: dict[str, Any],
    task_context: dict[str, Any],
    upstream_mapped_states: dict[Edge, list[State]],
    runner_args: tuple[type, list[Callable[..., Any]] | None, Result | None],
) -> State:
    """Child ``index`` of a mapped task: on the :func:`shared_runner` ``shared`` when it
    starts Pending (``prior`` None), else through :func:`run_task` (``task_context``
    without ``map_index``)."""
    if shared is None or prior is not None:
        return run_task(
            task,
            prior,
            upstream_states,
            flow_context,
            {**task_context, "map_index": index},
            upstream_mapped_states,
            runner_args,
        )
    attach_children(upstream_states, upstream_mapped_states)
    token = None if _context._scope.get() is flow_context else _context.push(flow_context)
    try:
        return shared.run_child(index, upstream_states)
    finally:
        if token is not None:
            _context.pop(token)


def attach_children(
    upstream_states: dict[Edge, State], upstream_mapped_states: dict[Edge, Any]
) -> None:
    """Give each Mapped upstream (reached by an edge that does not map) its children's
    states and results, which travel apart from it."""
    for edge, children in upstream_mapped_states.items():
        parent = upstream_states[edge]
        if isinstance(parent, Mapped):
            parent.map_states = list(children)
            parent.result = child_results(children)


def with_value(state: State, value: Any) -> State:
    """A shallow copy of ``state`` carrying ``value`` (same Result type, no location)."""
    view = object.__new__(type(state))
    view.__dict__.update(state.__dict__)
    view._result = state._result.from_value(value)
    return view


def collect(executor: Any, data: Any) -> Any:
    """``data`` with each future in it replaced by its outcome: ``executor.collect`` (a
    run the executor could not carry out comes back as an exception) where the executor
    has it, else ``executor.wait``."""
    collector = getattr(executor, "collect", None)
    return collector(data) if collector is not None else executor.wait(data)
