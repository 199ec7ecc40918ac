"""``CachePlan``: how a task caches, compiled once from whichever spelling it uses.

Both spellings compile to one plan; a task run asks it once and tells it once::

    spelling                  key                          a record is accepted when
    ───────────────────────   ──────────────────────────   ──────────────────────────────
    cache_for (+ validator,   cache_key, or the task       the validator accepts its
      cache_key)              name                         Cached state (Prefect 1)
    cache_policy /            the policy's digest of its   it has not expired
      cache_key_fn            named parts (per run)
    target                    the rendered location        the value exists there (and
                                                           reads back); looked up instead
                                                           of the records, as in Prefect 1

    CachePlan.start(...) -> CacheRun          one per task run
        check(state, inputs, ...)   -> State           the TaskRunner's one question
          lookup(inputs, ...)       -> Cached | None   (SERIALIZABLE: takes the key's lease,
                                                       unless another transaction group of
                                                       the flow run keeps it: that wait would
                                                       never end; a miss then runs uncached)
          revalidate(state, ...)    -> bool            (a Cached state from task_states)
        record(state, inputs, ...)  -> State           (writes now, or stages in a transaction)
        release()                                      (the lease, unless a transaction holds it)
        explain(inputs, ...)        -> Decision        what check would decide, without
                                                       locking or running (cache explain)

Every lookup makes one :class:`Decision`: the hit (None: the task runs) and the reason in
words. A task run logs the reason at INFO when it is news (a policy hit, a miss with earlier
records, a refresh); ``flowcore cache explain`` prints it for every decision, so what it says
is what the run logs.

A target's value is written by checkpointing (the TaskRunner's ``get_task_run_state``), as
in Prefect 1; its plan records nothing unless the task also has ``cache_for``.

With ``cache_for`` a success becomes ``Cached`` (expiring after ``cache_for``); under a
policy it stays ``Success`` and a later hit is ``Cached``. An input or parameter with no
deterministic digest makes the run uncached, with one WARNING naming it, when the key or
the validator needs it (a policy's key that leaves it out does not: its record marks it
``undigested:<type>``); a failed write is logged at ERROR with its traceback and does not
fail a task that succeeded.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from flowcore.caching.choice import policy_store
from flowcore.caching.reasons import (
    Validator,
    closest_miss,
    describe_change,
    explain_miss,
    provenance,
)
from flowcore.caching.records import CacheRecord, CorruptRecord, inputs_part, record_id_for
from flowcore.caching.stores import CacheStore, MemoryCacheStore
from flowcore.engine.cache_validators import unexpired
from flowcore.engine.result import Result
from flowcore.engine.state import Cached, Pending, State
from flowcore.exceptions import LocationEscapeError, ResultStorageError, UnreadableValueError
from flowcore.transactions import IsolationLevel, TransactionRun, group_holding
from flowcore.utilities.hashing import (
    UnhashableValue,
    file_contents_hashing,
    hash_mapping,
    hash_value,
)
from flowcore.utilities.units import format_duration

__all__ = ["CachePlan", "CacheRun", "Decision", "explain_miss"]

# Under SERIALIZABLE, with transaction groups in the run, the seconds between two checks of
# whether a group of this very flow run keeps the key (it took the lock a moment ago and had
# not yet handed it to its group); other holders are waited for as long as they hold it
_SELF_CHECK_INTERVAL = 0.25


class Decision(NamedTuple):
    """What a lookup decided: the hit (None: the task runs) and why, in words.

    ``logged``: whether a task run logs ``reason`` at INFO; a first run, a Prefect 1 hit and
    a target say nothing (the hit's state carries its own message), and problems were
    already logged as WARNINGs.
    """

    hit: Cached | None
    reason: str
    logged: bool = False


class CachePlan:
    """How one task caches (immutable; see the module docstring).

    Args:
        name: the task's name (the default Prefect 1 key).
        key: the Prefect 1 key (``cache_key`` or the name); None under a policy.
        validator: the Prefect 1 ``cache_validator``; None under a policy.
        expiration: ``cache_for`` or ``cache_expiration`` (None: never expires).
        policy: the cache policy, or None for the Prefect 1 spelling.
        refresh: ``refresh_cache`` (None: follow ``tasks.refresh_cache``).
        target: the task's ``target`` (a location template or callable), or None.
        hash_file_contents: path inputs count by their bytes, not size and mtime.
    """

    __slots__ = (
        "name",
        "key",
        "validator",
        "expiration",
        "policy",
        "refresh",
        "target",
        "serializable",
        "hash_file_contents",
    )

    def __init__(
        self,
        name: str,
        key: str | None,
        validator: Validator | None,
        expiration: timedelta | None,
        policy: Any,
        refresh: bool | None,
        target: str | Callable[..., str] | None = None,
        hash_file_contents: bool = False,
    ) -> None:
        self.name = name
        self.hash_file_contents = hash_file_contents
        self.key = key
        self.validator = validator
        self.expiration = expiration
        self.policy = policy
        self.refresh = refresh
        self.target = target
        self.serializable = getattr(policy, "isolation_level", None) is IsolationLevel.SERIALIZABLE

    @classmethod
    def compile(
        cls,
        name: str,
        cache_for: timedelta | None,
        cache_validator: Validator | None,
        cache_key: str | None,
        cache_policy: Any,
        cache_expiration: timedelta | None,
        refresh_cache: bool | None,
        target: str | Callable[..., str] | None = None,
        hash_file_contents: bool = False,
    ) -> CachePlan | None:
        """The plan of a task's caching arguments (None when it does not cache)."""
        files = bool(hash_file_contents)
        if cache_policy is not None:
            return cls(
                name, None, None, cache_expiration, cache_policy, refresh_cache, target, files
            )
        if cache_for is None:
            return (
                None if target is None else cls(name, None, None, None, None, False, target, files)
            )
        return cls(
            name, cache_key or name, cache_validator, cache_for, None, refresh_cache, target, files
        )

    def __repr__(self) -> str:
        spelling = f"policy={self.policy!r}" if self.policy is not None else f"key={self.key!r}"
        if self.target is not None:
            spelling += f" target={self.target!r}"
        return f"<CachePlan {self.name!r} {spelling} expiration={self.expiration}>"

    def start(
        self,
        context: Mapping[str, Any],
        name: str,
        logger: logging.Logger,
        task: Any = None,
        transaction: Any = None,
        result: Result | None = None,
        store: CacheStore | None = None,
    ) -> CacheRun:
        """The cache decisions of one task run.

        Args:
            context: the task run's context (flow run id, config, the run's stores).
            name: the task run's full name, for log lines.
            logger: where decisions are logged.
            task: the task, for a policy's key context (``TASK_SOURCE``).
            transaction: the run of the task's transaction group, if any.
            result: the task's Result: where a target is looked for, and a policy's values
                go when the run has no store of its own.
            store: the store to use instead of the one this plan chooses from ``context``.
        """
        key_context = None
        if self.policy is not None:
            from flowcore.cache_policies import KeyContext

            key_context = KeyContext(
                task,
                context.get("task_run_id"),
                context.get("flow_run_id"),
                context.get("parameters") or {},
            )
        if store is None:
            store = self._store(context, result)
        return CacheRun(self, store, context, key_context, name, logger, transaction, result)

    def _store(self, context: Mapping[str, Any], result: Result | None) -> CacheStore:
        """The run's store for this spelling: Prefect 1 caching uses the run's store (by
        default ``context.caches``), a policy :func:`policy_store`."""
        if self.policy is not None:
            return policy_store(
                self.policy, context.get("policy_store"), result or Result(), context.get("config")
            )
        store: CacheStore | None = context.get("cache_store")
        if store is None:
            caches = context.get("caches")
            store = MemoryCacheStore(caches if caches is not None else {})
        return store


class CacheRun:
    """The cache decisions of one task run (made by :meth:`CachePlan.start`)."""

    def __init__(
        self,
        plan: CachePlan,
        store: CacheStore,
        context: Mapping[str, Any],
        key_context: Any,
        name: str,
        logger: logging.Logger,
        transaction: Any,
        target_result: Result | None = None,
    ) -> None:
        self.plan = plan
        self._config = context.get("config")
        self.target_result = target_result
        self.store = store
        self.flow_run_id: str | None = context.get("flow_run_id")
        self.flow_name: str | None = context.get("flow_name")
        self.map_index: int | None = context.get("map_index")
        self.key_context = key_context
        self.name = name
        self.logger = logger
        self.transaction = transaction
        self.key: str | None = plan.key
        self.key_parts: dict[str, str] = {}
        self.uncached = False
        self.uncached_reason = "this run is not cached"
        self.lease: Any = None
        self._input_digests: dict[str, str] | None = None
        self._defaulted: frozenset[str] = frozenset()  # inputs a policy took from defaults
        self._run_groups: Mapping[str, TransactionRun] | None = context.get("transactions")

    # -- asking -----------------------------------------------------------------------

    def check(
        self,
        state: State,
        inputs: Mapping[str, Any],
        parameters: Mapping[str, Any],
        format_kwargs: Callable[[], dict[str, Any]] | None = None,
    ) -> State:
        """The TaskRunner's one question: the state to go on with (a hit, ``state``, or
        ``Pending`` when a Cached state given to the run is no longer valid)."""
        if self.plan.hash_file_contents:
            with file_contents_hashing():
                return self._check(state, inputs, parameters, format_kwargs)
        return self._check(state, inputs, parameters, format_kwargs)

    def _check(
        self,
        state: State,
        inputs: Mapping[str, Any],
        parameters: Mapping[str, Any],
        format_kwargs: Callable[[], dict[str, Any]] | None,
    ) -> State:
        if self.plan.target is not None:
            hit = self._find_target(inputs, parameters, format_kwargs or dict).hit
        elif isinstance(state, Cached):
            if self.revalidate(state, inputs, parameters):
                return state
            # (as Prefect 1: a given Cached state that is no longer valid still lets the
            # run's caches be looked in)
            state = Pending("Cache was invalid; ready to run.")
            hit = self.lookup(inputs, parameters)
        else:
            hit = self.lookup(inputs, parameters)
        return state if hit is None else hit

    def explain(
        self,
        inputs: Mapping[str, Any],
        parameters: Mapping[str, Any],
        format_kwargs: Callable[[], dict[str, Any]] | None = None,
    ) -> Decision:
        """What :meth:`check` would decide for a run with these inputs, without taking a
        lease, logging the reason or running anything; a hit's value is read."""
        with self._hashing():
            if self.plan.target is not None:
                return self._find_target(inputs, parameters, format_kwargs or dict)
            return self._decide(inputs, parameters, lease=False)

    def revalidate(
        self, state: Cached, inputs: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> bool:
        """Whether a Cached state given to the run (``task_states``) may be reused."""
        if self.plan.validator is None:
            return unexpired(state.cached_result_expiration)
        try:
            return bool(self.plan.validator(state, inputs, parameters))
        except UnhashableValue as exc:
            self._warn_unhashable(exc)
            return False

    def lookup(self, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> Cached | None:
        """The first usable record of this run's key, or None (one INFO line says why)."""
        decision = self._decide(inputs, parameters, lease=True)
        if decision.logged:
            self.logger.info(f"Task '{self.name}': {decision.reason}")
        return decision.hit

    def _decide(
        self, inputs: Mapping[str, Any], parameters: Mapping[str, Any], lease: bool
    ) -> Decision:
        if self.plan.policy is not None:
            inputs = self._with_defaults(inputs)
            if not self._compute_key(inputs):
                return Decision(None, self.uncached_reason)
        assert self.key is not None
        if lease and self.plan.serializable and self.lease is None:
            keeper = self._take_lease()
            if keeper is not None:
                return self._decide_unlocked(inputs, parameters, keeper)
        if self.refresh:
            return Decision(
                None, f"refresh_cache: running and replacing the cache of key {self.key!r}", True
            )
        decision = (
            Decision(None, self.uncached_reason)
            if self.uncached
            else self._find(inputs, parameters)
        )
        if decision.hit is not None:
            self.release()
        return decision

    def _find(self, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> Decision:
        assert self.key is not None
        try:
            exclude = self.flow_run_id if self.plan.policy is None else None
            store = self.store
            logger = (
                self.logger
                if isinstance(store, MemoryCacheStore)
                else _TaskLogger(self.logger, self.name)
            )
            candidates = store.get(self.key, exclude, logger, self._inputs_filter(inputs))
        except LocationEscapeError as exc:
            raise LocationEscapeError(f"Task '{self.name}': cache key {self.key!r}: {exc}") from exc
        unreadable = None
        for candidate in candidates if self.plan.policy is None else reversed(candidates):
            if not self.revalidate(candidate.state, inputs, parameters):
                if self.uncached:
                    return Decision(None, self.uncached_reason)
                continue
            try:
                found = self.store.load(candidate)
            except (CorruptRecord, ResultStorageError, LocationEscapeError, OSError) as exc:
                location = candidate.record.value_location if candidate.record else None
                unreadable = (
                    f"cached value for key {self.key!r} at {location!r} cannot be read ({exc}); "
                    "running the task again"
                )
                self.logger.warning(f"Task '{self.name}': {unreadable}")
                continue
            record = candidate.record
            message = f"Cached result found for key {self.key!r}" + (
                "" if record is None else provenance(record)
            )
            if self.plan.policy is None:
                return Decision(found, message)
            hit = Cached(
                message,
                result=found._result,
                cached_result_expiration=found.cached_result_expiration,
            )
            return Decision(hit, message, True)
        if unreadable is not None:
            return Decision(None, unreadable)
        miss = f"cache miss for key {self.key!r}: "
        if candidates:
            states = [candidate.state for candidate in candidates]
            index, reason = closest_miss(states, inputs, parameters, self.plan.validator)
            return Decision(None, miss + reason + _which(candidates, index), True)
        changes = self._policy_changes(inputs, parameters) if self.plan.policy is not None else None
        if changes is not None:
            return Decision(None, miss + changes, True)
        return Decision(None, miss + "nothing is stored under it yet")

    def _find_target(
        self,
        inputs: Mapping[str, Any],
        parameters: Mapping[str, Any],
        format_kwargs: Callable[[], dict[str, Any]],
    ) -> Decision:
        """The value at the rendered target, read back; a value that exists but cannot be
        read (truncated, foreign, unsigned under a signing key) is a WARNING and a miss."""
        result, target = self.target_result, self.plan.target
        assert result is not None and target is not None
        if callable(target):
            kwargs = format_kwargs()
            rendered = target(**kwargs)
            if not isinstance(rendered, str):
                raise TypeError(
                    f"Task '{self.name}': the target callable {target!r} returned {rendered!r} "
                    f"(of type {type(rendered).__name__}); it must return a str, the location of the "
                    "task's value"
                )
            template = rendered.replace("{", "{{").replace("}", "}}")
        else:  # a target with no fields needs no keys (making them is most of a hit's cost)
            template = target
            kwargs = format_kwargs() if "{" in target or "}" in target else {}
        try:
            stored = result.read_if_exists(template, **kwargs)
        except LocationEscapeError as exc:
            raise LocationEscapeError(f"Task '{self.name}': target: {exc}") from exc
        except UnreadableValueError as exc:
            reason = (
                f"target {template.format(**kwargs)!r} exists but cannot be read "
                f"({exc.__cause__!r}); running the task again to rewrite it"
            )
            self.logger.warning(f"Task '{self.name}': {reason}")
            return Decision(None, reason)
        if stored is None:
            return Decision(None, f"no value at task target {template.format(**kwargs)} yet")
        message = f"Result found at task target {stored.location}"
        hit = Cached(
            result=stored,
            hashed_inputs=lambda: _hashable_digests(inputs),
            cached_result_expiration=None,
            cached_parameters=dict(parameters),
            message=message,
        )
        return Decision(hit, message)

    def _hashing(self) -> contextlib.AbstractContextManager[None]:
        """With ``hash_file_contents``, path inputs count by their bytes."""
        return file_contents_hashing() if self.plan.hash_file_contents else contextlib.nullcontext()

    @property
    def refresh(self) -> bool:
        """``refresh_cache``, or config ``tasks.refresh_cache`` when the task left it None."""
        refresh = self.plan.refresh
        if refresh is None:
            config = self._config
            refresh = bool(config and config["tasks"].get("refresh_cache"))
        return refresh

    def _policy_changes(
        self, inputs: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> str | None:
        """What differs from the task's last record, by key part (None: nothing to compare).

        A mapped child says nothing: the store keeps one last record per task, which its
        siblings overwrite (in this run too), so it is another child's, of other inputs.
        """
        if self.map_index is not None:
            return None
        previous = self.store.latest(self.plan.name)
        if previous is None or previous.key == self.key or not previous.key_parts:
            return None
        policy = self.plan.policy
        ignored = {
            n for p in getattr(policy, "policies", [policy]) for n in getattr(p, "exclude", ())
        }
        kept = {k: v for k, v in inputs.items() if k not in ignored}
        changes = [
            describe_change(part, previous, kept, parameters)
            for part in sorted(set(previous.key_parts) | set(self.key_parts))
            if previous.key_parts.get(part) != self.key_parts.get(part)
        ]
        age = format_duration(_now() - previous.created)
        return (
            f"{'; '.join(changes) or 'the key changed'} since the task's last record "
            f"(flow run {previous.flow_run_id}, {age} ago)"
        )

    def _inputs_filter(self, inputs: Mapping[str, Any]) -> str | None:
        """Under ``all_inputs`` only records of these very inputs can be accepted: their
        record ids start with the same digest, so a store need not read the others."""
        if getattr(self.plan.validator, "__name__", None) != "all_inputs":
            return None
        try:
            self._input_digests = hash_mapping(inputs)
        except UnhashableValue as exc:
            self._warn_unhashable(exc)
            return None
        return inputs_part(self._input_digests)

    def _with_defaults(self, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """``inputs`` and the task's default values of the arguments it was not given: a
        policy keys ``f(1)`` and ``f(1, y=1)`` alike when ``y`` defaults to 1."""
        defaults = getattr(self.key_context.task, "_run_defaults", None)
        if defaults is None:
            return inputs
        values = defaults()
        missing = values.keys() - inputs.keys()
        if not missing:
            return inputs
        self._defaulted = frozenset(missing)
        return {**{name: values[name] for name in missing}, **inputs}

    def _compute_key(self, inputs: Mapping[str, Any]) -> bool:
        policy = self.plan.policy
        try:
            self.key, self.key_parts = policy.describe_key(self.key_context, inputs)
        except UnhashableValue as exc:
            self._warn_unhashable(exc)
            return False
        except Exception as exc:
            self._not_cached(
                f"the cache policy {self.plan.policy!r} cannot compute a key ({exc!r}); "
                "running without the cache",
                warn=True,
            )
            return False
        if self.key is None:
            self._not_cached(
                f"the cache policy {self.plan.policy!r} gave no key for this run, so it is not cached"
            )
        elif "\x00" in self.key:
            self._not_cached(
                f"the cache policy gave the key {self.key!r}, which contains a NUL character "
                "('\\x00') and so cannot name a directory of the store; running without the cache",
                warn=True,
            )
            self.key = None
        return self.key is not None

    # -- telling ----------------------------------------------------------------------

    def record(
        self, state: State, inputs: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> State:
        """Record a successful run; the Prefect 1 spelling returns it as ``Cached``."""
        if self.uncached or self.key is None:
            return state
        if self.plan.hash_file_contents:
            with file_contents_hashing():
                return self._record(state, inputs, parameters)
        return self._record(state, inputs, parameters)

    def _record(
        self, state: State, inputs: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> State:
        assert self.key is not None
        digests: Callable[[Mapping[str, Any]], dict[str, str]] = hash_mapping
        if self.plan.policy is not None:
            digests, inputs = _marked_digests, self._with_defaults(inputs)
        try:
            input_digests = self._input_digests or digests(inputs)  # the lookup's, if any
            parameter_digests = digests(parameters)
        except UnhashableValue as exc:
            self._warn_unhashable(exc)
            return state
        now = _now()
        expires = None if self.plan.expiration is None else now + self.plan.expiration
        cached = Cached(
            result=state._result,
            hashed_inputs=input_digests,
            cached_result_expiration=expires,
            cached_parameters=dict(parameters) if self.plan.policy is None else None,
            message=state.message,
        )
        record = CacheRecord(
            key=self.key,
            record_id=record_id_for(input_digests, parameter_digests),
            task=self.plan.name,
            flow=self.flow_name,
            flow_run_id=self.flow_run_id,
            created=now,
            expires=expires,
            key_parts=self.key_parts,
            inputs=input_digests,
            parameters=parameter_digests,
            message=None if state.message is None else str(state.message),
        )
        self._write(record, cached)
        return cached if self.plan.policy is None else state

    def _write(self, record: CacheRecord, cached: Cached) -> None:
        store, description = self.store, f"Task '{self.name}': cache record for key {record.key!r}"
        if self.transaction is not None:
            self.transaction.stage(description, lambda: store.put(record, cached))
            return
        try:
            store.put(record, cached)
        except Exception:
            self.logger.exception(
                f"{description} could not be written; the next run will run the task again"
            )

    def release(self) -> None:
        """Release the lease (a transaction releases its own when it finishes)."""
        if self.lease is None:
            return
        if self._lease_keeper() is not None:
            self.lease = None
            return
        self._release_lease()

    def _lease_keeper(self) -> Any:
        """The transaction that keeps this run's lease (not a remote copy: a task in another
        process than flow.run holds its lease for the task run only)."""
        transaction = self.transaction
        return None if transaction is None or transaction.remote else transaction

    # -- helpers ----------------------------------------------------------------------

    def _take_lease(self) -> str | None:
        """Lock the key for this run; inside a transaction the lease belongs to the
        transaction (held until it commits or rolls back, shared by its tasks).

        A key that another group of this same flow run keeps is not waited for: the group
        keeps its lock until it commits, after the flow run, which waits for this task, so
        the wait would never end (:meth:`_decide_unlocked` decides instead). With groups in
        the run, the wait for other holders is cut into short tries with that check
        between them, for a group whose task took the lock but has not yet handed it over.

        Returns:
            None once this run holds the key's lease; else the task run and group of this
            flow run that keep the key.
        """
        assert self.key is not None
        transaction = self._lease_keeper()
        holder = f"{self.flow_run_id}:{self.name}:{uuid.uuid4().hex}"
        manager = self.plan.policy.lock_manager
        if not any(not group.remote for group in (self._run_groups or {}).values()):
            self.lease = manager.hold(self.key, holder)
        while self.lease is None:
            if transaction is not None:
                self.lease = transaction.lease(self.key)
                if self.lease is not None:
                    return None
            keeper = group_holding(self._run_groups, self.key)
            if keeper is not None:
                return f"task '{keeper[1]}' of transaction {keeper[0].group.name!r}"
            with contextlib.suppress(TimeoutError):
                self.lease = manager.hold(self.key, holder, acquire_timeout=_SELF_CHECK_INTERVAL)
        if transaction is not None:
            transaction.hold(self.key, self.lease, self.name)
        return None

    def _decide_unlocked(
        self, inputs: Mapping[str, Any], parameters: Mapping[str, Any], keeper: str
    ) -> Decision:
        """The lookup of a key that ``keeper``, another transaction group of this flow run,
        keeps locked: without the lock. A value already there is a hit (the group's task
        found it too, or ran under ``refresh_cache``); else the run goes uncached, with one
        WARNING, and records nothing: the group's task missed, its value is staged until
        the group commits, and that value is the one the key gets, as if this run had
        waited. This run writes nothing, so it can neither replace nor interleave with it.
        """
        decision = self._find(inputs, parameters) if not self.refresh else None
        if self.uncached or (decision is not None and decision.hit is not None):
            return decision or Decision(None, self.uncached_reason)
        transaction = self._lease_keeper()
        where = (
            "outside any transaction"
            if transaction is None
            else f"in transaction {transaction.group.name!r}"
        )
        self._not_cached(
            f"cache key {self.key!r} is locked by {keeper} in this same flow run, which "
            f"keeps the lock until it commits at the end of the run; this task ({where}) "
            "would wait for it forever, so it runs without the cache and records nothing "
            "(the key gets the group's value when it commits). To share the lock, put both "
            "tasks in one transaction()",
            warn=True,
        )
        return Decision(None, self.uncached_reason)

    def _release_lease(self) -> None:
        lease, self.lease = self.lease, None
        lease.release()

    def _warn_unhashable(self, exc: UnhashableValue) -> None:
        if self.uncached:
            return
        what = f"{exc.kind} {exc.name!r}" if exc.name else "a value it depends on"
        advice = ""
        if exc.kind == "input" and exc.name in self._defaulted:
            what = f"the default value of argument {exc.name!r}"  # (not given: a policy counts it)
            advice = f"; or leave it out of the key with INPUTS - {exc.name!r}"
        self._not_cached(
            f"cannot compute a key: {what} (a {exc.type_name}) has no deterministic hash, "
            f"so this run is not cached: {exc}{advice}",
            warn=True,
        )

    def _not_cached(self, reason: str, warn: bool = False) -> None:
        """Run without the cache from here on, for ``reason`` (a WARNING with ``warn``)."""
        self.uncached, self.uncached_reason = True, reason
        if warn:
            self.logger.warning(f"Task '{self.name}': {reason}")


if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter is subscriptable at run time from Python 3.11 only
    _Adapter = logging.LoggerAdapter


class _TaskLogger(_Adapter):
    """The task run's logger, with "Task '<name>': " before what a store reports."""

    def __init__(self, logger: logging.Logger, name: str) -> None:
        super().__init__(logger, {})
        self.prefix = f"Task '{name}': "

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return self.prefix + str(msg), kwargs


def _which(candidates: list[Any], index: int) -> str:
    """Which of several records a miss was told against (nothing when there is one)."""
    if len(candidates) < 2:
        return ""
    record = candidates[index].record
    written = (
        ""
        if record is None
        else f", written by flow run {record.flow_run_id} "
        f"{format_duration(_now() - record.created)} ago"
    )
    return f" (compared with the closest of the {len(candidates)} records read{written})"


def _hashable_digests(values: Mapping[str, Any]) -> dict[str, str]:
    """Digests of the values that have one (a target hit keeps them, as Prefect 1 does)."""
    digests = {}
    for name, value in values.items():
        try:
            digests[name] = hash_value(value)
        except UnhashableValue:
            continue
    return digests


def _marked_digests(values: Mapping[str, Any]) -> dict[str, str]:
    """The digests a policy's record keeps of ``values``: a value with no deterministic
    digest is marked ``undigested:<its type>`` instead. The key was computed before, so it
    does not depend on such a value (``INPUTS - "conn"``, a ``cache_key_fn`` that ignores
    it), and the run stays cached; the record id still changes with the value's type."""
    digests = {}
    for name, value in values.items():
        try:
            digests[name] = hash_value(value)
        except UnhashableValue as exc:
            digests[name] = f"undigested:{exc.type_name}"
    return digests


def _now() -> datetime:
    return datetime.now(timezone.utc)
