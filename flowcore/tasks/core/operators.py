"""Operator tasks: what ``task + 1``, ``task > 2``, ``task[key]`` and friends build.

>>> Add().run(1, 2), GetItem().run({"a": 1}, "a"), GetItem(default=0).run({}, "a")
(3, 1, 0)
"""

from __future__ import annotations

from typing import Any

from flowcore.core.task import Task, no_default

__all__ = [
    "Add",
    "And",
    "Div",
    "Equal",
    "FloorDiv",
    "GetAttr",
    "GetItem",
    "GreaterThan",
    "GreaterThanOrEqual",
    "LessThan",
    "LessThanOrEqual",
    "Mod",
    "Mul",
    "Not",
    "NotEqual",
    "Or",
    "Pow",
    "Sub",
]


class GetItem(Task):
    """``task_result[key]``; ``default`` (if given) is returned on a missing key or index."""

    def __init__(self, default: Any = no_default, **kwargs: Any) -> None:
        self.default = default
        super().__init__(**kwargs)

    def run(self, task_result: Any, key: Any, default: Any = no_default) -> Any:
        if default is no_default:
            default = self.default
        try:
            return task_result[key]
        except (KeyError, IndexError):
            if default is no_default:
                raise
            return default


class GetAttr(Task):
    """``getattr(task_result, attr)`` (dotted names allowed) with an optional default."""

    def __init__(self, default: Any = no_default, **kwargs: Any) -> None:
        self.default = default
        super().__init__(**kwargs)

    def run(self, task_result: Any, attr: str, default: Any = no_default) -> Any:
        if default is no_default:
            default = self.default
        value = task_result
        try:
            for part in attr.split("."):
                value = getattr(value, part)
        except AttributeError:
            if default is no_default:
                raise
            return default
        return value


class Not(Task):
    """``not x``."""

    def run(self, x: Any) -> bool:
        return not x


class Add(Task):
    """``x + y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x + y


class Sub(Task):
    """``x - y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x - y


class Mul(Task):
    """``x * y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x * y


class Div(Task):
    """``x / y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x / y


class FloorDiv(Task):
    """``x // y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x // y


class Pow(Task):
    """``x ** y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x**y


class Mod(Task):
    """``x % y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x % y


class And(Task):
    """``x and y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x and y


class Or(Task):
    """``x or y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x or y


class Equal(Task):
    """``x == y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x == y


class NotEqual(Task):
    """``x != y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x != y


class GreaterThanOrEqual(Task):
    """``x >= y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x >= y


class GreaterThan(Task):
    """``x > y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x > y


class LessThanOrEqual(Task):
    """``x <= y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x <= y


class LessThan(Task):
    """``x < y``."""

    def run(self, x: Any, y: Any) -> Any:
        return x < y
