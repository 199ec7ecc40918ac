"""CachePlan and CacheRecord on their own, and whole-run checks of the plan's edge cases
(leases under LOOP and in transactions, newest-wins for policies, relocated stores)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import flowcore
from flowcore import Flow, Parameter, task
from flowcore import cache_policies as cp
from flowcore.caching import (
    CachePlan,
    CacheRecord,
    CorruptRecord,
    MemoryCacheStore,
    StorageCacheStore,
)
from flowcore.caching.records import record_id_for
from flowcore.engine import cache_validators, signals
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Cached, Pending, Success
from flowcore.locking.memory import MemoryLockManager
from flowcore.transactions import IsolationLevel, transaction
from flowcore.utilities.configuration import set_temporary_config
from flowcore.utilities.hashing import register_hasher
from tests.caching.conftest import key_dir

LOGGER = logging.getLogger("flowcore.test")


# -- compiling ------------------------------------------------------------------------------


def test_compile_each_spelling() -> None:
    hour = timedelta(hours=1)
    assert CachePlan.compile("t", None, None, None, None, None, None) is None
    prefect1 = CachePlan.compile("t", hour, cache_validators.all_inputs, None, None, None, None)
    assert prefect1 is not None and prefect1.key == "t" and prefect1.policy is None
    keyed = CachePlan.compile("t", hour, cache_validators.duration_only, "k", None, None, None)
    assert keyed is not None and keyed.key == "k"
    policy = CachePlan.compile("t", None, None, None, cp.INPUTS, hour, True)
    assert (
        policy is not None and policy.key is None and policy.expiration == hour and policy.refresh
    )
    target = CachePlan.compile("t", None, None, None, None, None, None, "out/{x}.pkl")
    assert target is not None and target.target == "out/{x}.pkl" and target.key is None


def test_a_task_compiles_once_and_again_when_an_argument_changes() -> None:
    work = task(cache_for=timedelta(hours=1))(lambda x: x)
    first = work.cache_plan
    assert work.cache_plan is first
    work.cache_key = "other"
    assert work.cache_plan is not first and work.cache_plan is not None
    assert work.cache_plan.key == "other"


# -- one run's decisions ----------------------------------------------------------------------


def _run(plan: CachePlan, store: Any, run_id: str = "run-1") -> Any:
    return plan.start({"flow_run_id": run_id, "flow_name": "f"}, "t", LOGGER, store=store)


def test_record_then_lookup_in_a_later_run() -> None:
    plan = CachePlan.compile(
        "t", timedelta(hours=1), cache_validators.all_inputs, None, None, None, None
    )
    assert plan is not None
    store = MemoryCacheStore({})
    first = _run(plan, store)
    assert first.lookup({"x": 1}, {}) is None
    cached = first.record(Success(result=2), {"x": 1}, {})
    assert isinstance(cached, Cached) and cached.cached_result_expiration is not None
    assert first.lookup({"x": 1}, {}) is None  # a run never uses its own records
    later = _run(plan, store, "run-2")
    assert later.lookup({"x": 1}, {}) is cached
    assert later.lookup({"x": 2}, {}) is None
    assert later.check(Pending(), {"x": 1}, {}) is cached
    assert (
        type(
            later.check(
                Cached(cached_result_expiration=datetime(2000, 1, 1, tzinfo=timezone.utc)), {}, {}
            )
        )
        is Pending
    )


def test_policy_records_keep_success_and_hit_in_the_same_run(tmp_path: Path) -> None:
    plan = CachePlan.compile("t", None, None, None, cp.INPUTS, None, None)
    assert plan is not None
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    run = _run(plan, store)
    assert run.lookup({"x": 1}, {}) is None
    state = Success(result=10)
    assert run.record(state, {"x": 1}, {}) is state
    again = _run(plan, store)
    hit = again.lookup({"x": 1}, {})
    assert (
        isinstance(hit, Cached)
        and hit.result == 10
        and "Cached result found for key" in str(hit.message)
    )
    [record] = key_dir(tmp_path, str(again.key)).glob("*.json")
    assert set(json.loads(record.read_text())["key_parts"]) == {"INPUTS"}


# -- the record --------------------------------------------------------------------------------


def test_record_round_trip_and_damage() -> None:
    record = CacheRecord(
        key="k",
        record_id=record_id_for({"x": "a"}, {"p": "b"}),
        task="t",
        flow="f",
        expires=datetime(2030, 1, 1, tzinfo=timezone.utc),
        inputs={"x": "a"},
        parameters={"p": "b"},
        value_location="k/v.value",
        serializer="PickleSerializer",
        value_digest="sha256:00",
    )
    data = record.to_json()
    assert CacheRecord.from_json(data, "loc") == record
    assert not record.expired() and record.expired(datetime(2031, 1, 1, tzinfo=timezone.utc))
    for bad in (b"", b"[]", data[:-5], data.replace(b'"version": 1', b'"version": 9')):
        with pytest.raises(CorruptRecord, match="loc"):
            CacheRecord.from_json(bad, "loc")
    with set_temporary_config({"results.signing_key": "k"}):
        signed = record.to_json()
        assert CacheRecord.from_json(signed, "loc") == record
        with pytest.raises(CorruptRecord, match="signature"):
            CacheRecord.from_json(data, "loc")
        tampered = signed.replace(b'"task": "t"', b'"task": "u"')
        with pytest.raises(CorruptRecord, match="signature"):
            CacheRecord.from_json(tampered, "loc")


# -- edge cases through whole runs -------------------------------------------------------------


def test_serializable_and_loop_takes_the_lease_once(tmp_path: Path) -> None:
    policy = cp.INPUTS.configure(
        isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=MemoryLockManager()
    )

    @task(cache_policy=policy)
    def count(n: int) -> int:
        loop = flowcore.context.get("task_loop_result", 0)
        if loop < 3:
            raise signals.LOOP(result=loop + 1)
        return loop

    with Flow("loop") as flow:
        out = count(1)
    with set_temporary_config({"home_dir": str(tmp_path)}):
        state = flow.run()
    assert state.result[out].result == 3


def test_two_tasks_with_one_key_in_one_serializable_transaction(tmp_path: Path) -> None:
    policy = cp.INPUTS.configure(
        isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=MemoryLockManager()
    )
    calls: list[str] = []

    @task(cache_policy=policy)
    def first(x: int) -> int:
        calls.append("first")
        return x

    @task(cache_policy=policy)
    def second(x: int) -> int:
        calls.append("second")
        return x

    with Flow("shared-key") as flow:
        with transaction():
            a = first(1)
            second(1, upstream_tasks=[a])
    with set_temporary_config({"home_dir": str(tmp_path)}):
        assert flow.run().is_successful()
        assert flow.run().is_successful()
    assert calls == ["first", "second"]


def test_policies_on_the_memory_store_hit_without_an_expiration() -> None:
    calls: list[int] = []

    @task(cache_policy=cp.INPUTS)
    def work(x: int) -> int:
        calls.append(x)
        return x

    with Flow("memory-policy") as flow:
        work(1)
    flow.run(cache_store="memory")
    flow.run(cache_store="memory")
    assert calls == [1]


def test_refresh_replaces_what_a_shared_policy_key_serves(tmp_path: Path) -> None:
    @task(cache_key_fn=lambda context, inputs: "shared")
    def work(x: int) -> int:
        return x * 10

    with Flow("refresh") as flow:
        x = Parameter("x")
        out = work(x)
    with set_temporary_config({"home_dir": str(tmp_path)}):
        assert flow.run(x=1).result[out].result == 10
        assert flow.run(x=2).result[out].result == 10
        with set_temporary_config({"tasks.refresh_cache": True}):
            assert flow.run(x=2).result[out].result == 20
        assert flow.run(x=3).result[out].result == 20


def test_a_relocated_local_store_keeps_working(tmp_path: Path) -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def work(x: int) -> int:
        calls.append(x)
        return x

    with Flow("moved") as flow:
        work(1)
    flow.run(cache_store=str(tmp_path / "before"))
    shutil.move(str(tmp_path / "before"), str(tmp_path / "after"))
    flow.run(cache_store=str(tmp_path / "after"))
    assert calls == [1]


def test_a_record_pointing_outside_the_store_is_a_warned_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def work(x: int) -> int:
        calls.append(x)
        return x

    with Flow("foreign") as flow:
        out = work(1)
    flow.run(cache_store=str(tmp_path / "s"))
    [record] = (tmp_path / "s").rglob("*.json")
    body = json.loads(record.read_text())
    body["value"]["location"] = "/etc/passwd"
    record.write_text(json.dumps(body))
    with caplog.at_level("WARNING"):
        state = flow.run(cache_store=str(tmp_path / "s"))
    assert state.is_successful() and type(state.result[out]) is Cached and calls == [1, 1]
    assert any("/etc/passwd" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_registered_hashers_count_in_prefect1_validators() -> None:
    class Reading:
        def __init__(self, value: float, noise: object) -> None:
            self.value, self.noise = value, noise

    register_hasher(Reading, lambda r: r.value)
    calls: list[float] = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def use(reading: Reading) -> float:
        calls.append(reading.value)
        return reading.value

    for noise in (object(), object()):
        with Flow("hasher") as flow:
            use(Reading(1.5, noise))
        flow.run()
    assert calls == [1.5]


def test_delete_keeps_values_other_records_share(tmp_path: Path) -> None:
    store = StorageCacheStore(LocalResult(dir=tmp_path))
    for inputs in ({"x": "a"}, {"x": "b"}):
        expires = datetime.now(timezone.utc) + timedelta(hours=1)
        record = CacheRecord(
            key="k",
            record_id=record_id_for(inputs, {}),
            task="t",
            expires=expires,
            inputs=inputs,
            parameters={},
        )
        store.put(record, Cached(result="same value", cached_result_expiration=expires))
    assert len(list(key_dir(tmp_path, "k").glob("*.value"))) == 1
    assert store.delete("k", record_id_for({"x": "a"}, {})) == 1
    [left] = store.get("k")
    assert store.load(left).result == "same value"
    assert store.delete("k") == 1 and not list(key_dir(tmp_path, "k").glob("*"))


def test_memory_delete_by_record_id() -> None:
    store = MemoryCacheStore({})
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    for x in ("a", "b"):
        record = CacheRecord(key="k", record_id="", task="t", expires=expires)
        store.put(
            record,
            Cached(
                result=x,
                cached_result_expiration=expires,
                hashed_inputs={"x": x},
                cached_parameters={},
            ),
        )
    ids = [r.record_id for r in store.entries()]
    assert len(set(ids)) == 2 and "" not in ids
    assert store.delete("k", ids[0]) == 1
    assert [r.record_id for r in store.entries()] == ids[1:]


def test_a_policy_hit_names_its_record_and_a_refresh_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @task(cache_policy=cp.INPUTS)
    def work(x: int) -> int:
        return x

    with Flow("explained") as flow:
        out = work(1)
    with set_temporary_config({"home_dir": str(tmp_path)}), caplog.at_level("INFO"):
        first = flow.run()
        second = flow.run()
        with set_temporary_config({"tasks.refresh_cache": True}):
            flow.run()
    assert first.result[out].message == "Task run succeeded."  # a fresh compute is no hit
    message = str(second.result[out].message)
    assert message.startswith("Cached result found for key")
    assert "written by flow run " in message
    assert " ago; value at " in message and message.endswith(".value)")
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.endswith(message) for line in lines)
    assert any("refresh_cache: running and replacing" in line for line in lines)


def test_hash_file_contents_makes_a_path_input_miss_when_its_content_changes(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data.csv"
    calls: list[str] = []

    def make(**kwargs: Any) -> Any:
        @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs, **kwargs)
        def load(path: Path) -> str:
            calls.append(path.read_text())
            return path.read_text()

        return load

    for load in (make(name="by-content", hash_file_contents=True), make(name="by-stat")):
        calls.clear()
        with Flow("files") as flow:
            out = load(data)
        data.write_text("a,b\n")
        flow.run()
        os.utime(data, ns=(1, 1))
        assert flow.run().result[out].result == "a,b\n"
        data.write_text("c,d\n")
        os.utime(data, ns=(1, 1))  # same size, same mtime: only the content differs
        state = flow.run()
        if load.hash_file_contents:
            assert calls == ["a,b\n", "c,d\n"] and state.result[out].result == "c,d\n"
        else:  # the touch was a miss; then size and mtime stayed: stale, as documented
            assert calls == ["a,b\n", "a,b\n"] and state.result[out].result == "a,b\n"


def test_hash_file_contents_reaches_policies(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"

    @task(cache_policy=cp.INPUTS, hash_file_contents=True)
    def load(path: Path) -> str:
        return path.read_text()

    with Flow("files-policy") as flow:
        out = load(data)
    with set_temporary_config({"home_dir": str(tmp_path / "home")}):
        data.write_text("one\n")
        os.utime(data, ns=(1, 1))
        flow.run()
        data.write_text("two\n")
        os.utime(data, ns=(1, 1))
        assert flow.run().result[out].result == "two\n"


def test_a_record_time_without_an_offset_is_utc() -> None:
    record = CacheRecord(
        key="k", record_id="r", task="t", expires=datetime(2030, 1, 1, tzinfo=timezone.utc)
    )
    body = json.loads(record.to_json())
    body["created"], body["expires"] = "2026-01-01T00:00:00", "2030-01-01T00:00:00"
    parsed = CacheRecord.from_json(json.dumps(body).encode(), "loc")
    assert parsed.created.tzinfo is not None and not parsed.expired()
    assert parsed.created < datetime.now(timezone.utc)


def test_a_policy_miss_names_what_changed_since_the_tasks_last_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def build(body_offset: int) -> tuple[Flow, Any]:
        if body_offset == 0:

            def work(x: int, debug: bool = False) -> int:
                return x
        else:

            def work(x: int, debug: bool = False) -> int:
                return x + 1

        cached = task(work, name="work", cache_policy=(cp.INPUTS - "debug") + cp.TASK_SOURCE)
        with Flow("explained-miss") as flow:
            out = cached(Parameter("x"), debug=Parameter("debug", default=False))
        return flow, out

    flow, _ = build(0)
    changed_code, _ = build(1)
    with set_temporary_config({"home_dir": str(tmp_path)}), caplog.at_level("INFO"):
        flow.run(x=1)
        caplog.clear()
        flow.run(x=2, debug=True)
        [line] = [r.getMessage() for r in caplog.records if "cache miss" in r.getMessage()]
        assert "input 'x' changed since the task's last record" in line and "debug" not in line
        caplog.clear()
        changed_code.run(x=2)
        [line] = [r.getMessage() for r in caplog.records if "cache miss" in r.getMessage()]
        assert "code changed" in line and "input" not in line
        caplog.clear()
        changed_code.run(x=2)  # a hit: no miss line
        assert not [r for r in caplog.records if "cache miss" in r.getMessage()]
    assert list((tmp_path / "storage" / ".tasks").glob("*.latest"))
