"""Executors run task runs: ``start()`` a session, ``submit`` work, ``wait`` for results.

``LocalExecutor`` runs each call at once in the calling thread; ``LocalDaskExecutor`` uses a
local pool of threads or processes; ``DaskExecutor`` uses a Dask cluster. See
``docs/executors.md`` for choosing one.

The two Dask executors' module (and the process pools it brings: ``multiprocessing`` and
``concurrent.futures``, about 10-25 ms to import) loads on first use of their names, so a
flow run on ``LocalExecutor`` does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowcore.executors.base import Executor
from flowcore.executors.local import LocalExecutor
from flowcore.utilities.submodules import import_submodule

if TYPE_CHECKING:
    from flowcore.executors.dask import DaskExecutor, LocalDaskExecutor

__all__ = ["DaskExecutor", "Executor", "LocalDaskExecutor", "LocalExecutor"]

_LAZY = {"DaskExecutor": "flowcore.executors.dask", "LocalDaskExecutor": "flowcore.executors.dask"}


def __getattr__(name: str) -> Any:
    """Import ``DaskExecutor`` or ``LocalDaskExecutor``, or a submodule, on first use."""
    module = _LAZY.get(name)
    if module is None:
        return import_submodule(__name__, name)  # (flowcore.executors.dask, ...)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
