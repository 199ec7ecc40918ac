"""``flowcore.engine.executors``: the executors where Prefect 1's older code imports them
from (``prefect.engine.executors``, which Prefect 1.4 kept as an alias of
``prefect.executors``, warning that the classes had moved). The classes are those of
:mod:`flowcore.executors`, handed out with a ``UserWarning`` that says to import them from
there."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import flowcore.executors as _executors

if TYPE_CHECKING:
    from flowcore.executors import DaskExecutor, Executor, LocalDaskExecutor, LocalExecutor

__all__ = ["DaskExecutor", "Executor", "LocalDaskExecutor", "LocalExecutor"]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    """The executor class ``name`` of :mod:`flowcore.executors`, with the warning."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"flowcore.engine.executors.{name} is Prefect 1's old place for it; import it from "
        "flowcore.executors",
        UserWarning,
        stacklevel=2,
    )
    return getattr(_executors, name)
