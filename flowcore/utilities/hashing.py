"""The one hashing helper: stable digests of inputs, parameters and key parts.

Every cache decision that compares values compares their digests, made here::

    hash_value(value)                    one hex digest, the same in every process and run
        registered type (register_hasher) -> the hasher's description, hashed in its place
        list / tuple / dict / set          -> walked, so registered types inside count too
        anything else                      -> dask.base.tokenize, in deterministic mode

Prefect 1 stored ``dask.base.tokenize(value)`` in ``Cached.hashed_inputs``; for values with
no registered hasher the digest is exactly that token, so states made by either engine
compare equal. A value dask can only tokenize non-deterministically (a ``threading.Lock``,
an object that does not pickle) raises :class:`UnhashableValue` instead of returning a random
token that would never match: the cache plan then runs the task uncached, with one WARNING.

>>> hash_value(1) == hash_value(1), hash_value([1, "a"]) == hash_value([1, "b"])
(True, False)
>>> import threading
>>> hash_value(threading.Lock())
Traceback (most recent call last):
...
flowcore.utilities.hashing.UnhashableValue: cannot hash a lock deterministically ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["HashedValue", "UnhashableValue", "hash_value", "register_hasher"]

_HASHERS: dict[type, Callable[[Any], Any]] = {}


class UnhashableValue(ValueError):
    """A value has no deterministic digest (register a hasher for its type)."""

    def __init__(self, value: Any, reason: str) -> None:
        self.name: str | None = None  # the input or parameter it was, when known
        self.type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        super().__init__(
            f"cannot hash a {type(value).__name__} deterministically ({reason}); register a "
            f"hasher for it with flowcore.caching.register_hasher({type(value).__name__}, fn)"
        )


def register_hasher(type_: type, hasher: Callable[[Any], Any]) -> None:
    """Hash instances of ``type_`` (and its subclasses) by ``hasher(value)``, a description
    that is itself hashable (str, bytes, numbers, tuples of them...).

    Args:
        type_: the class whose instances the hasher describes.
        hasher: ``fn(value) -> description``; equal descriptions mean equal digests.
    """
    if not isinstance(type_, type):
        raise TypeError(f"register_hasher needs a class, got {type_!r}")
    if not callable(hasher):
        raise TypeError(f"register_hasher needs a callable hasher, got {hasher!r}")
    _HASHERS[type_] = hasher


def _hasher_for(cls: type) -> Callable[[Any], Any] | None:
    if not _HASHERS:
        return None
    for base in cls.__mro__:
        found = _HASHERS.get(base)
        if found is not None:
            return found
    return None


def _normalised(value: Any) -> Any:
    """``value`` with registered types replaced by tagged descriptions (containers walked)."""
    cls = type(value)
    hasher = _hasher_for(cls)
    if hasher is not None:
        return ("flowcore-hasher", cls.__module__, cls.__qualname__, _normalised(hasher(value)))
    if cls in (list, tuple):
        items = [_normalised(v) for v in value]
        return items if cls is list else tuple(items)
    if cls is dict:
        return {k: _normalised(v) for k, v in value.items()}
    if cls in (set, frozenset):
        return cls(_normalised(v) for v in value)
    return value


def hash_value(value: Any) -> str:
    """The stable digest of ``value`` (see the module docstring).

    Raises:
        UnhashableValue: the value has no deterministic digest.
    """
    import dask
    from dask.base import tokenize

    if _HASHERS:
        value = _normalised(value)
    try:
        with dask.config.set({"tokenize.ensure-deterministic": True}):
            return tokenize(value)
    except Exception as exc:
        raise UnhashableValue(value, str(exc).split("\n", 1)[0]) from exc


def hash_mapping(values: Mapping[str, Any]) -> dict[str, str]:
    """``{name: hash_value(value)}``; raises :class:`UnhashableValue` naming the entry."""
    digests = {}
    for name, value in values.items():
        try:
            digests[name] = hash_value(value)
        except UnhashableValue as exc:
            exc.name = name
            raise
    return digests


class HashedValue:
    """A value known only by its digest (a parameter read back from a cache record).

    It compares equal to any value with that digest, so Prefect 1's parameter validators
    (``cached_parameters == parameters``) work on records from a persistent store.
    """

    __slots__ = ("digest",)

    def __init__(self, digest: str) -> None:
        self.digest = digest

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HashedValue):
            return self.digest == other.digest
        try:
            return hash_value(other) == self.digest
        except UnhashableValue:
            return False

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"<value with digest {self.digest[:12]}>"
