"""Compact child states (``engine/child_states.py``) on literal states."""

from __future__ import annotations

import pickle

import pytest

from flowcore.engine.child_states import ChildBatch, ChildStates, child_results
from flowcore.engine.result import Result
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Cached, Failed, Mapped, Retrying, Success


def successes(values: list[int]) -> list[Success]:
    return [
        Success("Task run succeeded.", result=Result(v), context={"tags": ["t"]}) for v in values
    ]


def test_plain_children_cost_a_value_each_and_come_back_equal() -> None:
    states = successes([10, 11, 12])
    batch = ChildBatch(5, states)
    assert batch.values == [10, 11, 12]
    assert batch.full == {}
    assert batch.locations is None
    again = [batch.state(i) for i in range(3)]
    assert again == states
    assert again[0] is not states[0]
    assert [type(s) for s in again] == [Success] * 3
    assert again[1].context == {"tags": ["t"]}


def test_materialised_children_do_not_share_mutable_parts() -> None:
    batch = ChildBatch(0, successes([1, 2]))
    first, second = batch.state(0), batch.state(1)
    first.context["tags"].append("x")
    first._result.value = 99
    assert second.context == {"tags": ["t"]}
    assert batch.state(0).result == 1
    assert batch.state(0).context == {"tags": ["t"]}


def test_children_unlike_the_template_are_kept_whole() -> None:
    error = ValueError("boom")
    states = [
        *successes([1]),
        Failed("it failed", result=error),
        Retrying("again", run_count=1),
        Success("another message", result=Result(4)),
        Cached("from cache", result=Result(5)),
    ]
    batch = ChildBatch(0, states)
    assert sorted(batch.full) == [1, 2, 3, 4]
    assert [batch.state(i) for i in range(5)] == states
    assert batch.state(1) is states[1]
    assert batch.result(1) is error


def test_locations_are_kept_per_child(tmp_path: object) -> None:
    result = LocalResult(dir=str(tmp_path))
    states = [Success("Task run succeeded.", result=result.from_value(v)) for v in (1, 2, 3)]
    states[1]._result.location = "where/2.bin"
    batch = ChildBatch(0, states)
    assert batch.locations == [None, "where/2.bin", None]
    assert type(batch.state(1)._result) is LocalResult
    assert batch.state(1)._result.location == "where/2.bin"
    assert batch.state(1)._result.dir == result.dir
    assert batch.state(2)._result.location is None


def test_child_states_is_a_sequence_over_batches() -> None:
    children = ChildStates([ChildBatch(3, successes([3, 4])), ChildBatch(0, successes([0, 1, 2]))])
    assert len(children) == 5
    assert [c.result for c in children] == [0, 1, 2, 3, 4]
    assert children[4].result == 4
    assert children[-1].result == 4
    assert [c.result for c in children[1:4]] == [1, 2, 3]
    assert children.results() == [0, 1, 2, 3, 4]
    assert children == successes([0, 1, 2, 3, 4])
    with pytest.raises(IndexError, match="out of range"):
        children[5]


def test_assigned_children_override_the_batches() -> None:
    children = ChildStates([ChildBatch(0, successes([0, 1, 2]))])
    children[1] = Failed("replaced")
    assert type(children[1]) is Failed
    assert [type(c) for c in children] == [Success, Failed, Success]
    assert children.results()[1] is None
    assert [(i, n) for i, n, _ in children.unreported()] == [(0, 1), (2, 1), (1, 1)]
    more = ChildStates([ChildBatch(0, successes(list(range(10))))])
    more[3] = more[4] = more[9] = Failed("replaced")
    runs = [(i, n) for i, n, _ in more.unreported()]
    assert runs == [(0, 3), (5, 4), (3, 1), (4, 1), (9, 1)]


def test_batches_must_follow_one_another() -> None:
    with pytest.raises(ValueError, match="follow one another"):
        ChildStates([ChildBatch(0, successes([0])), ChildBatch(2, successes([2]))])


def test_batches_reported_in_this_process_are_not_reported_again() -> None:
    children = ChildStates(
        [ChildBatch(0, successes([0, 1]), reported=True), ChildBatch(2, successes([2]))]
    )
    assert [(i, n) for i, n, _ in children.unreported()] == [(2, 1)]


def test_children_are_given_to_the_recorder_without_values(tmp_path: object) -> None:
    failed = Failed("it failed", result=ValueError("boom"))
    plain = ChildBatch(0, [*successes([0, 1]), failed])
    result = LocalResult(dir=str(tmp_path))
    located = [Success("Task run succeeded.", result=result.from_value(v)) for v in (3, 4)]
    located[1]._result.location = "where/4.bin"
    children = ChildStates([plain, ChildBatch(3, located)])
    runs = list(children.unreported())
    assert [(i, n) for i, n, _ in runs] == [(0, 2), (2, 1), (3, 1), (4, 1)]
    recorded = {i: state for first, number, state in runs for i in range(first, first + number)}
    assert sorted(recorded) == [0, 1, 2, 3, 4]
    assert recorded[0] is recorded[1]  # plain children without locations share one State
    assert type(recorded[0]) is Success and recorded[0].context == {"tags": ["t"]}
    assert recorded[0].message == "Task run succeeded." and recorded[0].result is None
    assert recorded[2] is failed
    assert recorded[3]._result.location is None
    assert recorded[4]._result.location == "where/4.bin"
    assert type(recorded[4]._result) is LocalResult
    assert [c.result for c in children] == [0, 1, failed.result, 3, 4]  # unchanged


def test_a_batch_pickles_compactly() -> None:
    states = successes(list(range(1000)))
    data = pickle.dumps(ChildBatch(0, states))
    loaded = pickle.loads(data)
    assert [s.result for s in loaded] == list(range(1000))
    # about the values alone (2.8 kB), against 57 kB for the states themselves
    assert len(data) < 2 * len(pickle.dumps(list(range(1000))))
    assert len(data) * 10 < len(pickle.dumps(states))


def test_a_mapped_parent_holds_child_states() -> None:
    children = ChildStates([ChildBatch(0, successes([1, 2]))])
    parent = Mapped("Ready to proceed with mapping.", map_states=children)  # type: ignore[arg-type]
    parent.result = child_results(parent.map_states)
    assert parent.n_map_states == 2
    assert parent.result == [1, 2]
    assert parent.map_states[1].result == 2
    assert child_results(successes([7])) == [7]


def test_kinds_stand_for_the_children_in_a_flow_state() -> None:
    failed = Failed("it failed")
    children = ChildStates(
        [ChildBatch(0, [*successes([0, 1]), failed]), ChildBatch(3, successes([3]))]
    )
    kinds = children.kinds()
    assert [type(k) for k in kinds] == [Success, Failed, Success]
    assert kinds[1] is failed
    only_failed = ChildStates([ChildBatch(0, [failed])])
    assert only_failed.kinds() == [failed]


def test_of_type_gives_the_children_of_a_class_in_index_order() -> None:
    cached = [Cached(f"hit {i}", result=Result(i)) for i in range(3)]
    children = ChildStates(
        [
            ChildBatch(0, [*successes([0]), cached[0], *successes([2])]),
            ChildBatch(3, [cached[1], cached[2]]),  # plain children that are Cached
            ChildBatch(5, successes([5, 6])),
        ]
    )
    assert list(children.of_type(Cached)) == cached
    assert list(children.of_type(Failed)) == []
    assert [s.result for s in children.of_type(Success)] == [0, 0, 2, 1, 2, 5, 6]
    children[4] = Failed("assigned")
    children[1] = Cached("assigned hit", result=Result(9))
    assert [s.message for s in children.of_type(Cached)] == ["assigned hit", "hit 1"]
    assert [s.message for s in children.of_type(Failed)] == ["assigned"]
