"""``Cache``: list, inspect, delete and garbage-collect the entries of a cache store.

::

    cache = Cache("~/.flowcore/storage")        # a store, a directory, s3://, gs://, "memory"
    cache = Cache("/data/keys", values="~/.flowcore/storage")   # records kept apart (key_storage)
    cache.entries(task="fetch", older_than=timedelta(days=7))   -> [CacheEntry, ...]
    cache.show("fetch")                          -> the entries of one key
    cache.delete(task="fetch", dry_run=True)     -> what would be removed
    cache.gc(max_age=timedelta(days=30), max_bytes=10**9, max_entries=10_000)

An entry is a record, what its value costs, where the record is stored and, for an entry
that is never used, why: ``CacheEntry(record, size, location, problem)``. Damaged entries
are listed too (``problem`` says what is wrong: a record that cannot be read or whose
fields are not of their types, a record outside its key's directory, a value that is gone
or outside the store), so they can be seen and removed; they count as expired. Deleting an
entry removes its record, and its value unless another record still uses it; what could
not be removed (a link leading out of the store) is a WARNING and is not reported as
removed. ``gc`` removes, in this order: damaged and expired entries; entries older than
``max_age``; the oldest entries until at most ``max_entries`` and ``max_bytes`` remain;
values no record uses (orphans) older than an hour (a writer stores its value before its
record, so a younger orphan may be about to get one); and stale temporary files. Every
step honours ``dry_run``.

Orphans are only the values gc can prove unused, because records it cannot see may name
a value: a policy's ``key_storage`` keeps records in another store and the values here,
in directories that hold no record. So a value is an orphan only in a store that keeps
its records beside its values, in a directory that held records when gc began, with no
``.records-elsewhere`` mark there (a store with records apart writes it beside each value
before the record) and no record there that could not be read. A cache over records kept
apart (``values=``, or a store with ``records=``) removes values with their records, never
as orphans. Opened on its records alone, such a cache lists their entries as usable (the
value is in the store its record names: ``CacheEntry.elsewhere``, size unknown) and
refuses to remove them (ValueError), which would leave their values behind for good.

On a ``MemoryCacheStore`` (``flowcore.context.caches``) records are Prefect 1's ``Cached``
states: they carry no flow name and no creation time (entries are listed as created now,
and ``older_than`` / ``max_age`` do not apply), and expired ones are already dropped.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from flowcore.caching.choice import default_storage, store_from_spec
from flowcore.caching.records import CacheRecord
from flowcore.caching.stores import (
    RECORDS_ELSEWHERE,
    CacheStore,
    StorageCacheStore,
    StoredRecord,
    relative_location,
)
from flowcore.exceptions import LocationEscapeError, ResultStorageError

__all__ = ["Cache", "CacheEntry", "GcReport", "collect_garbage"]

ORPHAN_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class CacheEntry:
    """A record, its value's size in bytes (None when unknown, e.g. in memory), where the
    record is stored (None in memory) and why the entry is never used (None: it is used).
    A record that cannot be read is a stand-in: the key its directory names, no task.
    ``elsewhere``: the store its record names for its value, when the cache was opened
    on records kept apart without that store (``values=``): the value is not checked."""

    record: CacheRecord
    size: int | None
    location: str | None = None
    problem: str | None = None
    passing: bool = False  # the problem is a failed read (a storage error), which may pass
    elsewhere: str | None = None

    @property
    def key(self) -> str:
        return self.record.key

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or datetime.now(timezone.utc)) - self.record.created

    def unusable(self, now: datetime | None = None) -> bool:
        """Whether the entry is damaged or expired (never used again). A record the storage
        failed to read (``passing``) is neither: what it holds is not known, so garbage
        collection and ``expired`` leave it alone."""
        if self.problem is not None:
            return not self.passing
        return self.record.expired(now)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for ``--json``)."""
        record = self.record
        return {
            "key": record.key,
            "record_id": record.record_id,
            "task": record.task,
            "flow": record.flow,
            "flow_run_id": record.flow_run_id,
            "created": record.created.isoformat(),
            "expires": None if record.expires is None else record.expires.isoformat(),
            "expired": self.unusable(),  # damaged counts as expired, as --expired selects
            "value_location": record.value_location,
            "size": self.size,
            "location": self.location,
            "problem": self.problem,
        }


@dataclass
class GcReport:
    """What ``gc`` removed (or, with ``dry_run``, would remove), and the entries it could
    not remove (``not_removed``: a WARNING says why)."""

    entries: list[CacheEntry] = field(default_factory=list)
    not_removed: list[CacheEntry] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    temporaries: int = 0
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        return sum(e.size or 0 for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "entries": [e.to_dict() for e in self.entries],
            "not_removed": [e.to_dict() for e in self.not_removed],
            "orphaned_values": self.orphans,
            "temporary_files": self.temporaries,
            "bytes_freed": self.bytes_freed,
        }


class Cache:
    """Management of one cache store.

    Args:
        store: a ``CacheStore``, or what ``caching.store`` accepts (``"memory"``, a
            directory, ``"s3://bucket/prefix"``, ``"gs://bucket/prefix"``); None: config
            ``caching.store``, else the policies' default ``<home_dir>/storage``.
        values: where the values of the records in ``store`` are, when the records are
            kept apart from them (a policy's ``key_storage`` is ``store``): a storage
            store, or the same specs. None: beside the records.
    """

    def __init__(
        self,
        store: CacheStore | str | os.PathLike[str] | None = None,
        values: CacheStore | str | os.PathLike[str] | None = None,
    ) -> None:
        if store is None:
            from flowcore import configuration

            spec = configuration.config.get_path("caching.store")
            store = spec if spec is not None else StorageCacheStore(default_storage())
        self.store = store_from_spec(store)
        if values is not None:
            self.store = _records_apart(self.store, store_from_spec(values))

    def __repr__(self) -> str:
        return f"Cache({self.store!r})"

    # -- reading ----------------------------------------------------------------------

    def entries(
        self,
        task: str | None = None,
        flow: str | None = None,
        older_than: timedelta | None = None,
        expired: bool | None = None,
        key: str | None = None,
        record_id: str | None = None,
    ) -> list[CacheEntry]:
        """The entries matching every given filter, oldest first (``record_id``: the one
        record of that id). Damaged entries have no task or flow (``task`` and ``flow``
        leave them out) and count as expired."""
        now = datetime.now(timezone.utc)
        found = [
            stored
            for stored in self.store.scan()
            if (task is None or stored.record.task == task)
            and (flow is None or stored.record.flow == flow)
            and (key is None or stored.record.key == key)
            and (record_id is None or stored.record.record_id == record_id)
            and (older_than is None or now - stored.record.created > older_than)
        ]
        found.sort(key=lambda s: s.record.created)
        entries = [self._entry(stored) for stored in found]
        return [e for e in entries if expired is None or e.unusable(now) == expired]

    def show(self, key: str) -> list[CacheEntry]:
        """The entries of one key."""
        return self.entries(key=key)

    # -- removing ---------------------------------------------------------------------

    def delete(
        self,
        key: str | None = None,
        task: str | None = None,
        flow: str | None = None,
        older_than: timedelta | None = None,
        expired: bool | None = None,
        dry_run: bool = False,
        record_id: str | None = None,
    ) -> list[CacheEntry]:
        """Remove the matching entries (all of them when no filter is given); return them.
        Refuses (ValueError, nothing removed) entries whose value is in a store this cache
        was not given (``CacheEntry.elsewhere``)."""
        doomed = self.entries(
            task=task, flow=flow, older_than=older_than, expired=expired, key=key,
            record_id=record_id,
        )  # fmt: skip
        return doomed if dry_run else self._remove(doomed)

    def gc(
        self,
        max_age: timedelta | None = None,
        max_bytes: int | None = None,
        max_entries: int | None = None,
        dry_run: bool = False,
    ) -> GcReport:
        """Remove expired, too old and surplus entries, orphaned values and stale
        temporary files (see the module docstring for the order)."""
        now = datetime.now(timezone.utc)
        entries = self.entries()
        doomed = [
            e for e in entries if e.unusable(now) or (max_age is not None and e.age(now) > max_age)
        ]
        chosen = {id(e) for e in doomed}
        kept = [e for e in entries if id(e) not in chosen]
        while kept and (
            (max_entries is not None and len(kept) > max_entries)
            or (max_bytes is not None and sum(e.size or 0 for e in kept) > max_bytes)
        ):
            doomed.append(kept.pop(0))  # oldest first
        removed = doomed if dry_run else self._remove(doomed)
        gone = {id(e) for e in removed}
        report = GcReport(
            entries=removed, not_removed=[e for e in doomed if id(e) not in gone], dry_run=dry_run
        )
        remaining = entries if dry_run else [e for e in entries if id(e) not in gone]
        report.orphans = self._orphans(now, entries, remaining, dry_run)
        report.temporaries = 0 if dry_run else self._sweep()
        return report

    # -- helpers ----------------------------------------------------------------------

    def _remove(self, entries: Iterable[CacheEntry]) -> list[CacheEntry]:
        """Remove ``entries``; return those that were removed. Refuses (ValueError, nothing
        removed) entries whose value is in a store this cache was not given."""
        entries = list(entries)
        apart = sorted({e.elsewhere for e in entries if e.elsewhere is not None})
        if apart:
            count = len([e for e in entries if e.elsewhere is not None])
            raise ValueError(
                f"{count} cache {'entry keeps its value' if count == 1 else 'entries keep their values'} "
                f"in {', '.join(map(repr, apart))}, apart from the records (key_storage); "
                f"removing the records alone would leave the values for good, so nothing was "
                f"removed. Name the values' store too: Cache(..., values={apart[0]!r}), "
                f"flowcore cache ... --values {apart[0]}"
            )
        asked = [(StoredRecord(e.record, e.location), e) for e in entries]
        removed = {id(stored) for stored in self.store.remove([s for s, _ in asked])}
        return [entry for stored, entry in asked if id(stored) in removed]

    def _entry(self, stored: StoredRecord) -> CacheEntry:
        """``stored`` with its value's size, and what is wrong with the value, if anything."""
        record, at = stored.record, stored.location
        store, value = self.store, stored.record.value_location
        if stored.passing:
            return CacheEntry(record, None, at, stored.problem, passing=True)
        if not isinstance(store, StorageCacheStore):
            return CacheEntry(record, None, at, stored.problem)
        if value is None:
            return CacheEntry(record, None, at, stored.problem or "names no value")
        try:
            found = store.result.stat(value)
        except LocationEscapeError:
            return CacheEntry(
                record, None, at, stored.problem or f"names a value outside the store ({value!r})"
            )
        except ResultStorageError:
            return CacheEntry(record, None, at, stored.problem)  # its size is unknown
        if found is None and record.value_store is not None and store.records is store.result:
            return CacheEntry(record, None, at, stored.problem, elsewhere=record.value_store)
        if found is None:
            return CacheEntry(
                record, None, at, stored.problem or f"names a value that is gone ({value!r})"
            )
        return CacheEntry(record, found[0], at, stored.problem)

    def _orphans(
        self, now: datetime, entries: list[CacheEntry], remaining: list[CacheEntry], dry_run: bool
    ) -> list[str]:
        """Values older than ``ORPHAN_GRACE`` proven unused (see the module docstring):
        in a directory that held readable records (``entries``) and no mark of records
        kept elsewhere, and named by no ``remaining`` record."""
        store = self.store
        if not isinstance(store, StorageCacheStore) or store.records is not store.result:
            return []
        result = store.result

        def folder(location: str) -> str:
            return posixpath.dirname(posixpath.normpath(relative_location(result, location)))

        locations = result.list(store.prefix)
        proven = {folder(e.location) for e in entries if e.location} - {
            folder(e.location) for e in entries if e.location and e.passing
        }
        proven -= {folder(loc) for loc in locations if loc.endswith("/" + RECORDS_ELSEWHERE)}
        used = {e.record.value_location for e in remaining}
        orphans = []
        for location in locations:
            name = relative_location(result, location)
            if not name.endswith(".value") or folder(location) not in proven or name in used:
                continue
            found = result.stat(location)
            if found is None or now - found[1] < ORPHAN_GRACE:
                continue
            orphans.append(location)
            if not dry_run:
                result.delete(location)
        return orphans

    def _sweep(self) -> int:
        store = self.store
        if not isinstance(store, StorageCacheStore):
            return 0
        removed = store.result.remove_stale_temporaries()
        if store.records is not store.result:
            removed += store.records.remove_stale_temporaries()
        return removed


def _records_apart(records: CacheStore, values: CacheStore) -> StorageCacheStore:
    """The store of the records of ``records`` whose values are in ``values``."""
    if not (isinstance(records, StorageCacheStore) and isinstance(values, StorageCacheStore)):
        raise ValueError(
            f"Cache: values= keeps values apart from records in storage stores (a directory, "
            f"s3://, gs://); got records {records!r} and values {values!r}"
        )
    return StorageCacheStore(values.result, prefix=records.prefix, records=records.records)


def collect_garbage(store: CacheStore | None, settings: Any, logger: Any) -> GcReport | None:
    """Config ``caching.gc`` after a flow run: ``gc(max_age, max_size, max_entries)`` of the
    run's storage ``store`` (None: the policies' ``<home_dir>/storage``) when one of them is
    set, at most once per ``every`` for that store (across processes: a marker
    ``<prefix>/.gc/last`` holds the time of the last one). Values may be numbers (seconds,
    bytes) or text (``30d``, ``1GB``). A problem is one WARNING: garbage collection never
    fails a flow run."""
    from flowcore.utilities.units import parse_duration, parse_size

    settings = settings or {}
    limits = [settings.get(name) for name in ("max_age", "max_size", "max_entries")]
    if all(limit is None for limit in limits):
        return None
    if store is None:
        store = StorageCacheStore(default_storage())
    if not isinstance(store, StorageCacheStore):
        return None
    try:
        max_age, max_size, max_entries = limits
        every = _seconds(settings.get("every", "1h"), parse_duration)
        marker = f"{store.prefix}/.gc/last" if store.prefix else ".gc/last"
        last = store.records.stat(marker)
        now = datetime.now(timezone.utc)
        if last is not None and (now - last[1]).total_seconds() < every:
            return None
        store.records.write_bytes_at(marker, now.isoformat().encode())
        report = Cache(store).gc(
            max_age=None
            if max_age is None
            else timedelta(seconds=_seconds(max_age, parse_duration)),
            max_bytes=None if max_size is None else int(_seconds(max_size, parse_size)),
            max_entries=None if max_entries is None else int(max_entries),
        )
    except Exception as exc:
        logger.warning(f"Cache garbage collection (caching.gc) of {store!r} failed: {exc}")
        return None
    if report.entries or report.orphans or report.temporaries:
        logger.info(
            f"Cache garbage collection: removed {len(report.entries)} entries "
            f"({report.bytes_freed} bytes), {len(report.orphans)} orphaned values and "
            f"{report.temporaries} temporary files"
        )
    return report


def _seconds(value: Any, parse: Any) -> float:
    """A number as is, or text read by ``parse`` (a timedelta becomes seconds)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    parsed = parse(str(value))
    return parsed.total_seconds() if isinstance(parsed, timedelta) else float(parsed)
