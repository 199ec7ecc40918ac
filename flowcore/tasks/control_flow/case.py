"""``case``: a block of tasks that runs only when a task's result equals a value.

::

    with Flow("example") as flow:
        kind = classify(item)
        with case(kind, "image"):
            thumb = make_thumbnail(item)      # runs only if kind == "image"
        with case(kind, "text"):
            summary = summarise(item)

While the block is open, ``Flow.add_task`` hands every new task (except Parameters and
Constants) to the case (``context.case``). On exit the case builds one
:class:`~flowcore.tasks.control_flow.conditional.CompareValue` task bound to the
condition, and makes it an upstream of each recorded task that has no upstream inside
the block. A mismatch raises ``SKIP`` in the compare task and skip propagation skips the
rest of the branch. Blocks nest: the inner compare task is created after the inner case
has closed, so it belongs to the outer case. There is no ``else``: use a second
``case`` with the other value, or ``merge`` to join branches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowcore.core.task import Task
from flowcore.tasks.control_flow.conditional import CompareValue
from flowcore.utilities import context as _context

if TYPE_CHECKING:
    from flowcore.core.flow import Flow

__all__ = ["case"]


class case:
    """A conditional block: its tasks run only if ``task``'s result equals ``value``.

    Args:
        task: the task whose result is compared.
        value: a constant (not a Task) to compare with.
    """

    def __init__(self, task: Task, value: Any) -> None:
        if isinstance(value, Task):
            raise TypeError("`value` cannot be a task")
        self.task = task
        self.value = value
        self._tasks: dict[Task, None] = {}
        self._flow: Flow | None = None
        self._scopes: list[Any] = []

    def __repr__(self) -> str:
        return f"<case: {self.task!r} == {self.value!r}>"

    def add_task(self, task: Task, flow: Flow) -> None:
        """Record ``task`` as part of this block (called by ``Flow.add_task``)."""
        if self._flow is None:
            self._flow = flow
        elif self._flow is not flow:
            raise ValueError("Multiple flows cannot be used with the same case statement")
        self._tasks[task] = None

    def __enter__(self) -> None:
        scope = _context.context(case=self)
        scope.__enter__()
        self._scopes.append(scope)

    def __exit__(self, *exc: object) -> None:
        self._scopes.pop().__exit__(*exc)
        if exc[0] is not None or not self._tasks or self._flow is None:
            return
        flow = self._flow
        compare = CompareValue(self.value, name=f"case({self.value})").bind(
            value=self.task, flow=flow
        )
        for child in self._tasks:
            if not any(up in self._tasks for up in flow.upstream_tasks(child)):
                child.set_upstream(compare, flow=flow)
