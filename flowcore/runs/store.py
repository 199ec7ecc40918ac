"""The run store: where flow runs, task runs, their state transitions and logs are kept.

One :class:`RunStore` per database URL and process (:func:`open_store` caches them). It
has two sides that share one SQLAlchemy engine:

* **Writing** never makes the caller wait on I/O. :meth:`RunStore.submit` appends an event
  (:mod:`flowcore.runs.events`) to a deque; a daemon *writer thread*, started by the first
  submit, wakes every ``batch_interval`` (0.2 s), takes everything queued and writes it in
  one transaction (:func:`flowcore.runs.writes.write_events`: task states and log lines go
  to a journal, a row per run and batch, so the thread does next to nothing per task run
  while it shares the GIL with the flow). It is the writer thread that
  imports SQLAlchemy, opens the engine and migrates the database, so the first submit is
  as cheap as the others; and it does so at a quiet moment (no event for ``QUIET`` s) or
  within ``START_WITHIN`` s (1 s), so that work does not slow a flow's first tasks. :meth:`RunStore.flush` queues a marker and waits until the writer
  has written everything before it; :meth:`RunStore.close` flushes and stops the thread
  (and runs at exit). A failed write is logged at ERROR on the ``flowcore.runs`` logger
  once, and raised from the next ``flush``; a database that cannot be opened at all makes
  every later ``flush`` raise, and further events are dropped.

  Every ``heartbeat_every`` seconds (10 s) the writer also stamps the heartbeat of the runs
  this process drives (started here, with this pid, and not finished). Before each batch it
  calls the *tickers* (:meth:`RunStore.add_ticker`) and writes the events they return.

* **Reading** is synchronous, on the caller's thread (:mod:`flowcore.runs.queries`). Before
  answering, a read folds the journal of the runs it reads into the tables
  (:func:`flowcore.runs.writes.fold`), and looks for *crashed* runs: a run whose latest flow state is not finished,
  whose heartbeat is older than ``crash_after`` (60 s), and whose driver is gone (on this
  host: its pid is not alive; on another host: the stale heartbeat is proof enough). Such a
  run, and its unfinished task runs, are set to ``Crashed`` in the database, with a message
  saying the driving process died, so every reader (CLI, resume, UI) sees the same thing.

Retention: :meth:`RunStore.prune` deletes finished runs older than ``runs.retention_days``
and the oldest beyond ``runs.max_runs``; the writer thread prunes once after opening a
database (once per process and URL). Log lines are capped at ``runs.max_log_lines`` per
run; lines over the cap are counted, and :meth:`RunStore.logs` ends with a line saying how
many were dropped.

SQLite (the default, ``<home_dir>/flowcore.db``) runs in WAL mode with
``synchronous=NORMAL``: several processes may write one file, readers never block the
writer, and a process killed with SIGKILL loses at most the batch it had not written yet,
never the database. PostgreSQL is reached by URL (``postgresql+psycopg://...``).

Importing this module imports neither SQLAlchemy nor Alembic (about 170 ms): they load on
the writer thread, or on the first read.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flowcore.configuration import config
from flowcore.exceptions import FlowcoreException
from flowcore.runs.events import FlowRunStarted, FlowRunState, RunEvent
from flowcore.runs.records import RunInfo, StoredLogLine, TaskRunInfo, Transition
from flowcore.runs.states import canonical, is_finished
from flowcore.utilities.processes import pid_alive

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

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

logger = logging.getLogger("flowcore.runs")

CRASH_AFTER = 60.0  # seconds without a heartbeat before a run whose driver is gone is Crashed
HEARTBEAT_EVERY = 10.0  # seconds between the writer thread's heartbeats of its live runs
BATCH_INTERVAL = 0.2  # seconds between the writer thread's batches
# The writer thread's start (importing SQLAlchemy and Alembic, opening and migrating the
# database: ~0.3 s of work holding the GIL) waits for a quiet moment - no event for QUIET
# seconds - or at most START_WITHIN seconds, so it does not slow a flow's first tasks.
QUIET = 0.5
START_WITHIN = 1.0
BATCH_SIZE = 20_000  # events at most in one transaction
SETTING = "runs.store (FLOWCORE__RUNS__STORE)"
_DIALECTS = ("sqlite", "postgresql")


class RunStoreError(FlowcoreException):
    """The run store cannot be opened, read or written; the message names the setting."""


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
    ``sqlite://`` or ``postgresql[+driver]://`` URL is used as it is.
    """
    value: Any = config.get_path("runs.store") if spec is None else spec
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if not isinstance(value, str):
        raise _bad_setting(value)
    value = value.strip()
    match = _URL.match(value)
    if match:
        if match["scheme"].split("+")[0].lower() not in _DIALECTS:
            raise _bad_setting(value)
        return str(value)
    if "://" in value:
        raise _bad_setting(value)
    if value.lower() == "sqlite":
        path = Path(str(config.get_path("home_dir", "~/.flowcore"))).expanduser() / "flowcore.db"
    else:
        path = Path(value).expanduser()
    path = path.absolute()
    if path.is_dir():
        raise RunStoreError(f"{SETTING} is {value!r}, a directory; give a file path for SQLite")
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


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


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()
_pruned: set[str] = set()
_pruned_lock = threading.Lock()


class RunStore:
    """The run store at ``url`` (a SQLAlchemy URL, see :func:`store_url`).

    Args:
        url: the database.
        crash_after: seconds without a heartbeat after which a run whose driving process
            is gone is reported ``Crashed``.
        heartbeat_every: seconds between the writer thread's heartbeats.
        max_log_lines: log lines kept per run (default ``runs.max_log_lines``).
        batch_interval: seconds between the writer thread's batches.
    """

    def __init__(
        self,
        url: str,
        *,
        crash_after: float = CRASH_AFTER,
        heartbeat_every: float = HEARTBEAT_EVERY,
        max_log_lines: int | None = None,
        batch_interval: float = BATCH_INTERVAL,
    ) -> None:
        self.url = url
        self.display = mask_password(url)
        self.crash_after = crash_after
        self.heartbeat_every = heartbeat_every
        self.max_log_lines = max_log_lines
        self.batch_interval = batch_interval
        self._queue: deque[object] = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._engine_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._engine_obj: Engine | None = None
        self._error: RunStoreError | None = None
        self._broken: RunStoreError | None = None
        self._failing = False
        self._driving: set[str] = set()
        self._host = socket.gethostname()
        self._last_submit = 0.0
        self._tickers: tuple[Callable[[], Iterable[RunEvent]], ...] = ()  # replaced, not changed

    def __repr__(self) -> str:
        return f"RunStore({self.display!r})"

    # -- writing ---------------------------------------------------------------------------

    def submit(self, event: RunEvent) -> None:
        """Queue ``event`` for the writer thread (returns at once)."""
        if self._broken is not None:
            return
        self._queue.append(event)
        self._last_submit = time.monotonic()
        if self._thread is None:
            self._start_writer()

    def add_ticker(self, ticker: Callable[[], Iterable[RunEvent]]) -> None:
        """Call ``ticker()`` on the writer thread before each batch and write the events
        it returns ahead of the queued ones (a recorder announces long-running task runs
        this way, see :meth:`flowcore.runs.recorder.RunRecorder.overdue`)."""
        self._tickers = (*self._tickers, ticker)
        if self._thread is None:
            self._start_writer()

    def remove_ticker(self, ticker: Callable[[], Iterable[RunEvent]]) -> None:
        """Stop calling ``ticker`` (or an equal one: bound methods compare by object)."""
        self._tickers = tuple(t for t in self._tickers if t != ticker)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted before this call is written.

        Raises:
            RunStoreError: a write failed since the last flush, the database cannot be
                opened, or ``timeout`` seconds passed first.
        """
        if self._thread is not None:
            marker = _Flush()
            self._queue.append(marker)
            self._wake.set()
            self._wait(marker, timeout)
        self._raise_error()

    def close(self) -> None:
        """Flush, then stop the writer thread and release the database connections.
        Idempotent; the store opens again on the next submit or read."""
        with self._start_lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.append(_STOP)
                self._wake.set()
                thread.join()
                atexit.unregister(self._close_at_exit)
        with self._engine_lock:
            engine, self._engine_obj = self._engine_obj, None
        if engine is not None:
            engine.dispose()
        if self._broken is None:  # a store that never opened said so on every flush
            self._raise_error()

    def _start_writer(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._last_submit = time.monotonic()  # the quiet moment is counted from now
            thread = threading.Thread(target=self._writer, name="flowcore-run-store", daemon=True)
            thread.start()
            self._thread = thread
            atexit.register(self._close_at_exit)

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except RunStoreError:
            pass  # already logged by the writer thread; nobody is left to raise it to

    def _wait(self, marker: _Flush, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not marker.done.wait(0.05):
            thread = self._thread
            if self._broken is not None:
                return
            if thread is None or not thread.is_alive():
                raise RunStoreError(f"the run store {self.display} stopped writing (closed)")
            if deadline is not None and time.monotonic() > deadline:
                raise RunStoreError(
                    f"the run store {self.display} did not write within {timeout} s"
                )

    def _raise_error(self) -> None:
        if self._broken is not None:
            raise self._broken
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _writer(self) -> None:
        self._wait_for_a_quiet_moment()
        try:
            engine = self._engine()
        except RunStoreError as exc:
            self._broken = exc
            self._report(exc)
            self._queue.clear()
            return
        self._prune_once()
        last_beat = time.monotonic()
        while True:
            self._wake.wait(self.batch_interval)
            self._wake.clear()
            self._tick()
            stop = self._write_queued(engine)
            if time.monotonic() - last_beat >= self.heartbeat_every:
                last_beat = time.monotonic()
                self._beat(engine)
            if stop:
                return

    def _tick(self) -> None:
        for ticker in self._tickers:
            try:
                events = list(ticker())
            except Exception:  # a ticker's bug must not stop the writer: say so, drop it
                logger.exception("run store ticker %r failed; it is no longer called", ticker)
                self.remove_ticker(ticker)
            else:
                self._queue.extendleft(reversed(events))

    def _wait_for_a_quiet_moment(self) -> None:
        """Until no event came for ``QUIET`` s, ``START_WITHIN`` s passed, or a flush or
        close asks (see the constants)."""
        deadline = time.monotonic() + START_WITHIN
        while True:
            now = time.monotonic()
            if now >= deadline or now - self._last_submit >= QUIET:
                return
            if self._wake.wait(min(QUIET, deadline - now)):
                return  # flush() or close() is waiting

    def _write_queued(self, engine: Engine) -> bool:
        """Write what is queued, in transactions of at most ``BATCH_SIZE`` events; release
        the flush markers met on the way. True when a stop was queued. (Taken from the
        queue in bulk: this thread holds the GIL the flow needs, so it does as little per
        event as it can.)"""
        queue = self._queue
        stop = False
        while queue and not stop:
            taken = [queue.popleft() for _ in range(min(len(queue), BATCH_SIZE))]
            markers: list[_Flush] = []
            if any(type(item) is _Flush or item is _STOP for item in taken):
                events: list[Any] = []
                for item in taken:
                    if item is _STOP:
                        stop = True  # nothing is queued after a stop
                    elif type(item) is _Flush:
                        markers.append(item)
                    else:
                        events.append(item)
            else:
                events = taken
            if events:
                self._guarded(partial(self._write, engine, events))
            for marker in markers:
                marker.done.set()
        return stop

    def _write(self, engine: Engine, events: Sequence[RunEvent]) -> None:
        from flowcore.runs import database, writes

        database.write(engine, self.display, lambda conn: writes.write_events(conn, events))
        pid = os.getpid()
        for event in events:
            if isinstance(event, FlowRunStarted) and event.pid == pid:
                self._driving.add(event.run_id)
            elif isinstance(event, FlowRunState) and is_finished(event.state):
                self._driving.discard(event.run_id)

    def _beat(self, engine: Engine) -> None:
        if self._driving:
            from flowcore.runs import database, writes

            runs, now = sorted(self._driving), _now()
            self._guarded(
                lambda: database.write(engine, self.display, lambda c: writes.beat(c, runs, now))
            )

    def _prune_once(self) -> None:
        with _pruned_lock:
            if self.url in _pruned:
                return
            _pruned.add(self.url)
        self._guarded(lambda: self.prune())

    def _guarded(self, write: Callable[[], object]) -> None:
        """Run ``write``; a failure is kept for the next flush and logged once. Anything
        that goes wrong stops here, so the writer thread outlives a malformed event."""
        try:
            write()
        except RunStoreError as exc:
            self._error = exc
            self._report(exc)
        except Exception as exc:
            self._error = RunStoreError(f"run store {self.display}: could not write: {exc!r}")
            self._error.__cause__ = exc
            self._report(self._error)
        else:
            self._failing = False

    def _report(self, exc: RunStoreError) -> None:
        if not self._failing:
            self._failing = True
            logger.error("%s (run records are being lost until it is fixed)", exc)

    # -- the engine ------------------------------------------------------------------------

    def _engine(self) -> Engine:
        with self._engine_lock:
            if self._engine_obj is None:
                from flowcore.runs import database

                self._engine_obj = database.open_engine(self.url, self.display)
            return self._engine_obj

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

    def task_runs(self, run_id: str) -> list[TaskRunInfo]:
        """The latest state of each task run and mapped child of the run, by task and index."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.task_runs(c, run_id), [run_id])

    def transitions(
        self, run_id: str, task_slug: str | None = None, map_index: int | None = None
    ) -> list[Transition]:
        """The states the run and its task runs entered, oldest first. ``task_slug`` and
        ``map_index`` narrow to one task (None: all)."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.transitions(c, run_id, task_slug, map_index), [run_id])

    def logs(
        self, run_id: str, task_slug: str | None = None, limit: int | None = None
    ) -> list[StoredLogLine]:
        """The run's log lines, oldest first; with ``limit``, the last ``limit`` of them.
        When lines were dropped over ``runs.max_log_lines``, the last line says how many."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.logs(c, run_id, task_slug, limit), [run_id])

    def resumes_of(self, run_id: str) -> list[RunInfo]:
        """The runs that resumed run ``run_id`` (``flow.run(resume=...)``), newest first."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.resumes_of(c, run_id))

    def latest_resumable(self, flow_name: str) -> RunInfo | None:
        """The newest run of ``flow_name`` that did not finish, or finished ``Failed`` (or
        a subclass: ``Crashed``, ``TimedOut``, ``TriggerFailed``, ``ValidationFailed``)."""
        from flowcore.runs import queries

        return self._read(lambda c: queries.latest_resumable(c, flow_name))

    def prune(self, retention_days: float | None = None, max_runs: int | None = None) -> int:
        """Delete finished runs started more than ``retention_days`` ago and the oldest
        beyond the newest ``max_runs`` (defaults: ``runs.retention_days``,
        ``runs.max_runs``; None or 0 in the config means no limit). Unfinished runs are
        kept: their driver may be alive. Returns how many runs were deleted."""
        from flowcore.runs import database, writes

        days = (
            retention_days if retention_days is not None else config.get_path("runs.retention_days")
        )
        most = max_runs if max_runs is not None else config.get_path("runs.max_runs")
        cutoff = _now() - timedelta(days=float(days)) if days else None
        engine = self._engine()
        self._detect_crashes(engine)
        return database.write(
            engine, self.display, lambda c: writes.prune(c, cutoff, int(most) if most else None)
        )

    def _read(self, query: Callable[[Connection], T], run_ids: Sequence[str] | None = None) -> T:
        """``query`` in a read transaction, after crash detection and after folding the
        journal of the runs ``run_ids`` (None: of the runs the answer describes, found by
        reading once more when the first answer's runs had journal rows)."""
        from flowcore.runs import database

        engine = self._engine()
        self._detect_crashes(engine)
        if run_ids is not None:
            self._fold(engine, run_ids)
            return database.read(engine, self.display, query)
        answer = database.read(engine, self.display, query)
        if self._fold(engine, _run_ids_in(answer)):
            answer = database.read(engine, self.display, query)
        return answer

    def _fold(self, engine: Engine, run_ids: Sequence[str]) -> bool:
        """Fold the journal of the runs ``run_ids`` into the tables (see
        :mod:`flowcore.runs.writes`); True when there was something to fold."""
        from flowcore.runs import database, writes

        if not run_ids:
            return False
        pending = database.read(engine, self.display, lambda c: writes.pending_runs(c, run_ids))
        if not pending:
            return False
        limit = self.max_log_lines
        if limit is None:
            limit = int(config.get_path("runs.max_log_lines", 10_000))
        database.write(engine, self.display, lambda conn: writes.fold(conn, limit, pending))
        return True

    def _detect_crashes(self, engine: Engine) -> None:
        from flowcore.runs import database, queries

        now = _now()
        stale = now - timedelta(seconds=self.crash_after)
        candidates = database.read(engine, self.display, lambda c: queries.stale_runs(c, stale))
        for run in candidates:
            if self._driver_alive(run.host, run.pid):
                continue
            from flowcore.runs import writes

            message = (
                f"the process driving this run (pid {run.pid} on {run.host or 'an unknown host'}) "
                f"died: no heartbeat since {run.heartbeat:%Y-%m-%d %H:%M:%S} UTC"
            )
            self._fold(engine, [run.run_id])  # its task runs, to mark the unfinished ones
            database.write(
                engine,
                self.display,
                partial(writes.mark_crashed, run=run, message=message, now=now),
            )

    def _driver_alive(self, host: str, pid: int) -> bool:
        return host == self._host and pid_alive(pid)


# -- helpers -------------------------------------------------------------------------------


def _run_ids_in(answer: object) -> list[str]:
    """The ids of the runs a read returned (a RunInfo, a list of them, or None)."""
    if isinstance(answer, RunInfo):
        return [answer.run_id]
    if isinstance(answer, list):
        return [item.run_id for item in answer if isinstance(item, RunInfo)]
    return []


def _canonical(state: str | None) -> str | None:
    return None if state is None else canonical(state)


def _now() -> datetime:
    return datetime.now(timezone.utc)
