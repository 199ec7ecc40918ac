"""Isolation levels and transactions for cached tasks.

``IsolationLevel`` says how concurrent runs of one cache key behave:

* ``READ_COMMITTED`` (default): runs read what is committed; two concurrent runs of one
  key may both execute the task.
* ``SERIALIZABLE``: "look up, run, write" holds a lock on the key (from the policy's
  ``lock_manager``), so one run executes and the others wait and end ``Cached``.

``transaction()`` groups the tasks created inside it (in a ``with Flow(...)`` block): their
cache records and checkpoints (targets) are *staged* while the flow runs, and written at
the end of ``flow.run`` only if every task of the group succeeded. If one fails, nothing of
the group is written, so the next run runs the whole group again::

    with Flow("pipeline") as flow:
        with transaction():
            data = load_data()
            processed = process_data(data)
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flowcore.utilities import context as _context

__all__ = ["IsolationLevel", "StagedWrite", "Transaction", "commit_transactions", "transaction"]

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


def commit_transactions(task_states: dict[Any, Any], logger: logging.Logger) -> None:
    """At the end of a flow run: apply each group's staged writes if all its tasks succeeded."""
    groups: dict[str, Transaction] = {}
    for task in task_states:
        group = getattr(task, "_transaction", None)
        if group is not None:
            groups[group.id] = group
    for group in groups.values():
        states = [task_states.get(t) for t in group.tasks]
        staged = [w for s in states for w in _staged(s)]
        if all(s is not None and s.is_successful() for s in states):
            failed = 0
            for write in staged:
                try:
                    write.apply()
                except Exception:
                    failed += 1
                    logger.exception(f"Transaction {group.name!r}: {write.description} failed")
            logger.info(
                f"Transaction {group.name!r} committed {len(staged) - failed} write(s)"
                + (f"; {failed} failed" if failed else "")
            )
        elif staged:
            logger.info(
                f"Transaction {group.name!r} rolled back {len(staged)} write(s): not every "
                "task of the group succeeded"
            )
        for state in states:
            _clear_staged(state)


def _staged(state: Any) -> list[StagedWrite]:
    found = list(getattr(state, "_staged_writes", None) or ())
    for child in getattr(state, "map_states", None) or ():
        found.extend(getattr(child, "_staged_writes", None) or ())
    return found


def _clear_staged(state: Any) -> None:
    if state is None:
        return
    state.__dict__.pop("_staged_writes", None)
    for child in getattr(state, "map_states", None) or ():
        child.__dict__.pop("_staged_writes", None)
