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
             {key, pickled (new pieces, marker)} ──> scheduler ──> the driver's
             subscription keeps them by key until the call finishes
    driver:  the call is lost with its worker ──> partial_results(future) = (its pieces,
             the marker of the last flush: what was running then, None if none was sent)

A piece finished less than ``FLUSH_EVERY`` seconds before the worker died had not left
it yet, and is lost with it. Quick calls (most batches) finish before their first flush
and send nothing. A source is read in the flusher's thread while the call goes on: it must
only read what the call has finished (under the GIL, a list's length and then its items).
"""

from __future__ import annotations

import contextvars
import pickle
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["FLUSH_EVERY", "TOPIC", "ProgressSink", "Source", "decode", "follow", "reporting"]

TOPIC = "flowcore-progress"
FLUSH_EVERY = 0.2  # seconds

#: ``source(n) -> (the pieces finished after the first n, what is running now)``
Source = Callable[[int], tuple[list[Any], Any]]

_sink: contextvars.ContextVar[ProgressSink | None] = contextvars.ContextVar(
    "flowcore_progress_sink", default=None
)


def follow(source: Source) -> None:
    """Have the running call's progress read from ``source`` (nothing when no one
    listens)."""
    sink = _sink.get()
    if sink is not None:
        sink.follow(source)


class ProgressSink:
    """Sends what the source of one call (:meth:`follow`) finished, with the
    ``send(bytes)`` that ``connect()`` gives (called in the call's thread, when it
    follows a source), from :func:`_flush_forever`'s thread."""

    def __init__(self, connect: Callable[[], Callable[[bytes], None]]) -> None:
        self._connect = connect
        self._send: Callable[[bytes], None] | None = None
        self._source: Source | None = None
        self._sent = 0  # pieces sent so far
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._sent_marker: Any = None

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
                try:
                    data = pickle.dumps((pieces, marker), protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:  # noqa: BLE001 - closures, __main__ code: cloudpickle does it
                    import cloudpickle  # (here: a run that reports no progress never loads it)

                    data = cloudpickle.dumps((pieces, marker), protocol=pickle.HIGHEST_PROTOCOL)
                send(data)
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
def reporting(connect: Callable[[], Callable[[bytes], None]]) -> Iterator[ProgressSink]:
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
    """``(pieces, last marker)`` of a call's flushes, in the order sent."""
    pieces: list[Any] = []
    marker = None
    for data in flushes:
        more, marker = pickle.loads(data)
        pieces.extend(more)
    return pieces, marker
