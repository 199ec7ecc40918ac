"""The RunRecorder as the engine calls it: state changes, whole quick runs, collected
states, and what a flush covers."""

from __future__ import annotations

import gc
import sys
import time

from flowcore.engine.state import Failed, Mapped, Running, Success
from flowcore.runs import RunStore
from flowcore.runs.recorder import RunRecorder

STRUCTURE = {"tasks": [{"slug": "t-1", "name": "t", "mapped": False}], "edges": []}


def _recorder(store: RunStore, run_id: str) -> RunRecorder:
    recorder = RunRecorder(store, run_id)
    recorder.started("flow", {}, STRUCTURE, None, None)
    return recorder


def test_reports_are_written_by_the_next_flush(store: RunStore) -> None:
    recorder = _recorder(store, "r1")
    recorder.task_state(("t-1", -1), Running("Starting task run."), 1)
    recorder.task_state(("t-1", -1), Success("done"), 1)
    store.flush()  # no drain has run yet: the flush itself takes what was reported
    (task,) = store.task_runs("r1")
    assert (task.state, task.message, task.run_count) == ("Success", "done", 1)
    assert task.started is not None and task.ended is not None and task.started <= task.ended
    assert [t.state for t in store.transitions("r1", "t-1")] == ["Running", "Success"]
    recorder.finished(Success("all done"))
    store.flush()
    assert store.get_run("r1").state == "Success"  # type: ignore[union-attr]


def test_a_whole_quick_run_is_one_report(store: RunStore) -> None:
    recorder = _recorder(store, "r2")
    started = time.time() - 0.5
    recorder.task_run(("t-1", 3), Failed("boom"), 2, started)
    recorder.finished(Failed("failed"))
    store.flush()
    (task,) = store.task_runs("r2")
    assert (task.map_index, task.state, task.run_count) == (3, "Failed", 2)
    assert task.started is not None and abs(task.started.timestamp() - started) < 1e-3
    assert [t.state for t in store.transitions("r2", "t-1")] == ["Running", "Failed"]


def test_collected_states_already_reported_are_not_written_again(store: RunStore) -> None:
    recorder = _recorder(store, "r3")
    children = [Success(f"child {i}") for i in range(3)]
    for index, child in enumerate(children[:2]):  # two ran in this process
        recorder.task_state(("t-1", index), child, 1)
    parent = Mapped("mapped", map_states=children)
    recorder.task_state(("t-1", -1), parent, 1)
    recorder.collected("t-1", -1, parent)
    recorder.collected_children("t-1", children)  # the third came from another process
    recorder.finished(Success("ok"))
    store.flush()
    assert len(store.transitions("r3", "t-1")) == 4  # the parent and three children, once
    by_index = {t.map_index: t for t in store.task_runs("r3")}
    assert by_index[-1].n_map_states == 3
    assert [by_index[i].message for i in range(3)] == ["child 0", "child 1", "child 2"]


def test_a_pass_s_state_that_is_not_the_one_reported_is_written(store: RunStore) -> None:
    """Of the states a pass ends with, those reported as they are (by the same object) are
    not written again; another state of the same task is, and a task never reported too."""
    recorder = RunRecorder(store, "r3a")
    recorder.started(
        "flow",
        {},
        {"tasks": [{"slug": s, "name": s, "mapped": False} for s in ("a-1", "b-1")]},
        None,
        None,
    )
    task_a, task_b = object(), object()
    ran = Success("ran")
    recorder.task_state(("a-1", -1), ran, 1)
    slugs = {task_a: "a-1", task_b: "b-1"}
    assert recorder.collected_pass(slugs, {task_a: ran}) == []
    assert recorder.collected_pass(slugs, {task_a: Failed("changed after")}) == []
    assert recorder.collected_pass(slugs, {task_a: ran, task_b: Success("not reported")}) == []
    recorder.finished(Failed("failed"))
    store.flush()
    transitions = [t for t in store.transitions("r3a") if t.task_slug is not None]
    assert [(t.task_slug, t.state) for t in transitions] == [
        ("a-1", "Success"),
        ("a-1", "Failed"),
        ("a-1", "Success"),
        ("b-1", "Success"),
    ]


def test_a_collected_child_that_is_not_the_state_reported_is_written(store: RunStore) -> None:
    """As many children collected as reported, all but one the very states reported: the
    one that differs (here a later state from elsewhere) is written, and only it."""
    recorder = _recorder(store, "r3b")
    reported = [Success(f"child {i}") for i in range(3)]
    for index, child in enumerate(reported):
        recorder.task_state(("t-1", index), child, 1)
    collected = [reported[0], Failed("redone elsewhere"), reported[2]]
    recorder.collected_children("t-1", collected)
    recorder.finished(Failed("failed"))
    store.flush()
    assert [(t.map_index, t.state) for t in store.transitions("r3b", "t-1")] == [
        (0, "Success"),
        (1, "Success"),
        (2, "Success"),
        (1, "Failed"),
    ]


def test_a_long_running_task_run_is_announced_before_it_ends(store: RunStore) -> None:
    recorder = _recorder(store, "r4")
    recorder.task_state(("t-1", -1), Running("Starting task run."), 1)
    time.sleep(0.6)  # past the quarter second, and a batch interval
    store.flush()
    assert [t.state for t in store.task_runs("r4")] == ["Running"]
    recorder.task_state(("t-1", -1), Success("done"), 1)
    recorder.finished(Success("ok"))
    store.flush()
    (task,) = store.task_runs("r4")
    assert task.state == "Success" and task.started is not None
    assert [t.state for t in store.transitions("r4", "t-1")] == ["Running", "Success"]


def test_a_run_reported_in_one_go_is_announced_while_it_runs(store: RunStore) -> None:
    """``task_began`` then ``task_run`` (the fused path): a drain meanwhile announces the
    Running, and the end adds only the final state; a run that ends before it was
    announced is one row with its start, as before."""
    recorder = _recorder(store, "r4b")
    started = time.time()
    recorder.task_began(("t-1", -1), 1, started)
    time.sleep(0.6)  # past the quarter second, and a batch interval
    store.flush()
    assert [t.state for t in store.task_runs("r4b")] == ["Running"]
    recorder.task_run(("t-1", -1), Success("done"), 1, started)
    quick = time.time()
    recorder.task_began(("t-1", 0), 1, quick)
    recorder.task_run(("t-1", 0), Success("quick"), 1, quick)
    recorder.finished(Success("ok"))
    store.flush()
    assert [(t.map_index, t.state) for t in store.transitions("r4b", "t-1")] == [
        (-1, "Running"),
        (-1, "Success"),
        (0, "Running"),
        (0, "Success"),
    ]
    runs = {t.map_index: t for t in store.task_runs("r4b")}
    assert runs[-1].started is not None and abs(runs[-1].started.timestamp() - started) < 1e-3
    assert runs[0].started is not None and abs(runs[0].started.timestamp() - quick) < 1e-3


def test_recording_a_compact_map_leaves_running_task_runs_to_be_announced(
    store: RunStore,
) -> None:
    """Children that ran elsewhere are recorded as runs of rows
    (``collected_unkept``); a task run of this process that is still running is announced
    by the next drain as usual, not lost with the rows made for those children."""
    from flowcore.runs import recorder as recorder_module

    recorder = _recorder(store, "r5")
    recorder.task_state(("t-1", -1), Running("Starting task run."), 1)
    recorder.drain()  # the Running is known to the recorder, not yet announced
    time.sleep(recorder_module._ANNOUNCE_RUNNING_AFTER + 0.05)
    shared = Success("Task run succeeded.")
    recorder.collected_unkept("t-2", [(0, 3, shared), (3, 1, Failed("no")), (4, 2, shared)])
    store.flush()
    runs = {(t.task_slug, t.map_index): t.state for t in store.task_runs("r5")}
    assert runs[("t-1", -1)] == "Running"  # announced, though the children came first
    assert [runs[("t-2", i)] for i in range(6)] == ["Success"] * 3 + ["Failed"] + ["Success"] * 2
    recorder.task_state(("t-1", -1), Success("done"), 1)
    store.flush()
    assert [t.state for t in store.transitions("r5", "t-1")] == ["Running", "Success"]


def _tuples_alive() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is tuple)


def test_reporting_children_keeps_no_object_per_child_for_the_collector(
    store: RunStore,
) -> None:
    """A report remembers the state (alive anyway) under plain keys: no ``(slug, index)``
    tuple per child is kept, in what is remembered or in what waits for the drain (kept
    tuples made W3's older collections twice as long)."""
    recorder = _recorder(store, "r-gc")
    states = [Success("ok") for _ in range(2000)]
    started = time.time()
    gc.collect()
    before = _tuples_alive()
    for index, state in enumerate(states):
        recorder.task_run(("t-1", index), state, 1, started)  # (the key dies with the call)
    recorder.collected_children("t-1", states)  # all reported already
    # (one tuple kept per child would be 2,000 more; the margin is for what other threads
    # of the test process make meanwhile: 51 once, in a CI run)
    assert _tuples_alive() - before < 500
    recorder.finished(Success("ok"))
    store.flush()
    assert len(store.task_runs("r-gc")) == 2000


def test_a_drain_runs_with_the_collector_threshold_raised(store: RunStore) -> None:
    """The drain at a run's end comes after the run's own raise of the threshold: it makes
    a row per task run, and raises it again itself (``engine.gc_threshold``)."""
    recorder = _recorder(store, "r-drain")
    store.remove_source(recorder.drain)  # (only the drain below takes the reports)
    store.flush()  # (the feeder thread idle: collections would count its allocations too)
    started = time.time()
    states = [Success("ok") for _ in range(5000)]
    for index, state in enumerate(states):
        recorder.task_run(("t-1", index), state, 1, started)
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    saved = gc.get_threshold()
    gc.set_threshold(700, *saved[1:])
    gc.collect()
    gc.callbacks.append(count)
    try:
        recorder.drain()
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*saved)
    # (at most the one set off as the threshold goes back down; 7 at the default)
    assert len(collections) <= 1
    recorder.finished(Success("ok"))
    store.flush()
    assert len(store.task_runs("r-drain")) == 5000


def test_submitted_task_states_are_packed_at_once(store: RunStore) -> None:
    """The rows a drain gives the store are packed on submission, so they do not wait
    for the next batch as objects."""
    row = ("r-packed", "t-1", 0, "Success", None, time.time(), 1, None, None, None)
    rows = [row]
    references = sys.getrefcount(rows), sys.getrefcount(row)
    store.submit_task_states(rows)
    assert (sys.getrefcount(rows), sys.getrefcount(row)) == references
    store.flush()
    assert [t.state for t in store.task_runs("r-packed")] == ["Success"]
