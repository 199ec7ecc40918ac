"""FlowRunner: one pass over a flow (``flow.run`` repeats passes: ``engine/flow_run.py``).

A pass (``FlowRunner.run``) walks the tasks in dependency order and submits one task run
per task to the executor, handing each its upstream states (or futures of them)::

    for task in flow.sorted_tasks():
        finished (not Cached/Mapped) -> keep the state, do not run again
        Constant                     -> Success(value), never run
        mapped                       -> run the parent (-> Mapped(n)), then submit n
                                        children, child i getting element i of each
                                        mapped upstream (on an executor with workers,
                                        in batches of many children per call, held
                                        compactly: ``engine/batches.py``)
        otherwise                    -> submit run_task(task, state, upstream_states)

Then every future is collected (``executor.collect`` where the executor has it, else
``wait``). A run the executor could not carry out comes back as an exception, which
:class:`_Outcomes` makes a state: a dead worker -> ``Crashed`` (``WorkerCrashed``), another
failure of the machinery -> ``Failed``, both through ``state_from_error`` and the
TaskRunner's ``check_for_retry`` (so ``Retrying`` while attempts are left); a run that
never started because such a run failed under it (``UpstreamCrashed``) keeps the state it
was submitted with. When those runs wait only on runs that failed for good, the pass does
another round over the flow (finished tasks are kept), so they meet their triggers now
rather than stay Pending.

The pass ends in ``determine_final_state``: Running while a terminal task is unfinished
(for example Retrying), else Failed if a reference task failed, else Success.

``run_task`` is what an executor runs for one task (or one mapped child): a module-level
function, so it pickles, that restores the flow's context in a worker when needed.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import date as Date
from datetime import datetime, timedelta, timezone
from logging import DEBUG, INFO
from typing import TYPE_CHECKING, Any, NamedTuple

import pendulum

from flowcore import configuration
from flowcore.core.edge import Edge
from flowcore.engine.batches import (
    BatchedChildren,
    batch_size,
    collect_children,
    finished,
    finished_children,
    submit_batches,
)
from flowcore.engine.calls import collect as _collect
from flowcore.engine.calls import run_child, run_task, shared_runner
from flowcore.engine.calls import with_value as _with_value
from flowcore.engine.child_states import child_results, expand_mapped
from flowcore.engine.result import Result
from flowcore.engine.results import ConstantResult
from flowcore.engine.runner import Runner
from flowcore.engine.signals import ENDRUN
from flowcore.engine.state import (
    Cached,
    Cancelled,
    Crashed,
    Failed,
    Mapped,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    Success,
    _MetaState,
)
from flowcore.exceptions import UpstreamCrashed, WorkerCrashed
from flowcore.utilities import context as _context
from flowcore.utilities.logging import get_logger, log

if TYPE_CHECKING:
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task

__all__ = [
    "FlowRunner",
    "FlowRunnerInitializeResult",
    "INTERRUPTED",
    "import_object",
    "run_task",
]

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


def import_object(path: Any) -> Any:
    """``"package.module.Name"`` -> the object (used for config class paths); a class is kept."""
    if not isinstance(path, str):
        return path
    module, _, name = path.rpartition(".")
    try:
        # (an imported module is taken as it is: each pass of a run looks its classes up)
        loaded = sys.modules.get(module) or importlib.import_module(module)
        return getattr(loaded, name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ImportError(f"Cannot import {path!r} (from flowcore config): {exc}") from exc


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
        if self.logger.isEnabledFor(DEBUG):
            self.logger.debug(
                "Flow '%s': Handling state change from %s to %s",
                self.flow.name,
                type(old_state).__name__,
                type(new_state).__name__,
            )
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
        log(self.logger, INFO, f"Beginning Flow run for '{self.flow.name}'")
        if executor is None:
            executor = (
                self.flow.executor
                or import_object(configuration.config.engine.executor.default_class)()
            )
        self.logger.debug("Using executor type %s", type(executor).__name__)
        self.raise_on_exception = bool((context or {}).get("raise_on_exception")) or bool(
            _context.current().get("raise_on_exception")
        )
        try:
            state, task_states, run_context, task_contexts = self.initialize_run(
                state,
                dict(task_states or {}),
                dict(context or {}),
                dict(task_contexts or {}),
                dict(parameters or {}),
            )
            with _context.context(run_context):
                state = self._step(self.check_flow_is_pending_or_running, state)
                state = self._step(self.check_flow_reached_start_time, state)
                state = self._step(self.set_flow_to_running, state)
                state = self._step(
                    self.get_flow_run_state,
                    state,
                    task_states,
                    task_contexts,
                    set(return_tasks or ()),
                    task_runner_state_handlers,
                    executor,
                )
        except ENDRUN as exc:
            state = exc.state
        except Exception as exc:
            failed = self.state_from_error(exc, f"Unexpected error while running flow: {exc!r}")
            try:  # the flow's handlers see this change too, as in Prefect 1
                state = self.handle_state_change(state or Pending(), failed)
            except ENDRUN as end:
                state = end.state
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
        if "scheduled_start_time" not in context:  # (not pendulum.now() on every pass)
            context["scheduled_start_time"] = pendulum.now("UTC")
        add_date_keys(context, self.logger)
        for task in self.flow.tasks:
            task_context = task_contexts.setdefault(task, {})
            task_context.setdefault("task_name", task.name)
            task_context.setdefault("task_slug", self.flow.slugs[task])
        return FlowRunnerInitializeResult(state, task_states, context, task_contexts)

    def check_flow_is_pending_or_running(self, state: State) -> State:
        if state.is_pending() or state.is_running():
            return state
        self.logger.info(
            "Flow run has already finished." if state.is_finished() else "Flow is not ready to run."
        )
        raise ENDRUN(state)

    def check_flow_reached_start_time(self, state: State) -> State:
        if (
            isinstance(state, Scheduled)
            and state.start_time
            and state.start_time > datetime.now(timezone.utc)
        ):
            self.logger.debug(
                "Flow '%s': start_time has not been reached; ending run.", self.flow.name
            )
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
        outcomes = _Outcomes(self, task_contexts, task_runner_state_handlers, flow_context)
        with executor.start():
            keep = return_tasks | self.flow.terminal_tasks() | self.flow.reference_tasks()
            mapped_children: dict[Task, list[Any]] = {}
            try:
                for _ in range(len(self.flow.tasks) + 1):
                    mapped_children = {}
                    self._submit_tasks(
                        task_states,
                        task_contexts,
                        keep,
                        mapped_children,
                        executor,
                        runner_args,
                        outcomes,
                    )
                    self._collect(task_states, mapped_children, executor, outcomes)
                    if not outcomes.settle_stranded():
                        break
                    keep = set(self.flow.tasks)  # a later round needs every state
            except KeyboardInterrupt:
                recorder = flow_context.get("run_recorder")
                if recorder is not None:
                    _record_interrupted(
                        recorder, self.flow.slugs, executor, task_states, mapped_children
                    )
                raise
            return self._final_state(state, task_states, return_tasks)

    def _submit_tasks(
        self,
        task_states: dict[Task, Any],
        task_contexts: dict[Task, dict[str, Any]],
        keep: set[Task],
        mapped_children: dict[Task, list[Any]],
        executor: Any,
        runner_args: tuple[type, list[Callable[..., Any]] | None, Result | None],
        outcomes: _Outcomes,
    ) -> None:
        """Submit a task run for every task that still has work to do (the module docs)."""
        flow_context = outcomes.flow_context
        for plan in _releasing(_run_plan(self.flow), self.flow, keep, task_states, mapped_children):
            task = plan.task
            task_state = task_states.get(task)
            if task._is_constant and task_state is None:
                task_states[task] = Success(result=ConstantResult(value=task.value))  # type: ignore[attr-defined]
                continue
            if (
                task._rerun_every_pass
                and isinstance(task_state, State)
                and task_state.is_finished()
                and not task_state.is_cached()
            ):
                task_state = Pending()
            if (
                isinstance(task_state, State)
                and task_state.is_finished()
                and not isinstance(task_state, (Cached, Mapped))
            ):
                continue
            upstream_states, upstream_mapped, edge_children = self._upstream_states(
                plan, task_states, mapped_children, executor, outcomes
            )
            task_context = task_contexts.get(task) or {}
            extra = {"task_name": task.name, "task_tags": task.tags}
            outcomes.submitted(task, None, task_state)
            if not plan.is_mapped:
                task_states[task] = executor.submit(
                    run_task,
                    task,
                    task_state,
                    upstream_states,
                    flow_context,
                    task_context,
                    upstream_mapped,
                    runner_args,
                    extra_context=extra,
                )
                continue
            # only mapped upstreams come to the driver (to be split); the rest stay as
            # submitted, so an executor's futures keep their data on its workers
            pending = upstream_states
            mapped = outcomes.collect_upstreams(
                executor, {e: s for e, s in pending.items() if e.mapped}
            )
            upstream_states = {**pending, **mapped}
            # (the future stands as the task's state until it is collected: an interrupt
            # meanwhile finds it there, _record_interrupted)
            task_states[task] = executor.submit(
                run_task,
                task,
                task_state,
                pending,
                flow_context,
                task_context,
                upstream_mapped,
                runner_args,
                True,
                extra_context=extra,
            )
            parent = task_states[task] = outcomes.collect(executor, task_states[task], task)
            mapped_children[task] = []
            if isinstance(parent, Mapped):
                size = batch_size(task, parent.n_map_states, executor, flow_context)
                if size > 1:
                    mapped_children[task] = submit_batches(  # type: ignore[assignment]
                        executor,
                        task,
                        parent,
                        upstream_states,
                        edge_children,
                        size,
                        (flow_context, task_context, upstream_mapped, runner_args),
                        extra,
                        functools.partial(outcomes.submitted, task),
                    )
                    continue
                shared = (  # (children run in turn share a TaskRunner: engine/calls.py)
                    shared_runner(task, runner_args, flow_context, task_context)
                    if getattr(executor, "runs_in_turn", bool)()
                    else None
                )
                for index, child_upstreams in enumerate(
                    _child_upstreams(parent, upstream_states, edge_children)
                ):
                    prior = parent.map_states[index] if index < len(parent.map_states) else None
                    outcomes.submitted(task, index, prior)
                    child = executor.submit(
                        run_child,
                        shared,
                        task,
                        prior,
                        index,
                        child_upstreams,
                        flow_context,
                        task_context,
                        upstream_mapped,
                        runner_args,
                        extra_context={**extra, "task_index": index},
                    )
                    mapped_children[task].append(child)

    def _upstream_states(
        self,
        plan: _TaskPlan,
        task_states: dict[Task, Any],
        mapped_children: dict[Task, list[Any]],
        executor: Any,
        outcomes: _Outcomes,
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
                    children = _flatten_children(
                        list(collect_children(executor, outcomes, upstream, children))
                    )
                if edge.mapped:
                    edge_children[edge] = children
                    if edge.flattened:
                        upstream_state = Mapped(n_map_states=len(children))
                else:
                    upstream_mapped[edge] = (
                        children.joined() if isinstance(children, BatchedChildren) else children
                    )
            elif edge.flattened:
                upstream_state = executor.submit(_flatten_state, upstream_state)
            upstream_states[edge] = upstream_state
        upstream_states.update(plan.constant_states)
        return upstream_states, upstream_mapped, edge_children

    def _collect(
        self,
        task_states: dict[Task, Any],
        mapped_children: dict[Task, list[Any]],
        executor: Any,
        outcomes: _Outcomes,
    ) -> None:
        """Replace every future of the round by its state (mapped children too)."""
        for task, children in mapped_children.items():
            parent = task_states[task] = outcomes.collect(executor, task_states[task], task)
            if isinstance(parent, Mapped):
                parent.map_states = collect_children(executor, outcomes, task, children)  # type: ignore[assignment]
                parent.result = child_results(parent.map_states)
        task_states.update(outcomes.collect_tasks(executor, task_states))

    def _final_state(
        self, state: State, task_states: dict[Task, Any], return_tasks: set[Task]
    ) -> State:
        flow = self.flow
        terminal = [_state_or_pending(task_states, t) for t in flow.terminal_tasks()]
        reference = [_state_or_pending(task_states, t) for t in flow.reference_tasks()]
        return_states = {t: task_states[t] for t in return_tasks if t in task_states}
        return self.determine_final_state(
            state,
            expand_mapped(reference, whole=flow.terminal_state_handler is not None),
            return_states,
            expand_mapped(terminal),
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
            log(self.logger, INFO, "Flow run RUNNING: terminal tasks are incomplete.", sinks=True)
            state.result = return_states
        elif any(s.is_failed() for s in key_states):
            log(self.logger, INFO, "Flow run FAILED: some reference tasks failed.", sinks=True)
            state = Failed("Some reference tasks failed.", result=return_states)
        elif all(s.is_successful() for s in key_states):
            log(self.logger, INFO, "Flow run SUCCESS: all reference tasks succeeded", sinks=True)
            state = Success("All reference tasks succeeded.", result=return_states)
        else:
            log(self.logger, INFO, "Flow run SUCCESS: no reference tasks failed", sinks=True)
            state = Success("No reference tasks failed.", result=return_states)
        handler = self.flow.terminal_state_handler
        if handler is not None:
            replacement = handler(self.flow, state, set(key_states))
            if replacement is not None:
                replacement.result = (
                    return_states if replacement.result is None else replacement.result
                )
                state = replacement
        return state


class _Outcomes:
    """The states of one pass's task runs whose executor could not carry them out.

    ``executor.collect`` (where the executor has it; else ``wait``) returns an exception
    in place of such a run's state; this turns it into a state, once per run:

    * ``UpstreamCrashed`` (the run never started): the state it was submitted with (or
      Pending) - it runs in a later pass once its upstream is retried, or in another round
      of this pass (``settle_stranded``) when the upstream failed for good, where it meets
      its trigger like any downstream of a failed task;
    * ``WorkerCrashed``: ``Crashed``, any other: ``Failed`` - both through the TaskRunner's
      ``state_from_error`` and then its ``check_for_retry`` step (Retrying while attempts
      are left), with the task's state handlers and the run store told of each change.
    """

    def __init__(
        self,
        flow_runner: FlowRunner,
        task_contexts: dict[Task, dict[str, Any]],
        handlers: list[Callable[..., Any]] | None,
        flow_context: dict[str, Any],
    ) -> None:
        self.flow_runner = flow_runner
        self.task_contexts = task_contexts
        self.handlers = handlers
        self.flow_context = flow_context
        self.priors: dict[tuple[Task, int | None], Any] = {}
        self.settled: dict[tuple[Task, int | None], State] = {}
        self.stranded: set[tuple[Task, int | None]] = set()

    def submitted(self, task: Task, index: int | None, prior: Any) -> None:
        self.priors[(task, index)] = prior

    def collect(self, executor: Any, data: Any, task: Task, index: int | None = None) -> Any:
        """The state of ``task``'s run (``index``: a mapped child) from a future or state."""
        return self.state(task, index, _collect(executor, data))

    def collect_children(self, executor: Any, task: Task, children: list[Any]) -> list[Any]:
        return [self.state(task, i, child) for i, child in enumerate(_collect(executor, children))]

    def collect_tasks(self, executor: Any, task_states: dict[Task, Any]) -> dict[Task, Any]:
        return {
            task: self.state(task, None, value)
            for task, value in _collect(executor, task_states).items()
        }

    def collect_upstreams(self, executor: Any, upstream_states: dict[Edge, Any]) -> dict[Edge, Any]:
        """Mapped upstream states for splitting; a failed run stands as Pending (the mapped
        parent's own run then fails to start, and is settled as such)."""
        collected = _collect(executor, upstream_states)
        return {e: Pending(str(v)) if isinstance(v, Exception) else v for e, v in collected.items()}

    def state(self, task: Task, index: int | None, outcome: Any) -> Any:
        if not isinstance(outcome, Exception):
            return outcome
        key = (task, index)
        if key not in self.settled:
            prior = self.priors.get(key)
            if isinstance(outcome, UpstreamCrashed):
                self.stranded.add(key)
                self.settled[key] = prior if isinstance(prior, State) else Pending(str(outcome))
            else:
                self.settled[key] = self._failed_run(task, index, prior, outcome)
        return self.settled[key]

    def _failed_run(self, task: Task, index: int | None, prior: Any, error: Exception) -> State:
        runner = self.flow_runner.task_runner_cls(
            task=task, state_handlers=self.handlers, flow_result=self.flow_runner.flow.result
        )
        runner.raise_on_exception = self.flow_runner.raise_on_exception
        runner.adopt(
            {
                **self.flow_context,
                **self.task_contexts.get(task, {}),
                "map_index": index,
                "task_run_count": _run_count(prior),
            }
        )
        state_class = Crashed if isinstance(error, WorkerCrashed) else Failed
        failed = runner.state_from_error(error, str(error), state_class=state_class)
        try:
            failed = runner.handle_state_change(Running("Starting task run."), failed)
            settled: State = runner.check_for_retry(failed, {})
            return settled
        except ENDRUN as exc:
            return exc.state

    def settle_stranded(self) -> bool:
        """True when runs that never started wait only on runs that failed for good (then
        another round of the pass runs them); the round's records are cleared."""
        again = bool(self.stranded) and not any(
            isinstance(state, Scheduled)
            for key, state in self.settled.items()
            if key not in self.stranded
        )
        self.priors, self.settled, self.stranded = {}, {}, set()
        return again


INTERRUPTED = "Interrupted (KeyboardInterrupt) while this task run was unfinished."


def _record_interrupted(
    recorder: Any,
    slugs: dict[Task, str],
    executor: Any,
    task_states: dict[Task, Any],
    mapped_children: dict[Task, Any],
) -> None:
    """The pass was interrupted (Ctrl-C): tell the run recorder what the driver holds,
    without waiting (the states of the runs that finished, also in other processes, which
    only the pass's end would have collected), and that the runs it submitted which had
    not finished - a task's run, a mapped parent's, the children of a map this pass
    submitted - ended ``Cancelled`` (docs/runs.md), so that a resume runs only those."""
    for task, value in list(task_states.items()):
        slug = slugs.get(task)
        if slug is None or value is None:
            continue
        state = finished(value)
        if not isinstance(state, State):
            recorder.collected(slug, -1, Cancelled(INTERRUPTED))
            continue
        recorder.collected(slug, -1, state)
        if not isinstance(state, Mapped) or task not in mapped_children:
            continue
        done = [False] * state.n_map_states
        for first, count, child in finished_children(executor, mapped_children[task]):
            if count == 1:
                recorder.collected(slug, first, child)
            else:
                recorder.collected_unkept(slug, [(first, count, child)])
            done[first : first + count] = [True] * len(done[first : first + count])
        recorder.collected_unkept(slug, _unfinished_runs(done, Cancelled(INTERRUPTED)))


def _unfinished_runs(done: list[bool], state: State) -> list[tuple[int, int, State]]:
    """Runs ``(first index, count, state)`` of the children not ``done``."""
    runs: list[tuple[int, int, State]] = []
    index = 0
    while index < len(done):
        if done[index]:
            index += 1
            continue
        end = index
        while end < len(done) and not done[end]:
            end += 1
        runs.append((index, end - index, state))
        index = end
    return runs


def _run_count(prior: Any) -> int:
    """The attempt a run made from ``prior`` was (as ``TaskRunner.initialize_run`` counts)."""
    while isinstance(prior, _MetaState):
        prior = prior.state
    if isinstance(prior, Retrying):
        return prior.run_count + 1
    return int(prior.context.get("task_run_count", 1)) if isinstance(prior, State) else 1


def _state_or_pending(task_states: dict[Task, Any], task: Task) -> State:
    found = task_states.get(task)
    return found if found is not None else Pending(_NOT_AVAILABLE)


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
    plans: list[_TaskPlan],
    flow: Flow,
    keep: set[Task],
    task_states: dict[Task, Any],
    mapped_children: dict[Task, list[Any]],
) -> Iterator[_TaskPlan]:
    """Yield the plans; once every downstream task of a task has been handled, forget the
    task's state or future unless the pass must return it (``keep``: return, terminal and
    reference tasks), so an executor can free a result nobody needs any more."""
    consumers = {
        task: len({edge.downstream_task for edge in flow._downstream[task]})
        for task in flow.tasks
        if task not in keep
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
    """Child i's upstream states: element i of every mapped upstream, the rest as is. The
    shortest mapped upstream ends the list; an upstream result that cannot be indexed (a
    re-run of a Mapped parent whose upstream's value is not available) gives every child
    None, as in Prefect 1."""
    count = parent.n_map_states
    per_child: list[dict[Edge, Any]] = [{} for _ in range(count)]
    for edge, upstream in upstream_states.items():
        if not edge.mapped:
            for child in per_child:
                child[edge] = upstream
            continue
        split = edge not in edge_children
        if split:
            values = upstream.result
            items: Any = values if hasattr(values, "__getitem__") else [None] * count
        else:
            items = edge_children[edge]
        for index, child in enumerate(per_child):
            try:
                item = items[index]
            except IndexError:
                del per_child[index:]
                break
            child[edge] = _with_value(upstream, item) if split else item
    return per_child


def _flatten_state(state: State) -> State:
    """A copy of ``state`` whose result is flattened one level (unchanged if it cannot be)."""
    try:
        flat = [item for sub in state.result for item in sub]
    except TypeError:
        return state
    return _with_value(state, flat)


def _flatten_children(children: list[State]) -> list[State]:
    """The children of a ``flatten``ed mapped upstream, one per item of each child's value.
    A child that did not succeed, or was skipped, passes as it is (it has no value to
    flatten); a successful one whose value is not iterable passes as it is, with a
    WARNING (Prefect 1)."""
    flat: list[State] = []
    for child in children:
        if not child.is_successful() or child.is_skipped():
            flat.append(child)
            continue
        try:
            items = list(child.result)
        except TypeError:
            get_logger("FlowRunner").warning(
                "`flatten` was used on upstream task that did not return an iterable. "
                "The value will be passed downstream unmodified."
            )
            flat.append(child)
            continue
        flat.extend(_with_value(child, item) for item in items)
    return flat


_DATE_KEYS = tuple(
    f"{day}{suffix}" for day in ("today", "yesterday", "tomorrow") for suffix in ("", "_nodash")
)


def add_date_keys(context: dict[str, Any], logger: Any) -> None:
    """Set ``context["date"]`` and, unless given, ``today``, ``yesterday``, ``tomorrow`` and
    their ``_nodash`` forms. Each comes from the context, else from the surrounding
    ``flowcore.context`` (``with flowcore.context(today=...)``, as Prefect 1's run starts
    from it), else from the date: the context's ``date`` (else the surrounding one's, else
    now, UTC), parsed when it is text; text that cannot be parsed is kept as given, with a
    warning, and the keys follow the clock (Prefect 1). A context that has them all (a
    later pass of the same run) is left as it is."""
    surrounding = _context.current()
    for key in _DATE_KEYS:
        if key not in context and key in surrounding:
            context[key] = surrounding[key]
    if "date" in context and all(key in context for key in _DATE_KEYS):
        if isinstance(context["date"], str):
            parsed = _parsed(context["date"])
            if parsed is not None:
                context["date"] = parsed
        return
    given = context["date"] if "date" in context else _context.current().get("date")
    date = _parsed(given) if isinstance(given, str) else given
    if given is not None and not isinstance(date, datetime):
        logger.warning(
            "`date` was set in the context manually but could not be parsed into a pendulum "
            "`DateTime` object. Additional context variables that rely on the current date i.e "
            "`today` and `tomorrow` will be based on the current time instead of the `date` "
            "context variable."
        )
        day = pendulum.now("UTC")
        context["date"] = given  # kept as given, as in Prefect 1
    else:
        day = context["date"] = pendulum.instance(date) if date is not None else pendulum.now("UTC")
    calendar_day = Date(day.year, day.month, day.day)
    for name, offset in (("today", 0), ("yesterday", -1), ("tomorrow", 1)):
        shifted = calendar_day + timedelta(days=offset)  # calendar days, as pendulum's add()
        context.setdefault(name, shifted.strftime("%Y-%m-%d"))
        context.setdefault(f"{name}_nodash", shifted.strftime("%Y%m%d"))


def _parsed(text: str) -> Any:
    """``text`` parsed by pendulum into a DateTime, else None."""
    try:
        parsed = pendulum.parse(text)
    except Exception:
        return None
    return parsed if isinstance(parsed, datetime) else None
