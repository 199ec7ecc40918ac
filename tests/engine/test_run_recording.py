"""Flow runs recorded in the run store, and resumed from it (``flow.run(resume=...)``).

Every test has its own SQLite store (config ``runs.store``); side effects are counted in
files, so a task that runs twice shows it, whichever process ran it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowcore
from flowcore import Flow, Parameter, task, unmapped
from flowcore.configuration import config
from flowcore.engine.results import LocalResult
from flowcore.exceptions import ResumeError
from flowcore.runs import RunStore, open_store
from tests.servers import postgresql_server, postgresql_url  # noqa: F401


def _configured(spec: str) -> Iterator[RunStore]:
    before = config.get_path("runs.store")
    config.set_path("runs.store", spec)
    try:
        opened = open_store()
        assert opened is not None
        yield opened
    finally:
        config.set_path("runs.store", before)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    """A SQLite store of the test's own, as config ``runs.store``."""
    yield from _configured(str(tmp_path / "runs.db"))


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    """The same on SQLite, and on a database of a real PostgreSQL server."""
    if request.param == "sqlite":
        yield from _configured(str(tmp_path / "runs.db"))
    else:
        yield from _configured(str(request.getfixturevalue("postgresql_url")))


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _mark(path: Path, text: str = "x") -> None:
    with open(path, "a") as fh:
        fh.write(text + "\n")


def test_a_run_is_recorded_with_its_tasks_parameters_and_logs(
    any_store: RunStore, logs: pytest.LogCaptureFixture
) -> None:
    store = any_store
    seen = {}

    @task
    def inc(x: int) -> int:
        seen["run id"] = flowcore.context.flow_run_id
        flowcore.context.logger.info("incrementing %s", x)
        return x + 1

    @task
    def double(x: int) -> int:
        return 2 * x

    with Flow("recorded") as flow:
        n = Parameter("n", default=3)
        double(inc(n))

    state = flow.run()
    assert state.is_successful()
    run_id = state.flow_run_id
    assert run_id == seen["run id"]
    assert logs.messages[0] == f"Flow run {run_id} of 'recorded' (recorded in {store.display})"
    store.flush()
    run = store.get_run(run_id)
    assert run is not None
    assert (run.flow_name, run.state, run.parameters) == ("recorded", "Success", {"n": "3"})
    assert run.pid == os.getpid() and run.ended is not None
    assert [t["name"] for t in run.structure["tasks"]] == ["n", "inc", "double"]
    records = {r.task_slug: r for r in store.task_runs(run_id)}
    assert {s: r.state for s, r in records.items()} == {
        "n": "Success",
        "inc-1": "Success",
        "double-1": "Success",
    }
    assert (
        records["inc-1"].started is not None and records["inc-1"].ended >= records["inc-1"].started
    )
    assert [t.state for t in store.transitions(run_id, "inc-1")] == ["Running", "Success"]
    lines = [(line.task_slug, line.message) for line in store.logs(run_id)]
    assert ("inc-1", "incrementing 3") in lines
    # the engine's two lines per task run restate transitions: they are not copied
    assert not [m for _, m in lines if "Starting task run" in m or "Finished task run" in m]
    assert store.get_run(run_id[:8]).run_id == run_id


def test_a_plain_task_shows_as_running_while_it_runs(store: RunStore) -> None:
    """A plain task's run (the fused path, reported in one go when it ends) is announced
    as Running by the recorder's next drain once it has run a while, so ``runs show`` and
    the UI show what is running, and a crash leaves it recorded as started; its end adds
    the final state without a second Running."""
    began, release = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    @task
    def wait() -> int:
        seen["run id"] = flowcore.context.flow_run_id
        began.set()
        assert release.wait(timeout=120), "the test never released the task"
        return 1

    with Flow("waiting") as flow:
        wait()
    states = []
    runner = threading.Thread(target=lambda: states.append(flow.run()))
    runner.start()
    try:
        assert began.wait(timeout=60), "the task never started"
        deadline = time.monotonic() + 60
        while True:
            store.flush()
            if [t.state for t in store.task_runs(seen["run id"])] == ["Running"]:
                break
            assert time.monotonic() < deadline, "the running task was never recorded as Running"
            time.sleep(0.1)
    finally:
        release.set()
        runner.join(timeout=120)
    assert states and states[0].is_successful()
    store.flush()
    (record,) = store.task_runs(seen["run id"])
    assert record.state == "Success" and record.started is not None
    assert [t.state for t in store.transitions(seen["run id"], "wait-1")] == ["Running", "Success"]


def test_runs_store_none_records_nothing_but_still_has_a_run_id(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    before = config.get_path("runs.store")
    config.set_path("runs.store", "none")
    try:
        state = Flow("unrecorded", tasks=[task(lambda: 1)]).run()
        with pytest.raises(ResumeError, match="needs the run store"):
            Flow("unrecorded").run(resume="last")
    finally:
        config.set_path("runs.store", before)
    assert state.is_successful() and len(state.flow_run_id) == 36
    assert (
        logs.messages[0]
        == f"Flow run {state.flow_run_id} of 'unrecorded' (not recorded: runs.store is 'none')"
    )


def _checkpointed_flow(tmp_path: Path, fail_while: Path) -> Flow:
    """a -> b -> c; b fails while ``fail_while`` exists; each run is counted."""

    @task
    def a() -> int:
        _mark(tmp_path / "a")
        return 1

    @task
    def b(x: int) -> int:
        _mark(tmp_path / "b")
        if fail_while.exists():
            raise RuntimeError("b is not ready")
        return x + 1

    @task
    def c(x: int) -> int:
        _mark(tmp_path / "c")
        return x * 10

    with Flow("resumable", result=LocalResult(dir=str(tmp_path / "results"))) as flow:
        c(b(a()))
    return flow


def test_resume_runs_only_what_did_not_finish(any_store: RunStore, tmp_path: Path) -> None:
    store = any_store
    broken = tmp_path / "broken"
    broken.touch()
    flow = _checkpointed_flow(tmp_path, broken)
    first = flow.run(context={"checkpointing": True})
    assert first.is_failed()
    assert (_count(tmp_path / "a"), _count(tmp_path / "b"), _count(tmp_path / "c")) == (1, 1, 0)
    broken.unlink()

    second = flow.run(resume=first.flow_run_id, context={"checkpointing": True})
    assert second.is_successful()
    assert (_count(tmp_path / "a"), _count(tmp_path / "b"), _count(tmp_path / "c")) == (1, 2, 1)
    c_task = flow.get_tasks(name="c")[0]
    assert second.result[c_task].result == 20
    store.flush()
    run = store.get_run(second.flow_run_id)
    assert run.resumed_from == first.flow_run_id and run.state == "Success"
    # the restored task is recorded in the new run too, with its location, so a resumed
    # run can be resumed again
    a_record = next(r for r in store.task_runs(second.flow_run_id) if r.task_slug == "a-1")
    assert a_record.state == "Success" and a_record.result_location is not None


def test_resume_last_and_rerun(store: RunStore, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.touch()
    flow = _checkpointed_flow(tmp_path, broken)
    assert flow.run(context={"checkpointing": True}).is_failed()
    broken.unlink()
    a_task = flow.get_tasks(name="a")[0]
    state = flow.run(resume="last", rerun=[a_task], context={"checkpointing": True})
    assert state.is_successful()
    assert (_count(tmp_path / "a"), _count(tmp_path / "b"), _count(tmp_path / "c")) == (2, 2, 1)
    with pytest.raises(
        ResumeError, match=r"its last run \(.*\) ended Success, so there is nothing to resume"
    ):
        flow.run(resume="last")
    with pytest.raises(ResumeError, match="has no run of it"):
        Flow("never run").run(resume="last")
    with pytest.raises(ValueError, match="rerun=.* needs resume="):
        flow.run(rerun=[a_task])


def _adding_flow(tmp_path: Path, seen: list[tuple[int, int]], swapped: bool) -> Flow:
    """add(1, 2) -> report.a and add(10, 20) -> report.b, the two adds made in the order
    ``swapped`` says (slugs follow that order: add-1 is the first made); report fails while
    tmp_path/broken exists and notes what it was given in ``seen``."""

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @task
    def report(a: int, b: int) -> None:
        if (tmp_path / "broken").exists():
            raise RuntimeError("not yet")
        seen.append((a, b))

    with Flow("adding", result=LocalResult(dir=str(tmp_path / "results"))) as flow:
        if swapped:
            b = add(10, 20)
            a = add(1, 2)
        else:
            a = add(1, 2)
            b = add(10, 20)
        report(a, b)
    return flow


def test_resume_runs_again_the_tasks_whose_inputs_changed_since(
    store: RunStore, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[int, int]] = []
    (tmp_path / "broken").touch()
    first = _adding_flow(tmp_path, seen, swapped=False).run(context={"checkpointing": True})
    assert first.is_failed()
    (tmp_path / "broken").unlink()
    # the same calls in the other order: add-1 is now add(10, 20), which feeds report.b
    swapped = _adding_flow(tmp_path, seen, swapped=True)
    assert swapped.run(resume="last", context={"checkpointing": True}).is_successful()
    assert seen == [(3, 30)]
    warning = next(m for m in logs.messages if "changed since the resumed run" in m)
    assert "add-1 (constant inputs differ)" in warning
    assert "report-1 (inputs from upstream tasks were a=add-1, b=add-2, now a=add-2, b=add-1)" in (
        warning
    )
    # the unchanged flow resumed from that run restores everything (nothing is noted)
    logs.clear()
    (tmp_path / "broken").touch()
    failed = swapped.run(context={"checkpointing": True})
    (tmp_path / "broken").unlink()
    state = swapped.run(resume=failed.flow_run_id, context={"checkpointing": True})
    assert state.is_successful() and seen == [(3, 30), (3, 30)]
    assert not any("changed since" in m for m in logs.messages)
    adds = {t: s for t, s in state.result.items() if t.name == "add"}
    assert all("Restored from run" in (s.message or "") for s in adds.values())


def test_a_run_still_running_in_a_live_process_is_not_resumed(
    store: RunStore, tmp_path: Path
) -> None:
    refused: list[str] = []

    @task
    def resume_myself() -> None:  # the run is Running, driven by this (live) process
        for name in ("last", flowcore.context.flow_run_id):
            with pytest.raises(ResumeError) as raised:
                flow.run(resume=name)
            refused.append(str(raised.value))

    with Flow("live") as flow:
        resume_myself()
    state = flow.run()
    assert state.is_successful(), state.result
    assert len(refused) == 2
    for message in refused:
        assert (
            f"Cannot resume run {state.flow_run_id} of 'live': it is still running in pid "
            f"{os.getpid()} on {os.uname().nodename}; wait for it or stop it"
        ) in message


def test_an_interrupted_run_ends_cancelled_with_its_running_tasks_and_is_resumed_last(
    store: RunStore, tmp_path: Path
) -> None:
    interrupt = tmp_path / "interrupt"

    @task
    def first() -> int:
        _mark(tmp_path / "first")
        return 1

    @task
    def second(x: int) -> int:
        if interrupt.exists():
            time.sleep(0.5)  # (recorded as running: a run is announced after 0.25 s)
            raise KeyboardInterrupt
        return x + 1

    with Flow("interrupted", result=LocalResult(dir=str(tmp_path / "results"))) as flow:
        second(first())
    interrupt.touch()
    with pytest.raises(KeyboardInterrupt):
        flow.run(context={"checkpointing": True})
    store.flush()
    (run,) = store.list_runs(flow="interrupted")
    assert run.state == "Cancelled"
    records = {r.task_slug: r.state for r in store.task_runs(run.run_id)}
    assert records == {"first-1": "Success", "second-1": "Cancelled"}
    ends = [t.state for t in store.transitions(run.run_id, "second-1")]
    assert ends == ["Running", "Cancelled"]
    interrupt.unlink()
    state = flow.run(resume="last", context={"checkpointing": True})
    assert state.is_successful() and _count(tmp_path / "first") == 1
    store.flush()
    assert store.get_run(state.flow_run_id).resumed_from == run.run_id  # type: ignore[union-attr]


def test_resume_names_values_that_were_never_checkpointed_before_anything_runs(
    store: RunStore, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.touch()
    flow = _checkpointed_flow(tmp_path, broken)
    first = flow.run()  # checkpointing is off: nothing is written
    assert first.is_failed()
    broken.unlink()
    with pytest.raises(ResumeError) as raised:
        flow.run(resume=first.flow_run_id)
    message = str(raised.value)
    assert (
        "'a' (needed by 'b')" in message
        and "checkpoint" in message
        and "result=LocalResult" in message
    )
    assert (_count(tmp_path / "a"), _count(tmp_path / "b"), _count(tmp_path / "c")) == (1, 1, 0)


def test_resume_unknown_run_or_another_flows_run(store: RunStore, tmp_path: Path) -> None:
    with pytest.raises(ResumeError, match="has no such run"):
        Flow("x").run(resume="0123456789")
    other = Flow("other", tasks=[task(lambda: 1)]).run()
    with pytest.raises(ResumeError, match="of flow 'other' with flow 'x'"):
        Flow("x").run(resume=other.flow_run_id)


def test_resuming_a_map_of_1000_runs_only_its_10_failed_children(
    store: RunStore, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.touch()
    runs = tmp_path / "runs"

    @task
    def square(x: int) -> int:
        _mark(runs, str(x))
        if x % 100 == 7 and broken.exists():
            raise ValueError(f"{x} failed")
        return x * x

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    with Flow("big map", result=LocalResult(dir=str(tmp_path / "results"))) as flow:
        total(square.map(list(range(1000))))

    first = flow.run(context={"checkpointing": True})
    assert first.is_failed() and _count(runs) == 1000
    broken.unlink()
    runs.unlink()
    second = flow.run(resume=first.flow_run_id, context={"checkpointing": True})
    assert second.is_successful()
    assert sorted(int(x) for x in runs.read_text().split()) == [
        x for x in range(1000) if x % 100 == 7
    ]
    total_task = flow.get_tasks(name="total")[0]
    assert second.result[total_task].result == sum(x * x for x in range(1000))
    store.flush()
    counts = store.get_run(second.flow_run_id).task_counts
    assert counts.get("Success", 0) >= 1000 + 1


KILLED_FLOW = """
import sys, time
from pathlib import Path
from flowcore import Flow, task
from flowcore.engine.results import LocalResult

out = Path(sys.argv[1])

@task
def step(previous, i):
    with open(out / "ran", "a") as fh:
        fh.write(f"{i}\\n")
    if i == 3 and not (out / "healed").exists():
        (out / "step-3-started").touch()
        time.sleep(600)  # killed here
    return i

with Flow("killed", result=LocalResult(dir=str(out / "results"))) as flow:
    previous = None
    for i in range(6):
        previous = step(previous, i)

if __name__ == "__main__":
    flow.run(context={"checkpointing": True})
"""


def _successes_recorded(store: RunStore, flow_name: str) -> int:
    """How many task runs of the newest run of ``flow_name`` the store has as Success."""
    runs = store.list_runs(flow=flow_name, limit=1)
    if not runs:
        return 0
    return sum(task_run.state == "Success" for task_run in store.task_runs(runs[0].run_id))


def test_a_run_killed_with_sigkill_is_resumed_in_a_new_process(
    store: RunStore, tmp_path: Path
) -> None:
    script = tmp_path / "killed_flow.py"
    script.write_text(textwrap.dedent(KILLED_FLOW))
    env = {**os.environ, "FLOWCORE__RUNS__STORE": store.url}
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            if (tmp_path / "step-3-started").exists():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the flow never reached step 3")
        for _ in range(1200):  # until steps 0-2 are in the store (a loaded machine is slow)
            if _successes_recorded(store, "killed") >= 3:
                break
            time.sleep(0.1)
        else:
            pytest.fail("steps 0-2 of the flow were never recorded")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    (tmp_path / "healed").touch()
    resumed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import runpy, sys
            sys.argv = ["killed_flow.py", {str(tmp_path)!r}]
            flow = runpy.run_path({str(script)!r})["flow"]
            state = flow.run(resume="last", context={{"checkpointing": True}})
            print(type(state).__name__, state.flow_run_id)
        """),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[-1].split()[0] == "Success"
    assert (tmp_path / "ran").read_text().split() == ["0", "1", "2", "3", "3", "4", "5"]


def test_progress_shows_counts_per_task_on_stderr_only(
    store: RunStore, capfd: pytest.CaptureFixture[str]
) -> None:
    @task
    def half(x: int) -> float:
        if x == 7:
            raise ValueError("seven")
        return x / 2

    with Flow("progress") as flow:
        half.map(list(range(10)))
    state = flow.run(progress=True)
    assert state.is_failed()
    out, err = capfd.readouterr()
    rows = {line.split()[0]: line.split()[1:] for line in err.splitlines() if line.strip()}
    assert rows["task"] == ["done", "cached", "failed", "total", "ETA"]
    assert rows["half"] == ["<map>", "9", "0", "1", "10"]
    assert "done" not in out  # the display never goes to stdout (where the logs are)
    flow.run(progress=False)
    assert "cached" not in capfd.readouterr().err


CONCURRENT_FLOW = """
import sys
from flowcore import Flow, task

@task
def step(x):
    return x + 1

with Flow(f"concurrent {sys.argv[1]}") as flow:
    for i in range(10):
        step.map(list(range(20)))

state = flow.run()
print(state.flow_run_id)
"""


def test_four_processes_recording_into_one_sqlite_file_lose_no_transitions(
    store: RunStore, tmp_path: Path
) -> None:
    script = tmp_path / "concurrent_flow.py"
    script.write_text(textwrap.dedent(CONCURRENT_FLOW))
    env = {**os.environ, "FLOWCORE__RUNS__STORE": store.url}
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(n)], env=env, stdout=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    run_ids = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        run_ids.append(out.split()[-1])
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run is not None and run.state == "Success"
        records = store.task_runs(run_id)
        # 10 constants, 10 mapped parents, 200 children
        assert len(records) == 220 and {r.state for r in records} == {"Success", "Mapped"}
        transitions = store.transitions(run_id)
        children = [t for t in transitions if t.map_index >= 0]
        assert [t.state for t in children].count("Running") == 200
        assert [t.state for t in children].count("Success") == 200


SOURCE_FLOW = """
from flowcore import Flow, task

@task
def one():
    return 1

with Flow("sourced") as flow:
    one()

for _ in range(2):
    print("RUN", flow.run().flow_run_id)
renamed = flow
del flow
print("RUN", renamed.run().flow_run_id)
"""


def test_a_run_from_a_script_records_the_variable_that_holds_its_flow(
    store: RunStore, tmp_path: Path
) -> None:
    """The source (``file:variable``, what ``flowcore resume`` loads) is found among the
    script's globals, and found again when the variable changes between runs."""
    script = tmp_path / "sourced.py"
    script.write_text(SOURCE_FLOW)
    done = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "FLOWCORE__RUNS__STORE": store.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    first, second, third = [
        line.split()[1] for line in done.stdout.splitlines() if line.startswith("RUN ")
    ]
    sources = [store.get_run(run_id).source for run_id in (first, second, third)]  # type: ignore[union-attr]
    assert sources == [f"{script}:flow", f"{script}:flow", f"{script}:renamed"]


@task
def counted(x: int, where: str) -> int:
    _mark(Path(where, f"a-{x}"))
    return x


@task
def listed(xs: list[int]) -> list[int]:
    return list(xs)


@task
def interrupting(x: int, where: str, driver: int) -> int:
    """Child 0, while the file ``interrupt`` exists, sends SIGINT to the ``driver``
    process and then waits to be stopped (up to 60 s)."""
    _mark(Path(where, f"b-{x}"))
    if x == 0 and Path(where, "interrupt").exists():
        os.kill(driver, signal.SIGINT)
        time.sleep(60)
    return x


def test_an_interrupted_run_on_a_process_pool_keeps_what_finished_for_its_resume(
    store: RunStore, tmp_path: Path
) -> None:
    """Ctrl-C while a map's children run in a process pool: the children whose states
    the driver had (all of the first map, gathered from the pool's processes) are
    recorded as they ended and the unfinished ones Cancelled, so a resume runs only
    those (docs/runs.md); before, the store kept no task run of the interrupted run and
    the resume ran everything again."""
    from flowcore.executors import LocalDaskExecutor

    where = str(tmp_path)
    (tmp_path / "interrupt").touch()
    with Flow("interrupted-pool", result=LocalResult(dir=str(tmp_path / "results"))) as flow:
        first = counted.map(list(range(6)), unmapped(where))
        # (through a task that takes them all: the second map starts once the first ended)
        interrupting.map(listed(first), unmapped(where), unmapped(os.getpid()))
    with pytest.raises(KeyboardInterrupt):
        flow.run(executor=LocalDaskExecutor("processes", num_workers=2),
                 context={"checkpointing": True})  # fmt: skip
    store.flush()
    (run,) = store.list_runs(flow="interrupted-pool")
    assert run.state == "Cancelled"
    records = {(r.task_slug, r.map_index): r.state for r in store.task_runs(run.run_id)}
    assert records[("counted-1", -1)] == "Mapped"
    assert [records[("counted-1", i)] for i in range(6)] == ["Success"] * 6
    assert records[("listed-1", -1)] == "Success"
    assert records[("interrupting-1", -1)] == "Mapped"
    assert records[("interrupting-1", 0)] == "Cancelled"
    assert {records[("interrupting-1", i)] for i in range(6)} <= {"Success", "Cancelled"}
    finished = [i for i in range(6) if records[("interrupting-1", i)] == "Success"]
    (tmp_path / "interrupt").unlink()
    state = flow.run(resume="last", executor=LocalDaskExecutor("processes", num_workers=2),
                     context={"checkpointing": True})  # fmt: skip
    assert state.is_successful(), state.result
    assert [_count(tmp_path / f"a-{i}") for i in range(6)] == [1] * 6
    assert all(_count(tmp_path / f"b-{i}") == 1 for i in finished)
    assert _count(tmp_path / "b-0") == 2


def test_a_keyword_flow_run_does_not_take_is_refused_before_a_run_is_recorded(
    store: RunStore,
) -> None:
    """Prefect 1's FlowRunner.run raises this TypeError; flowcore raised it from the first
    pass, after the run was recorded as a Failed run with no tasks."""
    with Flow("refused") as flow:
        task(lambda: 1, name="one")()
    with pytest.raises(
        TypeError, match="^FlowRunner.run\\(\\) got an unexpected keyword argument 'bogus'$"
    ):
        flow.run(bogus=1)
    store.flush()
    assert store.list_runs(flow="refused") == []
    assert flow.run(flow_run_name="named", task_runner_state_handlers=[]).is_successful()


def test_an_executor_that_is_not_one_is_refused_before_a_run_is_recorded(
    store: RunStore,
) -> None:
    """Prefect 1 failed the run with "'str' object has no attribute 'start'"; flowcore says
    what it takes, before anything is recorded."""
    with Flow("not-an-executor") as flow:
        task(lambda: 1, name="one")()
    with pytest.raises(
        TypeError, match=r"takes an executor, such as LocalExecutor\(\).*got str 'local'"
    ):
        flow.run(executor="local")
    store.flush()
    assert store.list_runs(flow="not-an-executor") == []
