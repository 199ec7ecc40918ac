"""What the run store's reads and writes share without SQLAlchemy: a SQLite file opened
with the standard library's ``sqlite3``, and pieces of SQL text.

Reads (:mod:`flowcore.runs.queries`) and the writer's steady work
(:mod:`flowcore.runs.writes`) are SQL text that SQLite and PostgreSQL both read, with
``:name`` parameters. On a SQLite file at the newest schema they run on a ``sqlite3``
connection from :func:`open_sqlite`, so neither the CLI nor the writer process imports
SQLAlchemy (about 0.2 s of CPU); a file to create or migrate, and PostgreSQL, go through
SQLAlchemy (:mod:`flowcore.runs.database`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from flowcore.runs.revisions import HEAD, VERSION_TABLE

__all__ = ["LOCKED_RETRIES", "in_list", "literals", "open_sqlite"]

# how many times a write that meets a locked SQLite file (past its busy timeout) is retried,
# after 0.05 s, then twice as long each time
LOCKED_RETRIES = 5


def open_sqlite(path: str, writing: bool = False) -> sqlite3.Connection | None:
    """A connection to the SQLite file ``path`` when it exists and is at the newest
    schema; None otherwise (the store's engine then opens, creates or migrates it).

    The connection is in autocommit mode (its transactions are its user's own ``BEGIN``)
    and waits up to 30 s for a lock. ``writing`` also sets what the store's writes use
    (``synchronous = NORMAL``; the file is in WAL mode since it was created)."""
    if not os.path.isfile(path):
        return None
    try:
        conn = sqlite3.connect(
            f"file:{quote(path)}?mode=rw",
            uri=True,
            timeout=30,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        revision = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        if writing and revision is not None and revision[0] == HEAD:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error:
        revision = None
    if revision is None or revision[0] != HEAD:
        conn.close()
        return None
    return conn


def literals(states: Iterable[str]) -> str:
    """State names as SQL literals (flowcore's own constants, never user input)."""
    return ", ".join(f"'{name}'" for name in sorted(states))


def in_list(column: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """``" WHERE column IN (:v0, :v1, ...)"`` and its parameters.

    >>> in_list("run_id", ["a", "b"])
    (' WHERE run_id IN (:v0, :v1)', {'v0': 'a', 'v1': 'b'})
    """
    params = {f"v{i}": value for i, value in enumerate(values)}
    return f" WHERE {column} IN ({', '.join(':' + name for name in params)})", params
