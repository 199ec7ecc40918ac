"""The storage layout: keys sharded by a prefix of their digest, and stores written in the
flat layout of earlier versions (``<prefix>/<key>/...``) read, listed, collected and
deleted as before, on local disk, S3 (moto's server) and GCS (fake-gcs-server)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flowcore.caching import Cache, CacheRecord, StorageCacheStore
from flowcore.caching.records import record_id_for, value_digest
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Cached
from flowcore.exceptions import LocationEscapeError
from flowcore.utilities.configuration import set_temporary_config
from flowcore.utilities.hashing import hash_mapping
from tests.caching.conftest import doubling_flow
from tests.caching.test_stores import entry


def write_flat(
    store: StorageCacheStore,
    key: str,
    value: Any,
    inputs: dict[str, Any],
    hours: float = 1,
    parameters: dict[str, Any] | None = None,
) -> CacheRecord:
    """One entry as the version before the shards wrote it: ``<prefix>/<key>/<id>.json``
    beside ``<prefix>/<key>/<40 hex>.value``, the record naming the value relative to the root."""
    flat = f"{store.prefix}/{key}" if store.prefix else key
    data = store.result.encode(value)
    digest = value_digest(data)
    created = datetime.now(timezone.utc) - timedelta(minutes=5)
    digests, parameter_digests = hash_mapping(inputs), hash_mapping(parameters or {})
    record = CacheRecord(
        key=key, record_id=record_id_for(digests, parameter_digests), task=key, flow="etl", flow_run_id="old-run",
        created=created, expires=created + timedelta(hours=hours), inputs=digests, parameters=parameter_digests,
        value_location=f"{flat}/{digest.split(':', 1)[1][:40]}.value", serializer="PickleSerializer",
        value_digest=digest, message="Task run succeeded.",
    )  # fmt: skip
    assert record.value_location is not None
    store.result.write_bytes_at(record.value_location, data)
    store.records.write_bytes_at(f"{flat}/{record.record_id}.json", record.to_json())
    return record


def stored(store: StorageCacheStore) -> list[str]:
    """Every object under the store's prefix, relative to the prefix."""
    root = getattr(store.result, "dir", None)
    return sorted(
        os.path.relpath(loc, os.path.join(root, store.prefix))
        if isinstance(root, str)
        else loc[len(store.prefix) + 1 :]
        for loc in store.result.list(store.prefix)
    )


def test_keys_are_sharded_by_the_first_two_hex_digits_of_their_digest(tmp_path: Path) -> None:
    store = StorageCacheStore(LocalResult(dir=str(tmp_path)))
    keys = [f"task-{n}" for n in range(300)]
    for key in keys:
        store.put(*entry(key, 1))
    shards = {p.name for p in tmp_path.iterdir()}
    assert (
        shards == {hashlib.sha256(k.encode()).hexdigest()[:2] for k in keys} and len(shards) > 150
    )
    assert all(len(list((tmp_path / shard).iterdir())) < 10 for shard in shards)
    for key in keys[:5]:
        [candidate] = store.get(key)
        assert candidate.location is not None and Path(
            candidate.location
        ).parent == tmp_path / store.directory(key)
        assert store.load(candidate).result == 1


@pytest.mark.parametrize("key", ["../x", "a/../../x", "..", "a/.."])
def test_a_key_cannot_climb_out_of_its_shard(tmp_path: Path, key: str) -> None:
    store = StorageCacheStore(LocalResult(dir=str(tmp_path / "store")))
    with pytest.raises(LocationEscapeError, match="climbs out of its directory"):
        store.get(key)
    with pytest.raises(LocationEscapeError):
        store.put(*entry(key, 1))
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").rglob("*"))


def test_a_key_with_slashes_stays_in_its_shard(tmp_path: Path) -> None:
    store = StorageCacheStore(LocalResult(dir=str(tmp_path)))
    store.put(*entry("a/../b", 1))
    store.put(*entry("reports/2026/12", 2))
    assert [store.load(c).result for c in store.get("a/../b")] == [1]
    assert [store.load(c).result for c in store.get("reports/2026/12")] == [2]
    assert store.get("b") == [] and store.get("reports") == []


def test_a_flat_layout_store_is_read_listed_collected_and_deleted(
    make_storage_store: Callable[[], Any],
) -> None:
    store = make_storage_store()
    old = write_flat(store, "k", "flat value", {"x": 1})
    expired = write_flat(
        store, "k", "expired value", {"x": 2}, hours=1 / 60
    )  # expired 4 minutes ago
    store.put(*entry("k", "sharded value", inputs={"x": "3"}))
    assert f"k/{old.record_id}.json" in stored(store)  # the flat layout, as it was written

    reader = make_storage_store()
    candidates = reader.get("k")
    assert [c.record.record_id for c in candidates if c.record] == [
        old.record_id,
        expired.record_id,
        candidates[-1].record.record_id,
    ]
    assert reader.load(candidates[0]).result == "flat value"
    cache = Cache(reader)
    assert len(cache.entries()) == 3 and len(cache.show("k")) == 3
    assert all(e.size for e in cache.entries())

    report = cache.gc()
    assert [e.record.record_id for e in report.entries] == [expired.record_id]
    assert not any(name.startswith("k/" + expired.record_id) for name in stored(store))
    assert len(cache.delete(key="k", dry_run=True)) == 2

    assert store.delete("k", old.record_id) == 1
    assert [c.record.key for c in store.get("k") if c.record] == ["k"]
    assert not [
        name for name in stored(store) if name.startswith("k/")
    ]  # the flat record and its value
    assert store.delete("k") == 1 and not [
        n for n in stored(store) if n.endswith((".json", ".value"))
    ]


def test_a_flow_hits_a_flat_layout_store_and_writes_the_sharded_one(tmp_path: Path) -> None:
    calls: list[int] = []
    flow, out = doubling_flow(calls)
    directory = tmp_path / "store"
    store = StorageCacheStore(LocalResult(dir=str(directory)))
    write_flat(
        store, "double", 60, {"x": 3}, parameters={"x": 3}
    )  # a value only the flat record has

    state = flow.run(x=3, cache_store=str(directory))
    assert isinstance(state.result[out], Cached) and state.result[out].result == 60 and calls == []
    flow.run(x=4, cache_store=str(directory))
    assert calls == [4] and list((directory / store.directory("double")).glob("*.json"))

    with set_temporary_config({"tasks.refresh_cache": True}):
        flow.run(x=3, cache_store=str(directory))  # rewrites the record of x=3 in the shards
    assert calls == [4, 3]
    again = flow.run(x=3, cache_store=str(directory))
    assert again.result[out].result == 6 and calls == [4, 3]  # the newer record, not the flat copy
    newest = Cache(str(directory)).entries()[-1]
    assert newest.record.value_location is not None and newest.record.value_location.startswith(
        store.directory("double")
    )
