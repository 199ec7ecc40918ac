"""Collection tasks: build a list, tuple, set or dict from upstream results.

They are created by auto-wrapping (``t(x=[a, b])`` with tasks inside the list) and bound
as ``arg_1 .. arg_n`` (``keys`` / ``values`` for ``Dict``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowcore.core.task import Task

__all__ = ["Dict", "List", "Set", "Tuple"]


def _ordered(task_results: dict[str, Any]) -> list[Any]:
    return [value for _, value in sorted(task_results.items(), key=lambda kv: int(kv[0][4:]))]


class List(Task):
    """``[arg_1, ..., arg_n]``."""

    def run(self, **task_results: Any) -> list[Any]:
        return _ordered(task_results)


class Tuple(Task):
    """``(arg_1, ..., arg_n)``."""

    def run(self, **task_results: Any) -> tuple[Any, ...]:
        return tuple(_ordered(task_results))


class Set(Task):
    """``{arg_1, ..., arg_n}``."""

    def run(self, **task_results: Any) -> set[Any]:
        return set(_ordered(task_results))


class Dict(Task):
    """``dict(zip(keys, values))``."""

    def run(self, keys: Iterable[Any], values: Iterable[Any]) -> dict[Any, Any]:
        keys, values = list(keys), list(values)
        if len(keys) != len(values):
            raise ValueError(f"Dict task got {len(keys)} keys but {len(values)} values")
        return dict(zip(keys, values))
