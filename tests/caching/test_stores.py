"""Cache stores on their own: MemoryCacheStore, and ResultCacheStore over local disk, S3
(moto's server) and GCS (fake-gcs-server)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flowcore.caching import CacheStore, MemoryCacheStore, ResultCacheStore, store_from_spec
from flowcore.engine.results import GCSResult, LocalResult, S3Result
from flowcore.engine.state import Cached
from flowcore.exceptions import ResultStorageError


def cached(value: object, minutes: float = 60, inputs: dict[str, str] | None = None, params: dict[str, object] | None = None) -> Cached:
    return Cached(
        result=value,
        cached_result_expiration=datetime.now(timezone.utc) + timedelta(minutes=minutes),
        hashed_inputs=inputs if inputs is not None else {"x": "t1"},
        cached_parameters=params if params is not None else {},
    )


@pytest.fixture(params=["memory", "local", "s3", "gcs"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], CacheStore]:
    kind = request.param
    if kind == "memory":
        caches: dict[str, list[Cached]] = {}
        return lambda: MemoryCacheStore(caches)
    if kind == "local":
        return lambda: ResultCacheStore(LocalResult(dir=tmp_path / "cache"))
    bucket = request.getfixturevalue(f"{kind}_bucket")
    if kind == "s3":
        return lambda: ResultCacheStore(S3Result(bucket=bucket), prefix="caches")
    return lambda: ResultCacheStore(GCSResult(bucket=bucket), prefix="caches")


def test_put_then_get_from_a_new_store_object(make_store: Callable[[], CacheStore]) -> None:
    make_store().put("k", cached(41), flow_run_id="run-1")
    records = make_store().get("k", flow_run_id="run-2")
    assert len(records) == 1
    loaded = make_store().load(records[0])
    assert loaded.result == 41 and loaded.hashed_inputs == {"x": "t1"}
    assert loaded.cached_result_expiration is not None


def test_a_run_does_not_see_its_own_records(make_store: Callable[[], CacheStore]) -> None:
    store = make_store()
    store.put("k", cached(1), flow_run_id="run-1")
    assert store.get("k", flow_run_id="run-1") == []
    assert len(store.get("k", flow_run_id="run-2")) == 1


def test_same_inputs_replace_instead_of_growing(make_store: Callable[[], CacheStore]) -> None:
    store = make_store()
    for value in range(5):
        store.put("k", cached(value), flow_run_id=f"run-{value}")
    store.put("k", cached(99, inputs={"x": "other"}), flow_run_id="run-x")
    records = store.get("k", flow_run_id="now")
    assert len(records) == 2
    assert sorted(make_store().load(r).result for r in records) == [4, 99]


def test_expired_records_are_dropped_on_put(make_store: Callable[[], CacheStore]) -> None:
    store = make_store()
    store.put("k", cached(1, minutes=-5, inputs={"x": "a"}), flow_run_id="r1")
    store.put("k", cached(2, inputs={"x": "b"}), flow_run_id="r2")
    assert [store.load(r).result for r in store.get("k", flow_run_id="r3")] == [2]


def test_keys_are_independent_and_any_string_works(make_store: Callable[[], CacheStore]) -> None:
    store = make_store()
    store.put("a/b c:{weird}", cached("w"), flow_run_id="r1")
    assert store.get("other", flow_run_id="r2") == []
    assert [store.load(r).result for r in store.get("a/b c:{weird}", flow_run_id="r2")] == ["w"]


def test_a_missing_value_cannot_be_loaded(tmp_path: Path) -> None:
    store = ResultCacheStore(LocalResult(dir=tmp_path))
    store.put("k", cached(1), flow_run_id="r1")
    [record] = store.get("k", flow_run_id="r2")
    Path(record._result.location or "").unlink()
    with pytest.raises(ResultStorageError):
        store.load(record)


def test_a_corrupt_index_reads_as_empty(tmp_path: Path) -> None:
    store = ResultCacheStore(LocalResult(dir=tmp_path))
    store.put("k", cached(1), flow_run_id="r1")
    [index] = list(tmp_path.rglob("records.pkl"))
    index.write_bytes(b"not a pickle")
    assert store.get("k", flow_run_id="r2") == []
    store.put("k", cached(2), flow_run_id="r3")
    assert [store.load(r).result for r in store.get("k", flow_run_id="r4")] == [2]


def test_memory_store_is_context_caches_by_default() -> None:
    from flowcore import context

    store = MemoryCacheStore()
    state = cached(5)
    store.put("key", state)
    assert context.caches["key"] == [state]


def test_store_from_spec(tmp_path: Path) -> None:
    assert isinstance(store_from_spec("memory"), MemoryCacheStore)
    local = store_from_spec(str(tmp_path / "dir"))
    assert isinstance(local, ResultCacheStore) and isinstance(local.result, LocalResult)
    s3 = store_from_spec("s3://bucket-name/some/prefix")
    assert isinstance(s3, ResultCacheStore) and isinstance(s3.result, S3Result)
    assert s3.result.bucket == "bucket-name" and s3.prefix == "some/prefix"
    gcs = store_from_spec("gs://b2")
    assert isinstance(gcs, ResultCacheStore) and isinstance(gcs.result, GCSResult) and gcs.prefix == ""
    with pytest.raises(ValueError, match="no bucket"):
        store_from_spec("s3://")
    with pytest.raises(TypeError, match="cache store must be"):
        store_from_spec(42)
