"""Executors run task runs: ``start()`` a session, ``submit`` work, ``wait`` for results."""

from flowcore.executors.base import Executor
from flowcore.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor"]
