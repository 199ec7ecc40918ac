"""``flowcore.engine.executors``: the executors where Prefect 1's older code imports them
from (``prefect.engine.executors``, which Prefect 1.4 kept as an alias of
``prefect.executors``, warning that the classes had moved). The classes are those of
:mod:`flowcore.executors`; import them from there."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import flowcore.executors as _executors
from flowcore.executors import Executor, LocalExecutor

if TYPE_CHECKING:
    from flowcore.executors import DaskExecutor, LocalDaskExecutor

__all__ = ["DaskExecutor", "Executor", "LocalDaskExecutor", "LocalExecutor"]

warnings.warn(
    "flowcore.engine.executors is Prefect 1's old place for the executors; import them from "
    "flowcore.executors",
    UserWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    """``DaskExecutor`` and ``LocalDaskExecutor``, imported on first use (as there)."""
    if name in ("DaskExecutor", "LocalDaskExecutor"):
        return getattr(_executors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
