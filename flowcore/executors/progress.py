"""Progress a long call reports while it runs, so that what it finished outlives its worker.

A call that does many things in turn (a batch of mapped children) calls
:func:`running` as it starts each piece and :func:`report` with each finished one. Where the executor can lose a call with its worker
(``DaskExecutor``), ``run_call`` installs a sink for the call (:func:`reporting`); the
pieces are sent to the driver while the call runs, and the driver hands them back for a
call that was lost (``executor.partial_results(future)``). Elsewhere :func:`report` does
nothing. A sink opens its channel to the driver and joins the flusher only when its call
first reports, so a call that reports nothing (a single task run) pays for neither::

    worker:  running(marker), report(piece) ──> the call's sink keeps the marker and
             buffers the pieces ──(flusher thread, every FLUSH_EVERY s, once the call has
             run that long)──> Dask event "flowcore-progress" {key, pickled (pieces,
             marker)} ──> scheduler ──> the driver's subscription keeps them by key until
             the call finishes
    driver:  the call is lost with its worker ──> partial_results(future) = (its pieces,
             the marker of the last flush: what was running then, None if none was sent)

A piece finished less than ``FLUSH_EVERY`` seconds before the worker died had not left
it yet, and is lost with it. Quick calls (most batches) finish before their first flush
and send nothing.
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

__all__ = ["FLUSH_EVERY", "TOPIC", "ProgressSink", "decode", "report", "reporting", "running"]

TOPIC = "flowcore-progress"
FLUSH_EVERY = 0.2  # seconds

_sink: contextvars.ContextVar[ProgressSink | None] = contextvars.ContextVar(
    "flowcore_progress_sink", default=None
)


def report(piece: Any) -> None:
    """Report a finished piece of the running call (nothing when no one listens)."""
    sink = _sink.get()
    if sink is not None:
        sink.add(piece)


def running(marker: Any) -> None:
    """Say what the running call is doing now (sent with the next flush)."""
    sink = _sink.get()
    if sink is not None:
        sink.mark(marker)


class ProgressSink:
    """Buffers the pieces of one call, which :func:`_flush_forever` sends with the
    ``send(bytes)`` that ``connect()`` gives (called in the call's thread, when it first
    reports)."""

    def __init__(self, connect: Callable[[], Callable[[bytes], None]]) -> None:
        self._connect = connect
        self._send: Callable[[bytes], None] | None = None
        self._pieces: list[Any] = []
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.marker: Any = None
        self._sent_marker: Any = None

    def add(self, piece: Any) -> None:
        if self._send is None:
            self._open()
        with self._lock:
            self._pieces.append(piece)

    def mark(self, marker: Any) -> None:
        if self._send is None:
            self._open()
        self.marker = marker

    def _open(self) -> None:
        self._send = self._connect()
        _watch(self)

    def flush(self, now: float) -> None:
        send = self._send
        if send is None or now - self._started < FLUSH_EVERY:
            return
        with self._lock:
            pieces, self._pieces = self._pieces, []
            marker = self.marker
        if pieces or marker != self._sent_marker:
            self._sent_marker = marker
            try:
                data = pickle.dumps((pieces, marker), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - closures, __main__ code: cloudpickle does it
                import cloudpickle  # (here: a run that reports no progress never loads it)

                data = cloudpickle.dumps((pieces, marker), protocol=pickle.HIGHEST_PROTOCOL)
            send(data)


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
    """Within the block, :func:`report` buffers pieces that a process-wide thread sends
    with the ``send`` that ``connect()`` gives when the block first reports (see the
    module docs)."""
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
