"""The lock manager contract shared by every backend, and the leases the engine holds.

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

Leases: a lock kept alive while its holder works
-------------------------------------------------

``hold(key, holder)`` acquires the lock and returns a :class:`Lease`, which keeps it::

    hold ──> acquire_lock ──> Lease ──(every hold_timeout / 3)──> renew_lock ──> True: again
                │                │                                         └──> False: lost
                │                └── release() / end of ``with`` ──> stop renewing, release_lock
                └── acquire_timeout ran out ──> TimeoutError

One daemon thread per lease renews it, in the holder's process, so a lock outlives its
hold timeout exactly as long as that process lives and the lease is held: a killed holder
stops renewing and its lock expires by time (or sooner where the backend sees the death).
A lease whose renewal comes back False has lost the lock (its renewals were starved past
the hold timeout, or someone released or broke it): it logs one WARNING, stops renewing
and reports ``lease.lost``; releasing a lost or expired lease is a WARNING too, never an
error, because the holder's work is done by then. A lease with no hold timeout (None)
needs no renewal and starts no thread.

Backends, each in its own module: ``memory`` (threads of one process), ``filesystem``
(processes of one host), ``redis`` (anywhere that reaches one Redis server) and ``dask``
(tasks of one Dask cluster). tests/locking/test_contract.py runs every one of them through
the same contract.
"""

from __future__ import annotations

import abc
import contextvars
import math
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType

from flowcore.utilities.logging import get_logger

__all__ = ["DEFAULT_HOLD_TIMEOUT", "Lease", "LockManager"]

DEFAULT_HOLD_TIMEOUT = 300.0

_LOGGER = get_logger("locking")

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

    def hold(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> Lease:
        """Acquire ``key`` for ``holder`` and keep it renewed until the lease is released.

        Use the lease as a context manager, or call its ``release()``; see :class:`Lease`.
        A lease is one acquisition: if ``holder`` already holds ``key``, the lease keeps
        that lock (from its next renewal on), and releasing the lease releases it.

        Args:
            key: the name of the lock.
            holder: who takes it.
            acquire_timeout: seconds to wait for the lock; None waits forever, 0 tries once.
            hold_timeout: seconds the lock outlives its last renewal (renewals come every
                third of it); None uses ``default_hold_timeout``.

        Raises:
            TimeoutError: the lock was not free within ``acquire_timeout``.
        """
        hold = self._hold_seconds(hold_timeout)
        if not self.acquire_lock(key, holder, acquire_timeout=acquire_timeout, hold_timeout=hold):
            raise TimeoutError(
                f"{type(self).__name__}: holder {holder!r} could not acquire the lock on key "
                f"{key!r} within acquire_timeout={acquire_timeout!r} s; another holder has it"
            )
        try:
            return Lease(self, key, holder, hold)
        except BaseException:
            self.release_lock(key, holder)
            raise

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


class Lease:
    """A lock that ``LockManager.hold`` acquired, renewed until it is released.

    A renewal thread (a daemon, one per lease, running in a copy of the acquiring thread's
    context) calls ``manager.renew_lock(key, holder, hold_timeout)`` every
    ``hold_timeout / 3`` seconds. A renewal that raises (the backend is unreachable for a
    moment) is logged and tried again at the next interval; one that returns False means
    the lock is lost: the lease logs one WARNING, stops renewing and reports ``lost``. A
    lease that is dropped without being released stops renewing when it is garbage
    collected, so its lock then expires by time.

    Attributes:
        manager, key, holder: the lock.
        hold_timeout: seconds the lock outlives its last renewal; None: it never expires
            by time, and there is no renewal thread.
    """

    def __init__(
        self, manager: LockManager, key: str, holder: str, hold_timeout: float | None
    ) -> None:
        self.manager = manager
        self.key = key
        self.holder = holder
        self.hold_timeout = hold_timeout
        self._renewal = _Renewal(manager, key, holder, hold_timeout)
        self._release_lock = threading.Lock()
        self._released = False
        if hold_timeout is not None:
            weakref.finalize(self, self._renewal.stop.set)
            self._renewal.start()

    @property
    def lost(self) -> bool:
        """Whether the lock was lost while held: a renewal or the release found it gone."""
        return self._renewal.lost

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Stop renewing, then release the lock (once; later calls do nothing).

        A lock that is no longer the holder's (it expired or was taken) is a WARNING, not
        an error: the work it guarded is done. Errors reaching the backend propagate.
        """
        with self._release_lock:
            if self._released:
                return
            self._released = True
        self._renewal.stop_and_wait()
        try:
            self.manager.release_lock(self.key, self.holder)
        except ValueError as exc:
            if not self._renewal.lost:
                self._renewal.lost = True
                _LOGGER.warning(
                    "The lock on key %r of holder %r was no longer held at its release (%s): "
                    "it expired or was taken while its lease was held, so another run may "
                    "have entered meanwhile.",
                    self.key,
                    self.holder,
                    exc,
                )

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        status = "released" if self._released else "held"
        if self.lost:
            status += ", lost"
        return (
            f"Lease(key={self.key!r}, holder={self.holder!r}, "
            f"hold_timeout={self.hold_timeout!r}, {status})"
        )


class _Renewal:
    """What a lease's renewal thread shares with the lease (never the lease itself, so a
    dropped lease can be collected and stop its thread)."""

    def __init__(
        self, manager: LockManager, key: str, holder: str, hold_timeout: float | None
    ) -> None:
        self.manager = manager
        self.key = key
        self.holder = holder
        self.hold_timeout = hold_timeout
        self.stop = threading.Event()
        self.lost = False
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        context = contextvars.copy_context()  # the holder's context: Dask worker, flow run
        self.thread = threading.Thread(
            target=context.run,
            args=(self.run,),
            name=f"flowcore-lease-renewal {self.key!r}",
            daemon=True,
        )
        self.thread.start()

    def run(self) -> None:
        assert self.hold_timeout is not None
        interval = self.hold_timeout / 3
        while not self.stop.wait(interval):
            try:
                renewed = self.manager.renew_lock(self.key, self.holder, self.hold_timeout)
            except Exception as exc:  # a backend hiccup; the lock outlives one missed renewal
                _LOGGER.warning(
                    "Could not renew the lock on key %r of holder %r (%r); trying again in %.3g s",
                    self.key,
                    self.holder,
                    exc,
                    interval,
                )
                continue
            if not renewed:
                if not self.stop.is_set():  # else the lease was dropped meanwhile: no matter
                    _LOGGER.warning(
                        "The lock on key %r of holder %r was lost while its lease was held "
                        "(it expired or was released or taken by someone else); another "
                        "run may have entered meanwhile.",
                        self.key,
                        self.holder,
                    )
                    self.lost = True  # (after the WARNING: whoever sees it lost, sees that)
                return

    def stop_and_wait(self) -> None:
        self.stop.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
