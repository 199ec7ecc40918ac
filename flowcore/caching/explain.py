"""``explain_flow``: would each task of a flow's next run be a cache hit, and why?

Nothing runs. The tasks are walked in dependency order, carrying what is known of each
task's value before the run::

    task                       answer                      its value downstream
    ─────────────────────────  ──────────────────────────  ──────────────────────────
    a Parameter                not cached ("parameter")    the run's value (default or given)
    a constant                 not cached                  the constant
    no cache_for / policy /    not cached                  unknown: it would run
      target
    cached, inputs known       hit | miss (the reason)     hit: the cached value, read
                                                           from the store; miss: unknown
    cached, an input unknown   unknown ("depends on ...")  unknown

A cached task's answer is what its plan decides (:meth:`CacheRun.explain
<flowcore.caching.plan.CacheRun.explain>`): the key, store, validator and target lookup a
task run makes, and the reason a task run would log, word for word. A mapped task is
explained per child; it is a hit when every child is.

The context is the flow run's (``FlowRunner.initialize_run``: parameters with their
defaults, flow name, date keys) with fresh run ids, so a key or target that names the flow
run misses, as it would. The stores are chosen as ``flow.run`` chooses them: ``store``, else
``Flow(cache_store=)``, else config ``caching.store``; with none, Prefect 1 caching keeps
records in this process's memory and policies in their default storage.
"""

from __future__ import annotations

import logging
import reprlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowcore.caching.choice import run_stores
from flowcore.caching.stores import CacheStore, MemoryCacheStore
from flowcore.engine.result import Result
from flowcore.exceptions import ResultStorageError
from flowcore.utilities import context as _context

__all__ = ["ANSWERS", "TaskExplanation", "explain_flow"]

ANSWERS = ("hit", "miss", "unknown", "not cached")


@dataclass(frozen=True)
class TaskExplanation:
    """One task's answer (one of :data:`ANSWERS`), the reason in words and the key looked up."""

    task: str
    slug: str
    answer: str
    reason: str
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``flowcore cache explain --json``)."""
        found = {"task": self.task, "slug": self.slug, "answer": self.answer, "reason": self.reason}
        return found if self.key is None else {**found, "key": self.key}


class _Unknown:
    """A value that is not known before the run: its task would run (``answer`` miss or
    not cached) or its own answer is unknown."""

    __slots__ = ("answer",)

    def __init__(self, answer: str) -> None:
        self.answer = answer


def explain_flow(
    flow: Any,
    context: Mapping[str, Any],
    task_contexts: Mapping[Any, Mapping[str, Any]] | None = None,
    store: CacheStore | str | None = None,
    logger: logging.Logger | None = None,
) -> list[TaskExplanation]:
    """Every task of ``flow``, in dependency order, with its answer (module docstring).

    Args:
        flow: the flow.
        context: the flow run's context, as ``FlowRunner.initialize_run`` makes it.
        task_contexts: each task's context from the same call (``task_slug``, ...).
        store: the cache store (a store or what ``caching.store`` accepts); None: the
            flow's own choice.
        logger: where the WARNINGs of a lookup go (default: nowhere; they are in the reasons).
    """
    scope = _run_scope(flow, context, store)
    quiet = logger or _quiet_logger()
    known: dict[Any, Any] = {}
    explained = []
    for task in flow.sorted_tasks():
        task_scope = {**scope, **(task_contexts or {}).get(task, {})}
        found, known[task] = _explain_task(flow, task, task_scope, known, quiet)
        explained.append(found)
    return explained


def _run_scope(
    flow: Any, context: Mapping[str, Any], store: CacheStore | str | None
) -> dict[str, Any]:
    """The context a task run of a new flow run starts from (ids fresh, stores chosen)."""
    scope = {**_context.current(), **context}
    scope.update(flow_id=flow.name, flow_run_id=str(uuid.uuid4()), flow_run_name=str(uuid.uuid4()))
    scope.setdefault("caches", {})
    config = scope["config"]
    scope.update(run_stores(store, getattr(flow, "cache_store", None), config, scope["caches"]))
    scope.setdefault("checkpointing", bool(config and config["flows"]["checkpointing"]))
    return scope


def _explain_task(
    flow: Any, task: Any, scope: dict[str, Any], known: Mapping[Any, Any], logger: logging.Logger
) -> tuple[TaskExplanation, Any]:
    """The task's explanation, and its value as known before the run."""
    slug = flow.slugs.get(task, task.name)
    scope.update(task_name=task.name, task_full_name=task.name, task_tags=task.tags, task_slug=slug,
                 task_id=slug, task_run_id=str(uuid.uuid4()), task_run_count=1, map_index=None)  # fmt: skip
    if task in flow.parameters():
        value = _parameter_value(task, scope)
        return TaskExplanation(
            task.name, slug, "not cached", f"parameter: {reprlib.repr(value)}"
        ), value
    if task._is_constant:
        return TaskExplanation(task.name, slug, "not cached", "a constant"), task.value
    plan = task.cache_plan
    if plan is None:
        reason = "no cache_for, cache_policy or target: the task runs every time"
        return TaskExplanation(task.name, slug, "not cached", reason), _Unknown("not cached")
    inputs, mapped, waiting = _inputs(flow, task, known)
    if waiting:
        return TaskExplanation(task.name, slug, "unknown", _depends(waiting)), _Unknown("unknown")
    result = _task_result(task, getattr(flow, "result", None))
    if mapped is None:
        return _decide(task, slug, scope, inputs, result, logger)
    return _decide_mapped(task, slug, scope, inputs, mapped, result, logger)


def _decide(
    task: Any,
    slug: str,
    scope: dict[str, Any],
    inputs: dict[str, Any],
    result: Result,
    logger: logging.Logger,
) -> tuple[TaskExplanation, Any]:
    """Ask the task's plan, as a task run would (without running, locking or logging)."""
    parameters = scope.get("parameters") or {}
    try:
        run = task.cache_plan.start(scope, scope["task_full_name"], logger, task, None, result)
        decision = run.explain(inputs, parameters, lambda: {**parameters, **scope, **inputs})
    except ResultStorageError:
        raise  # the store cannot be read: the whole answer is an error
    except Exception as exc:
        return TaskExplanation(task.name, slug, "unknown", f"cannot tell: {exc}"), _Unknown(
            "unknown"
        )
    key = run.key if task.cache_plan.target is None else None
    if decision.hit is not None:
        return TaskExplanation(task.name, slug, "hit", decision.reason, key), decision.hit.result
    reason = decision.reason
    if (
        isinstance(run.store, MemoryCacheStore)
        and task.cache_plan.target is None
        and not run.store.caches
    ):
        reason += " (no cache store is set: records are kept in the memory of the process that ran the flow)"
    return TaskExplanation(task.name, slug, "miss", reason, key), _Unknown("miss")


def _decide_mapped(
    task: Any,
    slug: str,
    scope: dict[str, Any],
    inputs: dict[str, Any],
    mapped: set[str],
    result: Result,
    logger: logging.Logger,
) -> tuple[TaskExplanation, Any]:
    """A mapped task: each child decided on its share of the mapped inputs."""
    count = min((len(inputs[name]) for name in mapped), default=0)
    children = []
    for index in range(count):
        child = {name: value[index] if name in mapped else value for name, value in inputs.items()}
        child_scope = {**scope, "map_index": index, "task_full_name": f"{task.name}[{index}]"}
        children.append(_decide(task, slug, child_scope, child, result, logger))
    answers = [found.answer for found, _ in children]
    keys = {found.key for found, _ in children}
    key = keys.pop() if len(keys) == 1 else None
    if answers and all(answer == "hit" for answer in answers):
        values = [value for _, value in children]
        return TaskExplanation(
            task.name, slug, "hit", f"all {count} children: {children[0][0].reason}", key
        ), values
    if not children:
        return TaskExplanation(task.name, slug, "miss", "no children to map over"), _Unknown("miss")
    index = next(i for i, answer in enumerate(answers) if answer != "hit")
    first, answer = children[index][0], "unknown" if "unknown" in answers else "miss"
    reason = f"{len(answers) - answers.count('hit')} of {count} children would run; {task.name}[{index}]: {first.reason}"
    return TaskExplanation(task.name, slug, answer, reason, key), _Unknown(answer)


def _inputs(
    flow: Any, task: Any, known: Mapping[Any, Any]
) -> tuple[dict[str, Any], set[str] | None, dict[str, str]]:
    """The task's inputs as known before the run, the names it maps over (None: not
    mapped), and the upstream tasks whose values are not known."""
    inputs = dict(flow.constants.get(task, {}))
    mapped: set[str] | None = None
    waiting: dict[str, str] = {}
    for edge in flow.edges_to(task):
        if edge.key is None:
            continue
        value = known[edge.upstream_task]
        if isinstance(value, _Unknown):
            waiting[edge.upstream_task.name] = value.answer
            continue
        if edge.flattened:
            value = [item for part in value for item in part]
        inputs[edge.key] = value
        if edge.mapped:
            mapped = (mapped or set()) | {edge.key}
    return inputs, mapped, waiting


def _depends(waiting: dict[str, str]) -> str:
    """``depends on a and b, which would run`` (each one's answer when they differ)."""
    names = sorted(waiting)
    if all(waiting[name] != "unknown" for name in names):
        return f"depends on {_and(names)}, which would run"
    return "depends on " + _and(
        [f"{n} ({'would run' if waiting[n] != 'unknown' else 'unknown'})" for n in names]
    )


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _parameter_value(task: Any, scope: dict[str, Any]) -> Any:
    """A Parameter's value in this run (its ``run`` reads ``context.parameters``)."""
    token = _context.push(scope)
    try:
        return task.run()
    finally:
        _context.pop(token)


def _task_result(task: Any, flow_result: Result | None) -> Result:
    """The task's Result as a TaskRunner makes it: its own, else the flow's, placed at its target."""
    if task.result is not None:
        result: Result = task.result
    else:
        result = flow_result.copy() if flow_result is not None else Result()
    if task.target is not None:
        result = result.copy()
        if isinstance(task.target, str):
            result.location, result._formatter = task.target, None
        else:
            result.location, result._formatter = None, task.target
    return result


def _quiet_logger() -> logging.Logger:
    logger = logging.Logger("flowcore.caching.explain")
    logger.addHandler(logging.NullHandler())
    return logger
