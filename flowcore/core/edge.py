"""``Edge``: a dependency between two tasks, optionally carrying data under ``key``.

The module also exposes ``Task``, as Prefect 1's ``prefect.core.edge`` does, so
``from flowcore.core.edge import Edge, Task`` works.
"""

from __future__ import annotations

import keyword
from typing import TYPE_CHECKING, Any

from flowcore.core.task import Task
from flowcore.utilities.edges import EdgeAnnotation

if TYPE_CHECKING:
    from flowcore.core.flow import Flow

__all__ = ["Edge", "Task"]


class Edge:
    """``upstream_task -> downstream_task``.

    Args:
        upstream_task: a Task, a constant (auto-wrapped) or an edge annotation.
        downstream_task: the dependent task.
        key: the downstream ``run()`` argument that receives the upstream result; None
            for a state-only dependency.
        mapped: the downstream task maps over this upstream.
        flattened: the upstream result is flattened one level before use.
        flow: the flow in which auto-wrapped collection tasks are created.
    """

    __slots__ = ("upstream_task", "downstream_task", "key", "mapped", "flattened", "_hash")

    def __init__(
        self,
        upstream_task: Any,
        downstream_task: Any,
        key: str | None = None,
        mapped: bool | None = None,
        flattened: bool | None = None,
        flow: Flow | None = None,
    ) -> None:
        annotations: dict[str, bool] = {}
        if isinstance(upstream_task, EdgeAnnotation):
            annotations = upstream_task.annotations
        if mapped is None:
            mapped = False
        if flattened is None:
            flattened = False
        mapped = annotations.get("mapped", mapped)
        flattened = annotations.get("flattened", flattened)
        if upstream_task is downstream_task:
            raise ValueError(
                f"Edges can not connect a task to itself. Both ends are {upstream_task!r}."
            )
        upstream, downstream = upstream_task, downstream_task
        if not isinstance(upstream, Task) or not isinstance(downstream, Task):
            from flowcore.utilities.tasks import as_task  # (not for two tasks: the usual edge)

            upstream = as_task(upstream_task, flow=flow)
            downstream = as_task(downstream_task, flow=flow)
        if upstream is downstream:
            raise ValueError(f"Edges can not connect a task to itself. Both ends are {upstream!r}.")
        if key is not None and (
            not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key)
        ):
            raise ValueError(f"Edge key {key!r} must be a valid Python identifier")
        self.upstream_task: Task = upstream
        self.downstream_task: Task = downstream
        self.key = key
        self.mapped = bool(mapped)
        self.flattened = bool(flattened)
        self._hash = hash((upstream, downstream, key, self.mapped, self.flattened))

    @property
    def tasks(self) -> set[Task]:
        return {self.upstream_task, self.downstream_task}

    def _identity(self) -> tuple[Any, ...]:
        return (self.upstream_task, self.downstream_task, self.key, self.mapped, self.flattened)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return (
            f"<Edge(key={self.key}, mapped={self.mapped}, flattened={self.flattened}): "
            f"{self.upstream_task.name} to {self.downstream_task.name}>"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__ if name != "_hash"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self._hash = hash(self._identity())
