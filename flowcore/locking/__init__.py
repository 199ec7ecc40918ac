"""Lock managers: named, exclusive, expiring locks for SERIALIZABLE caching.

=========================  =============================================  ==============
manager                    excludes                                       frees a dead
                                                                          holder's lock
=========================  =============================================  ==============
``MemoryLockManager``      threads of one process                         (n/a)
``FileSystemLockManager``  processes of one host (files in a directory)   at once (pid)
``RedisLockManager``       processes anywhere that reach a Redis server   at hold timeout
``DaskLockManager``        tasks and clients of one Dask cluster          at lease timeout
=========================  =============================================  ==============

Every manager implements :class:`LockManager` (see :mod:`flowcore.locking.base`) and
expires an unreleased lock after its hold timeout. ``manager.hold(key, holder)`` returns a
:class:`Lease` that renews the lock from the holder's process until it is released, so
work longer than the hold timeout keeps its lock, and a dead holder's lock still expires.
See docs/locking.md.
"""

from __future__ import annotations

from flowcore.locking.base import Lease, LockManager
from flowcore.locking.dask import DaskLockManager
from flowcore.locking.filesystem import FileSystemLockManager
from flowcore.locking.memory import MemoryLockManager
from flowcore.locking.redis import RedisLockManager

__all__ = [
    "DaskLockManager",
    "FileSystemLockManager",
    "Lease",
    "LockManager",
    "MemoryLockManager",
    "RedisLockManager",
]
