"""The words of cache decisions: why a record was not used, what changed, who wrote it.

One place for the reasons a task run logs and ``flowcore cache explain`` prints::

    explain_miss(newest, inputs, parameters, validator)   "input 'x' changed", "the cached
                                                          value expired at ...", ...
    closest_miss(candidates, inputs, parameters, ...)     the same, told against the record
                                                          that differs least
    describe_change(part, previous, inputs, parameters)   one policy key part: "input 'x'
                                                          changed", "code changed", ...
    provenance(record)                                    " (written by flow run R 5m ago;
                                                          value at L)"
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from flowcore.caching.records import CacheRecord
from flowcore.engine.cache_validators import unexpired
from flowcore.engine.state import Cached
from flowcore.utilities.hashing import UnhashableValue, hash_value
from flowcore.utilities.units import format_duration

__all__ = ["ATTRIBUTES_PART", "closest_miss", "describe_change", "explain_miss", "provenance"]

ATTRIBUTES_PART = "TASK_SOURCE attributes"
"""The key part of a task class's own attributes (``self.factor``), in records."""

Validator = Callable[[Cached, Mapping[str, Any], Mapping[str, Any]], bool]


def describe_change(
    part: str, previous: CacheRecord, inputs: Mapping[str, Any], parameters: Mapping[str, Any]
) -> str:
    """What changed in one named key part, in words ("input 'x' changed", "code changed")."""
    if part.startswith("INPUTS"):
        before = {k: v for k, v in (previous.inputs or {}).items() if k in inputs}
        return _changed_phrase("input", before, inputs)
    if part == "FLOW_PARAMETERS":
        return _changed_phrase("parameter", previous.parameters or {}, parameters)
    return {
        "TASK_SOURCE": "code changed",
        ATTRIBUTES_PART: "the task's attributes changed",
        "RUN_ID": "another flow run",
    }.get(part, f"{part} changed")


def _changed_phrase(what: str, before: Mapping[str, str], values: Mapping[str, Any]) -> str:
    try:
        return _named(what, _changed(before, values))
    except UnhashableValue:
        return f"{what}s changed"


def _changed(
    before: Mapping[str, str], values: Mapping[str, Any], keys: Iterable[str] | None = None
) -> list[str]:
    """The names whose value's digest differs from ``before`` (added and removed too)."""
    names = set(before) | set(values) if keys is None else set(keys)
    return sorted(
        n
        for n in names
        if (n in before) != (n in values) or (n in values and before[n] != hash_value(values[n]))
    )


def _named(what: str, names: list[str]) -> str:
    """``input 'x', 'y' changed`` (``inputs changed`` without names)."""
    return (
        f"{what} " + ", ".join(f"'{n}'" for n in names) + " changed"
        if names
        else f"{what}s changed"
    )


def provenance(record: CacheRecord) -> str:
    """ " (written by flow run R 5 min ago; value at L)" for a stored record."""
    return f" (written by flow run {record.flow_run_id} {format_duration(datetime.now(timezone.utc) - record.created)} ago; value at {record.value_location})"


def explain_miss(
    candidate: Cached,
    inputs: Mapping[str, Any],
    parameters: Mapping[str, Any],
    validator: Validator | None = None,
) -> str:
    """Why ``candidate`` (the newest record) was not used, in words."""
    return _miss(candidate, inputs, parameters, validator)[0]


def closest_miss(
    candidates: Sequence[Cached],
    inputs: Mapping[str, Any],
    parameters: Mapping[str, Any],
    validator: Validator | None = None,
) -> tuple[int, str]:
    """Why none of ``candidates`` (oldest first) was used, told against the one closest to
    this run: the fewest changed inputs or parameters (one of these very values, expired or
    rejected otherwise, is closest), the newest of equals. Returns its position and why.

    >>> from flowcore.utilities.hashing import hash_value
    >>> def seen(**values): return Cached(hashed_inputs={k: hash_value(v) for k, v in values.items()})
    >>> def all_inputs(state, inputs, parameters): return False
    >>> closest_miss([seen(x=1, y=1), seen(x=5, y=5)], {"x": 1, "y": 2}, {}, all_inputs)
    (0, "input 'y' changed")
    """
    told = [_miss(candidate, inputs, parameters, validator) for candidate in candidates]
    index = min(range(len(told)), key=lambda i: (told[i][1], -i))
    return index, told[index][0]


def _miss(
    candidate: Cached,
    inputs: Mapping[str, Any],
    parameters: Mapping[str, Any],
    validator: Validator | None,
) -> tuple[str, int]:
    """Why ``candidate`` was not used, and how many inputs or parameters that names."""
    expiration = candidate.cached_result_expiration
    if not unexpired(expiration):
        return f"the cached value expired at {expiration.isoformat()}", 0
    name = getattr(validator, "__name__", "")
    keys = getattr(validator, "validate_on", None)
    if name in ("all_inputs", "partial_inputs_only"):
        changed = _changed(candidate.hashed_inputs or {}, inputs, keys)
        if changed:
            return _named("input", changed), len(changed)
    if name in ("all_parameters", "partial_parameters_only"):
        changed = _changed_parameters(candidate, parameters, keys)
        if changed:
            return _named("parameter", changed), len(changed)
    return f"cache_validator {name or validator!r} rejected it", 0


def _changed_parameters(
    candidate: Cached, parameters: Mapping[str, Any], keys: list[str] | None
) -> list[str]:
    cached = candidate.cached_parameters or {}
    names = set(cached) | set(parameters) if keys is None else set(keys)
    return sorted(k for k in names if cached.get(k, _ABSENT) != parameters.get(k, _ABSENT))


_ABSENT = object()
