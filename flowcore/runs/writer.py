"""The run store's writer: the one place that writes what a process records, in batches.

A :class:`~flowcore.runs.store.RunStore` hands what it records to a :class:`Writer` as
*messages* (plain tuples, see below). The writer normally runs in a **process of its own**
(started by the store on its first write), so that
opening (creating, migrating) the database and every statement it runs take nothing from
the recorded flow's GIL (it is started as ``python -c "...; from
flowcore.runs.writer import main; main()" ROOT``, ROOT the directory this flowcore is
imported from). The flow's process keeps only the cheap
part: taking what the recorders collected, turning states into plain tuples, packing them
into journal rows (:func:`flowcore.runs.journal.pack`: one ``pickle.dumps`` per run and
batch), and one more onto a pipe. When that process cannot be started, or dies, the store logs an
ERROR and runs the same :class:`Writer` on a thread of its own process instead (slower:
the writing then shares the flow's GIL), so recording goes on.

Messages from the store, each a tuple, in order:

* ``("open", options)``, first: the database URL, what to call it in messages, the
  heartbeat period, the pid of the process driving the runs, the retention to prune
  with (None: no pruning), and whether a SQLite file's directory was there when the
  store's process started the writer (if not, its absence is not a removal);
* ``("events", flow_events, journal)``: flow-level events
  (:class:`~flowcore.runs.events.FlowRunStarted`, ``FlowRunState``, ``Heartbeat``) and
  the task states and log lines packed as journal rows, one per run
  (:mod:`flowcore.runs.journal`), which the writer inserts without unpacking;
* ``("flush", token)``: answer ``("flushed", token, error)`` once everything before it is
  written (``error``: the message of a write that failed since the previous answer, or
  None);
* ``("fold", token, run_ids, max_log_lines)``: write what came before, fold the journal
  of those runs into the tables (a reader in the store's process asks), and answer ``("flushed", token, error)``;
* ``("stop", token, at_exit)``: the same answer, then the writer ends; when the store's
  process is exiting (``at_exit``), in its own process, after folding the journal rows it
  wrote into the tables (see ``_fold_written``: the exiting process does not wait for
  that). It folds too when the store's process died.

Answers (``reply``): ``("flushed", token, error)``; ``("error", message)`` when writing
starts failing (once, until a write succeeds again; the message says what becomes of the
records); ``("recovered", message)`` when what was kept while the database was
unavailable is written; ``("broken", message[, directory])`` when the database cannot be
opened at all (the writer then ends).

**A database unavailable for now** (:func:`flowcore.runs.store.is_unavailable`: a
PostgreSQL server restarting, a full disk, a SQLite file locked past the wait): the
batches it could not take are *kept*, in order, and written in one transaction with the
next batch once it answers, tried again after ``RETRY_FIRST`` s and at doubling
intervals up to ``RETRY_MOST`` s (no heartbeats meanwhile: the runs they stamp are still
alive). Kept batches over ``KEEP_AT_MOST`` bytes are dropped, oldest first, and each run
concerned gets an ERROR line in its log once writing works again. A batch refused for any
other reason is dropped alone (kept batches refused together are then written one at a
time). When the writer ends with batches kept, it tries once more; a writer process whose
store's process is exiting or gone (nobody waits for it) goes on trying for up to
``LINGER_FOR`` s. A database unavailable when the writer opens it is waited for the same
way.

In its own process, the writer also ends when its parent dies (the pipe reaches its end,
or the parent pid changes): it writes what it received first, so a flow process killed
with SIGKILL loses only what it had not handed over (at most a batch interval), and leaves
no process behind. It ignores SIGINT: Ctrl-C in a terminal reaches the whole process group,
and the writer should write the interrupted run's last states, then end with its parent.

On a SQLite file, once it has written about a megabyte (``CHECKPOINT_AFTER``) since
its last checkpoint, the writer checkpoints the WAL (copies its pages into the file) the
first time it finds no message waiting, rather than in the commit that crosses SQLite's
threshold: that commit may be one a flush waits on.

A flow's structure (:class:`~flowcore.runs.events.FlowRunStarted`) is the same for all
its runs, and for a flow of 500 tasks it is most of what a run sends (66 KB of JSON,
against 23 KB for its task states). A writer process is sent it once: the next runs'
events carry its digest alone, and the writer takes the text from what it was sent before
(:class:`StructureMemo`, kept on both ends of the pipe).

Every ``heartbeat_every`` seconds it stamps the heartbeat of the runs the driving process
started and has not finished (crash detection, see :mod:`flowcore.runs.store`).

The store's side of this protocol is a *channel* (:data:`Channel`), with the same three
methods either way: ``send(message)`` (False once the writer is gone), ``close()`` and
``abandon()`` (in a forked child: let go of the parent's writer without touching it).
:class:`ProcessChannel` starts the writer process, writes framed messages to its stdin and
reads its answers on a thread of its own; :class:`ThreadChannel` runs a :class:`Writer` on
a thread of the store's process and passes the messages through a queue. Either calls the
store's ``answer`` with each answer, on a thread that is not the store's feeder.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

from flowcore.runs.events import FlowRunStarted, FlowRunState
from flowcore.runs.states import is_finished

if TYPE_CHECKING:
    from flowcore.runs.journal import Row
    from flowcore.runs.store import RunStore

__all__ = [
    "Channel",
    "FrameReader",
    "ProcessChannel",
    "StructureMemo",
    "ThreadChannel",
    "Writer",
    "encode",
    "main",
]

_HEADER = struct.Struct("!Q")
_READ_CHUNK = 1 << 20
# how often a writer with nothing to do checks that its parent is alive
_PARENT_CHECK_EVERY = 1.0
# bytes written after which the writer checkpoints a SQLite file's WAL once it is idle
CHECKPOINT_AFTER = 1 << 20
# A batch that could not be written because the database is unavailable for now
# (:func:`flowcore.runs.store.is_unavailable`) is kept and written again, before anything
# newer, RETRY_FIRST s later, then at doubling intervals of at most RETRY_MOST s
RETRY_FIRST = 0.5
RETRY_MOST = 8.0
# the most journal bytes kept that way: beyond it the oldest kept batches are dropped
KEEP_AT_MOST = 256 << 20
# old runs are pruned after the first new run's start is written, then at most this often
# (seconds) while more runs start
PRUNE_EVERY = 30.0
# how long a writer process goes on trying to write what it keeps after its store's
# process stopped it or ended
LINGER_FOR = 60.0

# the writer process's command (``python -c``), with this flowcore's root as its argument
_WRITER_PROGRAM = (
    "import sys; sys.path.insert(0, sys.argv.pop()); from flowcore.runs.writer import main; main()"
)

Reply = Callable[[tuple[Any, ...]], None]
# read(timeout): the messages that came within ``timeout`` s (and any others already
# there), [] when none came, None when no more will
Read = Callable[[float], "list[Any] | None"]


def encode(message: object) -> bytes:
    """``message`` as one frame on a pipe: its pickle, after its length."""
    payload = pickle.dumps(message, protocol=5)
    return _HEADER.pack(len(payload)) + payload


class FrameReader:
    """Reads the frames of :func:`encode` from file descriptor ``fd``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.ended = False

    def read(self, timeout: float | None) -> list[Any] | None:
        """The messages that arrive within ``timeout`` seconds (None: wait) and those
        available at once after the first; [] when none came in time, None at the end of
        the stream (after the messages before it were returned)."""
        messages: list[Any] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._take_frames(messages)
            if self.ended:
                return messages or None
            if messages:
                wait: float | None = 0.0
            elif deadline is None:
                wait = None
            else:
                wait = max(0.0, deadline - time.monotonic())
            if not select.select([self.fd], [], [], wait)[0]:
                return messages
            chunk = os.read(self.fd, _READ_CHUNK)
            if not chunk:
                self.ended = True
            self.buffer += chunk

    def _take_frames(self, into: list[Any]) -> None:
        buffer = self.buffer
        start = 0
        while len(buffer) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + size
            if len(buffer) < end:
                break
            into.append(pickle.loads(memoryview(buffer)[start + _HEADER.size : end]))
            start = end
        if start:
            del buffer[:start]


class StructureMemo:
    """The flow structures one end of a writer process's pipe has met, the ``size`` most
    recently met kept (see the module docstring).

    The store's end (``size`` ``SENT_STRUCTURES``) sends a structure it holds as its
    digest alone (:meth:`elide`); the writer's end (``size`` ``KEPT_STRUCTURES``, larger)
    keeps the texts and puts them back (:meth:`restore`). Both meet the same structures in
    the same order (the pipe keeps it), and a structure among the last ``n`` distinct ones
    met is among the last ``m >= n`` too, so the writer always holds what it is sent the
    digest of. Texts over ``MAX_TEXT`` characters are always sent whole, and kept by
    neither end."""

    SENT_STRUCTURES = 16
    KEPT_STRUCTURES = 32
    MAX_TEXT = 1 << 20

    def __init__(self, size: int) -> None:
        self.size = size
        self._met: OrderedDict[str, str] = OrderedDict()  # digest -> text

    def _meet(self, digest: str, text: str) -> None:
        met = self._met
        met[digest] = text
        met.move_to_end(digest)
        if len(met) > self.size:
            met.popitem(last=False)

    def _digest_of(self, event: Any) -> str | None:
        """The digest of ``event``'s structure when it is one both ends keep (a
        FlowRunStarted with a digest, and its text, or "" for the text, not too long)."""
        if type(event) is not FlowRunStarted:
            return None
        digest, text = event.structure_digest, event.structure
        if digest is None or type(text) is not str or len(text) > self.MAX_TEXT:
            return None
        return digest

    def elide(self, events: list[Any]) -> list[Any]:
        """(The store's end.) ``events``, with each structure met before as its digest
        alone (copies: the events given are left as they are)."""
        out = events
        for i, event in enumerate(events):
            digest = self._digest_of(event)
            if digest is None:
                continue
            if digest in self._met:
                if out is events:
                    out = list(events)
                out[i] = replace(event, structure="")
            self._meet(digest, "")  # (this end needs the digests only)
        return out

    def restore(self, events: list[Any]) -> None:
        """(The writer's end.) Put back, in place, the structure of each event that came
        as its digest alone."""
        for event in events:
            digest = self._digest_of(event)
            if digest is None:
                continue
            text = event.structure
            if text == "":
                kept = self._met.get(digest)
                if kept is None:  # (cannot happen: see the class docstring)
                    raise RuntimeError(
                        f"run store writer: the structure of run {event.run_id} was sent "
                        f"as digest {digest}, which this writer was never sent"
                    )
                event.structure = text = kept
            self._meet(digest, text)


class Writer:
    """Writes the messages of a store (see the module docstring) and answers through
    ``reply``. ``store`` is a :class:`~flowcore.runs.store.RunStore` on the same database,
    through which the writer writes (:meth:`~flowcore.runs.store.RunStore.write`), and whose
    ``prune`` it runs after writing the start of new runs (so that the new runs count
    towards ``runs.max_runs``), when it was given a retention."""

    def __init__(self, store: RunStore, options: dict[str, Any], reply: Reply) -> None:
        self.store = store
        self.reply = reply
        self.heartbeat_every = float(options["heartbeat_every"])
        self.driver_pid = int(options["driver_pid"])
        self.retention: tuple[float | None, int | None] | None = options.get("retention")
        self.fold_at_end = bool(options.get("fold_at_end"))
        self.directory_seen = bool(options.get("directory_seen", True))
        self.max_log_lines = int(options.get("max_log_lines", 10_000))
        self.error: str | None = None
        self.failing = False
        # batches (flow events, journal rows, bytes) kept while the database is unavailable,
        # oldest first, and what it said; the run ids whose records had to be dropped
        self.kept: list[tuple[list[Any], list[Row], int]] = []
        self.kept_bytes = 0
        self.kept_since = ""
        self.unavailable = ""
        self.retry_at = 0.0
        self.retry_delay = RETRY_FIRST
        self.dropped: set[str] = set()
        self.linger = 0.0  # main: LINGER_FOR (a thread's writer tries once more at the end)
        self.at_exit = False  # the stop came from the store's process exiting
        self.driving: set[str] = set()
        self.written: set[str] = set()  # runs with journal rows written here
        self.pruned_at: float | None = None  # (monotonic) when old runs were last pruned
        self.removed = False  # the SQLite file's directory is gone: nothing to write to
        self.unchecked = 0  # journal bytes written (about) since the last checkpoint
        self.structures = StructureMemo(StructureMemo.KEPT_STRUCTURES)
        # called before the fold at the end: the writer process lets go of the stderr it
        # shares with the store's process (see main)
        self.detach: Callable[[], None] = lambda: None

    def run(self, read: Read, parent_alive: Callable[[], bool] = lambda: True) -> None:
        """Open the database, then write what ``read`` brings until a stop or its end."""
        from flowcore.runs.store import RunStoreError, is_unavailable

        try:
            self.store.write(lambda changes: None)  # open (create, migrate) the database
        except RunStoreError as exc:
            directory = self.store.removed_directory()
            if directory is not None and self.directory_seen:
                self.reply(("broken", str(exc), directory))  # removed before it was opened
                return
            if directory is not None:
                self.reply(("broken", f"{exc}: its directory {directory} does not exist"))
                return
            if not is_unavailable(exc):
                self.reply(("broken", str(exc)))
                return
            self._unavailable(exc)  # (a server not up yet: what comes is kept meanwhile)
        last_beat = time.monotonic()
        while True:
            timeout = min(self.heartbeat_every, _PARENT_CHECK_EVERY)
            timeout = max(0.0, min(timeout, last_beat + self.heartbeat_every - time.monotonic()))
            if self.kept:
                timeout = max(0.0, min(timeout, self.retry_at - time.monotonic()))
            if self.unchecked >= CHECKPOINT_AFTER and not self.kept:
                messages = read(0.0)
                if messages == []:  # idle: a good moment to move the WAL into the database
                    self._checkpoint()
                    continue
            else:
                messages = read(timeout)
            if messages is None:  # the store's end of the pipe closed: its process died
                self._end(linger=True)
                return
            stop = self.handle(messages)
            if stop:
                self._end(linger=self.at_exit)
                return
            if self.kept and time.monotonic() >= self.retry_at:
                self._write_kept()
            if time.monotonic() - last_beat >= self.heartbeat_every:
                last_beat = time.monotonic()
                if not parent_alive():
                    self._end(linger=True, fold=False)
                    return
                self._beat()
            elif not messages and not parent_alive():
                self._end(linger=True, fold=False)
                return

    def handle(self, messages: Sequence[Any]) -> bool:
        """Write ``messages`` (events in as few transactions as the flushes among them
        allow) and answer their flushes; True when one of them was a stop."""
        flow_events: list[Any] = []
        rows: list[Row] = []
        for message in messages:
            kind = message[0]
            if kind == "events":
                self.structures.restore(message[1])
                flow_events += message[1]
                rows += message[2]
                continue
            if flow_events or rows:
                self._write(flow_events, rows)
                flow_events, rows = [], []
            if kind == "fold":  # a reader of the store's process wants these runs folded
                self.reply(("flushed", message[1], self._fold(message[2], message[3])))
                continue
            if kind in ("flush", "stop"):
                # (while batches are kept, every flush says why they are not written)
                error = self.error or self.unavailable or None
                self.error = None
                self.reply(("flushed", message[1], error))
                if kind == "stop":
                    self.at_exit = bool(message[2:] and message[2])
                    self.fold_at_end = self.fold_at_end and self.at_exit
                    return True
        if flow_events or rows:
            self._write(flow_events, rows)
        return False

    def _prune_now_and_then(self) -> None:
        """Prune after writing the start of new runs, so that they count towards
        ``runs.max_runs``: at once after the first, then at most every ``PRUNE_EVERY``
        seconds (a process running many short flows would otherwise prune once a batch,
        and a flush waits for it)."""
        now = time.monotonic()
        if self.pruned_at is None or now - self.pruned_at >= PRUNE_EVERY:
            self.pruned_at = now
            self._prune()

    def _prune(self) -> None:
        if self.retention is not None:
            days, most = self.retention
            self._guarded(lambda: self.store.prune(days, most), " (old runs are not pruned now)")

    def _write(self, flow_events: list[Any], rows: list[Row]) -> None:
        size = sum(len(row[2]) for row in rows)
        self.written.update(row[0] for row in rows)
        self.unchecked += size
        for event in flow_events:
            if isinstance(event, FlowRunStarted) and event.pid == self.driver_pid:
                self.driving.add(event.run_id)
            elif isinstance(event, FlowRunState) and is_finished(event.state):
                self.driving.discard(event.run_id)
        self.kept.append((flow_events, rows, size))
        self.kept_bytes += size
        if len(self.kept) == 1 or time.monotonic() >= self.retry_at:
            self._write_kept()
        else:
            self._keep_at_most()

    def _write_kept(self) -> None:
        """Write the kept batches (usually just the one received) in one transaction, with
        a line in the log of each run whose records had to be dropped meanwhile. While the
        database is unavailable they stay kept, and are tried again later
        (``retry_at``); a batch the database refuses for any other reason is dropped, and
        the failure reported (a malformed event must not stop the writing of the rest)."""
        from flowcore.runs import writes

        batches = self.kept
        self._keep([])
        notes = self._drop_notes()
        flow_events = [event for batch in batches for event in batch[0]]
        rows = [row for batch in batches for row in batch[1]] + notes
        error = self._attempt(
            lambda: self.store.write(lambda c: writes.write_events(c, flow_events, rows))
        )
        if error is None:
            self._writing_again(bool(notes))
            if any(isinstance(event, FlowRunStarted) for event in flow_events):
                self._prune_now_and_then()
            return
        from flowcore.runs.store import is_unavailable

        if self.removed:
            return
        if is_unavailable(error):
            self._keep(batches)
            self._unavailable(error)
        elif len(batches) > 1:  # find the batch at fault: write them one at a time
            for at, batch in enumerate(batches):
                self._keep([batch])
                self._write_kept()
                if self.kept:  # unavailable again: keep this one and those after it
                    self._keep(batches[at:])
                    return
        else:
            self._failed(error, " (these run records are lost)")

    def _keep(self, batches: list[tuple[list[Any], list[Row], int]]) -> None:
        self.kept, self.kept_bytes = batches, sum(batch[2] for batch in batches)

    def _attempt(self, write: Callable[[], object]) -> Exception | None:
        """Run ``write``; its error, if it failed. A SQLite store whose directory has been
        removed (a test's temporary home directory, deleted as the test ends) is reported
        once as such, and nothing more is written to it."""
        if self.removed:
            return None
        try:
            write()
        except Exception as exc:
            directory = self.store.removed_directory()
            if directory is not None:
                self.removed = True
                self.reply(("removed", directory))
            return exc
        return None

    def _unavailable(self, error: Exception) -> None:
        """Keep what could not be written, and try again later; reported once."""
        self.unavailable = self._describe(error)
        self.retry_at = time.monotonic() + self.retry_delay
        self.retry_delay = min(self.retry_delay * 2, RETRY_MOST)
        if not self.kept_since:
            self.kept_since = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
        if not self.failing:
            self.failing = True
            self.reply(
                (
                    "error",
                    f"{self.unavailable} (run records are kept in memory and written once "
                    "it works again; flowcore tries every few seconds)",
                )
            )
        self._keep_at_most()

    def _keep_at_most(self) -> None:
        """Drop the oldest kept batches beyond :data:`KEEP_AT_MOST` bytes (saying so once,
        and in the log of each run concerned once written again)."""
        if self.kept_bytes <= KEEP_AT_MOST:
            return
        self.error = (
            f"run store {self.store.display}: more than {KEEP_AT_MOST >> 20} MiB of run "
            f"records wait to be written ({self.unavailable}); the oldest are dropped"
        )
        if not self.dropped:
            self.reply(("error", self.error))
        while self.kept_bytes > KEEP_AT_MOST and len(self.kept) > 1:
            flow_events, rows, size = self.kept.pop(0)
            self.kept_bytes -= size
            self.dropped.update(row[0] for row in rows)
            self.dropped.update(event.run_id for event in flow_events)

    def _drop_notes(self) -> list[Row]:
        """A journal row per run whose records were dropped, with an ERROR line saying so."""
        if not self.dropped:
            return []
        from flowcore.runs.journal import pack

        now = time.time()
        text = (
            f"the run store could not write part of this run's records (from "
            f"{self.kept_since}: {self.unavailable}), and dropped them: the states and "
            "lines shown for this run are incomplete"
        )
        lines = [
            (run_id, None, -1, now, logging.ERROR, "flowcore.runs", text)
            for run_id in sorted(self.dropped)
        ]
        return pack([], lines)

    def _writing_again(self, dropped: bool) -> None:
        """A write succeeded: say so when it wrote what was kept (``dropped``: and the
        lines of the runs whose records were dropped), and retry quickly next time."""
        if not (self.failing or self.unavailable):
            return
        if self.failing and self.kept_since:
            lost = "; some were dropped (their runs' logs say so)" if dropped else ""
            self.reply(
                (
                    "recovered",
                    f"run store {self.store.display}: writing again; the run "
                    f"records kept since {self.kept_since} are written{lost}",
                )
            )
        self.failing = False
        self.kept_since, self.unavailable = "", ""
        self.retry_delay, self.retry_at = RETRY_FIRST, 0.0
        self.dropped = set()

    def _failed(self, error: Exception, consequence: str) -> None:
        text = self._describe(error)
        self.error = text
        if not self.failing:
            self.failing = True
            self.reply(("error", text + consequence))

    def _describe(self, error: Exception) -> str:
        from flowcore.runs.store import RunStoreError

        if isinstance(error, RunStoreError):
            return str(error)
        return f"run store {self.store.display}: could not write: {error!r}"

    def _end(self, linger: bool, fold: bool = True) -> None:
        """(The writer ends.) Write what is still kept, then fold what was written
        (``fold_at_end``). Trying once more, or, when nobody waits for this writer (its
        store's process is exiting, or gone: ``linger``), for up to ``self.linger``
        seconds, with stderr let go first (see :meth:`_fold_written`)."""
        deadline = time.monotonic()
        if linger and self.kept and self.linger:
            deadline += self.linger
            self.detach()
        while self.kept:
            time.sleep(max(0.0, min(self.retry_at, deadline) - time.monotonic()))
            self._write_kept()
            if self.kept and time.monotonic() >= deadline:
                self.reply(
                    (
                        "error",
                        f"{self.unavailable} (the run records kept since "
                        f"{self.kept_since} could not be written, and are lost)",
                    )
                )
                break
        if fold:
            self._fold_written()

    def _fold_written(self) -> None:
        """(At the end, when ``fold_at_end``.) Fold the journal of the runs written here
        into the tables, so that the next reader (``flowcore runs ls`` after a run) has
        nothing to fold, and answers at once. The store does not wait for
        this (it has its answer to the stop already), nor hears of a failure: what is not
        folded here is folded by its next reader, as always. Nobody waits for it, so it
        leaves the file to other writers (a new run's) half of the time."""
        if self.fold_at_end and self.written:
            self.detach()
            self._fold(sorted(self.written), self.max_log_lines, yielding=True)

    def _fold(self, run_ids: list[str], max_log_lines: int, yielding: bool = False) -> str | None:
        """Fold the journal of ``run_ids``; the error's message, if it failed."""
        self.unchecked += CHECKPOINT_AFTER  # a fold rewrites much: checkpoint when idle
        try:
            self.store.fold_here(run_ids, max_log_lines, yielding)
        except Exception as exc:
            return str(exc)
        return None

    def _checkpoint(self) -> None:
        """Copy what the WAL holds into the database file now, while nobody waits on
        this writer (:meth:`flowcore.runs.store.RunStore.checkpoint`)."""
        self.unchecked = 0
        self.store.checkpoint()

    def _beat(self) -> None:
        if self.driving and not self.kept:
            from flowcore.runs import writes

            runs, now = sorted(self.driving), datetime.now(timezone.utc)
            self._guarded(
                lambda: self.store.write(lambda c: writes.beat(c, runs, now)),
                " (the heartbeats of this process's runs are not stamped until it works again)",
            )

    def _guarded(self, write: Callable[[], object], consequence: str) -> None:
        """Run ``write`` (a heartbeat, the pruning); a failure is kept for the next flush's
        answer and reported once (until a write succeeds)."""
        error = self._attempt(write)
        if error is None:
            if not self.kept:  # (a database unavailable at the open answers again)
                self._writing_again(False)
        elif not self.removed:
            self._failed(error, consequence)


# -- the store's side: channels to the writer -----------------------------------------------------------------


class ProcessChannel:
    """The writer in a process of its own (:func:`flowcore.runs.writer.main`): messages
    go to its stdin, answers come back from its stdout and are read on a thread here."""

    def __init__(self, options: dict[str, Any], answer: Reply) -> None:
        if not sys.executable:
            raise ValueError("this interpreter does not know its executable (sys.executable)")
        root = str(Path(__file__).resolve().parents[2])  # where this flowcore is imported from
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            # (root goes first: ``-c`` puts the working directory before PYTHONPATH, and
            # a flowcore there, another version's, must not be the writer's)
            [sys.executable, "-c", _WRITER_PROGRAM, root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self.pid = self.process.pid
        self.alive = True
        self._ending = False  # a stop was sent, or the writer said it cannot open
        self._lost = False
        self._lost_lock = threading.Lock()
        self._stop_token: int | None = None
        self._at_exit = False
        self._stopped = threading.Event()  # the stop was answered
        self._answer = answer
        self._stdin: Any = self.process.stdin
        self._structures = StructureMemo(StructureMemo.SENT_STRUCTURES)
        self._stdout: Any = self.process.stdout
        self._reader = threading.Thread(
            target=self._read_answers, name="flowcore-run-store-answers", daemon=True
        )
        self._reader.start()
        self.send(("open", options))

    def send(self, message: tuple[Any, ...]) -> bool:
        """Write ``message`` to the writer; False when it is gone."""
        if not self.alive:
            return False
        if message[0] == "stop":
            self._ending = True
            self._stop_token = message[1]
            self._at_exit = bool(message[2])
        elif message[0] == "events" and message[1]:
            message = (message[0], self._structures.elide(message[1]), *message[2:])
        try:
            self._stdin.write(encode(message))
            self._stdin.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the pipe was closed here
            self.alive = False
            return False
        return True

    def _read_answers(self) -> None:
        reader = FrameReader(self._stdout.fileno())
        while True:
            messages = reader.read(None)
            for message in messages or ():
                if message[0] == "broken":
                    self._ending = True
                self._answer(message)
                if message[0] == "flushed" and message[1] == self._stop_token:
                    self._stopped.set()
            if messages is None:
                break
        self.process.wait()
        self.alive = False
        self._stdout.close()
        self.report_lost()

    def report_lost(self) -> None:
        """Say once that the writer ended without being asked to (the thread that reads
        its answers meets the end of its stdout; the feeder, a closed pipe: whichever is
        first)."""
        with self._lost_lock:
            if self._ending or self._lost:
                return
            self._lost = True
        try:
            status: int | None = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        self._answer(("lost", f"pid {self.pid} ended with status {status}"))

    def close(self) -> None:
        """Close the writer's stdin: it writes what it has and ends, and this process
        waits for that. At exit, once the stop is answered, everything is written and the
        writer only folds the journal before it ends: the exiting process does not wait."""
        if self._stop_token is not None:  # wait for the answer (or the writer's end)
            while not self._stopped.wait(0.05) and self._reader.is_alive():
                pass
        self._ending = True
        try:
            self._stdin.close()
        except BrokenPipeError:
            pass
        if self._stopped.is_set() and self._at_exit:
            return
        self.process.wait()
        if self._reader is not threading.current_thread():
            self._reader.join()

    def abandon(self) -> None:
        """(In a forked child.) Close this process's copies of the pipes, nothing else."""
        self.alive = False
        for stream in (self._stdin, self._stdout):
            try:
                os.close(stream.fileno())
            except (OSError, ValueError):
                pass


class ThreadChannel:
    """The writer on a thread of this process (``RunStore(writer="thread")``, or when
    the writer process cannot start or died)."""

    pid = None

    def __init__(self, store: RunStore, options: dict[str, Any], answer: Reply) -> None:
        self._queue: SimpleQueue[tuple[Any, ...] | None] = SimpleQueue()
        writer = Writer(store, options, answer)
        self._thread = threading.Thread(
            target=writer.run, args=(self._read,), name="flowcore-run-store-writer", daemon=True
        )
        self._thread.start()

    def send(self, message: tuple[Any, ...]) -> bool:
        if not self._thread.is_alive():
            return False
        self._queue.put(message)
        return True

    def _read(self, timeout: float) -> list[Any] | None:
        try:
            first = self._queue.get(timeout=timeout)
        except Empty:
            return []
        messages = [first]
        while not self._queue.empty():
            messages.append(self._queue.get())
        if None in messages:
            kept = messages[: messages.index(None)]
            return kept or None
        return messages

    def close(self) -> None:
        self._queue.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join()

    def abandon(self) -> None:
        pass


Channel = ProcessChannel | ThreadChannel


def _detach_from_stderr() -> None:
    """Point this process's stdout and stderr (the store's process's stderr, inherited) at
    the null device. Before the fold at the end, which nobody waits for: a program that ran
    the store's process and reads its output to the end (``subprocess.run(...,
    capture_output=True)``) then gets it when that process ends, not when this one does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    finally:
        os.close(devnull)


def main() -> None:
    """The writer process's program. Messages come on stdin;
    answers go to the stdout it was started with (stdout itself then points at stderr, so
    nothing printed by a library can garble them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    parent = os.getppid()
    reader = FrameReader(0)
    first = reader.read(None)
    if not first or first[0][0] != "open":
        sys.stderr.write("flowcore.runs.writer: started without an 'open' message\n")
        raise SystemExit(2)
    options = first[0][1]

    def reply(message: tuple[Any, ...]) -> None:
        try:
            answers.write(encode(message))
        except BrokenPipeError:  # the store's process is gone; what is left is still written
            pass

    from flowcore.runs.store import RunStore

    store = RunStore(
        options["url"],
        crash_after=float(options["crash_after"]),
        max_log_lines=int(options["max_log_lines"]),
    )
    writer = Writer(store, options, reply)
    writer.detach = _detach_from_stderr
    writer.linger = LINGER_FOR
    pending = first[1:]

    def read(timeout: float) -> list[Any] | None:
        nonlocal pending
        if pending:
            taken, pending = pending, []
            return taken
        return reader.read(timeout)

    try:
        writer.run(read, lambda: os.getppid() == parent)
    finally:
        store.close()
