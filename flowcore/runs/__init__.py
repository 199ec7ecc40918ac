"""``flowcore.runs``: the run store (flow runs, task runs, transitions, logs) and its events.

The runners report what happens to a :class:`flowcore.runs.recorder.RunRecorder`, which
hands it to a :class:`RunStore` (:mod:`flowcore.runs.store`) as events
(:mod:`flowcore.runs.events`); a writer process (:mod:`flowcore.runs.writer`) writes them.
The CLI, resume and the UI read runs back through the same object.

Modules, top to bottom: ``store`` (the public object: where the store is, reading, crash
detection), ``feeder`` (its writing side: the queue and the thread that hands batches to
the writer), ``writer`` (the writer, in its process or on a thread, and the channels to
it),
``queries`` and ``writes`` (SQL, one small function per question or change), ``sql``
(what they share without SQLAlchemy: opening a SQLite file, pieces of SQL text),
``database`` (opening, SQLite settings, migrations, error translation), ``schema`` (the
tables), ``migrations`` (Alembic revisions), ``revisions``, ``times``, ``states`` and
``events`` (plain data). Importing this package does not import SQLAlchemy or Alembic, and
reading a SQLite store does not either; the reading side (``queries``, ``records``) loads on
the first read, so a run that only writes does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowcore.runs.store import RunStore, RunStoreError, open_store, store_url

if TYPE_CHECKING:
    from flowcore.runs.records import RunInfo, StoredLogLine, TaskRunInfo, TaskSummary, Transition

__all__ = [
    "RunInfo",
    "RunStore",
    "RunStoreError",
    "StoredLogLine",
    "TaskRunInfo",
    "TaskSummary",
    "Transition",
    "open_store",
    "store_url",
]


def __getattr__(name: str) -> Any:
    """The records reads return, loaded on first use (see :mod:`flowcore.runs.store`)."""
    from flowcore.runs import store

    if name in store.RECORDS:
        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
