"""What became of each call a ``DaskExecutor`` sent, and what a dead worker may cost.

A session keeps one :class:`Outcomes`: every future it hands out is tracked, and its
result (or error) comes to the driver as soon as the call finishes, on the client's event
loop, whatever the driver's own thread is doing::

    submit ──> Outcomes.track(future) ──(calls finish)──> a collector thread gathers them,
               a batch at a time: outcomes[key] = (status, value)
    wait / collect ──> settle(futures): block until each key has an outcome

So a state the driver has collected is safe: a worker that dies later loses only its
copy. ``collect`` then tells the outcomes apart (:func:`describe_failure`): a call whose
worker died while it ran (``KilledWorker``) or before its result was collected becomes a
:class:`WorkerCrashed`, a call that never started because a call it needs failed that way
becomes an :class:`UpstreamCrashed` (Dask's ``exception_blame`` names the culprit), a call
the machinery could not carry out (unpicklable result, code the workers cannot import, a
result the driver cannot load: :class:`ResultUnloadable`) a :class:`DaskTaskError`;
exceptions of the task's own code (``raise_on_exception``) are raised as they are.

On the temporary clusters a ``DaskExecutor`` creates, :class:`CrashPolicy` (a scheduler
plugin) makes flowcore's ``max_retries`` the retry policy for calls that crashed a worker,
without failing the calls that only waited on it::

    run_call starts on a worker ──(event "flowcore-started": key, worker)──> running[key]
    the worker dies ──> Dask releases its calls and sends them to other workers
        started there (in running) ──> run_spec := worker_died: raises WorkerDied there
        only queued there            ──> runs again, as Dask does
    a call finishes ──> run_spec := result_lost: if the worker holding the result dies,
                        Dask's "recomputation" raises ResultLost instead of running the
                        task a second time

So a finished call never runs twice, a crashed call is not rerun by Dask, and calls that
were merely queued on the dead worker do not notice. Dask's own
``distributed.scheduler.allowed-failures`` (default 3) still bounds the reruns of a call
whose start event never left its worker (a call that kills its worker within a few
milliseconds); after that Dask fails it with ``KilledWorker``. On a cluster at an
``address`` no plugin is installed and the cluster's settings apply: Dask reruns a call
whose worker died up to ``allowed-failures`` times and recomputes lost results.

:func:`watching_workers` reports workers joining and leaving the cluster.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from flowcore.exceptions import DaskTaskError, FlowcoreException, UpstreamCrashed, WorkerCrashed

__all__ = [
    "CrashPolicy",
    "Outcomes",
    "ResultLost",
    "ResultUnloadable",
    "WorkerDied",
    "describe_failure",
    "failure_causes",
    "install_crash_policy",
    "report_start",
    "result_lost",
    "subscribed",
    "watching_workers",
    "worker_died",
]

_PLUGIN_NAME = "flowcore-crash-policy"
_STARTED_TOPIC = "flowcore-started"


class ResultLost(FlowcoreException):
    """Raised on a worker in place of running a finished call a second time."""


class ResultUnloadable(FlowcoreException):
    """A finished call's result came to the driver but could not be loaded there (its
    message: the loading's error)."""


class WorkerDied(FlowcoreException):
    """Raised on a worker in place of running again a call whose worker died under it."""


def result_lost() -> None:
    """The ``run_spec`` of a finished call on a temporary cluster (see the module docs)."""
    raise ResultLost("the Dask worker holding its result died before the result was collected")


def worker_died(worker: str) -> None:
    """The ``run_spec`` of a call whose worker died while it ran (see the module docs)."""
    raise WorkerDied(f"the Dask worker {worker} died while it ran")


def report_start() -> None:
    """On a worker, as a call starts: tell the scheduler's :class:`CrashPolicy`."""
    from distributed import get_worker

    worker = get_worker()
    worker.log_event(_STARTED_TOPIC, {"key": worker.get_current_task()})


class CrashPolicy(SchedulerPlugin):
    """Scheduler plugin: no Dask-level reruns of crashed or finished calls (module docs).
    Only the executor's calls (``flowcore.executors._dask_worker.run_call``) are concerned; the
    shared blobs of a batch are recomputed by Dask as usual."""

    name = _PLUGIN_NAME

    def __init__(self) -> None:
        self.scheduler: Any = None
        self.running: dict[Any, tuple[str, int]] = {}  # key -> (worker, suspicious count)
        self.crashed: dict[Any, str] = {}

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def log_event(self, topic: str, msg: Any) -> None:
        if topic == _STARTED_TOPIC and isinstance(msg, dict) and self.scheduler is not None:
            key = msg.get("key")
            suspicious = getattr(self.scheduler.tasks.get(key), "suspicious", 0)
            self.running[key] = (str(msg.get("worker")), suspicious)

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "memory":
            self.running.pop(key, None)
            self._replace(key, result_lost)
        elif start == "processing" and finish in ("released", "waiting"):
            worker, suspicious = self.running.pop(key, ("", 0))
            ts = self.scheduler.tasks.get(key)
            # Dask counts a worker's death against its tasks only when the worker did not
            # leave on purpose (retired by adaptive scaling: the run goes on elsewhere)
            if (
                worker
                and worker not in self.scheduler.workers
                and getattr(ts, "suspicious", 0) > suspicious
            ):
                self.crashed[key] = worker
                self._replace(key, worker_died, worker)
        elif finish == "erred":
            self.running.pop(key, None)
        elif finish == "forgotten":
            self.running.pop(key, None)
            self.crashed.pop(key, None)

    def _replace(self, key: Any, func: Callable[..., None], *args: Any) -> None:
        ts: Any = self.scheduler.tasks.get(key) if self.scheduler is not None else None
        spec = getattr(ts, "run_spec", None)
        if spec is not None and _is_call(getattr(spec, "func", None)):
            from dask.task_spec import Task

            ts.run_spec = Task(key, func, *args)


def _is_call(func: Any) -> bool:
    return (
        getattr(func, "__module__", None) == "flowcore.executors._dask_worker"
        and getattr(func, "__qualname__", None) == "run_call"
    )


def install_crash_policy(client: Any) -> None:
    """Register :class:`CrashPolicy` on ``client``'s scheduler."""
    client.register_plugin(CrashPolicy(), name=_PLUGIN_NAME)


class Outcomes:
    """The outcome of every tracked future of one session, collected as it finishes.

    ``distributed.as_completed`` reports finished futures; a collector thread gathers
    their results in one ``client.gather`` per batch (everything that finished since the
    last one), so a big map costs a few gathers, not one per call. Call :meth:`close` at
    the end of the session.
    """

    def __init__(self, client: Any) -> None:
        from distributed import as_completed

        self._client = client
        self._done = as_completed([], loop=client.loop)  # type: ignore[no-untyped-call]
        self._tracked: set[Any] = set()
        self._outcomes: dict[Any, tuple[str, Any]] = {}
        self._ungathered: dict[Any, Any] = {}  # finished, but the batch gather failed
        self._changed = threading.Condition()
        self._closed = False
        self._collector = threading.Thread(
            target=self._collect, name="flowcore-dask-collector", daemon=True
        )
        self._collector.start()

    def track(self, futures: list[Any]) -> None:
        """Collect these futures' results as they finish; an outcome is kept until the
        driver drops the future (so a result nobody holds is not kept here either)."""
        new = [f for f in futures if f.key not in self._tracked]
        for future in new:
            self._tracked.add(future.key)
            weakref.finalize(future, self._forget, future.key)
        if new:
            self._done.update(new)  # type: ignore[no-untyped-call]

    def _forget(self, key: Any) -> None:
        self._tracked.discard(key)
        self._outcomes.pop(key, None)
        self._ungathered.pop(key, None)

    def settle(self, futures: list[Any]) -> dict[Any, tuple[str, Any]]:
        """``{key: (status, value)}`` for ``futures``, once each has finished; status is
        "finished" (value: the result), "error" or "cancelled" (value: the exception)."""
        self.track(futures)
        with self._changed:
            # one pass: a future found finished stays so (it is held, so never forgotten)
            for future in futures:
                while future.key not in self._outcomes and future.key not in self._ungathered:
                    if not self._collector.is_alive():  # then each one is asked for below
                        break
                    self._changed.wait(timeout=1.0)
        for future in futures:
            if future.key not in self._outcomes:
                self._outcomes[future.key] = _outcome(future, self._client)
        return {f.key: self._outcomes[f.key] for f in futures}

    def close(self) -> None:
        ready = self._done.thread_condition
        with ready:
            self._closed = True
            ready.notify_all()
        self._collector.join()

    def _collect(self) -> None:
        done, ready = self._done, self._done.thread_condition
        while True:
            with ready:  # as_completed queues a future, then notifies under this lock
                while not done.has_ready() and not self._closed:  # type: ignore[no-untyped-call]
                    ready.wait()
            if self._closed:
                return
            batch = done.next_batch(block=False)  # type: ignore[no-untyped-call]
            found = self._gather(batch)
            with self._changed:
                self._outcomes.update(found)
                self._ungathered.update((f.key, f) for f in batch if f.key not in found)
                self._changed.notify_all()

    def _gather(self, batch: list[Any]) -> dict[Any, tuple[str, Any]]:
        """The outcomes of ``batch`` that one gather gives (none if the gather fails:
        :meth:`settle` then asks for each future on its own)."""
        finished = [f for f in batch if f.status == "finished"]
        try:
            values = self._client.gather(finished) if finished else []
        except Exception:  # noqa: BLE001 - e.g. a result lost with its worker meanwhile
            return {}
        found = {f.key: ("finished", value) for f, value in zip(finished, values)}
        for future in batch:
            if future.key not in found:
                found[future.key] = _outcome(future, self._client)
        return found


def _outcome(future: Any, client: Any) -> tuple[str, Any]:
    """``(status, result or exception)`` of a future that has finished (one way or another).
    A finished call whose result came but could not be loaded here is a
    :class:`ResultUnloadable` error."""
    try:
        return "finished", client.gather(future)
    except BaseException as exc:  # noqa: BLE001 - the call's error, handed to the caller
        if future.status == "finished" and _raised_by_loading(exc):
            return "error", ResultUnloadable(f"{type(exc).__name__}: {exc}")
        return ("cancelled" if future.status == "cancelled" else "error"), exc


def _raised_by_loading(exc: BaseException) -> bool:
    """Whether gathering a finished call failed loading its result (an error of the
    result's own reduce or ``__init__``), not reaching it (a lost connection or worker)."""
    import asyncio

    return isinstance(exc, Exception) and not isinstance(
        exc, (OSError, TimeoutError, asyncio.TimeoutError)
    )


def failure_causes(client: Any, keys: list[Any]) -> dict[Any, tuple[Any, str | None]]:
    """``{key: (the key Dask blames for its failure, the worker that died under it or
    None)}``: Dask's ``exception_blame``, and :class:`CrashPolicy`'s record of calls that
    were running on a worker that died (such a call may fail later, and for another
    reason: an input that was lost with the same worker)."""

    def causes(dask_scheduler: Any, keys: list[Any], plugin: str) -> dict[Any, Any]:
        crashed = getattr(dask_scheduler.plugins.get(plugin), "crashed", {})
        found = {}
        for key in keys:
            culprit = getattr(dask_scheduler.tasks.get(key), "exception_blame", None)
            found[key] = (key if culprit is None else culprit.key, crashed.get(key))
        return found

    try:
        return dict(client.run_on_scheduler(causes, keys=keys, plugin=_PLUGIN_NAME))
    except Exception:  # noqa: BLE001 - a scheduler that refuses functions: blame each key itself
        return {}


def describe_failure(
    exc: BaseException,
    label: str,
    culprit: str | None,
    crashed_on: str | None,
    translate: Callable[[BaseException], Exception],
) -> Exception:
    """The exception ``collect`` returns for a call that failed with ``exc``: ``culprit``
    is the label of the call blamed for it when that is another call (None: this one),
    ``crashed_on`` the worker that died while the call ran on it (None: none did)."""
    from distributed import KilledWorker

    if crashed_on is not None:
        return WorkerCrashed(
            label,
            f"the Dask worker {crashed_on} died while it ran",
            f"Task {label!r}: its Dask worker died while it ran",
        )
    if culprit is not None:
        return UpstreamCrashed(label, culprit)
    if isinstance(exc, KilledWorker):
        cause = f"{type(exc).__name__}: {exc}"
        return WorkerCrashed(
            label, cause, f"Task {label!r}: its Dask worker died while it ran ({cause})"
        )
    if isinstance(exc, WorkerDied):
        return WorkerCrashed(label, str(exc), f"Task {label!r}: its Dask worker died while it ran")
    if isinstance(exc, ResultLost):
        return WorkerCrashed(
            label,
            str(exc),
            f"Task {label!r}: the Dask worker holding its result died before "
            "flowcore collected the result",
        )
    if isinstance(exc, DaskTaskError):
        return exc
    if isinstance(exc, ResultUnloadable):
        from flowcore.executors._pools import unloadable_result

        return DaskTaskError(
            unloadable_result(label, "in the flow's process after pickling", str(exc))
        )
    return translate(exc)


@contextmanager
def watching_workers(
    client: Any,
    on_change: Callable[[str, Any], None],
    logger: logging.Logger,
) -> Iterator[None]:
    """Report workers joining and leaving the cluster (the scheduler's "all" event topic)
    as Prefect 1 does: ``on_change("add", {"workers": {address: {}}})`` and
    ``on_change("remove", address)``. A worker that left unexpectedly (not retired) while
    it ran or held task runs is also logged as a WARNING on ``logger``."""

    def on_event(event: tuple[float, Any]) -> None:
        message = event[1] if isinstance(event[1], dict) else {}
        action = message.get("action")
        worker = message.get("worker")
        if action == "add-worker":
            on_change("add", {"workers": {worker: {}}})
        elif action == "remove-worker":
            on_change("remove", worker)
            lost = len(message.get("processing-tasks") or ()) + len(
                message.get("lost-computed-tasks") or ()
            )
            if lost and not message.get("expected"):
                logger.warning(
                    "Dask worker %s left the cluster while running or holding %d task run(s)",
                    worker,
                    lost,
                )

    with subscribed(client, "all", on_event):
        yield


@contextmanager
def subscribed(
    client: Any, topic: str, handler: Callable[[tuple[float, Any]], None]
) -> Iterator[None]:
    """Within the block, ``handler(event)`` is called (on the client's event loop) for each
    event of the scheduler's ``topic``."""
    client.subscribe_topic(topic, handler)
    _subscribe_now(client, topic)
    try:
        yield
    finally:
        _unsubscribe(client, topic)


def _subscribe_now(client: Any, topic: str) -> None:
    """Make the subscription take effect before the session goes on (as Prefect 1 waits
    for its subscription's reply): ``subscribe_topic`` only queues a message, and a worker
    that joins before it is sent would go unreported."""
    client_id = client.id

    def subscribe(dask_scheduler: Any) -> None:
        dask_scheduler.subscribe_topic(topic, client_id)

    try:
        client.run_on_scheduler(subscribe)
    except Exception:  # noqa: BLE001 - e.g. a scheduler that refuses functions: the message
        pass  # queued by subscribe_topic still arrives


def _unsubscribe(client: Any, topic: str) -> None:
    """Unsubscribe before the client closes. ``unsubscribe_topic`` only queues a message,
    which a closing client may never flush; the scheduler would then log a CRITICAL
    traceback sending the client's own "remove-client" event to its closed stream. A direct
    call does it at once (the function travels by value: the scheduler needs no flowcore)."""
    client_id = client.id

    def unsubscribe(dask_scheduler: Any) -> None:
        dask_scheduler.unsubscribe_topic(topic, client_id)

    try:
        client.run_on_scheduler(unsubscribe)
    except Exception:  # noqa: BLE001 - e.g. a scheduler that refuses functions; best effort
        client.unsubscribe_topic(topic)
