"""Mapping at run time (reference 1.6, 6.14). Every expectation here was checked against
Prefect 1.4.1 on the same flow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowcore import Flow, Task, context, flatten, mapped, task, unmapped
from flowcore.engine import signals
from flowcore.engine.flow_runner import FlowRunner
from flowcore.engine.state import (
    Failed,
    Mapped,
    Pending,
    Retrying,
    Skipped,
    State,
    Success,
    TriggerFailed,
)
from flowcore.triggers import all_finished


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def ident(x: Any) -> Any:
    return x


@task
def collect(xs: list[Any]) -> list[Any]:
    return xs


def run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


def child_types(state: State) -> list[str]:
    assert isinstance(state, Mapped)
    return [type(s).__name__ for s in state.map_states]


def test_map_zips_to_the_shortest_input() -> None:
    with Flow("f") as flow:
        z = add.map([1, 2, 3], [10, 20])
    state = run(flow)
    assert type(state.result[z]) is Mapped
    assert state.result[z].message == "Ready to proceed with mapping."
    assert state.result[z].result == [11, 22]
    assert child_types(state.result[z]) == ["Success", "Success"]


def test_unmapped_argument_goes_to_every_child() -> None:
    with Flow("f") as flow:
        u = add.map([1, 2, 3], unmapped(100))
    assert run(flow).result[u].result == [101, 102, 103]


def test_mapped_annotation_without_map() -> None:
    with Flow("f") as flow:
        u = add(x=mapped([1, 2]), y=5)
    assert run(flow).result[u].result == [6, 7]


def test_map_over_a_mapped_upstream_pairs_by_index() -> None:
    with Flow("f") as flow:
        first = add.map([1, 2], [10, 20])
        second = add.map(first, first)
    assert run(flow).result[second].result == [22, 44]


def test_reduce_receives_the_list() -> None:
    with Flow("f") as flow:
        r = collect(add.map([1, 2, 3], unmapped(1)))
    state = run(flow)
    assert type(state.result[r]) is Success
    assert state.result[r].result == [2, 3, 4]


def test_empty_map_has_no_children_and_reduce_gets_empty_list() -> None:
    with Flow("f") as flow:
        e = ident.map([])
        r = collect(e)
    state = run(flow)
    assert type(state.result[e]) is Mapped
    assert state.result[e].map_states == []
    assert state.result[e].result == []
    assert state.result[r].result == []
    assert state.message == "All reference tasks succeeded."


def test_map_over_a_string() -> None:
    with Flow("f") as flow:
        m = ident.map("abc")
    assert run(flow).result[m].result == ["a", "b", "c"]


def test_map_index_and_full_name_in_context() -> None:
    @task
    def names(x: str) -> tuple[Any, ...]:
        return (context.map_index, context.task_full_name, context.task_name, x)

    with Flow("f") as flow:
        n = names.map(["a", "b"])
    assert run(flow).result[n].result == [
        (0, "names[0]", "names", "a"),
        (1, "names[1]", "names", "b"),
    ]


def test_mapped_children_log_with_their_index(logs: pytest.LogCaptureFixture) -> None:
    with Flow("f") as flow:
        ident.map([1, 2])
    run(flow)
    assert "Task 'ident': Finished task run for task with final state: 'Mapped'" in logs.messages
    assert "Task 'ident[1]': Starting task run..." in logs.messages
    assert (
        "Task 'ident[1]': Finished task run for task with final state: 'Success'" in logs.messages
    )


def test_flatten_a_plain_upstream() -> None:
    with Flow("f") as flow:
        r = collect(flatten([[1, 2], [3]]))
    assert run(flow).result[r].result == [1, 2, 3]


def test_map_over_flattened_mapped_upstream() -> None:
    @task
    def listify(x: int) -> list[int]:
        return [x, x * 10]

    with Flow("f") as flow:
        m = ident.map(flatten(listify.map([1, 2])))
    state = run(flow)
    assert state.result[m].result == [1, 10, 2, 20]
    assert len(state.result[m].map_states) == 4


def test_flatten_non_iterable_child_passes_unchanged_with_a_warning(
    logs: pytest.LogCaptureFixture,
) -> None:
    @task
    def mixed() -> list[Any]:
        return [[1, 2], 3]

    with Flow("f") as flow:
        m = ident.map(flatten(ident.map(mixed())))
    state = run(flow)
    assert state.result[m].result == [1, 2, 3]
    warnings = [r for r in logs.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings] == [
        "`flatten` was used on upstream task that did not return an iterable. "
        "The value will be passed downstream unmodified."
    ]


def test_flatten_passes_failed_and_skipped_children_without_a_warning(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Prefect 1.4.1 (verified): only a successful child whose value is not iterable is
    warned about; a failed or skipped child has no value to flatten."""

    @task
    def pairs(x: int) -> list[int]:
        if x == 2:
            raise signals.SKIP("no pair for 2")
        if x == 3:
            raise ValueError("bad 3")
        return [x, x]

    with Flow("f") as flow:
        m = ident.map(flatten(pairs.map([1, 2, 3])))
    state = run(flow)
    kinds = [type(s).__name__ for s in state.result[m].map_states]
    assert kinds == ["Success", "Success", "Skipped", "TriggerFailed"]
    assert not [r for r in logs.records if "flatten" in r.getMessage()]


def test_failed_child_does_not_stop_siblings_and_reduce_trigger_fails() -> None:
    @task
    def maybe_fail(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    with Flow("f") as flow:
        m = maybe_fail.map([1, 2, 3])
        r = collect(m)
    state = run(flow)
    assert child_types(state.result[m]) == ["Success", "Failed", "Success"]
    assert isinstance(state.result[m].result[1], ValueError)
    assert type(state.result[r]) is TriggerFailed
    assert state.message == "Some reference tasks failed."


def test_reduce_with_all_finished_sees_the_exceptions() -> None:
    @task
    def maybe_fail(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    @task(trigger=all_finished)
    def keep(xs: list[Any]) -> list[Any]:
        return [x for x in xs if not isinstance(x, Exception)]

    with Flow("f") as flow:
        r = keep(maybe_fail.map([1, 2, 3]))
    assert run(flow).result[r].result == [1, 3]


def test_skipped_child_makes_the_reduce_skip() -> None:
    @task
    def maybe_skip(x: int) -> int:
        if x == 2:
            raise signals.SKIP("two")
        return x

    with Flow("f") as flow:
        m = maybe_skip.map([1, 2, 3])
        r = collect(m)
    state = run(flow)
    assert child_types(state.result[m]) == ["Success", "Skipped", "Success"]
    assert isinstance(state.result[m].result[1], signals.SKIP)
    assert type(state.result[r]) is Skipped
    assert state.is_successful()


def test_reduce_with_skip_on_upstream_skip_false_gets_the_signal() -> None:
    @task
    def maybe_skip(x: int) -> int:
        if x == 2:
            raise signals.SKIP("two")
        return x

    @task(skip_on_upstream_skip=False)
    def keep(xs: list[Any]) -> int:
        return len(xs)

    with Flow("f") as flow:
        r = keep(maybe_skip.map([1, 2, 3]))
    assert run(flow).result[r].result == 3


def test_mapped_parent_over_a_failed_upstream() -> None:
    @task
    def broken() -> list[int]:
        raise ValueError("x")

    with Flow("f") as flow:
        m = ident.map(broken())
        r = collect(m)
    state = run(flow)
    assert type(state.result[m]) is Failed
    assert state.result[m].message == "No upstream states can be mapped over."
    assert type(state.result[r]) is TriggerFailed


def test_mapped_parent_over_a_skipped_upstream() -> None:
    @task
    def skipper() -> list[int]:
        raise signals.SKIP("no data")

    with Flow("f") as flow:
        m = ident.map(skipper())
    state = run(flow)
    assert type(state.result[m]) is Skipped


def test_mapped_children_with_failed_unmapped_dependency_trigger_fail() -> None:
    @task
    def broken() -> None:
        raise ValueError("x")

    with Flow("f") as flow:
        m = ident.map([1, 2], upstream_tasks=[unmapped(broken())])
    state = run(flow)
    assert type(state.result[m]) is Mapped
    assert child_types(state.result[m]) == ["TriggerFailed", "TriggerFailed"]


def test_unmappable_result() -> None:
    @task
    def five() -> int:
        return 5

    with Flow("f") as flow:
        m = ident.map(five())
    state = run(flow)
    assert type(state.result[m]) is Failed
    assert state.result[m].message == "At least one upstream state has an unmappable result."


def test_mapped_children_retry_individually_across_passes() -> None:
    attempts: list[tuple[int, int, int]] = []

    @task(max_retries=2, retry_delay=timedelta(0))
    def child(x: int) -> int:
        attempts.append((x, context.task_run_count, context.map_index))
        if x == 2 and context.task_run_count < 3:
            raise ValueError("again")
        return x * 10

    with Flow("f") as flow:
        m = child.map([1, 2, 3])
        r = collect(m)
    state = run(flow)
    assert sorted(attempts) == [(1, 1, 0), (2, 1, 1), (2, 2, 1), (2, 3, 1), (3, 1, 2)]
    assert state.result[m].result == [10, 20, 30]
    assert state.result[r].result == [10, 20, 30]


def test_single_pass_with_a_retrying_child_leaves_the_flow_running() -> None:
    @task(max_retries=1, retry_delay=timedelta(minutes=5))
    def child(x: int) -> int:
        if x == 2:
            raise ValueError("later")
        return x

    with Flow("f") as flow:
        m = child.map([1, 2])
        r = collect(m)
    state = FlowRunner(flow).run(return_tasks=[m, r])
    assert state.is_running()
    assert child_types(state.result[m]) == ["Success", "Retrying"]
    assert type(state.result[r]) is Pending


def test_mapped_task_waits_for_a_retrying_upstream() -> None:
    calls: list[Any] = []

    @task(max_retries=1, retry_delay=timedelta(0))
    def source() -> list[int]:
        calls.append("source")
        if len(calls) == 1:
            raise ValueError("first")
        return [1, 2]

    @task
    def child(x: int) -> int:
        calls.append(x)
        return x

    with Flow("f") as flow:
        m = child.map(source())
    state = run(flow)
    assert calls == ["source", "source", 1, 2]
    assert state.result[m].result == [1, 2]


def test_mapped_state_in_task_states_reruns_only_unfinished_children() -> None:
    calls: list[int] = []

    @task
    def child(x: int) -> int:
        calls.append(x)
        return x * 2

    with Flow("f") as flow:
        m = child.map([1, 2, 3])
    previous = Mapped(map_states=[Success(result=2), Retrying(run_count=1), Success(result=6)])
    state = run(flow, task_states={m: previous})
    assert calls == [2]
    assert state.result[m].result == [2, 4, 6]


def test_mapped_task_with_constant_unmapped_keyword() -> None:
    @task
    def scale(x: int, factor: int) -> int:
        return x * factor

    with Flow("f") as flow:
        m = scale.map([1, 2], factor=unmapped(3))
    assert run(flow).result[m].result == [3, 6]


def test_reference_state_of_a_mapped_terminal_task_uses_children() -> None:
    @task
    def maybe_fail(x: int) -> int:
        if x == 1:
            raise ValueError("one")
        return x

    with Flow("f") as flow:
        maybe_fail.map([0, 1])
    state = run(flow)
    assert type(state) is Failed
    assert state.message == "Some reference tasks failed."


def test_children_run_as_separate_task_runs() -> None:
    ids: list[Any] = []

    @task
    def child(x: int) -> int:
        ids.append((context.task_slug, context.task_run_count))
        return x

    with Flow("f") as flow:
        m = child.map([1, 2])
    run(flow)
    slug = flow.slugs[m]
    assert ids == [(slug, 1), (slug, 1)]
    assert isinstance(m, Task)
