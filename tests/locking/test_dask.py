"""DaskLockManager on a real LocalCluster: tasks on two worker processes contend for a key.

The manager travels to the workers pickled (without its client) and finds the scheduler
through the worker running the task. Worker addresses are looked up in every test: the
test that kills a worker leaves a restarted one with a new address.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from flowcore.locking import DaskLockManager
from tests.locking.conftest import worker_addresses

WAIT = 30.0


def _critical_section(
    manager: DaskLockManager, key: str, holder: str, marker: str
) -> dict[str, Any]:
    """Hold ``key`` around a section that notices any other process inside it."""
    assert manager.acquire_lock(key, holder, acquire_timeout=WAIT)
    assert manager.is_lock_holder(key, holder)
    entered = time.time()
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        overlapped = True
    else:
        overlapped = False
        os.close(fd)
        time.sleep(0.2)
        os.unlink(marker)
    left = time.time()
    manager.release_lock(key, holder)
    return {"pid": os.getpid(), "entered": entered, "left": left, "overlapped": overlapped}


def _acquire(manager: DaskLockManager, key: str, holder: str, timeout: float | None) -> list[Any]:
    return [manager.acquire_lock(key, holder, acquire_timeout=timeout), os.getpid()]


def _release(manager: DaskLockManager, key: str, holder: str) -> str:
    try:
        manager.release_lock(key, holder)
    except ValueError as exc:
        return str(exc)
    return "released"


def _hold_and_work(manager: DaskLockManager, key: str, seconds: float) -> list[Any]:
    """A task that holds ``key`` under a lease of 0.6 s for ``seconds``; renewal runs on a
    thread of its own, which must still find this task's worker."""
    with manager.hold(key, "run-a", acquire_timeout=WAIT, hold_timeout=0.6) as lease:
        assert manager.is_lock_holder(key, "run-a")
        time.sleep(seconds)
        worked_until = time.time()
    return [lease.lost, worked_until]


def _on(client: Any, worker: str, fn: Any, *args: Any) -> Any:
    return client.submit(fn, *args, workers=[worker], allow_other_workers=False, pure=False).result(
        timeout=60
    )


@pytest.mark.slow
def test_tasks_on_two_workers_hold_the_key_one_at_a_time(
    dask_client: Any, key: str, tmp_path: Path
) -> None:
    manager = DaskLockManager(dask_client)
    marker = str(tmp_path / "inside")
    first, second = worker_addresses(dask_client)
    assert manager.acquire_lock(key, "test")  # both tasks start while the key is taken

    futures = [
        dask_client.submit(
            _critical_section, manager, key, f"run-{i}", marker,
            workers=[worker], allow_other_workers=False, pure=False,
        )
        for i, worker in enumerate([first, second])
    ]  # fmt: skip
    manager.release_lock(key, "test")
    one, two = sorted(dask_client.gather(futures, errors="raise"), key=lambda r: r["entered"])

    assert one["pid"] != two["pid"]
    assert not one["overlapped"] and not two["overlapped"]
    assert one["left"] <= two["entered"]
    assert not manager.is_locked(key)


def test_a_lock_taken_in_a_task_belongs_to_that_worker_process(dask_client: Any, key: str) -> None:
    manager = DaskLockManager(dask_client)
    first, second = worker_addresses(dask_client)
    assert _on(dask_client, first, _acquire, manager, key, "run-a", 0)[0] is True

    assert manager.is_locked(key)  # the scheduler sees it from everywhere
    assert not manager.is_lock_holder(key, "run-a")  # the lease lives in the worker
    assert _on(dask_client, second, _acquire, manager, key, "run-b", 0)[0] is False
    assert "in this process" in _on(dask_client, second, _release, manager, key, "run-a")
    with pytest.raises(ValueError, match="run-a"):
        manager.release_lock(key, "run-a")

    assert _on(dask_client, first, _acquire, manager, key, "run-a", 0)[0] is True  # re-entry
    assert _on(dask_client, first, _release, manager, key, "run-a") == "released"
    assert not manager.is_locked(key)


@pytest.mark.slow
def test_a_killed_worker_frees_its_key_after_the_lease_timeout(dask_client: Any, key: str) -> None:
    manager = DaskLockManager(dask_client)  # hold timeout 300 s: only the lease timeout frees it
    first, _ = worker_addresses(dask_client)
    acquired, pid = _on(dask_client, first, _acquire, manager, key, "run-a", 0)
    assert acquired is True
    assert manager.acquire_lock(key, "test", acquire_timeout=0) is False

    os.kill(pid, signal.SIGKILL)

    assert manager.acquire_lock(key, "test", acquire_timeout=WAIT) is True
    manager.release_lock(key, "test")
    worker_addresses(dask_client)  # the nanny has restarted the worker


def test_the_default_client_or_an_error(dask_client: Any, key: str) -> None:
    manager = DaskLockManager()  # the fixture's client is not the default one
    with pytest.raises(RuntimeError, match="DaskLockManager needs a Dask cluster"):
        manager.is_locked(key)

    with dask_client.as_current():
        assert manager.acquire_lock(key, "run-a", acquire_timeout=0)
        assert DaskLockManager(dask_client).is_lock_holder(key, "run-a")
        manager.release_lock(key, "run-a")


def test_pickles_without_its_client(dask_client: Any) -> None:
    manager = DaskLockManager(dask_client, default_hold_timeout=9)
    address = dask_client.scheduler.address
    assert repr(manager) == f"DaskLockManager(client=<Client {address}>, default_hold_timeout=9.0)"

    copy = pickle.loads(pickle.dumps(manager))

    assert copy.client is None
    assert repr(copy) == "DaskLockManager(client=None, default_hold_timeout=9.0)"


@pytest.mark.slow
def test_a_lease_held_in_a_task_is_renewed_on_the_worker(dask_client: Any, key: str) -> None:
    manager = DaskLockManager(dask_client)
    first, _ = worker_addresses(dask_client)
    future = dask_client.submit(
        _hold_and_work, manager, key, 2.0, workers=[first], allow_other_workers=False, pure=False
    )
    deadline = time.monotonic() + WAIT
    while not manager.is_locked(key) and not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)

    attempts, taken_at = 0, []
    while not future.done():
        attempts += 1
        if manager.acquire_lock(key, "test", acquire_timeout=0):
            taken_at.append(time.time())  # legitimate once the task has released the key
            manager.release_lock(key, "test")
        time.sleep(0.02)

    lost, worked_until = future.result(timeout=60)
    assert lost is False
    assert attempts > 10
    assert [t for t in taken_at if t <= worked_until] == []
