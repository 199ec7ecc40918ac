"""Between a flow run's passes: waiting for start times, and for paused tasks.

``run_flow`` (``engine/flow_run.py``) repeats FlowRunner passes until the flow state is
finished; these decide what happens between two passes:

* :func:`wait_for_start` - a run given a ``Scheduled`` state waits for its start time;
* :func:`wait_for_next_pass` - on a terminal, paused tasks (and paused children of a
  mapped task) are asked about; then the run sleeps until the earliest start time to
  come, or, when nothing waits for a time, says it cannot continue (:func:`cannot_continue`)
  and stops: a paused task never makes ``flow.run`` hang;
* :func:`snapshot` / :func:`waiting_for_time` - a pass that ended with
  the same states as the one before (by class, start time, run count and message), with
  nothing waiting for a time to come, would be followed by the same pass for ever: the run
  stops instead.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import pendulum

from flowcore.engine.child_states import ChildStates, signature
from flowcore.engine.state import Mapped, Paused, Resume, Scheduled, State

if TYPE_CHECKING:
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task

__all__ = [
    "cannot_continue",
    "snapshot",
    "wait_for_next_pass",
    "wait_for_start",
    "waiting_for_time",
]


def wait_for_start(flow: Flow, flow_state: State) -> None:
    """A run given a ``Scheduled`` state whose start time is to come waits for it (Prefect 1:
    ``flow.run(state=Scheduled(start_time=...))`` starts then)."""
    start = flow_state.start_time if isinstance(flow_state, Scheduled) else None
    if start is None:
        return
    delay = start.timestamp() - time.time()
    if delay > 0:
        flow.logger.info(f"Waiting for next scheduled run at {start}")
        time.sleep(delay)


def wait_for_next_pass(flow: Flow, task_states: dict[Task, State]) -> bool:
    """Resume paused tasks if a person can answer, sleep until the next due task; False
    when nothing can make progress without outside action."""
    paused = [t for t, s in task_states.items() if isinstance(s, Paused)]
    mapped = [t for t, s in task_states.items() if isinstance(s, Mapped)]
    if (paused or mapped) and sys.stdin is not None and sys.stdin.isatty():
        for task in paused:
            if _approved(f"{task}"):
                task_states[task] = Resume("Approval given to resume.")
        for task in mapped:  # (Prefect 1 asks about paused children too, for ever)
            parent = task_states[task]
            assert isinstance(parent, Mapped)
            if not any(isinstance(s, Paused) for s in parent.map_states):
                continue
            children = list(parent.map_states)
            for i, child in enumerate(children):
                if isinstance(child, Paused) and _approved(f"<Task: {task.name}[{i}]>"):
                    children[i] = Resume("Approval given to resume.")
            parent.map_states = children
    start_times = [s.start_time for s in _scheduled_states(task_states) if s.start_time is not None]
    if not start_times:
        cannot_continue(flow, task_states)
        return False
    next_start = min(start_times)
    delay = next_start.timestamp() - time.time()
    if delay > 0:
        flow.logger.info(f"Waiting for next available Task run at {next_start}")
        time.sleep(delay)
    return True


def snapshot(task_states: dict[Task, State]) -> dict[Task, tuple[Any, ...]]:
    """What a pass ended with, to tell whether the next one changed anything: for each task
    and, for a mapped task, each child, its state in brief (class, start time, run count
    and message: :func:`~flowcore.engine.child_states.signature`). States are compared by
    these values, not by identity: a task or child that could not run keeps its state,
    but one that ran in another process (a process pool, a Dask worker) comes back as a
    new object each pass. A map's children held compactly (a map in batches) are told by
    :meth:`ChildStates.summary <flowcore.engine.child_states.ChildStates.summary>`."""
    found: dict[Task, tuple[Any, ...]] = {}
    for task, state in task_states.items():
        if not isinstance(state, Mapped):
            found[task] = (signature(state),)
        elif isinstance(state.map_states, ChildStates):
            found[task] = (signature(state), state.map_states.summary())
        else:
            found[task] = (signature(state), *map(signature, state.map_states))
    return found


def waiting_for_time(task_states: dict[Task, State]) -> bool:
    """Whether a task (or child) waits for a start time still to come."""
    now = pendulum.now("UTC")
    return any(
        s.start_time is not None and s.start_time > now for s in _scheduled_states(task_states)
    )


def cannot_continue(flow: Flow, task_states: dict[Task, State]) -> None:
    """Say that the run stops unfinished, waiting on its paused tasks (or children)."""
    waiting = sorted(t.name for t, s in task_states.items() if isinstance(s, Paused))
    children = _paused_children(task_states)
    if not waiting and not children:  # (nothing paused: nothing a person can resume)
        unfinished = sorted(t.name for t, s in task_states.items() if not s.is_finished())
        flow.logger.warning(
            f"Flow run of {flow.name!r} cannot continue: another pass would change nothing; "
            f"unfinished task(s): {unfinished}"
        )
        return
    advice = (
        ""
        if not children
        else "; for paused children of a mapped task, give the task "
        "Mapped(map_states=[...]) with Resume() in their places and the other children's "
        "states in theirs"
    )
    flow.logger.warning(
        f"Flow run of {flow.name!r} cannot continue: task(s) {waiting + children} are "
        "Paused. Resume them with flow.run(task_states={task: Resume(), ...}) (pass the "
        f"other states too){advice}."
    )


def _approved(what: str) -> bool:
    """Ask on the terminal whether the paused ``what`` may resume."""
    answer = input(f"{what} is currently Paused; enter 'y' to resume:\n")
    return answer.strip().lower() == "y"


def _paused_children(task_states: dict[Task, State]) -> list[str]:
    """``name[i]`` of each paused child of a mapped task, by task name and index."""
    found: list[str] = []
    for task, state in sorted(task_states.items(), key=lambda item: item[0].name):
        if isinstance(state, Mapped):
            found += [
                f"{task.name}[{i}]" for i, s in enumerate(state.map_states) if isinstance(s, Paused)
            ]
    return found


def _scheduled_states(task_states: dict[Task, State]) -> list[Scheduled]:
    found: list[Scheduled] = []
    for state in task_states.values():
        if isinstance(state, Scheduled):
            found.append(state)
        elif isinstance(state, Mapped):
            found.extend(s for s in state.map_states if isinstance(s, Scheduled))
    return found
