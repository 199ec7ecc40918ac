"""The writing side of a run store: events queued, and handed to the writer in batches.

A :class:`~flowcore.runs.store.RunStore` holds one :class:`Feeder`, and its writing methods
(``submit``, ``submit_task_states``, ``add_source``, ``hand_over``, ``flush``, ``close``) are
the feeder's. Writing never makes the caller wait on I/O, and takes little of its GIL:

* ``submit`` appends an event (:mod:`flowcore.runs.events`) to a deque, and starts the
  *feeder thread* if it is not running; ``submit_task_states`` packs a list of task
  states (plain tuples: a recorder's drain) into journal rows at once, on the caller's
  thread, and appends those (a tuple per task run, kept until the feeder's next batch,
  made each of W3's older garbage collections twice as long: about 1 us a child);
* the feeder thread wakes every ``batch_interval`` (0.2 s), or at once when asked
  (``hand_over``, a flush, a close), calls the *sources* (a flow run's recorder, which turns
  the states it collected into plain tuples), takes everything queued, packs the log
  lines and single task states into one journal row per run
  (:mod:`flowcore.runs.journal`), and
  sends it all to the **writer** (:mod:`flowcore.runs.writer`) over a channel: a process of its own
  (:class:`~flowcore.runs.writer.ProcessChannel`), or a thread of this process
  (:class:`~flowcore.runs.writer.ThreadChannel`) when that cannot start, dies, or is asked
  for;
* a flush, a close, or a read's request to fold the journal of some runs is a *marker*
  (:class:`_Flush`) in the queue, sent as a ``flush``, ``stop`` or ``fold`` message; the
  writer's answer (read on the channel's thread, :meth:`Feeder._answer`) releases whoever
  waits on it. A flush sends what is queued from its own thread once the writer is up,
  rather than waking the feeder thread to do it (the wake took 0.2-0.3 ms, about a tenth
  of a flush after five runs of 500 tasks); ``_send_lock`` keeps one sender at a time.

Errors: a failed write is logged at ERROR once and raised from the next flush; a database
that cannot be opened at all (``broken``) makes every later flush raise, and further events
are dropped; a writer process that dies is logged, its unwritten events are lost, and a
writer thread takes over.

A process made by ``fork`` (a process pool) forgets its parent's feeder and writer
(:func:`_after_fork_in_child`): it must not keep the parent's pipe to the writer open.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowcore.runs.events import LogLine, RunEvent, TaskRunState
from flowcore.runs.journal import Row, pack
from flowcore.runs.writer import Channel, ProcessChannel, ThreadChannel

if TYPE_CHECKING:
    from flowcore.runs.store import RunStore, RunStoreError

__all__ = ["BATCH_INTERVAL", "BATCH_SIZE", "Feeder"]

logger = logging.getLogger("flowcore.runs")

BATCH_INTERVAL = 0.2  # seconds between the batches handed to the writer
BATCH_SIZE = 20_000  # events at most in one transaction


class _Packed(list):  # type: ignore[type-arg]
    """Journal rows (:data:`flowcore.runs.journal.Row`) packed when they were submitted."""

    __slots__ = ()


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
_all_feeders: weakref.WeakSet[Feeder] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A process made by ``fork`` (a process pool) must not hold its parent's pipe to the
    writer open (the writer ends when that pipe does) nor think it has a writer."""
    for feeder in list(_all_feeders):
        feeder.forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Feeder:
    """The writing side of ``store`` (see the module docstring)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._channel: Channel | None = None
        self._send_lock = threading.Lock()  # one sender at a time (the feeder, a flush)
        self._stopped = False  # a close's stop was sent: the feeder thread ends
        self._pending: dict[int, _Flush] = {}
        self._tokens = itertools.count()
        self._error: RunStoreError | None = None
        self._broken: RunStoreError | None = None
        self._sources: tuple[Callable[[], object], ...] = ()  # replaced, not changed
        self._sources_lock = threading.Lock()
        _all_feeders.add(self)

    @property
    def broken(self) -> RunStoreError | None:
        """Why the database cannot be opened at all (None: it can, as far as is known)."""
        return self._broken

    def submit(self, event: RunEvent) -> None:
        """:meth:`RunStore.submit <flowcore.runs.store.RunStore.submit>`."""
        if self._broken is not None:
            return
        self._queue.append(event)
        if self._thread is None:
            self._start_writer()

    def submit_task_states(self, states: list[tuple[Any, ...]]) -> None:
        """:meth:`RunStore.submit_task_states <flowcore.runs.store.RunStore.submit_task_states>`."""
        if states and self._broken is None:
            self._queue.append(_Packed(pack([states], [])))
            if self._thread is None:
                self._start_writer()

    def hand_over(self) -> None:
        """:meth:`RunStore.hand_over <flowcore.runs.store.RunStore.hand_over>`."""
        if self._thread is not None:
            self._wake.set()

    def add_source(self, source: Callable[[], object]) -> None:
        """:meth:`RunStore.add_source <flowcore.runs.store.RunStore.add_source>`."""
        self._sources = (*self._sources, source)
        if self._thread is None:
            self._start_writer()

    def remove_source(self, source: Callable[[], object]) -> None:
        """Stop calling ``source`` (or an equal one: bound methods compare by object)."""
        self._sources = tuple(s for s in self._sources if s != source)

    @property
    def writer_pid(self) -> int | None:
        """:attr:`RunStore.writer_pid <flowcore.runs.store.RunStore.writer_pid>`."""
        channel = self._channel
        return channel.pid if isinstance(channel, ProcessChannel) else None

    def flush(self, timeout: float | None = None) -> None:
        """:meth:`RunStore.flush <flowcore.runs.store.RunStore.flush>`."""
        if self._thread is not None:
            self._call_sources()  # what the sources hold was submitted before this call too
            marker = _Flush()
            self._queue.append(marker)
            if not self._send_now():
                self._wake.set()
            self._wait(marker, timeout)
        self.raise_error()

    def stop(self, at_exit: bool = False) -> None:
        """Flush, then stop the feeder thread and the writer (the store's ``close``).
        ``at_exit``: see :meth:`flowcore.runs.store.RunStore.close`."""
        with self._start_lock:
            thread = self._thread
            if thread is not None:
                marker = _Flush(stop=True, at_exit=at_exit)
                self._queue.append(marker)
                self._wake.set()
                thread.join()
                self._thread = None
                atexit.unregister(self._close_at_exit)

    def _start_writer(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._stopped = False
            thread = threading.Thread(target=self._feed, name="flowcore-run-store", daemon=True)
            thread.start()
            self._thread = thread
            atexit.register(self._close_at_exit)

    def _close_at_exit(self) -> None:
        try:
            self.store.close(at_exit=True)
        except _store_error_class():
            pass  # already logged; nobody is left to raise it to

    def forget(self) -> None:
        """(In a forked child.) Drop the parent's writer, and the store's connection for
        writing, without touching them."""
        self.store.forget_connection()
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.abandon()
        self._thread = None
        self._queue.clear()
        self._pending.clear()
        self._sources = ()
        self._sources_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stopped = False

    def _wait(self, marker: _Flush, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not marker.done.wait(0.05):
            thread = self._thread
            if self._broken is not None:
                return
            if thread is None or not thread.is_alive():
                raise _store_error(f"the run store {self.store.display} stopped writing (closed)")
            if deadline is not None and time.monotonic() > deadline:
                raise _store_error(
                    f"the run store {self.store.display} did not write within {timeout} s"
                )

    def raise_error(self) -> None:
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
                self._wake.wait(self.store.batch_interval)
                self._wake.clear()
                with self._send_lock:
                    if self._stopped or self._send_queued():
                        self._stopped = True
                        return
        finally:
            with self._send_lock:
                channel, self._channel = self._channel, None
            if channel is not None:
                channel.close()
            for marker in list(self._pending.values()):
                marker.done.set()
            self._pending.clear()

    def _send_now(self) -> bool:
        """(A flush.) Send what is queued from this thread; False when the feeder thread
        must do it (its writer is not up yet, or it is ending)."""
        with self._send_lock:
            if self._channel is None or self._stopped:
                return False
            if self._send_queued():  # (a close's stop was queued first: the feeder ends)
                self._stopped = True
                self._wake.set()
            return True

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
            packed: list[Row] = []
            state_lists: list[list[tuple[Any, ...]]] = []
            lines: list[tuple[Any, ...]] = []
            for item in taken:
                kind = type(item)
                if kind is _Packed:
                    packed += item
                elif kind is LogLine:
                    lines.append(tuple(item))
                elif kind is TaskRunState:
                    state_lists.append([tuple(item)])
                elif kind is _Flush:
                    if flow_events or packed or state_lists or lines:
                        self._send(("events", flow_events, packed + pack(state_lists, lines)))
                        flow_events, packed, state_lists, lines = [], [], [], []
                    token = next(self._tokens)
                    self._pending[token] = item
                    if item.stop:
                        self._send(("stop", token, item.at_exit))
                    elif item.fold is not None:
                        self._send(("fold", token, item.fold, self.store.kept_log_lines()))
                    else:
                        self._send(("flush", token))
                    if item.stop:
                        stop = True
                        break
                else:
                    flow_events.append(item)
            if flow_events or packed or state_lists or lines:
                self._send(("events", flow_events, packed + pack(state_lists, lines)))
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
        if self.store.writer == "process":
            try:
                return ProcessChannel({**options, "fold_at_end": True}, self._answer)
            except (OSError, ValueError) as exc:
                logger.error(
                    "the run store %s could not start its writer process (%s); writing on a "
                    "thread of this process instead, which slows the flows it records",
                    self.store.display,
                    exc,
                )
        return ThreadChannel(self.store, options, self._answer)

    def _thread_channel(self) -> Channel:
        """A writer thread, in place of a writer process that died."""
        return ThreadChannel(self.store, self._writer_options(None), self._answer)

    def _writer_options(self, retention: tuple[float | None, int | None] | None) -> dict[str, Any]:
        """The writer's ``open`` message (see :mod:`flowcore.runs.writer`)."""
        return {
            "url": self.store.url,
            "heartbeat_every": self.store.heartbeat_every,
            "crash_after": self.store.crash_after,
            "driver_pid": os.getpid(),
            "retention": retention,
            "directory_seen": self.store.directory_seen,
            "max_log_lines": self.store.kept_log_lines(),
        }

    def _retention_once(self) -> tuple[float | None, int | None] | None:
        """What the writer prunes with after opening: once per process and URL. A bad
        ``runs.retention_days`` or ``runs.max_runs`` is an ERROR, and nothing is pruned:
        runs are recorded as ever, and no history is deleted by a limit nobody meant."""
        from flowcore.runs.store import limit

        with _pruned_lock:
            if self.store.url in _pruned:
                return None
            _pruned.add(self.store.url)
        try:
            days = limit("runs.retention_days", whole=False)
            most = int(limit("runs.max_runs", whole=True))
        except _store_error_class() as exc:
            logger.error("%s; old runs in %s are not pruned", exc, self.store.display)
            return None
        return (days, most)

    def _answer(self, message: tuple[Any, ...]) -> None:
        """An answer of the writer (on the thread that reads them)."""
        kind = message[0]
        if kind == "flushed":
            marker = self._pending.pop(message[1], None)
            if marker is not None and marker.fold is not None:
                marker.error = message[2]  # (raised by the read that asked for the fold)
            elif message[2] is not None:
                self._error = _store_error(message[2])
            if marker is not None:
                marker.answered = True
                marker.done.set()
        elif kind == "error":  # (the writer's message says what became of the records)
            logger.error("%s", message[1])
        elif kind == "recovered":
            logger.info("%s", message[1])
        elif kind == "removed":
            self._warn_removed(message[1])
        elif kind == "broken":
            self._broken = _store_error(message[1])
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
                self.store.display,
                message[1],
            )
            self._error = _store_error(
                f"the run store {self.store.display} lost its writer process ({message[1]}) and "
                "the run records it had not written"
            )
            self._release_pending()

    def _release_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for marker in pending.values():
            marker.done.set()

    def fold(self, run_ids: list[str]) -> bool:
        """Have this store's writer process fold ``run_ids`` (it has SQLAlchemy loaded and
        the database open: this process then need not import them to read); False when
        there is no writer process to ask."""
        if self._thread is None or not isinstance(self._channel, ProcessChannel):
            return False
        marker = _Flush(fold=run_ids)
        self._queue.append(marker)
        self._wake.set()
        self._wait(marker, None)
        if self._broken is not None:
            raise self._broken
        if marker.error is not None:
            raise _store_error(marker.error)
        return marker.answered  # a marker released unanswered (writer lost): fold here

    def _warn_removed(self, directory: str) -> None:
        """The store's directory was removed (a test's temporary home directory, deleted as
        the test ends) before the writer wrote all it was given: one WARNING, not an
        ERROR about a store to fix."""
        logger.warning(
            "run store %s: its directory %s was removed while runs were recorded there; "
            "what was still to be written there is dropped",
            self.store.display,
            directory,
        )


def _store_error(message: str) -> RunStoreError:
    from flowcore.runs.store import RunStoreError  # (store imports this module)

    return RunStoreError(message)


def _store_error_class() -> type[RunStoreError]:
    from flowcore.runs.store import RunStoreError

    return RunStoreError
