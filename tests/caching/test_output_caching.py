"""Output caching in flows with Prefect 1's semantics, the seed's examples, diagnostics."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import flowcore.caching.plan as plan_module
from flowcore import Flow, Parameter, context, task
from flowcore.core.edge import Edge
from flowcore.core.task import Task
from flowcore.engine import cache_validators
from flowcore.engine.result import Result
from flowcore.engine.state import Cached, Retrying, Success
from flowcore.engine.task_runner import TaskRunner


def counted(name: str, calls: list[Any], **task_kwargs: Any) -> Any:
    def body(x: int = 0) -> int:
        calls.append((name, x))
        return x + 100

    body.__name__ = name
    return task(body, **task_kwargs)


def test_cache_for_one_hour_hits_on_the_next_run() -> None:
    calls: list[Any] = []
    fetch = counted("fetch", calls, cache_for=timedelta(hours=1))
    with Flow("seed") as flow:
        out = fetch(1)
    first, second = flow.run(), flow.run()
    assert calls == [("fetch", 1)]
    assert type(first.result[out]) is Cached and type(second.result[out]) is Cached
    assert second.result[out].result == 101
    assert second.result[out] is context.caches["fetch"][0]


def test_all_parameters_reruns_when_a_parameter_changes() -> None:
    calls: list[Any] = []
    fetch = counted(
        "fetch",
        calls,
        cache_for=timedelta(hours=1),
        cache_validator=cache_validators.all_parameters,
    )
    with Flow("params") as flow:
        p = Parameter("p", default=1)
        fetch(upstream_tasks=[p])
    flow.run(p=1)
    flow.run(p=1)
    flow.run(p=2)
    flow.run(p=1)
    assert [c[0] for c in calls] == ["fetch", "fetch"]


def test_a_shared_cache_key_between_two_flows() -> None:
    calls: list[Any] = []
    produce = counted("produce", calls, cache_for=timedelta(hours=1), cache_key="shared")
    consume = counted("consume", calls, cache_for=timedelta(hours=1), cache_key="shared")
    with Flow("first") as first:
        produce(5)
    with Flow("second") as second:
        out = consume(5)
    first.run()
    state = second.run()
    assert calls == [("produce", 5)]
    assert state.result[out].result == 105


def test_mapped_children_are_cached_each_with_all_inputs() -> None:
    calls: list[Any] = []
    square = counted(
        "square", calls, cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs
    )
    with Flow("mapped") as flow:
        xs = Parameter("xs")
        out = square.map(xs)
    flow.run(xs=[1, 2, 3])
    state = flow.run(xs=[3, 4, 1])
    assert [c[1] for c in calls] == [1, 2, 3, 4]
    assert state.result[out].result == [103, 104, 101]
    assert all(isinstance(s, Cached) for s in state.result[out].map_states)


def test_prefect1_pitfall_is_kept_and_warned_about(logs: pytest.LogCaptureFixture) -> None:
    calls: list[Any] = []
    square = counted("square", calls, cache_for=timedelta(hours=1))
    with Flow("pitfall") as flow:
        out = square.map([1, 2, 3])
    flow.run()
    state = flow.run()
    assert state.result[out].result == [101, 101, 101]
    warnings = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert any("share the cache key 'square'" in w and "all_inputs" in w for w in warnings)


def test_same_named_tasks_sharing_a_key_are_warned_about(logs: pytest.LogCaptureFixture) -> None:
    inc = counted("inc", [], cache_for=timedelta(hours=1))
    with Flow("twins") as flow:
        inc(1)
        inc(10)
    flow.run()
    assert any(
        "The 2 tasks ['inc'] share the cache key 'inc'" in r.getMessage() for r in logs.records
    )


def test_expiry_with_controlled_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    fetch = counted("fetch", calls, cache_for=timedelta(hours=1))
    with Flow("expiry") as flow:
        fetch(1)
    real_now = plan_module._now
    monkeypatch.setattr(plan_module, "_now", lambda: real_now() - timedelta(hours=2))
    flow.run()
    monkeypatch.setattr(plan_module, "_now", real_now)
    flow.run()
    flow.run()
    assert len(calls) == 2


def test_no_miss_line_on_a_first_run_and_one_reason_after(logs: pytest.LogCaptureFixture) -> None:
    fetch = counted(
        "fetch", [], cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs
    )
    with Flow("diagnostics") as flow:
        x = Parameter("x")
        fetch(x)
    flow.run(x=1)
    assert not [
        r for r in logs.records if "cache" in r.getMessage().lower() and "invalid" in r.getMessage()
    ]
    assert not [r for r in logs.records if "cache miss" in r.getMessage()]
    flow.run(x=2)
    misses = [r for r in logs.records if "cache miss" in r.getMessage()]
    assert len(misses) == 1 and misses[0].levelname == "INFO"
    assert "cache miss for key 'fetch': input 'x' changed" in misses[0].getMessage()


def test_parameter_reason_in_the_miss_line(logs: pytest.LogCaptureFixture) -> None:
    fetch = counted(
        "fetch", [], cache_for=timedelta(hours=1), cache_validator=cache_validators.all_parameters
    )
    with Flow("diagnostics") as flow:
        fetch(upstream_tasks=[Parameter("region")])
    flow.run(region="eu")
    flow.run(region="us")
    assert any("parameter 'region' changed" in r.getMessage() for r in logs.records)


def test_cache_entries_do_not_pile_up() -> None:
    fetch = counted("fetch", [], cache_for=timedelta(hours=1))
    with Flow("pile") as flow:
        fetch(1)
    for _ in range(5):
        flow.run()
    assert len(context.caches["fetch"]) == 1


def test_task_states_cached_is_revalidated() -> None:
    calls: list[Any] = []
    fetch = counted("fetch", calls, cache_for=timedelta(hours=1))
    with Flow("given") as flow:
        out = fetch(1)
    fresh = Cached(
        result=7, cached_result_expiration=datetime.now(timezone.utc) + timedelta(hours=1)
    )
    stale = Cached(
        result=7, cached_result_expiration=datetime.now(timezone.utc) - timedelta(hours=1)
    )
    assert flow.run(task_states={out: fresh}).result[out].result == 7
    assert calls == []
    # (verified on Prefect 1.4.1: a stale given state is dropped, and the run's caches,
    # which now hold the first run's Cached state, are looked in)
    assert flow.run(task_states={out: stale}).result[out].result == 7
    assert calls == []
    with context(caches={}):
        assert flow.run(task_states={out: stale}).result[out].result == 101
    assert calls == [("fetch", 1)]


def test_retry_uses_cached_inputs_when_upstream_states_are_gone() -> None:
    calls: list[Any] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def consume(x: int) -> int:
        calls.append(x)
        return x * 2

    edge = Edge(Task(name="upstream"), consume, key="x")
    retrying = Retrying(
        cached_inputs={"x": Result(21)}, run_count=1, start_time=datetime.now(timezone.utc)
    )
    state = TaskRunner(consume).run(state=retrying, upstream_states={})
    assert isinstance(state, Success) and state.result == 42 and calls == [21]
    from flowcore.engine.state import Pending

    lost = Pending("Task state not available.")
    state = TaskRunner(consume).run(state=retrying, upstream_states={edge: lost})
    assert isinstance(state, Success) and state.result == 42


def test_retrying_state_carries_checkpointed_cached_inputs_to_a_new_run(tmp_path: Path) -> None:
    from flowcore.engine.results import LocalResult

    attempts: list[int] = []

    @task(max_retries=1, retry_delay=timedelta(hours=1))
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return x + 1

    @task
    def source() -> int:
        return 5

    with Flow("resume", result=LocalResult(dir=tmp_path)) as flow:
        out = flaky(source())
    from flowcore.engine.flow_runner import FlowRunner

    one_pass = FlowRunner(flow).run(return_tasks=flow.tasks, context={"checkpointing": True})
    retrying = one_pass.result[out]
    assert isinstance(retrying, Retrying)
    assert retrying.cached_inputs is not None and retrying.cached_inputs["x"].location is not None
    located = retrying.cached_inputs["x"].copy()
    located.value = None
    assert Path(located.location or "").is_file()
    fresh = Retrying(
        cached_inputs={"x": located}, run_count=1, start_time=datetime.now(timezone.utc)
    )
    state = TaskRunner(flaky).run(state=fresh, upstream_states={})
    assert isinstance(state, Success) and state.result == 6
