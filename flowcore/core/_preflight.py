"""Pre-flight checks: what is certainly wrong with a flow, found before any task runs.

A task's str ``target`` (or, without a target, its Result's str ``location``) is a
template that a task run formats with its keys: the run context, the flow's parameters
and the task's bound inputs (``TaskRunner.formatting_kwargs``). Two mistakes in it
otherwise surface only when that task runs, after its upstream work::

    unknown key      '{dya}/out.pkl'          -> TemplateKeyError naming task, template, key
    mapped, fixed    target='out.pkl' on a    -> ValueError: every child would read child
                     mapped task                 0's value; add {map_index} or a mapped input

Both depend only on the graph and the templates, so their analysis is kept in
``flow._cache`` (cleared when the graph changes) per task and per templates; a run only
compares the few keys the analysis could not place with the run's own context keys.

Two more checks need the run: a target with checkpointing off is never written (one
WARNING per run), and with an executor that sends tasks to other processes every task
is dry-pickled (cloudpickle into a null sink), a failure naming the attribute path of
the first unpicklable thing::

    flow.validate()        unknown keys, mapped templates               (raises the first)
    Flow.set_dependencies  mapped templates of a task being mapped      (raises)
    flow.run()             all four, once, before the first pass        (engine/flow_run.py)
"""

from __future__ import annotations

import functools
import re
import string
import types
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from flowcore.exceptions import DaskTaskError, TemplateKeyError

if TYPE_CHECKING:
    from flowcore.core.flow import Flow
    from flowcore.core.task import Task

__all__ = [
    "Problem",
    "check_pickling",
    "mapped_template_problems",
    "run_problems",
    "template_problems",
    "unwritten_targets_message",
]

# Keys every task run's formatting keywords hold, besides the parameters and the inputs:
# the flow run's (engine/flow_run.py ``run_flow``/``_run_passes``; FlowRunner.initialize_run
# with ``_date_keys``), the task run's (``task_contexts`` in ``_run_passes``;
# TaskRunner.initialize_run) and the base scope's (utilities/context.py). Keys that exist
# only in some runs are not here (see _CONDITIONAL); tests/core/test_preflight.py checks
# this set against what a real run hands a callable target.
RUN_KEYS = frozenset({
    "cache_store", "caches", "checkpointing", "config", "date", "flow_id", "flow_name",
    "flow_run_id", "flow_run_name", "logger", "map_index", "parameters", "run_recorder",
    "scheduled_start_time", "secrets", "task_full_name", "task_id", "task_name",
    "task_run_count", "task_run_id", "task_slug", "task_tags", "today", "today_nodash",
    "tomorrow", "tomorrow_nodash", "transactions", "yesterday", "yesterday_nodash",
})  # fmt: skip

_CONDITIONAL = {
    "task_loop_count": "it exists only from a looping task's second iteration",
    "task_loop_result": "it exists only from a looping task's second iteration",
    "resume": "it exists only in a resumed task run",
    "task_run_name": "it exists only for a task with task_run_name=",
    "policy_store": "it exists only when a cache store is configured",
}

_PER_CHILD = frozenset({"map_index", "task_full_name"})


class Problem(NamedTuple):
    """A pre-flight failure: the task it concerns and the error to report."""

    task: Task
    error: Exception


class _Analysis(NamedTuple):
    """What the graph alone says about one task's templates."""

    unplaced: tuple[tuple[str, str, str], ...]  # (what, template, key) not known from the graph
    graph_keys: frozenset[str]  # parameters and bound inputs
    errors: tuple[Exception, ...]  # malformed templates; mapped templates that never vary


# -- templates ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def template_fields(template: str) -> tuple[str, ...]:
    """The keys ``template.format(**keys)`` reads: ``{x[0]}`` and ``{x.a}`` read ``x``.

    >>> template_fields("{date:%Y}/{city.name}-{rows[0]}.{{literal}}")
    ('date', 'city', 'rows')
    """
    fields: list[str] = []
    for _, name, spec, _ in string.Formatter().parse(template):
        if name is not None:
            fields.append(re.split(r"[.\[]", name, maxsplit=1)[0])
        if spec and "{" in spec:
            fields.extend(template_fields(spec))
    return tuple(dict.fromkeys(fields))


def _templates(task: Task, flow_result: Any) -> tuple[tuple[str, str], ...]:
    """``(what, template)`` for the task's str target, else its Result's str location (a
    callable target or location cannot be checked)."""
    if task.target is not None:
        return (("target", task.target),) if isinstance(task.target, str) else ()
    what = "result location" if task.result is not None else "result location (the flow's result=)"
    location = getattr(task.result if task.result is not None else flow_result, "location", None)
    return ((what, location),) if isinstance(location, str) else ()


def _analysis(flow: Flow, task: Task) -> _Analysis | None:
    """The task's memoised analysis (None: no template to check)."""
    templates = _templates(task, flow.result)
    if not templates:
        return None
    constants = tuple(flow.constants.get(task, ()))
    memo = flow._cache.setdefault("flowcore.preflight", {})
    run_name = task.task_run_name
    key = (templates, constants, run_name if isinstance(run_name, str) else callable(run_name))
    found = memo.get(task)
    if found is None or found[0] != key:
        found = memo[task] = (key, _analyse(flow, task, templates))
    return found[1]  # type: ignore[no-any-return]


def _analyse(flow: Flow, task: Task, templates: tuple[tuple[str, str], ...]) -> _Analysis:
    edges = flow._upstream[task]
    graph_keys: frozenset[str] | None = None  # made only for a template with keys
    unplaced: list[tuple[str, str, str]] = []
    errors: list[Exception] = []
    for what, template in templates:
        try:
            fields = template_fields(template)
        except ValueError as exc:
            errors.append(
                ValueError(
                    f"Task {task.name!r}: {what} template {template!r} cannot be parsed: {exc}"
                )
            )
            continue
        if fields:
            known = graph_keys = graph_keys or _graph_keys(flow, task, edges)
            unplaced.extend(
                (what, template, f) for f in fields if f not in RUN_KEYS and f not in known
            )
        mapped_error = _mapped_error(task, edges, what, template, fields)
        if mapped_error is not None:
            errors.append(mapped_error)
    return _Analysis(tuple(unplaced), graph_keys or frozenset(), tuple(errors))


def _graph_keys(flow: Flow, task: Task, edges: Iterable[Any]) -> frozenset[str]:
    """The keys the graph gives the task's templates: parameters, bound inputs, and
    ``task_run_name`` when the task has one."""
    return frozenset(
        {p.name for p in flow.parameters()}
        | {e.key for e in edges if e.key is not None}
        | set(flow.constants.get(task, ()))
        | ({"task_run_name"} if task.task_run_name is not None else set())
    )


def _mapped_error(
    task: Task, edges: Iterable[Any], what: str, template: str, fields: tuple[str, ...]
) -> ValueError | None:
    """The error for a mapped task whose template is the same for every child."""
    mapped_inputs = sorted({e.key for e in edges if e.mapped and e.key is not None})
    if not any(e.mapped for e in edges):
        return None
    varying = _PER_CHILD | set(mapped_inputs)
    run_name = task.task_run_name
    if callable(run_name) or (
        isinstance(run_name, str) and varying & set(template_fields(run_name))
    ):
        varying = varying | {"task_run_name"}
    if varying & set(fields):
        return None
    inputs = f" (its mapped inputs: {', '.join(mapped_inputs)})" if mapped_inputs else ""
    return ValueError(
        f"Task {task.name!r} is mapped, but its {what} template {template!r} is the same for "
        "every child, so every child would read or overwrite child 0's value: add {map_index} "
        f"or a mapped input to the template{inputs}"
    )


def _unknown_key_error(
    task: Task, what: str, template: str, key: str, known: Iterable[str]
) -> TemplateKeyError:
    names = ", ".join(sorted(k for k in known if isinstance(k, str) and not k.startswith("_")))
    hint = ""
    if key in _CONDITIONAL:
        hint = f" ({key!r} is not always there: {_CONDITIONAL[key]})"
    elif key in task._run_signature().parameters:
        hint = (
            f" ({key!r} is an argument of {task.name!r} that is not bound: only bound inputs "
            "reach templates, so pass it explicitly)"
        )
    return TemplateKeyError(
        f"Task {task.name!r}: {what} template {template!r} uses unknown key {key!r}{hint}; "
        f"known keys: {names}"
    )


def template_problems(
    flow: Flow, context_keys: Iterable[str], task_contexts: dict[Task, dict[str, Any]] | None = None
) -> list[Problem]:
    """Malformed templates, unknown keys and mapped templates that never vary.

    Args:
        flow: the flow.
        context_keys: the keys the run context will hold besides ``RUN_KEYS`` (the current
            scope's, the run's ``context=``, the names in its ``parameters``).
        task_contexts: ``flow.run(task_contexts=...)``: more keys for single tasks.
    """
    problems: list[Problem] = []
    extra = frozenset(context_keys)
    for task in flow.sorted_tasks():
        analysis = _analysis(flow, task)
        if analysis is None:
            continue
        problems.extend(Problem(task, error) for error in analysis.errors)
        for what, template, key in analysis.unplaced:
            own = (task_contexts or {}).get(task) or {}
            if key not in extra and key not in own:
                known = RUN_KEYS | analysis.graph_keys | extra | set(own)
                problems.append(Problem(task, _unknown_key_error(task, what, template, key, known)))
    return problems


def mapped_template_problems(flow: Flow, task: Task) -> list[Problem]:
    """The mapped-template errors of one task (checked as it is mapped, at build time)."""
    analysis = _analysis(flow, task)
    if analysis is None:
        return []
    return [Problem(task, e) for e in analysis.errors]


# -- the run-time checks --------------------------------------------------------------------


def run_problems(
    flow: Flow,
    scope: dict[str, Any],
    run_context: dict[str, Any],
    task_contexts: dict[Task, dict[str, Any]] | None,
    executor: Any,
) -> list[Problem]:
    """What ``flow.run`` checks before its first pass: the templates against the run's keys,
    then, if they pass and the executor sends tasks to other processes, pickling."""
    parameters = run_context.get("parameters")
    keys = set(scope) | set(run_context) | set(parameters if isinstance(parameters, dict) else ())
    problems = template_problems(flow, keys, task_contexts)
    if not problems and ships_to_processes(executor):
        problems = check_pickling(flow.sorted_tasks(), executor)
    return problems


def unwritten_targets_message(
    flow: Flow,
    scope: dict[str, Any],
    run_context: dict[str, Any],
    task_contexts: dict[Task, dict[str, Any]] | None,
) -> str | None:
    """The warning for tasks with a target in a run without checkpointing (None: none).
    A run whose context turns checkpointing off by name (``checkpointing=False``) chose
    it: no warning."""
    contexts = task_contexts or {}
    names = [
        task.name
        for task in flow.sorted_tasks()
        if task.target is not None
        and _checkpointing(scope, run_context, contexts.get(task) or {}) is None
    ]
    if not names:
        return None
    listed = ", ".join(repr(n) for n in dict.fromkeys(names))
    return (
        f"Checkpointing is off for this run of {flow.name!r}, so the targets of task(s) {listed} "
        "are never written and those tasks always run: targets are never written without "
        "checkpointing. Turn it on with flow.run(context={'checkpointing': True}) or config "
        "flows.checkpointing = true."
    )


def _checkpointing(
    scope: dict[str, Any], run_context: dict[str, Any], task_context: dict[str, Any]
) -> bool | None:
    """Whether a task run will checkpoint, decided as TaskRunner.initialize_run does: True,
    False when a context says so, None when it is off by configuration."""
    for layer in (task_context, run_context, scope):
        if "checkpointing" in layer:
            return layer["checkpointing"] is True
    config = scope.get("config")
    try:
        return True if config and config["flows"]["checkpointing"] else None
    except (KeyError, TypeError):
        return None


# -- dry pickling ---------------------------------------------------------------------------


def ships_to_processes(executor: Any) -> bool:
    """Whether ``executor`` pickles task runs to other processes (DaskExecutor,
    LocalDaskExecutor("processes")), as it says (``Executor.ships_to_processes``);
    LocalExecutor and threads share the tasks."""
    says = getattr(executor, "ships_to_processes", None)
    return bool(says()) if callable(says) else False


class _Sink:
    """A file that keeps nothing: pickling into it costs no memory."""

    def write(self, data: Any) -> int:
        return len(data)


def _dumps(value: Any) -> None:
    import cloudpickle

    cloudpickle.CloudPickler(_Sink(), protocol=5, buffer_callback=lambda _: None).dump(value)


def check_pickling(tasks: Iterable[Task], executor: Any) -> list[Problem]:
    """Dry-pickle each task as a process executor would; one Problem per task that fails."""
    problems: list[Problem] = []
    for task in tasks:
        if task._is_constant:
            continue
        try:
            _dumps(task)
        except Exception as exc:  # noqa: BLE001 - any pickling failure is reported below
            problems.append(Problem(task, _pickling_error(task, exc, executor)))
    return problems


def _pickling_error(task: Task, exc: Exception, executor: Any) -> DaskTaskError:
    path, culprit, cause = _first_unpicklable(task, exc)
    kind = type(culprit)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    error = DaskTaskError(
        f"Task {task.name!r}: {path} ({module}{kind.__qualname__}) cannot be pickled: "
        f"{type(cause).__name__}: {cause}. {executor!r} sends each task to worker processes "
        "with cloudpickle; create the object inside run() (or in a resource_manager), or run "
        "with LocalExecutor or LocalDaskExecutor('threads')"
    )
    error.__cause__ = cause
    return error


def _first_unpicklable(task: Task, exc: Exception) -> tuple[str, Any, Exception]:
    """``(path, object, error)`` of the deepest unpicklable thing found from the task."""
    for path, value in _task_parts(task):
        error = _pickle_error(value)
        if error is not None:
            return _descend(path, value, error, depth=6, seen={id(task)})
    return "the task itself", task, exc


def _task_parts(task: Task) -> Iterator[tuple[str, Any]]:
    """The task's attributes (a FunctionTask's function as ``run``), then its class's run."""
    for name, value in vars(task).items():
        is_function = name == "run" and isinstance(value, types.FunctionType)
        yield ("run" if is_function else f"attribute {name}"), value
    run = getattr(type(task), "run", None)
    if isinstance(run, types.FunctionType):
        yield "run", run


def _descend(
    path: str, value: Any, error: Exception, depth: int, seen: set[int]
) -> tuple[str, Any, Exception]:
    if depth == 0 or id(value) in seen:
        return path, value, error
    seen.add(id(value))
    for suffix, child in _parts(value):
        child_error = _pickle_error(child)
        if child_error is not None:
            return _descend(f"{path}{suffix}", child, child_error, depth - 1, seen)
    return path, value, error


def _parts(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        yield from ((f"[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        yield from ((f"[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, types.FunctionType):
        yield from _function_parts(value)
    elif isinstance(getattr(value, "__dict__", None), dict):
        if not isinstance(value, (type, types.ModuleType)):
            yield from ((f".{k}", v) for k, v in vars(value).items())


def _function_parts(fn: types.FunctionType) -> Iterator[tuple[str, Any]]:
    """What cloudpickle sends with a function pickled by value: defaults, closure cells,
    the globals its code names."""
    code = fn.__code__
    defaults = fn.__defaults__ or ()
    with_defaults = code.co_varnames[code.co_argcount - len(defaults) : code.co_argcount]
    yield from ((f" default {n}", v) for n, v in zip(with_defaults, defaults))
    yield from ((f" default {n}", v) for n, v in (fn.__kwdefaults__ or {}).items())
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            yield f" closure variable {name}", cell.cell_contents
        except ValueError:  # an empty cell
            continue
    yield from ((f" global {n}", fn.__globals__[n]) for n in code.co_names if n in fn.__globals__)


def _pickle_error(value: Any) -> Exception | None:
    try:
        _dumps(value)
    except Exception as exc:  # noqa: BLE001 - a __reduce__ may raise anything
        return exc
    return None
