"""DaskExecutor on real clusters (reference 10; SPEC B6).

Clusters: the session's ``local_cluster`` (a LocalCluster of two worker processes), the
``dask_cli_cluster`` (a ``dask scheduler`` + ``dask worker --nworkers 2`` process pair on
127.0.0.1), and small clusters made by single tests (cluster creation counting, a worker
killed mid-run).
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster

from flowcore import Flow, task, unmapped
from flowcore.engine.flow_runner import FlowRunner
from flowcore.engine.state import Crashed, Failed, State, Success, TriggerFailed
from flowcore.executors import DaskExecutor
from flowcore.executors.dask import DaskTaskError
from flowcore.utilities.configuration import set_temporary_config
from flowcore.utilities.debug import raise_on_exception
from tests.executors import flows
from tests.executors.conftest import DaskCLICluster, local_cluster_kwargs
from tests.executors.test_local import ExecutorContract
from tests.servers import free_port

pytestmark = pytest.mark.timeout(180)


def run(flow: Flow, executor: DaskExecutor, **kwargs: Any) -> State:
    state = flow.run(executor=executor, **kwargs)
    assert state is not None
    return state


@pytest.fixture
def on_local_cluster(local_cluster: Any) -> DaskExecutor:
    return DaskExecutor(address=local_cluster.scheduler_address)


class TestDaskExecutorMeetsTheInterfaceContract(ExecutorContract):
    """The interface-level contract of ``test_local.py`` (submit, wait, start, pickling)."""

    @pytest.fixture
    def executor(self, on_local_cluster: DaskExecutor) -> DaskExecutor:
        return on_local_cluster


# -- construction ---------------------------------------------------------------------------


def test_address_and_cluster_arguments_exclude_each_other() -> None:
    message = "Cannot specify `address` and `cluster_class`/`cluster_kwargs`"
    with pytest.raises(ValueError, match=re.escape(message)):
        DaskExecutor(address="tcp://127.0.0.1:1", cluster_class=LocalCluster)
    with pytest.raises(ValueError, match=re.escape(message)):
        DaskExecutor(address="tcp://127.0.0.1:1", cluster_kwargs={"n_workers": 1})


def test_address_defaults_to_the_config() -> None:
    with set_temporary_config({"engine.executor.dask.address": "tcp://127.0.0.1:8786"}):
        executor = DaskExecutor()
        with pytest.raises(ValueError, match="Cannot specify"):
            DaskExecutor(cluster_kwargs={})
    assert executor.address == "tcp://127.0.0.1:8786"
    assert executor.cluster_class is None
    with set_temporary_config({"engine.executor.dask.address": ""}):
        assert DaskExecutor().address is None


def test_temporary_cluster_defaults() -> None:
    executor = DaskExecutor()
    assert executor.address is None
    assert executor.cluster_class is LocalCluster
    assert executor.cluster_kwargs == {"silence_logs": logging.CRITICAL}
    assert executor.adapt_kwargs == {}
    assert executor.client_kwargs == {"set_as_default": False}
    assert DaskExecutor(debug=True).cluster_kwargs == {"silence_logs": logging.WARNING}
    with set_temporary_config({"debug": True}):
        assert DaskExecutor().cluster_kwargs == {"silence_logs": logging.WARNING}
    given = {"n_workers": 1, "silence_logs": logging.INFO}
    assert DaskExecutor(cluster_kwargs=given).cluster_kwargs == given
    assert DaskExecutor(client_kwargs={"set_as_default": True}).client_kwargs == {
        "set_as_default": True
    }


def test_cluster_class_from_an_import_path() -> None:
    assert DaskExecutor(cluster_class="distributed.LocalCluster").cluster_class is LocalCluster
    with pytest.raises(ImportError, match="no.such.Cluster"):
        DaskExecutor(cluster_class="no.such.Cluster")
    custom = DaskExecutor(cluster_class=lambda **kwargs: None, cluster_kwargs={"a": 1})
    assert custom.cluster_kwargs == {"a": 1}


def test_submit_and_wait_need_a_session() -> None:
    executor = DaskExecutor(address="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="has not been started"):
        executor.submit(flows.plain_double, 1)
    with pytest.raises(ValueError, match="has not been started"):
        executor.wait([])


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    executor = DaskExecutor(address=address, client_kwargs={"timeout": "1s"})
    with pytest.raises(
        DaskTaskError, match=f"could not connect to the Dask scheduler at {address}"
    ):
        with executor.start():
            pass


def test_pickles_without_its_client(on_local_cluster: DaskExecutor) -> None:
    with on_local_cluster.start():
        copy = pickle.loads(pickle.dumps(on_local_cluster))
        assert on_local_cluster.client is not None
    assert copy.client is None and copy.address == on_local_cluster.address
    with copy.start():
        assert copy.wait(copy.submit(flows.plain_double, 4)) == 8


# -- submitting -------------------------------------------------------------------------------


def test_keys_name_the_task_and_map_index(on_local_cluster: DaskExecutor) -> None:
    with Flow("keys") as flow:
        single = flows.dask_key()
        children = flows.dask_key.map([5, 6])
    state = run(flow, on_local_cluster)
    hex32 = "[0-9a-f]{32}"
    assert re.fullmatch(f"dask_key-{hex32}", state.result[single].result)
    first, second = state.result[children].result
    assert re.fullmatch(f"dask_key-0-{hex32}", first)
    assert re.fullmatch(f"dask_key-1-{hex32}", second)


def test_submit_and_wait_nested_structures(on_local_cluster: DaskExecutor) -> None:
    with on_local_cluster.start():
        first = on_local_cluster.submit(flows.plain_double, 1, extra_context={"task_name": "a"})
        second = on_local_cluster.submit(flows.plain_double, x=first)
        nested = on_local_cluster.submit(sum, [first, second])
        assert on_local_cluster.wait({"x": [first, (second, nested)]}) == {"x": [2, (4, 6)]}


def test_a_bad_resource_tag_names_the_task(on_local_cluster: DaskExecutor) -> None:
    with on_local_cluster.start():
        with pytest.raises(
            ValueError, match="Task 'gpu-job': tag 'dask-resource:GPU' is not of the form"
        ):
            on_local_cluster.submit(
                flows.plain_double,
                1,
                extra_context={"task_name": "gpu-job", "task_tags": {"dask-resource:GPU"}},
            )


def test_a_resource_no_worker_offers_is_reported(
    on_local_cluster: DaskExecutor, logs: pytest.LogCaptureFixture
) -> None:
    with on_local_cluster.start():
        on_local_cluster.submit(
            flows.plain_double,
            1,
            extra_context={"task_name": "tpu-job", "task_tags": {"dask-resource:TPU=1"}},
        )  # never waited for: the session drops it
    [record] = [r for r in logs.records if "TPU" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "Task 'tpu-job' needs Dask worker resources ['TPU']" in record.getMessage()


def test_intermediate_results_are_released_when_nobody_needs_them(
    on_local_cluster: DaskExecutor,
) -> None:
    with Flow("release") as flow:
        first = flows.inc.copy(name="first")(1)
        second = flows.inc.copy(name="second")(first)
        third = flows.inc.copy(name="third")(second)
        seen = flows.keys_in_cluster_memory(third, ["first", "second"])
    state = FlowRunner(flow).run(executor=on_local_cluster, return_tasks=[seen])
    assert set(state.result) == {seen}
    names = {key.rsplit("-", 1)[0] for key in state.result[seen].result}
    assert {"first", "second"}.isdisjoint(names)
    assert "third" in names
    with Flow("keep") as flow:
        first = flows.inc.copy(name="first")(1)
        second = flows.inc.copy(name="second")(first)
        seen = flows.keys_in_cluster_memory(second, [])
    everything = run(flow, on_local_cluster)  # flow.run returns every state: all are kept
    names = {key.rsplit("-", 1)[0] for key in everything.result[seen].result}
    assert {"first", "second"} <= names


def test_unmapped_upstreams_stay_on_the_cluster(on_local_cluster: DaskExecutor) -> None:
    with Flow("unmapped") as flow:
        payload = flows.make_payload(100)
        out = flows.payload_plus.map([1, 2, 3], unmapped(payload))
    flows.PICKLED_HERE[0] = 0
    state = run(flow, on_local_cluster)
    assert state.result[out].result == [101, 102, 103]
    assert state.result[payload].result.n == 100  # gathered once, at the end
    assert flows.PICKLED_HERE[0] == 0  # never sent back from the client to the workers


# -- errors -----------------------------------------------------------------------------------


def test_an_unpicklable_result_fails_the_task_on_its_own_state(
    on_local_cluster: DaskExecutor,
) -> None:
    with Flow("unpicklable") as flow:
        lock = flows.make_lock()
        after = flows.inc(lock)
        other = flows.inc(1)
    state = run(flow, on_local_cluster)
    assert type(state) is Failed
    assert type(state.result[lock]) is Failed
    assert isinstance(state.result[lock].result, DaskTaskError)
    assert state.result[lock].message.startswith(
        "Task 'make_lock': its result cannot be pickled to leave the worker process "
        "(TypeError: cannot pickle '_thread.lock' object)"
    )
    assert type(state.result[after]) is TriggerFailed
    assert state.result[other].result == 2


def test_unpicklable_inputs_name_the_task(on_local_cluster: DaskExecutor) -> None:
    lock = threading.Lock()
    with Flow("unsendable") as flow:
        flows.describe(lock)
    state = run(flow, on_local_cluster)
    assert type(state) is Failed
    assert "Task 'describe': its inputs cannot be sent to the Dask cluster (TypeError:" in str(
        state.result
    )


def test_after_a_batch_could_not_be_sent_the_session_refuses_to_wait(
    on_local_cluster: DaskExecutor,
) -> None:
    with on_local_cluster.start():
        sent = on_local_cluster.submit(flows.plain_double, 1)
        lost = on_local_cluster.submit(flows.plain_double, threading.Lock())
        with pytest.raises(DaskTaskError, match="Task 'plain_double': its inputs cannot be sent"):
            on_local_cluster.wait(sent)
        with pytest.raises(DaskTaskError, match="An earlier batch of this session was not sent"):
            on_local_cluster.wait(lost)  # instead of waiting forever
    with on_local_cluster.start():
        assert on_local_cluster.wait(on_local_cluster.submit(flows.plain_double, 2)) == 4


def test_code_the_workers_cannot_import_fails_the_task_on_its_own_state(
    on_local_cluster: DaskExecutor, tmp_path: Path
) -> None:
    (tmp_path / "client_only_module.py").write_text("def triple(x):\n    return 3 * x\n")
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("client_only_module")
    finally:
        sys.path.remove(str(tmp_path))
    try:
        with Flow("unimportable") as flow:
            tripled = task(module.triple)(2)
            other = flows.inc(1)
        state = run(flow, on_local_cluster)
    finally:
        sys.modules.pop("client_only_module", None)
    assert type(state) is Failed
    assert type(state.result[tripled]) is Failed
    assert isinstance(state.result[tripled].result, DaskTaskError)
    assert state.result[other].result == 2
    message = state.result[tripled].message
    assert message.startswith(
        "Task 'triple': a Dask worker cannot load the task (ModuleNotFoundError: No module "
        "named 'client_only_module')"
    )
    assert "importable on the workers" in message


def test_a_task_error_with_raise_on_exception_passes_through(
    on_local_cluster: DaskExecutor,
) -> None:
    with Flow("raise") as flow:
        flows.fail_on.map([1, 3], unmapped(3))
    with raise_on_exception(), pytest.raises(flows.Boom, match="bad item 3"):
        run(flow, on_local_cluster)


# -- sessions and clusters --------------------------------------------------------------------


def test_retry_passes_share_one_temporary_cluster(logs: pytest.LogCaptureFixture) -> None:
    created: list[dict[str, Any]] = []

    def counting_cluster(**kwargs: Any) -> LocalCluster:
        created.append(kwargs)
        return LocalCluster(**kwargs)

    executor = DaskExecutor(
        cluster_class=counting_cluster,
        cluster_kwargs=local_cluster_kwargs(n_workers=1, processes=False),
    )
    with Flow("retries") as flow:
        flaky = flows.flaky(1, 3)
    state = run(flow, executor)
    assert state.result[flaky].result == (1, 3)
    assert logs.messages.count("Beginning Flow run for 'retries'") == 3
    assert len(created) == 1
    creating = [m for m in logs.messages if m.startswith("Creating a new Dask cluster with `")]
    assert creating == [
        "Creating a new Dask cluster with `tests.executors.test_dask."
        "test_retry_passes_share_one_temporary_cluster.<locals>.counting_cluster`..."
    ]
    assert executor.client is None


def test_adapt_kwargs_make_the_cluster_adaptive() -> None:
    calls: list[dict[str, Any]] = []

    class AdaptiveCluster(LocalCluster):
        def adapt(self, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return super().adapt(**kwargs)

    executor = DaskExecutor(
        cluster_class=AdaptiveCluster,
        cluster_kwargs=local_cluster_kwargs(n_workers=1, processes=False),
        adapt_kwargs={"minimum": 1, "maximum": 2},
    )
    with Flow("adaptive") as flow:
        out = flows.inc(1)
    assert run(flow, executor).result[out].result == 2
    assert calls == [{"minimum": 1, "maximum": 2}]


def test_tasks_run_in_daemonic_worker_processes(on_local_cluster: DaskExecutor) -> None:
    with Flow("where") as flow:
        out = flows.where()
    place = run(flow, on_local_cluster).result[out].result
    assert place["pid"] != os.getpid()
    assert place["daemon"] is True  # a nanny's worker process: no child processes allowed
    assert place["main_thread"] is False  # so timeouts use the watched-thread path


# -- a dask scheduler + dask worker process pair ----------------------------------------------


def test_cli_cluster_runs_a_mapped_flow(dask_cli_cluster: DaskCLICluster) -> None:
    executor = DaskExecutor(address=dask_cli_cluster.address)
    flow, first, second, reduced = flows.map_of_map_flow(30)
    state = run(flow, executor)
    assert type(state) is Success
    assert state.result[second].result == [101 + i for i in range(30)]
    assert state.result[reduced].result == sum(101 + i for i in range(30))


def test_cli_workers_import_the_test_helpers(dask_cli_cluster: DaskCLICluster) -> None:
    executor = DaskExecutor(address=dask_cli_cluster.address)
    by_reference = task(flows.plain_double)  # pickled as "tests.executors.flows.plain_double"
    with Flow("imports") as flow:
        doubled = by_reference.map([1, 2])
        failed = flows.fail_on(4, 4)
        place = flows.where()
    state = run(flow, executor)
    assert state.result[doubled].result == [2, 4]
    assert type(state.result[failed].result) is flows.Boom
    assert state.result[place].result["pid"] != os.getpid()


def test_cli_workers_honour_resource_tags(dask_cli_cluster: DaskCLICluster) -> None:
    executor = DaskExecutor(address=dask_cli_cluster.address)
    gpu_task = flows.dask_resources.copy(tags=["dask-resource:GPU=1"])
    with Flow("resources") as flow:
        tagged = gpu_task()
        plain = flows.dask_resources()
    state = run(flow, executor)
    assert state.result[tagged].result == {"GPU": 1.0}
    assert state.result[plain].result == {}


# -- faults and scale -------------------------------------------------------------------------


def test_a_worker_killed_mid_map_does_not_lose_the_run(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    markers = tmp_path / "done"
    markers.mkdir()
    with LocalCluster(**local_cluster_kwargs(threads_per_worker=1)) as cluster:
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            victim = sorted(client.run(os.getpid).values())[0]
        killed = threading.Event()

        def kill_when_started() -> None:
            deadline = time.monotonic() + 60
            while len(list(markers.iterdir())) < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(victim, signal.SIGKILL)
            killed.set()

        killer = threading.Thread(target=kill_when_started, daemon=True)
        with Flow("fault") as flow:
            items = flows.slow_inc.map(list(range(40)), unmapped(str(markers)))
            summed = flows.total(items)
        killer.start()
        state = run(flow, DaskExecutor(address=cluster.scheduler_address))
        killer.join(timeout=60)
    assert killed.is_set()
    assert type(state) is Success
    assert state.result[items].result == list(range(1, 41))
    assert state.result[summed].result == sum(range(1, 41))
    finished_by_victim = [p for p in markers.iterdir() if p.name.endswith(f"-{victim}")]
    assert len(finished_by_victim) < 40  # the killed worker did not run everything
    assert any("left the cluster" in m for m in logs.messages)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_map_of_20000_items(on_local_cluster: DaskExecutor) -> None:
    flow, mapped, reduced = flows.map_reduce_flow(list(range(20_000)))
    state = run(flow, on_local_cluster)
    assert type(state) is Success
    assert len(state.result[mapped].map_states) == 20_000
    assert state.result[reduced].result == sum(range(1, 20_001))


def test_on_a_cluster_at_an_address_its_allowed_failures_apply() -> None:
    """No crash policy on a cluster flowcore did not create: after the cluster's
    ``allowed-failures`` (0 here) Dask gives up with KilledWorker, and the task is Crashed."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(**local_cluster_kwargs(n_workers=1, threads_per_worker=1))
    with cluster:
        with Flow("crash") as flow:
            crashing = flows.crash_worker()
            other = flows.inc(1)
        state = run(flow, DaskExecutor(address=cluster.scheduler_address))
    assert type(state) is Failed
    assert type(state.result[crashing]) is Crashed
    assert state.result[crashing].message.startswith(
        "Task 'crash_worker': its Dask worker died while it ran (KilledWorker:"
    )
    assert type(state.result[other]) in (Success, Crashed)  # queued on the same worker
