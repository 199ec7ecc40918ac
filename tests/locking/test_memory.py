"""MemoryLockManager: one table per process, no pickling, copies are the manager itself."""

from __future__ import annotations

import copy
import pickle
import threading

import cloudpickle
import pytest

from flowcore.locking import MemoryLockManager


def test_every_instance_shares_the_process_table(key: str) -> None:
    first, second = MemoryLockManager(), MemoryLockManager(default_hold_timeout=5)

    assert first.acquire_lock(key, "run-a")

    assert second.is_lock_holder(key, "run-a")
    assert second.acquire_lock(key, "run-b", acquire_timeout=0) is False
    second.release_lock(key, "run-a")  # identity is the holder, not the manager instance
    assert not first.is_locked(key)


def test_threads_of_one_holder_share_the_lock(key: str) -> None:
    manager = MemoryLockManager()
    assert manager.acquire_lock(key, "run-a")
    outcome: list[bool] = []
    thread = threading.Thread(
        target=lambda: outcome.append(manager.acquire_lock(key, "run-a", acquire_timeout=0))
    )
    thread.start()
    thread.join(10)
    assert outcome == [True]
    manager.release_lock(key, "run-a")


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_pickling_is_a_type_error_that_names_the_alternatives(dumps: object) -> None:
    with pytest.raises(TypeError, match="MemoryLockManager cannot be pickled") as info:
        dumps(MemoryLockManager())  # type: ignore[operator]
    assert "FileSystemLockManager" in str(info.value)
    assert "RedisLockManager" in str(info.value)
    assert "DaskLockManager" in str(info.value)


def test_copies_are_the_manager_itself() -> None:
    manager = MemoryLockManager(default_hold_timeout=7)
    holder = {"policy": manager}
    assert copy.copy(manager) is manager
    assert copy.deepcopy(holder)["policy"] is manager


def test_repr() -> None:
    assert repr(MemoryLockManager()) == "MemoryLockManager(default_hold_timeout=300.0)"
    assert repr(MemoryLockManager(None)) == "MemoryLockManager(default_hold_timeout=None)"
