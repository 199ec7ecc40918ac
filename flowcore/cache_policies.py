"""Prefect 3-style cache policies: a cache key computed from what a task run depends on.

A policy turns a task run into a key; runs with the same key share one cached value::

    INPUTS            the task's inputs (by argument name; defaults of those not given)
    TASK_SOURCE       the task's code, and a task class's attributes (see below)
    FLOW_PARAMETERS   the flow run's parameters
    RUN_ID            the flow run id (a cache that lasts one flow run)
    DEFAULT           INPUTS + TASK_SOURCE + RUN_ID
    NONE              never cache

Policies compose with ``+`` (every policy but ``NONE``); ``INPUTS - "debug"`` ignores an
input; ``CacheKeyFnPolicy(fn)`` (or the task argument ``cache_key_fn=fn``) uses
``fn(context, parameters) -> str | None``, where ``context`` has ``task_run_id``,
``flow_run_id`` and ``task`` and ``parameters`` is the task's input dict. A key function
returning None means "do not cache this run".

``policy.configure(key_storage=..., isolation_level=..., lock_manager=...)`` returns a
copy that keeps cache records apart from values (a directory or a ``Result``), and sets
the isolation level (``flowcore.transactions.IsolationLevel``) and the lock manager.

What counts as a task's *code* for ``TASK_SOURCE``: the task's function (``@task``) or its
``run`` method compared as a syntax tree (comments, blank lines, formatting, the docstring
and decorators do not count), plus what it uses from the user's own code: the functions and
classes it calls or reads, its closure cells and the module globals it reads (constants by
value), followed to a bounded depth; installed packages count by name and version
(:mod:`flowcore.caching.code`). ``Task(cache_version=...)`` is a part of the key to bump
by hand. A task class configured in its constructor (``self.factor = factor``) also counts
by those attributes: the ones its constructor set beyond those every task has, each by its
value (:func:`flowcore.caching.hash_value`); an attribute with no deterministic digest makes
the key uncomputable, as an input does; they are hashed once per task object, again only
when one is reassigned (a change in place is not seen). A ``@task`` function has no such
attributes. The
key is the same in a process-pool worker as where the flow was built (the digest of the
code travels with the task: :func:`flowcore.caching.code.carried_digest`).

Keys are hashes of tagged structures, so different kinds of keys cannot collide. An input
that cannot be hashed deterministically makes the key uncomputable: the task then runs
uncached, with a WARNING.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import operator
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flowcore.caching.code import carried_digest, code_digest, source_digest
from flowcore.caching.reasons import ATTRIBUTES_PART
from flowcore.engine.result import Result
from flowcore.locking.base import LockManager
from flowcore.transactions import IsolationLevel
from flowcore.utilities.hashing import (
    UnhashableValue,
    hash_mapping,
    hash_mapping_noting_files,
    hashers_generation,
)

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "KeyContext",
    "NoCache",
    "RunId",
    "TaskSource",
]


class KeyContext:
    """What a policy (and a ``cache_key_fn``) sees of the task run."""

    __slots__ = ("task", "task_run_id", "flow_run_id", "parameters")

    def __init__(
        self,
        task: Any,
        task_run_id: str | None,
        flow_run_id: str | None,
        parameters: Mapping[str, Any],
    ) -> None:
        self.task = task
        self.task_run_id = task_run_id
        self.flow_run_id = flow_run_id
        self.parameters = parameters

    def __repr__(self) -> str:
        return f"<KeyContext task={getattr(self.task, 'name', self.task)!r} flow_run_id={self.flow_run_id!r}>"


class CachePolicy:
    """Base class: ``compute_key`` returns a key, or None for "do not cache"."""

    key_storage: Any = None
    isolation_level: IsolationLevel | None = None
    lock_manager: Any = None

    def compute_key(self, context: KeyContext, inputs: Mapping[str, Any]) -> str | None:
        raise NotImplementedError(f"{type(self).__name__} must implement compute_key()")

    def describe_key(
        self, context: KeyContext, inputs: Mapping[str, Any]
    ) -> tuple[str | None, dict[str, str]]:
        """The key and its named parts (``{repr(part policy): digest}``), for records."""
        key = self.compute_key(context, inputs)
        return key, ({} if key is None else {repr(self): key})

    def _part(self, context: KeyContext, inputs: Mapping[str, Any]) -> Any:
        """The tagged structure this policy contributes (None: no key)."""
        key = self.compute_key(context, inputs)
        return None if key is None else (type(self).__name__, key)

    def _describe(
        self, context: KeyContext, inputs: Mapping[str, Any]
    ) -> tuple[Any, dict[str, str]]:
        """:meth:`_part`, and this policy's named parts for records (``{repr: digest}``)."""
        part = self._part(context, inputs)
        return part, ({} if part is None else {repr(self): part[1]})

    def configure(
        self,
        key_storage: Any = None,
        isolation_level: IsolationLevel | None = None,
        lock_manager: Any = None,
    ) -> CachePolicy:
        """A copy with the given storage, isolation level or lock manager."""
        new = copy.copy(self)
        if key_storage is not None:
            if not isinstance(key_storage, (str, os.PathLike, Result)):
                raise TypeError(
                    f"key_storage must be a directory (a str or a path) or a Result such as "
                    f"LocalResult(dir=...), got {key_storage!r}"
                )
            new.key_storage = key_storage
        if isolation_level is not None:
            if not isinstance(isolation_level, IsolationLevel):
                raise TypeError(
                    f"isolation_level must be an IsolationLevel, got {isolation_level!r}"
                )
            new.isolation_level = isolation_level
        if lock_manager is not None:
            if not isinstance(lock_manager, LockManager):
                raise TypeError(
                    "lock_manager must be a flowcore.locking lock manager "
                    "(MemoryLockManager(), FileSystemLockManager(lock_dir), "
                    f"RedisLockManager(...), DaskLockManager()), got {lock_manager!r}"
                )
            new.lock_manager = lock_manager
        return new

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(self, NoCache) or isinstance(other, NoCache):
            raise ValueError("cache_policies.NONE cannot be combined with other policies")
        mine = self.policies if isinstance(self, CompoundCachePolicy) else [self]
        theirs = other.policies if isinstance(other, CompoundCachePolicy) else [other]
        combined = CompoundCachePolicy([*mine, *theirs])
        for source in (self, other):
            for attr in ("key_storage", "isolation_level", "lock_manager"):
                if getattr(source, attr) is not None and getattr(combined, attr) is None:
                    setattr(combined, attr, getattr(source, attr))
        return combined

    def __sub__(self, name: str) -> CachePolicy:
        raise TypeError(f"{self!r} has no inputs to ignore; use INPUTS - {name!r}")


class NoCache(CachePolicy):
    """Never cache (``NONE``)."""

    def compute_key(self, context: KeyContext, inputs: Mapping[str, Any]) -> str | None:
        return None

    def __repr__(self) -> str:
        return "NONE"


class Inputs(CachePolicy):
    """The task's inputs, by argument name, except ``exclude``."""

    def __init__(self, exclude: Iterable[str] = ()) -> None:
        self.exclude = frozenset(exclude)

    def compute_key(self, context: KeyContext, inputs: Mapping[str, Any]) -> str | None:
        digests = hash_mapping({k: v for k, v in inputs.items() if k not in self.exclude})
        return _combine("inputs", sorted(digests.items()))

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            raise TypeError(f"INPUTS - x takes an argument name, got {name!r}")
        new = copy.copy(self)
        new.exclude = self.exclude | {name}
        return new

    def __repr__(self) -> str:
        return "INPUTS" + "".join(f" - {n!r}" for n in sorted(self.exclude))


def _combine(tag: str, parts: Any) -> str:
    """The digest of a tagged structure of strings (digests, names): keys of different
    kinds cannot collide, and no value is tokenized twice."""
    body = json.dumps([tag, parts], separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


# (function, cache_version, carried digest or None) -> key, per process
_CODE_KEYS: dict[tuple[Any, Any, Any], str] = {}


class TaskSource(CachePolicy):
    """The task's code (see the module docstring for what counts), and a task class's own
    attributes."""

    def compute_key(self, context: KeyContext, inputs: Mapping[str, Any]) -> str | None:
        return self.describe_key(context, inputs)[0]

    def describe_key(
        self, context: KeyContext, inputs: Mapping[str, Any]
    ) -> tuple[str | None, dict[str, str]]:
        """The key, and its parts for records: the code and the attributes apart, so that a
        miss says which of them changed. A task with no attributes of its own (a ``@task``
        function) has the code's key, as before attributes counted."""
        code, attributes = _code_key(context.task), _attributes_digest(context.task)
        if attributes is None:
            return code, {repr(self): code}
        return _combine("task", [code, attributes]), {repr(self): code, ATTRIBUTES_PART: attributes}

    def _describe(
        self, context: KeyContext, inputs: Mapping[str, Any]
    ) -> tuple[Any, dict[str, str]]:
        key, named = self.describe_key(context, inputs)
        return (type(self).__name__, key), named

    def __repr__(self) -> str:
        return "TASK_SOURCE"


def _code_key(task: Any) -> str:
    fn, version = _task_function(task), getattr(task, "cache_version", None)
    carried = getattr(task, "__dict__", {}).get("_carried_code")
    try:  # the code's digest (carried or not) is kept per function: so can the key be
        return _CODE_KEYS[fn, version, carried]
    except (KeyError, TypeError):
        key = _combine("code", [code_digest(fn, carried=carried), repr(version)])
    try:
        _CODE_KEYS[fn, version, carried] = key
    except TypeError:  # an unhashable callable or cache_version
        pass
    return key


def _attributes_digest(task: Any) -> str | None:
    """The digest of the attributes a task class's constructor set beyond those of every
    task (``self.factor = factor``: what the task computes depends on them); None when
    there are none. An attribute with no deterministic digest raises
    :class:`UnhashableValue` naming it (the task then runs uncached, with a WARNING).

    The digest is kept on the task (``_attributes_memo``, left out when it is pickled) with
    the attribute objects it was made from, and made again only when one of them is
    another object (reassigned, or the task copied with a new value), a hasher was
    registered since, or it counted a file's state (a path: that changes by itself). A
    value changed in place (``self.table[k] = v``) is not seen: every run of the task and
    each of its mapped children pays for the digest once, not once per key."""
    state = getattr(task, "__dict__", {})
    names = state.get("_own_attributes", ())
    if not names:
        return None
    values = tuple(state.get(name, _ABSENT) for name in names)
    generation, memo = hashers_generation(), state.get(_ATTRIBUTES_MEMO)
    if (
        memo is not None
        and memo[0] == generation
        and len(memo[1]) == len(values)
        and all(map(operator.is_, memo[1], values))
    ):
        digest: str | None = memo[2]
        return digest
    try:
        digests, read_files = hash_mapping_noting_files(
            {name: value for name, value in zip(names, values) if value is not _ABSENT}
        )
    except UnhashableValue as exc:
        exc.kind = "attribute"
        raise
    digest = _combine("attributes", sorted(digests.items())) if digests else None
    if not read_files:
        state[_ATTRIBUTES_MEMO] = (generation, values, digest)
    return digest


_ABSENT = object()  # an own attribute deleted since the constructor
_ATTRIBUTES_MEMO = "_attributes_memo"  # (hashers generation, attribute objects, digest)


def carried_code(task: Any) -> tuple[str, str] | None:
    """What ``task`` carries to another process so that ``TASK_SOURCE`` gives it the same
    key there (:func:`flowcore.caching.code.carried_digest`); None when its policy does
    not use ``TASK_SOURCE`` or its code has no digest here (the other process then makes
    its own, and reports what stops it)."""
    policy = getattr(task, "cache_policy", None)
    if not any(isinstance(p, TaskSource) for p in getattr(policy, "policies", [policy])):
        return None
    try:
        return carried_digest(_task_function(task))
    except Exception:  # noqa: BLE001 - pickling the task must not fail for its digest
        return None


class FlowParameters(CachePolicy):
    """The flow run's parameters."""

    def compute_key(self, context: KeyContext, inputs: Mapping[str, Any]) -> str | None:
        return _combine("parameters", sorted(hash_mapping(context.parameters).items()))

    def __repr__(self) -> str:
        return "FLOW_PARAMETERS"


class RunId(CachePolicy):
    """The flow run id: a cache that lasts one flow run."""

    def compute_key(self, context: KeyContext, inputs: Mapping[str, Any]) -> str | None:
        return _combine("run", [context.flow_run_id])

    def __repr__(self) -> str:
        return "RUN_ID"


class CacheKeyFnPolicy(CachePolicy):
    """A key from ``cache_key_fn(context, parameters)``; None means "do not cache"."""

    def __init__(self, cache_key_fn: Callable[[KeyContext, dict[str, Any]], str | None]) -> None:
        if not callable(cache_key_fn):
            raise TypeError(f"cache_key_fn must be callable, got {cache_key_fn!r}")
        self.cache_key_fn = cache_key_fn

    def compute_key(self, context: KeyContext, inputs: Mapping[str, Any]) -> str | None:
        key = self.cache_key_fn(context, dict(inputs))
        if key is None:
            return None
        if not isinstance(key, str):
            raise ValueError(
                f"cache_key_fn {self.cache_key_fn!r} returned {key!r}; it must return a str or None"
            )
        return key

    def _part(self, context: KeyContext, inputs: Mapping[str, Any]) -> Any:
        key = self.compute_key(context, inputs)
        return None if key is None else ("CacheKeyFn", key)

    def __repr__(self) -> str:
        return f"CacheKeyFnPolicy({getattr(self.cache_key_fn, '__name__', self.cache_key_fn)})"


class CompoundCachePolicy(CachePolicy):
    """Several policies: the key changes when any part changes."""

    def __init__(self, policies: list[CachePolicy]) -> None:
        self.policies = list(policies)

    def compute_key(self, context: KeyContext, inputs: Mapping[str, Any]) -> str | None:
        parts = [p._part(context, inputs) for p in self.policies]
        if any(part is None for part in parts):
            return None
        return _combine("compound", parts)

    def _part(self, context: KeyContext, inputs: Mapping[str, Any]) -> Any:
        key = self.compute_key(context, inputs)
        return None if key is None else ("Compound", key)

    def describe_key(
        self, context: KeyContext, inputs: Mapping[str, Any]
    ) -> tuple[str | None, dict[str, str]]:
        described = [p._describe(context, inputs) for p in self.policies]
        if any(part is None for part, _ in described):
            return None, {}
        named = {name: digest for _, names in described for name, digest in names.items()}
        return _combine("compound", [part for part, _ in described]), named

    def __sub__(self, name: str) -> CachePolicy:
        new = copy.copy(self)
        new.policies = [p - name if isinstance(p, Inputs) else p for p in self.policies]
        return new

    def __repr__(self) -> str:
        return " + ".join(repr(p) for p in self.policies)


def _task_function(task: Any) -> Any:
    run = task.__dict__.get("run") if hasattr(task, "__dict__") else None
    return run if run is not None else type(task).run


def source_hash(fn: Any) -> str:
    """The digest of ``fn``'s own code, without what it uses (see
    :func:`flowcore.caching.code.source_digest`)."""
    return source_digest(inspect.unwrap(fn))


NONE = NoCache()
INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID
