"""The store contract: one suite run on the memory store and on StorageCacheStore over local
disk, S3 (moto's server) and GCS (fake-gcs-server); then what only storage stores do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flowcore.caching import (
    CacheRecord,
    CacheStore,
    CorruptRecord,
    MemoryCacheStore,
    StorageCacheStore,
    store_from_spec,
)
from flowcore.caching.records import record_id_for
from flowcore.engine.results import GCSResult, LocalResult, S3Result
from flowcore.engine.state import Cached
from flowcore.exceptions import LocationEscapeError
from flowcore.utilities.configuration import set_temporary_config
from tests.caching.conftest import key_dir


def entry(
    key: str,
    value: Any,
    run: str = "run-1",
    minutes: float = 60,
    inputs: dict[str, str] | None = None,
) -> tuple[CacheRecord, Cached]:
    inputs = {"x": "t1"} if inputs is None else inputs
    expires = datetime.now(timezone.utc) + timedelta(minutes=minutes)
    record = CacheRecord(
        key=key,
        record_id=record_id_for(inputs, {}),
        task="t",
        flow="f",
        flow_run_id=run,
        expires=expires,
        inputs=inputs,
        parameters={},
        message="Task run succeeded.",
    )
    state = Cached(
        result=value, cached_result_expiration=expires, hashed_inputs=inputs, cached_parameters={}
    )
    return record, state


def test_put_then_get_from_a_new_store_object(make_store: Callable[[], CacheStore]) -> None:
    make_store().put(*entry("k", 41))
    [candidate] = make_store().get("k", exclude_run="run-2")
    loaded = make_store().load(candidate)
    assert loaded.result == 41 and loaded.hashed_inputs == {"x": "t1"}
    assert loaded.cached_result_expiration is not None


def test_a_run_does_not_see_its_own_records(make_store: Callable[[], CacheStore]) -> None:
    store = make_store()
    store.put(*entry("k", 1, run="run-1"))
    assert store.get("k", exclude_run="run-1") == []
    assert len(store.get("k", exclude_run="run-2")) == 1
    assert len(store.get("k")) == 1


def test_same_inputs_replace_different_inputs_add(make_store: Callable[[], CacheStore]) -> None:
    store = make_store()
    for value in range(5):
        store.put(*entry("k", value, run=f"run-{value}"))
    [only] = store.get("k")
    assert store.load(only).result == 4
    store.put(*entry("k", "other", inputs={"x": "t2"}))
    assert sorted(str(store.load(c).result) for c in store.get("k")) == ["4", "other"]


def test_keys_are_independent_and_any_string_works(make_store: Callable[[], CacheStore]) -> None:
    store = make_store()
    for key in ("a", "b c", "task-1 (copy)", "ünïcode"):
        store.put(*entry(key, key.upper()))
    for key in ("a", "b c", "task-1 (copy)", "ünïcode"):
        [candidate] = store.get(key)
        assert store.load(candidate).result == key.upper()
    assert store.get("missing") == []


def test_entries_and_delete(make_store: Callable[[], CacheStore]) -> None:
    store = make_store()
    store.put(*entry("a", 1))
    store.put(*entry("a", 2, inputs={"x": "t2"}))
    store.put(*entry("b", 3))
    assert sorted(r.key for r in store.entries()) == ["a", "a", "b"]
    assert store.delete("a") == 2
    assert store.get("a") == [] and [r.key for r in store.entries()] == ["b"]


def test_expired_records_are_not_served(make_store: Callable[[], CacheStore]) -> None:
    """Expiry is the validator's decision; the store keeps the expiration it was given."""
    store = make_store()
    store.put(*entry("k", 1, minutes=-1))
    for candidate in store.get("k"):
        expiration = candidate.state.cached_result_expiration
        assert expiration is not None and expiration < datetime.now(timezone.utc)


# -- storage stores ------------------------------------------------------------------------


def test_layout_is_one_json_record_and_one_value_per_entry(tmp_path: Path) -> None:
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    record, state = entry("fetch", {"rows": 3})
    store.put(record, state)
    [document] = key_dir(tmp_path, "fetch").glob("*.json")
    assert document.name == f"{record.record_id}.json"
    body = json.loads(document.read_text())
    assert body["format"] == "flowcore-cache-record" and body["key"] == "fetch"
    assert body["value"]["serializer"] == "PickleSerializer"
    assert body["value"]["digest"].startswith("sha256:")
    shard = hashlib.sha256(b"fetch").hexdigest()[:2]
    assert document.parent == tmp_path / shard / "fetch"  # sharded by the key's digest
    assert body["value"]["location"].startswith(f"{shard}/fetch/")  # relative to the root
    assert (tmp_path / body["value"]["location"]).is_file()
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("damage", [b"", b"{trunc", b"\x80\x04K\x01.", b'{"format": "other"}'])
def test_a_corrupt_record_is_a_warned_miss(
    tmp_path: Path, damage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    store.put(*entry("k", 1))
    [document] = key_dir(tmp_path, "k").glob("*.json")
    document.write_bytes(damage)
    with caplog.at_level("WARNING"):
        assert store.get("k") == []
    assert any(
        str(document.name) in r.getMessage() and r.levelname == "WARNING" for r in caplog.records
    )


def test_a_value_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    store.put(*entry("k", 1))
    [value] = key_dir(tmp_path, "k").glob("*.value")
    value.write_bytes(b"\x80\x04K\x02.")  # a valid pickle of 2, not what was recorded
    [candidate] = store.get("k")
    with pytest.raises(CorruptRecord, match="does not match"):
        store.load(candidate)


def test_a_signed_store_refuses_unsigned_records(tmp_path: Path) -> None:
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    store.put(*entry("k", 1))
    with set_temporary_config({"results.signing_key": "s3cret"}):
        assert store.get("k") == []
        store.put(*entry("k", 2))
        [candidate] = store.get("k")
        assert store.load(candidate).result == 2
        assert "mac" in json.loads(next(key_dir(tmp_path, "k").glob("*.json")).read_text())
    with set_temporary_config({"results.signing_key": "other"}):
        assert store.get("k") == []


def test_records_apart_from_values(tmp_path: Path) -> None:
    store = StorageCacheStore(
        LocalResult(dir=tmp_path / "values"), records=LocalResult(dir=tmp_path / "keys")
    )
    store.put(*entry("k", 7))
    assert list(key_dir(tmp_path / "keys", "k").glob("*.json")) and not list(
        (tmp_path / "values").rglob("*.json")
    )
    [candidate] = store.get("k")
    assert store.load(candidate).result == 7


def test_store_from_spec(tmp_path: Path) -> None:
    assert isinstance(store_from_spec("memory"), MemoryCacheStore)
    local = store_from_spec(str(tmp_path / "dir"))
    assert isinstance(local, StorageCacheStore) and isinstance(local.result, LocalResult)
    s3 = store_from_spec("s3://bucket-name/some/prefix")
    assert (
        isinstance(s3, StorageCacheStore)
        and isinstance(s3.result, S3Result)
        and s3.prefix == "some/prefix"
    )
    gcs = store_from_spec("gs://b2")
    assert (
        isinstance(gcs, StorageCacheStore)
        and isinstance(gcs.result, GCSResult)
        and gcs.prefix == ""
    )
    with pytest.raises(ValueError, match="no bucket"):
        store_from_spec("s3://")
    for typo in ("s3:/bucket/x", "ftp://host/x"):  # (s3:/ made a directory ./s3: here)
        with pytest.raises(ValueError, match=f"cache store {typo!r} looks like a URL"):
            store_from_spec(typo)
    with pytest.raises(TypeError, match="cache store must be"):
        store_from_spec(42)


def test_memory_store_is_context_caches_by_default() -> None:
    import flowcore

    store = MemoryCacheStore()
    store.put(*entry("k", 5))
    assert [s.result for s in flowcore.context.caches["k"]] == [5]


def test_memory_store_keeps_the_first_state_of_equal_inputs_within_a_flow_run() -> None:
    """As Prefect 1 keeps the first valid cached state: mapped children of equal inputs
    absorbed after a run do not replace the one the run kept; a later run's state does."""
    from flowcore.caching import MemoryCacheStore

    store = MemoryCacheStore({})
    first, second, later = (entry("k", value)[1] for value in (1, 2, 3))
    store.absorb("k", first, "run-1")
    store.absorb("k", second, "run-1")
    assert [s.result for s in store.caches["k"]] == [1]
    store.absorb("k", later, "run-2")
    assert [s.result for s in store.caches["k"]] == [3]


def test_one_memory_store_per_caches_dict_knows_what_earlier_runs_put() -> None:
    """``MemoryCacheStore.of``: a flow run's in-memory store is the same object for the
    same ``caches`` dict, so a later run knows the states earlier runs put there (and the
    after-run update skips them) and their runs; another dict has a store of its own."""
    from datetime import timedelta as td

    import flowcore
    from flowcore import Flow, task
    from flowcore.caching import MemoryCacheStore
    from flowcore.caching.choice import run_stores
    from flowcore.configuration import config

    caches: dict[str, Any] = {}
    assert MemoryCacheStore.of(caches) is MemoryCacheStore.of(caches)
    assert MemoryCacheStore.of({}) is not MemoryCacheStore.of(caches)
    assert run_stores(None, None, config, caches)["cache_store"] is MemoryCacheStore.of(caches)

    cached = task(cache_for=td(hours=1), cache_key="one-store")(lambda x: x + 1)
    with Flow("one-store") as flow:
        result = cached(1)
    with flowcore.context(caches=caches):
        first = flow.run()
        second = flow.run()
    assert first is not None and second is not None
    hit = second.result[result]
    assert hit is first.result[result] and caches["one-store"] == [hit]
    store = MemoryCacheStore.of(caches)
    assert store.holds(hit)
    assert [r.flow_run_id for r in store.entries()] == [first.flow_run_id]


def test_memory_stores_of_many_dicts_are_not_all_kept() -> None:
    from flowcore.caching import MemoryCacheStore
    from flowcore.caching.stores import _KEPT_MEMORY_STORES

    dicts: list[dict[str, Any]] = [{} for _ in range(_KEPT_MEMORY_STORES + 3)]
    stores = [MemoryCacheStore.of(d) for d in dicts]
    assert MemoryCacheStore.of(dicts[-1]) is stores[-1]  # recent: kept
    assert MemoryCacheStore.of(dicts[0]) is not stores[0]  # the oldest was let go


def test_a_key_named_like_another_key_s_directory_never_touches_its_records(
    tmp_path: Path,
) -> None:
    """``<shard of K>/K`` is K's sharded directory and also, in the flat layout, the
    directory of the key ``<shard of K>/K``: writing that key must leave K's records alone."""
    shard = hashlib.sha256(b"daily").hexdigest()[:2]
    StorageCacheStore(LocalResult(dir=tmp_path)).put(*entry("daily", "A"))
    other = StorageCacheStore(LocalResult(dir=tmp_path))
    assert other.get(f"{shard}/daily") == []
    other.put(*entry(f"{shard}/daily", "B"))
    other.put(*entry(f"{shard}/daily", "B"))
    reader = StorageCacheStore(LocalResult(dir=tmp_path))
    assert [reader.load(c).result for c in reader.get("daily")] == ["A"]
    assert [reader.load(c).result for c in reader.get(f"{shard}/daily")] == ["B"]
    assert reader.delete(f"{shard}/daily") == 1
    assert [reader.load(c).result for c in reader.get("daily")] == ["A"]


@pytest.mark.parametrize("key", ["", ".", "/", "./."])
def test_a_key_that_names_no_directory_is_refused_with_the_fix(tmp_path: Path, key: str) -> None:
    store = StorageCacheStore(LocalResult(dir=tmp_path / "store"))
    with pytest.raises(LocationEscapeError) as raised:
        store.get(key)
    message = str(raised.value)
    assert f"cache key {key!r} names no directory" in message and "'..'" not in message
    assert "with a name in it" in message


def test_scan_lists_damaged_and_misplaced_records_and_delete_removes_damaged_ones(
    tmp_path: Path,
) -> None:
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    store.put(*entry("k", 1))
    store.put(*entry("k", 2, inputs={"x": "t2"}))
    first, second = sorted(key_dir(tmp_path, "k").glob("*.json"))
    first.write_bytes(b"{{{")
    document = json.loads(second.read_text())
    document["parameters"] = [1]
    second.write_text(json.dumps(document))
    store.put(*entry("elsewhere", 3, inputs={"x": "t3"}))
    [moved] = key_dir(tmp_path, "elsewhere").glob("*.json")
    (tmp_path / "zz").mkdir()
    moved.rename(tmp_path / "zz" / moved.name)

    scanned = {Path(s.location or "").name: s for s in store.scan()}
    assert scanned[first.name].problem is not None and "not JSON" in scanned[first.name].problem
    assert "'parameters' is a list" in (scanned[second.name].problem or "")
    assert scanned[first.name].record.key == "k"  # the stand-in names the key's directory
    assert "belongs in" in (scanned[moved.name].problem or "")
    assert list(store.entries()) == []
    assert store.delete("k") == 2 and not list(key_dir(tmp_path, "k").glob("*.json"))
    assert store.remove([scanned[moved.name]]) == [scanned[moved.name]]
    assert not (tmp_path / "zz" / moved.name).exists()
