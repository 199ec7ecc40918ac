"""Progress a long call reports while it runs, so that what it finished outlives its worker.

A call that does many things in turn (a batch of mapped children) calls :func:`follow`
as it starts, with a *source*: ``source(n)`` gives ``(the pieces finished after the first
n, what is running now)``. Where the executor can lose a call with its worker
(``DaskExecutor``), ``run_call`` installs a sink for the call (:func:`reporting`); a
process-wide flusher thread asks the source for what is new and sends it to the driver
while the call runs, and the driver hands it back for a call that was lost
(``executor.partial_results(future)``). Elsewhere :func:`follow` does nothing. The call
keeps its pieces anyway (a batch, its ``ChildBatch``), so following costs it nothing per
piece; a sink opens its channel to the driver and joins the flusher only when its call
follows a source, so a call that reports nothing (a single task run) pays for neither::

    worker:  follow(source) ──(flusher thread, every FLUSH_EVERY s, once the call has
             run that long: source(pieces sent so far))──> Dask event "flowcore-progress"
             {key, pickled (attempt, sequence number, new pieces, marker)} ──> scheduler ──> the
             driver's subscription keeps them by key until the call finishes
             piece_ended(marker) (the call, as each piece ends): when the driver was last
             told that this piece is running, the call tells it at once that nothing
             known is running (marker None), and waits until the scheduler has it
    driver:  the call is lost with its worker ──> partial_results(future) = (its pieces,
             the marker of the last flush: the piece that was running when the worker
             died, or None when that is not known)

So a marker is never stale: a piece the driver was told is running cannot end, and the
call go on to the next, before the driver is told otherwise (a round trip to the
scheduler at most once per flush). A piece finished less than ``FLUSH_EVERY`` seconds
before the worker died had not left it yet, and is lost with it. Quick calls (most batches) finish before their first flush
and send nothing. A source is read in the flusher's thread while the call goes on: it must
only read what the call has finished (under the GIL, a list's length and then its items).
"""

from __future__ import annotations

import contextvars
import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "FLUSH_EVERY",
    "TOPIC",
    "ProgressSink",
    "Send",
    "Source",
    "decode",
    "follow",
    "piece_ended",
    "reporting",
]

TOPIC = "flowcore-progress"
FLUSH_EVERY = 0.2  # seconds

#: ``source(n) -> (the pieces finished after the first n, what is running now)``
Source = Callable[[int], tuple[list[Any], Any]]
#: ``send(data, wait)``: to the driver; with ``wait``, return once the scheduler has it
Send = Callable[[bytes, bool], None]

_sink: contextvars.ContextVar[ProgressSink | None] = contextvars.ContextVar(
    "flowcore_progress_sink", default=None
)


def follow(source: Source) -> None:
    """Have the running call's progress read from ``source`` (nothing when no one
    listens)."""
    sink = _sink.get()
    if sink is not None:
        sink.follow(source)


def piece_ended(marker: Any) -> None:
    """The running call finished the piece ``marker`` (see the module docs)."""
    sink = _sink.get()
    if sink is not None:
        sink.ended(marker)


class ProgressSink:
    """Sends what the source of one call (:meth:`follow`) finished, with the
    ``send(bytes, wait)`` that ``connect()`` gives (called in the call's thread, when it
    follows a source), from :func:`_flush_forever`'s thread, and from the call's thread
    when a piece the driver was told is running ends (:meth:`ended`)."""

    def __init__(self, connect: Callable[[], Send]) -> None:
        self._connect = connect
        self._send: Send | None = None
        self._source: Source | None = None
        self._sent = 0  # pieces sent so far
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._sent_marker: Any = None
        self._sequence = 0
        self._attempt = os.urandom(8)  # (Dask may run a call again: an existing cluster)

    def follow(self, source: Source) -> None:
        if self._send is None:
            self._send = self._connect()
            _watch(self)
        self._source = source

    def flush(self, now: float) -> None:
        send, source = self._send, self._source
        if send is None or source is None or now - self._started < FLUSH_EVERY:
            return
        with self._lock:
            pieces, marker = source(self._sent)
            if pieces or marker != self._sent_marker:
                self._send_now(send, pieces, marker, False)

    def ended(self, marker: Any) -> None:
        """(The call's thread.) The piece ``marker`` ended: if the driver was last told
        it is running, tell it, before the call goes on, what is finished and that
        nothing known is running (module docs)."""
        send, source = self._send, self._source
        if send is None or source is None or marker is None:
            return
        with self._lock:
            if self._sent_marker != marker:
                return
            pieces, _ = source(self._sent)
            try:
                self._send_now(send, pieces, None, True)
            except Exception:  # noqa: BLE001 - a closing worker: the call's result still counts
                pass

    def _send_now(self, send: Send, pieces: list[Any], marker: Any, wait: bool) -> None:
        self._sequence += 1
        message = (self._attempt, self._sequence, pieces, marker)
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - closures, __main__ code: cloudpickle does it
            import cloudpickle  # (here: a run that reports no progress never loads it)

            data = cloudpickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        send(data, wait)
        self._sent += len(pieces)
        self._sent_marker = marker


_active: weakref.WeakSet[ProgressSink] = weakref.WeakSet()
_flusher_lock = threading.Lock()
_flusher: threading.Thread | None = None


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_EVERY)
        now = time.monotonic()
        for sink in list(_active):
            try:
                sink.flush(now)
            except Exception:  # noqa: BLE001 - a closing worker: the call's result still counts
                pass


def _watch(sink: ProgressSink) -> None:
    """Have the process-wide flusher thread (started if need be) flush ``sink``."""
    global _flusher
    with _flusher_lock:
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(
                target=_flush_forever, name="flowcore-progress", daemon=True
            )
            _flusher.start()
    _active.add(sink)


@contextmanager
def reporting(connect: Callable[[], Send]) -> Iterator[ProgressSink]:
    """Within the block, what a source given to :func:`follow` finishes is sent by a
    process-wide thread with the ``send`` that ``connect()`` gives when the block first
    follows one (see the module docs)."""
    sink = ProgressSink(connect)
    token = _sink.set(sink)
    try:
        yield sink
    finally:
        _sink.reset(token)
        _active.discard(sink)


def decode(flushes: list[bytes]) -> tuple[list[Any], Any]:
    """``(pieces, last marker)`` of a call's flushes, in the order sent: by attempt (a
    call Dask ran again), in the order their first flushes came, and within an attempt by
    sequence number (a flush that waited may reach the driver before one that did not)."""
    attempts: dict[bytes, list[tuple[Any, ...]]] = {}
    for data in flushes:
        attempt, *message = pickle.loads(data)
        attempts.setdefault(attempt, []).append(tuple(message))
    pieces: list[Any] = []
    marker = None
    for messages in attempts.values():
        for message in sorted(messages, key=_first):
            pieces.extend(message[1])
            marker = message[2]
    return pieces, marker


def _first(message: tuple[Any, ...]) -> Any:
    return message[0]
