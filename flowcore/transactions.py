"""Isolation levels and transactions for cached tasks.

``IsolationLevel`` says how concurrent runs of one cache key behave:

* ``READ_COMMITTED`` (default): runs read what is committed; two concurrent runs of one
  key may both execute the task.
* ``SERIALIZABLE``: "look up, run, write" holds a lock on the key (from the policy's
  ``lock_manager``), so one run executes and the others wait and end ``Cached``.

``transaction()`` groups the tasks created inside it (in a ``with Flow(...)`` block): their
cache records and checkpoints (targets) are *staged* while the flow runs, and written at
the end of ``flow.run`` only if every task of the group succeeded (a mapped task: every one
of its children; a skipped task or child counts as a success, as it does for the flow's
state). If one fails, nothing of the group is written, so the next run runs the whole group
again::

    with Flow("pipeline") as flow:
        with transaction():
            data = load_data()
            processed = process_data(data)

Each ``flow.run`` gives every group a :class:`TransactionRun` (in the run's context): task
runs stage their writes in it, and SERIALIZABLE task runs hand it their lease, so a cache key
stays locked until the group commits or rolls back. The group's other tasks share that
lease; any other task run of the same flow run that looks the key up (in another group, or
in none) would wait for the end of its own flow run, so it does not wait: it runs without
the cache, with a WARNING (:func:`group_holding` finds the group). Staging lives in the
memory of the process that called ``flow.run``; on executors that run tasks in other
processes (``LocalDaskExecutor("processes")``, ``DaskExecutor``) a group's writes cannot
reach it, so they are not made (a WARNING says so) and the group runs again next time.
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flowcore.engine.child_states import expand_mapped
from flowcore.engine.state import State
from flowcore.utilities import context as _context
from flowcore.utilities.logging import get_logger

__all__ = [
    "IsolationLevel",
    "StagedWrite",
    "Transaction",
    "TransactionRun",
    "counts_as_success",
    "finish_transactions",
    "group_holding",
    "transaction",
    "transaction_runs",
]

_IDS = itertools.count(1)


class IsolationLevel(enum.Enum):
    """How concurrent runs of one cache key are isolated."""

    READ_COMMITTED = "READ_COMMITTED"
    SERIALIZABLE = "SERIALIZABLE"


class StagedWrite:
    """A write kept back until its transaction commits: ``apply()`` performs it."""

    __slots__ = ("description", "_apply")

    def __init__(self, description: str, apply: Callable[[], Any]) -> None:
        self.description = description
        self._apply = apply

    def apply(self) -> None:
        self._apply()

    def __repr__(self) -> str:
        return f"<StagedWrite: {self.description}>"


class Transaction:
    """A group of tasks whose cache records and checkpoints commit together."""

    def __init__(self, name: str | None = None) -> None:
        self.id = f"transaction-{next(_IDS)}"
        self.name = name or self.id
        self.tasks: list[Any] = []

    def __repr__(self) -> str:
        return f"<Transaction: {self.name} ({len(self.tasks)} tasks)>"

    def add_task(self, task: Any, flow: Any) -> None:
        """Called by ``Flow.add_task`` for tasks added inside the ``with`` block."""
        if task not in self.tasks:
            self.tasks.append(task)
            task._transaction = self


class TransactionRun:
    """One flow run of a :class:`Transaction`: its staged writes and held leases.

    Task runs call :meth:`stage` and :meth:`hold` (from any thread of the process that
    called ``flow.run``); ``flow.run`` calls :meth:`finish` once at the end. A copy in
    another process (a pickled context) is *remote*: it accepts nothing.
    """

    def __init__(self, group: Transaction) -> None:
        self.group = group
        self.pid = os.getpid()
        self._writes: list[StagedWrite] = []
        self._leases: dict[str, tuple[Any, str]] = {}  # key -> (lease, task run that took it)
        self._lock = threading.Lock()

    @property
    def remote(self) -> bool:
        return self.pid != os.getpid()

    def stage(self, description: str, write: Callable[[], Any]) -> None:
        """Keep ``write`` until the group commits (remote: drop it, with a WARNING)."""
        if self.remote:
            get_logger("transactions").warning(
                f"Transaction {self.group.name!r}: {description} is not written: the task ran "
                "in another process than flow.run, where the group cannot commit; the group "
                "runs again next time (use LocalExecutor or LocalDaskExecutor('threads'))"
            )
            return
        with self._lock:
            self._writes.append(StagedWrite(description, write))

    def hold(self, key: str, lease: Any, task: str) -> None:
        """Keep ``lease`` (the lock on cache ``key``, taken by the task run named ``task``)
        until the group commits or rolls back."""
        with self._lock:
            self._leases[key] = (lease, task)

    def lease(self, key: str) -> Any:
        """The lease this group already holds on ``key`` (its tasks share it), or None."""
        return self.lease_holder(key)[0]

    def lease_holder(self, key: str) -> tuple[Any, str | None]:
        """The lease this group holds on ``key`` and the task run that took it (None, None:
        the group holds no lease on ``key``)."""
        with self._lock:
            return self._leases.get(key, (None, None))

    def finish(self, succeeded: bool, logger: logging.Logger) -> None:
        """Apply the staged writes if ``succeeded``, then release every lease."""
        with self._lock:
            writes, self._writes = self._writes, []
            leases = [lease for lease, _ in self._leases.values()]
            self._leases = {}
        name = self.group.name
        try:
            if succeeded and writes:
                failed = 0
                for write in writes:
                    try:
                        write.apply()
                    except Exception:
                        failed += 1
                        logger.exception(f"Transaction {name!r}: {write.description} failed")
                logger.info(
                    f"Transaction {name!r} committed {len(writes) - failed} write(s)"
                    + (f"; {failed} failed" if failed else "")
                )
            elif writes:
                logger.info(
                    f"Transaction {name!r} rolled back {len(writes)} write(s): not every "
                    "task of the group succeeded"
                )
        finally:
            for lease in leases:
                lease.release()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_remote_run, (self.group, self.pid))


def _remote_run(group: Transaction, pid: int) -> TransactionRun:
    run = TransactionRun(group)
    run.pid = pid
    return run


@contextmanager
def transaction(name: str | None = None) -> Iterator[Transaction]:
    """Group the tasks created inside the block (see the module docstring)."""
    scope = _context.current()
    if scope.get("flow") is None:
        raise ValueError(
            "transaction() groups tasks while a flow is built: use it inside a "
            "`with Flow(...)` block"
        )
    group = Transaction(name)
    with _context.context(transaction=group):
        yield group


def transaction_runs(tasks: Iterable[Any]) -> dict[str, TransactionRun]:
    """A fresh :class:`TransactionRun` for every group the ``tasks`` belong to."""
    runs: dict[str, TransactionRun] = {}
    for task in tasks:
        group = getattr(task, "_transaction", None)
        if group is not None and group.id not in runs:
            runs[group.id] = TransactionRun(group)
    return runs


def group_holding(
    runs: Mapping[str, TransactionRun] | None, key: str
) -> tuple[TransactionRun, str] | None:
    """The group of a flow run that keeps the lock on cache ``key``, and the task run that
    took it (None: no group of the run does). ``runs`` is the run's
    :func:`transaction_runs`; remote copies hold no lease, so they are never the answer."""
    for run in (runs or {}).values():
        lease, task = run.lease_holder(key)
        if lease is not None and task is not None:
            return run, task
    return None


def finish_transactions(
    runs: dict[str, TransactionRun], task_states: dict[Any, Any], logger: logging.Logger
) -> None:
    """At the end of a flow run: commit each group whose tasks all succeeded."""
    for run in runs.values():
        run.finish(all(counts_as_success(task_states.get(t)) for t in run.group.tasks), logger)


def counts_as_success(state: State | None) -> bool:
    """Whether a task of a group succeeded, as the group's commit counts it: its state is
    successful (``Success``, ``Cached``, ``Skipped``...) and, for a mapped task, so is every
    child's, since the ``Mapped`` parent is a ``Success`` whatever its children did.

    >>> from flowcore.engine.state import Failed, Mapped, Skipped, Success
    >>> counts_as_success(Mapped(map_states=[Success(), Skipped()]))
    True
    >>> counts_as_success(Mapped(map_states=[Success(), Failed()]))
    False
    >>> counts_as_success(None)  # the task did not run
    False
    """
    if state is None or not state.is_successful():
        return False
    return all(child.is_successful() for child in expand_mapped([state]))
