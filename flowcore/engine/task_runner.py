"""TaskRunner: the state machine of one task run.

``TaskRunner.run`` pushes the task's context scope, then sends the state through a fixed
list of steps. Each step takes a state and returns one (the same object when nothing
changes) or raises ``ENDRUN(state)`` to finish early; handlers fire on every change
(``engine/runner.py``)::

    state in          step                              state out (else unchanged)
    ───────────────   ───────────────────────────────   ─────────────────────────────────
    any               initialize_run                    meta states unwrapped, None->Pending
    Pending/Cached/   check_task_is_ready               ENDRUN if Running or Finished
      Mapped
    Scheduled         check_task_reached_start_time     ENDRUN if start_time is None/future
    any               check_upstream_finished           ENDRUN if an upstream is unfinished
    any               check_upstream_skipped            ENDRUN(Skipped)
    (mapped parent)   check_task_ready_to_map           ENDRUN(Mapped(n) | Failed), always
    any               check_task_is_cached (the cache      Cached (hit) | Pending (invalid)
                      plan: target, cache or policy)
    any               check_task_trigger                ENDRUN(TriggerFailed | Paused | ...)
    Pending           set_task_to_running               Running; ENDRUN if not Pending
    Running           get_task_run_state                Success | Failed | TimedOut | Looped
                                                        | a signal's state; checkpointed
    Success           cache_result                      Cached (with cache_for)
    Failed            check_for_retry                   Retrying (attempts left)
    Looped            check_task_is_looping             Pending, and the steps run again

A cache or target hit leaves at ``set_task_to_running`` (a Cached state is not Pending).

The common case takes a fused path (``_fused``): a plain TaskRunner, no state handlers,
the default trigger, no run name template, a Pending state (or a Scheduled or Retrying one
whose time has come) and upstream states that all succeeded (``_fusable``). The steps
that cannot change such a run are skipped; the cache lookup, the run, the cache record and
the retry check run as their steps do, with the same states, log lines and run-store
records (tests/engine/test_fused_path.py runs both paths and compares them).
A batch of mapped children (``engine/batches.py``), and the children of a map on an
executor that runs calls in turn (``LocalExecutor``), run those that start Pending on one
TaskRunner (``engine/calls.shared_runner``): ``prepare_children`` sets up once what their
runs share (the task's context keys), and ``run_child`` runs each from Pending as ``run``
would, fused path or pipeline (tests/engine/test_fused_path.py compares it with a runner
per child).
Looping is a ``while`` loop in ``run``, with ``task_loop_count`` / ``task_loop_result`` in
the context. Inputs are the upstream states' ``Result`` objects, keyed by argument name;
a state carrying ``cached_inputs`` (a retry or a resume, possibly from another process)
supplies the inputs whose upstream states are not available.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from logging import INFO
from typing import TYPE_CHECKING, Any, NamedTuple

import pendulum

from flowcore import configuration
from flowcore.caching.plan import CacheRun
from flowcore.core.edge import Edge
from flowcore.engine import signals
from flowcore.engine.result import NoResult, Result, checkpointed_none
from flowcore.engine.runner import Runner, call_state_handlers, unwrap_state
from flowcore.engine.signals import ENDRUN
from flowcore.engine.state import (
    Cached,
    Failed,
    Looped,
    Mapped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)
from flowcore.exceptions import ResultNotImplementedError, TaskTimeoutSignal
from flowcore.transactions import TransactionRun
from flowcore.triggers import all_successful
from flowcore.utilities import context as _context
from flowcore.utilities.executors import run_with_timeout
from flowcore.utilities.logging import get_child_logger, get_logger, log, stdout_to_log

if TYPE_CHECKING:
    from collections.abc import Callable

    from flowcore.core.task import Task
    from flowcore.runs.recorder import RunRecorder

__all__ = ["TaskRunner", "TaskRunnerInitializeResult"]

_LOGGER = get_logger("TaskRunner")
_SKIP_MESSAGE = (
    "Upstream task was skipped; if this was not the intended behavior, consider changing "
    "`skip_on_upstream_skip=False` for this task."
)


class TaskRunnerInitializeResult(NamedTuple):
    state: State
    context: dict[str, Any]


class TaskRunner(Runner):
    """Runs one task (or one mapped child) from a state to a new state.

    Each step can also be called on its own, as Prefect 1 users' unit tests do: it calls
    the state handlers and turns signals into states just as inside ``run``. Steps read
    the context ``initialize_run`` filled (during ``run``, the current ``flowcore.context``)
    or one assigned to ``self.context``; before that, the current ``flowcore.context`` at
    each call, as Prefect 1's steps read ``prefect.context``. ``self.context`` starts as
    the context the runner was made in (Prefect 1: a copy made in ``__init__``).

    Args:
        task: the task to run.
        state_handlers: runner-level handlers ``fn(runner, old, new)``.
        flow_result: the flow's default ``Result``, used when the task has none.
    """

    def __init__(
        self,
        task: Task,
        state_handlers: list[Callable[..., Any]] | None = None,
        flow_result: Result | None = None,
    ) -> None:
        super().__init__(state_handlers, _LOGGER)
        self.task = task
        if task.result is not None:
            self.result = task.result
        elif flow_result is not None:
            self.result = flow_result.copy()
        else:
            self.result = Result()
        self.context: dict[str, Any] = _context.current()
        self._made_in = self.context
        self.cache_run: CacheRun | None = None
        self._initialized = False
        self._recorder: RunRecorder | None = None
        self._record_key: tuple[str, int] = ("", -1)
        self._name = task.name
        self._format_kwargs: dict[str, Any] | None = None
        self._children_scope: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<TaskRunner: {self.task.name}>"

    def call_runner_target_handlers(self, old_state: State, new_state: State) -> State:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(
                "Task '%s': Handling state change from %s to %s",
                self._name,
                type(old_state).__name__,
                type(new_state).__name__,
            )
        for handler in self.task.state_handlers:
            new_state = handler(self.task, old_state, new_state) or new_state
        return new_state

    def _debugging(self) -> bool:
        """The run's ``raise_on_exception``; for a step called on its own, the current
        context's (Prefect 1 reads it at every step)."""
        return self.raise_on_exception or (
            not self._initialized and bool(_context.current().get("raise_on_exception"))
        )

    def handle_state_change(self, old_state: State, new_state: State) -> State:
        """The handlers (``Runner.handle_state_change``), then the run store hears of the
        state the handlers settled on."""
        new_state = Runner.handle_state_change(self, old_state, new_state)
        self._record(new_state)
        return new_state

    def _record(self, state: State) -> None:
        """Tell the run store (when the run has one) of the run's new state."""
        if self._recorder is not None:
            self._recorder.task_state(self._record_key, state, self.context["task_run_count"])

    # -- the run --------------------------------------------------------------------------

    def run(
        self,
        state: State | None = None,
        upstream_states: dict[Edge, State] | None = None,
        context: dict[str, Any] | None = None,
        is_mapped_parent: bool = False,
    ) -> State:
        """Run the task from ``state`` given its upstream states; return the new state."""
        upstream_states = upstream_states or {}
        scope = {**_context.current(), **context} if context else dict(_context.current())
        token = _context.push(scope)
        try:
            state = self._initialize(state, scope)
            state = self._run_initialized(state, upstream_states, is_mapped_parent)
        finally:
            if self.cache_run is not None:
                self.cache_run.release()
            _context.pop(token)
        return state

    def _run_initialized(
        self, state: State, upstream_states: dict[Edge, State], is_mapped_parent: bool
    ) -> State:
        """The run once its context is set: the steps (the fused path when it applies),
        looping, between the run's two log lines (the first not when the run goes on
        with a loop, from a state that carries its count, as in Prefect 1)."""
        if self.context.get("task_loop_count") is None:
            log(self.logger, INFO, f"Task '{self._name}': Starting task run...")
        given = state
        if not is_mapped_parent and self._fusable(state, upstream_states):
            state = self._fused(state, upstream_states)
        else:
            state = self._pipeline(state, upstream_states, is_mapped_parent)
        while isinstance(state, Looped) and state is not given:
            state = self.check_task_is_looping(state)
            state = self._pipeline(state, upstream_states, is_mapped_parent)
        log(
            self.logger,
            INFO,
            f"Task '{self._name}': Finished task run for task with final state: "
            f"'{type(state).__name__}'",
        )
        return state

    # -- many mapped children in one call (engine/batches.py) -----------------------------

    def prepare_children(self, context: dict[str, Any]) -> bool:
        """Get ready to run many children of this mapped task with :meth:`run_child`
        (``context``: the task's context, without ``map_index``): what
        ``initialize_run`` sets alike for every child that starts Pending is set once.
        False, with nothing done, when a child needs more than that (a cache plan or a
        target: a lookup and a location of its own; a subclass of TaskRunner, whose
        ``run`` may differ; runner state handlers, which are given the runner and may keep
        it): each child is then run by a TaskRunner of its own."""
        task = self.task
        if (
            type(self) is not TaskRunner
            or self.state_handlers
            or task.cache_plan is not None
            or task.target is not None
        ):
            return False
        scope = {**_context.current(), **context}
        scope["task_run_count"] = 1  # (a Pending state without context: the first run)
        self._task_keys(scope)
        self.raise_on_exception = bool(scope.get("raise_on_exception"))
        self._children_scope = scope
        self._initialized = True
        return True

    def run_child(self, index: int, upstream_states: dict[Edge, State]) -> State:
        """Run child ``index`` from Pending, as :meth:`run` of a new TaskRunner would
        (same steps, states, log lines and run-store records), after
        :meth:`prepare_children`."""
        scope = dict(self._children_scope)
        token = _context.push(scope)
        try:
            self._format_kwargs = None
            self._adopt(scope, self._child_keys(scope, index), index)
            return self._run_initialized(Pending(), upstream_states, False)
        finally:
            _context.pop(token)

    def _pipeline(
        self, state: State, upstream_states: dict[Edge, State], is_mapped_parent: bool
    ) -> State:
        self._format_kwargs = None
        return self._settled(self._steps, state, upstream_states, is_mapped_parent)

    def _steps(
        self, state: State, upstream_states: dict[Edge, State], is_mapped_parent: bool
    ) -> State:
        state = self.check_task_is_ready(state)
        state = self.check_task_reached_start_time(state)
        state = self.check_upstream_finished(state, upstream_states)
        state = self.check_upstream_skipped(state, upstream_states)
        inputs = self.get_task_inputs(state, upstream_states)
        if is_mapped_parent:
            state = self.check_task_ready_to_map(state, upstream_states)
        self.set_task_run_name(inputs)
        state = self.check_task_is_cached(state, inputs)
        state = self.check_task_trigger(state, upstream_states)
        state = self.set_task_to_running(state, inputs)
        state = self.get_task_run_state(state, inputs)
        state = self.cache_result(state, inputs)
        return self.check_for_retry(state, inputs)

    def _settled(self, steps: Callable[..., State], *args: Any) -> State:
        """``steps(*args)``, the run's steps: an ``ENDRUN`` or a state signal that ends
        them gives its state, and any other exception a Failed one (as the pipeline's
        last resort; each step turns its own errors into states first)."""
        try:
            return steps(*args)
        except ENDRUN as exc:
            return exc.state
        except signals.PrefectStateSignal as exc:
            return exc.state
        except Exception as exc:
            return self.state_from_error(
                exc, f"Task '{self._name}': Unexpected error while running task: {exc!r}"
            )

    def _fusable(self, state: State, upstream_states: dict[Edge, State]) -> bool:
        """Whether this run is the common case the fused path (:meth:`_fused`) covers: a
        plain ``Pending`` state (or a ``Scheduled`` or ``Retrying`` one whose start time
        has come), a plain TaskRunner with no state handlers, no run name template, the
        default trigger, and every upstream a success that is not a skip. For such a run,
        the steps before ``set_task_to_running`` other than the cache lookup cannot change
        the state, nor log (DEBUG lines aside: with DEBUG on, the pipeline runs)."""
        task = self.task
        kind = type(state)
        if kind is not Pending and (
            (kind is not Retrying and kind is not Scheduled)
            or state.start_time is None  # type: ignore[attr-defined]
            or state.start_time > _now()  # type: ignore[attr-defined]
        ):
            return False
        if (
            type(self) is not TaskRunner
            or self.state_handlers
            or task.state_handlers
            or task.trigger is not all_successful
            or task.task_run_name is not None
            or self.logger.isEnabledFor(logging.DEBUG)
        ):
            return False
        for upstream in upstream_states.values():
            for one in upstream.map_states if isinstance(upstream, Mapped) else (upstream,):
                if not isinstance(one, Success) or isinstance(one, Skipped):
                    return False
        return True

    def _fused(self, state: State, upstream_states: dict[Edge, State]) -> State:
        """The pipeline for a run :meth:`_fusable` accepts: the cache lookup (a hit, or an
        error, is final), Running, the task, the cache record, and (after a failure) the
        retry check, with the same states and records as the full pipeline gives such a
        run; there are no handlers to call."""
        return self._settled(self._fused_steps, state, upstream_states)

    def _fused_steps(self, state: State, upstream_states: dict[Edge, State]) -> State:
        cache_run = self.cache_run
        inputs = self.get_task_inputs(state, upstream_states)
        if cache_run is not None:
            state = self._unhandled_step(self._check_cache, state, inputs)
            if not isinstance(state, Pending):
                return state
        state = self._run_recorded(Running("Starting task run."), inputs)
        if cache_run is not None and isinstance(state, Success):
            state = self._unhandled_step(self._cache_result, state, inputs)
        if isinstance(state, Failed) and self.task.max_retries:
            state = self.check_for_retry(state, inputs)
        return state

    def _run_recorded(self, running: State, inputs: dict[str, Result]) -> State:
        """The task's run from ``running`` (:meth:`_task_run_state`), told to the run store
        in one report (``RunRecorder.task_run``) when it ends normally; a run that raised
        is reported state by state, as :meth:`_unhandled_step` does."""
        recorder = self._recorder
        started = time.time()
        if recorder is not None:
            run_count = self.context["task_run_count"]
            recorder.task_began(self._record_key, run_count, started)
        try:
            state = self._task_run_state(running, inputs)
        except (ENDRUN, signals.PrefectStateSignal, Exception) as exc:
            self._record(running)
            state = self._step_raised(running, exc)
            if state is not running:
                self._record(state)
            return state
        if recorder is not None:
            recorder.task_run(self._record_key, state, run_count, started)
        return state

    def _unhandled_step(
        self, step: Callable[..., State], state: State, inputs: dict[str, Result]
    ) -> State:
        """``step(state, inputs)`` (a step's undecorated body) as its decorated form runs it
        (``engine/runner.py``), for a run with no handlers: a new state is only recorded."""
        try:
            new_state = step(state, inputs)
        except (ENDRUN, signals.PrefectStateSignal, Exception) as exc:
            new_state = self._step_raised(state, exc)
        if new_state is not state:
            self._record(new_state)
        return new_state

    # -- steps ----------------------------------------------------------------------------

    def initialize_run(
        self, state: State | None, context: dict[str, Any]
    ) -> TaskRunnerInitializeResult:
        """Unwrap the state and fill the task keys of ``context`` (updated in place):
        ``task_run_count``, ``task_name``, ``task_full_name``, ``task_tags``, ``map_index``,
        ``checkpointing`` (unless given; from ``config.flows.checkpointing``), ``logger``,
        and ``resume`` / ``task_loop_count`` / ``task_loop_result`` when the state says so.
        The steps read this context from then on."""
        return TaskRunnerInitializeResult(self._initialize(state, context), context)

    def _initialize(self, state: State | None, context: dict[str, Any]) -> State:
        """:meth:`initialize_run`, returning the state only (``run`` calls it once per task
        run, so it is kept lean)."""
        state = unwrap_state(state)
        state_context = state.context
        if isinstance(state, Retrying):
            run_count = state.run_count + 1
        else:
            run_count = state_context.get("task_run_count", 1)
        if isinstance(state, Resume) or (
            isinstance(state, Paused)
            and state.start_time is not None
            and state.start_time <= _now()
        ):
            context["resume"] = True
        if "_loop_count" in state_context:
            loop_result = state._result
            if loop_result.value is None and loop_result.location is not None:
                loop_result = self.result.read(loop_result.location)
            context["task_loop_result"] = loop_result.value
            context["task_loop_count"] = state_context["_loop_count"]
        task = self.task
        context["task_run_count"] = run_count
        self._task_keys(context)
        map_index = context.get("map_index")
        name = self._child_keys(context, map_index)
        self.raise_on_exception = bool(context.get("raise_on_exception"))
        if task.target is not None:
            self.result = self.result.copy()
            if isinstance(task.target, str):
                self.result.location, self.result._formatter = task.target, None
            else:
                self.result.location, self.result._formatter = None, task.target
        self._adopt(context, name, map_index)
        self.cache_run = self._start_cache(context)
        self._initialized = True
        return state

    def _task_keys(self, context: dict[str, Any]) -> None:
        """The context keys of a run that are the task's: ``task_name``, ``task_tags``,
        ``checkpointing`` (unless given; from ``config.flows.checkpointing``)."""
        context["task_name"] = self.task.name
        context["task_tags"] = self.task.tags
        if "checkpointing" not in context:
            try:
                checkpointing = context["config"]["flows"]["checkpointing"]
            except (KeyError, TypeError):
                checkpointing = configuration.config.get("flows", {}).get("checkpointing")
            context["checkpointing"] = bool(checkpointing)

    def _child_keys(self, context: dict[str, Any], map_index: int | None) -> str:
        """The context keys of a run that name it (``map_index``, ``task_full_name``,
        ``logger``); returns the name."""
        task = self.task
        context["map_index"] = map_index
        if map_index is None:
            context["task_full_name"] = name = task.name
            context["logger"] = task.logger
        else:
            context["task_full_name"] = name = f"{task.name}[{map_index}]"
            context["logger"] = get_child_logger(task.logger, name)
        return name

    def adopt(self, context: dict[str, Any]) -> None:
        """Take ``context`` (a task run's: ``task_slug``, ``map_index``, ``task_run_count``,
        ...) as this runner's, with its name and its run recorder, without starting a run:
        :meth:`initialize_run` ends with it, and the FlowRunner uses it to settle a run its
        executor lost (``state_from_error`` and ``check_for_retry`` then report as usual)."""
        map_index = context.get("map_index")
        name = self.task.name if map_index is None else f"{self.task.name}[{map_index}]"
        self._adopt(context, name, map_index)

    def _adopt(self, context: dict[str, Any], name: str, map_index: int | None) -> None:
        self._name = name
        self._recorder = recorder = context.get("run_recorder")
        if recorder is not None:
            self._record_key = (context["task_slug"], -1 if map_index is None else map_index)
        self.context = context

    @call_state_handlers
    def check_task_is_ready(self, state: State) -> State:
        """Pending, Cached and Mapped states go on; anything else is final."""
        if isinstance(state, (Pending, Cached, Mapped)):
            return state
        self.logger.debug(
            "Task '%s': task is not ready to run (%s)", self._name, type(state).__name__
        )
        raise ENDRUN(state)

    @call_state_handlers
    def check_task_reached_start_time(self, state: State) -> State:
        """A Scheduled state waits until its ``start_time`` (None: until resumed)."""
        if isinstance(state, Scheduled):
            if state.start_time is None or state.start_time > _now():
                self.logger.debug("Task '%s': start_time has not been reached", self._name)
                raise ENDRUN(state)
        return state

    @call_state_handlers
    def check_upstream_finished(self, state: State, upstream_states: dict[Edge, State]) -> State:
        """Wait (ENDRUN, state unchanged) while an upstream has not finished."""
        cached = state.cached_inputs
        for edge, upstream in upstream_states.items():
            if cached and _cached_input(state, edge, upstream) is not None:
                continue
            if not all(s.is_finished() for s in _expanded(edge, upstream)):
                self.logger.debug("Task '%s': not all upstream states are finished", self._name)
                raise ENDRUN(state)
        return state

    @call_state_handlers
    def check_upstream_skipped(self, state: State, upstream_states: dict[Edge, State]) -> State:
        """Skip when an upstream skipped and ``skip_on_upstream_skip`` is set."""
        if self.task.skip_on_upstream_skip:
            for edge, upstream in upstream_states.items():
                if any(s.is_skipped() for s in _expanded(edge, upstream)):
                    raise ENDRUN(Skipped(_SKIP_MESSAGE, result=None))
        return state

    def get_task_inputs(
        self, state: State, upstream_states: dict[Edge, State]
    ) -> dict[str, Result]:
        """``{argument: Result}`` from keyed edges, falling back on ``cached_inputs``."""
        cached = state.cached_inputs
        if not cached:  # the common case (every fused run): the upstream results, by key
            return {e.key: s._result for e, s in upstream_states.items() if e.key is not None}
        if any(r.value is None and r.location is not None for r in cached.values()):
            cached = state.load_cached_results().cached_inputs
        inputs: dict[str, Result] = {}
        for edge, upstream in upstream_states.items():
            key = edge.key
            if key is None:
                continue
            stored = _cached_input(state, edge, upstream)
            inputs[key] = upstream._result if stored is None else stored
        for key, stored in cached.items():
            inputs.setdefault(key, stored)
        return inputs

    @call_state_handlers
    def check_task_ready_to_map(self, state: State, upstream_states: dict[Edge, State]) -> State:
        """For a mapped parent: always ENDRUN, with Mapped(n children) or Failed. A parent
        that is Mapped already (a re-run) keeps its state, given one placeholder child state
        (None) per child when it has none, so that the flow runner regenerates every child."""
        if isinstance(state, Mapped):
            if not state.map_states and state.n_map_states > 0:
                state.map_states = [None] * state.n_map_states
            state.cached_inputs = {e.key: s._result for e, s in upstream_states.items() if e.key}
            raise ENDRUN(state)
        mapped = [(e, s) for e, s in upstream_states.items() if e.mapped]
        if upstream_states and not any(s.is_successful() for _, s in mapped):
            raise ENDRUN(Failed("No upstream states can be mapped over."))
        counts = []
        for _, upstream in mapped:
            if not upstream.is_successful():
                continue
            if isinstance(upstream, Mapped):
                counts.append(upstream.n_map_states)
            elif not hasattr(upstream.result, "__getitem__"):
                raise ENDRUN(Failed("At least one upstream state has an unmappable result."))
            else:
                counts.append(len(upstream.result))
        raise ENDRUN(Mapped("Ready to proceed with mapping.", n_map_states=min(counts, default=0)))

    def set_task_run_name(self, task_inputs: dict[str, Result]) -> None:
        """Format ``task.task_run_name`` into ``task_run_name`` in the current
        ``flowcore.context`` (during a run, the run's context)."""
        template = self.task.task_run_name
        if template is not None:
            kwargs = self.formatting_kwargs(task_inputs)
            name = template(**kwargs) if callable(template) else template.format(**kwargs)
            _context.current()["task_run_name"] = name
            if self._initialized:
                self.context["task_run_name"] = name

    @call_state_handlers
    def check_task_is_cached(self, state: State, inputs: dict[str, Result]) -> State:
        """Ask the task's cache plan (target, cache or policy) whether the run is done
        already; without one, an incoming Cached state is re-validated by the validator."""
        return self._check_cache(state, inputs)

    def _check_cache(self, state: State, inputs: dict[str, Result]) -> State:
        """The step :meth:`check_task_is_cached` without its handler calls."""
        run = self.cache_run if self._initialized else self._start_direct_cache()
        if run is not None:
            parameters = self._step_context().get("parameters") or {}
            return run.check(
                state, _values(inputs), parameters, lambda: self.formatting_kwargs(inputs)
            )
        if isinstance(state, Cached):
            parameters = self._step_context().get("parameters") or {}
            if not self.task.cache_validator(state, _values(inputs), parameters):
                return Pending("Cache was invalid; ready to run.")
        return state

    check_target = check_task_is_cached  # Prefect 1's step name for the target lookup

    @call_state_handlers
    def check_task_trigger(self, state: State, upstream_states: dict[Edge, State]) -> State:
        """Evaluate the trigger; a False or a signal ends the run."""
        cached = state.cached_inputs
        if cached:
            upstream_states = {
                e: s if (stored := _cached_input(state, e, s)) is None else Success(result=stored)
                for e, s in upstream_states.items()
            }
        try:
            if not self.task.trigger(upstream_states):
                raise signals.TRIGGERFAIL("Trigger failed")
        except signals.PrefectStateSignal as exc:
            self.logger.debug(
                "Task '%s': %s signal raised during trigger", self._name, type(exc).__name__
            )
            if self._debugging():
                raise
            if isinstance(exc.state, Paused):
                edges = {e: s for e, s in upstream_states.items() if isinstance(e, Edge)}
                exc.state.cached_inputs = self.get_task_inputs(state, edges)
            raise ENDRUN(exc.state) from None
        except Exception as exc:
            raise ENDRUN(
                self.state_from_error(
                    exc,
                    f"Unexpected error while checking task trigger: {exc!r}",
                    f"Task '{self._name}': Unexpected error while evaluating task trigger: {exc!r}",
                    TriggerFailed,
                )
            ) from None
        return state

    @call_state_handlers
    def set_task_to_running(self, state: State, inputs: dict[str, Result]) -> State:
        """Pending becomes Running; anything else (e.g. a cache hit) is final."""
        if not isinstance(state, Pending):
            raise ENDRUN(state)
        return Running("Starting task run.")

    @call_state_handlers
    def get_task_run_state(self, state: State, inputs: dict[str, Result]) -> State:
        """Call ``task.run`` with the input values; checkpoint and wrap the outcome."""
        if isinstance(state, Running) and self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("Task '%s': Calling task.run() method...", self._name)
        return self._task_run_state(state, inputs)

    def _task_run_state(self, state: State, inputs: dict[str, Result]) -> State:
        """The step :meth:`get_task_run_state` without its handler calls."""
        if not isinstance(state, Running):
            raise ENDRUN(state)
        task = self.task
        raw = _values(inputs)
        new_state: State | None = None
        try:
            if task.log_stdout:
                value = self._run_logging_stdout(raw)
            elif not task.timeout:
                value = task.run(**raw)
            else:
                value = run_with_timeout(task.run, raw, task.timeout, self._name)
        except TaskTimeoutSignal as exc:
            self.logger.error(f"Task '{self._name}': timed out after {task.timeout} seconds")
            return TimedOut("Task timed out during execution.", result=exc)
        except (signals.LOOP, signals.SUCCESS) as exc:
            new_state = exc.state
            value = new_state.result
            if isinstance(new_state, Looped) and not new_state.message:
                new_state.message = f"Task is looping ({new_state.loop_count})"
        except (signals.PAUSE, signals.RETRY) as exc:
            exc.state.cached_inputs = inputs
            raise
        except Exception as exc:
            return self.state_from_error(
                exc,
                f"Error during execution of task: {exc!r}",
                f"Task '{self._name}': Exception encountered during task execution!",
                log_when_raised=False,
            )
        try:
            stored = self._store(value, inputs)
        except Exception as exc:
            return self.state_from_error(
                exc, f"Task '{self._name}': could not checkpoint the result: {exc!r}"
            )
        if new_state is None:
            return Success(result=stored, message="Task run succeeded.")
        new_state._result = stored
        return new_state

    @call_state_handlers
    def cache_result(self, state: State, inputs: dict[str, Result]) -> State:
        """Record a success in the cache: with ``cache_for`` (Prefect 1) the state becomes
        Cached, expiring after ``cache_for``; under a cache policy it stays Success."""
        return self._cache_result(state, inputs)

    def _cache_result(self, state: State, inputs: dict[str, Result]) -> State:
        """The step :meth:`cache_result` without its handler calls."""
        run = self.cache_run if self._initialized else self._start_direct_cache()
        if run is None or not isinstance(state, Success) or isinstance(state, Skipped):
            return state
        return run.record(state, _values(inputs), self._step_context().get("parameters") or {})

    @call_state_handlers
    def check_for_retry(self, state: State, inputs: dict[str, Result]) -> State:
        """A failure with attempts left becomes Retrying, carrying its inputs."""
        task = self.task
        if not isinstance(state, Failed) or not task.max_retries:
            return state
        if (
            task.retry_on
            and state.result is not None
            and not isinstance(state.result, tuple(task.retry_on))
        ):
            self.logger.info(
                f"Task '{self._name}': Skipping retry. Exception of type "
                f"{type(state.result).__name__!r} is not an instance of the retry on exception types."
            )
            return state
        context = self._step_context()
        run_count = context.get("task_run_count", 1)
        if run_count > task.max_retries:
            return state
        loop_context: dict[str, Any] = {}
        loop_result: Any = NoResult
        if "task_loop_count" in context:
            loop_context["_loop_count"] = context["task_loop_count"]
            loop_result = self._store(context.get("task_loop_result"), inputs)
        assert task.retry_delay is not None
        return Retrying(
            f"Retrying Task (after attempt {run_count} of {task.max_retries + 1})",
            result=loop_result,
            start_time=_utc_now_plus(task.retry_delay),
            cached_inputs=inputs,
            context=loop_context,
            run_count=run_count,
        )

    def check_task_is_looping(self, state: State) -> State:
        """After a LOOP: expose the loop result and count, and start the next iteration."""
        assert isinstance(state, Looped)
        if not self._initialized:
            self.context = dict(self._step_context())  # not the caller's context
        self.context["task_loop_result"] = state.result
        self.context["task_loop_count"] = state.loop_count + 1
        return Pending(state.message)

    # -- helpers --------------------------------------------------------------------------

    def _step_context(self) -> dict[str, Any]:
        """The context the steps read (the class docstring): the run's or the one given,
        else the current ``flowcore.context``."""
        context = self.context
        return _context.current() if context is self._made_in else context

    def _start_direct_cache(self) -> CacheRun | None:
        """The cache run of a step called without ``initialize_run`` (a unit test calling
        ``check_task_is_cached`` directly), over the runner's context."""
        if self.cache_run is None:
            self.cache_run = self._start_cache(self._step_context())
        return self.cache_run

    def _start_cache(self, context: dict[str, Any]) -> CacheRun | None:
        """This run's cache decisions, from the task's compiled plan (None: no caching)."""
        plan = self.task.cache_plan
        if plan is None:
            return None
        return plan.start(
            context, self._name, self.logger, self.task, self._transaction(context), self.result
        )

    def _transaction(self, context: dict[str, Any]) -> TransactionRun | None:
        """The run of the transaction this task belongs to (None: writes happen at once)."""
        group = getattr(self.task, "_transaction", None)
        if group is None:
            return None
        return (context.get("transactions") or {}).get(group.id)

    def formatting_kwargs(self, inputs: dict[str, Result]) -> dict[str, Any]:
        """Keys for targets, locations and run names: parameters < context < inputs."""
        if self._format_kwargs is None:
            context = self._step_context()
            kwargs = dict(context.get("parameters") or {})
            kwargs.update(context)
            kwargs.update(_values(inputs))
            kwargs.pop("self", None)
            self._format_kwargs = kwargs
        return self._format_kwargs

    def _store(self, value: Any, inputs: dict[str, Result]) -> Result:
        """Checkpoint ``value`` when checkpointing is on (staged inside a transaction);
        else just carry it. None is not written (as in Prefect 1), but marked as
        checkpointed (``checkpointed_none``), so a resume can restore it."""
        context = self.context
        if context is self._made_in:
            context = _context.current()
        checkpointing = context.get("checkpointing") is True and self.task.checkpoint is not False
        if checkpointing and value is None and self.result.stores_values():
            return checkpointed_none(self.result)
        if checkpointing and value is not None:
            kwargs = self.formatting_kwargs(inputs)
            transaction = self._transaction(context)
            try:
                if transaction is None or not self.result.stores_values():
                    return self.result.write(value, **kwargs)
                formatted = self.result.format(**kwargs)
            except ResultNotImplementedError:
                return self.result.from_value(value)
            formatted.value = value
            location, result = formatted.location or "", self.result
            transaction.stage(
                f"Task '{self._name}': checkpoint {location}",
                lambda: result.write_at(location, value),
            )
            return formatted
        return self.result.from_value(value)

    def _run_logging_stdout(self, raw: dict[str, Any]) -> Any:
        """The task's run with what it prints logged line by line, as it prints it."""
        logger = self._step_context().get("logger") or self.task.logger
        with stdout_to_log(logger):
            return run_with_timeout(self.task.run, raw, self.task.timeout, self._name)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc_now_plus(delay: timedelta) -> pendulum.DateTime:
    """``pendulum.now("UTC") + delay``, through ``datetime``'s own addition (exact in UTC),
    which is about five times quicker than pendulum's."""
    return datetime.__add__(pendulum.now("UTC"), delay)


def _values(inputs: dict[str, Result]) -> dict[str, Any]:
    return {key: result.value for key, result in inputs.items()}


def _cached_input(state: State, edge: Edge, upstream: State) -> Result | None:
    """The cached input standing in for an unfinished upstream (a retry or resume whose
    upstream states are not available), else None."""
    cached = state.cached_inputs
    if cached and edge.key in cached and not upstream.is_finished():
        return cached[edge.key]
    return None


def _expanded(edge: Edge, upstream: State) -> list[State]:
    if isinstance(upstream, Mapped) and not edge.mapped and upstream.map_states:
        return upstream.map_states
    return [upstream]
