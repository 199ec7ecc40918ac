"""``CacheRun.explain`` and ``explain_flow``: a lookup's decision and reason without running,
locking or writing; the words are those a task run logs. (``flowcore cache explain`` itself
is tested through the console script in tests/cli/test_cache.py.)"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, Parameter, task
from flowcore import cache_policies as cp
from flowcore.caching import CachePlan, StorageCacheStore
from flowcore.caching.explain import TaskExplanation, explain_flow
from flowcore.engine import cache_validators
from flowcore.engine.flow_runner import FlowRunner
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Success
from flowcore.locking.memory import MemoryLockManager
from flowcore.transactions import IsolationLevel

LOGGER = logging.getLogger("flowcore.test")


def explained(flow: Flow, store: Any = None, **parameters: Any) -> dict[str, TaskExplanation]:
    _, _, context, task_contexts = FlowRunner(flow=flow).initialize_run(
        None, {}, {}, {}, parameters
    )
    return {e.task: e for e in explain_flow(flow, context, task_contexts, store)}


def test_explain_decides_as_lookup_does_without_a_lease_or_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    locks = MemoryLockManager()
    policy = cp.INPUTS.configure(isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=locks)
    plan = CachePlan.compile("t", None, None, None, policy, None, None)
    assert plan is not None
    store = StorageCacheStore(LocalResult(dir=str(tmp_path)))
    first = plan.start({"flow_run_id": "run-1"}, "t", LOGGER, store=store)
    miss = first.explain({"x": 1}, {})
    assert (
        miss.hit is None
        and miss.reason == f"cache miss for key {first.key!r}: nothing is stored under it yet"
    )
    assert not locks.is_locked(str(first.key))
    assert first.lookup({"x": 1}, {}) is None and locks.is_locked(
        str(first.key)
    )  # a run takes the lease
    first.record(Success(result=10), {"x": 1}, {})
    first.release()

    caplog.clear()
    with caplog.at_level(logging.INFO):
        decision = plan.start({"flow_run_id": "run-2"}, "t", LOGGER, store=store).explain(
            {"x": 1}, {}
        )
        changed = plan.start({"flow_run_id": "run-2"}, "t", LOGGER, store=store).explain(
            {"x": 2}, {}
        )
    assert decision.hit is not None and decision.hit.result == 10
    assert decision.reason.startswith(
        f"Cached result found for key {first.key!r} (written by flow run run-1 "
    )
    assert (
        changed.hit is None
        and "input 'x' changed since the task's last record (flow run run-1" in changed.reason
    )
    assert not caplog.records and not locks.is_locked(str(first.key))


def test_explain_says_why_a_run_would_not_be_cached(tmp_path: Path) -> None:
    store = StorageCacheStore(LocalResult(dir=str(tmp_path)))
    no_key = CachePlan.compile(
        "t", None, None, None, cp.CacheKeyFnPolicy(lambda context, inputs: None), None, None
    )
    refresh = CachePlan.compile(
        "t", timedelta(hours=1), cache_validators.all_inputs, None, None, None, True
    )
    assert no_key is not None and refresh is not None
    assert no_key.start({}, "t", LOGGER, store=store).explain({}, {}).reason == (
        "the cache policy CacheKeyFnPolicy(<lambda>) gave no key for this run, so it is not cached"
    )
    assert refresh.start({}, "t", LOGGER, store=store).explain({}, {}).reason == (
        "refresh_cache: running and replacing the cache of key 't'"
    )


def test_a_mapped_task_is_explained_per_child_and_hits_give_their_values(tmp_path: Path) -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    @task(cache_policy=cp.INPUTS)
    def add(values: list[int]) -> int:
        calls.append(-1)
        return sum(values)

    with Flow("squares") as flow:
        add(square.map(Parameter("xs")))
    store = str(tmp_path / "store")
    assert flow.run(xs=[1, 2, 3], cache_store=store).is_successful()
    calls.clear()

    same = explained(flow, store, xs=[1, 2, 3])
    assert same["square"].answer == "hit" and same["square"].key == "square"
    assert same["square"].reason.startswith("all 3 children: Cached result found for key 'square'")
    assert same["add"].answer == "hit"  # its input, [1, 4, 9], was read from the children's records
    one_more = explained(flow, store, xs=[1, 2, 4])
    assert one_more["square"].answer == "miss"
    assert (
        one_more["square"].reason
        == "1 of 3 children would run; square[2]: cache miss for key 'square': input 'x' changed"
    )
    assert one_more["add"].reason == "depends on square, which would run"
    assert calls == []  # nothing ran


def test_an_error_while_deciding_is_unknown_with_the_error(tmp_path: Path) -> None:
    @task(target="{no_such_key}.txt", result=LocalResult(dir=str(tmp_path)), checkpoint=True)
    def out() -> int:
        return 1

    @task(cache_for=timedelta(hours=1))
    def after(x: int) -> int:
        return x

    with Flow("broken") as flow:
        after(out())
    found = explained(flow, str(tmp_path / "store"))
    assert found["out"].answer == "unknown" and found["out"].reason.startswith("cannot tell: ")
    assert "no_such_key" in found["out"].reason
    assert found["after"].reason == "depends on out (unknown)"
    assert found["after"].to_dict() == {
        "task": "after", "slug": "after-1", "answer": "unknown", "reason": "depends on out (unknown)",
    }  # fmt: skip


def test_mapped_children_do_not_explain_a_miss_by_a_siblings_record(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    @task(cache_policy=cp.INPUTS)
    def sq(x: int) -> int:
        return x * x

    with Flow("mapwhy") as flow:
        sq.map(Parameter("xs"))
    store = str(tmp_path / "store")
    assert flow.run(xs=[1, 2, 3], cache_store=store).is_successful()
    misses = [r.getMessage() for r in logs.records if "cache miss" in r.getMessage()]
    assert misses == []  # a first run says nothing; each child wrote the task's last record

    changed = explained(flow, store, xs=[1, 2, 5])
    assert changed["sq"].answer == "miss"
    assert changed["sq"].reason.startswith("1 of 3 children would run; sq[2]: cache miss for key ")
    assert changed["sq"].reason.endswith(": nothing is stored under it yet")


def test_a_prefect1_miss_is_told_against_the_closest_record(
    logs: pytest.LogCaptureFixture,
) -> None:
    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def pair(x: int, y: int) -> tuple[int, int]:
        return x, y

    with Flow("why") as flow:
        pair(Parameter("x"), Parameter("y"))
    for x, y in [(1, 1), (5, 5)]:
        assert flow.run(x=x, y=y).is_successful()
    logs.clear()
    assert flow.run(x=1, y=2).is_successful()
    misses = [r.getMessage() for r in logs.records if "cache miss" in r.getMessage()]
    assert misses == [
        "Task 'pair': cache miss for key 'pair': input 'y' changed "
        "(compared with the closest of the 2 records read)"
    ]  # (5, 5) is the newest record, but (1, 1) differs in y alone
