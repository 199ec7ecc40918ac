"""Debugging helpers: let task exceptions propagate, and check that an object can travel.

``raise_on_exception()`` turns a flow run's failures back into ordinary tracebacks;
``is_serializable(obj)`` answers whether ``obj`` survives the trip a process-based
executor, a Dask worker or a later ``flowcore resume`` puts it through: cloudpickled here,
loaded by a fresh Python interpreter (same executable, environment and working directory).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cloudpickle

from flowcore.utilities.context import context

__all__ = ["is_serializable", "raise_on_exception"]

_LOAD_FROM_STDIN = "import sys, cloudpickle; cloudpickle.loads(sys.stdin.buffer.read())"


def is_serializable(obj: Any, raise_on_error: bool = False) -> bool:
    """Whether ``obj`` can be cloudpickled here and unpickled in a fresh process.

    Args:
        obj: the object to check (a task, a flow, a result value...).
        raise_on_error: raise instead of returning False: the pickling error itself, or a
            ``subprocess.CalledProcessError`` whose ``output`` holds the fresh process's
            traceback (e.g. a ``ModuleNotFoundError`` for a class only this process can
            import).

    Prefect 1 wrote the payload and a loader script to temporary files and ran them through
    a shell, which kept it off Windows; here the payload goes through the child's stdin.

    >>> is_serializable(lambda x: x + 1)
    True
    """
    try:
        payload = cloudpickle.dumps(obj)
        subprocess.run(
            [sys.executable, "-c", _LOAD_FROM_STDIN],
            input=payload,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=True,
        )
    except Exception:
        if raise_on_error:
            raise
        return False
    return True


@contextmanager
def raise_on_exception() -> Iterator[None]:
    """Let exceptions raised inside tasks propagate instead of becoming ``Failed`` states.

    Use it to drop into a debugger at the failing line::

        with raise_on_exception():
            flow.run()
    """
    with context(raise_on_exception=True):
        yield
