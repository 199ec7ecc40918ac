"""The lock manager contract shared by every backend.

A lock manager hands out named, exclusive, expiring locks::

    key      what is locked (a cache key); any string
    holder   who holds it: an opaque string naming one party (flowcore uses
             "<flow run id>:<task run id>:<map index>"); identity is by holder, not by
             thread or process, so one holder may re-acquire a key it already holds
    expiry   every lock expires ``hold_timeout`` seconds after it was acquired or last
             renewed, even if it is never released (a crashed holder cannot block a key
             forever); backends that can see their holders die free a dead holder's locks
             sooner

    acquire_lock(key, holder)   free ──> held by holder      (True)
                                held by holder ──> unchanged  (True; the expiry is not renewed)
                                held by another ──> wait until free or acquire_timeout (False)
    renew_lock(key, holder)     held by holder ──> expires hold_timeout from now (True)
                                otherwise (free, expired, another's) ──> unchanged (False)
    release_lock(key, holder)   held by holder ──> free; otherwise ValueError (also after expiry)
    wait_for_lock(key)          wait until nobody holds the key (does not acquire it)

Timeouts are seconds. ``acquire_timeout`` None waits forever and 0 tries once;
``hold_timeout`` None uses the manager's ``default_hold_timeout``, and a manager whose
``default_hold_timeout`` is None hands out locks that never expire by time.

Backends, each in its own module: ``memory`` (threads of one process), ``filesystem``
(processes of one host), ``redis`` (anywhere that reaches one Redis server) and ``dask``
(tasks of one Dask cluster). tests/locking/test_contract.py runs every one of them through
the same contract.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable

__all__ = ["DEFAULT_HOLD_TIMEOUT", "LockManager"]

DEFAULT_HOLD_TIMEOUT = 300.0

# polling backends (file system, Redis, Dask queries) sleep between checks: short at first,
# so an uncontended hand-over is quick, then growing up to a cap, so waiters stay cheap
_FIRST_POLL = 0.005
_MAX_POLL = 0.1


class LockManager(abc.ABC):
    """Named exclusive locks with expiry; see the module docstring for the contract.

    Args:
        default_hold_timeout: seconds after which a lock expires when ``acquire_lock`` is given
            no ``hold_timeout``; None means such locks never expire by time.
    """

    def __init__(self, default_hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT) -> None:
        self.default_hold_timeout = _check_hold_timeout(
            default_hold_timeout, "default_hold_timeout"
        )

    @abc.abstractmethod
    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take the lock on ``key`` for ``holder``, waiting while someone else holds it.

        Args:
            key: the name of the lock.
            holder: who takes it; re-acquiring a key the same holder holds returns True.
            acquire_timeout: seconds to wait; None waits forever, 0 tries once.
            hold_timeout: seconds until the lock expires if it is not released; None uses
                ``default_hold_timeout``.

        Returns:
            True when ``holder`` holds the lock, False when ``acquire_timeout`` ran out.
        """

    @abc.abstractmethod
    def renew_lock(self, key: str, holder: str, hold_timeout: float | None = None) -> bool:
        """Make ``holder``'s lock on ``key`` expire ``hold_timeout`` seconds from now.

        Args:
            key: the name of the lock.
            holder: whose lock it must be.
            hold_timeout: seconds from now until the lock expires; None uses
                ``default_hold_timeout`` (and a manager without one makes the lock never
                expire by time).

        Returns:
            True when the lock was ``holder``'s and is renewed; False, changing nothing,
            when ``holder`` does not hold it (never did, released it, it expired, or
            someone else holds it now).
        """

    @abc.abstractmethod
    def release_lock(self, key: str, holder: str) -> None:
        """Release ``holder``'s lock on ``key``.

        Raises:
            ValueError: ``holder`` does not hold the lock (never did, released it already, or
                it expired).
        """

    @abc.abstractmethod
    def is_locked(self, key: str) -> bool:
        """Whether anyone holds an unexpired lock on ``key``."""

    @abc.abstractmethod
    def is_lock_holder(self, key: str, holder: str) -> bool:
        """Whether ``holder`` holds an unexpired lock on ``key``."""

    @abc.abstractmethod
    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until nobody holds ``key`` (without taking it).

        Returns:
            True once the key is free, False if ``timeout`` seconds (None: forever) ran out.
        """

    def _hold_seconds(self, hold_timeout: float | None) -> float | None:
        """The hold timeout of one acquisition: the argument, else the manager's default."""
        if hold_timeout is None:
            return self.default_hold_timeout
        return _check_hold_timeout(hold_timeout, "hold_timeout")


def _check_hold_timeout(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not value > 0 or math.isnan(value):
        raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return value


def check_acquire_timeout(value: float | None) -> float | None:
    """Validate an ``acquire_timeout`` / ``timeout``: None, or seconds >= 0."""
    if value is None:
        return None
    value = float(value)
    if not value >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {value!r}")
    return value


def poll(attempt: Callable[[], bool], timeout: float | None) -> bool:
    """Call ``attempt`` until it returns True (-> True) or ``timeout`` seconds pass (-> False).

    ``attempt`` runs at least once, and once more at the deadline; the pause between calls
    grows from a few milliseconds to ``_MAX_POLL``.
    """
    timeout = check_acquire_timeout(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = _FIRST_POLL
    while True:
        if attempt():
            return True
        if deadline is None:
            time.sleep(pause)
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(pause, remaining))
        pause = min(pause * 2, _MAX_POLL)
