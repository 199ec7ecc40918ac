"""What a task's arguments may be: the checks behind ``Task(...)``, ``@task`` and ``map``.

Each check raises an error naming the task, the argument and the fix::

    run signature     no *args, no reserved names      validate_run_signature (class, @task)
                      no positional-only parameters    check_positional_only (each task)
    map batch size    a positive int or None           check_batch_size (map, flow.run)

The checks run when the task is made, so a mistake surfaces while the flow is built, not
when the task first runs.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowcore.core.task import Task

__all__ = [
    "RESERVED_ARGUMENTS",
    "check_batch_size",
    "check_positional_only",
    "validate_run_signature",
]

_RESERVED_ORDER = ("upstream_tasks", "mapped", "task_args", "flow")
RESERVED_ARGUMENTS = frozenset(_RESERVED_ORDER)

_POSITIONAL_ONLY: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


# -- the run signature --------------------------------------------------------------------


def validate_run_signature(run: Callable[..., Any], owner: str) -> None:
    """Reject ``run`` signatures the flow API cannot bind (at class or task creation).

    Positional-only parameters are checked later, when a task is created
    (:func:`check_positional_only`), as in Prefect 1.
    """
    try:
        params = inspect.signature(run).parameters.values()
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "This function can not be inspected (this is common with `builtin` and `numpy` "
            "functions). In order to use it as a task, please wrap it in a standard Python "
            f"function. ({owner}: {exc})"
        ) from exc
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        raise ValueError(
            "Tasks with variable positional arguments (*args) are not supported, because "
            f"all flowcore arguments are stored as keywords. As a workaround, {owner} can accept "
            "**kwargs in run() instead."
        )
    reserved = [name for name in _RESERVED_ORDER if name in {p.name for p in params}]
    if reserved:
        raise ValueError(
            f"Tasks cannot have the following argument names: {', '.join(reserved)}. "
            f"These are reserved keyword arguments. Rename them in run() of {owner}."
        )


def check_positional_only(task: Task) -> None:
    """Raise TypeError if ``task.run`` has positional-only parameters (arguments are
    always passed by keyword). Memoised per function: tasks are created often."""
    function = getattr(task.run, "__func__", task.run)
    try:
        positional = _POSITIONAL_ONLY[function]
    except (KeyError, TypeError):
        positional = [
            name
            for name, param in task._run_signature().parameters.items()
            if param.kind is inspect.Parameter.POSITIONAL_ONLY
        ]
        try:
            _POSITIONAL_ONLY[function] = positional
        except TypeError:
            pass
    if positional:
        raise TypeError(
            "Found positional-only parameters in the function signature for task "
            f"{task.name}: {positional}. flowcore passes arguments using keywords and does "
            "not support positional-only parameters."
        )


# -- mapping ------------------------------------------------------------------------------


def check_batch_size(value: Any, where: str) -> int | None:
    """``value`` as a mapped task's batch size (None: automatic; ``engine/batches.py``);
    anything but a positive int is an error naming ``where`` it was given.

    >>> check_batch_size(100, "t.map(batch_size=...)"), check_batch_size(None, "")
    (100, None)
    >>> check_batch_size(0, "t.map(batch_size=...)")
    Traceback (most recent call last):
    ...
    ValueError: t.map(batch_size=...): batch size must be a positive int (1 = one executor call per child), or None for automatic; got 0
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{where}: batch size must be a positive int (1 = one executor call per "
            f"child), or None for automatic; got {value!r}"
        )
    return value
