"""Cache validators decide whether a ``Cached`` state may be reused (Prefect 1 semantics).

A validator is ``fn(state: Cached, inputs: {name: value}, parameters: dict) -> bool``.
Every built-in except ``never_use`` first checks that the cache has not expired.

>>> from flowcore.engine.state import Cached
>>> import pendulum
>>> fresh = Cached(cached_result_expiration=pendulum.now("UTC").add(hours=1),
...                hashed_inputs={"x": tokenize(1)}, cached_parameters={"p": 1})
>>> duration_only(fresh, {}, {}), all_inputs(fresh, {"x": 1}, {}), all_inputs(fresh, {"x": 2}, {})
(True, True, False)
>>> all_parameters(fresh, {}, {"p": 1}), partial_parameters_only(["q"])(fresh, {}, {"p": 2})
(True, True)
>>> never_use(fresh, {}, {})
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import pendulum

from flowcore.engine.state import State
from flowcore.utilities.hashing import hash_value

__all__ = [
    "all_inputs",
    "all_parameters",
    "duration_only",
    "never_use",
    "partial_inputs_only",
    "partial_parameters_only",
    "unexpired",
    "tokenize",
]

Validator = Callable[[State, Mapping[str, Any], Mapping[str, Any]], bool]


def tokenize(value: Any) -> str:
    """The digest stored in ``hashed_inputs``: flowcore's one hashing helper
    (:func:`flowcore.utilities.hashing.hash_value`), which equals Prefect 1's
    ``dask.base.tokenize`` for values with no registered hasher, and raises
    ``UnhashableValue`` (a ValueError) where dask would return a random token."""
    return hash_value(value)


def never_use(state: State, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
    """Never reuse a cache (the default without ``cache_for``)."""
    return False


def duration_only(state: State, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
    """Reuse until ``cached_result_expiration`` (None: forever). The default with ``cache_for``."""
    return unexpired(getattr(state, "cached_result_expiration", None))


def unexpired(expiration: datetime | None) -> bool:
    """Whether ``expiration`` (None: never) is still ahead. An expiration in UTC, as
    flowcore makes them, is compared with now in its own time zone object: two datetimes
    with the same ``tzinfo`` compare without asking it for their offsets, which for
    pendulum's UTC is Python code (0.3 us instead of 0.9 us, on every cache hit)."""
    if expiration is None:
        return True
    zone = expiration.tzinfo
    if zone is pendulum.UTC or zone is timezone.utc:
        return expiration > datetime.now(zone)
    return expiration > datetime.now(timezone.utc)


def _inputs_match(state: State, inputs: Mapping[str, Any] | None, keys: list[str] | None) -> bool:
    inputs = inputs or {}
    hashed = getattr(state, "hashed_inputs", None)
    if hashed is not None:
        current = {k: tokenize(v) for k, v in inputs.items()}
        cached = dict(hashed)
    else:
        current = dict(inputs)
        cached = {k: r.value for k, r in (state.cached_inputs or {}).items()}
    if keys is None:
        return cached == current
    return {k: cached.get(k, _MISSING) for k in keys} == {k: current.get(k, _MISSING) for k in keys}


class _Missing:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Missing)

    __hash__ = object.__hash__


_MISSING = _Missing()


def all_inputs(state: State, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
    """Reuse while unexpired and every input equals (by token) the cached one."""
    return duration_only(state, inputs, parameters) and _inputs_match(state, inputs, None)


def all_parameters(state: State, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
    """Reuse while unexpired and the flow parameters equal the cached ones."""
    return (
        duration_only(state, inputs, parameters)
        and getattr(state, "cached_parameters", None) == parameters
    )


def partial_parameters_only(validate_on: Iterable[str] | None = None) -> Validator:
    """Reuse while unexpired and the listed parameters equal the cached ones."""
    keys = None if validate_on is None else list(validate_on)

    def partial_parameters_only(
        state: State, inputs: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> bool:
        if not duration_only(state, inputs, parameters):
            return False
        if keys is None:
            return True
        cached = getattr(state, "cached_parameters", None) or {}
        current = parameters or {}
        return {k: cached.get(k, _MISSING) for k in keys} == {
            k: current.get(k, _MISSING) for k in keys
        }

    partial_parameters_only.validate_on = keys  # type: ignore[attr-defined]
    return partial_parameters_only


def partial_inputs_only(validate_on: Iterable[str] | None = None) -> Validator:
    """Reuse while unexpired and the listed inputs equal (by token) the cached ones."""
    keys = None if validate_on is None else list(validate_on)

    def partial_inputs_only(
        state: State, inputs: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> bool:
        if not duration_only(state, inputs, parameters):
            return False
        if keys is None:
            return True
        return _inputs_match(state, inputs, keys)

    partial_inputs_only.validate_on = keys  # type: ignore[attr-defined]
    return partial_inputs_only
