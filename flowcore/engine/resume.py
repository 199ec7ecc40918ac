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
                                            only where a task that runs needs it), or
                                            with None when the value checkpointed was None
                                            (``runs.events.NONE_CHECKPOINTED``)
Skipped                                     ``Skipped``
Mapped (the parent)                         ``Mapped`` whose children are restored one
                                            by one by these rules, the others ``Pending``
Failed and its subclasses (Crashed,         nothing: the task runs again, from the
TimedOut, TriggerFailed), Running,          values of its upstream tasks
Pending, Retrying, Cancelled, no record
==========================================  ===========================================

``rerun`` tasks and everything downstream of them run again whatever their record says,
and so do the tasks whose inputs changed since (:func:`_changed_tasks`: their edges, their
constant inputs, or the value of a Parameter they take). Parameters and constants always
run: a resumed run's parameters are the recorded run's (read back from their ``repr``),
overridden by those the new run is given (:func:`resumed_parameters`).
Everything is checked before a task runs: a value that a task which runs needs, but which
was never checkpointed, is a :class:`~flowcore.exceptions.ResumeError` naming the tasks
and the fix.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from flowcore.engine.result import Result, checkpointed_none, is_checkpointed_none
from flowcore.engine.state import Mapped, Pending, Skipped, State, Success
from flowcore.exceptions import ResumeError, ValueNotFoundError
from flowcore.runs.events import NONE_CHECKPOINTED
from flowcore.runs.states import is_resumable

if TYPE_CHECKING:
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task
    from flowcore.runs.store import RunInfo, RunStore, TaskRunInfo

__all__ = [
    "Resumed",
    "constants_digest",
    "find_resumable",
    "resumed_parameters",
    "resumed_task_states",
]

_DONE = frozenset({"Success", "Cached"})
_UNREADABLE = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)  # literal_eval's


class Resumed(NamedTuple):
    """What a new run of a flow starts from when it resumes ``run``: ``states``, the
    restored task states (the module docstring's table); ``parameters``, the recorded
    run's, overridden by those given; ``warnings``, lines for the new run's log (recorded
    parameters dropped, tasks that changed since)."""

    run: RunInfo
    states: dict[Task, State]
    parameters: dict[str, Any]
    warnings: list[str]


def resumed_task_states(
    flow: Flow,
    store: RunStore,
    resume: str,
    rerun: Iterable[Task] = (),
    parameters: dict[str, Any] | None = None,
) -> Resumed:
    """Resume the run ``resume`` names (an id, a unique prefix of one, or ``"last"``)
    with ``flow``, given ``parameters`` (which override the recorded run's): the states
    the new run starts from (see the module docstring), its parameters, and warnings."""
    store.flush()  # this process's own runs are read back too
    run = _find_run(flow, store, resume)
    values, warnings = resumed_parameters(flow, run, parameters or {})
    records: dict[str, dict[int, TaskRunInfo]] = {}
    for record in store.task_runs(run.run_id):
        records.setdefault(record.task_slug, {})[record.map_index] = record
    unknown = _unknown_recorded_tasks(flow, run, records)
    if unknown is not None:
        warnings.append(unknown)
    changed = _changed_tasks(flow, run)
    for task, why in _parameter_changes(flow, run, parameters or {}).items():
        changed[task] = f"{changed[task]}; {why}" if task in changed else why
    forced = _downstream_closure(flow, [*rerun, *changed])
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
    note = _changed_note(flow, changed)
    return Resumed(run, states, values, warnings if note is None else [*warnings, note])


def resumed_parameters(
    flow: Flow, run: RunInfo, given: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The parameters a resumed run of ``flow`` runs with: ``run``'s recorded values (read
    back from their ``repr``) of the flow's Parameters, overridden by those ``given``; and
    a warning naming the recorded parameters the flow no longer has (they are dropped).

    Raises:
        ResumeError: a recorded value needed (not given again) cannot be read back.
    """
    names = {p.name for p in flow.parameters()}
    values: dict[str, Any] = {}
    unreadable = []
    for name, text in run.parameters.items():
        if name not in names or name in given:
            continue
        try:
            values[name] = ast.literal_eval(text)
        except _UNREADABLE:
            unreadable.append(name)
    if unreadable:
        raise ResumeError(
            f"Cannot resume run {run.run_id}: its parameter(s) "
            + ", ".join(f"{n!r} (recorded as {run.parameters[n]})" for n in unreadable)
            + " cannot be read back from their repr: give them again, "
            + f"flow.run(resume=..., parameters={{{', '.join(f'{n!r}: ...' for n in unreadable)}}})"
            + f" (flowcore: {' '.join(f'--param {n}=VALUE' for n in unreadable)})"
        )
    dropped = sorted(set(run.parameters) - names)
    warnings = []
    if dropped:
        warnings.append(
            f"Flow {flow.name!r} no longer has the parameter(s) {', '.join(map(repr, dropped))} "
            f"of the resumed run {run.run_id}: they are dropped"
        )
    return {**values, **given}, warnings


def _parameter_changes(flow: Flow, run: RunInfo, given: dict[str, Any]) -> dict[Task, str]:
    """The tasks that take a Parameter whose value given to the new run is not the one
    the resumed run recorded, with why. Values are compared by their ``repr`` (as the run
    recorded them): a recorded ``repr`` that was shortened, or none, counts as changed."""
    changed: dict[Task, list[str]] = {}
    for parameter in sorted(flow.parameters(), key=lambda p: p.name):
        name = parameter.name
        recorded = run.parameters.get(name)
        if recorded is not None and (name not in given or _same_value(recorded, given[name])):
            continue
        was = "not recorded" if recorded is None else _brief(recorded)
        now = _brief(_repr(given[name])) if name in given else "its default"
        why = f"parameter {name!r} differs (was {was}, now {now})"
        takers = {edge.downstream_task for edge in flow.edges_from(parameter)}
        for task in takers:
            changed.setdefault(task, []).append(why)
        if not takers:
            flow.logger.warning(
                f"Resuming run {run.run_id}: {why}, and no task takes it as an input, so "
                "nothing is run again for it: tasks that read it from "
                "flowcore.context.parameters are restored with the values the old one gave. "
                "Pass those tasks in rerun=[...] to run them with the new value."
            )
    return {task: "; ".join(reasons) for task, reasons in changed.items()}


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # (a user's __repr__ that fails)
        return f"<unrepresentable {type(value).__name__}: {exc!r}>"


def _brief(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _same_value(recorded: str, value: Any) -> bool:
    """Whether ``value`` is the one whose ``repr`` was recorded (a ``repr`` that cannot be
    read back, such as a shortened one, is not known to be the same)."""
    if _repr(value) != recorded:
        return False
    try:
        ast.literal_eval(recorded)
    except _UNREADABLE:
        return False
    return True


def _find_run(flow: Flow, store: RunStore, resume: str) -> RunInfo:
    found = find_resumable(store, resume, flow.name)
    if found.flow_name != flow.name:
        raise ResumeError(
            f"Cannot resume run {found.run_id} of flow {found.flow_name!r} with flow "
            f"{flow.name!r}: resume a run of the same flow"
        )
    return found


def find_resumable(store: RunStore, resume: str, flow_name: str | None = None) -> RunInfo:
    """The run ``resume`` names: an id, a unique prefix of one, or ``"last"``, the newest
    run (of ``flow_name``, when given), which must have failed, been cancelled or not have
    finished (an older one is never taken in its place). A run still driven by a live
    process is not resumable: its tasks would run twice. ``flowcore resume`` and
    ``flow.run(resume=...)`` both find runs here.

    Raises:
        ResumeError: no such run, nothing to resume in it, or it is still running.
    """
    of = "" if flow_name is None else f" of flow {flow_name!r}"
    if resume == "last":
        newest = store.list_runs(flow=flow_name, limit=1)
        if not newest:
            raise ResumeError(
                f"Cannot resume the last run{of}: the run store ({store.display}) has no "
                "run of it (`flowcore runs ls` lists the runs)"
            )
        found = newest[0]
        if not is_resumable(found.state):
            raise ResumeError(
                f"Cannot resume the last run{of}: its last run ({found.run_id} of "
                f"{found.flow_name!r}) ended {found.state}, so there is nothing to resume "
                "(`flowcore runs ls --state Failed` lists the failed runs; resume one by its id)"
            )
    else:
        maybe = store.get_run(resume)
        if maybe is None:
            from flowcore.runs.queries import MIN_PREFIX

            short = (
                f"; a run id prefix needs at least {MIN_PREFIX} characters"
                if len(resume) < MIN_PREFIX
                else ""
            )
            raise ResumeError(
                f"Cannot resume run {resume!r}: the run store ({store.display}) has no such "
                f"run{short} (`flowcore runs ls` lists the runs)"
            )
        found = maybe
    if store.still_running(found):
        raise ResumeError(
            f"Cannot resume run {found.run_id} of {found.flow_name!r}: it is still running "
            f"in pid {found.pid} on {found.host or 'an unknown host'}; wait for it or stop it"
        )
    return found


def constants_digest(values: dict[str, Any]) -> str | None:
    """A digest of a task's constant inputs (``flow.constants[task]``), recorded with the
    run's structure: None when it has none, ``"unhashable"`` when one of them has no
    stable digest. Plain values (numbers, text, bytes, None and containers of them) are
    digested by their ``repr``, so that a recorded run loads no hashing (and with it no
    Dask) for them; others by :func:`~flowcore.utilities.hashing.hash_value`.

    >>> constants_digest({}) is None, constants_digest({"x": 1}) == constants_digest({"x": 1})
    (True, True)
    >>> constants_digest({"x": 1}) == constants_digest({"x": 2})
    False
    """
    if not values:
        return None
    plain = _plain_text(values)
    if plain is not None:
        return "repr:" + hashlib.sha256(plain.encode()).hexdigest()[:32]
    from flowcore.utilities.hashing import UnhashableValue, hash_value

    try:
        return "token:" + hash_value(values)
    except UnhashableValue:
        return "unhashable"


_PLAIN = (type(None), bool, int, float, complex, str, bytes)


def _plain_text(value: Any) -> str | None:
    """A text that is equal exactly when the (plain) values are; None for other values."""
    kind = type(value)
    if kind in _PLAIN:
        return f"{kind.__name__}:{value!r}"
    if kind in (list, tuple) and value:
        items = set(map(type, value))
        if len(items) == 1 and (item := items.pop()) in _PLAIN:  # (a big list, quickly)
            name = item.__name__
            return f"{kind.__name__}({name}:" + f",{name}:".join(map(repr, value)) + ")"
    if kind in (list, tuple, set, frozenset):
        parts = [_plain_text(item) for item in value]
        if any(part is None for part in parts):
            return None
        texts = sorted(parts) if kind in (set, frozenset) else parts  # type: ignore[type-var]
        return f"{kind.__name__}({','.join(texts)})"  # type: ignore[arg-type]
    if kind is dict:
        pairs = [(_plain_text(k), _plain_text(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "dict(" + ",".join(sorted(f"{k}={v}" for k, v in pairs)) + ")"
    return None


def _unknown_recorded_tasks(flow: Flow, run: RunInfo, records: dict[str, Any]) -> str | None:
    """A warning naming the tasks ``run`` recorded that ``flow`` has no task for (their
    records are not used: the flow was edited since, or is another flow of that name);
    None when it knows them all. Literals' own tasks are left out: an edited literal is
    reported as a changed input of the tasks it feeds."""
    known = set(flow.slugs.values())
    constants = {t["slug"] for t in run.structure.get("tasks", []) if t.get("constant")}
    unknown = sorted(slug for slug in records if slug not in known and slug not in constants)
    if not unknown:
        return None
    return (
        f"{len(unknown)} task(s) recorded in run {run.run_id} are not in flow {flow.name!r}, "
        f"so their records are not used: {', '.join(unknown)} (was the run made by another "
        "flow of this name, or the flow edited since?)"
    )


def _changed_tasks(flow: Flow, run: RunInfo) -> dict[Task, str]:
    """The tasks of ``flow`` whose inputs are not what they were in ``run``, with why: its
    upstream edges (upstream task slug, key, mapped) differ from the recorded ones, or its
    constant inputs do. Slugs number tasks of one name in the order they were created, so
    a reordered or edited flow file may give a slug to another call than it had; such a
    task's record is not its own. (A run recorded before constants were kept is compared
    by its edges only.)"""
    from flowcore.engine.flow_run import run_structure

    recorded = run.structure
    if not recorded.get("tasks"):
        return {}
    was_tasks = {t["slug"]: t for t in recorded["tasks"]}
    current = run_structure(flow)
    was_edges, now_edges = _edges_by_task(recorded), _edges_by_task(current)
    changed: dict[Task, str] = {}
    by_slug = {slug: task for task, slug in flow.slugs.items()}
    for entry in current["tasks"]:
        slug, task = entry["slug"], by_slug[entry["slug"]]
        was = was_tasks.get(slug)
        if was is None:
            continue  # a new task: it has no record, and runs
        reasons = []
        if was_edges.get(slug, set()) != now_edges.get(slug, set()):
            reasons.append(
                f"inputs from upstream tasks were {_edge_text(was_edges.get(slug))}, "
                f"now {_edge_text(now_edges.get(slug))}"
            )
        if "constants" in was and was["constants"] != entry["constants"]:
            reasons.append(
                "constant inputs cannot be compared (register a hasher for their type)"
                if entry["constants"] == "unhashable"
                else "constant inputs differ"
            )
        if reasons:
            changed[task] = "; ".join(reasons)
    return changed


_EdgeKey = tuple[str, str, bool]


def _edges_by_task(structure: dict[str, Any]) -> dict[str, set[_EdgeKey]]:
    edges: dict[str, set[_EdgeKey]] = {}
    for edge in structure.get("edges", []):
        key = (edge.get("key") or "", edge["upstream"], bool(edge.get("mapped")))
        edges.setdefault(edge["downstream"], set()).add(key)
    return edges


def _edge_text(edges: set[_EdgeKey] | None) -> str:
    if not edges:
        return "none"
    return ", ".join(
        f"{key or '(no key)'}={'mapped ' if mapped else ''}{upstream}"
        for key, upstream, mapped in sorted(edges)
    )


def _changed_note(flow: Flow, changed: dict[Task, str]) -> str | None:
    if not changed:
        return None
    slugs = flow.slugs
    listing = "; ".join(
        f"{slugs[task]} ({why})" for task, why in sorted(changed.items(), key=lambda i: slugs[i[0]])
    )
    return (
        f"{len(changed)} task(s) changed since the resumed run, so they and everything "
        f"downstream of them run again instead of being restored: {listing}"
    )


def _downstream_closure(flow: Flow, tasks: Iterable[Task]) -> set[Task]:
    given = list(tasks)
    unknown = [t for t in given if t not in flow.tasks]
    if unknown:
        raise ResumeError(
            f"rerun= names tasks that are not in flow {flow.name!r}: {unknown}; pass the tasks "
            "the calls in the flow returned (the flow's copies, `b = my_task(...)` inside "
            "`with Flow(...)`), not the @task functions, or find them with "
            + ", ".join(sorted({f"flow.get_tasks(name={t.name!r})" for t in unknown}))
        )
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
        if record.result_location == NONE_CHECKPOINTED:
            result = checkpointed_none(result)  # (recorded so again if this run is resumed)
        else:
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
    cannot be read (never checkpointed, or no longer where they were written) into one
    ResumeError (:func:`_unreadable_values`). A task whose value is lost would have to run
    again, and then needs its own inputs: those are checked too, so that the error names
    every task to rerun at once."""
    never, lost = _unreadable(flow, states, run)
    trial, rerun = states, set(lost)
    while rerun:
        trial = {t: s for t, s in trial.items() if t not in rerun}
        more_never, more_lost = _unreadable(flow, trial, run)
        for up, needers in more_never.items():
            never.setdefault(up, set()).update(needers)
        rerun = set(more_lost) - set(lost)
        for up, where in more_lost.items():
            lost.setdefault(up, set()).update(where)
    if never or lost:
        raise _unreadable_values(run, never, lost)


def _unreadable(
    flow: Flow, states: dict[Task, State], run: RunInfo
) -> tuple[dict[Task, set[Task]], dict[Task, set[str]]]:
    """Read the restored values (in ``states``) that the tasks which run need: those never
    checkpointed (upstream task: the tasks that need it), and those no longer where they
    were written (upstream task: its locations)."""
    never: dict[Task, set[Task]] = {}
    lost: dict[Task, set[str]] = {}
    for task in flow.sorted_tasks():
        mine = states.get(task)
        pending = _pending_indices(mine)
        if pending is not None and not pending:
            continue  # fully restored: needs nothing
        for edge in flow.edges_to(task):
            upstream = states.get(edge.upstream_task)
            if upstream is None:
                continue  # runs again: its value is made in this run
            if edge.key is None and not edge.mapped and not edge.flattened:
                continue  # upstream_tasks=[...]: the trigger needs its state, not its value
            if isinstance(upstream, Mapped):
                wanted = (
                    [upstream.map_states[i] for i in pending if i < len(upstream.map_states)]
                    if edge.mapped and pending is not None and isinstance(mine, Mapped)
                    else list(upstream.map_states)
                )
            else:
                wanted = [upstream]
            for needed in wanted:
                if _never_written(needed):
                    never.setdefault(edge.upstream_task, set()).add(task)
                elif (gone := _load(needed, edge.upstream_task, run)) is not None:
                    lost.setdefault(edge.upstream_task, set()).add(gone)
        if isinstance(mine, Mapped):
            mine.result = [child.result for child in mine.map_states]
    return never, lost


def _unreadable_values(
    run: RunInfo, never: dict[Task, set[Task]], lost: dict[Task, set[str]]
) -> ResumeError:
    """The error for restored values that tasks which run need but that cannot be read:
    ``never`` (upstream task: the tasks that need it) were not checkpointed, ``lost``
    (upstream task: its locations) were, but nothing is stored there any more."""
    parts = []
    if never:
        lines = "; ".join(
            f"{up.name!r} (needed by {', '.join(sorted(repr(t.name) for t in needers))})"
            for up, needers in sorted(never.items(), key=lambda item: item[0].name)
        )
        parts.append(
            f"these tasks finished but their values were never checkpointed, and tasks "
            f"that run again need them: {lines}. Give those tasks (or the flow) a result, "
            "e.g. result=LocalResult(dir=...), and turn checkpointing on (checkpoint=True, "
            "and config flows.checkpointing or FLOWCORE__FLOWS__CHECKPOINTING=true; "
            "`flowcore run` turns it on), then run the flow again; or rerun them with "
            "rerun=[...]."
        )
    if lost:
        ordered = sorted(lost.items(), key=lambda item: item[0].name)
        lines = "; ".join(f"{up.name!r} ({_listed(sorted(where))})" for up, where in ordered)
        found = ", ".join(f"*flow.get_tasks(name={up.name!r})" for up, _ in ordered)
        options = " ".join(f"--rerun {up.name}" for up, _ in ordered)
        parts.append(
            "nothing is stored any more where these tasks' values were checkpointed, and "
            f"tasks that run again need them: {lines}. Run them again, with "
            f"rerun=[{found}] (flowcore run: {options}), or put the files back."
        )
    return ResumeError(f"Cannot resume run {run.run_id}: " + " And ".join(parts))


def _listed(locations: list[str], most: int = 3) -> str:
    more = f" and {len(locations) - most} more" if len(locations) > most else ""
    return ", ".join(locations[:most]) + more


def _pending_indices(state: State | None) -> list[int] | None:
    """For a restored Mapped parent, the children that run again; None for a task that
    runs as a whole (or is restored as a whole)."""
    if isinstance(state, Mapped):
        return [i for i, child in enumerate(state.map_states) if not child.is_finished()]
    return None if state is None else []


def _never_written(state: State) -> bool:
    """Whether ``state`` is a finished task's whose value is not in memory and was never
    checkpointed (no location was recorded)."""
    if isinstance(state, Skipped) or not state.is_successful():
        return False
    stored = state._result
    return stored.value is None and stored.location is None and not is_checkpointed_none(stored)


def _load(state: State, task: Task, run: RunInfo) -> str | None:
    """Read ``state``'s value (of ``task``) from its location if it is not in memory;
    the location when nothing is stored there any more, else None.

    Raises:
        ResumeError: reading it failed otherwise; the storage error is its cause.
    """
    location = state._result.location
    try:
        state.load_result()
    except ValueNotFoundError:
        return location
    except Exception as exc:
        raise ResumeError(
            f"Cannot resume run {run.run_id}: the value of task {task.name!r}, checkpointed "
            f"at {location}, cannot be read: {str(exc).rstrip('.')}. Fix the storage, or run "
            f"the task again with rerun=[*flow.get_tasks(name={task.name!r})] (flowcore run: "
            f"--rerun {task.name})"
        ) from exc
    return None
