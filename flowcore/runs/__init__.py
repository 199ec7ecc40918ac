"""``flowcore.runs``: the run store (flow runs, task runs, transitions, logs) and its events.

The runners report what happens as events (:mod:`flowcore.runs.events`) to a
:class:`RunStore` (:mod:`flowcore.runs.store`), which writes them on a thread of its own;
the CLI, resume and the UI read runs back through the same object.

Modules, top to bottom: ``store`` (the public object, the writer thread, crash detection),
``queries`` and ``writes`` (SQL, one small function per question or change), ``database``
(opening, SQLite settings, migrations, error translation), ``schema`` (the tables),
``migrations`` (Alembic revisions), ``states`` and ``events`` (plain data). Importing this
package does not import SQLAlchemy or Alembic.
"""

from __future__ import annotations

from flowcore.runs.store import (
    RunInfo,
    RunStore,
    RunStoreError,
    StoredLogLine,
    TaskRunInfo,
    Transition,
    open_store,
    store_url,
)

__all__ = [
    "RunInfo",
    "RunStore",
    "RunStoreError",
    "StoredLogLine",
    "TaskRunInfo",
    "Transition",
    "open_store",
    "store_url",
]
