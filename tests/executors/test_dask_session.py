"""DaskExecutor sessions as Prefect 1.4.1 runs them: the performance report, worker events,
the cancellation event and the end of a session that leaves early (reference 10).

Each test makes its own small cluster (in-process workers, or worker processes at an
address) so what it watches - workers joining, calls queued behind a blocked one - is its
own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import LocalCluster

from flowcore.engine.state import Success
from flowcore.executors import DaskExecutor
from tests.executors import flows
from tests.executors.conftest import local_cluster_kwargs

pytestmark = pytest.mark.timeout(180)


class RecordingExecutor(DaskExecutor):
    """Records what ``on_worker_status_changed`` is called with (then logs as usual)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.changes: list[tuple[str, Any]] = []

    def on_worker_status_changed(self, op: str, message: Any) -> None:
        self.changes.append((op, message))
        super().on_worker_status_changed(op, message)


def in_process(**overrides: Any) -> dict[str, Any]:
    return local_cluster_kwargs(processes=False, **overrides)


@pytest.fixture
def one_thread_cluster() -> Iterator[Any]:
    """A LocalCluster of one worker process with one thread, reached by address."""
    with LocalCluster(**local_cluster_kwargs(n_workers=1, threads_per_worker=1)) as cluster:  # type: ignore[no-untyped-call]
        yield cluster


# -- performance report -----------------------------------------------------------------------


def test_performance_report_is_written_as_html(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    executor = DaskExecutor(
        cluster_kwargs=in_process(n_workers=1), performance_report_path=str(path)
    )
    flow, mapped, _ = flows.map_reduce_flow([1, 2, 3])
    state = flow.run(executor=executor)
    assert type(state) is Success
    html = executor.performance_report
    assert html == path.read_text(encoding="utf-8")
    assert "<html" in html.lower() and "Dask Performance Report" in html


def test_performance_report_without_a_path_is_empty(logs: pytest.LogCaptureFixture) -> None:
    assert DaskExecutor(address="tcp://127.0.0.1:1").performance_report == ""
    assert "not configured to generate performance report" in logs.text


# -- worker events ----------------------------------------------------------------------------


def test_workers_added_and_removed_are_logged(logs: pytest.LogCaptureFixture) -> None:
    executor = RecordingExecutor(cluster_kwargs=in_process(n_workers=1))
    with executor.start():
        cluster = executor.client.cluster
        cluster.scale(2)
        flows.wait_until(lambda: any(op == "add" for op, _ in executor.changes), what="an add")
        added = next(m for op, m in executor.changes if op == "add")
        (address,) = added["workers"]
        flows.wait_until(lambda: f"Worker {address} added" in logs.text, what="the log line")
        cluster.scale(1)
        flows.wait_until(lambda: "removed" in logs.text, what="a removal")
    removed = [m for op, m in executor.changes if op == "remove"]
    assert removed and all(isinstance(m, str) for m in removed)
    assert any(
        r.levelno == logging.DEBUG and r.getMessage() == f"Worker {removed[0]} removed"
        for r in logs.records
    )
    assert "left the cluster" not in logs.text  # it held no task runs: no warning


@pytest.mark.parametrize("watch, expect_events", [(None, False), (True, True)])
def test_watching_is_off_by_default_on_adaptive_clusters(
    watch: bool | None, expect_events: bool
) -> None:
    executor = RecordingExecutor(
        cluster_kwargs=in_process(n_workers=0),
        adapt_kwargs={"minimum": 1, "maximum": 1},
        watch_worker_status=watch,
    )
    with executor.start():
        executor.client.wait_for_workers(1, timeout=60)
        assert executor.wait(executor.submit(flows.plain_double, 2)) == 4
        if expect_events:
            flows.wait_until(lambda: bool(executor.changes), what="an event")
    assert bool(executor.changes) is expect_events


# -- the end of a session: cancellation event and waiting -------------------------------------


def _leave_early(executor: DaskExecutor, tmp_path: Path, logs: pytest.LogCaptureFixture) -> None:
    """Send a call that blocks and one queued behind it on the single worker thread, then
    leave the session with an error; the blocked call is let go once the session says it
    is waiting for it (and 0.2 s after it started, past the worker's event re-check)."""
    started, go, done = (str(tmp_path / name) for name in ("started", "go", "done"))

    def let_go() -> None:
        flows.wait_until(lambda: "waiting for" in logs.text, timeout=120, what="the wait")
        seen = time.monotonic()
        flows.wait_until(lambda: time.monotonic() > seen + 0.2, what="0.2 s")
        Path(go).write_text("go")

    releaser = threading.Thread(target=let_go, daemon=True)
    with pytest.raises(RuntimeError, match="left early"), executor.start():
        executor.submit(flows.block_until, started, go, done)
        executor.submit(flows.touch, str(tmp_path / "queued"))
        executor.wait(None)  # sends the buffered calls
        flows.wait_until(lambda: Path(started).exists(), what="the blocking call starting")
        releaser.start()
        raise RuntimeError("left early")
    releaser.join(timeout=60)


@pytest.mark.parametrize("where", ["address", "in-process"])
def test_leaving_early_waits_for_running_calls_and_cancels_queued_ones(
    where: str,
    one_thread_cluster: Any,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,
) -> None:
    if where == "address":
        executor = DaskExecutor(address=one_thread_cluster.scheduler_address)
    else:
        executor = DaskExecutor(cluster_kwargs=in_process(n_workers=1, threads_per_worker=1))
    _leave_early(executor, tmp_path, logs)
    assert "Stopping executor, waiting for" in logs.text
    assert (tmp_path / "done").read_text() == "done"  # the session waited for it
    assert not (tmp_path / "queued").exists()  # did nothing: the event was cleared


def test_a_call_no_worker_can_take_does_not_hold_up_the_end(
    one_thread_cluster: Any,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,
) -> None:
    """A call that needs a resource no worker offers would never finish: leaving the
    session cancels it instead of waiting for it (Prefect 1 waits forever)."""
    executor = DaskExecutor(address=one_thread_cluster.scheduler_address)
    with pytest.raises(RuntimeError, match="left early"), executor.start():
        never = executor.submit(
            flows.touch,
            str(tmp_path / "never"),
            extra_context={"task_name": "touch", "task_tags": ["dask-resource:TPU=1"]},
        )
        executor.wait(None)
        flows.wait_until(lambda: never.status == "pending", what="the call being sent")
        raise RuntimeError("left early")
    assert never.status == "cancelled"
    assert not (tmp_path / "never").exists()


def test_without_the_cancellation_event_the_session_ends_at_once(
    one_thread_cluster: Any,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,
) -> None:
    executor = DaskExecutor(
        address=one_thread_cluster.scheduler_address,
        disable_cancellation_event=True,
    )
    started, go, done = (str(tmp_path / name) for name in ("started", "go", "done"))
    with pytest.raises(RuntimeError, match="left early"), executor.start():
        executor.submit(flows.block_until, started, go, done)
        executor.wait(None)
        flows.wait_until(lambda: Path(started).exists(), what="the blocking call starting")
        raise RuntimeError("left early")
    assert not Path(done).exists()  # not waited for: still blocked on the worker
    assert "waiting for" not in logs.text
    Path(go).write_text("go")


def test_a_session_with_the_event_runs_flows_as_usual(one_thread_cluster: Any) -> None:
    flow, mapped, reduced = flows.map_reduce_flow(list(range(30)))
    state = flow.run(executor=DaskExecutor(address=one_thread_cluster.scheduler_address))
    assert type(state) is Success
    assert state.result[reduced].result == sum(range(1, 31))


def test_pickles_after_start_without_session_state(one_thread_cluster: Any) -> None:
    import pickle

    executor = DaskExecutor(address=one_thread_cluster.scheduler_address)
    with executor.start():
        assert executor._should_run is not None
        copy = pickle.loads(pickle.dumps(executor))
        assert copy.client is None and copy._should_run is None and not copy._sent
    with copy.start():
        assert copy.wait(copy.submit(flows.plain_double, 4)) == 8
