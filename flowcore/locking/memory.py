"""Locks for the threads of one process.

One table per process, shared by every :class:`MemoryLockManager` (so two managers built
in two places still exclude each other, as Prefect 3's singleton does)::

    _LOCKS   {key: (holder, deadline)}   deadline: time.monotonic() value, or None (no expiry)
    _CHANGED a Condition over the table; notified on every acquire and release

``renew_lock`` replaces the entry's deadline.

An entry whose deadline has passed is expired: it is treated as absent and dropped by the
next call that looks at it. Waiters sleep on the Condition, but never past the deadline of
the lock they wait for, so expiry wakes them without a timer thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any, NoReturn, SupportsIndex

from flowcore.locking.base import DEFAULT_HOLD_TIMEOUT, LockManager, check_acquire_timeout

__all__ = ["MemoryLockManager"]

_LOCKS: dict[str, tuple[str, float | None]] = {}
_CHANGED = threading.Condition()


def _holder(key: str, now: float) -> tuple[str, float | None] | None:
    """The live entry of ``key`` (call with ``_CHANGED`` held); drops an expired one."""
    entry = _LOCKS.get(key)
    if entry is not None and entry[1] is not None and entry[1] <= now:
        del _LOCKS[key]
        return None
    return entry


def _wait(entry_deadline: float | None, deadline: float | None, now: float) -> bool:
    """Sleep on the Condition until a change, the entry's expiry or ``deadline``.

    Returns False (without sleeping) when ``deadline`` has passed.
    """
    if deadline is not None and deadline <= now:
        return False
    ends = [d for d in (entry_deadline, deadline) if d is not None]
    _CHANGED.wait(min(ends) - now if ends else None)
    return True


class MemoryLockManager(LockManager):
    """Locks shared by the threads of this process (one table for every instance).

    It cannot coordinate processes, so it refuses to be pickled: a task that carries it
    cannot be sent to a process pool or a Dask worker (use :class:`FileSystemLockManager`,
    :class:`RedisLockManager` or :class:`DaskLockManager` there). Copies are the manager
    itself.

    Args:
        default_hold_timeout: seconds until an unreleased lock expires when ``acquire_lock``
            is given no ``hold_timeout``; None: never.

    Example:
        >>> locks = MemoryLockManager()
        >>> locks.acquire_lock("doctest-key", holder="run-1")
        True
        >>> locks.acquire_lock("doctest-key", holder="run-2", acquire_timeout=0)
        False
        >>> locks.release_lock("doctest-key", holder="run-1")
        >>> locks.is_locked("doctest-key")
        False
        >>> with locks.hold("doctest-key", holder="run-1", hold_timeout=30) as lease:
        ...     locks.is_lock_holder("doctest-key", "run-1")  # renewed while the block runs
        True
        >>> lease.released, lease.lost, locks.is_locked("doctest-key")
        (True, False, False)
    """

    def __init__(self, default_hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT) -> None:
        super().__init__(default_hold_timeout)

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        hold = self._hold_seconds(hold_timeout)
        timeout = check_acquire_timeout(acquire_timeout)
        with _CHANGED:
            now = time.monotonic()
            deadline = None if timeout is None else now + timeout
            while True:
                entry = _holder(key, now)
                if entry is None:
                    _LOCKS[key] = (holder, None if hold is None else now + hold)
                    _CHANGED.notify_all()
                    return True
                if entry[0] == holder:
                    return True
                if not _wait(entry[1], deadline, now):
                    return False
                now = time.monotonic()

    def renew_lock(self, key: str, holder: str, hold_timeout: float | None = None) -> bool:
        hold = self._hold_seconds(hold_timeout)
        with _CHANGED:
            now = time.monotonic()
            entry = _holder(key, now)
            if entry is None or entry[0] != holder:
                return False
            _LOCKS[key] = (holder, None if hold is None else now + hold)
            return True  # waiters wake at the old deadline, see the lock held and sleep on

    def release_lock(self, key: str, holder: str) -> None:
        with _CHANGED:
            entry = _holder(key, time.monotonic())
            if entry is None or entry[0] != holder:
                raise ValueError(f"No lock on key {key!r} is held by holder {holder!r}")
            del _LOCKS[key]
            _CHANGED.notify_all()

    def is_locked(self, key: str) -> bool:
        with _CHANGED:
            return _holder(key, time.monotonic()) is not None

    def is_lock_holder(self, key: str, holder: str) -> bool:
        with _CHANGED:
            entry = _holder(key, time.monotonic())
            return entry is not None and entry[0] == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        timeout = check_acquire_timeout(timeout)
        with _CHANGED:
            now = time.monotonic()
            deadline = None if timeout is None else now + timeout
            while True:
                entry = _holder(key, now)
                if entry is None:
                    return True
                if not _wait(entry[1], deadline, now):
                    return False
                now = time.monotonic()

    def __repr__(self) -> str:
        return f"MemoryLockManager(default_hold_timeout={self.default_hold_timeout!r})"

    def __copy__(self) -> MemoryLockManager:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> MemoryLockManager:
        return self

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError(
            "MemoryLockManager cannot be pickled: its locks live in this process's memory, "
            "so a copy in another process would exclude nothing. Across processes use "
            "FileSystemLockManager(lock_dir) (one host), RedisLockManager or DaskLockManager."
        )
