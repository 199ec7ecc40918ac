"""The seed's isolation example on two Dask worker processes: two tasks with one cache key
run at the same time. READ_COMMITTED lets both execute; SERIALIZABLE, with a
DaskLockManager (a distributed.Lock on the same cluster), executes one and the other
ends Cached."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowcore import Flow, task
from flowcore.cache_policies import CacheKeyFnPolicy
from flowcore.executors import DaskExecutor
from flowcore.locking.dask import DaskLockManager
from flowcore.transactions import IsolationLevel
from flowcore.utilities.configuration import set_temporary_config


def _wait_for(condition: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition never became true")
        time.sleep(0.01)


def shared_key(context: Any, inputs: dict[str, Any]) -> str:
    return f"dask-isolation-{inputs['workdir']}"


def body(workdir: str, name: str, isolation: str) -> int:
    """Runs on a worker: record the execution, then overlap (READ_COMMITTED) or hold
    until released (SERIALIZABLE)."""
    folder = Path(workdir)
    (folder / f"entered-{name}").touch()
    with open(folder / "executions.txt", "a") as fh:
        fh.write(name + "\n")
    if isolation == "READ_COMMITTED":
        _wait_for(lambda: len(list(folder.glob("entered-*"))) == 2)
    else:
        _wait_for(lambda: (folder / "release").exists())
    return 42


@pytest.fixture(scope="module")
def executor() -> Iterator[DaskExecutor]:
    executor = DaskExecutor(
        cluster_kwargs={
            "n_workers": 2,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": "127.0.0.1:0",
        }
    )
    with executor.start():
        yield executor


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["READ_COMMITTED", "SERIALIZABLE"])
def test_isolation_on_two_dask_workers(
    isolation: str, tmp_path: Path, executor: DaskExecutor
) -> None:
    policy = CacheKeyFnPolicy(shared_key).configure(
        isolation_level=IsolationLevel[isolation], lock_manager=DaskLockManager()
    )
    expensive = task(body, name="expensive", cache_policy=policy)
    with Flow("dask-isolation") as flow:
        first = expensive(str(tmp_path), "a", isolation)
        second = expensive(str(tmp_path), "b", isolation)
    outcome: dict[str, Any] = {}

    def run() -> None:
        with set_temporary_config({"home_dir": str(tmp_path / "home")}):
            outcome["state"] = flow.run(executor=executor)

    runner = threading.Thread(target=run)
    runner.start()
    if isolation == "SERIALIZABLE":
        _wait_for(lambda: bool(list(tmp_path.glob("entered-*"))))
        time.sleep(1.0)  # the other task reaches the lock while the first holds it
        (tmp_path / "release").touch()
    runner.join(timeout=120)
    assert not runner.is_alive()
    state = outcome["state"]
    assert state.is_successful(), state
    kinds = sorted(type(state.result[t]).__name__ for t in (first, second))
    executions = (tmp_path / "executions.txt").read_text().split()
    if isolation == "READ_COMMITTED":
        assert sorted(executions) == ["a", "b"] and kinds == ["Success", "Success"]
    else:
        assert len(executions) == 1 and kinds == ["Cached", "Success"]
    assert {state.result[t].result for t in (first, second)} == {42}
    assert os.path.isdir(tmp_path / "home" / "storage")
