"""Leases across real processes (file system and Redis): a child process holds a lease
while it works, and another process must never get the key; a child killed while holding
one stops renewing, so its key comes free (Redis: at the hold timeout; file system: at
once, its pid is dead)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowcore.locking import FileSystemLockManager, LockManager, RedisLockManager
from tests.locking.conftest import LockProcess

HOLD = 1.0  # the child's hold timeout: its lock needs renewing three times a second
WAIT = 10.0  # bound on "eventually": generous, only reached when something is broken


@pytest.fixture(params=["filesystem", "redis"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LockManager]:
    if request.param == "filesystem":
        yield FileSystemLockManager(tmp_path / "locks")
        return
    port = request.getfixturevalue("redis_port")
    redis_manager = RedisLockManager(host="127.0.0.1", port=port)
    yield redis_manager
    redis_manager.close()


def _attempts_while(manager: LockManager, key: str, busy: Callable[[], bool]) -> list[bool]:
    """Try to take ``key`` for "run-b" (without waiting) until ``busy()`` is False; the
    outcome of every attempt (a taken key is given back at once)."""
    outcomes: list[bool] = []
    deadline = time.monotonic() + WAIT
    while busy() and time.monotonic() < deadline:
        outcomes.append(manager.acquire_lock(key, "run-b", acquire_timeout=0))
        if outcomes[-1]:
            manager.release_lock(key, "run-b")
        time.sleep(0.02)
    return outcomes


def _wait_past(seconds: float, manager: LockManager, key: str) -> list[bool]:
    """Try to take ``key`` for "run-b" for ``seconds``: the outcome of every attempt."""
    deadline = time.monotonic() + seconds
    return _attempts_while(manager, key, lambda: time.monotonic() < deadline)


@pytest.mark.slow
def test_a_working_holder_process_keeps_its_lease(
    manager: LockManager, key: str, lock_process: Callable[..., LockProcess]
) -> None:
    child = lock_process(manager, key, "run-a", hold=HOLD)
    assert child.ask("hold 0") == "held"

    child.send("work 3")  # three hold timeouts; the child's main thread sleeps
    outcomes = _attempts_while(manager, key, lambda: not child.answered())

    assert child.read() == "done"
    assert len(outcomes) > 10 and not any(outcomes)
    assert manager.is_lock_holder(key, "run-a")
    assert child.ask("unhold") == "released kept"
    assert manager.acquire_lock(key, "run-b", acquire_timeout=0) is True
    manager.release_lock(key, "run-b")
    if isinstance(manager, FileSystemLockManager):  # renewals left no temporary files
        assert sorted(p.name for p in manager.lock_dir.iterdir()) == [".guard"]


@pytest.mark.slow
def test_a_killed_lease_holder_stops_renewing_and_its_key_comes_free(
    manager: LockManager, key: str, lock_process: Callable[..., LockProcess]
) -> None:
    child = lock_process(manager, key, "run-a", hold=HOLD)
    assert child.ask("hold 0") == "held"
    assert not any(_wait_past(HOLD * 1.5, manager, key))  # renewed past its first expiry

    child.kill()

    if isinstance(manager, FileSystemLockManager):
        assert manager.acquire_lock(key, "run-b", acquire_timeout=0) is True  # dead pid
    else:  # Redis cannot see the death: the last renewal's expiry frees the key
        assert manager.acquire_lock(key, "run-b", acquire_timeout=HOLD + 5) is True
    manager.release_lock(key, "run-b")
