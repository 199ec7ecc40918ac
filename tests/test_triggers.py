"""Triggers on literal upstream states (messages and edge cases checked against Prefect 1.4.1)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from flowcore import Flow, context, task
from flowcore.core.edge import Edge
from flowcore.core.task import Task
from flowcore.engine import signals
from flowcore.engine.state import (
    Cached,
    Failed,
    Mapped,
    Paused,
    Pending,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)
from flowcore.triggers import (
    all_failed,
    all_finished,
    all_successful,
    always_run,
    any_failed,
    any_successful,
    manual_only,
    not_all_skipped,
    some_failed,
    some_successful,
)

Trigger = Callable[[dict[Any, State]], bool]

MESSAGES = {
    all_finished: 'Trigger was "all_finished" but some of the upstream tasks were not finished.',
    all_successful: 'Trigger was "all_successful" but some of the upstream tasks failed.',
    all_failed: 'Trigger was "all_failed" but some of the upstream tasks succeeded.',
    any_successful: 'Trigger was "any_successful" but none of the upstream tasks succeeded.',
    any_failed: 'Trigger was "any_failed" but none of the upstream tasks failed.',
}


def ups(*states: State) -> dict[Any, State]:
    """Upstream states keyed by real edges."""
    downstream = Task(name="downstream")
    return {Edge(Task(name=f"up{i}"), downstream): s for i, s in enumerate(states)}


def fails_with(trigger: Trigger, upstream: dict[Any, State], message: str) -> None:
    with pytest.raises(signals.TRIGGERFAIL, match=re.escape(message)) as info:
        trigger(upstream)
    assert type(info.value.state) is TriggerFailed
    assert info.value.state.message == message


# -- all_* / any_* ---------------------------------------------------------------------


def test_all_successful_counts_skipped_cached_and_mapped_as_success() -> None:
    assert all_successful(ups(Success(), Skipped(), Cached(), Mapped()))


def test_all_successful_fails_on_any_failure_or_unfinished() -> None:
    fails_with(all_successful, ups(Success(), Failed()), MESSAGES[all_successful])
    fails_with(all_successful, ups(Success(), TriggerFailed()), MESSAGES[all_successful])
    fails_with(all_successful, ups(Running()), MESSAGES[all_successful])


def test_all_failed() -> None:
    assert all_failed(ups(Failed(), TriggerFailed(), TimedOut()))
    fails_with(all_failed, ups(Failed(), Success()), MESSAGES[all_failed])
    fails_with(all_failed, ups(Failed(), Skipped()), MESSAGES[all_failed])


def test_all_finished_and_always_run() -> None:
    assert always_run is all_finished
    assert all_finished(ups(Success(), Failed(), Skipped()))
    fails_with(all_finished, ups(Success(), Pending()), MESSAGES[all_finished])
    fails_with(all_finished, ups(Retrying()), MESSAGES[all_finished])


def test_any_successful() -> None:
    assert any_successful(ups(Failed(), Skipped()))
    assert any_successful(ups(Failed(), Success()))
    fails_with(any_successful, ups(Failed(), TimedOut()), MESSAGES[any_successful])


def test_any_failed() -> None:
    assert any_failed(ups(Success(), TriggerFailed()))
    fails_with(any_failed, ups(Success(), Skipped()), MESSAGES[any_failed])


@pytest.mark.parametrize(
    "trigger",
    [all_successful, all_failed, all_finished, any_successful, any_failed,
     some_successful(at_least=1), some_failed(at_least=1), some_successful(at_most=0)],
)  # fmt: skip
def test_empty_upstream_passes(trigger: Trigger) -> None:
    assert trigger({}) is True


# -- Mapped expansion -----------------------------------------------------------------


def test_mapped_upstreams_are_expanded_into_their_children() -> None:
    mapped = Mapped(map_states=[Success(), Failed()])
    fails_with(all_successful, ups(mapped), MESSAGES[all_successful])
    assert any_failed(ups(mapped))
    assert any_successful(ups(mapped))
    assert some_failed(at_least=0.5, at_most=0.5)(ups(mapped))


def test_a_mapped_upstream_without_children_adds_no_state() -> None:
    empty = Mapped(map_states=[])
    assert all_failed(ups(empty))  # vacuously true, as in Prefect 1
    assert all_successful(ups(empty))
    # the edge exists, so the any_* triggers see "no upstream succeeded / failed"
    fails_with(any_successful, ups(empty), MESSAGES[any_successful])
    fails_with(any_failed, ups(empty), MESSAGES[any_failed])
    with pytest.raises(signals.SKIP):
        not_all_skipped(ups(empty))


def test_the_same_state_object_counts_once() -> None:
    shared = Success()
    edges = ups(shared, shared)
    assert len(edges) == 2
    fails_with(
        some_successful(at_least=2),
        edges,
        'Trigger was "some_successful" but thresholds were not met.',
    )
    assert some_successful(at_least=2)(ups(Success(), Success()))


# -- some_* ---------------------------------------------------------------------------


SOME_SUCCESSFUL = 'Trigger was "some_successful" but thresholds were not met.'
SOME_FAILED = 'Trigger was "some_failed" but thresholds were not met.'


def test_some_successful_counts() -> None:
    states = ups(Success(), Success(), Failed(), Failed())
    assert some_successful()(states)
    assert some_successful(at_least=2)(states)
    assert some_successful(at_most=2)(states)
    assert some_successful(at_least=2, at_most=2)(states)
    fails_with(some_successful(at_least=3), states, SOME_SUCCESSFUL)
    fails_with(some_successful(at_most=1), states, SOME_SUCCESSFUL)


def test_some_successful_fractions() -> None:
    states = ups(Success(), Success(), Success(), Failed())  # 3 of 4 = 0.75
    assert some_successful(at_least=0.75)(states)
    assert some_successful(at_least=0.5, at_most=0.8)(states)
    fails_with(some_successful(at_least=0.8), states, SOME_SUCCESSFUL)
    fails_with(some_successful(at_most=0.5), states, SOME_SUCCESSFUL)


def test_a_threshold_of_one_is_a_count_not_a_fraction() -> None:
    states = ups(Success(), Failed(), Failed())
    assert some_successful(at_least=1)(states)
    assert some_failed(at_most=2)(states)
    fails_with(some_failed(at_most=1), states, SOME_FAILED)


def test_some_failed() -> None:
    states = ups(Failed(), TriggerFailed(), Success(), Skipped())
    assert some_failed()(states)
    assert some_failed(at_least=2, at_most=2)(states)
    assert some_failed(at_least=0.5)(states)
    fails_with(some_failed(at_least=3), states, SOME_FAILED)
    fails_with(some_failed(at_most=0.25), states, SOME_FAILED)


def test_some_triggers_default_bounds_accept_anything() -> None:
    assert some_failed()(ups(Success()))
    assert some_successful()(ups(Failed()))


# -- not_all_skipped ------------------------------------------------------------------


def test_not_all_skipped_passes_when_some_ran() -> None:
    assert not_all_skipped(ups(Skipped(), Success()))


def test_not_all_skipped_skips_when_everything_skipped() -> None:
    with pytest.raises(signals.SKIP, match="All upstreams were skipped") as info:
        not_all_skipped(ups(Skipped(), Skipped()))
    assert type(info.value.state) is Skipped
    assert info.value.state.result is None


def test_not_all_skipped_with_no_upstream_skips() -> None:
    with pytest.raises(signals.SKIP, match="All upstreams were skipped"):
        not_all_skipped({})


def test_not_all_skipped_fails_on_a_failure() -> None:
    fails_with(
        not_all_skipped,
        ups(Skipped(), Failed()),
        'Trigger was "not_all_skipped" but some of the upstream tasks failed.',
    )


# -- manual_only ----------------------------------------------------------------------


def test_manual_only_pauses_without_resume() -> None:
    for upstream in ({}, ups(Success())):
        with pytest.raises(signals.PAUSE, match='Trigger function is "manual_only"') as info:
            manual_only(upstream)
        assert type(info.value.state) is Paused
        assert info.value.state.start_time is None


def test_manual_only_runs_when_resumed() -> None:
    with context(resume=True):
        assert manual_only(ups(Failed())) is True
    with context(resume=False), pytest.raises(signals.PAUSE):
        manual_only({})


# -- inside a flow --------------------------------------------------------------------


def test_triggers_in_a_flow() -> None:
    @task
    def boom() -> None:
        raise ValueError("x")

    @task(trigger=all_failed)
    def on_failure() -> str:
        return "cleanup"

    @task
    def downstream() -> str:
        return "never"

    with Flow("triggers") as flow:
        failed = boom()
        cleanup = on_failure(upstream_tasks=[failed])
        skipped_by_trigger = downstream(upstream_tasks=[failed])
    states = flow.run().result
    assert states[cleanup].result == "cleanup"
    assert type(states[skipped_by_trigger]) is TriggerFailed
    assert states[skipped_by_trigger].message == MESSAGES[all_successful]


def test_a_false_trigger_and_a_mapped_empty_upstream_in_a_flow() -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    @task(trigger=all_failed)
    def reduce_all_failed(xs: list[int]) -> list[int]:
        return xs

    @task(trigger=lambda upstream: False)
    def never(xs: list[int]) -> None:
        return None

    with Flow("empty map") as flow:
        mapped = inc.map([])
        reduced = reduce_all_failed(mapped)
        refused = never(mapped)
    states = flow.run().result
    assert states[reduced].result == []  # verified on Prefect 1.4.1
    assert type(states[refused]) is TriggerFailed
    assert states[refused].message == "Trigger failed"
