"""The run store contract, on SQLite and on PostgreSQL (the ``url`` fixture)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from flowcore.configuration import config
from flowcore.runs import RunInfo, RunStore, RunStoreError, TaskRunInfo, TaskSummary, Transition
from flowcore.runs.events import FlowRunState, Heartbeat, LogLine, TaskRunState
from tests.runs.conftest import at, flow_state, started, task_state


def _run(
    store: RunStore, run_id: str, final: str | None = "Success", time: datetime | None = None,
    **fields: object,
) -> None:  # fmt: skip
    """Start ``run_id`` at ``time`` (default: the reference time), run it, end it ``final``
    (None: leave it Running); its flow states come 1 s and 9 s after the start."""
    start = time or at(0)
    store.submit(started(run_id, time=start, **fields))  # type: ignore[arg-type]
    store.submit(FlowRunState(run_id, "Running", None, start + timedelta(seconds=1)))
    if final is not None:
        store.submit(FlowRunState(run_id, final, f"run {final}", start + timedelta(seconds=9)))


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- writing and reading back ----------------------------------------------------------


def test_a_run_reads_back_as_written(store: RunStore) -> None:
    structure = {"tasks": [{"slug": "inc-1", "name": "inc", "mapped": True}], "edges": []}
    store.submit(
        started("run-0001", parameters={"x": "1"}, structure=structure, source="/f.py:flow")
    )
    store.submit(flow_state("run-0001", "Running", 1))
    store.submit(task_state("run-0001", "inc-1", "Mapped", 2, n_map_states=2))
    store.submit(task_state("run-0001", "inc-1", "Running", 3, index=0))
    store.submit(task_state("run-0001", "inc-1", "Success", 4, index=0, result_location="/r/0"))
    store.submit(task_state("run-0001", "inc-1", "Failed", 4, index=1))
    store.submit(flow_state("run-0001", "Failed", 5, "Some reference tasks failed."))
    store.flush()

    run = store.get_run("run-0001")
    assert run == RunInfo(
        run_id="run-0001", flow_name="etl", state="Failed",
        message="Some reference tasks failed.", started=at(0), ended=at(5), heartbeat=at(5),
        host=run.host, pid=os.getpid(), parameters={"x": "1"}, source="/f.py:flow",
        resumed_from=None, structure=structure,
        task_counts={"Failed": 1, "Mapped": 1, "Success": 1},
    )  # fmt: skip
    assert run.host and run.started.tzinfo is not None
    assert store.task_runs("run-0001") == [
        TaskRunInfo("inc-1", -1, "Mapped", None, None, at(2), 1, None, 2),
        TaskRunInfo("inc-1", 0, "Success", None, at(3), at(4), 1, "/r/0", None),
        TaskRunInfo("inc-1", 1, "Failed", None, None, at(4), 1, None, None),
    ]
    assert [(t.task_slug, t.map_index, t.state) for t in store.transitions("run-0001")] == [
        (None, -1, "Running"),
        ("inc-1", -1, "Mapped"),
        ("inc-1", 0, "Running"),
        ("inc-1", 0, "Success"),
        ("inc-1", 1, "Failed"),
        (None, -1, "Failed"),
    ]
    assert store.transitions("run-0001", "inc-1", 0) == [
        Transition("inc-1", 0, "Running", None, at(3)),
        Transition("inc-1", 0, "Success", None, at(4)),
    ]


def test_a_task_run_keeps_its_first_start_and_latest_end(store: RunStore) -> None:
    _run(store, "run-0002", final=None)
    for seconds, state in [(1, "Running"), (2, "Failed"), (3, "Retrying"), (4, "Running")]:
        store.submit(task_state("run-0002", "t-1", state, seconds, run_count=1 + seconds // 3))
    store.flush()  # the retry's Success lands in a later batch
    store.submit(task_state("run-0002", "t-1", "Success", 5, run_count=2, result_location="/x"))
    store.submit(task_state("run-0002", "t-1", "Success", 6, run_count=2))
    store.flush()
    assert store.task_runs("run-0002") == [
        TaskRunInfo("t-1", -1, "Success", None, at(1), at(6), 2, "/x", None)
    ]
    assert len(store.transitions("run-0002", "t-1")) == 6


def test_task_summaries_count_children_by_state_and_span_them(store: RunStore) -> None:
    """The grouped read behind a run's page, its graph and ``runs show``: each task's own
    record, its children counted by state, and the first start and last end among them
    (a child with only an end counts it as its start too)."""
    _run(store, "run-sum", final=None)
    store.submit(task_state("run-sum", "load-1", "Success", 1, started=at(0.5).timestamp()))
    store.submit(task_state("run-sum", "sq-1", "Mapped", 2, n_map_states=5))
    timeline = [("Success", 3, 4), ("Success", 2.5, 6), ("Failed", 5, 7), ("Cached", None, 1.5)]
    for index, (state, begin, end) in enumerate(timeline):
        if begin is not None:
            store.submit(task_state("run-sum", "sq-1", "Running", begin, index=index))
        store.submit(task_state("run-sum", "sq-1", state, end, index=index))
    store.submit(task_state("run-sum", "sq-1", "Running", 8, index=4))
    store.submit(task_state("run-sum", "orphan-1", "Success", 9, index=0))  # no parent record
    store.flush()

    load, orphan, square = store.task_summaries("run-sum")
    assert load == TaskSummary(
        "load-1", TaskRunInfo("load-1", -1, "Success", None, at(0.5), at(1), 1, None, None)
    )
    assert orphan == TaskSummary("orphan-1", None, {"Success": 1}, at(9), at(9))
    assert square == TaskSummary(
        "sq-1",
        TaskRunInfo("sq-1", -1, "Mapped", None, None, at(2), 1, None, 5),
        {"Cached": 1, "Failed": 1, "Running": 1, "Success": 2},
        at(1.5),  # the Cached child's end: it never ran
        at(8),  # the running child's start: the latest time of any child
    )
    children = store.task_runs("run-sum", "sq-1")
    assert [(c.map_index, c.state) for c in children] == [
        (-1, "Mapped"), (0, "Success"), (1, "Success"), (2, "Failed"), (3, "Cached"),
        (4, "Running"),
    ]  # fmt: skip
    assert store.task_runs("run-sum", "sq-1", 2) == [children[3]]


def test_children_are_read_a_page_at_a_time(store: RunStore) -> None:
    _run(store, "run-page")
    store.submit(task_state("run-page", "sq-1", "Mapped", 1, n_map_states=25))
    for index in range(25):
        state = "Failed" if index % 5 == 0 else "Success"
        store.submit(task_state("run-page", "sq-1", state, 2, index=index))
    store.flush()
    page = store.children("run-page", "sq-1", offset=10, limit=4)
    assert [(c.map_index, c.state) for c in page] == [
        (10, "Failed"), (11, "Success"), (12, "Success"), (13, "Success"),
    ]  # fmt: skip
    failed = store.children("run-page", "sq-1", state="Failed", offset=1, limit=10)
    assert [c.map_index for c in failed] == [5, 10, 15, 20]
    assert store.children("run-page", "sq-1", offset=25) == []
    assert store.children("run-page", "other-1") == []


def test_runs_are_listed_newest_first_and_filtered(store: RunStore) -> None:
    for i, (flow, final) in enumerate(
        [("a", "Success"), ("b", "Failed"), ("a", "Failed"), ("a", "Crashed")]
    ):
        _run(store, f"run-{i}", flow=flow, time=at(i), final=final)
    store.flush()
    assert [r.run_id for r in store.list_runs()] == ["run-3", "run-2", "run-1", "run-0"]
    assert [r.run_id for r in store.list_runs(flow="a")] == ["run-3", "run-2", "run-0"]
    assert [r.run_id for r in store.list_runs(state="Failed")] == ["run-2", "run-1"]
    assert [r.run_id for r in store.list_runs(flow="a", state="failed")] == ["run-2"]
    assert [r.run_id for r in store.list_runs(limit=2, offset=1)] == ["run-2", "run-1"]
    assert store.count_runs() == 4
    assert store.count_runs(flow="a") == 3
    assert store.count_runs(state="CRASHED") == 1
    assert store.list_runs(flow="nope") == [] and store.count_runs(flow="nope") == 0


def test_get_run_accepts_a_unique_prefix(store: RunStore) -> None:
    for run_id in ["3f2a91c0", "3f2a77d1", "9b0c_x%1"]:
        _run(store, run_id)
    store.flush()
    assert store.get_run("3f2a9").run_id == "3f2a91c0"  # type: ignore[union-attr]
    assert store.get_run("9b0c_").run_id == "9b0c_x%1"  # type: ignore[union-attr]
    assert store.get_run("9b0c%") is None  # LIKE wildcards are taken literally
    assert store.get_run("3f2") is None  # too short to be a prefix
    assert store.get_run("ffff") is None
    with pytest.raises(RunStoreError, match="ambiguous.*3f2a91c0.*3f2a77d1|ambiguous.*3f2a77d1"):
        store.get_run("3f2a")


def test_events_before_the_run_started_are_kept(store: RunStore) -> None:
    # times of now: a placeholder run (no driver known yet) with a heartbeat older than a
    # minute would be found Crashed by the first read
    now = datetime.now(timezone.utc)
    store.submit(TaskRunState("early", "t-1", -1, "Running", None, now.timestamp()))
    store.submit(
        LogLine("early", "t-1", -1, now.timestamp(), logging.INFO, "flowcore.task", "hello")
    )
    store.submit(Heartbeat("early", now))
    store.flush()
    placeholder = store.get_run("early")
    assert placeholder is not None and placeholder.flow_name == ""
    store.submit(started("early", flow="late", time=now))
    store.flush()
    run = store.get_run("early")
    assert run is not None and run.flow_name == "late" and run.task_counts == {"Running": 1}
    assert [line.message for line in store.logs("early")] == ["hello"]


def test_heartbeats_move_forward_only(store: RunStore) -> None:
    _run(store, "hb", final=None)
    store.submit(Heartbeat("hb", at(30)))
    store.submit(Heartbeat("hb", at(20)))
    store.flush()
    assert store.get_run("hb").heartbeat == at(30)  # type: ignore[union-attr]


def test_the_writer_beats_for_the_runs_this_process_drives(
    make_store: Callable[..., RunStore],
) -> None:
    store = make_store(heartbeat_every=0.05)
    # (started after this process did, as a run this process drives is)
    start = datetime.now(timezone.utc).replace(microsecond=0)
    for run_id, pid in [("mine", os.getpid()), ("theirs", os.getpid() + 1)]:
        store.submit(started(run_id, time=start, pid=pid))
        store.submit(FlowRunState(run_id, "Running", None, start))
    store.flush()
    deadline = time.monotonic() + 60
    while store.get_run("mine").heartbeat <= start:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the writer never stamped a heartbeat"
        time.sleep(0.05)
    assert store.get_run("theirs").heartbeat == start  # type: ignore[union-attr]


# -- log lines ---------------------------------------------------------------------------


def test_log_lines_are_capped_per_run_and_the_rest_counted(
    make_store: Callable[..., RunStore],
) -> None:
    store = make_store(max_log_lines=5)
    _run(store, "logs", final=None)
    _run(store, "other", final=None)

    def line(run_id: str, i: int, slug: str | None = None) -> LogLine:
        return LogLine(run_id, slug, -1, at(i).timestamp(), logging.INFO, "flowcore", f"line {i}")

    for i in range(3):
        store.submit(line("logs", i, "t-1" if i == 1 else None))
    store.flush()
    for i in range(3, 8):
        store.submit(line("logs", i))
    store.submit(line("other", 0))
    store.flush()

    lines = store.logs("logs")
    assert [x.message for x in lines] == [
        "line 0", "line 1", "line 2", "line 3", "line 4",
        "3 more log lines were dropped (runs.max_log_lines)",
    ]  # fmt: skip
    assert lines[-1].task_slug is None and lines[-1].level == logging.WARNING
    assert [x.message for x in store.logs("logs", limit=2)][0] == "line 4"
    assert [x.message for x in store.logs("logs", task_slug="t-1")] == ["line 1"]
    assert [x.message for x in store.logs("other")] == ["line 0"]


def test_log_lines_of_one_mapped_child_are_read_by_the_query(
    make_store: Callable[..., RunStore],
) -> None:
    """``map_index`` narrows the read itself: ``limit`` counts that child's lines alone
    (the UI's page of a child reads no other line of its task)."""
    store = make_store()
    _run(store, "mapped", final=None)
    for i in range(12):
        store.submit(
            LogLine("mapped", "sq-1", i % 3 - 1, at(i).timestamp(), logging.INFO, "flowcore", f"line {i}")
        )  # fmt: skip
    store.flush()
    assert [x.message for x in store.logs("mapped", "sq-1", limit=2, map_index=1)] == [
        "line 8",
        "line 11",
    ]
    assert [x.message for x in store.logs("mapped", "sq-1", map_index=-1)] == [
        f"line {i}" for i in (0, 3, 6, 9)
    ]
    assert len(store.logs("mapped", "sq-1", limit=5)) == 5


# -- crashes -------------------------------------------------------------------------------


def test_a_run_whose_driver_died_is_crashed_with_its_unfinished_tasks(store: RunStore) -> None:
    pid = _dead_pid()
    _run(store, "dead", final=None, pid=pid, time=at(-600))
    store.submit(task_state("dead", "done-1", "Success", -590))
    store.submit(task_state("dead", "busy-1", "Running", -590))
    store.submit(task_state("dead", "waiting-1", "Pending", -590))
    store.submit(Heartbeat("dead", at(-500)))
    store.submit(task_state("dead", "late-1", "Success", -495))  # after its last heartbeat
    _run(store, "elsewhere", final=None, host="another-host", time=at(-600))
    _run(store, "fresh", final=None, pid=pid, time=at(-600))
    store.submit(Heartbeat("fresh", at(3600)))  # a heartbeat from the future is not stale
    store.flush()

    run = store.get_run("dead")
    assert run is not None and run.state == "Crashed"
    assert f"pid {pid}" in run.message and "died" in run.message  # type: ignore[operator]
    assert run.ended == at(-495)  # the last thing known of it, not its last heartbeat
    states = {t.task_slug: t.state for t in store.task_runs("dead")}
    assert states == {
        "done-1": "Success", "busy-1": "Crashed", "waiting-1": "Crashed", "late-1": "Success",
    }  # fmt: skip
    assert run.task_counts == {"Crashed": 2, "Success": 2}
    busy = next(t for t in store.task_runs("dead") if t.task_slug == "busy-1")
    assert busy.ended == at(-495)
    assert store.transitions("dead")[-1].state == "Crashed"
    assert {r.run_id: r.state for r in store.list_runs()} == {
        "dead": "Crashed", "elsewhere": "Crashed", "fresh": "Running",
    }  # fmt: skip
    assert [t.state for t in store.transitions("dead") if t.task_slug is None] == [
        "Running", "Crashed",
    ]  # fmt: skip
    assert [t.state for t in store.transitions("dead", "busy-1")] == ["Running", "Crashed"]
    assert len(store.transitions("dead")) == 8  # later reads do not crash the run again


def test_the_crash_threshold_is_an_option(make_store: Callable[..., RunStore]) -> None:
    pid = _dead_pid()
    patient = make_store(crash_after=7200)
    _run(patient, "quiet", final=None, pid=pid, time=at(-600))
    patient.flush()
    assert patient.get_run("quiet").state == "Running"  # type: ignore[union-attr]
    assert make_store(crash_after=60).get_run("quiet").state == "Crashed"  # type: ignore[union-attr]


def test_a_live_driver_keeps_its_run_and_a_pid_taken_since_does_not(
    make_store: Callable[..., RunStore],
) -> None:
    # a run is Crashed when its heartbeat is stale and its driver is gone; the driver is
    # the process with its pid that was running when the run began: one that took the pid
    # later (the driver died, the pid was reused) neither keeps the run Running nor makes
    # a resume refuse it
    store = make_store(crash_after=0.5)
    newcomer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        now = datetime.now(timezone.utc)
        _run(store, "this-process", final=None, time=now)
        _run(store, "newcomer", final=None, pid=newcomer.pid, time=now)
        _run(store, "reused", final=None, pid=newcomer.pid, time=at(-600))  # before it began
        store.flush()
        time.sleep(1.0)  # every heartbeat is stale now
        states = {r.run_id: r.state for r in store.list_runs()}
        assert states == {"this-process": "Running", "newcomer": "Running", "reused": "Crashed"}
        reused = store.get_run("reused")
        assert reused is not None and f"pid {newcomer.pid}" in (reused.message or "")
        assert not store.still_running(reused)
        assert store.still_running(store.get_run("newcomer"))  # type: ignore[arg-type]
    finally:
        newcomer.kill()
        newcomer.wait()


# -- retention ---------------------------------------------------------------------------


def test_prune_by_age_and_count_keeps_unfinished_runs(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (no retention for the writer, which prunes after writing new runs: prune is called here)
    monkeypatch.setitem(config.runs, "retention_days", 0)
    day = 86_400
    _run(store, "old-run", time=at(-40 * day))
    store.submit(task_state("old-run", "t-1", "Success", -40 * day))
    store.submit(LogLine("old-run", None, -1, at(-40 * day).timestamp(), 20, "flowcore", "old"))
    # unfinished, and alive: driven elsewhere, with a fresh heartbeat
    _run(store, "ancient-live", time=at(-40 * day), final=None, host="another-host")
    store.submit(Heartbeat("ancient-live", datetime.now(timezone.utc)))
    for i in range(4):
        _run(store, f"recent-{i}", time=at(-day + i))
    store.flush()

    assert store.prune(retention_days=30, max_runs=1000) == 1
    assert store.get_run("old-run") is None
    assert store.task_runs("old-run") == [] and store.logs("old-run") == []
    assert store.transitions("old-run") == []
    assert store.prune(retention_days=30, max_runs=2) == 2
    assert [r.run_id for r in store.list_runs()] == ["recent-3", "recent-2", "ancient-live"]
    assert store.prune(retention_days=30, max_runs=2) == 0


# -- failures ------------------------------------------------------------------------------


def test_a_failed_write_is_logged_once_and_raised_from_the_next_flush(
    store: RunStore, url: str, logs: pytest.LogCaptureFixture
) -> None:
    _run(store, "w", final=None)
    store.flush()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE run_journal"))  # where log lines are written
    for i in range(3):
        store.submit(LogLine("w", None, -1, at(i).timestamp(), 20, "flowcore", "lost"))
        with pytest.raises(RunStoreError, match="run_journal"):
            store.flush()
    errors = [r for r in logs.records if r.levelno == logging.ERROR and r.name == "flowcore.runs"]
    assert len(errors) == 1 and "run_journal" in errors[0].getMessage()
    store.submit(flow_state("w", "Success", 5))
    store.flush()  # the store still writes what it can
    with engine.begin() as conn:
        state = conn.execute(sa.text("SELECT state FROM flow_runs WHERE run_id = 'w'")).scalar()
    engine.dispose()
    assert state == "Success"


def test_close_is_idempotent_and_the_store_reopens(store: RunStore) -> None:
    _run(store, "c")
    store.close()
    store.close()
    assert store.get_run("c").state == "Success"  # type: ignore[union-attr]
    _run(store, "d")
    store.flush()
    assert store.count_runs() == 2


# -- the recorder's conveniences -------------------------------------------------------


def test_a_folded_running_is_recorded_as_its_own_transition(store: RunStore) -> None:
    """A quick task run's Running arrives inside its final state (``started``)."""
    _run(store, "fold", final=None)
    store.submit(
        TaskRunState(
            "fold", "t-1", 3, "Success", None, at(5).timestamp(), started=at(4).timestamp()
        )
    )
    store.flush()
    assert store.task_runs("fold") == [
        TaskRunInfo("t-1", 3, "Success", None, at(4), at(5), 1, None, None)
    ]
    assert store.transitions("fold", "t-1") == [
        Transition("t-1", 3, "Running", None, at(4)),
        Transition("t-1", 3, "Success", None, at(5)),
    ]


def test_sources_submit_before_each_batch_until_removed(
    store: RunStore, logs: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def source() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            store.submit_task_states([tuple(task_state("src", "slow-1", "Running", 2))])

    def broken() -> None:
        raise RuntimeError("source bug")

    _run(store, "src", final=None)
    store.add_source(source)
    store.add_source(broken)
    store.submit(task_state("src", "slow-1", "Success", 3))
    store.flush()
    assert [t.state for t in store.transitions("src", "slow-1")] == ["Running", "Success"]
    store.remove_source(source)
    made = len(calls)
    store.submit(task_state("src", "other-1", "Success", 4))
    store.flush()
    assert len(calls) == made
    failures = [r for r in logs.records if "source" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR


def test_resumes_of_lists_the_runs_that_resumed_a_run(store: RunStore) -> None:
    _run(store, "first", final="Failed")
    _run(store, "second", time=at(10), resumed_from="first", final="Failed")
    _run(store, "third", time=at(20), resumed_from="first")
    _run(store, "unrelated", time=at(30))
    store.flush()
    assert [r.run_id for r in store.resumes_of("first")] == ["third", "second"]
    assert store.resumes_of("third") == []


def test_threads_that_submit_and_flush_at_once_lose_nothing(store: RunStore) -> None:
    """A flush sends what is queued from its own thread (not only the feeder thread):
    eight threads submitting and flushing over each other, then a close, lose nothing,
    and each flush covers what its thread submitted before it."""
    import threading

    store.submit(started("many"))
    store.flush()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for batch in range(20):
                rows = [
                    ("many", f"w{worker}-1", batch * 10 + i, "Success", None, time.time(), 1,
                     None, None, None)
                    for i in range(10)
                ]  # fmt: skip
                store.submit_task_states(rows)
                store.flush()
                # (the fold of a read: this worker's rows so far are all there)
                assert len(store.task_runs("many", f"w{worker}-1")) == (batch + 1) * 10
        except BaseException as exc:  # (reported by the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store.close()
    assert len(store.task_runs("many")) == 8 * 200
