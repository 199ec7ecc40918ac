"""Executors run task runs: ``start()`` a session, ``submit`` work, ``wait`` for results.

``LocalExecutor`` runs each call at once in the calling thread; ``LocalDaskExecutor`` uses a
local pool of threads or processes; ``DaskExecutor`` uses a Dask cluster. See
``docs/executors.md`` for choosing one.
"""

from flowcore.executors.base import Executor
from flowcore.executors.dask import DaskExecutor, LocalDaskExecutor
from flowcore.executors.local import LocalExecutor

__all__ = ["DaskExecutor", "Executor", "LocalDaskExecutor", "LocalExecutor"]
