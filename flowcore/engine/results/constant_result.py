"""``ConstantResult``: a value known at build time; it is never written."""

from __future__ import annotations

from typing import Any

from flowcore.engine.result.base import Result

__all__ = ["ConstantResult"]


class ConstantResult(Result):
    """Carries a constant; ``read`` returns itself and ``exists`` is always True."""

    def __init__(self, **kwargs: Any) -> None:
        if "serializer" in kwargs:
            raise ValueError("Can't pass a serializer to a ConstantResult.")
        super().__init__(**kwargs)

    def exists(self, location: str, **kwargs: Any) -> bool:
        return True

    def read(self, location: str) -> Result:
        return self

    def write(self, value_: Any, **kwargs: Any) -> Result:
        raise ValueError("Cannot write values to `ConstantResult` types.")
