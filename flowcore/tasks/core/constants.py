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
        kwargs.setdefault("result", ConstantResult(value=value))
        super().__init__(name=name if name is not None else _name_for(value), **kwargs)

    @classmethod
    def auto(cls, value: Any) -> Constant:
        """An auto-generated constant like ``Constant(value)``, cloned from a prototype
        instead of constructed (the engine makes one per constant input of a flow)."""
        new = object.__new__(cls)
        new.__dict__.update(_PROTOTYPE.__dict__)
        new.value = value
        new.name = _name_for(value)
        new.result = ConstantResult(value=value)
        new.tags = set()
        new.state_handlers = []
        new.auto_generated = True
        return new

    def run(self) -> Any:
        return self.value


def _name_for(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 8 else f"Constant[{type(value).__name__}]"


_PROTOTYPE = Constant(None)
