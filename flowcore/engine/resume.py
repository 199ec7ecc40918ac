"""``flow.run(resume=RUN_ID | "last", rerun=[...])``: a recorded run, read back as the
``task_states`` a new run starts from.

Resume reuses the engine's own restart path (Prefect 1's ``flow.run(task_states=...)``),
not a second one: :func:`resumed_task_states` turns the run store's record of the old run
into states, and the passes treat them as they treat any given state.

==========================================  ===========================================
recorded (latest state of the task run)     state the new run starts from
==========================================  ===========================================
Success, Cached                             ``Success`` with the recorded result location
                                            (the value is read through the task's Result
                                            only where a task that runs needs it)
Skipped                                     ``Skipped``
Mapped (the parent)                         ``Mapped`` whose children are restored one
                                            by one by these rules, the others ``Pending``
Failed and its subclasses (Crashed,         nothing: the task runs again, from the
TimedOut, TriggerFailed), Running,          values of its upstream tasks
Pending, Retrying, Cancelled, no record
==========================================  ===========================================

``rerun`` tasks and everything downstream of them run again whatever their record says,
and so do Parameters (with the values given to the new run) and constants.
Everything is checked before a task runs: a value that a task which runs needs, but which
was never checkpointed, is a :class:`~flowcore.exceptions.ResumeError` naming the tasks
and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flowcore.engine.result import Result
from flowcore.engine.state import Mapped, Pending, Skipped, State, Success
from flowcore.exceptions import ResumeError

if TYPE_CHECKING:
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task
    from flowcore.runs.store import RunInfo, RunStore, TaskRunInfo

__all__ = ["resumed_task_states"]

_DONE = frozenset({"Success", "Cached"})


def resumed_task_states(
    flow: Flow, store: RunStore, resume: str, rerun: Iterable[Task] = ()
) -> tuple[RunInfo, dict[Task, State]]:
    """The run ``resume`` names (an id, a unique prefix of one, or ``"last"``) and the
    states a new run of ``flow`` starts from (see the module docstring)."""
    store.flush()  # this process's own runs are read back too
    run = _find_run(flow, store, resume)
    records: dict[str, dict[int, TaskRunInfo]] = {}
    for record in store.task_runs(run.run_id):
        records.setdefault(record.task_slug, {})[record.map_index] = record
    forced = _downstream_closure(flow, rerun)
    fresh = forced | set(flow.parameters())  # parameters take this run's values
    states: dict[Task, State] = {}
    for task in flow.sorted_tasks():
        found = records.get(flow.slugs[task])
        if task in fresh or task._is_constant or not found or -1 not in found:
            continue
        restored = _restored(task, flow, found[-1], found, run.run_id)
        if restored is not None:
            states[task] = restored
    _load_needed_values(flow, states, run)
    return run, states


def _find_run(flow: Flow, store: RunStore, resume: str) -> RunInfo:
    if resume == "last":
        newest = store.list_runs(flow=flow.name, limit=1)
        if newest and newest[0].state in ("Success", "Cached", "Skipped"):
            raise ResumeError(
                f"Cannot resume the last run of flow {flow.name!r}: its last run "
                f"({newest[0].run_id}) succeeded, so there is nothing to resume"
            )
        run = store.latest_resumable(flow.name)
        if run is None:
            raise ResumeError(
                f"Cannot resume the last run of flow {flow.name!r}: the run store "
                f"({store.display}) has no failed or unfinished run of it"
            )
        return run
    found = store.get_run(resume)
    if found is None:
        raise ResumeError(
            f"Cannot resume run {resume!r}: the run store ({store.display}) has no such run "
            "(`flowcore runs ls` lists the runs)"
        )
    if found.flow_name != flow.name:
        raise ResumeError(
            f"Cannot resume run {found.run_id} of flow {found.flow_name!r} with flow "
            f"{flow.name!r}: resume a run of the same flow"
        )
    return found


def _downstream_closure(flow: Flow, tasks: Iterable[Task]) -> set[Task]:
    given = list(tasks)
    unknown = [t for t in given if t not in flow.tasks]
    if unknown:
        raise ResumeError(f"rerun= names tasks that are not in flow {flow.name!r}: {unknown}")
    return set(flow.sorted_tasks(root_tasks=given)) if given else set()


def _restored(
    task: Task, flow: Flow, record: TaskRunInfo, records: dict[int, TaskRunInfo], run_id: str
) -> State | None:
    if record.state == "Mapped":
        count = record.n_map_states or 0
        children: list[State] = []
        for index in range(count):
            child = records.get(index)
            state = _restored(task, flow, child, {}, run_id) if child is not None else None
            children.append(
                state if state is not None else Pending("Resumed: this child runs again.")
            )
        parent = Mapped(f"Restored from run {run_id}.", map_states=children, n_map_states=count)
        parent.result = [child.result for child in children]
        return parent
    if record.state in _DONE:
        result = _reader(task, flow)
        result.location = record.result_location
        return Success(f"Restored from run {run_id}.", result=result)
    if record.state == "Skipped":
        return Skipped(f"Restored from run {run_id}: {record.message or 'skipped'}")
    return None


def _reader(task: Task, flow: Flow) -> Result:
    """A fresh copy of the Result the task's value was written with."""
    if task.result is not None:
        return task.result.copy()
    if flow.result is not None:
        return flow.result.copy()
    return Result()


def _load_needed_values(flow: Flow, states: dict[Task, State], run: RunInfo) -> None:
    """Read each restored value that a task which runs needs; collect the ones that
    cannot be read (never checkpointed) into one ResumeError."""
    missing: dict[Task, set[Task]] = {}
    for task in flow.sorted_tasks():
        mine = states.get(task)
        pending = _pending_indices(mine)
        if pending is not None and not pending:
            continue  # fully restored: needs nothing
        for edge in flow.edges_to(task):
            upstream = states.get(edge.upstream_task)
            if upstream is None:
                continue  # runs again: its value is made in this run
            if isinstance(upstream, Mapped):
                wanted = (
                    [upstream.map_states[i] for i in pending if i < len(upstream.map_states)]
                    if edge.mapped and pending is not None and isinstance(mine, Mapped)
                    else list(upstream.map_states)
                )
            else:
                wanted = [upstream]
            for needed in wanted:
                if not _load(needed):
                    missing.setdefault(edge.upstream_task, set()).add(task)
        if isinstance(mine, Mapped):
            mine.result = [child.result for child in mine.map_states]
    if missing:
        lines = "; ".join(
            f"{up.name!r} (needed by {', '.join(sorted(repr(t.name) for t in needers))})"
            for up, needers in sorted(missing.items(), key=lambda item: item[0].name)
        )
        raise ResumeError(
            f"Cannot resume run {run.run_id}: these tasks finished but their values were "
            f"never checkpointed, and tasks that run again need them: {lines}. Give those "
            "tasks (or the flow) a result, e.g. result=LocalResult(dir=...), and turn "
            "checkpointing on (checkpoint=True, and config flows.checkpointing or "
            "FLOWCORE__FLOWS__CHECKPOINTING=true; `flowcore run` turns it on), then run "
            "the flow again; or rerun them with rerun=[...]."
        )


def _pending_indices(state: State | None) -> list[int] | None:
    """For a restored Mapped parent, the children that run again; None for a task that
    runs as a whole (or is restored as a whole)."""
    if isinstance(state, Mapped):
        return [i for i, child in enumerate(state.map_states) if not child.is_finished()]
    return None if state is None else []


def _load(state: State) -> bool:
    """Read ``state``'s value if it is not in memory; False when it cannot be (no
    location was recorded)."""
    if isinstance(state, Skipped) or not state.is_successful():
        return True
    stored = state._result
    if stored.value is not None:
        return True
    if stored.location is None:
        return False
    state.load_result()
    return True
