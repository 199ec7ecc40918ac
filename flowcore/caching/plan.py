"""``CachePlan``: every cache decision of one task run, in one object.

The TaskRunner builds a plan in ``initialize_run`` from plain values (the task's key,
validator and expiration, the run's store and flow run id), so this layer knows states
and results but not tasks or runners. The plan answers three questions:

* :meth:`lookup` - is there a usable record? (the first one the validator accepts, with
  its value readable; otherwise None, and one INFO line saying why the records missed);
* :meth:`revalidate` - is an incoming ``Cached`` state (from ``task_states``) still valid?
* :meth:`record` - store the ``Cached`` state of a successful run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from flowcore.caching.stores import CacheStore
from flowcore.engine.cache_validators import tokenize
from flowcore.engine.state import Cached

__all__ = ["CachePlan", "explain_miss"]

Validator = Callable[[Cached, Mapping[str, Any], Mapping[str, Any]], bool]


class CachePlan:
    """The cache decisions of one task run.

    Args:
        key: the cache key (``cache_key`` or the task name).
        validator: the ``cache_validator``.
        store: where records live.
        flow_run_id: the current run (its own records are never used).
        name: the task's full name, for log lines.
        logger: where diagnostics go.
        refresh: ignore existing records (the task runs and its new record replaces them).
    """

    __slots__ = ("key", "validator", "store", "flow_run_id", "name", "logger", "refresh")

    def __init__(
        self,
        key: str,
        validator: Validator,
        store: CacheStore,
        flow_run_id: str | None,
        name: str,
        logger: logging.Logger,
        refresh: bool = False,
    ) -> None:
        self.key = key
        self.refresh = refresh
        self.validator = validator
        self.store = store
        self.flow_run_id = flow_run_id
        self.name = name
        self.logger = logger

    def revalidate(self, state: Cached, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
        return bool(self.validator(state, inputs, parameters))

    def lookup(self, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> Cached | None:
        """The first record the validator accepts and whose value can be read."""
        if self.refresh:
            return None
        candidates = self.store.get(self.key, self.flow_run_id)
        for candidate in candidates:
            if not self.validator(candidate, inputs, parameters):
                continue
            try:
                return self.store.load(candidate)
            except Exception as exc:
                location = candidate._result.location
                self.logger.warning(
                    f"Task '{self.name}': cached value for key {self.key!r} at {location!r} "
                    f"cannot be read ({exc!r}); running the task again"
                )
        if candidates:
            self.logger.info(
                f"Task '{self.name}': cache miss for key {self.key!r}: "
                f"{explain_miss(candidates[-1], inputs, parameters, self.validator)}"
            )
        return None

    def record(self, state: Cached) -> None:
        self.store.put(self.key, state, self.flow_run_id)

    def release(self) -> None:
        """Nothing to release: Prefect 1 caching takes no locks."""


def explain_miss(
    candidate: Cached,
    inputs: Mapping[str, Any],
    parameters: Mapping[str, Any],
    validator: Validator | None = None,
) -> str:
    """Why ``candidate`` (the newest record) did not validate, in words."""
    expiration = candidate.cached_result_expiration
    if expiration is not None and expiration <= datetime.now(timezone.utc):
        return f"the cached value expired at {expiration.isoformat()}"
    name = getattr(validator, "__name__", "")
    keys = getattr(validator, "validate_on", None)
    if name in ("all_inputs", "partial_inputs_only"):
        changed = _changed_inputs(candidate, inputs, keys)
        if changed:
            return "input " + ", ".join(f"'{k}'" for k in changed) + " changed"
    if name in ("all_parameters", "partial_parameters_only"):
        changed = _changed_parameters(candidate, parameters, keys)
        if changed:
            return "parameter " + ", ".join(f"'{k}'" for k in changed) + " changed"
    return f"cache_validator {name or validator!r} rejected it"


def _changed_inputs(candidate: Cached, inputs: Mapping[str, Any], keys: list[str] | None) -> list[str]:
    hashed = candidate.hashed_inputs or {}
    names = set(hashed) | set(inputs) if keys is None else set(keys)
    return sorted(
        k for k in names
        if (k in hashed) != (k in inputs) or (k in inputs and hashed[k] != tokenize(inputs[k]))
    )


def _changed_parameters(candidate: Cached, parameters: Mapping[str, Any], keys: list[str] | None) -> list[str]:
    cached = candidate.cached_parameters or {}
    names = set(cached) | set(parameters) if keys is None else set(keys)
    return sorted(k for k in names if cached.get(k, _ABSENT) != parameters.get(k, _ABSENT))


_ABSENT = object()


class PolicyPlan:
    """Cache decisions of one task run under a cache policy (one record per key).

    Args:
        compute_key: ``(inputs) -> key or None``; raising means the key cannot be
            computed (the run is then uncached, with a WARNING).
        storage: values and records.
        expiration: ``cache_expiration`` (None: never expires).
        refresh: run and overwrite, ignoring any record.
        serializable_lock: ``(lock_manager, holder)`` under SERIALIZABLE, else None.
        flow_run_id: written into records.
        name, logger: for log lines.
    """

    def __init__(
        self,
        compute_key: Callable[[Mapping[str, Any]], str | None],
        storage: Any,
        expiration: Any,
        refresh: bool,
        serializable_lock: tuple[Any, str] | None,
        flow_run_id: str | None,
        name: str,
        logger: logging.Logger,
    ) -> None:
        self._compute_key = compute_key
        self.storage = storage
        self.expiration = expiration
        self.refresh = refresh
        self.serializable_lock = serializable_lock
        self.flow_run_id = flow_run_id
        self.name = name
        self.logger = logger
        self.key: str | None = None
        self._locked = False

    def revalidate(self, state: Cached, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
        expiration = state.cached_result_expiration
        return expiration is None or expiration > datetime.now(timezone.utc)

    def lookup(self, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> Cached | None:
        """The cached value of this run's key, if there is a usable one."""
        try:
            self.key = self._compute_key(inputs)
        except Exception as exc:
            self.logger.warning(
                f"Task '{self.name}': the cache policy cannot compute a key ({exc}); "
                "running without the cache"
            )
            self.key = None
        if self.key is None:
            return None
        if self.serializable_lock is not None:
            manager, holder = self.serializable_lock
            manager.acquire_lock(self.key, holder)
            self._locked = True
        if self.refresh:
            return None
        return self._read(self.key)

    def _read(self, key: str) -> Cached | None:
        try:
            record = self.storage.read_record(key)
        except Exception as exc:
            self.logger.warning(f"Task '{self.name}': cache record for key {key!r} cannot be read ({exc!r}); running the task again")
            return None
        if record is None:
            return None
        if record.expired():
            self.logger.info(f"Task '{self.name}': cache miss for key {key!r}: the cached value expired at {record.expiration.isoformat()}")
            return None
        try:
            stored = self.storage.read_value(record)
        except Exception as exc:
            self.logger.warning(
                f"Task '{self.name}': cached value for key {key!r} at {record.value_location!r} "
                f"cannot be read ({exc!r}); running the task again"
            )
            return None
        return Cached(
            f"Cached result found for key {key!r}",
            result=stored,
            cached_result_expiration=record.expiration,
        )

    def record(self, value: Any) -> None:
        """Store ``value`` under this run's key (nothing if no key was computed)."""
        if self.key is None:
            return
        expiration = None if self.expiration is None else datetime.now(timezone.utc) + self.expiration
        self.storage.write(self.key, value, expiration, self.flow_run_id)

    def release(self) -> None:
        """Release the SERIALIZABLE lock; a lock that expired meanwhile is only a warning
        (the task's work is done and recorded)."""
        if self._locked and self.serializable_lock is not None:
            manager, holder = self.serializable_lock
            self._locked = False
            try:
                manager.release_lock(self.key, holder)
            except Exception as exc:
                self.logger.warning(
                    f"Task '{self.name}': could not release the lock on cache key {self.key!r} "
                    f"({exc}); it expired while the task ran, so another run may have "
                    "executed it concurrently. Raise the lock manager's hold timeout."
                )
