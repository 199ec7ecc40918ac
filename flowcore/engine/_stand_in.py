"""Exceptions that pickle but cannot be loaded again, made to travel.

A common exception class cannot survive pickling: ``BaseException`` pickles as
``type(exc)(*exc.args)`` plus its ``__dict__``, so one whose ``__init__`` takes other
arguments than its ``args``, e.g.::

    class NoReduce(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}-{b}")

pickles without complaint, and loading it calls ``NoReduce("1-2")``, which raises
``TypeError`` (missing argument ``b``). A state carrying such an exception
(``engine.state``) pickles :func:`portable` of it instead::

    portable(exc, reason)
        the same exception, rebuilt without calling __init__ (the class's __new__ with
            its args, then its __dict__), when that loads: NoReduce('1-2'), a NoReduce
            (what Prefect 1 gets on processes, where dask installs tblib's exception
            pickling)
        else a stand-in: an exception of a class of the same name and module (a subclass
            of StandIn, not of the original) with the same message; ``reason`` says why

A stand-in pickles by :func:`_stand_in` (importable wherever flowcore is), never by its
class, so it loads in any process; one class per original name is made per process.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any

__all__ = ["StandIn", "portable"]

_classes: dict[tuple[str, str], type[StandIn]] = {}
_classes_lock = threading.Lock()


class StandIn(Exception):
    """Base class of the stand-ins (see the module docs); ``reason`` says why the original
    exception could not travel."""

    reason: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        cls = type(self)
        return _stand_in, (cls.__module__, cls.__qualname__, self.args, self.reason)


class _WithoutInit:
    """Pickles as ``exc`` rebuilt without calling its ``__init__``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self) -> tuple[Any, ...]:
        exc = self.exc
        return _without_init, (type(exc), exc.args, dict(getattr(exc, "__dict__", {})))


def portable(exc: BaseException, reason: str) -> Any:
    """What to pickle in place of ``exc`` (see the module docs)."""
    rebuilt = _WithoutInit(exc)
    if _loads_back(rebuilt):
        return rebuilt
    cls = type(exc)
    args = exc.args if _loads_back(exc.args) else (str(exc),)
    return _stand_in(cls.__module__, cls.__qualname__, args, reason)


def _loads_back(value: Any) -> bool:
    """Whether ``value`` pickles (cloudpickle) and loads again."""
    import cloudpickle

    try:
        pickle.loads(cloudpickle.dumps(value))
    except Exception:  # noqa: BLE001 - any error of the value's own reduce or init
        return False
    return True


def _without_init(
    cls: type[BaseException], args: tuple[Any, ...], attributes: dict[str, Any]
) -> BaseException:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(attributes)
    return exc


def _stand_in(module: str, qualname: str, args: tuple[Any, ...], reason: str) -> StandIn:
    key = (module, qualname)
    with _classes_lock:
        cls = _classes.get(key)
        if cls is None:
            name = qualname.rpartition(".")[2]
            cls = type(name, (StandIn,), {"__module__": module, "__qualname__": qualname})
            _classes[key] = cls
    made = cls(*args)
    made.reason = reason
    return made
