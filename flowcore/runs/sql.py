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
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

from flowcore.runs.revisions import HEAD, VERSION_TABLE

__all__ = [
    "LOCKED_RETRIES",
    "SQLITE_WAIT",
    "SQLITE_WRITING",
    "error_detail",
    "in_list",
    "is_locked",
    "literals",
    "open_sqlite",
    "retry_locked",
    "transaction",
]

T = TypeVar("T")

# how many times a write that meets a locked SQLite file (past its busy timeout) is retried,
# after 0.05 s, then twice as long each time
LOCKED_RETRIES = 5
# every SQLite connection of the store waits up to LOCK_WAIT for a lock; one that writes
# also keeps the file in WAL mode, syncs at checkpoints only, and checkpoints on its own only
# when the WAL passes 4,000 pages (16 MB at 4 KiB): the writer checkpoints when it is idle
# (flowcore.runs.writer), so that a commit a flush waits on seldom does it
LOCK_WAIT = 30.0  # seconds
SQLITE_WAIT = f"PRAGMA busy_timeout = {int(LOCK_WAIT * 1000)}"
BEGIN_POLL = 0.002  # seconds between a write's tries for the write lock
SQLITE_WRITING = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA wal_autocheckpoint = 4000",
)


def open_sqlite(
    path: str, writing: bool = False, read_only: bool = False
) -> sqlite3.Connection | None:
    """A connection to the SQLite file ``path`` when it exists and is at the newest
    schema; None otherwise (the store's engine then opens, creates or migrates it).

    The connection is in autocommit mode (its transactions are its user's own ``BEGIN``)
    and waits up to 30 s for a lock. ``writing`` also sets what the store's writes use
    (``synchronous = NORMAL``; the file is in WAL mode since it was created).
    ``read_only`` (a file in a directory this user cannot write, where SQLite cannot make
    the WAL's index file): the file is read as it is on disk (SQLite's ``immutable``),
    or, when a WAL file is beside it, read-only through the WAL and its index, which
    SQLite then needs to find there."""
    if not os.path.isfile(path):
        return None
    mode = "rw"
    if read_only:
        mode = "ro" if os.path.exists(f"{path}-wal") else "ro&immutable=1"
    try:
        conn = sqlite3.connect(
            f"file:{quote(path)}?mode={mode}",
            uri=True,
            timeout=30,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error:
        return None
    try:
        conn.execute(SQLITE_WAIT)
        revision = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        if writing and revision is not None and revision[0] == HEAD:
            for pragma in SQLITE_WRITING:
                conn.execute(pragma)
    except sqlite3.Error:
        revision = None
    if revision is None or revision[0] != HEAD:
        conn.close()
        return None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, writing: bool = False) -> Iterator[None]:
    """A transaction of ``conn`` (autocommit mode, see :func:`open_sqlite`) around the
    block: committed at its end, rolled back when it raises. ``writing``: it takes the
    file's write lock at once (``BEGIN IMMEDIATE``, :func:`_begin_writing`)."""
    if writing:
        _begin_writing(conn)
    else:
        conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _begin_writing(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, tried again every ``BEGIN_POLL`` seconds (for up to
    ``LOCK_WAIT``, as ``SQLITE_WAIT`` waits) while another connection holds the write
    lock. SQLite's own wait sleeps up to 100 ms between tries, and so mostly misses the
    pauses another writer leaves between its transactions (a fold nobody waits for pauses
    after each one)."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not is_locked(error) or time.monotonic() > deadline:
                    raise
            time.sleep(BEGIN_POLL)
    finally:
        conn.execute(SQLITE_WAIT)


def retry_locked(write: Callable[[], T], locked: Callable[[Exception], bool]) -> T:
    """``write()``, run again (:data:`LOCKED_RETRIES` times at most) while what it raises
    is, by ``locked``, a locked SQLite file."""
    for attempt in range(LOCKED_RETRIES + 1):
        try:
            return write()
        except Exception as error:
            if attempt == LOCKED_RETRIES or not locked(error):
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def is_locked(error: BaseException | None) -> bool:
    """Whether a SQLite driver's error says the file was locked (or busy)."""
    return error is not None and ("locked" in str(error) or "busy" in str(error))


def error_detail(error: BaseException) -> str:
    """The first line of a driver's error, for a message naming the store (its type's name
    when it says nothing)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
