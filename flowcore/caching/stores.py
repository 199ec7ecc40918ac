"""Cache stores: where a task's cached states (its *records*) live between runs.

A store maps a cache key to a list of ``Cached`` states; the task's ``cache_validator``
picks one (Prefect 1's semantics). Two implementations:

* :class:`MemoryCacheStore` (the default) keeps the states in a dict, by default the
  process's ``flowcore.context.caches``, exactly as Prefect 1 shows it.
* :class:`ResultCacheStore` keeps them in any storage ``Result`` (local disk, S3, GCS):
  per key, one small index of records (written atomically, replacing the records of the
  same inputs and parameters, so it does not grow on every run) and one value file per
  record. Records are written when each task finishes, so a crash mid-flow loses nothing,
  and are read by any later process.

Each record remembers the flow run that wrote it; a run never uses its own records (as in
Prefect 1, where caches update after the run).
"""

from __future__ import annotations

import hashlib
import re
import threading
import weakref
from datetime import datetime, timezone
from typing import Any

from flowcore.engine.cache_validators import tokenize
from flowcore.engine.result import Result
from flowcore.engine.serializers import PickleSerializer
from flowcore.engine.state import Cached

__all__ = ["CacheStore", "MemoryCacheStore", "ResultCacheStore", "store_from_spec"]


def _unexpired(state: Cached, now: datetime) -> bool:
    expiration = state.cached_result_expiration
    return expiration is not None and expiration > now


def _same_entry(a: Cached, b: Cached) -> bool:
    return a.hashed_inputs == b.hashed_inputs and a.cached_parameters == b.cached_parameters


class CacheStore:
    """Interface: ``get`` the usable records of a key, ``put`` a new one."""

    def get(self, key: str, flow_run_id: str | None = None) -> list[Cached]:
        """The unexpired-or-not records of ``key`` not written by ``flow_run_id``."""
        raise NotImplementedError

    def put(self, key: str, state: Cached, flow_run_id: str | None = None) -> None:
        """Record ``state`` (a Cached state with an expiration) under ``key``."""
        raise NotImplementedError

    def load(self, state: Cached) -> Cached:
        """The record with its value read (a no-op for in-memory records)."""
        return state


class MemoryCacheStore(CacheStore):
    """Records in a dict ``key -> [Cached, ...]`` (default: ``flowcore.context.caches``).

    Putting a record drops expired records of the key and the older record of the same
    inputs and parameters (Prefect 1 appended a duplicate on every run).
    """

    def __init__(self, caches: dict[str, list[Cached]] | None = None) -> None:
        self._caches = caches
        self._origin: weakref.WeakKeyDictionary[Cached, str | None] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryCacheStore()"

    @property
    def caches(self) -> dict[str, list[Cached]]:
        if self._caches is None:
            from flowcore.utilities import context as _context

            self._caches = _context.current().setdefault("caches", {})
        return self._caches

    def get(self, key: str, flow_run_id: str | None = None) -> list[Cached]:
        records = self.caches.get(key)
        if not records:
            return []
        if flow_run_id is None:
            return list(records)
        return [r for r in records if self._origin.get(r) != flow_run_id]

    def put(self, key: str, state: Cached, flow_run_id: str | None = None) -> None:
        now = datetime.now(timezone.utc)
        with self._lock:
            records = self.caches.get(key, [])
            if any(r is state for r in records):
                return
            kept = [r for r in records if _unexpired(r, now) and not _same_entry(r, state)]
            if _unexpired(state, now):
                kept.append(state)
                self._origin[state] = flow_run_id
            self.caches[key] = kept

    def __getstate__(self) -> dict[str, Any]:
        return {"_caches": self._caches}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._caches = state["_caches"]
        self._origin = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()


class _Record:
    """What a persistent store keeps per cached value (plain, picklable data)."""

    __slots__ = ("record_id", "expiration", "hashed_inputs", "parameters", "value_location",
                 "flow_run_id", "message", "created")
    record_id: str
    expiration: datetime | None
    hashed_inputs: dict[str, str] | None
    parameters: dict[str, Any] | None
    value_location: str | None
    flow_run_id: str | None
    message: Any
    created: datetime

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, state.get(name))


def _safe_name(key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", key).strip("-.")[:60] or "key"
    return f"{readable}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


class ResultCacheStore(CacheStore):
    """Records kept in a storage ``Result`` (``LocalResult``, ``S3Result``, ``GCSResult``).

    Args:
        result: where records and values are stored; its ``serializer`` is used for the
            values (records themselves are pickled).
        prefix: a key prefix (a sub-directory) for everything this store writes.

    Layout: ``<prefix>/<key>/records.pkl`` (the index) and
    ``<prefix>/<key>/<record id>.value``. A record whose value is gone or unreadable is
    treated as a miss (with a WARNING from the cache plan) and replaced when the task runs.
    """

    def __init__(self, result: Result, prefix: str = "") -> None:
        self.result = result
        self.prefix = prefix.strip("/")
        self._index_result = result.copy()
        self._index_result.serializer = PickleSerializer()

    def __repr__(self) -> str:
        return f"ResultCacheStore({self.result!r}, prefix={self.prefix!r})"

    def _path(self, key: str, name: str) -> str:
        parts = [p for p in (self.prefix, _safe_name(key), name) if p]
        return "/".join(parts)

    def _read_index(self, key: str) -> list[_Record]:
        location = self._path(key, "records.pkl")
        if not self._index_result.exists(location):
            return []
        try:
            records = self._index_result.read(location).value
        except Exception:
            return []
        return [r for r in records if isinstance(r, _Record)] if isinstance(records, list) else []

    def get(self, key: str, flow_run_id: str | None = None) -> list[Cached]:
        states = []
        for record in self._read_index(key):
            if flow_run_id is not None and record.flow_run_id == flow_run_id:
                continue
            located = self.result.copy()
            located.value = None
            located.location = record.value_location
            states.append(
                Cached(
                    message=record.message,
                    result=located,
                    cached_parameters=record.parameters,
                    cached_result_expiration=record.expiration,
                    hashed_inputs=record.hashed_inputs,
                )
            )
        return states

    def load(self, state: Cached) -> Cached:
        """Read the record's value (raises if it is gone or unreadable)."""
        stored = state._result
        if stored.location is not None:
            state._result = self.result.read(stored.location)
        return state

    def put(self, key: str, state: Cached, flow_run_id: str | None = None) -> None:
        record_id = tokenize((state.hashed_inputs, state.cached_parameters))[:20]
        value_location = self._path(key, f"{record_id}.value")
        written = self.result.write_at(value_location, state.result)
        now = datetime.now(timezone.utc)
        record = _Record(
            record_id=record_id,
            expiration=state.cached_result_expiration,
            hashed_inputs=state.hashed_inputs,
            parameters=state.cached_parameters,
            value_location=written.location,
            flow_run_id=flow_run_id,
            message=state.message,
            created=now,
        )
        kept = [
            r for r in self._read_index(key)
            if r.record_id != record_id and r.expiration is not None and r.expiration > now
        ]
        self._index_result.write_at(self._path(key, "records.pkl"), [*kept, record])


def store_from_spec(spec: Any) -> CacheStore:
    """A store from a config value: a CacheStore, ``"memory"``, a directory,
    ``"s3://bucket/prefix"`` or ``"gs://bucket/prefix"``."""
    if isinstance(spec, CacheStore):
        return spec
    if spec is None or spec == "" or spec == "memory":
        return MemoryCacheStore()
    if not isinstance(spec, str):
        raise TypeError(
            f"cache store must be a CacheStore or a string ('memory', a directory, "
            f"'s3://bucket/prefix', 'gs://bucket/prefix'), got {type(spec).__name__}"
        )
    for scheme in ("s3://", "gs://"):
        if spec.startswith(scheme):
            bucket, _, prefix = spec[len(scheme):].partition("/")
            if not bucket:
                raise ValueError(f"cache store {spec!r} has no bucket name")
            if scheme == "s3://":
                from flowcore.engine.results import S3Result

                return ResultCacheStore(S3Result(bucket=bucket), prefix=prefix)
            from flowcore.engine.results import GCSResult

            return ResultCacheStore(GCSResult(bucket=bucket), prefix=prefix)
    from flowcore.engine.results import LocalResult

    return ResultCacheStore(LocalResult(dir=spec))
