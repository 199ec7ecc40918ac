"""Prefect 1's operator overloads on tasks: ``a + b``, ``a > 1``, ``t.is_equal(x)``, ...

Each builds a new operator task (``flowcore.tasks.core.operators``) in the active flow,
bound to the operands; reversed forms swap them. ``==`` is not overloaded (tasks keep
identity equality), hence ``is_equal`` / ``is_not_equal``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowcore.core.task import Task

__all__ = ["OperatorMixin"]


class OperatorMixin:
    """The operator methods of ``Task``."""

    def _operator(self, name: str, *operands: Any) -> Task:
        from flowcore.tasks.core import operators

        return getattr(operators, name)().bind(*operands)  # type: ignore[no-any-return]

    def __add__(self, other: Any) -> Task:
        return self._operator("Add", self, other)

    def __radd__(self, other: Any) -> Task:
        return self._operator("Add", other, self)

    def __sub__(self, other: Any) -> Task:
        return self._operator("Sub", self, other)

    def __rsub__(self, other: Any) -> Task:
        return self._operator("Sub", other, self)

    def __mul__(self, other: Any) -> Task:
        return self._operator("Mul", self, other)

    def __rmul__(self, other: Any) -> Task:
        return self._operator("Mul", other, self)

    def __truediv__(self, other: Any) -> Task:
        return self._operator("Div", self, other)

    def __rtruediv__(self, other: Any) -> Task:
        return self._operator("Div", other, self)

    def __floordiv__(self, other: Any) -> Task:
        return self._operator("FloorDiv", self, other)

    def __rfloordiv__(self, other: Any) -> Task:
        return self._operator("FloorDiv", other, self)

    def __mod__(self, other: Any) -> Task:
        return self._operator("Mod", self, other)

    def __rmod__(self, other: Any) -> Task:
        return self._operator("Mod", other, self)

    def __pow__(self, other: Any) -> Task:
        return self._operator("Pow", self, other)

    def __rpow__(self, other: Any) -> Task:
        return self._operator("Pow", other, self)

    def __and__(self, other: Any) -> Task:
        return self._operator("And", self, other)

    def __rand__(self, other: Any) -> Task:
        return self._operator("And", other, self)

    def __gt__(self, other: Any) -> Task:
        return self._operator("GreaterThan", self, other)

    def __ge__(self, other: Any) -> Task:
        return self._operator("GreaterThanOrEqual", self, other)

    def __lt__(self, other: Any) -> Task:
        return self._operator("LessThan", self, other)

    def __le__(self, other: Any) -> Task:
        return self._operator("LessThanOrEqual", self, other)

    def is_equal(self, other: Any) -> Task:
        """A task that computes ``self == other`` (``==`` itself keeps identity)."""
        return self._operator("Equal", self, other)

    def is_not_equal(self, other: Any) -> Task:
        return self._operator("NotEqual", self, other)

    def not_(self) -> Task:
        return self._operator("Not", self)

    def or_(self, other: Any) -> Task:
        return self._operator("Or", self, other)
