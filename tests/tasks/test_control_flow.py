"""``case``, ``switch``, ``ifelse``, ``merge`` and ``FilterTask`` (reference 12.1, 12.2)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import flowcore
from flowcore import Flow, Parameter, apply_map, case, context, task
from flowcore.engine import signals
from flowcore.engine.state import Failed, Mapped, Skipped, State, Success, TriggerFailed
from flowcore.tasks.control_flow import FilterTask, ifelse, merge, switch
from flowcore.tasks.control_flow.conditional import CompareValue, Merge
from flowcore.triggers import all_finished, not_all_skipped


@task
def identity(x: Any) -> Any:
    return x


@task
def const(value: Any) -> Any:
    return value


@task
def noop() -> str:
    return "ran"


def run(flow: Flow, **kwargs: Any) -> State:
    state = flow.run(**kwargs)
    assert state is not None
    return state


def compare_tasks(flow: Flow) -> list[CompareValue]:
    return [t for t in flow.sorted_tasks() if isinstance(t, CompareValue)]


# -- module paths ---------------------------------------------------------------------------


def test_prefect1_paths() -> None:
    from flowcore.tasks.control_flow.case import case as case_path
    from flowcore.tasks.control_flow.filter import FilterTask as filter_path

    assert flowcore.case is case_path
    assert flowcore.tasks.control_flow.case is case_path
    assert filter_path is FilterTask
    assert set(flowcore.tasks.control_flow.__all__) == {
        "FilterTask",
        "case",
        "ifelse",
        "merge",
        "switch",
    }


# -- CompareValue ---------------------------------------------------------------------------


def test_compare_value_matches_silently_and_skips_on_mismatch() -> None:
    compare = CompareValue("a")
    assert compare.name == 'CompareValue: "a"'
    assert compare.run("a") is None
    with pytest.raises(signals.SKIP, match='Provided value "b" did not match "a"'):
        compare.run("b")


# -- case -----------------------------------------------------------------------------------


def test_case_runs_its_block_only_when_the_value_matches() -> None:
    with Flow("case") as flow:
        p = Parameter("p", default="a")
        cond = identity(p)
        with case(cond, "a"):
            a = const("A")
        with case(cond, "b"):
            b = const("B")
    state = run(flow)
    assert type(state) is Success
    assert state.result[a].result == "A"
    assert type(state.result[b]) is Skipped
    compare_b = next(t for t in compare_tasks(flow) if t.value == "b")
    assert compare_b.name == "case(b)"
    assert state.result[compare_b].message == 'Provided value "a" did not match "b"'
    state = run(flow, p="b")
    assert type(state.result[a]) is Skipped
    assert state.result[b].result == "B"


def test_case_attaches_the_compare_task_to_block_roots_only() -> None:
    with Flow("case") as flow:
        cond = identity(True)
        with case(cond, True):
            first = const(1)
            second = identity(first)
            third = noop()
    (compare,) = compare_tasks(flow)
    assert flow.upstream_tasks(compare) == {cond}
    assert flow.upstream_tasks(first) == {compare}
    assert flow.upstream_tasks(second) == {first}
    assert flow.upstream_tasks(third) == {compare}
    assert [e.key for e in flow.edges_to(compare)] == ["value"]


def test_case_skips_everything_downstream_of_a_skipped_branch() -> None:
    with Flow("case") as flow:
        cond = identity(1)
        with case(cond, 2):
            inside = noop()
        after = identity(inside)
    state = run(flow)
    assert type(state.result[inside]) is Skipped
    assert type(state.result[after]) is Skipped
    assert type(state) is Success


def test_parameters_and_constants_in_a_case_stay_roots() -> None:
    with Flow("case") as flow:
        cond = identity(1)
        with case(cond, 2):
            p = Parameter("p", default=5)
            result = identity(p)
    (compare,) = compare_tasks(flow)
    assert flow.upstream_tasks(p) == set()
    assert flow.upstream_tasks(result) == {p, compare}
    state = run(flow)
    assert state.result[p].result == 5
    assert type(state.result[result]) is Skipped


def test_nested_cases() -> None:
    with Flow("nested") as flow:
        outer_cond = Parameter("outer", default=True)
        inner_cond = Parameter("inner", default=True)
        with case(outer_cond, True):
            outer_task = noop()
            with case(inner_cond, True):
                inner_task = noop()
    outer, inner = sorted(compare_tasks(flow), key=lambda t: flow.upstream_tasks(t) != {outer_cond})
    assert flow.upstream_tasks(outer) == {outer_cond}
    # the inner compare task was created inside the outer block, so it depends on it
    assert flow.upstream_tasks(inner) == {inner_cond, outer}
    assert flow.upstream_tasks(inner_task) == {inner}
    assert flow.upstream_tasks(outer_task) == {outer}

    state = run(flow)
    assert state.result[inner_task].result == "ran"
    state = run(flow, inner=False)
    assert (type(state.result[outer_task]), type(state.result[inner_task])) == (Success, Skipped)
    state = run(flow, outer=False, inner=True)
    assert type(state.result[inner]) is Skipped
    assert type(state.result[inner_task]) is Skipped


def test_case_restores_the_previous_case_on_exit() -> None:
    with Flow("f"):
        cond = identity(1)
        first, second = case(cond, 1), case(cond, 2)
        assert context.get("case") is None
        with first:
            assert context.get("case") is first
            with second:
                assert context.get("case") is second
            assert context.get("case") is first
        assert context.get("case") is None


def test_case_value_cannot_be_a_task() -> None:
    with Flow("f"):
        cond = identity(1)
        with pytest.raises(TypeError, match="`value` cannot be a task"):
            case(cond, cond)


def test_one_case_cannot_span_two_flows() -> None:
    cond_case = case(identity, True)
    with Flow("one"), cond_case:
        noop()
    with pytest.raises(ValueError, match="Multiple flows cannot be used with the same case"):
        with Flow("two"), cond_case:
            noop()


def test_an_empty_case_adds_nothing() -> None:
    with Flow("f") as flow:
        cond = identity(1)
        with case(cond, 1):
            pass
    assert flow.tasks == {cond}


def test_case_over_a_mapped_condition_with_apply_map() -> None:
    @task
    def is_even(x: int) -> bool:
        return x % 2 == 0

    @task
    def halve(x: int) -> int:
        return x // 2

    def halve_if_even(x: Any) -> Any:
        with case(is_even(x), True):
            half = halve(x)
        return merge(half, x)

    with Flow("f") as flow:
        result = apply_map(halve_if_even, [1, 2, 3, 4])
    assert run(flow).result[result].result == [1, 1, 3, 2]


# -- switch and ifelse ----------------------------------------------------------------------


def test_switch_runs_only_the_matching_branch() -> None:
    with Flow("switch") as flow:
        cond = identity("b")
        a, b, c = const("A"), const("B"), const("C")
        switch(cond, {"a": a, "b": b, "c": c})
        after_a = identity(a)
    compares = compare_tasks(flow)
    assert sorted(t.value for t in compares) == ["a", "b", "c"]
    assert all(t.tags == {"switch"} for t in compares)
    assert all(flow.upstream_tasks(t) == {cond} for t in compares)
    state = run(flow)
    assert state.result[b].result == "B"
    assert [type(state.result[t]) for t in (a, c, after_a)] == [Skipped] * 3


@pytest.mark.parametrize(
    ("value", "expected"), [(1, "yes"), ([], "no"), ("x", "yes"), (None, "no")]
)
def test_ifelse_uses_truthiness(value: Any, expected: str) -> None:
    with Flow("ifelse") as flow:
        yes, no = const("yes"), const("no")
        ifelse(identity(value), yes, no)
        result = merge(yes, no)
    state = run(flow)
    assert state.result[result].result == expected
    assert {t.name for t in flow.tasks} >= {
        "as_bool",
        'CompareValue: "True"',
        'CompareValue: "False"',
    }


def test_ifelse_with_one_branch() -> None:
    with Flow("ifelse") as flow:
        yes = const("yes")
        ifelse(identity(0), yes, None)
    assert sorted(t.value for t in compare_tasks(flow)) == [True]
    assert type(run(flow).result[yes]) is Skipped


def test_mapped_switch() -> None:
    with Flow("switch") as flow:
        values = identity([1, 2, 1])
        one = identity.map(values)
        switch(values, {1: one}, mapped=True)
    state = run(flow)
    children = state.result[one].map_states
    assert [type(s) for s in children] == [Success, Skipped, Success]


# -- merge ----------------------------------------------------------------------------------


def test_merge_task_defaults() -> None:
    merged = Merge()
    assert merged.skip_on_upstream_skip is False
    assert merged.trigger is not_all_skipped
    with pytest.raises(ValueError, match="skip_on_upstream_skip=False"):
        Merge(skip_on_upstream_skip=True)


def test_merge_binds_task_1_to_task_n() -> None:
    with Flow("merge") as flow:
        a, b = const(1), const(2)
        merged = merge(a, b)
    assert {(e.upstream_task, e.key) for e in flow.edges_to(merged)} == {
        (a, "task_1"),
        (b, "task_2"),
    }


def test_merge_returns_the_first_non_none_value() -> None:
    assert Merge().run(task_1=None, task_2=2, task_3=3) == 2
    assert Merge().run(task_1=None, task_2=None) is None


def test_merge_orders_keys_as_strings_task_10_before_task_2() -> None:
    """Prefect 1's ordering, kept: keys are sorted as strings."""
    results = {f"task_{i}": None for i in range(1, 12)}
    results.update(task_2="second", task_10="tenth")
    assert Merge().run(**results) == "tenth"

    with Flow("merge") as flow:
        branches = [const(None) for _ in range(11)]
        branches[1] = const("second")
        branches[9] = const("tenth")
        merged = merge(*branches)
    assert run(flow).result[merged].result == "tenth"


def test_merge_skips_when_every_branch_skipped() -> None:
    with Flow("merge") as flow:
        cond = identity(1)
        with case(cond, 2):
            a = const("A")
        with case(cond, 3):
            b = const("B")
        merged = merge(a, b)
        after = identity(merged)
    state = run(flow)
    assert type(state.result[merged]) is Skipped
    assert state.result[merged].message == "All upstreams were skipped"
    assert type(state.result[after]) is Skipped


def test_merge_runs_if_a_branch_failed() -> None:
    @task
    def boom() -> None:
        raise ValueError("no")

    with Flow("merge") as flow:
        failed = boom()
        merged = merge(failed, const(1))
    assert type(run(flow).result[merged]) is TriggerFailed


def test_mapped_merge() -> None:
    with Flow("merge") as flow:
        firsts = identity([None, 2, None])
        seconds = identity([10, 20, 30])
        merged = merge(firsts, seconds, mapped=True)
    assert run(flow).result[merged].result == [10, 2, 30]


# -- FilterTask -----------------------------------------------------------------------------


def test_filter_task_defaults() -> None:
    filter_task = FilterTask()
    assert filter_task.trigger is all_finished
    assert filter_task.skip_on_upstream_skip is False
    assert filter_task.run([0, None, "", ValueError("x"), signals.SKIP("s"), False]) == [
        0,
        "",
        False,
    ]


def test_filter_task_custom_function_and_log(logs: pytest.LogCaptureFixture) -> None:
    evens = FilterTask(
        filter_func=lambda x: x % 2 == 0,
        log_func=lambda kept: f"even numbers: {kept}",
        name="evens",
    )
    with Flow("filter") as flow:
        kept = evens(identity.map([1, 2, 3, 4]))
    state = run(flow)
    assert state.result[kept].result == [2, 4]
    assert ("flowcore.evens", logging.INFO, "even numbers: [2, 4]") in logs.record_tuples


@task
def check(x: int) -> int | None:
    if x == 2:
        raise signals.SKIP("skip two")
    if x == 3:
        raise ValueError("bad three")
    if x == 4:
        return None
    return x


@task
def collect(xs: list[Any]) -> list[Any]:
    return xs


def test_reduce_after_a_partly_skipped_map() -> None:
    """A default reduce step skips if any child skipped (Prefect 1, kept); a FilterTask
    runs and keeps only the real results (skipped children carry SKIP signals, failed
    ones exceptions, and None results are dropped)."""
    with Flow("reduce") as flow:
        checked = check.map([1, 2, 3, 4, 5])
        default_reduce = collect(checked)
        filtered = FilterTask()(checked)
        tolerant = collect.copy(trigger=all_finished, skip_on_upstream_skip=False)(checked)
    state = run(flow)
    assert isinstance(state.result[checked], Mapped)
    assert [type(s) for s in state.result[checked].map_states] == [
        Success,
        Skipped,
        Failed,
        Success,
        Success,
    ]
    assert type(state.result[default_reduce]) is Skipped
    assert state.result[filtered].result == [1, 5]
    raw = state.result[tolerant].result
    assert raw[0] == 1 and raw[3] is None and raw[4] == 5
    assert isinstance(raw[1], signals.SKIP) and isinstance(raw[2], ValueError)
