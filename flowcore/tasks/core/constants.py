"""``Constant``: a task that returns a value known when the flow is built."""

from __future__ import annotations

from typing import Any

from flowcore.core.task import Task
from flowcore.engine.results import ConstantResult

__all__ = ["Constant"]


class Constant(Task):
    """Returns ``value``. The engine sets its state directly and never runs it.

    Its name is ``repr(value)`` when that is at most 8 characters, else
    ``Constant[<type>]``.
    """

    _is_constant = True
    _skip_case_attach = True

    def __init__(self, value: Any, name: str | None = None, **kwargs: Any) -> None:
        self.value = value
        if name is None:
            text = repr(value)
            name = text if len(text) <= 8 else f"Constant[{type(value).__name__}]"
        kwargs.setdefault("result", ConstantResult(value=value))
        super().__init__(name=name, **kwargs)

    def run(self) -> Any:
        return self.value
