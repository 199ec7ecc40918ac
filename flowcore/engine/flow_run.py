"""``run_flow``, behind ``Flow.run``: the passes (and scheduled runs) that make a flow run.

``run_flow`` validates the parameters, chooses the executor and the cache store, runs the
pre-flight checks (``core/_preflight.py``: a problem ends the run Failed before any task
runs), then repeats FlowRunner passes (``engine/flow_runner.py``) inside one executor
session until the flow state is finished, sleeping only until the earliest retry is due. A task that can
only go on once a person resumes it (Paused with no start time) never makes ``flow.run``
hang: on a terminal it asks, otherwise ``flow.run`` returns the Running state and says how
to resume (``engine/waiting.py``: what happens between passes). After the run it commits transactions and updates an in-memory cache store.

Every run gets an id (``context.flow_run_id``, ``state.flow_run_id``) and, unless
``runs.store`` is ``none``, is recorded in the run store through a
:class:`~flowcore.runs.recorder.RunRecorder` (TaskRunners report to it as they go; the
passes report what they collected from other processes). ``flow.run(resume=RUN_ID)``
starts from a recorded run's states (``engine/resume.py``), through the same
``task_states`` a Prefect 1 restart passes.

With a schedule, ``_run_on_schedule`` sleeps until each event and does one such run per
event, each with its own ``flow_run_id``, until the schedule runs out or Ctrl-C.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
import uuid
import warnings
from collections.abc import Iterable
from logging import INFO, WARNING
from typing import TYPE_CHECKING, Any

import pendulum

from flowcore import configuration
from flowcore.caching import MemoryCacheStore
from flowcore.caching.cache import collect_garbage
from flowcore.caching.choice import run_stores
from flowcore.core._preflight import run_problems, unwritten_targets_message
from flowcore.core.task_arguments import check_batch_size
from flowcore.engine.child_states import ChildStates
from flowcore.engine.flow_runner import INTERRUPTED, add_date_keys, import_object
from flowcore.engine.resume import constants_digest, resumed_task_states
from flowcore.engine.state import (
    Cached,
    Cancelled,
    Failed,
    Mapped,
    Pending,
    Scheduled,
    State,
)
from flowcore.engine.waiting import (
    cannot_continue,
    snapshot,
    wait_for_next_pass,
    wait_for_start,
    waiting_for_time,
)
from flowcore.exceptions import ResumeError
from flowcore.runs import open_store
from flowcore.runs.progress import RunProgress, wants_progress
from flowcore.runs.recorder import RunRecorder
from flowcore.runs.states import is_finished
from flowcore.runs.store import RunStoreError
from flowcore.transactions import finish_transactions, transaction_runs
from flowcore.utilities import context as _context
from flowcore.utilities.garbage import configured_threshold, fewer_collections
from flowcore.utilities.ids import uuid4_strings
from flowcore.utilities.logging import log

if TYPE_CHECKING:
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task
    from flowcore.runs.store import RunStore

__all__ = ["run_flow"]


def run_flow(
    flow: Flow,
    parameters: dict[str, Any] | None = None,
    run_on_schedule: bool | None = None,
    runner_cls: type | None = None,
    **kwargs: Any,
) -> State | None:
    """``Flow.run``: validate parameters, then run passes until the flow finishes."""
    if not kwargs.pop("_schedule_event", False) and "scheduled_start_time" in (
        kwargs.get("context") or {}
    ):  # as in Prefect 1, a run's scheduled start is its schedule's event or now
        kwargs["context"] = {
            k: v for k, v in kwargs["context"].items() if k != "scheduled_start_time"
        }
    scope = _context.current()
    if scope.get("flow") is flow:
        raise ValueError(
            "Don't call `flow.run()` from within a `Flow` context manager. "
            f"{flow!r}.run() was called inside its own `with Flow(...)` block; call run() after the block ends"
        )
    if scope.get("loading_flow"):
        warnings.warn(
            "Attempting to call `flow.run` during execution of flow file will lead to "
            "unexpected results. (flowcore ignores the call while the flow is being loaded.)",
            stacklevel=3,
        )
        return None
    if "__mp_main__" in sys.modules and _called_by_a_reimported_script():
        warnings.warn(
            f"flow.run() of {flow.name!r} at the top level of the script is skipped in this "
            "worker process: a pool of processes started with 'spawn' (as "
            "LocalDaskExecutor('processes') starts its own) runs the script again in each "
            'worker. Put the script\'s flow.run() under `if __name__ == "__main__":`.',
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    forwarded: dict[str, Any] = {  # flowcore's own arguments, for each run of a schedule
        k: kwargs[k] for k in ("return_tasks", "map_batch_size", "progress") if k in kwargs
    }
    return_tasks = _return_tasks(flow, kwargs.pop("return_tasks", None))
    map_batch_size = check_batch_size(
        kwargs.pop("map_batch_size", None), "flow.run(map_batch_size=...)"
    )
    resume, rerun = kwargs.pop("resume", None), list(kwargs.pop("rerun", None) or ())
    progress = wants_progress(kwargs.pop("progress", None))
    if rerun and resume is None:
        raise ValueError("flow.run(rerun=[...]) needs resume=RUN_ID (or resume='last')")
    run_parameters = _check_parameters(flow, dict(parameters or {}), kwargs, resume is None)
    flow._follow_direct_changes()
    if len(flow.tasks) != len(flow.slugs):  # a task taken out of flow.tasks directly
        flow._check_graph()  # (says so, and how to do it)
    try:
        flow.sorted_tasks()
    except ValueError as exc:  # a cycle: the run fails as Prefect 1's FlowRunner fails it
        if _raising(kwargs.get("context") or {}, scope):
            raise
        flow.logger.error(f"Unexpected error occured in FlowRunner: {exc!r}")
        return Failed(f"Unexpected error: {exc!r}", result=exc)
    if flow.schedule is not None and (
        run_on_schedule
        if run_on_schedule is not None
        else configuration.config.flows.run_on_schedule
    ):
        if resume is not None:
            raise ValueError(
                f"flow.run(resume=...) resumes one run, and {flow.name!r} has a schedule, "
                "which starts new runs: pass run_on_schedule=False to resume the run (with "
                "flowcore run, the flow's schedule is not followed when --resume is given)"
            )
        return _run_on_schedule(flow, run_parameters, runner_cls, {**kwargs, **forwarded})
    caches = scope.setdefault("caches", {})
    stores = _cache_stores(flow, kwargs.pop("cache_store", None), caches)
    transactions = transaction_runs(flow.tasks)
    kwargs["context"] = {**stores, "transactions": transactions, **(kwargs.get("context") or {})}
    if map_batch_size is not None:
        kwargs["context"]["map_batch_size"] = map_batch_size
    _warn_about_shared_cache_keys(flow)
    if runner_cls is None:
        runner_cls = import_object(configuration.config.engine.flow_runner.default_class)
    executor = kwargs.pop("executor", None) or flow.executor
    if executor is None:
        executor = import_object(configuration.config.engine.executor.default_class)()
    if not callable(getattr(executor, "start", None)):  # (Prefect 1 failed the run on it)
        raise TypeError(
            f"flow.run(executor=...) takes an executor, such as LocalExecutor() or "
            f"LocalDaskExecutor(); got {type(executor).__name__} {executor!r}"
        )
    _refuse_unknown_arguments(runner_cls, kwargs)
    recorder = _start_recording(flow, run_parameters, kwargs, resume, rerun, progress)
    run_id = kwargs["flow_run_id"]
    state: State | None = None
    try:
        failed = _preflight(flow, scope, kwargs, executor)
        if failed is not None:
            state = failed
            return failed
        if return_tasks is not None:
            kwargs["return_tasks"] = _kept_tasks(flow, return_tasks, recorder, transactions)
        with executor.start(), fewer_collections(configured_threshold()):
            state = _run_passes(flow, runner_cls, executor, run_parameters, kwargs, recorder)
    except KeyboardInterrupt:
        if recorder is not None:
            recorder.finished(Cancelled("Interrupted (KeyboardInterrupt) while running."))
            _cancel_unfinished_task_runs(recorder.store, run_id, flow)
            recorder = None
        raise
    finally:
        if state is not None:
            state.flow_run_id = run_id
        if recorder is not None:
            recorder.finished(
                state if state is not None else Failed("The flow run ended with an error.")
            )
    if isinstance(state.result, dict):
        finish_transactions(transactions, state.result, flow.logger)
        _absorb_cached_states(stores["cache_store"], state.result, run_id)
        collect_garbage(
            stores.get("policy_store"), configuration.config.get_path("caching.gc"), flow.logger
        )
        if return_tasks is not None:
            state.result = {t: s for t, s in state.result.items() if t in return_tasks}
        for task in flow.tasks if return_tasks is None else return_tasks:
            if task not in state.result:
                state.result[task] = Pending("Task not run.")
    else:
        flow.logger.error(f"Unexpected error occured in {runner_cls.__name__}: {state.result!r}")
    return state


def _cancel_unfinished_task_runs(store: RunStore | None, run_id: str, flow: Flow) -> None:
    """The run was interrupted: its task runs that had not finished (running, pending,
    retrying) end ``Cancelled`` with it, one transition each, as a crashed run's end
    ``Crashed``; otherwise they would show as running for ever. Read back from the store,
    which also holds what the interrupted pass recorded of the runs in other processes
    (``flow_runner._record_interrupted``: those that finished, and those submitted that had
    not, already ``Cancelled``)."""
    if store is None:
        return
    message = INTERRUPTED
    try:
        store.flush()
        rows = [
            (run_id, r.task_slug, r.map_index, "Cancelled", message, time.time(), r.run_count,
             None, None, None)
            for r in store.task_runs(run_id)
            if not is_finished(r.state)
        ]  # fmt: skip
        if rows:
            store.submit_task_states(rows)
            store.hand_over()
    except RunStoreError as exc:  # (the interrupt goes on; the store's trouble is told)
        log(flow.logger, WARNING, f"The interrupted run's unfinished task runs stay as they "
            f"were recorded: {exc}")  # fmt: skip


# the warnings about targets never written given so far: each once per process
_TARGETS_WARNED: set[str] = set()
_TARGETS_WARNED_AT_MOST = 256
_FIRST_RUN_ONLY = ("state", "task_states", "flow_run_id", "flow_run_name")


def _called_by_a_reimported_script() -> bool:
    """Whether ``flow.run()`` was called from the top level of the main script as a worker
    process started with "spawn" (or "forkserver") runs it again (under the name
    ``__mp_main__``) before it can take work. Prefect 1 started its process pool by fork on
    Linux, which does not, so its scripts often have no ``if __name__ == "__main__":``; the
    worker then skips the run (the parent is the one running it) and goes on to serve the
    pool, as it would have with fork."""
    import inspect

    frame = inspect.currentframe()
    while frame is not None and _is_flowcore(str(frame.f_globals.get("__name__", ""))):
        frame = frame.f_back
    return (
        frame is not None
        and frame.f_code.co_name == "<module>"
        and frame.f_globals.get("__name__") == "__mp_main__"
    )


def _is_flowcore(module: str) -> bool:
    return module == "flowcore" or module.startswith("flowcore.")


def _run_on_schedule(
    flow: Flow, parameters: dict[str, Any], runner_cls: type | None, kwargs: dict[str, Any]
) -> State:
    """``flow.run()`` with a schedule: sleep until each event, then do one full run (a
    ``run_flow`` call) with the event's parameter defaults over ``parameters``, a new
    ``flow_run_id`` and ``scheduled_start_time``. Returns the last run's state when the
    schedule runs out, or on Ctrl-C between runs. ``state``, ``task_states``,
    ``flow_run_id`` and ``flow_run_name`` apply to the first scheduled run only."""
    events = _next_events(flow)
    if not events:
        raise ValueError("Flow has no more scheduled runs.")
    names = {p.name for p in flow.parameters()}
    user_context = dict(kwargs.get("context") or {})
    run_kwargs = dict(kwargs)
    last: State | None = None
    while events:
        event = events.pop(0)
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
            flow,
            {**parameters, **known},
            run_on_schedule=False,
            runner_cls=runner_cls,
            _schedule_event=True,
            **{**run_kwargs, "context": context},
        )
        run_kwargs = {k: v for k, v in kwargs.items() if k not in _FIRST_RUN_ONLY}
        if events:  # another event at the same time (other parameter defaults): its turn
            continue
        try:
            events = _next_events(flow)
        except KeyboardInterrupt:
            return _stopped_on_schedule(flow, last, None)
    flow.logger.info(f"Flow {flow.name!r} has no more scheduled runs.")
    assert last is not None
    return last


def _next_events(flow: Flow) -> list[Any]:
    """The schedule's next event, and any others at the same time (clocks with other
    parameter defaults): each is a run of its own."""
    events = flow.schedule.next(_EVENTS_AT_ONCE, return_events=True)
    return [e for e in events if e.start_time == events[0].start_time] if events else []


_EVENTS_AT_ONCE = 10  # at most, looked at together


def _stopped_on_schedule(flow: Flow, last: State | None, pending_event: Any) -> State:
    flow.logger.info(f"Stopped running {flow.name!r} on its schedule (KeyboardInterrupt).")
    if last is not None:
        return last
    return Scheduled(
        "Stopped before the first scheduled run.",
        start_time=pending_event.start_time,
        result={task: Pending("Task not run.") for task in flow.tasks},
    )


def _return_tasks(flow: Flow, given: Any) -> set[Task] | None:
    """``flow.run(return_tasks=...)`` as a set of the flow's tasks (None: all tasks)."""
    if given is None:
        return None
    try:
        found = set(given)
    except TypeError:
        raise TypeError(
            f"flow.run(return_tasks=...) takes an iterable of tasks of the flow; got {given!r}"
        ) from None
    missing = found - flow.tasks
    if missing:
        raise ValueError(
            f"Some tasks in return_tasks were not found in the flow: {missing}; pass tasks "
            f"of {flow.name!r} (the objects its `with Flow(...)` block made)"
        )
    return found


def _kept_tasks(
    flow: Flow, return_tasks: set[Task], recorder: RunRecorder | None, transactions: Any
) -> set[Task]:
    """The tasks whose states the passes keep to their end: ``return_tasks`` (the others
    are released as the run goes, and the run's final result holds only them), unless
    something needs every state at a pass end: the run store recording them, a task that
    may run again in a later pass (retries, a manual trigger) or a transaction group."""
    from flowcore.triggers import manual_only

    if (
        (recorder is not None and recorder.store is not None)
        or transactions
        or any(t.max_retries or t.trigger is manual_only for t in flow.tasks)
    ):
        return set(flow.tasks)
    return return_tasks


def _check_parameters(
    flow: Flow, given: dict[str, Any], kwargs: dict[str, Any], required: bool = True
) -> dict[str, Any]:
    """The parameters given (also as keyword arguments of ``flow.run``), once each names
    a Parameter of ``flow`` and (with ``required``) every required one is given; a resumed
    run is checked for required ones once the recorded values are added."""
    names = {p.name: p for p in flow.parameters()}
    for key in [k for k in kwargs if k in names]:
        given[key] = kwargs.pop(key)
    unknown = [name for name in given if name not in names]  # in the order given, as Prefect 1
    if unknown:
        raise ValueError(
            f"Flow.run received the following unexpected parameters: {', '.join(unknown)}"
        )
    if required:
        _check_required(flow, given)
    return given


def _check_required(flow: Flow, given: dict[str, Any]) -> None:
    names = {p.name: p for p in flow.parameters()}
    missing = sorted(n for n, p in names.items() if p.required and n not in given)
    if missing:
        raise ValueError(
            f"Flow.run did not receive the following required parameters: {', '.join(missing)}"
        )


def _preflight(
    flow: Flow, scope: dict[str, Any], kwargs: dict[str, Any], executor: Any
) -> State | None:
    """The pre-flight checks (``core/_preflight.py``), before the first pass: a Failed
    flow state naming every problem, with the tasks concerned Failed and no task run (under
    ``raise_on_exception`` the first problem is raised); None when the run can start."""
    run_context, task_contexts = kwargs["context"], kwargs.get("task_contexts")
    problems = run_problems(flow, scope, run_context, task_contexts, executor)
    if not problems:
        message = unwritten_targets_message(flow, scope, run_context, task_contexts)
        if message is not None and message not in _TARGETS_WARNED:
            if len(_TARGETS_WARNED) >= _TARGETS_WARNED_AT_MOST:  # (a long-lived process)
                _TARGETS_WARNED.clear()
            _TARGETS_WARNED.add(message)  # (not again on each run of a schedule or a loop)
            flow.logger.warning(message)
        return None
    if _raising(run_context, scope):
        raise problems[0].error
    task_states: dict[Task, State] = dict(kwargs.get("task_states") or {})
    for problem in problems:
        flow.logger.error(str(problem.error))
    for problem in reversed(problems):  # a task's first problem names its state
        task_states[problem.task] = Failed(str(problem.error), result=problem.error)
    for task in flow.tasks:
        task_states.setdefault(task, Pending("Task not run."))
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    message = f"Pre-flight check failed, no task ran: {problems[0].error}{more}"
    return Failed(message, result=task_states)


def _raising(run_context: dict[str, Any], scope: dict[str, Any]) -> bool:
    """Whether the run raises its errors (``raise_on_exception``, in the run's context
    or the surrounding one) rather than ending Failed."""
    return bool(run_context.get("raise_on_exception") or scope.get("raise_on_exception"))


def _start_recording(
    flow: Flow,
    parameters: dict[str, Any],
    kwargs: dict[str, Any],
    resume: Any,
    rerun: list[Task],
    progress: bool,
) -> RunRecorder | None:
    """Give the run its id (``kwargs["flow_run_id"]``), restore what ``resume`` names
    (``kwargs["task_states"]``, and the resumed run's parameters not given, added to
    ``parameters``), start its recorder (the run store's and the progress
    display's; None when neither is on), which goes into the run context as
    ``run_recorder``, and log the run's first line (its id; then what a resume restored,
    which the store keeps too)."""
    store = open_store()
    resumed_from = resuming = None
    warnings: list[str] = []
    if resume is not None:
        if store is None:
            raise ResumeError(
                "flow.run(resume=...) needs the run store; it is off (runs.store = 'none')"
            )
        resumed = resumed_task_states(flow, store, str(resume), rerun, parameters)
        parameters.update(resumed.parameters)
        _check_required(flow, parameters)
        resumed_from, warnings = resumed.run.run_id, resumed.warnings
        kwargs["task_states"] = {**resumed.states, **(kwargs.get("task_states") or {})}
        resuming = (
            f"Resuming run {resumed_from} of {flow.name!r}: {len(resumed.states)} of "
            f"{len(flow.tasks)} tasks restored, the others run again"
        )
    run_id = kwargs["flow_run_id"] = kwargs.get("flow_run_id") or str(uuid.uuid4())
    recorder = None
    if store is not None or progress:
        recorder = RunRecorder(
            store, run_id, RunProgress(run_structure(flow)) if progress else None
        )
        defaults = {p.name: p.default for p in flow.parameters() if not p.required}
        recorder.started(
            flow.name,
            {**defaults, **parameters},
            run_structure(flow),
            kwargs["context"].get("flow_source") or flow_source(flow),
            resumed_from,
        )
    kwargs["context"]["run_recorder"] = recorder
    where = (
        "not recorded: runs.store is 'none'" if store is None else f"recorded in {store.display}"
    )
    # (not copied to the store, as the engine's lines per task run are not: the run's row
    # says it; measured, copying it and each pass's "Beginning Flow run" line cost a run of
    # one task 7-12 us)
    log(flow.logger, INFO, f"Flow run {run_id} of {flow.name!r} ({where})")
    if resuming is not None:  # (the store keeps this one, logged in the run's scope)
        with _context.context(flow_run_id=run_id):
            log(flow.logger, INFO, resuming, sinks=True)
            for warning in warnings:
                log(flow.logger, WARNING, warning, sinks=True)
    return recorder


def _run_passes(
    flow: Flow,
    runner_cls: type,
    executor: Any,
    parameters: dict[str, Any],
    kwargs: dict[str, Any],
    recorder: RunRecorder | None = None,
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
    if "scheduled_start_time" not in run_context:
        run_context["scheduled_start_time"] = pendulum.now("UTC")
    add_date_keys(run_context, flow.logger)  # once per run, not once per pass
    user_task_contexts = kwargs.pop("task_contexts", None) or {}
    return_tasks = kwargs.pop("return_tasks", None) or flow.tasks
    wait_for_start(flow, flow_state)
    previous: dict[Task, tuple[Any, ...]] | None = None
    while True:
        slugs = flow.slugs
        task_contexts = {
            task: {
                "task_run_id": run_id,
                "task_id": slugs[task],
                **user_task_contexts.get(task, {}),
            }
            for task, run_id in zip(slugs, uuid4_strings(len(slugs)))
        }
        runner = runner_cls(flow=flow)
        flow_state = runner.run(
            parameters=parameters,
            return_tasks=return_tasks,
            state=flow_state,
            task_states=flow_state.result,
            context=run_context,
            task_contexts=task_contexts,
            executor=executor,
            **kwargs,
        )
        if recorder is not None and isinstance(flow_state.result, dict):
            _record_task_states(recorder, flow, flow_state.result)
        if flow_state.is_finished() or not isinstance(flow_state.result, dict):
            return flow_state
        states = snapshot(flow_state.result)
        if states == previous and not waiting_for_time(flow_state.result):
            cannot_continue(flow, flow_state.result)  # (another pass now would change nothing)
            return flow_state
        previous = states
        if not wait_for_next_pass(flow, flow_state.result):
            return flow_state


# what run_flow's passes take out of flow.run's keywords before the runner's run sees them
_TAKEN_BY_THE_PASSES = frozenset(
    ("state", "task_states", "context", "flow_run_id", "flow_run_name", "task_contexts")
)


def _refuse_unknown_arguments(runner_cls: Any, kwargs: dict[str, Any]) -> None:
    """A keyword of ``flow.run`` that neither flowcore nor the runner's ``run`` takes is
    refused before the run starts, with the TypeError Prefect 1's ``FlowRunner.run``
    raises (it would otherwise be raised by the first pass, after the run was recorded)."""
    taken = _run_keywords(runner_cls)
    if taken is None:
        return
    for name in kwargs:
        if name not in taken:
            raise TypeError(
                f"{runner_cls.__name__}.run() got an unexpected keyword argument {name!r}"
            )


@functools.lru_cache(maxsize=16)
def _run_keywords(runner_cls: Any) -> frozenset[str] | None:
    """The keywords a run with ``runner_cls`` takes (None: any, its ``run`` takes
    ``**kwargs``), found once per class rather than on every ``flow.run``."""
    parameters = inspect.signature(runner_cls.run).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return frozenset(parameters) | _TAKEN_BY_THE_PASSES


def _record_task_states(recorder: RunRecorder, flow: Flow, task_states: dict[Task, State]) -> None:
    """Tell the recorder the states a pass ended with (it skips those already reported
    by TaskRunners in this process)."""
    for slug, state in recorder.collected_pass(flow.slugs, task_states):
        if isinstance(state.map_states, ChildStates):
            recorder.collected_unkept(slug, state.map_states.unreported())
        else:
            children = state.map_states
            if not all(issubclass(cls, State) for cls in set(map(type, children))):
                children = [c for c in children if isinstance(c, State)]
            recorder.collected_children(slug, children)


def run_structure(flow: Flow) -> dict[str, Any]:
    """The flow's graph as the run store keeps it (memoised until the graph changes)."""
    structure: dict[str, Any] | None = flow._cache.get("flowcore.run_structure")
    if structure is None:
        slugs = flow.slugs
        mapped = {e.downstream_task for e in flow.edges if e.mapped}
        structure = {
            "tasks": [
                {
                    "slug": slugs[t],
                    "name": t.name,
                    "mapped": t in mapped,
                    "constants": constants_digest(_constant_inputs(flow, t)),
                    **({"constant": True} if t._is_constant else {}),  # (a literal's task)
                }
                for t in flow.sorted_tasks()
            ],
            "edges": [
                {
                    "upstream": slugs[e.upstream_task],
                    "downstream": slugs[e.downstream_task],
                    "key": e.key,
                    "mapped": e.mapped,
                }
                for e in sorted(
                    flow.edges,
                    key=lambda e: (slugs[e.upstream_task], slugs[e.downstream_task], e.key or ""),
                )
            ],
        }
        flow._cache["flowcore.run_structure"] = structure
    return structure


def _constant_inputs(flow: Flow, task: Task) -> dict[str, Any]:
    """The task's constant inputs: ``flow.constants[task]``, and the values of the
    constant tasks it takes (a literal mapped over or flattened stays a task of its own,
    ``Constant``), so that a changed literal changes the task's digest too."""
    values = dict(flow.constants.get(task, {}))
    unnamed = 0
    for edge in flow.edges_to(task):
        upstream = edge.upstream_task
        if upstream._is_constant:
            unnamed += edge.key is None
            values[edge.key or f"(upstream_tasks {unnamed})"] = upstream.value  # type: ignore[attr-defined]
    return values


def flow_source(flow: Flow) -> str | None:
    """``"/abs/file.py:variable"`` that loads ``flow`` again, found among the globals of
    the script being run (``__main__``); None otherwise. (``flowcore run`` gives it in the
    run's context as ``flow_source``.)"""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:
        return None
    names = vars(main)
    known = flow._cache.get("flowcore.source_name")  # (a script's globals, scanned once)
    if known is not None and names.get(known) is flow:
        return f"{os.path.abspath(path)}:{known}"
    for name, value in names.items():
        if value is flow:
            flow._cache["flowcore.source_name"] = name
            return f"{os.path.abspath(path)}:{name}"
    return None


def _cache_stores(flow: Flow, given: Any, caches: dict[str, list[Cached]]) -> dict[str, Any]:
    """The run's stores (:func:`flowcore.caching.choice.run_stores`)."""
    return run_stores(given, getattr(flow, "cache_store", None), configuration.config, caches)


def _absorb_cached_states(
    store: Any, task_states: dict[Task, State], run_id: str | None = None
) -> None:
    """Prefect 1's after-run update of an in-memory store: Cached states made in other
    processes (Dask workers) reach ``context.caches`` only here; states made in this
    process are already there (``put`` keeps one entry per state)."""
    if not isinstance(store, MemoryCacheStore):
        return
    for task, state in task_states.items():
        if isinstance(state, Mapped):
            children: Iterable[State] = state.map_states
            if isinstance(children, ChildStates):  # (without a State for every child)
                children = children.of_type(Cached)
            found = [s for s in children if isinstance(s, Cached) and not store.holds(s)]
        elif isinstance(state, Cached) and not store.holds(state):
            found = [state]
        else:
            continue  # (the common case: nothing cached, or put by this process already)
        plan = task.cache_plan
        if not found or plan is None or plan.key is None:
            continue
        if getattr(task, "_transaction", None) is not None:
            continue
        for cached in found:
            if cached.cached_result_expiration is not None:
                store.absorb(plan.key, cached, run_id)


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
