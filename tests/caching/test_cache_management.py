"""``flowcore.caching.Cache``: entries, show, delete and gc, on the memory store and on
storage stores over local disk, S3 (moto's server) and GCS (fake-gcs-server)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flowcore.caching import CacheRecord, MemoryCacheStore, StorageCacheStore
from flowcore.caching.cache import Cache
from flowcore.caching.records import record_id_for
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Cached


def put(
    store: Any,
    key: str,
    value: Any,
    task: str = "t",
    flow: str = "f",
    age: timedelta = timedelta(0),
    expires_in: timedelta = timedelta(hours=1),
    x: str = "a",
) -> None:
    created = datetime.now(timezone.utc) - age
    expires = created + expires_in
    inputs = {"x": x}
    record = CacheRecord(
        key=key,
        record_id=record_id_for(inputs, {}),
        task=task,
        flow=flow,
        created=created,
        expires=expires,
        inputs=inputs,
        parameters={},
    )
    store.put(
        record,
        Cached(
            result=value,
            cached_result_expiration=expires,
            hashed_inputs=inputs,
            cached_parameters={},
        ),
    )


def test_entries_filters_and_show(make_store: Callable[[], Any]) -> None:
    store = make_store()
    put(
        store,
        "fetch",
        1,
        task="fetch",
        flow="etl",
        age=timedelta(days=10),
        expires_in=timedelta(days=400),
    )
    put(store, "fetch", 2, task="fetch", flow="etl", x="b")
    put(store, "load", 3, task="load", flow="other")
    cache = Cache(make_store())
    assert [e.key for e in cache.entries()] == ["fetch", "fetch", "load"]  # oldest first
    assert {e.key for e in cache.entries(task="load")} == {"load"}
    if not isinstance(store, MemoryCacheStore):  # memory records are Cached states: no flow name
        assert {e.key for e in cache.entries(flow="etl")} == {"fetch"}
    if not isinstance(store, MemoryCacheStore):  # memory records carry no creation time
        assert len(cache.entries(older_than=timedelta(days=7))) == 1
    assert len(cache.show("fetch")) == 2
    if not isinstance(store, MemoryCacheStore):
        assert all(e.size is not None and e.size > 0 for e in cache.entries())
    json.dumps([e.to_dict() for e in cache.entries()])


def test_delete_with_a_dry_run_first(make_store: Callable[[], Any]) -> None:
    store = make_store()
    put(store, "fetch", 1, task="fetch")
    put(store, "load", 2, task="load")
    cache = Cache(store)
    planned = cache.delete(task="fetch", dry_run=True)
    assert [e.key for e in planned] == ["fetch"] and len(cache.entries()) == 2
    assert [e.key for e in cache.delete(task="fetch")] == ["fetch"]
    assert [e.key for e in cache.entries()] == ["load"]


def test_gc_by_expiry_age_and_count(make_storage_store: Callable[[], Any]) -> None:
    store = make_storage_store()
    put(store, "expired", 0, expires_in=timedelta(seconds=-1))
    put(store, "old", 1, age=timedelta(days=40), expires_in=timedelta(days=400))
    for i in range(3):
        put(store, f"k{i}", i, age=timedelta(minutes=10 - i))
    cache = Cache(store)
    expected = ["expired", "k0", "old"]
    dry = cache.gc(max_age=timedelta(days=30), max_entries=2, dry_run=True)
    assert (
        sorted(e.key for e in dry.entries) == expected and len(cache.entries()) == len(expected) + 2
    )
    report = cache.gc(max_age=timedelta(days=30), max_entries=2)
    assert sorted(e.key for e in report.entries) == expected
    assert sorted(e.key for e in cache.entries()) == ["k1", "k2"]
    json.dumps(report.to_dict())


def test_gc_on_the_memory_store_by_count() -> None:
    store = MemoryCacheStore({})
    for i in range(3):
        put(store, f"k{i}", i)
    report = Cache(store).gc(max_entries=1)
    assert sorted(e.key for e in report.entries) == ["k0", "k1"]
    assert list(store.caches) == ["k2"]


def test_gc_by_size_keeps_the_newest(tmp_path: Path) -> None:
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    for i in range(4):
        put(store, f"k{i}", b"x" * 1000 + bytes([i]), age=timedelta(minutes=10 - i))
    cache = Cache(store)
    one = cache.entries()[0].size
    assert one is not None
    report = cache.gc(max_bytes=2 * one)
    assert sorted(e.key for e in report.entries) == ["k0", "k1"] and report.bytes_freed == 2 * one
    assert sorted(e.key for e in cache.entries()) == ["k2", "k3"]


def test_gc_removes_old_orphans_and_stale_temporaries_only(tmp_path: Path) -> None:
    import os

    store = StorageCacheStore(LocalResult(dir=tmp_path))
    put(store, "kept", 1)
    (tmp_path / "gone").mkdir()
    beside = tmp_path / store.directory("kept")  # orphans only where records are kept beside
    old_orphan, new_orphan = beside / "old.value", beside / "new.value"
    old_orphan.write_bytes(b"x")
    new_orphan.write_bytes(b"y")
    temporary = tmp_path / "gone" / ".thing.value.0123456789ab.tmp"
    temporary.write_bytes(b"partial")
    two_hours_ago = datetime.now(timezone.utc).timestamp() - 7200
    for path in (old_orphan, temporary):
        os.utime(path, (two_hours_ago, two_hours_ago))
    report = Cache(store).gc()
    assert [Path(p).name for p in report.orphans] == ["old.value"] and report.temporaries == 1
    assert not old_orphan.exists() and new_orphan.exists() and not temporary.exists()
    [entry] = Cache(store).entries()
    assert entry.key == "kept" and store.load(store.get("kept")[0]).result == 1


def test_a_cache_from_a_spec_string(tmp_path: Path) -> None:
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    put(store, "k", 1)
    assert [e.key for e in Cache(str(tmp_path)).entries()] == ["k"]


def test_configured_gc_runs_after_a_flow_run_at_most_once_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flowcore import Flow, task
    from flowcore.engine.cache_validators import all_inputs
    from flowcore.utilities.configuration import set_temporary_config

    @task(cache_for=timedelta(hours=1), cache_validator=all_inputs)
    def double(x: int) -> int:
        return 2 * x

    store = str(tmp_path / "store")
    settings = {"caching.gc.max_entries": 2, "caching.gc.every": "1h"}
    with set_temporary_config(settings), caplog.at_level("INFO"):
        for first in (0, 10):
            with Flow("gc") as flow:
                double.map(list(range(first, first + 3)))
            flow.run(cache_store=store)
            if first == 0:
                assert len(Cache(store).entries()) == 2  # gc ran after the first run
                assert any(
                    "Cache garbage collection: removed 1 entries" in r.getMessage()
                    for r in caplog.records
                )
    assert len(Cache(store).entries()) == 5  # the second run came within the hour: no gc
    assert (tmp_path / "store" / ".gc" / "last").is_file()
    with set_temporary_config({"caching.gc.max_entries": "many"}), caplog.at_level("WARNING"):
        os_marker = tmp_path / "store" / ".gc" / "last"
        os_marker.unlink()
        with Flow("gc-bad") as flow:
            double(1)
        assert flow.run(cache_store=store).is_successful()  # a bad setting never fails a run
    assert any("caching.gc" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def _damage(store_dir: Path, key: str, how: str) -> Path:
    """Damage one record of ``key`` in a local store; return its file."""
    record = sorted(
        (store_dir / StorageCacheStore(LocalResult(dir=store_dir)).directory(key)).glob("*.json")
    )[0]
    if how == "garbage":
        record.write_text("{{{")
        return record
    document = json.loads(record.read_text())
    if how == "params_list":
        document["parameters"] = [1]
    elif how == "loc_abs":
        document["value"]["location"] = "/etc/passwd"
    elif how == "loc_int":
        document["value"]["location"] = 5
    record.write_text(json.dumps(document))
    return record


@pytest.mark.parametrize("how", ["garbage", "params_list", "loc_abs", "loc_int"])
def test_damaged_records_are_listed_and_removed_by_delete_and_gc(tmp_path: Path, how: str) -> None:
    for x in "abc":
        put(StorageCacheStore(LocalResult(dir=tmp_path)), "k", x, x=x)
    put(StorageCacheStore(LocalResult(dir=tmp_path)), "other", 1)
    damaged = _damage(tmp_path, "k", how)
    cache = Cache(str(tmp_path))
    entries = cache.show("k")
    assert len(entries) == 3 and len(cache.entries()) == 4
    [bad] = [e for e in entries if e.problem is not None]
    assert bad.location == str(damaged) and bad.key == "k" and bad.unusable()
    assert cache.entries(expired=False) == [e for e in cache.entries() if e.problem is None]

    assert cache.gc(dry_run=True).entries == [bad] and damaged.exists()
    report = cache.gc()
    assert report.entries == [bad] and report.not_removed == [] and not damaged.exists()
    assert len(cache.show("k")) == 2 and cache.gc().entries == []
    assert len(cache.delete(key="k")) == 2 and cache.show("k") == []


def test_a_record_the_storage_cannot_read_is_listed_but_left_by_gc(tmp_path: Path) -> None:
    """A record whose read fails in the storage (a network error, permissions; here a FIFO
    in the record's place, which the local Result refuses to read) may be whole: it is
    listed with the error, but garbage collection and ``expired`` leave it alone; asked
    for by its key, it is removed."""
    put(StorageCacheStore(LocalResult(dir=tmp_path)), "k", 1)
    [record] = (tmp_path / StorageCacheStore(LocalResult(dir=tmp_path)).directory("k")).glob(
        "*.json"
    )
    record.unlink()
    os.mkfifo(record)
    cache = Cache(str(tmp_path))
    [entry] = cache.entries()
    assert entry.problem is not None and "cannot be read now" in entry.problem
    assert entry.passing and not entry.unusable()
    assert cache.gc().entries == [] and cache.entries(expired=True) == []
    assert record.exists()
    assert [e.location for e in cache.delete(key="k")] == [str(record)] and not record.exists()


def test_rm_all_removes_records_that_are_not_json(tmp_path: Path) -> None:
    put(StorageCacheStore(LocalResult(dir=tmp_path)), "k", 1)
    damaged = _damage(tmp_path, "k", "garbage")
    removed = Cache(str(tmp_path)).delete()
    assert [e.location for e in removed] == [str(damaged)] and not damaged.exists()


def test_a_record_outside_its_key_s_directory_is_removed_once_and_reported_once(
    tmp_path: Path,
) -> None:
    put(StorageCacheStore(LocalResult(dir=tmp_path)), "k", 1, expires_in=timedelta(0))
    [record] = (tmp_path / StorageCacheStore(LocalResult(dir=tmp_path)).directory("k")).glob(
        "*.json"
    )
    (tmp_path / "zz" / "other").mkdir(parents=True)
    moved = record.rename(tmp_path / "zz" / "other" / record.name)
    cache = Cache(str(tmp_path))
    [entry] = cache.entries()
    assert entry.problem is not None and "belongs in" in entry.problem
    assert len(cache.gc().entries) == 1 and not moved.exists()
    assert cache.gc().entries == [] and cache.entries() == []


def test_the_users_json_and_a_nested_store_s_records_are_not_this_store_s(tmp_path: Path) -> None:
    # a store at a bucket's (or directory's) root shares it with the user's files, a task's
    # JSON target for one, and with stores rooted below it: gc deleted the JSON target as a
    # damaged record, and the nested store's valid records as misplaced ones
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    put(store, "k", 1, expires_in=timedelta(0))  # expired: gc removes it
    report = tmp_path / "reports" / "report-1.json"
    report.parent.mkdir()
    report.write_text('{"total": 42}')
    notes = tmp_path / "notes.json"
    notes.write_text("not even JSON")
    nested = StorageCacheStore(LocalResult(dir=tmp_path / "cache"))
    put(nested, "inner", 2)
    cache = Cache(str(tmp_path))
    assert [e.record.key for e in cache.entries()] == ["k"]
    assert [e.record.key for e in cache.gc(max_age=timedelta(0)).entries] == ["k"]
    assert report.read_text() == '{"total": 42}' and notes.exists()
    assert [e.record.key for e in Cache(str(tmp_path / "cache")).entries()] == ["inner"]


def test_a_record_that_cannot_be_removed_is_not_reported_removed(tmp_path: Path) -> None:
    store_dir, outside = tmp_path / "store", tmp_path / "outside.json"
    put(StorageCacheStore(LocalResult(dir=store_dir)), "k", 1)
    [record] = (store_dir / StorageCacheStore(LocalResult(dir=store_dir)).directory("k")).glob(
        "*.json"
    )
    outside.write_bytes(record.read_bytes())
    record.unlink()
    record.symlink_to(outside)
    cache = Cache(str(store_dir))
    [entry] = cache.entries()
    assert entry.problem is not None and "cannot be read" in entry.problem
    assert cache.delete(key="k") == []
    report = cache.gc()
    assert report.entries == [] and [e.location for e in report.not_removed] == [str(record)]
    assert outside.exists() and record.is_symlink()
