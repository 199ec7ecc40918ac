"""Locks on a running Dask cluster: ``distributed.Lock`` leases on its scheduler.

A ``distributed.Lock`` is a ``distributed.Semaphore`` with one lease. The scheduler keeps
the leases; the process that took a lease refreshes it every ``lease-timeout / 5``, and the
scheduler (checking every ``lease-validation-interval``) drops a lease that has not been
refreshed for ``lease-timeout``::

    distributed.scheduler.locks.lease-timeout               30s by default
    distributed.scheduler.locks.lease-validation-interval   10s by default

So a lease outlives its holder by at most ``lease-timeout + lease-validation-interval``
when the holder's worker (or client) process dies: no extra service is needed to recover
from crashed holders. The lease timeout of a lock name is fixed on the scheduler by the
first process that registers it, from that process's Dask configuration.

The scheduler cannot expire a lease whose holder is alive and refreshing it, so
``hold_timeout`` is enforced by the holding process: a daemon ``threading.Timer`` releases
the lease when it runs out (and the holder stops being its holder). A holder whose process
dies frees the key after the lease timeout, whichever of the two comes first.
``renew_lock`` replaces that timer with a new one of ``hold_timeout`` from now (each timer
carries the lease's generation number, so a timer replaced while it was firing does
nothing); the scheduler's lease needs no renewal, distributed refreshes it.

Identity: the scheduler knows leases, not holders. Each process keeps the leases it took in
``_HELD`` (``{(scheduler address, key, holder): lease}``), shared by every manager of that
process, so ``renew_lock``, ``release_lock`` and ``is_lock_holder`` work in the process
(worker, or client) that acquired, and nowhere else: a lock taken inside a task is released
inside that task (from any thread of the same worker process; a lease's renewal thread
runs in the task's context, so it finds the worker). ``is_locked`` and ``wait_for_lock`` ask the
scheduler and see locks from everywhere. One holder id should acquire from one thread at a
time: two threads acquiring the same free key for the same holder at once take two
separate lease requests, and the second waits for the first.

distributed's own caveat applies: a holder that blocks its process (holding the GIL) for
longer than the lease timeout loses its lease, and another process may then take the key
while the first still thinks it holds it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from flowcore.locking.base import DEFAULT_HOLD_TIMEOUT, LockManager, check_acquire_timeout, poll
from flowcore.utilities.logging import get_logger

__all__ = ["DaskLockManager"]

_NAME_PREFIX = "flowcore-lock:"


@dataclass(eq=False)
class _Lease:
    lock: Any  # a distributed.Lock holding one lease
    timer: threading.Timer | None = None
    generation: int = 0  # of the timer; a renewal starts the next one

    def start_timer(self, ident: tuple[str, str, str], hold: float | None) -> None:
        """Replace the hold-timeout timer by one of ``hold`` seconds (call under
        ``_HELD_LOCK`` once the lease is in ``_HELD``); None: no timer."""
        if self.timer is not None:
            self.timer.cancel()
        self.generation += 1
        self.timer = None
        if hold is not None:
            self.timer = threading.Timer(hold, _expire, args=(ident, self, self.generation))
            self.timer.daemon = True
            self.timer.start()


_HELD: dict[tuple[str, str, str], _Lease] = {}
_HELD_LOCK = threading.Lock()


def _dispose(lock: Any) -> None:
    """Stop the lease-refresh callback of a ``distributed.Lock`` that holds nothing.

    The callback was started through ``loop.add_callback``; stopping it the same way runs
    after the start, and frees the object (a running callback would keep it alive).
    """
    callback = getattr(lock, "refresh_callback", None)
    if callback is not None:
        lock.loop.add_callback(callback.stop)


def _release(lease: _Lease) -> None:
    try:
        lease.lock.release()
    finally:
        _dispose(lease.lock)


def _expire(ident: tuple[str, str, str], lease: _Lease, generation: int) -> None:
    """The hold-timeout timer: release the lease if it is still the one held and this is
    still its timer."""
    with _HELD_LOCK:
        if _HELD.get(ident) is not lease or lease.generation != generation:
            return
        del _HELD[ident]
    try:
        _release(lease)
    except Exception as exc:  # the cluster may be gone; the scheduler's lease timeout still applies
        get_logger("locking").warning(
            "DaskLockManager could not release the expired lock on key %r of holder %r: %s",
            ident[1],
            ident[2],
            exc,
        )


class DaskLockManager(LockManager):
    """Locks on the scheduler of a running Dask cluster (``distributed.Lock``).

    Args:
        client: the ``distributed.Client`` whose scheduler keeps the locks. None: inside a
            task, the scheduler of the worker running it; elsewhere, the default client
            (``distributed.get_client()``). The client is not pickled: a copy of the manager
            sent to a worker uses that worker's scheduler.
        default_hold_timeout: seconds until an unreleased lock expires when ``acquire_lock``
            is given no ``hold_timeout``; None: only the lease timeout (holder died) frees it.
    """

    def __init__(
        self, client: Any = None, default_hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT
    ) -> None:
        super().__init__(default_hold_timeout)
        self.client = client

    # -- the contract ------------------------------------------------------------------

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        hold = self._hold_seconds(hold_timeout)
        timeout = check_acquire_timeout(acquire_timeout)
        scheduler, loop, address = self._connection()
        ident = (address, key, holder)
        with _HELD_LOCK:
            if ident in _HELD:
                return True
        lease = _Lease(self._lock(key, scheduler, loop))
        if not lease.lock.acquire(timeout=timeout):
            _dispose(lease.lock)
            return False
        with _HELD_LOCK:
            _HELD[ident] = lease
            lease.start_timer(ident, hold)
        return True

    def renew_lock(self, key: str, holder: str, hold_timeout: float | None = None) -> bool:
        hold = self._hold_seconds(hold_timeout)
        ident = (self._connection()[2], key, holder)
        with _HELD_LOCK:
            lease = _HELD.get(ident)
            if lease is None:
                return False
            lease.start_timer(ident, hold)
        return True

    def release_lock(self, key: str, holder: str) -> None:
        address = self._connection()[2]
        with _HELD_LOCK:
            lease = _HELD.pop((address, key, holder), None)
        if lease is None:
            raise ValueError(
                f"No lock on key {key!r} is held by holder {holder!r} in this process "
                "(a DaskLockManager lock is released in the process that acquired it)"
            )
        if lease.timer is not None:
            lease.timer.cancel()
        _release(lease)

    def is_locked(self, key: str) -> bool:
        scheduler, loop, _ = self._connection()
        lock = self._lock(key, scheduler, loop)
        try:
            return bool(lock.locked())
        finally:
            _dispose(lock)

    def is_lock_holder(self, key: str, holder: str) -> bool:
        address = self._connection()[2]
        with _HELD_LOCK:
            return (address, key, holder) in _HELD

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        scheduler, loop, _ = self._connection()
        lock = self._lock(key, scheduler, loop)
        try:
            return poll(lambda: not lock.locked(), timeout)
        finally:
            _dispose(lock)

    # -- the cluster -------------------------------------------------------------------

    def _connection(self) -> tuple[Any, Any, str]:
        """(scheduler rpc, event loop, scheduler address) of the client or worker in use."""
        if self.client is not None:
            return self.client.scheduler, self.client.loop, self.client.scheduler.address
        from distributed import get_client, get_worker

        try:
            worker = get_worker()
        except ValueError:
            pass
        else:
            return worker.scheduler, worker.loop, worker.scheduler.address
        try:
            client = get_client()
        except ValueError as exc:
            raise RuntimeError(
                "DaskLockManager needs a Dask cluster: run it inside a Dask task, create a "
                "distributed.Client first, or pass DaskLockManager(client=...)"
            ) from exc
        scheduler = client.scheduler
        if scheduler is None:
            raise RuntimeError("DaskLockManager: the Dask client is not connected to a scheduler")
        return scheduler, client.loop, str(scheduler.address)

    @staticmethod
    def _lock(key: str, scheduler: Any, loop: Any) -> Any:
        from distributed import Lock

        return Lock(_NAME_PREFIX + key, scheduler_rpc=scheduler, loop=loop)  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        client = "None" if self.client is None else f"<Client {self.client.scheduler.address}>"
        return (
            f"DaskLockManager(client={client}, default_hold_timeout={self.default_hold_timeout!r})"
        )

    def __reduce__(self) -> tuple[type[DaskLockManager], tuple[None, float | None]]:
        return (type(self), (None, self.default_hold_timeout))
