"""The run store: where flow runs, task runs, their state transitions and logs are kept.

One :class:`RunStore` per database URL and process (:func:`open_store` caches them). It
has two sides:

* **Writing** never makes the caller wait on I/O, and takes little of its GIL: the
  store's :class:`~flowcore.runs.feeder.Feeder` queues what :meth:`RunStore.submit` is
  given, and a *feeder thread* hands it every ``batch_interval`` (0.2 s) to the **writer**
  (:mod:`flowcore.runs.writer`), a process of its own that opens (and creates or migrates)
  the database, and writes each batch in one transaction
  (:func:`flowcore.runs.writes.write_events`: task states and log lines go to a journal,
  a row per run and batch; :meth:`RunStore.write`: on a SQLite file at the newest schema
  through ``sqlite3``, else through SQLAlchemy). None of that work runs in the flow's
  process or holds its GIL. When the writer process cannot be started (or dies), an ERROR says so and the
  same writer runs on a thread of this process instead (``RunStore(writer="thread")``
  asks for that). :meth:`RunStore.flush` waits until the writer has written everything
  submitted before it; :meth:`RunStore.close` flushes and stops the writer (and runs at
  exit). A failed write is logged at ERROR on the ``flowcore.runs`` logger once, and
  raised from the next ``flush``. What a database unavailable for now
  (:func:`is_unavailable`: a server restarting, a full disk) could not take is kept by
  the writer and written once it can be (every ``flush`` meanwhile raises why); a
  database that cannot be opened at all for another reason makes every later ``flush``
  raise, and further events are dropped.

  Every ``heartbeat_every`` seconds (10 s) the writer also stamps the heartbeat of the runs
  this process drives (started here, with this pid, and not finished). The writer process
  ends with this one: killed with SIGKILL, this process loses only the batch it had not
  handed over yet (at most ``batch_interval``), and the writer writes the rest and ends.

* **Reading** is synchronous, on the caller's thread (:mod:`flowcore.runs.queries`), on
  one connection per read. Before answering, a read folds the journal of the runs it
  reads into the tables (:func:`flowcore.runs.writes.fold`; the writer process does it
  when there is one), and looks for *crashed* runs: a run whose latest flow state is not
  finished, whose heartbeat is older than ``crash_after`` (60 s), and whose driver is
  gone (on this host: its pid is not alive; on another host: the stale heartbeat is proof
  enough). Such a run, and its unfinished task runs, are set to ``Crashed`` in the
  database, with a message saying the driving process died, so every reader (CLI,
  resume, UI) sees the same thing.

Retention: :meth:`RunStore.prune` deletes finished runs older than ``runs.retention_days``
and the oldest beyond ``runs.max_runs``; the writer prunes once after opening a
database (once per process and URL). Log lines are capped at ``runs.max_log_lines`` per
run; lines over the cap are counted, and :meth:`RunStore.logs` ends with a line saying how
many were dropped.

SQLite (the default, ``<home_dir>/flowcore.db``) runs in WAL mode with
``synchronous=NORMAL``: several processes may write one file, readers never block the
writer, and a process killed with SIGKILL loses at most the batch it had not written yet,
never the database. PostgreSQL is reached by URL (``postgresql+psycopg://...``).

Importing this module imports neither SQLAlchemy nor Alembic (about 170 ms), and neither
do reads, writes and folds of a SQLite file at the newest schema: they load to create or
migrate a file, and for PostgreSQL.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flowcore.configuration import config
from flowcore.exceptions import FlowcoreException
from flowcore.runs.events import RunEvent
from flowcore.runs.feeder import BATCH_INTERVAL, Feeder
from flowcore.runs.states import canonical, is_finished
from flowcore.utilities.processes import host_name, pid_alive

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.engine import Engine

    from flowcore.runs.queries import Reader, StaleRun
    from flowcore.runs.records import RunInfo, StoredLogLine, TaskRunInfo, TaskSummary, Transition
    from flowcore.runs.writes import Changes

T = TypeVar("T")

__all__ = [
    "RunInfo",
    "RunStore",
    "RunStoreError",
    "StoredLogLine",
    "TaskRunInfo",
    "TaskSummary",
    "Transition",
    "is_unavailable",
    "open_store",
    "store_url",
]

logger = logging.getLogger("flowcore.runs")

CRASH_AFTER = 60.0  # seconds without a heartbeat before a run whose driver is gone is Crashed
HEARTBEAT_EVERY = 10.0  # seconds between the writer's heartbeats of its live runs
# journal rows folded per transaction: a row holds a run's events of one batch (at most
# BATCH_SIZE), so another writer of the file waits for one batch's fold, not a run's
FOLD_ROWS = 1
SETTING = "runs.store (FLOWCORE__RUNS__STORE)"
MAX_LOG_LINES = 10_000  # runs.max_log_lines' default
_DIALECTS = ("sqlite", "postgresql")


class RunStoreError(FlowcoreException):
    """The run store cannot be opened, read or written; the message names the setting."""


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (a write's :class:`RunStoreError`, or the driver's error itself)
    says the database could not be reached or written *for now*: a server down or
    restarting, a full disk, an I/O error, a file locked past the wait. Writing the same
    again later may then work; any other error (a missing table, a malformed event, a
    constraint) says what is written, or where, is wrong."""
    import sqlite3

    cause = error.__cause__ if isinstance(error, RunStoreError) else error
    driver_error = getattr(cause, "orig", None)  # (SQLAlchemy's errors wrap the driver's)
    if isinstance(driver_error, sqlite3.Error):
        cause = driver_error
    if isinstance(cause, sqlite3.Error):
        return _sqlite_code(cause) in _SQLITE_UNAVAILABLE
    if type(cause).__module__.startswith("sqlalchemy"):  # (only loaded when in use)
        from sqlalchemy import exc

        return isinstance(cause, (exc.OperationalError, exc.InterfaceError))
    return False


def _sqlite_code(error: sqlite3.Error) -> int:
    """SQLite's primary result code of ``error`` (0: not known)."""
    code = getattr(error, "sqlite_errorcode", None)  # (Python 3.11+; before, its message)
    if code is not None:
        return int(code) & 0xFF
    text = str(error)
    return next((code for start, code in _SQLITE_TEXTS.items() if text.startswith(start)), 0)


# SQLite's primary result codes for a file that cannot be written for now: BUSY, LOCKED,
# NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL; for a file that is not a database, or
# a damaged one: CORRUPT, NOTADB; for one that cannot be written or opened: READONLY,
# CANTOPEN (whether this user may write it is asked of the file system); and the codes'
# messages (before Python 3.11)
_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
_SQLITE_DAMAGED = frozenset({11, 26})
_SQLITE_READONLY = frozenset({8, 14})
_SQLITE_TEXTS = {
    "database is locked": 5,
    "database table is locked": 6,
    "out of memory": 7,
    "attempt to write a readonly database": 8,
    "disk I/O error": 10,
    "database disk image is malformed": 11,
    "database or disk is full": 13,
    "unable to open database file": 14,
    "locking protocol": 15,
    "file is not a database": 26,
}


# -- where the store is ------------------------------------------------------------------

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9_]*(\+[A-Za-z0-9_]+)?)://")
_PASSWORD = re.compile(r"^(?P<head>[^:/]+://[^:/@]*:)[^@]*@")


def mask_password(url: str) -> str:
    """``url`` with its password hidden, for messages.

    >>> mask_password("postgresql+psycopg://me:secret@db:5432/runs")
    'postgresql+psycopg://me:***@db:5432/runs'
    >>> mask_password("sqlite:////tmp/x.db")
    'sqlite:////tmp/x.db'
    """
    return _PASSWORD.sub(r"\g<head>***@", url)


def store_url(spec: str | None = None) -> str | None:
    """The SQLAlchemy URL of the run store ``spec`` names (default: ``runs.store``).

    ``"none"`` (or empty) turns the store off: None. ``"sqlite"`` is
    ``<home_dir>/flowcore.db``; any other string without ``://`` is a SQLite file path; a
    ``sqlite://`` or ``postgresql[+driver]://`` URL is used as it is (the directory of
    a ``sqlite:///`` file made, as a file path's is).
    """
    value: Any = config.get_path("runs.store") if spec is None else spec
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if not isinstance(value, str):
        raise _bad_setting(value)
    value = value.strip()
    match = _URL.match(value)
    if match:
        dialect = match["scheme"].split("+")[0].lower()
        if dialect not in _DIALECTS:
            raise _bad_setting(value)
        if dialect == "sqlite":
            _sqlite_url_directory(value, os.getcwd())
        return str(value)
    if "://" in value:
        raise _bad_setting(value)
    home = str(config.get_path("home_dir", "~/.flowcore")) if value.lower() == "sqlite" else ""
    return _sqlite_url(value, home, os.getcwd())


@functools.lru_cache(maxsize=64)
def _sqlite_url(value: str, home: str, cwd: str) -> str:
    """The ``sqlite:///`` URL of a file path (``"sqlite"``: ``home``/flowcore.db), its
    directory made. Memoised: every ``flow.run`` asks, and making an existing directory
    took milliseconds on a busy overlay file system."""
    path = Path(home).expanduser() / "flowcore.db" if home else Path(value).expanduser()
    path = path.absolute()
    _make_directory(path, value)
    return f"sqlite:///{path}"


@functools.lru_cache(maxsize=64)
def _sqlite_url_directory(url: str, cwd: str) -> None:
    """Make the directory of the file a ``sqlite:///`` URL names, as of a file path. A
    relative path (``sqlite:///tmp/x.db``: three slashes, where ``/tmp/x.db`` takes four)
    whose directory does not exist is an error saying so: making ``tmp/`` in the working
    directory would hide the slip."""
    found = re.match(r"^sqlite(\+[A-Za-z0-9_]+)?:///", url)  # (sqlite+pysqlite:/// too)
    path = Path(url[found.end() :].split("?")[0]) if found else None
    if path is None or str(path) in ("", ".", ":memory:") or str(path).startswith("file:"):
        return  # (in memory, or a URI SQLite reads for itself)
    if not path.is_absolute() and not (Path(cwd) / path).parent.is_dir():
        raise RunStoreError(
            f"{SETTING} is {url!r}, a path relative to the working directory ({cwd}), whose "
            f"directory {path.parent} does not exist there: for the absolute path /{path} "
            f"write four slashes, 'sqlite:////{path}', or make the directory"
        )
    _make_directory(Path(cwd) / path, url)


def _make_directory(path: Path, value: str) -> None:
    """Make the directory of the SQLite file ``path`` (named by ``value``)."""
    if path.is_dir():
        raise RunStoreError(f"{SETTING} is {value!r}, a directory; give a file path for SQLite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # (a file where a directory should be, or no permission)
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocking} is a file" if blocking is not None else (exc.strerror or str(exc))
        raise RunStoreError(
            f"{SETTING} is {value!r}, whose directory {path.parent} cannot be made ({why}): "
            "give a path in a directory you can write"
        ) from None


def limit(name: str, value: object = None, *, whole: bool, none: bool = True) -> float:
    """The run store's limit ``name`` (``runs.retention_days``, ``runs.max_runs``,
    ``runs.max_log_lines``), checked: ``value``, else the setting's value in the config.
    A number >= 0 (``whole``: a whole number); ``none``: None or "" are 0, which for the
    retention settings means no limit.

    >>> limit("runs.max_runs", 5, whole=True), limit("runs.retention_days", 0.5, whole=False)
    (5, 0.5)
    >>> limit("runs.max_runs", -1, whole=True)
    Traceback (most recent call last):
    ...
    flowcore.runs.store.RunStoreError: runs.max_runs (FLOWCORE__RUNS__MAX_RUNS) is -1: expected a whole number >= 0 (0: no limit)

    Raises:
        RunStoreError: it is anything else; the message names the setting, its value and
            what it may be.
    """
    if value is None:
        value = config.get_path(name)
    if none and (value is None or value == ""):
        return 0
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or number < 0 or (whole and number % 1):
        kind = "a whole number" if whole else "a number"
        meaning = " (0: no limit)" if none else ""
        environment = "FLOWCORE__" + name.upper().replace(".", "__")
        raise RunStoreError(f"{name} ({environment}) is {value!r}: expected {kind} >= 0{meaning}")
    return int(number) if whole else float(number)


def _bad_setting(value: object) -> RunStoreError:
    return RunStoreError(
        f"{SETTING} is {value!r}; expected 'sqlite' (<home_dir>/flowcore.db), a file path, "
        "a sqlite:/// or postgresql+psycopg:// URL, or 'none'"
    )


_stores: dict[tuple[str, int], RunStore] = {}
_stores_lock = threading.Lock()


def open_store(spec: str | None = None) -> RunStore | None:
    """This process's :class:`RunStore` for ``spec`` (default ``runs.store``), or None when
    the store is turned off."""
    url = store_url(spec)
    if url is None:
        return None
    key = (url, os.getpid())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = RunStore(url)
        return store


# -- the store -----------------------------------------------------------------------------


class RunStore:
    """The run store at ``url`` (a SQLAlchemy URL, see :func:`store_url`).

    Args:
        url: the database.
        crash_after: seconds without a heartbeat after which a run whose driving process
            is gone is reported ``Crashed``.
        heartbeat_every: seconds between the writer's heartbeats.
        max_log_lines: log lines kept per run (default ``runs.max_log_lines``).
        batch_interval: seconds between the batches handed to the writer.
        writer: ``"process"`` (default: the writer runs in a process of its own) or
            ``"thread"`` (on a thread of this process; slower, see the module docstring).
    """

    def __init__(
        self,
        url: str,
        *,
        crash_after: float = CRASH_AFTER,
        heartbeat_every: float = HEARTBEAT_EVERY,
        max_log_lines: int | None = None,
        batch_interval: float = BATCH_INTERVAL,
        writer: str = "process",
    ) -> None:
        if writer not in ("process", "thread"):
            raise ValueError(f"RunStore(writer={writer!r}): expected 'process' or 'thread'")
        self.url = url
        self.display = mask_password(url)
        self.crash_after = crash_after
        self.heartbeat_every = heartbeat_every
        self.max_log_lines = max_log_lines
        self.batch_interval = batch_interval
        self.writer = writer
        self._engine_lock = threading.Lock()
        self._engine_obj: Engine | None = None
        self._write_lock = threading.Lock()
        self._sqlite_conn: sqlite3.Connection | None = None  # (see write)
        self._host = host_name()
        # a SQLite file's directory missing when the writer opens the file was removed
        # (a test's temporary home) if it was there when the store was made, else never made
        self.directory_seen = self.removed_directory() is None
        self._feeder = Feeder(self)

    def __repr__(self) -> str:
        return f"RunStore({self.display!r})"

    # -- writing (the feeder's: see flowcore.runs.feeder) ---------------------------------

    def submit(self, event: RunEvent) -> None:
        """Queue ``event`` for the writer (returns at once)."""
        self._feeder.submit(event)

    def submit_task_states(self, states: list[tuple[Any, ...]]) -> None:
        """Pack task states given as plain tuples of :class:`TaskRunState`'s fields
        (what a recorder collects: cheaper to make and to pickle than the named tuples)
        into journal rows now, on the caller's thread, and queue the rows (so the tuples
        live no longer than this call). Usually all of one run; a list of several runs'
        states is split by run."""
        self._feeder.submit_task_states(states)

    def hand_over(self) -> None:
        """Hand what is queued to the writer now, not at the next batch interval (a run
        that lasted longer than an interval ended: its writing then overlaps what this
        process does next, and a flush soon after has little left to wait for)."""
        self._feeder.hand_over()

    def add_source(self, source: Callable[[], object]) -> None:
        """Call ``source()`` before each batch, on the thread that hands batches to the
        writer, and at each :meth:`flush`: it submits what it has collected since (a
        recorder's task states, see :meth:`flowcore.runs.recorder.RunRecorder.drain`). A
        source that raises is logged at ERROR and no longer called."""
        self._feeder.add_source(source)

    def remove_source(self, source: Callable[[], object]) -> None:
        """Stop calling ``source`` (or an equal one: bound methods compare by object)."""
        self._feeder.remove_source(source)

    @property
    def writer_pid(self) -> int | None:
        """The pid of the writer process, while there is one (None: not started yet, or
        writing on a thread of this process)."""
        return self._feeder.writer_pid

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted before this call is written.

        Raises:
            RunStoreError: a write failed since the last flush, the database cannot be
                opened, or ``timeout`` seconds passed first.
        """
        self._feeder.flush(timeout)

    def close(self, *, at_exit: bool = False) -> None:
        """Flush, then stop the writer and release the database connections.
        Idempotent; the store opens again on the next submit or read. ``at_exit`` (the
        close that runs at the process's exit): the writer process then folds the journal
        rows it wrote before it ends, without this process waiting for that."""
        self._feeder.stop(at_exit)
        with self._engine_lock:
            engine, self._engine_obj = self._engine_obj, None
        if engine is not None:
            engine.dispose()
        with self._write_lock:
            if self._sqlite_conn is not None:
                self._sqlite_conn.close()
                self._sqlite_conn = None
        if self._feeder.broken is None:  # a store that never opened said so on every flush
            self._feeder.raise_error()

    def kept_log_lines(self) -> int:
        """Log lines kept per run: ``max_log_lines`` if given, else ``runs.max_log_lines``
        (a bad value is an ERROR, once, and the default is kept)."""
        if self.max_log_lines is not None:
            return self.max_log_lines
        try:
            return int(limit("runs.max_log_lines", whole=True, none=False))
        except RunStoreError as exc:
            _error_once(f"{exc}; keeping the default, {MAX_LOG_LINES} lines per run")
            return MAX_LOG_LINES

    # -- the engine ------------------------------------------------------------------------

    def engine(self) -> Engine:
        """The SQLAlchemy engine of this store, opened (and migrated) on first use."""
        with self._engine_lock:
            if self._engine_obj is None:
                from flowcore.runs import database

                self._engine_obj = database.open_engine(self.url, self.display)
            return self._engine_obj

    def write(self, change: Callable[[Changes], T]) -> T:
        """``change`` (:mod:`flowcore.runs.writes`) in a write transaction, retried while
        SQLite is locked. A SQLite file at the newest schema is written with ``sqlite3``
        on one connection kept for it (the writer process then never imports
        SQLAlchemy); a file to create or migrate is opened by the engine first, and
        PostgreSQL is written through the engine."""
        with self._write_lock, self._explaining():
            if self._sqlite_conn is None and self.sqlite_path() is not None:
                self._sqlite_conn = self._open_for_writing()
            conn = self._sqlite_conn
            if conn is None:
                from flowcore.runs import database
                from flowcore.runs.writes import AlchemyChanges

                return database.write(
                    self.engine(), self.display, lambda c: change(AlchemyChanges(c))
                )
            return self._sqlite_write(conn, change)

    def _open_for_writing(self) -> sqlite3.Connection | None:
        from flowcore.runs.sql import open_sqlite

        path = self.sqlite_path()
        assert path is not None
        conn = open_sqlite(path, writing=True)
        if conn is None:
            self.engine()  # creates or migrates the file (or says why it cannot)
            conn = open_sqlite(path, writing=True)
        return conn

    def _sqlite_write(self, conn: sqlite3.Connection, change: Callable[[Changes], T]) -> T:
        import sqlite3

        from flowcore.runs.sql import error_detail, is_locked, retry_locked, transaction
        from flowcore.runs.writes import SqliteChanges

        def attempt() -> T:
            with transaction(conn, writing=True):
                return change(SqliteChanges(conn))

        try:
            return retry_locked(attempt, lambda e: isinstance(e, sqlite3.Error) and is_locked(e))
        except sqlite3.Error as error:
            raise RunStoreError(
                f"run store {self.display} ({SETTING}): {error_detail(error)}"
            ) from error

    def checkpoint(self) -> None:
        """(The writer, when idle.) Copy the pages a SQLite file's WAL holds into the
        file, as far as readers allow (a passive checkpoint), so that the commit that
        crosses SQLite's own threshold (``SQLITE_WRITING``) does not do it while a flush
        waits on it. A checkpoint that fails is left to the next one."""
        import sqlite3

        with self._write_lock:
            conn = self._sqlite_conn
            if conn is None:
                return
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                pass

    def forget_connection(self) -> None:
        """(In a forked child, from the feeder's fork hook.) Drop the parent's connection
        for writing without touching it; the child opens its own."""
        self._write_lock = threading.Lock()
        self._sqlite_conn = None

    # -- reading ---------------------------------------------------------------------------

    def list_runs(
        self, flow: str | None = None, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[RunInfo]:
        """Flow runs, newest first. ``state`` is a state class name matched exactly (in any
        case: ``"failed"`` is ``Failed``, not ``Crashed``)."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.list_runs(c, flow, _canonical(state), limit, offset))

    def count_runs(self, flow: str | None = None, state: str | None = None) -> int:
        """How many runs :meth:`list_runs` would list without a limit."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.count_runs(c, flow, _canonical(state)), [])

    def get_run(self, run_id: str) -> RunInfo | None:
        """The run ``run_id``, or the one run whose id starts with it (4 characters or more).

        Raises:
            RunStoreError: the prefix matches several runs (they are listed).
        """
        from flowcore.runs import queries

        matches = self._read(lambda c: queries.find_runs(c, run_id))
        if len(matches) > 1:
            shown = ", ".join(run.run_id for run in matches[:10])
            raise RunStoreError(f"run id prefix {run_id!r} is ambiguous: it matches {shown}")
        return matches[0] if matches else None

    def task_runs(
        self, run_id: str, task_slug: str | None = None, map_index: int | None = None
    ) -> list[TaskRunInfo]:
        """The latest state of each task run and mapped child of the run, by task and index.
        ``task_slug`` and ``map_index`` narrow to one task, or one child (None: all)."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.task_runs(c, run_id, task_slug, map_index), [run_id])

    def task_summaries(self, run_id: str) -> list[TaskSummary]:
        """Each task of the run as a whole, by task slug: its own record and its mapped
        children counted by state, read with a grouped query (a 10,000-child map is a few
        rows, not 10,000)."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.task_summaries(c, run_id), [run_id])

    def children(
        self, run_id: str, task_slug: str, state: str | None = None, offset: int = 0,
        limit: int = 200,
    ) -> list[TaskRunInfo]:  # fmt: skip
        """A page of the mapped children of task ``task_slug``, by map index: ``limit`` of
        them from the ``offset``-th on, those in state ``state`` only (the state's name as
        recorded; None: in any state)."""
        from flowcore.runs import queries

        return self._read(
            lambda c: queries.children(c, run_id, task_slug, state, offset, limit), [run_id]
        )

    def transitions(
        self, run_id: str, task_slug: str | None = None, map_index: int | None = None
    ) -> list[Transition]:
        """The states the run and its task runs entered, oldest first. ``task_slug`` and
        ``map_index`` narrow to one task (None: all)."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.transitions(c, run_id, task_slug, map_index), [run_id])

    def logs(
        self, run_id: str, task_slug: str | None = None, limit: int | None = None,
        map_index: int | None = None,
    ) -> list[StoredLogLine]:  # fmt: skip
        """The run's log lines, oldest first; with ``limit``, the last ``limit`` of them;
        with ``map_index``, only that mapped child's. When lines were dropped over
        ``runs.max_log_lines``, the last line says how many."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.logs(c, run_id, task_slug, limit, map_index), [run_id])

    def resumes_of(self, run_id: str) -> list[RunInfo]:
        """The runs that resumed run ``run_id`` (``flow.run(resume=...)``), newest first."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.resumes_of(c, run_id))

    def prune(self, retention_days: float | None = None, max_runs: int | None = None) -> int:
        """Delete finished runs started more than ``retention_days`` ago and the oldest
        beyond the newest ``max_runs`` (defaults: ``runs.retention_days``,
        ``runs.max_runs``; None or 0 means no limit). Unfinished runs are kept: their
        driver may be alive. Returns how many runs were deleted.

        Raises:
            RunStoreError: a limit is not a number >= 0 (nothing is deleted).
        """
        from flowcore.runs import writes

        days = limit("runs.retention_days", retention_days, whole=False)
        most = int(limit("runs.max_runs", max_runs, whole=True))
        cutoff = _now() - timedelta(days=days) if days else None
        with self._reading() as reader:
            self._detect_crashes(reader)
        return self.write(lambda c: writes.prune(c, cutoff, most or None))

    def _read(self, query: Callable[[Reader], T], run_ids: Sequence[str] | None = None) -> T:
        """``query`` in a read transaction, after crash detection and after folding the
        journal of the runs ``run_ids`` (None: of the runs the answer describes, found by
        reading once more when the first answer's runs had journal rows). All of it on
        one connection (:meth:`_reading`)."""
        with self._reading() as reader:
            self._detect_crashes(reader)
            if run_ids is not None:
                self._fold(reader, run_ids)
                return reader.transaction(query)
            answer = reader.transaction(query)
            if self._fold(reader, _run_ids_in(answer)):
                answer = reader.transaction(query)
            return answer

    @contextmanager
    def _reading(self) -> Iterator[Reader]:
        """One connection for one read, closed at its end; each step runs in a read
        transaction of its own on it (:meth:`Reader.transaction`). A SQLite database at the
        newest schema is read with the standard library's ``sqlite3``, without importing
        SQLAlchemy; any other (PostgreSQL, or a SQLite file to create or migrate, or one
        this process's engine has open already) through a connection of the engine."""
        import sqlite3

        from flowcore.runs.queries import AlchemyReader, SqliteReader

        path = self.sqlite_path()
        reader = None
        with self._explaining():
            if path is not None and self._engine_obj is None:
                reader = SqliteReader.open(path)
            if reader is None:
                from flowcore.runs import database

                with database.connection(self.engine(), self.display) as conn:
                    yield AlchemyReader(conn)
                return
            try:
                yield reader
            except sqlite3.Error as error:
                raise RunStoreError(f"run store {self.display} ({SETTING}): {error}") from error
            finally:
                reader.close()

    @contextmanager
    def _explaining(self) -> Iterator[None]:
        """The block's errors of a SQLite file that only its user can fix (a file that
        is not a database; see :meth:`_explained`) say what the file is, and what to do.
        They are not errors of a database unavailable for now: a writer does not wait
        for them to pass."""
        try:
            yield
        except RunStoreError as error:
            explained = self._explained(error)
            if explained is None:
                raise
            raise explained from None

    def _explained(self, error: RunStoreError) -> RunStoreError | None:
        """``error`` (of this store, from SQLite) said with its fix, if it has one."""
        import sqlite3

        path = self.sqlite_path()
        cause = error.__cause__
        cause = getattr(cause, "orig", None) or cause  # (SQLAlchemy's wrap the driver's)
        if path is None or not isinstance(cause, sqlite3.Error):
            return None
        code = _sqlite_code(cause)
        where = f"run store {self.display} ({SETTING})"
        if code in _SQLITE_DAMAGED and self._unwritable(path) is not None:
            # (read as it is on disk, without locks: a write meanwhile can look like damage)
            return RunStoreError(
                f"{where}: {path} could not be read ({cause}); this user cannot write its "
                "directory, so it is read without the locks SQLite takes, and a process "
                "writing it at the same moment makes it look damaged: try again, and if it "
                "persists, ask its owner to check it"
            )
        if code in _SQLITE_DAMAGED:
            return RunStoreError(
                f"{where}: {path} is not a SQLite database, or a damaged one ({cause}): move "
                f"it aside (the next run makes a new store there), or set {SETTING} to "
                "another path"
            )
        why = self._unwritable(path) if code in _SQLITE_READONLY else None
        if why is not None:
            return RunStoreError(
                f"{where}: {path} cannot be written by this user: {why} ({cause}): make it "
                f"writable, or set {SETTING} to a path in a directory you can write (or to "
                "'none' to record no runs)"
            )
        return None

    @staticmethod
    def _unwritable(path: str) -> str | None:
        """Why this user cannot write the SQLite file ``path`` (None: it can, as far as
        permissions say)."""
        directory = os.path.dirname(path) or "."
        if os.path.exists(path) and not os.access(path, os.W_OK):
            return "the file is read-only"
        if not os.access(directory, os.W_OK):
            name = os.path.basename(path)
            return (
                f"its directory {directory} is read-only (SQLite writes {name}-wal and "
                f"{name}-shm beside the file)"
            )
        return None

    def sqlite_path(self) -> str | None:
        """This store's SQLite file (None: not a SQLite file)."""
        if not self.url.startswith("sqlite:///"):
            return None
        return self.url[len("sqlite:///") :] or None

    def removed_directory(self) -> str | None:
        """The directory of this store's SQLite file if it no longer exists (removed with a
        test's temporary home directory, say), else None."""
        path = self.sqlite_path()
        directory = None if path is None else os.path.dirname(path) or "."
        return directory if directory is not None and not os.path.isdir(directory) else None

    def _fold(self, reader: Reader, run_ids: Sequence[str]) -> bool:
        """Fold the journal of the runs ``run_ids`` into the tables (see
        :mod:`flowcore.runs.writes`); True when there was something to fold."""
        from flowcore.runs import queries

        if not run_ids:
            return False
        pending = reader.transaction(lambda r: queries.pending_runs(r, run_ids))
        if not pending:
            return False
        if reader.read_only:
            path = self.sqlite_path()
            raise RunStoreError(
                f"run store {self.display} ({SETTING}): {len(pending)} run(s) have records in "
                f"its journal still to be folded into its tables, which takes writing, and "
                f"{self._unwritable(path or '') or 'it is read-only'}: read it as a user "
                "who can write there (or once the runs' writer has folded them)"
            )
        if not self._feeder.fold(pending):
            self.fold_here(pending, self.kept_log_lines())
        return True

    def fold_here(self, run_ids: Sequence[str], max_log_lines: int, yielding: bool = False) -> None:
        """Fold the journal of ``run_ids`` in this process (the writer's way), ``FOLD_ROWS``
        journal rows per transaction, so that folding a run of a million
        task runs does not keep every other writer of the file waiting until it is done.
        ``yielding`` (a fold nobody waits for): pause after each transaction as long as
        it took, so that a writer waiting for the lock (SQLite's waiters poll) finds it
        free. Rows written after the fold began are left to the next one (a live run's
        would otherwise keep it going)."""
        from flowcore.runs import writes

        last = self.write(lambda c: c.all("SELECT max(id) FROM run_journal"))[0][0]
        if last is None:
            return
        while True:
            began = time.monotonic()
            if not self.write(
                lambda c: writes.fold(c, max_log_lines, run_ids, FOLD_ROWS, up_to=last)
            ):
                return
            if yielding:
                time.sleep(time.monotonic() - began)

    def _detect_crashes(self, reader: Reader) -> None:
        from flowcore.runs import queries

        if reader.read_only:  # (marking them takes writing: they show as recorded)
            return
        now = _now()
        stale = now - timedelta(seconds=self.crash_after)
        candidates = reader.transaction(lambda r: queries.stale_runs(r, stale))
        for run in candidates:
            if self._driver_alive(run):
                continue
            from flowcore.runs import writes

            message = (
                f"the process driving this run (pid {run.pid} on {run.host or 'an unknown host'}) "
                f"died: no heartbeat since {run.heartbeat:%Y-%m-%d %H:%M:%S} UTC"
            )
            self._fold(reader, [run.run_id])  # its task runs, to mark the unfinished ones
            self.write(partial(writes.mark_crashed, run=run, message=message, now=now))

    def _driver_alive(self, run: RunInfo | StaleRun) -> bool:
        """Whether the process that started ``run`` is alive on this host (a process that
        took its pid since, after it died, does not count)."""
        return run.host == self._host and pid_alive(run.pid, since=run.started.timestamp())

    def still_running(self, run: RunInfo) -> bool:
        """Whether a live process still drives ``run``: it has not finished, and its driver
        is alive on this host, or (on another host, where no pid can be checked) its
        heartbeat is younger than ``crash_after`` (the rule that finds crashed runs)."""
        if is_finished(run.state):
            return False
        if run.host == self._host:
            return self._driver_alive(run)
        age = _now() - run.heartbeat.astimezone(timezone.utc)
        return age < timedelta(seconds=self.crash_after)


# -- helpers -------------------------------------------------------------------------------


def _run_ids_in(answer: object) -> list[str]:
    """The ids of the runs a read returned (a RunInfo, a list of them, or None)."""
    from flowcore.runs.records import RunInfo

    if isinstance(answer, RunInfo):
        return [answer.run_id]
    if isinstance(answer, list):
        return [item.run_id for item in answer if isinstance(item, RunInfo)]
    return []


_errors_told: set[str] = set()


def _error_once(message: str) -> None:
    """``message`` at ERROR on ``flowcore.runs``, once per process (a bad setting read
    on every batch)."""
    if message not in _errors_told:
        _errors_told.add(message)
        logger.error("%s", message)


def _canonical(state: str | None) -> str | None:
    return None if state is None else canonical(state)


def _now() -> datetime:
    return datetime.now(timezone.utc)


RECORDS = ("RunInfo", "StoredLogLine", "TaskRunInfo", "TaskSummary", "Transition")


def __getattr__(name: str) -> Any:
    """The plain records reads return (:mod:`flowcore.runs.records`), loaded on first use:
    a flow run writes to the store without reading it."""
    if name in RECORDS:
        from flowcore.runs import records

        return getattr(records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
