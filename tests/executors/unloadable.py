"""Tasks whose exceptions or results pickle but cannot be loaded again, in a module that
worker processes import (``test_unloadable_values.py``)."""

from __future__ import annotations

import os
import threading
from typing import Any

from flowcore import task
from flowcore.engine import signals


class NoReduce(Exception):
    """Pickles as ``NoReduce("1-2")``, which its ``__init__`` refuses (missing ``b``)."""

    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(f"{a}-{b}")


class NoNew(Exception):
    """Cannot be loaded, nor rebuilt without its ``__init__``: its ``__new__`` needs ``b``."""

    def __new__(cls, a: Any, b: Any) -> NoNew:
        return super().__new__(cls, f"{a}-{b}")

    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(f"{a}-{b}")


class NotInThatProcess:
    """Loads anywhere but in the process whose pid it carries."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __reduce__(self) -> tuple[Any, ...]:
        return _load_outside, (self.pid,)


def _load_outside(pid: int) -> NotInThatProcess:
    if os.getpid() == pid:
        raise RuntimeError(f"NotInThatProcess cannot be loaded in process {pid}")
    return NotInThatProcess(pid)


@task
def raise_noreduce(x: int) -> int:
    raise NoReduce(1, 2)


@task
def child(x: int) -> int:
    if x == 13:
        raise NoReduce(1, 2)
    return x


@task
def returns_noreduce_inside(x: int) -> dict[str, Any]:
    return {"errors": [NoReduce(1, 2)]}


@task
def returns_unloadable_in(pid: int) -> NotInThatProcess:
    return NotInThatProcess(pid)


@task
def ok(x: int) -> int:
    return x


@task
def lock_on(x: int, bad: int, how: str) -> Any:
    """``x``; child ``bad`` returns a lock (``how`` "return") or fails with one as its
    result (``how`` "fail"): a state that cannot be pickled."""
    if x != bad:
        return x
    if how == "fail":
        raise signals.FAIL("failed with a lock", result=threading.Lock())
    return threading.Lock()
