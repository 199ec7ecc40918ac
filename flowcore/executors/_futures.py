"""Futures inside the plain containers a call's arguments and a ``wait`` are made of.

Both pools of futures the executors hand out (``concurrent.futures`` futures of the local
pools, ``distributed`` futures of a Dask cluster) are found and replaced the same way, one
pass over the data::

    find_futures(data, future_type)      the futures inside ``data``, in order
    map_futures(data, future_type, fn)   a copy of ``data`` with each future ``f`` in it
                                         replaced by ``fn(f)``

Lists, tuples, sets, frozensets and dict values are looked into (of exactly these types:
a subclass, such as a named tuple, is a value like any other); anything else is kept as
it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["find_futures", "map_futures"]

_SEQUENCES = (list, tuple, set, frozenset)


def map_futures(data: Any, future_type: type, fn: Callable[[Any], Any]) -> Any:
    """``data`` with each future inside lists, tuples, sets and dict values replaced by
    ``fn(future)``."""
    if isinstance(data, future_type):
        return fn(data)
    kind = type(data)
    if kind is list:
        return [map_futures(item, future_type, fn) for item in data]
    if kind is dict:
        return {key: map_futures(value, future_type, fn) for key, value in data.items()}
    if kind is tuple or kind is set or kind is frozenset:
        return kind(map_futures(item, future_type, fn) for item in data)
    return data


def find_futures(data: Any, future_type: type) -> list[Any]:
    """The futures inside ``data`` (as :func:`map_futures` sees them), without copying it."""
    found: list[Any] = []
    _find(data, future_type, found)
    return found


def _find(data: Any, future_type: type, found: list[Any]) -> None:
    if isinstance(data, future_type):
        found.append(data)
        return
    kind = type(data)
    if kind is dict:
        for value in data.values():
            _find(value, future_type, found)
    elif kind in _SEQUENCES:
        for item in data:
            _find(item, future_type, found)
