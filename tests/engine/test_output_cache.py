"""In-memory output caching through ``context.caches`` across ``flow.run`` calls in one
process (reference 6.11, 7.4, 14.2-14.5). Behaviours checked against Prefect 1.4.1; the two
flowcore fixes (no duplicate entries, no "invalid cache" line on a first run) are marked."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from flowcore import Flow, Parameter, context, task
from flowcore.engine.cache_validators import all_inputs, all_parameters
from flowcore.engine.flow_runner import FlowRunner
from flowcore.engine.state import Cached, State

MINUTE = timedelta(minutes=1)


def run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


def test_duration_only_cache_hit_on_second_run() -> None:
    calls: list[int] = []

    @task(cache_for=MINUTE)
    def t() -> int:
        calls.append(1)
        return len(calls)

    with Flow("f") as flow:
        a = t()
    first = run(flow)
    second = run(flow)
    assert calls == [1]
    assert type(first.result[a]) is Cached
    assert type(second.result[a]) is Cached
    assert second.result[a].result == 1
    assert first.result[a].cached_result_expiration is not None


def test_downstream_receives_the_cached_value() -> None:
    @task(cache_for=MINUTE)
    def source() -> int:
        return 21

    @task
    def double(x: int) -> int:
        return 2 * x

    with Flow("f") as flow:
        d = double(source())
    run(flow)
    assert run(flow).result[d].result == 42


def test_all_inputs_reruns_when_an_input_changes() -> None:
    calls: list[int] = []

    @task(cache_for=MINUTE, cache_validator=all_inputs)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    with Flow("f") as flow:
        d = double(Parameter("x"))
    assert run(flow, x=1).result[d].result == 2
    assert run(flow, x=1).result[d].result == 2
    assert run(flow, x=2).result[d].result == 4
    assert run(flow, x=1).result[d].result == 2
    assert calls == [1, 2]


def test_all_parameters_reruns_when_a_parameter_changes() -> None:
    calls: list[int] = []

    @task(cache_for=MINUTE, cache_validator=all_parameters)
    def t() -> int:
        calls.append(1)
        return len(calls)

    with Flow("f") as flow:
        flow.add_task(Parameter("p", default=1))
        a = t()
    run(flow)
    run(flow)
    assert run(flow, p=2).result[a].result == 2
    assert len(calls) == 2


def test_name_collision_pitfall_two_tasks_share_the_default_key() -> None:
    # documented Prefect 1 pitfall, kept: the default key is the task name
    calls: list[int] = []

    @task(cache_for=MINUTE)
    def inc(x: int) -> int:
        calls.append(x)
        return x + 1

    with Flow("f") as flow:
        a = inc(1)
        b = inc(10)
    first = run(flow)
    assert (first.result[a].result, first.result[b].result) == (2, 11)
    second = run(flow)
    assert calls == [1, 10]
    assert second.result[a].result == second.result[b].result
    assert second.result[a].result in (2, 11)


def test_mapped_children_share_the_key_with_duration_only() -> None:
    @task(cache_for=MINUTE)
    def square(x: int) -> int:
        return x * x

    with Flow("f") as flow:
        m = square.map([1, 2, 3])
    assert run(flow).result[m].result == [1, 4, 9]
    assert run(flow).result[m].result == [1, 1, 1]


def test_mapped_children_with_all_inputs_cache_correctly() -> None:
    calls: list[int] = []

    @task(cache_for=MINUTE, cache_validator=all_inputs)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    with Flow("f") as flow:
        m = square.map([1, 2, 3])
    run(flow)
    assert run(flow).result[m].result == [1, 4, 9]
    assert calls == [1, 2, 3]


def test_distinct_cache_keys_avoid_the_collision() -> None:
    @task(cache_for=MINUTE)
    def inc(x: int) -> int:
        return x + 1

    with Flow("f") as flow:
        a = inc(1, task_args={"cache_key": "inc-1"})
        b = inc(10, task_args={"cache_key": "inc-10"})
    run(flow)
    second = run(flow)
    assert (second.result[a].result, second.result[b].result) == (2, 11)


def test_cache_key_shared_between_two_flows() -> None:
    calls: list[str] = []

    @task(cache_for=MINUTE, cache_key="shared-key")
    def produce() -> str:
        calls.append("first flow")
        return "from first flow"

    @task(cache_for=MINUTE, cache_key="shared-key")
    def other() -> str:
        calls.append("second flow")
        return "from second flow"

    with Flow("one") as first:
        produce()
    with Flow("two") as second:
        o = other()
    run(first)
    state = run(second)
    assert state.result[o].result == "from first flow"
    assert calls == ["first flow"]
    assert list(context.caches) == ["shared-key"]


def test_expired_cache_reruns_and_is_dropped() -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(seconds=0.1))
    def t() -> int:
        calls.append(1)
        return len(calls)

    with Flow("f") as flow:
        a = t()
    run(flow)
    time.sleep(0.15)
    second = run(flow)
    assert calls == [1, 1]
    assert second.result[a].result == 2
    assert [c.result for c in context.caches["t"]] == [2]


def test_repeated_hits_do_not_duplicate_entries() -> None:
    # flowcore fix: Prefect 1.4.1 re-appends the hit on every run (1, 2, 3, ... entries)
    @task(cache_for=MINUTE)
    def t() -> int:
        return 1

    with Flow("f") as flow:
        t()
    for _ in range(4):
        run(flow)
    assert len(context.caches["t"]) == 1


def test_no_invalid_cache_line_on_a_first_run(logs: pytest.LogCaptureFixture) -> None:
    # flowcore fix: Prefect 1.4.1 warns "Can't use cache because it is now invalid" every miss
    @task(cache_for=MINUTE)
    def t() -> int:
        return 1

    with Flow("f") as flow:
        t()
    run(flow)
    assert not [m for m in logs.messages if "invalid" in m.lower() or "cache miss" in m]
    assert not [r for r in logs.records if r.levelname == "WARNING"]


def test_stale_records_give_one_info_line(logs: pytest.LogCaptureFixture) -> None:
    @task(cache_for=MINUTE, cache_validator=all_inputs)
    def double(x: int) -> int:
        return 2 * x

    with Flow("f") as flow:
        double(Parameter("x"))
    run(flow, x=1)
    logs.clear()
    run(flow, x=2)
    lines = [r for r in logs.records if "cache miss" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelname == "INFO"
    assert lines[0].getMessage() == "Task 'double': cache miss for key 'double': input 'x' changed"


def test_cache_not_used_within_the_same_run() -> None:
    calls: list[int] = []

    @task(cache_for=MINUTE)
    def inc(x: int) -> int:
        calls.append(x)
        return x + 1

    with Flow("f") as flow:
        inc(1)
        inc(10)
    run(flow)
    assert sorted(calls) == [1, 10]


def test_flow_runner_alone_does_not_update_the_caches() -> None:
    calls: list[int] = []

    @task(cache_for=MINUTE)
    def t() -> int:
        calls.append(1)
        return 1

    with Flow("f") as flow:
        t()
    FlowRunner(flow).run()
    FlowRunner(flow).run()
    assert calls == [1, 1]
    assert "t" not in context.get("caches", {})


def test_cached_state_records_inputs_and_parameters() -> None:
    @task(cache_for=MINUTE)
    def double(x: int) -> int:
        return 2 * x

    with Flow("f") as flow:
        d = double(Parameter("x"))
    cached = run(flow, x=3).result[d]
    assert type(cached) is Cached
    assert cached.cached_parameters == {"x": 3}
    assert set(cached.hashed_inputs or {}) == {"x"}


def test_failed_flow_still_updates_the_caches() -> None:
    calls: list[int] = []

    @task(cache_for=MINUTE)
    def good() -> int:
        calls.append(1)
        return 1

    @task
    def bad() -> None:
        raise ValueError("x")

    with Flow("f") as flow:
        good()
        bad()
    assert run(flow).is_failed()
    run(flow)
    assert calls == [1]


def test_caches_live_in_the_context_of_this_test_only() -> None:
    assert "caches" not in context
