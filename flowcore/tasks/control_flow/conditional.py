"""Conditional branches: ``switch``, ``ifelse`` and ``merge``, and the tasks behind them.

A branch is taken or skipped by a :class:`CompareValue` task upstream of it: it raises
``SKIP`` when the condition's value does not match, and skip propagation (every task's
default ``skip_on_upstream_skip=True``) skips everything downstream of it. ``merge``
joins the branches again: it runs when at least one branch did not skip.

>>> from flowcore import Flow, task
>>> @task
... def flip():
...     return "heads"
>>> @task
... def say(word):
...     return word
>>> with Flow("coin") as flow:
...     heads, tails = say("H"), say("T")
...     switch(flip(), {"heads": heads, "tails": tails})
...     result = merge(heads, tails)
>>> flow.run().result[result].result
'H'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowcore import triggers
from flowcore.core.task import Task
from flowcore.engine import signals
from flowcore.tasks.core.function import FunctionTask
from flowcore.utilities.tasks import as_task, tags

if TYPE_CHECKING:
    from flowcore.core.flow import Flow

__all__ = ["CompareValue", "Merge", "ifelse", "merge", "switch"]


class CompareValue(Task):
    """Succeeds (returning None) when its input equals ``value``; else raises ``SKIP``.

    Args:
        value: the value to match, fixed when the flow is built.
        **kwargs: any ``Task`` argument (default name ``CompareValue: "<value>"``).
    """

    def __init__(self, value: Any, **kwargs: Any) -> None:
        self.value = value
        kwargs.setdefault("name", f'CompareValue: "{value}"')
        super().__init__(**kwargs)

    def run(self, value: Any) -> None:
        if value != self.value:
            raise signals.SKIP(f'Provided value "{value}" did not match "{self.value}"')


class Merge(Task):
    """Returns the first non-None input, taking inputs in sorted key order.

    The keys are ``task_1 .. task_n`` and are sorted as strings, as in Prefect 1, so
    ``task_10`` comes before ``task_2``. Runs unless every input skipped (trigger
    ``not_all_skipped``), so ``skip_on_upstream_skip`` must stay False.
    """

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.setdefault("skip_on_upstream_skip", False):
            raise ValueError("Merge tasks must have `skip_on_upstream_skip=False`.")
        kwargs.setdefault("trigger", triggers.not_all_skipped)
        super().__init__(**kwargs)

    def run(self, **task_results: Any) -> Any:
        for key in sorted(task_results):
            if task_results[key] is not None:
                return task_results[key]
        return None


def switch(condition: Any, cases: dict[Any, Any], mapped: bool = False) -> None:
    """Run only the task in ``cases`` whose key equals ``condition``'s result.

    Each case task gets a ``CompareValue`` upstream (tagged ``switch``); the others skip,
    and so does everything downstream of them that keeps ``skip_on_upstream_skip=True``.
    A case task that already has upstream tasks still waits for them; those upstreams run
    whichever branch is taken.

    Args:
        condition: a task (or value) whose result selects the branch.
        cases: ``{value: task}``.
        mapped: map the comparison (and the branch dependency) over ``condition``.
    """
    with tags("switch"):
        for value, case_task in cases.items():
            case_task = as_task(case_task)
            match = CompareValue(value=value).bind(value=condition, mapped=mapped)
            case_task.set_dependencies(upstream_tasks=[match], mapped=mapped)


def _truth(x: Any) -> bool:
    return bool(x)


_as_bool = FunctionTask(_truth, name="as_bool")


def ifelse(condition: Any, true_task: Any, false_task: Any, mapped: bool = False) -> None:
    """Run ``true_task`` if ``condition``'s result is truthy, else ``false_task``.

    Either branch may be None (no task for that outcome). The condition goes through an
    ``as_bool`` task first, then :func:`switch`.
    """
    cases = {
        key: branch
        for key, branch in ((True, true_task), (False, false_task))
        if branch is not None
    }
    if cases:
        switch(condition=_as_bool(condition, mapped=mapped), cases=cases, mapped=mapped)


def merge(*tasks: Any, flow: Flow | None = None, mapped: bool = False, **task_kwargs: Any) -> Task:
    """Join conditional branches: a task returning the first branch result that is not None.

    Inputs are bound as ``task_1 .. task_n`` in argument order and read back in *string*
    order of those keys (Prefect 1's ordering: with ten or more branches ``task_10`` is
    read before ``task_2``). Returns None when every branch returned None, and skips when
    every branch skipped.

    Args:
        *tasks: the branch tasks (usually one per ``case`` or ``switch`` branch).
        flow: the flow (default: the active one).
        mapped: map the merge over its inputs.
        **task_kwargs: ``Task`` arguments for the ``Merge`` task.
    """
    inputs = {f"task_{i + 1}": branch for i, branch in enumerate(tasks)}
    return Merge(**task_kwargs).bind(flow=flow, mapped=mapped, **inputs)
