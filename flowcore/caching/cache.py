"""``Cache``: list, inspect, delete and garbage-collect the entries of a cache store.

::

    cache = Cache("~/.flowcore/storage")        # a store, a directory, s3://, gs://, "memory"
    cache.entries(task="fetch", older_than=timedelta(days=7))   -> [CacheEntry, ...]
    cache.show("fetch")                          -> the entries of one key
    cache.delete(task="fetch", dry_run=True)     -> what would be removed
    cache.gc(max_age=timedelta(days=30), max_bytes=10**9, max_entries=10_000)

An entry is a record and what its value costs: ``CacheEntry(record, size, location)``. Deleting
an entry removes its record, and its value unless another record still uses it. ``gc``
removes, in this order: expired entries; entries older than ``max_age``; the oldest
entries until at most ``max_entries`` and ``max_bytes`` remain; values no record uses
(orphans) older than an hour (a writer stores its value before its record, so a younger
orphan may be about to get one); and stale temporary files. Every step honours
``dry_run``.

On a ``MemoryCacheStore`` (``flowcore.context.caches``) records are Prefect 1's ``Cached``
states: they carry no flow name and no creation time (entries are listed as created now,
and ``older_than`` / ``max_age`` do not apply), and expired ones are already dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from flowcore.caching.records import CacheRecord
from flowcore.caching.stores import (
    CacheStore,
    StorageCacheStore,
    default_storage,
    store_from_spec,
)

__all__ = ["Cache", "CacheEntry", "GcReport", "collect_garbage"]

ORPHAN_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class CacheEntry:
    """A record and its value's size in bytes (None when unknown, e.g. in memory)."""

    record: CacheRecord
    size: int | None

    @property
    def key(self) -> str:
        return self.record.key

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or datetime.now(timezone.utc)) - self.record.created

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
            "expired": record.expired(),
            "value_location": record.value_location,
            "size": self.size,
        }


@dataclass
class GcReport:
    """What ``gc`` removed (or, with ``dry_run``, would remove)."""

    entries: list[CacheEntry] = field(default_factory=list)
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
    """

    def __init__(self, store: CacheStore | str | os.PathLike[str] | None = None) -> None:
        if store is None:
            from flowcore import configuration

            spec = configuration.config.get_path("caching.store")
            store = spec if spec is not None else StorageCacheStore(default_storage())
        self.store = store_from_spec(store)

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
    ) -> list[CacheEntry]:
        """The entries matching every given filter, oldest first."""
        now = datetime.now(timezone.utc)
        found = [
            record
            for record in self.store.entries()
            if (task is None or record.task == task)
            and (flow is None or record.flow == flow)
            and (key is None or record.key == key)
            and (older_than is None or now - record.created > older_than)
            and (expired is None or record.expired(now) == expired)
        ]
        found.sort(key=lambda r: r.created)
        return [CacheEntry(record, self._size(record)) for record in found]

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
    ) -> list[CacheEntry]:
        """Remove the matching entries (all of them when no filter is given); return them."""
        doomed = self.entries(task=task, flow=flow, older_than=older_than, expired=expired, key=key)
        if not dry_run:
            self._remove(doomed)
        return doomed

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
            e
            for e in entries
            if e.record.expired(now) or (max_age is not None and e.age(now) > max_age)
        ]
        kept = [e for e in entries if e not in doomed]
        while kept and (
            (max_entries is not None and len(kept) > max_entries)
            or (max_bytes is not None and sum(e.size or 0 for e in kept) > max_bytes)
        ):
            doomed.append(kept.pop(0))  # oldest first
        report = GcReport(entries=doomed, dry_run=dry_run)
        if not dry_run:
            self._remove(doomed)
        report.orphans = self._orphans(now, entries if dry_run else kept, dry_run)
        report.temporaries = 0 if dry_run else self._sweep()
        return report

    # -- helpers ----------------------------------------------------------------------

    def _remove(self, entries: Iterable[CacheEntry]) -> None:
        for entry in entries:
            self.store.delete(entry.record.key, entry.record.record_id or None)

    def _size(self, record: CacheRecord) -> int | None:
        store = self.store
        if not isinstance(store, StorageCacheStore) or record.value_location is None:
            return None
        found = store.result.stat(record.value_location)
        return None if found is None else found[0]

    def _orphans(self, now: datetime, remaining: list[CacheEntry], dry_run: bool) -> list[str]:
        """Values no remaining record uses, older than ``ORPHAN_GRACE``."""
        store = self.store
        if not isinstance(store, StorageCacheStore):
            return []
        used = {e.record.value_location for e in remaining}
        orphans = []
        for location in store.result.list(store.prefix):
            if not location.endswith(".value") or _relative(store, location) in used:
                continue
            found = store.result.stat(location)
            if found is None or now - found[1] < ORPHAN_GRACE:
                continue
            orphans.append(location)
            if not dry_run:
                store.result.delete(location)
        return orphans

    def _sweep(self) -> int:
        store = self.store
        if not isinstance(store, StorageCacheStore):
            return 0
        removed = store.result.remove_stale_temporaries()
        if store.records is not store.result:
            removed += store.records.remove_stale_temporaries()
        return removed


def _relative(store: StorageCacheStore, location: str) -> str:
    """``location`` as records name values: relative to the store's root."""
    root = getattr(store.result, "dir", None)
    if isinstance(root, str) and os.path.isabs(location):
        return os.path.relpath(location, root)
    return location


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
