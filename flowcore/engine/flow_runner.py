"""FlowRunner: one pass over a flow; ``run_flow``: the passes that make a ``flow.run``.

A pass (``FlowRunner.run``) walks the tasks in dependency order and submits one task run
per task to the executor, handing each its upstream states (or futures of them)::

    for task in flow.sorted_tasks():
        finished (not Cached/Mapped) -> keep the state, do not run again
        Constant                     -> Success(value), never run
        mapped                       -> run the parent (-> Mapped(n)), then submit n
                                        children, child i getting element i of each
                                        mapped upstream
        otherwise                    -> submit run_task(task, state, upstream_states)

The pass ends in ``determine_final_state``: Running while a terminal task is unfinished
(for example Retrying), else Failed if a reference task failed, else Success.

``run_flow`` (behind ``Flow.run``) repeats passes inside one executor session until the
flow state is finished, sleeping only until the earliest retry is due. A task that can
only go on once a person resumes it (Paused with no start time) never makes ``flow.run``
hang: on a terminal it asks, otherwise ``flow.run`` returns the Running state and says
how to resume. With a schedule, ``_run_on_schedule`` sleeps until each event and does one
such run per event, each with its own ``flow_run_id``, until the schedule runs out or Ctrl-C.
"""

from __future__ import annotations

import importlib
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

import pendulum

from flowcore import configuration
from flowcore.caching import CacheStore, MemoryCacheStore, store_from_spec
from flowcore.core.edge import Edge
from flowcore.engine.result import Result
from flowcore.engine.results import ConstantResult
from flowcore.engine.runner import Runner
from flowcore.engine.signals import ENDRUN
from flowcore.engine.state import (
    Cached,
    Failed,
    Mapped,
    Paused,
    Pending,
    Resume,
    Running,
    Scheduled,
    State,
    Success,
    _MetaState,
)
from flowcore.transactions import commit_transactions
from flowcore.utilities import context as _context
from flowcore.utilities.logging import get_logger

if TYPE_CHECKING:
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task

__all__ = ["FlowRunner", "FlowRunnerInitializeResult", "run_flow", "run_task"]

_NOT_AVAILABLE = "Task state not available."


class FlowRunnerInitializeResult(NamedTuple):
    state: State
    task_states: dict[Task, Any]
    context: dict[str, Any]
    task_contexts: dict[Task, dict[str, Any]]


class _TaskPlan(NamedTuple):
    task: Task
    edges: tuple[Edge, ...]
    constant_states: dict[Edge, State]
    is_mapped: bool


def import_object(path: str) -> Any:
    """``"package.module.Name"`` -> the object (used for config class paths)."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"Cannot import {path!r} (from flowcore config): {exc}") from exc


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
    for edge, children in upstream_mapped_states.items():
        parent = upstream_states[edge]
        if isinstance(parent, Mapped):
            parent.map_states = list(children)
            parent.result = [child.result for child in children]
    runner_cls, handlers, flow_result = runner_args
    runner = runner_cls(task=task, state_handlers=handlers, flow_result=flow_result)
    token = None if _context._scope.get() is flow_context else _context.push(flow_context)
    try:
        return runner.run(  # type: ignore[no-any-return]
            state=state, upstream_states=upstream_states, context=task_context,
            is_mapped_parent=is_mapped_parent,
        )
    finally:
        if token is not None:
            _context.pop(token)


class FlowRunner(Runner):
    """Runs one pass over ``flow``.

    Args:
        flow: the flow.
        task_runner_cls: the TaskRunner class (default from ``engine.task_runner``).
        state_handlers: runner-level handlers ``fn(runner, old, new)``.
    """

    def __init__(
        self,
        flow: Flow,
        task_runner_cls: type | None = None,
        state_handlers: list[Callable[..., Any]] | None = None,
    ) -> None:
        super().__init__(state_handlers, get_logger("FlowRunner"))
        self.flow = flow
        if task_runner_cls is None:
            task_runner_cls = import_object(configuration.config.engine.task_runner.default_class)
        self.task_runner_cls = task_runner_cls

    def __repr__(self) -> str:
        return f"<FlowRunner: {self.flow.name}>"

    def call_runner_target_handlers(self, old_state: State, new_state: State) -> State:
        for handler in self.flow.state_handlers:
            new_state = handler(self.flow, old_state, new_state) or new_state
        return new_state

    def run(
        self,
        state: State | None = None,
        task_states: dict[Task, State] | None = None,
        return_tasks: Iterable[Task] | None = None,
        parameters: dict[str, Any] | None = None,
        task_runner_state_handlers: list[Callable[..., Any]] | None = None,
        executor: Any = None,
        context: dict[str, Any] | None = None,
        task_contexts: dict[Task, dict[str, Any]] | None = None,
    ) -> State:
        """Run one pass and return the flow state (``result``: ``{task: State}``)."""
        self.logger.info(f"Beginning Flow run for '{self.flow.name}'")
        if executor is None:
            executor = self.flow.executor or import_object(
                configuration.config.engine.executor.default_class
            )()
        self.raise_on_exception = bool((context or {}).get("raise_on_exception")) or bool(
            _context.current().get("raise_on_exception")
        )
        try:
            state, task_states, run_context, task_contexts = self.initialize_run(
                state, dict(task_states or {}), dict(context or {}), dict(task_contexts or {}),
                dict(parameters or {}),
            )
            with _context.context(run_context):
                state = self._step(self.check_flow_is_pending_or_running, state)
                state = self._step(self.check_flow_reached_start_time, state)
                state = self._step(self.set_flow_to_running, state)
                state = self._step(
                    self.get_flow_run_state, state, task_states, task_contexts,
                    set(return_tasks or ()), task_runner_state_handlers, executor,
                )
        except ENDRUN as exc:
            state = exc.state
        except Exception as exc:
            if self.raise_on_exception:
                raise
            message = f"Unexpected error while running flow: {exc!r}"
            self.logger.exception(message)
            state = Failed(message, result=exc)
        return state

    def initialize_run(
        self,
        state: State | None,
        task_states: dict[Task, Any],
        context: dict[str, Any],
        task_contexts: dict[Task, dict[str, Any]],
        parameters: dict[str, Any],
    ) -> FlowRunnerInitializeResult:
        """Fill the flow keys of the context: parameters, flow name, dates."""
        while isinstance(state, _MetaState):
            state = state.state
        state = state if state is not None else Pending()
        run_parameters = dict(context.get("parameters") or {})
        for parameter in self.flow.parameters():
            if not parameter.required:
                run_parameters.setdefault(parameter.name, parameter.default)
        run_parameters.update(parameters)
        context["parameters"] = run_parameters
        context["flow_name"] = self.flow.name
        context.setdefault("scheduled_start_time", pendulum.now("UTC"))
        dates = _date_keys(context.get("date"), self.logger)
        context["date"] = dates.pop("date")
        for key, value in dates.items():
            context.setdefault(key, value)
        for task in self.flow.tasks:
            task_context = task_contexts.setdefault(task, {})
            task_context.setdefault("task_name", task.name)
            task_context.setdefault("task_slug", self.flow.slugs[task])
        return FlowRunnerInitializeResult(state, task_states, context, task_contexts)

    def check_flow_is_pending_or_running(self, state: State) -> State:
        if state.is_pending() or state.is_running():
            return state
        self.logger.info("Flow run has already finished." if state.is_finished() else "Flow is not ready to run.")
        raise ENDRUN(state)

    def check_flow_reached_start_time(self, state: State) -> State:
        if isinstance(state, Scheduled) and state.start_time and state.start_time > datetime.now(timezone.utc):
            self.logger.debug("Flow '%s': start_time has not been reached; ending run.", self.flow.name)
            raise ENDRUN(state)
        return state

    def set_flow_to_running(self, state: State) -> State:
        if state.is_pending():
            return Running("Running flow.")
        if state.is_running():
            return state
        raise ENDRUN(state)

    def get_flow_run_state(
        self,
        state: State,
        task_states: dict[Task, Any],
        task_contexts: dict[Task, dict[str, Any]],
        return_tasks: set[Task],
        task_runner_state_handlers: list[Callable[..., Any]] | None,
        executor: Any,
    ) -> State:
        """Submit every task that still has work to do; then decide the flow state."""
        if not state.is_running():
            self.logger.info("Flow is not in a Running state.")
            raise ENDRUN(state)
        missing = return_tasks - self.flow.tasks
        if missing:
            raise ValueError(f"Some tasks in return_tasks were not found in the flow: {missing}")
        flow_context = _context.current()
        runner_args = (self.task_runner_cls, task_runner_state_handlers, self.flow.result)
        mapped_children: dict[Task, list[Any]] = {}
        with executor.start():
            keep = return_tasks | self.flow.terminal_tasks() | self.flow.reference_tasks()
            for plan in _releasing(_run_plan(self.flow), self.flow, keep, task_states, mapped_children):
                task = plan.task
                task_state = task_states.get(task)
                if task._is_constant and task_state is None:
                    task_states[task] = Success(result=ConstantResult(value=task.value))  # type: ignore[attr-defined]
                    continue
                if task._rerun_every_pass and isinstance(task_state, State) and task_state.is_finished() and not task_state.is_cached():
                    task_state = Pending()
                if isinstance(task_state, State) and task_state.is_finished() and not isinstance(task_state, (Cached, Mapped)):
                    continue
                upstream_states, upstream_mapped, edge_children = self._upstream_states(
                    plan, task_states, mapped_children, executor
                )
                task_context = dict(task_contexts.get(task, ()))
                extra = {"task_name": task.name, "task_tags": task.tags}
                if not plan.is_mapped:
                    task_states[task] = executor.submit(
                        run_task, task, task_state, upstream_states, flow_context, task_context,
                        upstream_mapped, runner_args, extra_context=extra,
                    )
                    continue
                # only mapped upstreams come to the driver (to be split); the rest stay as
                # submitted, so an executor's futures keep their data on its workers
                pending = upstream_states
                upstream_states = {**pending, **executor.wait({e: s for e, s in pending.items() if e.mapped})}
                parent = executor.wait(executor.submit(
                    run_task, task, task_state, pending, flow_context, task_context,
                    upstream_mapped, runner_args, True, extra_context=extra,
                ))
                task_states[task] = parent
                mapped_children[task] = []
                if isinstance(parent, Mapped):
                    for index, child_upstreams in enumerate(_child_upstreams(parent, upstream_states, edge_children)):
                        prior = parent.map_states[index] if index < len(parent.map_states) else None
                        mapped_children[task].append(executor.submit(
                            run_task, task, prior, child_upstreams, flow_context,
                            {**task_context, "map_index": index}, upstream_mapped, runner_args,
                            extra_context={**extra, "task_index": index},
                        ))
            return self._collect(state, task_states, mapped_children, return_tasks, executor)

    def _upstream_states(
        self,
        plan: _TaskPlan,
        task_states: dict[Task, Any],
        mapped_children: dict[Task, list[Any]],
        executor: Any,
    ) -> tuple[dict[Edge, Any], dict[Edge, list[Any]], dict[Edge, list[Any]]]:
        upstream_states: dict[Edge, Any] = {}
        upstream_mapped: dict[Edge, list[Any]] = {}
        edge_children: dict[Edge, list[Any]] = {}
        for edge in plan.edges:
            upstream = edge.upstream_task
            upstream_state = task_states.get(upstream)
            if upstream_state is None:
                upstream_state = Pending(_NOT_AVAILABLE)
            children = mapped_children.get(upstream)
            if children is not None:
                if edge.flattened:
                    children = _flatten_children(executor.wait(children))
                if edge.mapped:
                    edge_children[edge] = children
                    if edge.flattened:
                        upstream_state = Mapped(n_map_states=len(children))
                else:
                    upstream_mapped[edge] = children
            elif edge.flattened:
                upstream_state = executor.submit(_flatten_state, upstream_state)
            upstream_states[edge] = upstream_state
        upstream_states.update(plan.constant_states)
        return upstream_states, upstream_mapped, edge_children

    def _collect(
        self,
        state: State,
        task_states: dict[Task, Any],
        mapped_children: dict[Task, list[Any]],
        return_tasks: set[Task],
        executor: Any,
    ) -> State:
        flow = self.flow
        for task, children in mapped_children.items():
            parent = task_states[task] = executor.wait(task_states[task])
            if isinstance(parent, Mapped):
                parent.map_states = executor.wait(children)
                parent.result = [child.result for child in parent.map_states]
        resolved = executor.wait(task_states)
        task_states.update(resolved)
        terminal = [_state_or_pending(task_states, t) for t in flow.terminal_tasks()]
        reference = [_state_or_pending(task_states, t) for t in flow.reference_tasks()]
        return_states = {t: task_states[t] for t in return_tasks if t in task_states}
        return self.determine_final_state(
            state, _expand(reference), return_states, _expand(terminal)
        )

    def determine_final_state(
        self,
        state: State,
        key_states: list[State],
        return_states: dict[Task, State],
        terminal_states: list[State],
    ) -> State:
        """Running while a terminal task is unfinished; else decided by the reference tasks."""
        if not all(s.is_finished() for s in terminal_states):
            self.logger.info("Flow run RUNNING: terminal tasks are incomplete.")
            state.result = return_states
        elif any(s.is_failed() for s in key_states):
            self.logger.info("Flow run FAILED: some reference tasks failed.")
            state = Failed("Some reference tasks failed.", result=return_states)
        elif all(s.is_successful() for s in key_states):
            self.logger.info("Flow run SUCCESS: all reference tasks succeeded")
            state = Success("All reference tasks succeeded.", result=return_states)
        else:
            self.logger.info("Flow run SUCCESS: no reference tasks failed")
            state = Success("No reference tasks failed.", result=return_states)
        handler = self.flow.terminal_state_handler
        if handler is not None:
            replacement = handler(self.flow, state, set(key_states))
            if replacement is not None:
                replacement.result = return_states if replacement.result is None else replacement.result
                state = replacement
        return state


def _state_or_pending(task_states: dict[Task, Any], task: Task) -> State:
    found = task_states.get(task)
    return found if found is not None else Pending(_NOT_AVAILABLE)


def _expand(states: list[State]) -> list[State]:
    expanded: list[State] = []
    for state in states:
        if isinstance(state, Mapped):
            expanded.extend(state.map_states)
        else:
            expanded.append(state)
    return expanded


def _run_plan(flow: Flow) -> list[_TaskPlan]:
    """Per task: its edges, its constant inputs as ready states, whether it maps. Memoised
    on the flow until the graph changes."""
    plan = flow._cache.get("flowcore.run_plan")
    if plan is None:
        from flowcore.tasks.core.constants import Constant

        plan = []
        for task in flow.sorted_tasks():
            edges = tuple(flow._upstream[task])
            constants: dict[Edge, State] = {
                Edge(Constant.auto(value), task, key=key): Success(
                    "Auto-generated constant value", result=ConstantResult(value=value)
                )
                for key, value in flow.constants.get(task, {}).items()
            }
            plan.append(_TaskPlan(task, edges, constants, any(e.mapped for e in edges)))
        flow._cache["flowcore.run_plan"] = plan
    return plan


def _releasing(
    plans: list[_TaskPlan], flow: Flow, keep: set[Task], task_states: dict[Task, Any],
    mapped_children: dict[Task, list[Any]],
) -> Iterator[_TaskPlan]:
    """Yield the plans; once every downstream task of a task has been handled, forget the
    task's state or future unless the pass must return it (``keep``: return, terminal and
    reference tasks), so an executor can free a result nobody needs any more."""
    consumers = {
        task: len({edge.downstream_task for edge in flow._downstream[task]})
        for task in flow.tasks if task not in keep
    }
    for plan in plans:
        yield plan
        for upstream in {edge.upstream_task for edge in plan.edges}:
            if upstream in consumers:
                consumers[upstream] -= 1
                if not consumers[upstream]:
                    task_states.pop(upstream, None)
                    mapped_children.pop(upstream, None)


def _child_upstreams(
    parent: Mapped, upstream_states: dict[Edge, State], edge_children: dict[Edge, list[Any]]
) -> list[dict[Edge, Any]]:
    """Child i's upstream states: element i of every mapped upstream, the rest as is."""
    count = parent.n_map_states
    per_child: list[dict[Edge, Any]] = [{} for _ in range(count)]
    for edge, upstream in upstream_states.items():
        if not edge.mapped:
            for child in per_child:
                child[edge] = upstream
        elif edge in edge_children:
            children = edge_children[edge]
            for index, child in enumerate(per_child):
                child[edge] = children[index]
        else:
            values = upstream.result
            for index, child in enumerate(per_child):
                view = object.__new__(type(upstream))
                view.__dict__.update(upstream.__dict__)
                view._result = upstream._result.from_value(values[index])
                child[edge] = view
    return per_child


def _flatten_state(state: State) -> State:
    """A copy of ``state`` whose result is flattened one level (unchanged if it cannot be)."""
    try:
        flat = [item for sub in state.result for item in sub]
    except TypeError:
        return state
    view = object.__new__(type(state))
    view.__dict__.update(state.__dict__)
    view._result = state._result.from_value(flat)
    return view


def _flatten_children(children: list[State]) -> list[State]:
    flat: list[State] = []
    for child in children:
        try:
            items = list(child.result)
        except TypeError:
            get_logger("FlowRunner").warning(
                "`flatten` was used on upstream task that did not return an iterable. "
                "The value will be passed downstream unmodified."
            )
            flat.append(child)
            continue
        for item in items:
            view = object.__new__(type(child))
            view.__dict__.update(child.__dict__)
            view._result = child._result.from_value(item)
            flat.append(view)
    return flat


def _date_keys(date: Any, logger: Any) -> dict[str, Any]:
    if isinstance(date, str):
        try:
            date = pendulum.parse(date)
        except Exception:
            pass
    if date is not None and not isinstance(date, datetime):
        logger.warning(
            "`date` was set in the context manually but could not be parsed into a pendulum "
            "`DateTime` object. Additional context variables that rely on the current date i.e "
            "`today` and `tomorrow` will be based on the current time instead of the `date` "
            "context variable."
        )
        date = None
    date = pendulum.instance(date) if date is not None else pendulum.now("UTC")
    keys: dict[str, Any] = {"date": date}
    for name, day in (("today", date), ("yesterday", date.subtract(days=1)), ("tomorrow", date.add(days=1))):
        keys[name] = day.strftime("%Y-%m-%d")
        keys[f"{name}_nodash"] = day.strftime("%Y%m%d")
    return keys


# -- flow.run: the passes -------------------------------------------------------------------


def run_flow(
    flow: Flow,
    parameters: dict[str, Any] | None = None,
    run_on_schedule: bool | None = None,
    runner_cls: type | None = None,
    **kwargs: Any,
) -> State | None:
    """``Flow.run``: validate parameters, then run passes until the flow finishes."""
    scope = _context.current()
    if scope.get("flow") is flow:
        raise RuntimeError(
            f"{flow!r}.run() was called inside its own `with Flow(...)` block; "
            "call run() after the block ends"
        )
    if scope.get("loading_flow"):
        warnings.warn("flow.run() is ignored while a flow is being loaded", stacklevel=3)
        return None
    if "return_tasks" in kwargs:
        raise ValueError("flow.run() does not take return_tasks; every task's state is returned")
    run_parameters = _check_parameters(flow, dict(parameters or {}), kwargs)
    flow.sorted_tasks()
    if flow.schedule is not None and (
        run_on_schedule if run_on_schedule is not None else configuration.config.flows.run_on_schedule
    ):
        return _run_on_schedule(flow, run_parameters, runner_cls, kwargs)
    caches = scope.setdefault("caches", {})
    store = _cache_store(flow, kwargs.pop("cache_store", None), caches)
    kwargs["context"] = {"cache_store": store, **(kwargs.get("context") or {})}
    _warn_about_shared_cache_keys(flow)
    if runner_cls is None:
        runner_cls = import_object(configuration.config.engine.flow_runner.default_class)
    executor = kwargs.pop("executor", None) or flow.executor
    if executor is None:
        executor = import_object(configuration.config.engine.executor.default_class)()
    with executor.start():
        state = _run_passes(flow, runner_cls, executor, run_parameters, kwargs)
    if isinstance(state.result, dict):
        commit_transactions(state.result, flow.logger)
        _absorb_cached_states(store, state.result)
        for task in flow.tasks:
            state.result.setdefault(task, Pending("Task not run."))
    else:
        flow.logger.error(f"Unexpected error occured in {runner_cls.__name__}: {state.result!r}")
    return state


_FIRST_RUN_ONLY = ("state", "task_states", "flow_run_id", "flow_run_name")


def _run_on_schedule(
    flow: Flow, parameters: dict[str, Any], runner_cls: type | None, kwargs: dict[str, Any]
) -> State:
    """``flow.run()`` with a schedule: sleep until each event, then do one full run (a
    ``run_flow`` call) with the event's parameter defaults over ``parameters``, a new
    ``flow_run_id`` and ``scheduled_start_time``. Returns the last run's state when the
    schedule runs out, or on Ctrl-C between runs. ``state``, ``task_states``,
    ``flow_run_id`` and ``flow_run_name`` apply to the first scheduled run only."""
    events = flow.schedule.next(1, return_events=True)
    if not events:
        raise ValueError("Flow has no more scheduled runs.")
    names = {p.name for p in flow.parameters()}
    user_context = dict(kwargs.get("context") or {})
    run_kwargs = dict(kwargs)
    last: State | None = None
    while events:
        event = events[0]
        try:
            delay = (event.start_time - pendulum.now("UTC")).total_seconds()
            if delay > 0:
                flow.logger.info(f"Waiting for next scheduled run at {event.start_time}")
                time.sleep(delay)
        except KeyboardInterrupt:
            return _stopped_on_schedule(flow, last, event)
        context = {**user_context, "scheduled_start_time": event.start_time}
        extra = {k: v for k, v in event.parameter_defaults.items() if k not in names}
        if extra:  # as in Prefect 1, names that are not Parameters reach context.parameters
            context["parameters"] = {**(user_context.get("parameters") or {}), **extra}
        known = {k: v for k, v in event.parameter_defaults.items() if k in names}
        last = run_flow(
            flow, {**parameters, **known}, run_on_schedule=False, runner_cls=runner_cls,
            **{**run_kwargs, "context": context},
        )
        run_kwargs = {k: v for k, v in kwargs.items() if k not in _FIRST_RUN_ONLY}
        try:
            events = flow.schedule.next(1, return_events=True)
        except KeyboardInterrupt:
            return _stopped_on_schedule(flow, last, None)
    flow.logger.info(f"Flow {flow.name!r} has no more scheduled runs.")
    assert last is not None
    return last


def _stopped_on_schedule(flow: Flow, last: State | None, pending_event: Any) -> State:
    flow.logger.info(f"Stopped running {flow.name!r} on its schedule (KeyboardInterrupt).")
    if last is not None:
        return last
    return Scheduled(
        "Stopped before the first scheduled run.", start_time=pending_event.start_time,
        result={task: Pending("Task not run.") for task in flow.tasks},
    )


def _check_parameters(flow: Flow, given: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    names = {p.name: p for p in flow.parameters()}
    for key in [k for k in kwargs if k in names]:
        given[key] = kwargs.pop(key)
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"Flow.run received the following unexpected parameters: {', '.join(unknown)}")
    missing = sorted(n for n, p in names.items() if p.required and n not in given)
    if missing:
        raise ValueError(f"Flow.run did not receive the following required parameters: {', '.join(missing)}")
    return given


def _run_passes(
    flow: Flow, runner_cls: type, executor: Any, parameters: dict[str, Any], kwargs: dict[str, Any]
) -> State:
    flow_state: State = kwargs.pop("state", None) or Scheduled(result={})
    if not isinstance(flow_state.result, dict):
        flow_state.result = {}
    flow_state.result.update(kwargs.pop("task_states", None) or {})
    run_context = dict(kwargs.pop("context", None) or {})
    run_context.update(
        flow_id=flow.name,
        flow_run_id=kwargs.pop("flow_run_id", None) or str(uuid.uuid4()),
        flow_run_name=kwargs.pop("flow_run_name", None) or str(uuid.uuid4()),
    )
    run_context.setdefault("scheduled_start_time", pendulum.now("UTC"))
    user_task_contexts = kwargs.pop("task_contexts", None) or {}
    while True:
        task_contexts = {
            task: {"task_run_id": str(uuid.uuid4()), "task_id": slug, **user_task_contexts.get(task, {})}
            for task, slug in flow.slugs.items()
        }
        runner = runner_cls(flow=flow)
        flow_state = runner.run(
            parameters=parameters, return_tasks=flow.tasks, state=flow_state,
            task_states=flow_state.result, context=run_context, task_contexts=task_contexts,
            executor=executor, **kwargs,
        )
        if flow_state.is_finished() or not isinstance(flow_state.result, dict):
            return flow_state
        if not _wait_for_next_pass(flow, flow_state.result):
            return flow_state


def _wait_for_next_pass(flow: Flow, task_states: dict[Task, State]) -> bool:
    """Resume paused tasks if a person can answer, sleep until the next due task; False
    when nothing can make progress without outside action."""
    paused = [t for t, s in task_states.items() if isinstance(s, Paused)]
    if paused and sys.stdin is not None and sys.stdin.isatty():
        for task in paused:
            answer = input(f"{task} is currently Paused; enter 'y' to resume:\n")
            if answer.strip().lower() == "y":
                task_states[task] = Resume("Approval given to resume.")
    start_times = [s.start_time for s in _scheduled_states(task_states) if s.start_time is not None]
    if not start_times:
        waiting = sorted(t.name for t, s in task_states.items() if isinstance(s, Paused))
        flow.logger.warning(
            f"Flow run of {flow.name!r} cannot continue: task(s) {waiting} are Paused. Resume "
            "them with flow.run(task_states={task: Resume(), ...}) (pass the other states too)."
        )
        return False
    next_start = min(start_times)
    delay = (next_start - pendulum.now("UTC")).total_seconds()
    if delay > 0:
        flow.logger.info(f"Waiting for next available Task run at {next_start}")
        time.sleep(delay)
    return True


def _scheduled_states(task_states: dict[Task, State]) -> list[Scheduled]:
    found: list[Scheduled] = []
    for state in task_states.values():
        if isinstance(state, Scheduled):
            found.append(state)
        elif isinstance(state, Mapped):
            found.extend(s for s in state.map_states if isinstance(s, Scheduled))
    return found


def _cache_store(flow: Flow, given: Any, caches: dict[str, list[Cached]]) -> CacheStore:
    """``flow.run(cache_store=...)``, else ``Flow(cache_store=...)``, else ``caching.store``."""
    spec = given if given is not None else getattr(flow, "cache_store", None)
    if spec is None:
        spec = configuration.config.get_path("caching.store", "memory")
    if spec is None or spec == "memory":
        return MemoryCacheStore(caches)
    return store_from_spec(spec)


def _absorb_cached_states(store: CacheStore, task_states: dict[Task, State]) -> None:
    """Driver-side update of an in-memory store after the run (as Prefect 1 does), which
    also covers task runs that happened in other processes."""
    if not isinstance(store, MemoryCacheStore):
        return
    for task, state in task_states.items():
        if getattr(task, "_transaction", None) is not None:
            continue
        if isinstance(state, Mapped):
            found = [s for s in state.map_states if isinstance(s, Cached)]
        else:
            found = [state] if isinstance(state, Cached) else []
        for cached in found:
            if cached.cached_result_expiration is not None:
                store.put(task.cache_key or task.name, cached)


def _warn_about_shared_cache_keys(flow: Flow) -> None:
    """Warn when tasks cached with ``duration_only`` would share one value."""
    messages = flow._cache.get("flowcore.cache_key_warnings")
    if messages is None:
        from flowcore.engine.cache_validators import duration_only

        by_key: dict[str, list[Task]] = {}
        for task in flow.sorted_tasks():
            if task.cache_for is not None and task.cache_validator is duration_only:
                by_key.setdefault(task.cache_key or task.name, []).append(task)
        messages = []
        for key, tasks in by_key.items():
            mapped = [t for t in tasks if any(e.mapped for e in flow._upstream[t])]
            if len(tasks) > 1 or mapped:
                what = "mapped task" if len(tasks) == 1 else f"{len(tasks)} tasks"
                messages.append(
                    f"The {what} {sorted({t.name for t in tasks})} share the cache key {key!r} "
                    "under cache_validator=duration_only, so every run (and every mapped child) "
                    "will receive the first cached value. Give each task its own cache_key, "
                    "or use cache_validator=all_inputs."
                )
        flow._cache["flowcore.cache_key_warnings"] = messages
    for message in messages:
        flow.logger.warning(message)

