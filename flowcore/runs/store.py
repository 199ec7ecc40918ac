"""The run store: where flow runs, task runs, their state transitions and logs are kept.

One :class:`RunStore` per database URL and process (:func:`open_store` caches them). It
has two sides that share one SQLAlchemy engine:

* **Writing** never makes the caller wait on I/O, and takes little of its GIL.
  :meth:`RunStore.submit` appends an event (:mod:`flowcore.runs.events`) to a deque; a
  *feeder thread*, started by the first submit, wakes every ``batch_interval`` (0.2 s),
  calls the *sources* (:meth:`RunStore.add_source`: a flow run's recorder, which turns the
  states it collected into plain tuples), takes everything queued and hands it as one
  pickled message to the **writer** (:mod:`flowcore.runs.writer`), a process of its own
  that imports SQLAlchemy, opens and migrates the database, and writes each batch in one
  transaction (:func:`flowcore.runs.writes.write_events`: task states and log lines go to a
  journal, a row per run and batch). None of that work runs in the flow's process or holds
  its GIL. When the writer process cannot be started (or dies), an ERROR says so and the
  same writer runs on a thread of this process instead (``RunStore(writer="thread")``
  asks for that). :meth:`RunStore.flush` queues a marker and waits until the writer has
  written everything before it; :meth:`RunStore.close` flushes and stops the writer (and
  runs at exit). A failed write is logged at ERROR on the ``flowcore.runs`` logger once,
  and raised from the next ``flush``; a database that cannot be opened at all makes
  every later ``flush`` raise, and further events are dropped.

  Every ``heartbeat_every`` seconds (10 s) the writer also stamps the heartbeat of the runs
  this process drives (started here, with this pid, and not finished). The writer process
  ends with this one: killed with SIGKILL, this process loses only the batch it had not
  handed over yet (at most ``batch_interval``), and the writer writes the rest and ends.

* **Reading** is synchronous, on the caller's thread (:mod:`flowcore.runs.queries`). Before
  answering, a read folds the journal of the runs it reads into the tables
  (:func:`flowcore.runs.writes.fold`), and looks for *crashed* runs: a run whose latest flow state is not finished,
  whose heartbeat is older than ``crash_after`` (60 s), and whose driver is gone (on this
  host: its pid is not alive; on another host: the stale heartbeat is proof enough). Such a
  run, and its unfinished task runs, are set to ``Crashed`` in the database, with a message
  saying the driving process died, so every reader (CLI, resume, UI) sees the same thing.

Retention: :meth:`RunStore.prune` deletes finished runs older than ``runs.retention_days``
and the oldest beyond ``runs.max_runs``; the writer prunes once after opening a
database (once per process and URL). Log lines are capped at ``runs.max_log_lines`` per
run; lines over the cap are counted, and :meth:`RunStore.logs` ends with a line saying how
many were dropped.

SQLite (the default, ``<home_dir>/flowcore.db``) runs in WAL mode with
``synchronous=NORMAL``: several processes may write one file, readers never block the
writer, and a process killed with SIGKILL loses at most the batch it had not written yet,
never the database. PostgreSQL is reached by URL (``postgresql+psycopg://...``).

Importing this module imports neither SQLAlchemy nor Alembic (about 170 ms): they load in
the writer process, or on the first read.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import logging
import os
import re
import socket
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flowcore.configuration import config
from flowcore.exceptions import FlowcoreException
from flowcore.runs import queries
from flowcore.runs.events import LogLine, RunEvent, TaskRunState
from flowcore.runs.queries import AlchemyReader, Reader, SqliteReader
from flowcore.runs.records import RunInfo, StoredLogLine, TaskRunInfo, TaskSummary, Transition
from flowcore.runs.states import canonical
from flowcore.runs.writer import Channel, ProcessChannel, ThreadChannel
from flowcore.utilities.processes import pid_alive

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

T = TypeVar("T")

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

logger = logging.getLogger("flowcore.runs")

CRASH_AFTER = 60.0  # seconds without a heartbeat before a run whose driver is gone is Crashed
HEARTBEAT_EVERY = 10.0  # seconds between the writer's heartbeats of its live runs
BATCH_INTERVAL = 0.2  # seconds between the batches handed to the writer
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
    home = str(config.get_path("home_dir", "~/.flowcore")) if value.lower() == "sqlite" else ""
    return _sqlite_url(value, home, os.getcwd())


@functools.lru_cache(maxsize=64)
def _sqlite_url(value: str, home: str, cwd: str) -> str:
    """The ``sqlite:///`` URL of a file path (``"sqlite"``: ``home``/flowcore.db), its
    directory made. Memoised: every ``flow.run`` asks, and making an existing directory
    took milliseconds on a busy overlay file system."""
    path = Path(home).expanduser() / "flowcore.db" if home else Path(value).expanduser()
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
    """A flush (or, with ``stop``, a close; ``at_exit``: at the process's exit; with
    ``fold``, a fold of those runs' journal) waiting for the writer's answer (``error``)."""

    __slots__ = ("answered", "at_exit", "done", "error", "fold", "stop")

    def __init__(
        self, stop: bool = False, at_exit: bool = False, fold: list[str] | None = None
    ) -> None:
        self.done = threading.Event()
        self.stop = stop
        self.at_exit = at_exit
        self.fold = fold
        self.error: str | None = None
        self.answered = False  # by the writer (not released because the writer was lost)


_pruned: set[str] = set()
_pruned_lock = threading.Lock()
_all_stores: weakref.WeakSet[RunStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A process made by ``fork`` (a process pool) must not hold its parent's pipe to the
    writer open (the writer ends when that pipe does) nor think it has a writer."""
    for store in list(_all_stores):
        store._forget_writer()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._engine_lock = threading.Lock()
        self._feeder: threading.Thread | None = None
        self._channel: Channel | None = None
        self._pending: dict[int, _Flush] = {}
        self._tokens = itertools.count()
        self._engine_obj: Engine | None = None
        self._error: RunStoreError | None = None
        self._broken: RunStoreError | None = None
        self._sources: tuple[Callable[[], object], ...] = ()  # replaced, not changed
        self._sources_lock = threading.Lock()
        self._host = socket.gethostname()
        _all_stores.add(self)

    def __repr__(self) -> str:
        return f"RunStore({self.display!r})"

    # -- writing ---------------------------------------------------------------------------

    def submit(self, event: RunEvent) -> None:
        """Queue ``event`` for the writer (returns at once)."""
        if self._broken is not None:
            return
        self._queue.append(event)
        if self._feeder is None:
            self._start_writer()

    def submit_task_states(self, states: list[tuple[Any, ...]]) -> None:
        """Queue task states given as plain tuples of :class:`TaskRunState`'s fields
        (what a recorder collects: cheaper to make and to pickle than the named tuples)."""
        if states and self._broken is None:
            self._queue.append(states)
            if self._feeder is None:
                self._start_writer()

    def hand_over(self) -> None:
        """Hand what is queued to the writer now, not at the next batch interval (a run
        ended: its writing then overlaps what this process does next, and a flush soon
        after has little left to wait for)."""
        if self._feeder is not None:
            self._wake.set()

    def add_source(self, source: Callable[[], object]) -> None:
        """Call ``source()`` before each batch, on the thread that hands batches to the
        writer, and at each :meth:`flush`: it submits what it has collected since (a
        recorder's task states, see :meth:`flowcore.runs.recorder.RunRecorder.drain`). A
        source that raises is logged at ERROR and no longer called."""
        self._sources = (*self._sources, source)
        if self._feeder is None:
            self._start_writer()

    def remove_source(self, source: Callable[[], object]) -> None:
        """Stop calling ``source`` (or an equal one: bound methods compare by object)."""
        self._sources = tuple(s for s in self._sources if s != source)

    @property
    def writer_pid(self) -> int | None:
        """The pid of the writer process, while there is one (None: not started yet, or
        writing on a thread of this process)."""
        channel = self._channel
        return channel.pid if isinstance(channel, ProcessChannel) else None

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted before this call is written.

        Raises:
            RunStoreError: a write failed since the last flush, the database cannot be
                opened, or ``timeout`` seconds passed first.
        """
        if self._feeder is not None:
            self._call_sources()  # what the sources hold was submitted before this call too
            marker = _Flush()
            self._queue.append(marker)
            self._wake.set()
            self._wait(marker, timeout)
        self._raise_error()

    def close(self, *, at_exit: bool = False) -> None:
        """Flush, then stop the writer and release the database connections.
        Idempotent; the store opens again on the next submit or read. ``at_exit`` (the
        close that runs at the process's exit): the writer process then folds the journal
        rows it wrote before it ends, without this process waiting for that."""
        with self._start_lock:
            feeder = self._feeder
            if feeder is not None:
                marker = _Flush(stop=True, at_exit=at_exit)
                self._queue.append(marker)
                self._wake.set()
                feeder.join()
                self._feeder = None
                atexit.unregister(self._close_at_exit)
        with self._engine_lock:
            engine, self._engine_obj = self._engine_obj, None
        if engine is not None:
            engine.dispose()
        if self._broken is None:  # a store that never opened said so on every flush
            self._raise_error()

    def _start_writer(self) -> None:
        with self._start_lock:
            if self._feeder is not None:
                return
            feeder = threading.Thread(target=self._feed, name="flowcore-run-store", daemon=True)
            feeder.start()
            self._feeder = feeder
            atexit.register(self._close_at_exit)

    def _close_at_exit(self) -> None:
        try:
            self.close(at_exit=True)
        except RunStoreError:
            pass  # already logged; nobody is left to raise it to

    def _forget_writer(self) -> None:
        """(In a forked child.) Drop the parent's writer without touching it."""
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.abandon()
        self._feeder = None
        self._queue.clear()
        self._pending.clear()
        self._sources = ()
        self._sources_lock = threading.Lock()

    def _wait(self, marker: _Flush, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not marker.done.wait(0.05):
            feeder = self._feeder
            if self._broken is not None:
                return
            if feeder is None or not feeder.is_alive():
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

    # -- the feeder thread: batches to the writer --------------------------------------------

    def _feed(self) -> None:
        """Hand what is queued to the writer every ``batch_interval`` (or at once for a
        flush or a close), until a close."""
        self._channel = self._open_channel()
        try:
            while True:
                self._wake.wait(self.batch_interval)
                self._wake.clear()
                if self._send_queued():
                    return
        finally:
            channel, self._channel = self._channel, None
            if channel is not None:
                channel.close()
            for marker in list(self._pending.values()):
                marker.done.set()
            self._pending.clear()

    def _send_queued(self) -> bool:
        """One batch: call the sources, then send the queued events as ``events``
        messages, with a ``flush`` (or ``stop``) message for each marker met on the way.
        True when a close was queued. (The queue is taken in bulk and split by type: this
        thread shares the GIL with the flow, so it does as little per event as it can.)"""
        self._call_sources()
        queue = self._queue
        stop = False
        while queue and not stop:
            taken = [queue.popleft() for _ in range(min(len(queue), BATCH_SIZE))]
            flow_events: list[Any] = []
            states: list[tuple[Any, ...]] = []
            lines: list[tuple[Any, ...]] = []
            for item in taken:
                kind = type(item)
                if kind is list:
                    states += item
                elif kind is LogLine:
                    lines.append(tuple(item))
                elif kind is TaskRunState:
                    states.append(tuple(item))
                elif kind is _Flush:
                    if flow_events or states or lines:
                        self._send(("events", flow_events, states, lines))
                        flow_events, states, lines = [], [], []
                    token = next(self._tokens)
                    self._pending[token] = item
                    if item.stop:
                        self._send(("stop", token, item.at_exit))
                    elif item.fold is not None:
                        self._send(("fold", token, item.fold, self._max_log_lines()))
                    else:
                        self._send(("flush", token))
                    if item.stop:
                        stop = True
                        break
                else:
                    flow_events.append(item)
            if flow_events or states or lines:
                self._send(("events", flow_events, states, lines))
        return stop

    def _call_sources(self) -> None:
        with self._sources_lock:  # (the feeder and a flush may both call them)
            for source in self._sources:
                try:
                    source()
                except Exception:
                    logger.exception("run store source %r failed; it is no longer called", source)
                    self.remove_source(source)

    def _send(self, message: tuple[Any, ...]) -> None:
        channel = self._channel
        if channel is not None and channel.send(message):
            return
        if isinstance(channel, ProcessChannel):
            channel.report_lost()
            channel.close()
        if self._broken is not None:  # the database cannot be opened: nothing to send to
            self._release_pending()
            return
        # the writer process is gone: what it had not written is lost (it was told in
        # the ERROR); from now on this process writes on a thread of its own
        self._channel = self._thread_channel()
        self._channel.send(message)

    def _open_channel(self) -> Channel:
        """The writer: a process (it prunes once after opening, and folds at exit) or,
        when that cannot start or a thread is asked for, a thread."""
        options = self._writer_options(self._retention_once())
        if self.writer == "process":
            try:
                return ProcessChannel({**options, "fold_at_end": True}, self._answer)
            except (OSError, ValueError) as exc:
                logger.error(
                    "the run store %s could not start its writer process (%s); writing on a "
                    "thread of this process instead, which slows the flows it records",
                    self.display,
                    exc,
                )
        return ThreadChannel(self, options, self._answer)

    def _thread_channel(self) -> Channel:
        """A writer thread, in place of a writer process that died."""
        return ThreadChannel(self, self._writer_options(None), self._answer)

    def _writer_options(self, retention: tuple[float | None, int | None] | None) -> dict[str, Any]:
        """The writer's ``open`` message (see :mod:`flowcore.runs.writer`)."""
        return {
            "url": self.url,
            "heartbeat_every": self.heartbeat_every,
            "crash_after": self.crash_after,
            "driver_pid": os.getpid(),
            "retention": retention,
            "max_log_lines": self._max_log_lines(),
        }

    def _retention_once(self) -> tuple[float | None, int | None] | None:
        """What the writer prunes with after opening: once per process and URL."""
        with _pruned_lock:
            if self.url in _pruned:
                return None
            _pruned.add(self.url)
        days = config.get_path("runs.retention_days")
        most = config.get_path("runs.max_runs")
        return (float(days) if days else 0.0, int(most) if most else 0)

    def _answer(self, message: tuple[Any, ...]) -> None:
        """An answer of the writer (on the thread that reads them)."""
        kind = message[0]
        if kind == "flushed":
            marker = self._pending.pop(message[1], None)
            if marker is not None and marker.fold is not None:
                marker.error = message[2]  # (raised by the read that asked for the fold)
            elif message[2] is not None:
                self._error = RunStoreError(message[2])
            if marker is not None:
                marker.answered = True
                marker.done.set()
        elif kind == "error":
            logger.error("%s (run records are being lost until it is fixed)", message[1])
        elif kind == "removed":
            self._warn_removed(message[1])
        elif kind == "broken":
            self._broken = RunStoreError(message[1])
            if len(message) > 2:  # a SQLite file whose directory was removed
                self._warn_removed(message[2])
            else:
                logger.error("%s (run records are being lost until it is fixed)", message[1])
            self._queue.clear()
            self._release_pending()
        elif kind == "lost":  # the writer process ended without being asked to
            logger.error(
                "the run store %s lost its writer process (%s): the run records it had not "
                "written yet are lost; writing on a thread of this process from now on",
                self.display,
                message[1],
            )
            self._error = RunStoreError(
                f"the run store {self.display} lost its writer process ({message[1]}) and "
                "the run records it had not written"
            )
            self._release_pending()

    def _release_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for marker in pending.values():
            marker.done.set()

    # -- the engine ------------------------------------------------------------------------

    def engine(self) -> Engine:
        """The SQLAlchemy engine of this store, opened (and migrated) on first use."""
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
        return self._read(lambda c: queries.list_runs(c, flow, _canonical(state), limit, offset))

    def count_runs(self, flow: str | None = None, state: str | None = None) -> int:
        """How many runs :meth:`list_runs` would list without a limit."""
        return self._read(lambda c: queries.count_runs(c, flow, _canonical(state)), [])

    def get_run(self, run_id: str) -> RunInfo | None:
        """The run ``run_id``, or the one run whose id starts with it (4 characters or more).

        Raises:
            RunStoreError: the prefix matches several runs (they are listed).
        """
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
        return self._read(lambda c: queries.task_runs(c, run_id, task_slug, map_index), [run_id])

    def task_summaries(self, run_id: str) -> list[TaskSummary]:
        """Each task of the run as a whole, by task slug: its own record and its mapped
        children counted by state, read with a grouped query (a 10,000-child map is a few
        rows, not 10,000)."""
        return self._read(lambda c: queries.task_summaries(c, run_id), [run_id])

    def children(
        self, run_id: str, task_slug: str, state: str | None = None, offset: int = 0,
        limit: int = 200,
    ) -> list[TaskRunInfo]:  # fmt: skip
        """A page of the mapped children of task ``task_slug``, by map index: ``limit`` of
        them from the ``offset``-th on, those in state ``state`` only (the state's name as
        recorded; None: in any state)."""
        return self._read(
            lambda c: queries.children(c, run_id, task_slug, state, offset, limit), [run_id]
        )

    def transitions(
        self, run_id: str, task_slug: str | None = None, map_index: int | None = None
    ) -> list[Transition]:
        """The states the run and its task runs entered, oldest first. ``task_slug`` and
        ``map_index`` narrow to one task (None: all)."""
        return self._read(lambda c: queries.transitions(c, run_id, task_slug, map_index), [run_id])

    def logs(
        self, run_id: str, task_slug: str | None = None, limit: int | None = None
    ) -> list[StoredLogLine]:
        """The run's log lines, oldest first; with ``limit``, the last ``limit`` of them.
        When lines were dropped over ``runs.max_log_lines``, the last line says how many."""
        return self._read(lambda c: queries.logs(c, run_id, task_slug, limit), [run_id])

    def resumes_of(self, run_id: str) -> list[RunInfo]:
        """The runs that resumed run ``run_id`` (``flow.run(resume=...)``), newest first."""
        return self._read(lambda c: queries.resumes_of(c, run_id))

    def latest_resumable(self, flow_name: str) -> RunInfo | None:
        """The newest run of ``flow_name`` that did not finish, or finished ``Failed`` (or
        a subclass: ``Crashed``, ``TimedOut``, ``TriggerFailed``, ``ValidationFailed``)."""
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
        with self._reading() as reader:
            self._detect_crashes(reader)
        engine = self.engine()
        return database.write(
            engine, self.display, lambda c: writes.prune(c, cutoff, int(most) if most else None)
        )

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
        path = self.sqlite_path()
        reader = None
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

    def _warn_removed(self, directory: str) -> None:
        """The store's directory was removed (a test's temporary home directory, deleted as
        the test ends) before the writer wrote all it was given: one WARNING, not an
        ERROR about a store to fix."""
        logger.warning(
            "run store %s: its directory %s was removed while runs were recorded there; "
            "what was still to be written there is dropped",
            self.display,
            directory,
        )

    def sqlite_path(self) -> str | None:
        """This store's SQLite file (None: not a SQLite file)."""
        if not self.url.startswith("sqlite:///"):
            return None
        return self.url[len("sqlite:///") :] or None

    def removed_directory(self) -> str | None:
        """The directory of this store's SQLite file if it no longer exists (removed with a
        test's temporary home directory, say), else None."""
        path = self.sqlite_path()
        directory = None if path is None else os.path.dirname(path)
        return directory if directory is not None and not os.path.isdir(directory) else None

    def _fold(self, reader: Reader, run_ids: Sequence[str]) -> bool:
        """Fold the journal of the runs ``run_ids`` into the tables (see
        :mod:`flowcore.runs.writes`); True when there was something to fold."""
        if not run_ids:
            return False
        pending = reader.transaction(lambda r: queries.pending_runs(r, run_ids))
        if not pending:
            return False
        if not self._fold_by_writer(pending):
            self.fold_here(pending, self._max_log_lines())
        return True

    def _fold_by_writer(self, run_ids: list[str]) -> bool:
        """Have this store's writer process fold ``run_ids`` (it has SQLAlchemy loaded and
        the database open: this process then need not import them to read); False when
        there is no writer process to ask."""
        if self._feeder is None or not isinstance(self._channel, ProcessChannel):
            return False
        marker = _Flush(fold=run_ids)
        self._queue.append(marker)
        self._wake.set()
        self._wait(marker, None)
        if self._broken is not None:
            raise self._broken
        if marker.error is not None:
            raise RunStoreError(marker.error)
        return marker.answered  # a marker released unanswered (writer lost): fold here

    def fold_here(self, run_ids: Sequence[str], max_log_lines: int) -> None:
        """Fold the journal of ``run_ids`` in this process (the writer's way)."""
        from flowcore.runs import database, writes

        database.write(
            self.engine(), self.display, lambda c: writes.fold(c, max_log_lines, run_ids)
        )

    def _max_log_lines(self) -> int:
        if self.max_log_lines is not None:
            return self.max_log_lines
        return int(config.get_path("runs.max_log_lines", 10_000))

    def _detect_crashes(self, reader: Reader) -> None:
        now = _now()
        stale = now - timedelta(seconds=self.crash_after)
        candidates = reader.transaction(lambda r: queries.stale_runs(r, stale))
        for run in candidates:
            if self._driver_alive(run.host, run.pid):
                continue
            from flowcore.runs import database, writes

            message = (
                f"the process driving this run (pid {run.pid} on {run.host or 'an unknown host'}) "
                f"died: no heartbeat since {run.heartbeat:%Y-%m-%d %H:%M:%S} UTC"
            )
            self._fold(reader, [run.run_id])  # its task runs, to mark the unfinished ones
            database.write(
                self.engine(),
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
