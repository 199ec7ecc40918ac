"""Batched mapped children on the Dask executors (``engine/batches.py``, docs/executors.md
"Big maps: batches").

Real clusters: the session's ``local_cluster`` (two worker processes) for the big map, and
a temporary cluster the ``DaskExecutor`` creates (so flowcore's crash policy is installed;
two worker processes of one thread each) for the tests that kill a worker. Files count
every run of every child.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, flatten, task, unmapped
from flowcore.engine.child_states import ChildStates
from flowcore.engine.results import LocalResult
from flowcore.engine.state import Cached, Crashed, Failed, Retrying, State, Success
from flowcore.executors import DaskExecutor, LocalDaskExecutor
from flowcore.utilities.logging import get_logger
from tests.executors import flows
from tests.executors.conftest import local_cluster_kwargs

pytestmark = pytest.mark.timeout(180)


def run(flow: Flow, executor: Any, **kwargs: Any) -> State:
    state = flow.run(executor=executor, **kwargs)
    assert state is not None
    return state


def test_a_map_of_50000_items_gives_every_child_state(local_cluster: Any) -> None:
    n = 50_000
    with Flow("big-map") as flow:
        first = flows.inc.map(list(range(n)))
        second = flows.add.map(first, unmapped(100))
        summed = flows.total(second)
    state = run(flow, DaskExecutor(address=local_cluster.scheduler_address))
    assert type(state) is Success
    children = state.result[second].map_states
    assert isinstance(children, ChildStates)
    assert len(children) == n
    assert all(type(child) is Success for child in children)
    assert children[0].result == 101
    assert children[n - 1].result == n + 100
    assert children[-1] == children[n - 1]
    assert [child.result for child in children[1000:1003]] == [1101, 1102, 1103]
    assert state.result[first].result == list(range(1, n + 1))
    assert state.result[second].result == list(range(101, n + 101))
    assert state.result[summed].result == sum(range(101, n + 101))


def test_batches_of_a_map_with_another_map_as_an_unmapped_input(local_cluster: Any) -> None:
    """Every batch after the first used to fail the flow run with KeyError(Edge): its
    upstream states reached the worker apart from the other map's children."""
    with Flow("unmapped-map") as flow:
        first = flows.inc.map(list(range(3)))
        out = flows.add_all.map(list(range(40)), unmapped(first), batch_size=10)
        after = flows.inc.map(list(range(40)), upstream_tasks=[unmapped(first)], batch_size=10)
    state = run(flow, DaskExecutor(address=local_cluster.scheduler_address))
    assert type(state) is Success
    assert state.result[out].result == [x + 6 for x in range(40)]
    assert state.result[after].result == [x + 1 for x in range(40)]


def test_batch_size_1_is_one_dask_call_per_child(local_cluster: Any) -> None:
    with Flow("one-per-child") as flow:
        single = flows.dask_key.map(list(range(100)), batch_size=1)
        batched = flows.dask_key.map(list(range(100)), batch_size=10)
    state = run(flow, DaskExecutor(address=local_cluster.scheduler_address))
    assert type(state.result[single].map_states) is list
    single_keys = state.result[single].result
    assert len(set(single_keys)) == 100
    assert all(key.startswith(f"dask_key-{i}-") for i, key in enumerate(single_keys))
    batched_keys = state.result[batched].result
    assert len(set(batched_keys)) == 10
    assert batched_keys[0].startswith("dask_key-0-9-")
    assert batched_keys[95].startswith("dask_key-90-99-")


def test_flow_run_map_batch_size_applies_to_every_map(local_cluster: Any) -> None:
    with Flow("run-batch-size") as flow:
        keys = flows.dask_key.map(list(range(20)))
        own = flows.dask_key.map(list(range(20)), batch_size=20)
    state = run(flow, DaskExecutor(address=local_cluster.scheduler_address), map_batch_size=5)
    assert len(set(state.result[keys].result)) == 4
    assert len(set(state.result[own].result)) == 1


def test_cached_children_of_batches_reach_the_in_memory_cache(
    local_cluster: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with Flow("batched-cache") as flow:
        children = flows.cached_record.map(unmapped(str(runs)), list(range(40)), batch_size=10)
    executor = DaskExecutor(address=local_cluster.scheduler_address)
    first = run(flow, executor)
    assert [type(s) for s in first.result[children].map_states] == [Cached] * 40
    second = run(flow, executor)  # the workers' Cached states were kept in this process
    assert second.result[children].result == list(range(40))
    assert sorted(int(line) for line in runs.read_text().split()) == list(range(40))


def test_a_batch_on_a_worker_runs_the_garbage_collector_less_often(local_cluster: Any) -> None:
    with Flow("batched-gc") as flow:
        batched = flows.gc_first_threshold.map(list(range(20)), batch_size=10)
        single = flows.gc_first_threshold(0)
    state = run(flow, DaskExecutor(address=local_cluster.scheduler_address))
    assert state.result[batched].result == [10_000] * 20  # engine.gc_threshold's default
    assert state.result[single].result < 10_000  # (Python's default: a task of its own)


def test_retries_inside_batches_are_per_child(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    with Flow("retry-in-batch") as flow:
        out = flows.fail_odd_once.map(list(range(40)), unmapped(str(tmp_path)), batch_size=10)
    state = run(flow, temporary_cluster)
    assert type(state) is Success
    assert state.result[out].result == [x * 10 for x in range(40)]
    assert flows.runs_of(str(tmp_path)) == {x: 2 if x % 2 else 1 for x in range(40)}
    assert all(type(child) is Success for child in state.result[out].map_states)


def test_checkpoints_and_targets_inside_batches(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    stored = tmp_path / "stored"
    with Flow("targets-in-batch") as flow:
        out = flows.counted_double.map(
            list(range(30)),
            unmapped(str(runs)),
            batch_size=8,
            task_args={
                "result": LocalResult(dir=str(stored)),
                "target": "{task_name}-{map_index}.bin",
                "checkpoint": True,
            },
        )
    first = run(flow, temporary_cluster, context={"checkpointing": True})
    assert first.result[out].result == [x * 2 for x in range(30)]
    assert sorted(p.name for p in stored.iterdir()) == sorted(
        f"counted_double-{i}.bin" for i in range(30)
    )
    children = first.result[out].map_states
    assert children[7]._result.location == str(stored / "counted_double-7.bin")
    second = run(flow, temporary_cluster, context={"checkpointing": True})
    assert all(type(child) is Cached for child in second.result[out].map_states)
    assert second.result[out].result == [x * 2 for x in range(30)]
    assert flows.runs_of(str(runs)) == dict.fromkeys(range(30), 1)


def test_children_of_batches_are_recorded_each_with_its_state_and_location(
    local_cluster: Any, tmp_path: Path
) -> None:
    """The batches ran in other processes, so the driver records their children (from
    their compact form: ``ChildStates.unreported``)."""
    from flowcore.runs import open_store

    with Flow("recorded-batches", result=LocalResult(dir=str(tmp_path))) as flow:
        out = flows.fail_on.map(
            list(range(30)), unmapped(7), batch_size=10, task_args={"checkpoint": True}
        )
    executor = DaskExecutor(address=local_cluster.scheduler_address)
    state = run(flow, executor, context={"checkpointing": True})
    assert type(state) is Failed
    children = state.result[out].map_states
    store = open_store()
    assert store is not None
    store.flush()
    slug = flow.slugs[out]
    records = {
        r.map_index: r
        for r in store.task_runs(state.flow_run_id)
        if r.task_slug == slug and r.n_map_states is None
    }
    assert sorted(records) == list(range(30))
    assert {i: r.state for i, r in records.items()} == {
        i: "Failed" if i == 7 else "Success" for i in range(30)
    }
    assert records[7].message == children[7].message
    locations = {i: r.result_location for i, r in records.items()}
    assert locations == {i: children[i]._result.location for i in range(30)}
    assert locations[7] is None and all(locations[i] for i in range(30) if i != 7)


def test_a_worker_killed_mid_batch_loses_no_finished_child(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    with Flow("crash-in-batch") as flow:
        out = flows.crash_in_batch.map(
            list(range(40)), unmapped(str(tmp_path)), unmapped(25), batch_size=10
        )
        summed = flows.total(out)
    state = run(flow, temporary_cluster)
    assert type(state) is Failed
    children = state.result[out].map_states
    crashed = children[25]
    assert type(crashed) is Crashed
    assert crashed.message == "Task 'crash_in_batch[25]': its Dask worker died while it ran"
    others = [i for i in range(40) if i != 25]
    assert all(type(children[i]) is Success for i in others)
    assert [children[i].result for i in others] == [i + 1 for i in others]
    # the children the lost batch finished (20-24) and those it had not reached (26-29)
    # each ran once; no other child ran twice
    assert flows.runs_of(str(tmp_path)) == dict.fromkeys(range(40), 1)
    assert type(state.result[summed]).__name__ == "TriggerFailed"


def test_a_child_that_crashed_its_batch_is_retried_alone(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    with Flow("crash-in-batch-retried") as flow:
        out = flows.crash_in_batch_retried.map(
            list(range(30)), unmapped(str(tmp_path)), unmapped(12), batch_size=10
        )
    state = run(flow, temporary_cluster)
    assert type(state) is Success
    assert state.result[out].result == [i + 1 for i in range(30)]
    runs = flows.runs_of(str(tmp_path))
    assert runs == {i: 2 if i == 12 else 1 for i in range(30)}


def test_a_worker_killed_after_a_reported_child_ended_blames_the_child_running(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    """Child 0 was reported running, then ended; child 1 kills its worker every time.
    The stale report used to have child 0 Crashed, and the batch run again for the others
    lost with its worker too, every child of it Crashed as 'crash_every_time[1-5]'."""
    with Flow("stale-report") as flow:
        out = flows.crash_every_time.map(
            list(range(6)), unmapped(str(tmp_path)), unmapped(1), batch_size=6
        )
    state = run(flow, temporary_cluster)
    children = state.result[out].map_states
    assert [type(child) for child in children] == [Success, Crashed] + [Success] * 4
    assert children[1].message == "Task 'crash_every_time[1]': its Dask worker died while it ran"
    assert [children[i].result for i in (0, 2, 3, 4, 5)] == [1, 3, 4, 5, 6]
    assert flows.runs_of(str(tmp_path)) == {0: 1, 1: 2, 2: 1, 3: 1, 4: 1, 5: 1}


def test_a_lost_batch_without_progress_reruns_its_children_one_per_call(
    temporary_cluster: DaskExecutor, tmp_path: Path
) -> None:
    """A process pool (no progress reports): every child of the broken batch runs again on
    its own; the child that broke it is the only one to run twice."""
    with Flow("crash-in-pool-batch") as flow:
        out = flows.crash_in_batch.map(
            list(range(12)), unmapped(str(tmp_path)), unmapped(0), batch_size=12
        )
    state = run(flow, LocalDaskExecutor("processes", num_workers=1))
    assert state.result[out].result == [i + 1 for i in range(12)]
    assert flows.runs_of(str(tmp_path)) == {i: 2 if i == 0 else 1 for i in range(12)}


def test_a_child_that_kills_its_pool_process_every_time_ends_crashed_alone(
    tmp_path: Path,
) -> None:
    """A broken pool fails every call it held: the children run again with the killer
    (each in a call of its own) used to end Crashed with it; each now runs again alone."""
    with Flow("killer-in-pool") as flow:
        out = flows.kill_pool_every_time.map(list(range(6)), unmapped(str(tmp_path)), batch_size=3)
    state = run(flow, LocalDaskExecutor("processes", num_workers=2))
    children = state.result[out].map_states
    assert [type(child) for child in children] == [Crashed] + [Success] * 5
    assert children[0].message.startswith(
        "Task 'kill_pool_every_time[0]': a process of the pool died while the task ran"
    )
    assert [child.result for child in children[1:]] == [2, 3, 4, 5, 6]


def test_batches_on_local_dask_threads_keep_per_child_retries(tmp_path: Path) -> None:
    with Flow("threads-batches") as flow:
        out = flows.fail_odd_once.map(list(range(20)), unmapped(str(tmp_path)), batch_size=6)
    state = run(flow, LocalDaskExecutor("threads", num_workers=2))
    assert type(state) is Success
    assert state.result[out].result == [x * 10 for x in range(20)]
    assert flows.runs_of(str(tmp_path)) == {x: 2 if x % 2 else 1 for x in range(20)}


def test_a_first_pass_leaves_odd_children_retrying(tmp_path: Path) -> None:
    """One FlowRunner pass (as ``flow.run`` makes them): the odd children are Retrying,
    each with its own state, inside the batches."""
    from flowcore.engine.flow_runner import FlowRunner

    with Flow("one-pass") as flow:
        out = flows.fail_odd_once.map(list(range(10)), unmapped(str(tmp_path)), batch_size=4)
    state = FlowRunner(flow).run(
        executor=LocalDaskExecutor("threads", num_workers=2), return_tasks=[out]
    )
    children = state.result[out].map_states
    assert isinstance(children, ChildStates)
    assert [type(child) for child in children] == [Success, Retrying] * 5
    assert children[1].run_count == 1


def test_map_batch_size_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"batch size must be a positive int"):
        with Flow("bad"):
            flows.inc.map([1, 2], batch_size=0)
    with Flow("bad-run") as flow:
        flows.inc.map([1, 2])
    with pytest.raises(ValueError, match=r"flow.run\(map_batch_size=...\).*positive int"):
        flow.run(map_batch_size="10")


def test_a_task_argument_named_batch_size_stays_the_tasks() -> None:
    with Flow("argument") as flow:
        out = flows.chunked.map([1, 2, 3], batch_size=unmapped(10))
    state = flow.run()
    assert state.result[out].result == [10, 20, 30]


def test_the_automatic_batch_size_follows_the_map_and_the_workers() -> None:
    from flowcore.engine.batches import batch_size
    from flowcore.executors import LocalExecutor

    executor = LocalDaskExecutor("threads", num_workers=2)
    with executor.start():
        assert batch_size(flows.inc, 1_000_000, executor, {}) == 1000
        assert batch_size(flows.inc, 2_000, executor, {}) == 250
        assert batch_size(flows.inc, 50, executor, {}) == 1  # 7 a call: too few to pay
        assert batch_size(flows.inc, 50, executor, {"map_batch_size": 5}) == 5
        mapped = flows.inc.copy(map_batch_size=3)
        assert batch_size(mapped, 50, executor, {"map_batch_size": 5}) == 3
    assert batch_size(flows.inc, 1_000_000, LocalExecutor(), {}) == 1
    assert batch_size(flows.inc, 1_000_000, LocalDaskExecutor("sync"), {}) == 1


def test_a_map_of_one_child_per_call_over_a_batched_map() -> None:
    with Flow("mixed") as flow:
        first = flows.inc.map(list(range(30)), batch_size=7)
        second = flows.inc.map(first, batch_size=1)
        pairs = flows.pair.map(list(range(30)), batch_size=7)
        third = flows.inc.map(flatten(pairs), batch_size=4)
        summed = flows.total(first)
    state = run(flow, LocalDaskExecutor("threads", num_workers=2))
    assert type(state.result[second].map_states) is list
    assert state.result[second].result == [x + 2 for x in range(30)]
    assert isinstance(state.result[third].map_states, ChildStates)
    assert state.result[third].result == [y + 1 for x in range(30) for y in (x, 10 * x)]
    assert state.result[summed].result == sum(range(1, 31))


@task
def interrupt_at_first(x: int, where: str, driver: int) -> int:
    """Mark that child ``x`` started (a file in ``where``); the first child sends SIGINT
    to the ``driver`` process and waits (up to 60 s) for the file ``stopping``, which the
    driver writes once its session is stopping (its cancellation event cleared)."""
    Path(where, str(x)).touch()
    if x == 0:
        os.kill(driver, signal.SIGINT)
        deadline = time.monotonic() + 60
        while not Path(where, "stopping").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return x


class _MarkStopping(logging.Handler):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Stopping executor"):
            self.path.touch()


@pytest.fixture(params=["worker-processes", "in-process"])
def cluster_address(request: Any, local_cluster: Any) -> Iterator[str]:
    if request.param == "worker-processes":
        yield local_cluster.scheduler_address
        return
    from distributed import LocalCluster

    with LocalCluster(**local_cluster_kwargs(processes=False, n_workers=1)) as cluster:
        yield cluster.scheduler_address


def test_an_interrupt_stops_a_running_batch_between_children(
    cluster_address: str, tmp_path: Path
) -> None:
    """Ctrl-C while a batch runs on a cluster at an address: the session clears its
    cancellation event, and the batch starts none of its children after the one running
    (docs/executors.md: runs not yet started do nothing), instead of running all 20."""
    with Flow("interrupted-batch") as flow:
        interrupt_at_first.map(
            list(range(20)), unmapped(str(tmp_path)), unmapped(os.getpid()), batch_size=20
        )
    handler = _MarkStopping(tmp_path / "stopping")
    logger = get_logger("DaskExecutor")
    logger.addHandler(handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            flow.run(executor=DaskExecutor(address=cluster_address))
    finally:
        logger.removeHandler(handler)
    assert (tmp_path / "stopping").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "stopping"]
