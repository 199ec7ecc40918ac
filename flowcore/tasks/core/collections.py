"""Collection tasks: build a list, tuple, set or dict from upstream results.

They are created by auto-wrapping (``t(x=[a, b])`` with tasks inside the list) and bound
as ``arg_1 .. arg_n`` (``keys`` / ``values`` for ``Dict``). Built by hand, ``List``,
``Tuple`` and ``Set`` bind positional arguments the same way: ``List().bind(a, b)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowcore.core.task import Task

if TYPE_CHECKING:
    from flowcore.core.flow import Flow

__all__ = ["Dict", "List", "Set", "Tuple", "VarArgsTask"]


def _ordered(task_results: dict[str, Any]) -> list[Any]:
    return [value for _, value in sorted(task_results.items(), key=lambda kv: int(kv[0][4:]))]


class VarArgsTask(Task):
    """A task whose ``bind(*args)`` binds positional arguments as ``arg_1 .. arg_n``."""

    def bind(
        self,
        *args: Any,
        mapped: bool = False,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind ``args`` as ``arg_1 .. arg_n`` (keyword arguments are bound as given)."""
        numbered = {f"arg_{i + 1}": value for i, value in enumerate(args)}
        return super().bind(
            mapped=mapped, upstream_tasks=upstream_tasks, flow=flow, **numbered, **kwargs
        )


class List(VarArgsTask):
    """``[arg_1, ..., arg_n]``."""

    def run(self, **task_results: Any) -> list[Any]:
        return _ordered(task_results)


class Tuple(VarArgsTask):
    """``(arg_1, ..., arg_n)``."""

    def run(self, **task_results: Any) -> tuple[Any, ...]:
        return tuple(_ordered(task_results))


class Set(VarArgsTask):
    """``{arg_1, ..., arg_n}``."""

    def run(self, **task_results: Any) -> set[Any]:
        return set(_ordered(task_results))


class Dict(Task):
    """``dict(zip(keys, values))``."""

    def run(self, keys: Iterable[Any], values: Iterable[Any]) -> dict[Any, Any]:
        keys, values = list(keys), list(values)
        if len(keys) != len(values):
            raise ValueError(
                "A different number of keys and values were provided! The Dict task got "
                f"{len(keys)} keys and {len(values)} values."
            )
        return dict(zip(keys, values))
