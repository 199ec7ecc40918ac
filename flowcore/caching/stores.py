"""Cache stores: where records (and their values) live between runs.

One interface, two backends::

    get(key, exclude_run)   -> [Candidate(state, record)]   oldest first
    put(record, state)      store the record and the Cached state's value
    load(candidate)         -> the Cached state with its value read (raises if unusable)
    delete(key, record_id)  -> how many records were removed
    entries()               -> every usable record, for management
    scan()                  -> [StoredRecord(record, location, problem)]   damaged ones too
    remove([StoredRecord])  -> those removed (by location: misplaced and damaged ones too)

* :class:`MemoryCacheStore` keeps ``Cached`` states in a dict ``key -> [Cached, ...]``,
  by default the process's ``flowcore.context.caches`` (Prefect 1's behaviour: code that
  seeds or inspects ``context.caches`` keeps working).
* :class:`StorageCacheStore` keeps one JSON :class:`~flowcore.caching.records.CacheRecord`
  per record and one value object per distinct value, in any storage ``Result``, in one
  directory per key under one of 256 shards (the first two hex digits of the key's
  SHA-256), so 100,000 keys make directories of about 400, not one of 100,000::

      <prefix>/<shard>/<key>/<record id>.json       the record (inputs + parameters -> id)
      <prefix>/<shard>/<key>/<value digest>.value   the value, as the serializer wrote it
      <prefix>/.tasks/<digest>.latest               a policy task's last record

  With ``records=`` (a policy's ``key_storage``) the records go to that Result and the
  values stay in ``result``, at the same locations; each record then names its value's
  store (``value.store``), and each value directory holds a mark, ``.records-elsewhere``,
  saying that records this store cannot see name values there (garbage collection of the
  values' store leaves such values alone, see :mod:`flowcore.caching.cache`), written once
  per directory per process, before the directory's first record.

  Stores written before the shards (``<prefix>/<key>/...``, the *flat* layout) keep
  working: a key's records are read from both places (of two records with one id, the
  newer counts), records name their value's location, listing and gc walk the whole
  prefix, and a record rewritten after a lookup found its flat copy removes that copy. A
  key that would climb out of its shard (``..``) or names no directory (``""``, ``.``,
  ``/``) is refused (LocationEscapeError), like any location outside the Result's root.

  Writers never read-modify-write a shared index: each record is its own object, written
  atomically (local: temp file, fsync, rename; S3/GCS: one PUT), so concurrent writers
  lose nothing. A record whose JSON is corrupt, whose fields are not of their types,
  whose MAC does not verify, that cannot be read (a link leading out of the store), or
  whose value is gone or does not match its digest is a miss with a WARNING naming it; the
  task runs again and rewrites it. ``scan`` lists such records with their problem, so
  management can show and remove them.

  Only a key's own files are ever replaced or removed: a flat-layout copy is removed only
  after it was read as a record of that very key and record id (a flat directory
  ``<prefix>/<shard of K>/K`` is also the sharded directory of the key ``K``), and a value
  only from the directory of the record that named it.

A run never uses the records it wrote itself (``exclude_run``), as in Prefect 1, where
caches were updated after the run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import threading
import weakref
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, NamedTuple

from flowcore.caching.legacy import note_legacy_layout
from flowcore.caching.records import CacheRecord, CorruptRecord, record_id_for, value_digest
from flowcore.engine.cache_validators import unexpired
from flowcore.engine.result import Result
from flowcore.engine.state import Cached
from flowcore.exceptions import LocationEscapeError, ResultStorageError, ValueNotFoundError
from flowcore.utilities.hashing import HashedValue, UnhashableValue, hash_mapping
from flowcore.utilities.logging import get_logger

__all__ = [
    "CacheStore",
    "Candidate",
    "MemoryCacheStore",
    "ResultCacheStore",
    "StorageCacheStore",
    "RECORDS_ELSEWHERE",
    "StoredRecord",
    "relative_location",
]

RECORDS_ELSEWHERE = ".records-elsewhere"
"""The mark, in a value directory, of values whose records are kept in another store."""

_RECORD_FILE = re.compile(r"[0-9a-f]{32}\.json")  # <record id>.json (records.record_id_for)
_LOGGER = get_logger("caching")


class Candidate(NamedTuple):
    """A stored record as a validator sees it (``state``) and as the store knows it
    (``record``, and where it is stored: ``location``, as the store's ``list`` gives it)."""

    state: Cached
    record: CacheRecord | None
    location: str | None = None


class StoredRecord(NamedTuple):
    """A record as management sees it: the record, where it is stored (``location``, as
    the store's ``list`` gives it; None in memory) and why it is never used (``problem``;
    None: it is usable). A record file that cannot be read has a stand-in ``record``: the
    key its directory names, the record id its file name says, no task, and the file's
    time as its creation."""

    record: CacheRecord
    location: str | None = None
    problem: str | None = None
    passing: bool = False  # the problem is a read that failed (a storage error) and may pass


class _UnreadableRecord(CorruptRecord):
    """A record file the storage failed to read (permissions, a network error): a miss for
    a run, but not damage: management leaves it in place."""


class CacheStore:
    """The store interface (see the module docstring)."""

    def get(
        self,
        key: str,
        exclude_run: str | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] = _LOGGER,
        inputs: str | None = None,
    ) -> list[Candidate]:
        """The records of ``key`` not written by flow run ``exclude_run``, oldest first.

        With ``inputs`` (a record id's inputs part), a store may return only the records
        of those inputs, plus at most one other (so a miss can be explained).
        """
        raise NotImplementedError

    def put(self, record: CacheRecord, state: Cached) -> None:
        """Store ``record`` with the value of ``state`` (a Cached state)."""
        raise NotImplementedError

    def load(self, candidate: Candidate) -> Cached:
        """``candidate``'s state with its value read; raises if the value is unusable."""
        return candidate.state

    def delete(self, key: str, record_id: str | None = None) -> int:
        """Remove the records of ``key`` (one, with ``record_id``); return how many."""
        raise NotImplementedError

    def entries(self) -> Iterator[CacheRecord]:
        """Every usable record in the store."""
        raise NotImplementedError

    def scan(self) -> Iterator[StoredRecord]:
        """Every record in the store, with where it is stored, damaged ones included."""
        return (StoredRecord(record) for record in self.entries())

    def remove(self, stored: list[StoredRecord]) -> list[StoredRecord]:
        """Remove these records (from ``scan``); return those removed."""
        removed = []
        done: dict[tuple[str, str], int] = {}
        for entry in stored:
            which = (entry.record.key, entry.record.record_id)
            if which not in done:
                done[which] = self.delete(which[0], which[1] or None)
            if done[which]:
                removed.append(entry)
        return removed

    def latest(self, task: str) -> CacheRecord | None:
        """The last policy record written for ``task`` (to explain a miss), if known."""
        return None


def _same_entry(a: Cached, b: Cached) -> bool:
    return a.hashed_inputs == b.hashed_inputs and a.cached_parameters == b.cached_parameters


_KEPT_MEMORY_STORES = 8
_MEMORY_STORES: list[MemoryCacheStore] = []  # (MemoryCacheStore.of) most recent first
_STORES_LOCK = threading.Lock()


class MemoryCacheStore(CacheStore):
    """Records as ``Cached`` states in a dict (default: ``flowcore.context.caches``).

    Putting a record drops the expired records of its key and the older record of the
    same inputs and parameters (Prefect 1 appended a duplicate on every run).
    """

    def __init__(self, caches: dict[str, list[Cached]] | None = None) -> None:
        self._caches = caches
        self._origin: dict[int, tuple[weakref.ref[Cached], str | None]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryCacheStore()"

    @classmethod
    def of(cls, caches: dict[str, list[Cached]]) -> MemoryCacheStore:
        """The store of ``caches`` in this process: one object per dict, so that what it
        knows of the states it holds (which flow run put each) outlives a flow run, and
        a later run's hits are known as held (the few most recent dicts are kept)."""
        with _STORES_LOCK:
            for index, store in enumerate(_MEMORY_STORES):
                if store._caches is caches:
                    if index:
                        _MEMORY_STORES.insert(0, _MEMORY_STORES.pop(index))
                    return store
            store = cls(caches)
            _MEMORY_STORES.insert(0, store)
            del _MEMORY_STORES[_KEPT_MEMORY_STORES:]
            return store

    def _run_of(self, state: Cached) -> str | None:
        """The flow run that put ``state`` here (by identity: states compare by value)."""
        found = self._origin.get(id(state))
        return found[1] if found is not None and found[0]() is state else None

    @property
    def caches(self) -> dict[str, list[Cached]]:
        if self._caches is None:
            from flowcore.utilities import context as _context

            self._caches = _context.current().setdefault("caches", {})
        return self._caches

    def get(
        self,
        key: str,
        exclude_run: str | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] = _LOGGER,
        inputs: str | None = None,
    ) -> list[Candidate]:
        states = self.caches.get(key)
        if not states:
            return []
        return [
            Candidate(s, None)
            for s in states
            if exclude_run is None or self._run_of(s) != exclude_run
        ]

    def put(self, record: CacheRecord, state: Cached) -> None:
        self.absorb(record.key, state, record.flow_run_id)

    def holds(self, state: Cached) -> bool:
        """Whether ``state`` itself (not an equal one) was put here by this process."""
        return self._run_of(state) is not None

    def absorb(self, key: str, state: Cached, flow_run_id: str | None = None) -> None:
        """Keep ``state`` under ``key`` (a state made here, or returned by another process).
        Within one flow run (``flow_run_id``) the first state of given inputs stays, as
        Prefect 1 keeps the first valid one: mapped children of equal inputs each make a
        Cached state, and a later one must not replace what the others were given."""
        if self._run_of(state) is not None or any(s is state for s in self.caches.get(key, ())):
            return  # already kept (put by a task run of this process)
        with self._lock:
            states = self.caches.get(key, [])
            if any(s is state for s in states):
                return
            if flow_run_id is not None and any(
                _same_entry(s, state) and self._run_of(s) == flow_run_id for s in states
            ):
                return
            kept = [
                s
                for s in states
                if unexpired(s.cached_result_expiration) and not _same_entry(s, state)
            ]
            for dropped in states:
                if not any(dropped is k for k in kept):
                    self._origin.pop(id(dropped), None)
            if unexpired(state.cached_result_expiration):
                kept.append(state)
                self._origin[id(state)] = (weakref.ref(state), flow_run_id)
            self.caches[key] = kept

    def delete(self, key: str, record_id: str | None = None) -> int:
        with self._lock:
            states = self.caches.get(key, [])
            kept = [
                s for s in states if record_id is not None and _memory_record_id(s) != record_id
            ]
            if kept:
                self.caches[key] = kept
            else:
                self.caches.pop(key, None)
        return len(states) - len(kept)

    def entries(self) -> Iterator[CacheRecord]:
        for key, states in list(self.caches.items()):
            for state in states:
                yield CacheRecord(
                    key=key,
                    record_id=_memory_record_id(state),
                    task=key,
                    flow_run_id=self._run_of(state),
                    expires=state.cached_result_expiration,
                    inputs=state.hashed_inputs,
                    message=None if state.message is None else str(state.message),
                )

    def __getstate__(self) -> dict[str, Any]:
        return {"_caches": self._caches}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._caches = state["_caches"]
        self._origin = {}
        self._lock = threading.Lock()


def _memory_record_id(state: Cached) -> str:
    """A memory record's id, as a storage store would name it ("" if it has none)."""
    try:
        return record_id_for(state.hashed_inputs or {}, hash_mapping(state.cached_parameters or {}))
    except (UnhashableValue, TypeError):
        return ""


class StorageCacheStore(CacheStore):
    """Records and values in storage Results (``LocalResult``, ``S3Result``, ``GCSResult``).

    Args:
        result: where values are stored, with its serializer.
        prefix: a key prefix (a sub-directory) for everything this store writes.
        records: where records are stored, when apart from the values (a policy's
            ``key_storage``); default: beside them in ``result``.
    """

    def __init__(self, result: Result, prefix: str = "", records: Result | None = None) -> None:
        self.result = result.copy()
        self.result.location, self.result._formatter = None, None
        self.records = self.result if records is None else records.copy()
        self.prefix = prefix.strip("/")
        # key -> {record id: location}: the flat-layout records of the key get() read
        self._flat_copies: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:
        apart = "" if self.records is self.result else f", records={self.records!r}"
        return f"StorageCacheStore({self.result!r}, prefix={self.prefix!r}{apart})"

    def directory(self, key: str) -> str:
        """The key's directory, relative to the root: ``<prefix>/<shard>/<key>``."""
        shard = hashlib.sha256(key.encode("utf-8")).hexdigest()[:2]
        if not posixpath.normpath(f"{shard}/{key}").startswith(f"{shard}/"):
            climbs = ".." in key.split("/")
            raise LocationEscapeError(
                f"StorageCacheStore: cache key {key!r} "
                + (
                    f"climbs out of its directory {shard + '/' + key!r} ('..')"
                    if climbs
                    else "names no directory (it is empty, or only '/' and '.')"
                )
                + "; nothing was read or written. Use a key "
                + ("without '..' parts" if climbs else "with a name in it, e.g. 'daily'")
                + " (cache_key, or what cache_key_fn returns)"
            )
        return f"{self.prefix}/{shard}/{key}" if self.prefix else f"{shard}/{key}"

    def _flat_dir(self, key: str) -> str:
        """Where the flat layout (before the shards) kept the key: ``<prefix>/<key>``."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(
        self,
        key: str,
        exclude_run: str | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] = _LOGGER,
        inputs: str | None = None,
    ) -> list[Candidate]:
        note_legacy_layout(self.records, logger)
        found = []
        sharded = self.records.list(self.directory(key) + "/")
        flat = set(self.records.list(self._flat_dir(key) + "/"))
        for location in _chosen(sharded + sorted(flat), inputs):
            try:
                record = self._read(location)
            except ValueNotFoundError:
                continue  # removed between list and read
            except CorruptRecord as exc:
                logger.warning(
                    f"{exc}; treating it as a cache miss (the task runs and rewrites it)"
                )
                continue
            if record.key != key:
                continue
            if location in flat:  # a flat copy of this very key: put() replaces it
                self._flat_copies.setdefault(key, {})[record.record_id] = location
            if exclude_run is None or record.flow_run_id != exclude_run:
                found.append(Candidate(self._state(record), record, location))
        found.sort(key=lambda c: c.record.created if c.record else datetime.min)
        newest = {
            c.record.record_id: c for c in found if c.record is not None
        }  # a flat copy is older
        return [c for c in found if c.record is None or newest[c.record.record_id] is c]

    def _read(self, location: str) -> CacheRecord:
        """The record at ``location``. Raises ValueNotFoundError if nothing is there, and
        CorruptRecord (naming the file) if it cannot be used: damaged, unsigned, a link
        leading out of the store, or unreadable."""
        try:
            data = self.records.read_bytes_at(location)
        except ValueNotFoundError:
            raise
        except LocationEscapeError as exc:
            raise CorruptRecord.at(location, f"cannot be read ({exc})") from exc
        except ResultStorageError as exc:
            raise _UnreadableRecord.at(location, f"cannot be read now ({exc})") from exc
        return CacheRecord.from_json(data, location)

    def _state(self, record: CacheRecord) -> Cached:
        located = self.result.copy()
        located.value = None
        located.location = record.value_location
        parameters = (
            None
            if record.parameters is None
            else {name: HashedValue(digest) for name, digest in record.parameters.items()}
        )
        return Cached(
            message=record.message,
            result=located,
            cached_parameters=parameters,
            cached_result_expiration=record.expires,
            hashed_inputs=record.inputs,
        )

    def load(self, candidate: Candidate) -> Cached:
        record, state = candidate.record, candidate.state
        if record is None or record.value_location is None:
            raise CorruptRecord.at(str(candidate.location), "names no value")
        data = self.result.read_bytes_at(record.value_location)
        if record.value_digest is not None and value_digest(data) != record.value_digest:
            raise CorruptRecord(
                f"the value at {record.value_location!r} does not match its record's digest"
            )
        loaded = self.result.copy()
        loaded.location = record.value_location
        loaded.value = self.result.decode(data, record.value_location)
        state._result = loaded
        return state

    def put(self, record: CacheRecord, state: Cached) -> None:
        data = self.result.encode(state.result)
        record.value_digest = value_digest(data)
        record.serializer = type(self.result.serializer).__name__
        name = record.value_digest.split(":", 1)[1][:40]
        record.value_location = f"{self.directory(record.key)}/{name}.value"  # relative to the root
        self.result.write_bytes_at(record.value_location, data)
        if self.records is not self.result:  # before the record: gc must never miss the mark
            record.value_store = _root_name(self.result)
            self._mark(f"{self.directory(record.key)}/{RECORDS_ELSEWHERE}")
        document = record.to_json()
        self.records.write_bytes_at(
            f"{self.directory(record.key)}/{record.record_id}.json", document
        )
        flat = self._flat_copies.get(record.key, {}).pop(record.record_id, None)
        if flat is not None:  # replace the flat-layout copy get() found
            self._remove_flat_copy(flat, record)
        if record.key_parts:  # a policy record: remembered per task, to explain later misses
            self.records.write_bytes_at(self._latest_location(record.task), document)

    def _mark(self, location: str) -> None:
        """Write the ``.records-elsewhere`` mark at ``location`` unless this process wrote
        it already (one object write per directory, not one per record: a PUT on S3/GCS).
        flowcore never removes a mark; one removed by hand is written again by the next
        process that stores a value there."""
        root = _known_root(self.result)
        if root is None or (root, location) not in _MARKED:
            self.result.write_bytes_at(location, _MARK_TEXT)
            if root is not None:
                _MARKED.add((root, location))

    def _remove_flat_copy(self, location: str, record: CacheRecord) -> None:
        """Remove the flat-layout copy of ``record`` at ``location`` if it still is one
        (a flat directory can be another key's sharded one: ``<shard of K>/K``)."""
        try:
            stored = self._read(location)
        except (CorruptRecord, ValueNotFoundError):
            return
        if stored.key == record.key and stored.record_id == record.record_id:
            self.records.delete(location)

    def latest(self, task: str) -> CacheRecord | None:
        location = self._latest_location(task)
        try:
            return self._read(location)
        except ValueNotFoundError:
            return None
        except CorruptRecord as exc:
            _LOGGER.warning(f"{exc}; it is ignored (the task's next policy record replaces it)")
            return None

    def _latest_location(self, task: str) -> str:
        name = hashlib.sha256(task.encode("utf-8")).hexdigest()[:16]
        return f"{self.prefix}/.tasks/{name}.latest" if self.prefix else f".tasks/{name}.latest"

    def delete(self, key: str, record_id: str | None = None) -> int:
        """Remove records of ``key`` (damaged ones in its directories too), and the values
        no remaining record uses."""
        found = self.records.list(self.directory(key) + "/")
        found += self.records.list(self._flat_dir(key) + "/")
        doomed = [
            stored
            for stored in self._stored(sorted(set(found)))
            if stored.record.key == key
            and (record_id is None or stored.record.record_id == record_id)
        ]
        return len(self.remove(doomed))

    def entries(self) -> Iterator[CacheRecord]:
        for stored in self.scan():
            if stored.problem is None:
                yield stored.record
            else:
                _LOGGER.warning(f"cache record {stored.location!r} {stored.problem}")

    def scan(self) -> Iterator[StoredRecord]:
        yield from self._stored(self.records.list(self.prefix))

    def _stored(self, locations: list[str]) -> Iterator[StoredRecord]:
        """The record files among ``locations``, each read, or a stand-in saying why not.

        Only files named as records are (``<record id>.json``, 32 hex digits): a store's
        prefix may hold the user's own JSON (a task's target) beside the records, and such
        a file is not the store's to list, call damaged, or remove. A valid record kept
        where another store rooted below this one keeps it (``s3://b/cache`` inside
        ``s3://b``) is that store's, and is left out too."""
        for location in locations:
            if not _RECORD_FILE.fullmatch(posixpath.basename(location)):
                continue
            name = relative_location(self.records, location)
            try:
                record = self._read(location)
            except ValueNotFoundError:
                continue
            except CorruptRecord as exc:
                passing = isinstance(exc, _UnreadableRecord)
                yield StoredRecord(self._stand_in(location, name), location, exc.reason, passing)
                continue
            problem = self._misplaced(record, name)
            if problem is not None and self._nested(record, name):
                continue
            yield StoredRecord(record, location, problem)

    def _nested(self, record: CacheRecord, name: str) -> bool:
        """Whether ``record``, stored as ``name``, is where a store rooted deeper than this
        one keeps it: ``<deeper prefix>/<shard>/<key>/<record id>.json``."""
        try:
            home = posixpath.normpath(self._home_below_root(record.key))
        except LocationEscapeError:
            return False
        directory = posixpath.dirname(posixpath.normpath(name))
        return directory.endswith("/" + home)

    def _home_below_root(self, key: str) -> str:
        """``<shard>/<key>``: a key's directory under a store's root, whatever its prefix."""
        directory = self.directory(key)
        return directory[len(self.prefix) + 1 :] if self.prefix else directory

    def _stand_in(self, location: str, name: str) -> CacheRecord:
        """A record for a file that cannot be read: the key its directory names, the
        record id its name says, the file's time as its creation."""
        directory, _, file_name = name.rpartition("/")
        within = directory[len(self.prefix) + 1 :] if self.prefix else directory
        shard, _, key = within.partition("/")
        if not (key and hashlib.sha256(key.encode("utf-8")).hexdigest()[:2] == shard):
            key = within  # the flat layout
        try:
            found = self.records.stat(location)
        except (LocationEscapeError, ResultStorageError):
            found = None
        created = found[1] if found is not None else datetime.now(timezone.utc)
        return CacheRecord(key=key, record_id=file_name[: -len(".json")], task="", created=created)

    def _misplaced(self, record: CacheRecord, name: str) -> str | None:
        """Why ``record``, stored as ``name``, is never read (None: it is where get()
        looks for its key: in or below the key's sharded or flat directory)."""
        directory = posixpath.dirname(posixpath.normpath(name))
        try:
            homes = [self.directory(record.key), self._flat_dir(record.key)]
        except LocationEscapeError as exc:
            return f"has a key that cannot be stored ({exc}); it is never read"
        for home in map(posixpath.normpath, homes):
            if directory == home or directory.startswith(home + "/"):
                return None
        return f"is in {directory!r}, but its key {record.key!r} belongs in {homes[0]!r}; it is never read"

    def remove(self, stored: list[StoredRecord]) -> list[StoredRecord]:
        """Remove these record files, and the values in their directories that no
        remaining record there uses; return those removed. A file that cannot be removed
        (a link leading out of the store) is a WARNING."""
        removed = []
        for entry in stored:
            assert entry.location is not None
            try:
                if self.records.delete(entry.location):
                    removed.append(entry)
            except LocationEscapeError as exc:
                _LOGGER.warning(
                    f"cache record {entry.location!r} was not removed ({exc}); remove it by hand"
                )
        directories: dict[str, set[str]] = {}
        for entry in removed:
            directory = posixpath.dirname(
                posixpath.normpath(relative_location(self.records, entry.location or ""))
            )
            value = entry.record.value_location
            if value and posixpath.dirname(posixpath.normpath(value)) == directory:
                directories.setdefault(directory, set()).add(value)
        for directory, values in directories.items():
            still_used = {
                s.record.value_location
                for s in self._stored(self.records.list(directory + "/"))
                if s.problem is None
            }
            for value in values - still_used:
                try:
                    self.result.delete(value)
                except LocationEscapeError as exc:
                    _LOGGER.warning(f"cache value {value!r} was not removed ({exc})")
        return removed


ResultCacheStore = StorageCacheStore  # flowcore 0.1.0's name


# (root, location) of the marks this process wrote (StorageCacheStore._mark)
_MARKED: set[tuple[str, str]] = set()


def _known_root(result: Result) -> str | None:
    """What names the storage of ``result`` in this process (its class and directory or
    bucket), or None when its class does not say (two of them may be different stores)."""
    if type(result)._describe_root is Result._describe_root and not result._root():
        return None
    return f"{type(result).__name__}:{result._describe_root()}"


_MARK_TEXT = (
    b"The values in this directory are named by cache records kept in another store "
    b"(a cache policy's key_storage): garbage collection of this store leaves them alone.\n"
)


def _root_name(result: Result) -> str:
    """The root of ``result`` as a person names it (a directory, s3://bucket, ...)."""
    return result._root().rstrip("/") or type(result).__name__


def relative_location(result: Result, location: str) -> str:
    """``location`` as ``result.list`` gives it, relative to ``result``'s root (as records
    name values): local paths are absolute, object keys already relative."""
    root = getattr(result, "dir", None)
    if isinstance(root, str) and os.path.isabs(location):
        return os.path.relpath(location, root).replace(os.sep, "/")
    return location


def _chosen(locations: list[str], inputs: str | None) -> list[str]:
    """The record locations to read: all, or those of ``inputs`` plus one other."""
    records = [loc for loc in locations if loc.endswith(".json")]
    if inputs is None:
        return records
    mine = [loc for loc in records if loc.rsplit("/", 1)[-1].startswith(inputs)]
    others = [loc for loc in records if loc not in mine]
    return mine + others[-1:]
