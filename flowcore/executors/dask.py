"""``DaskExecutor``: task runs on a Dask cluster (``LocalDaskExecutor``, on a local pool, is
in :mod:`flowcore.executors.local_dask` and importable from here as before).

The executor takes what the FlowRunner submits (``run_task`` plus arguments in which
upstream results are futures) and lets the futures, not the FlowRunner, order the work: a
call starts as soon as the futures among its arguments are done, and ``wait`` is only needed
where the FlowRunner itself must look at a state (before mapping, at the end of a pass).

``DaskExecutor`` (one ``distributed.Client`` per session)::

    session   a temporary cluster (cluster_class(**cluster_kwargs)), or the scheduler at
              ``address``; the retry passes of one ``flow.run`` share it
    submit    key "<task name>-<map index>-<uuid>" (or "<task name>-<uuid>"); the future
              is made at once and the call joins a buffer
    flush     at the next ``wait`` or every 1,000 submits: each call is pickled once
              (``_dask_packing``: futures inside become dependencies, objects repeated in
              the batch - the task, the flow context - become one shared key), and the
              batch goes to the scheduler as one graph per run of equal resources
              (``client.map``, pure=False), so a map of n children costs a few messages
    results   every future's result comes to the driver as the call finishes
              (``_dask_outcomes.Outcomes``), so a worker that dies later loses nothing
              the driver has
    wait      flush, then the collected results (the first failure raises)
    collect   the same, but a call the machinery could not carry out comes back as an
              exception in its place: ``WorkerCrashed``, ``UpstreamCrashed`` or
              ``DaskTaskError`` (the FlowRunner makes them task states)
    end       (as Prefect 1) on a cluster at an ``address`` or an in-process cluster,
              unless ``disable_cancellation_event``: a ``distributed.Event`` that every
              call checks before it starts is cleared (and the workers are told, so
              that they need not ask per call), so calls not yet started do nothing;
              calls no worker has are cancelled, and the session waits for the
              others; a temporary cluster of worker processes is closed, which stops
              everything

On a worker each call runs inside :func:`~flowcore.executors._dask_worker.run_call`,
which unpacks it, names the task in any error and, on a worker in its own process, checks
that the returned state pickles (distributed would otherwise hang moving an unpicklable
result). Errors of the machinery (unpicklable inputs or results, code the workers cannot
import, dead workers, a lost scheduler) become one :class:`DaskTaskError` that names the
task and the cause (raised in ``run_call``, at a flush, or by ``_translate`` while waiting,
``from`` the original error); an exception raised by a task's own code (with
``raise_on_exception``) passes through unchanged. On a temporary cluster a scheduler plugin
decides what a dead worker costs (``_dask_outcomes.CrashPolicy``: crashed calls are not
rerun by Dask, finished calls are never recomputed); on a cluster at an ``address`` the
cluster's settings apply.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, NamedTuple

from flowcore import configuration
from flowcore.exceptions import DaskTaskError
from flowcore.executors._dask_worker import IN_TASK, blob, cancel_locally, run_call
from flowcore.executors._futures import find_futures, map_futures
from flowcore.executors._naming import fn_name, task_key, task_label
from flowcore.executors.base import Executor
from flowcore.executors.local_dask import LocalDaskExecutor
from flowcore.utilities.logging import get_logger

__all__ = ["DaskExecutor", "DaskTaskError", "LocalDaskExecutor"]

_BATCH = 1000


def _resources(extra_context: dict[str, Any] | None) -> tuple[tuple[str, float], ...]:
    """``dask-resource:KEY=NUM`` task tags as sorted ``(KEY, NUM)`` pairs."""
    found: dict[str, float] = {}
    for tag in (extra_context or {}).get("task_tags") or ():
        text = str(tag)
        if not text.lower().startswith("dask-resource:"):
            continue
        name, _, amount = text.split(":", 1)[1].partition("=")
        try:
            if not name:
                raise ValueError(name)
            found[name] = float(amount)
        except ValueError:
            raise ValueError(
                f"Task {task_label(extra_context)!r}: tag {text!r} is not of the form "
                "'dask-resource:KEY=NUM'"
            ) from None
    return tuple(sorted(found.items()))


# -- DaskExecutor ---------------------------------------------------------------------------


class _Call(NamedTuple):
    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    label: str
    resources: tuple[tuple[str, float], ...]


class DaskExecutor(Executor):
    """Runs task runs on a Dask cluster: a temporary one, or the scheduler at ``address``.

    Args:
        address: the scheduler of a running cluster (default
            ``config.engine.executor.dask.address``; "" means none).
        cluster_class: the class (or its import path) of the temporary cluster; default
            ``config.engine.executor.dask.cluster_class`` (``distributed.LocalCluster``).
        cluster_kwargs: arguments of ``cluster_class``.
        adapt_kwargs: if given, ``cluster.adapt(**adapt_kwargs)`` (adaptive scaling).
        client_kwargs: arguments of ``distributed.Client`` (``set_as_default`` is False
            unless given).
        debug: a LocalCluster logs at WARNING instead of CRITICAL (default
            ``config.debug``).
        performance_report_path: write Dask's performance report (HTML, needs bokeh)
            there when the session ends; :attr:`performance_report` reads it back.
        disable_cancellation_event: on a cluster at an ``address`` or an in-process
            cluster, do without the ``distributed.Event`` each call checks before it starts
            (the session's end is also sent to the workers; a worker process it did not
            reach trusts a "set" answer for 1 s). With it, a session that ends (also early,
            on an error) stops the calls not yet started and waits for those running;
            without it, as on a temporary cluster of worker processes, the session ends at
            once.
        watch_worker_status: report workers joining and leaving the cluster to
            :meth:`on_worker_status_changed` (default: on unless ``adapt_kwargs`` is given,
            as adaptive clusters add and remove workers all the time).

    ``address`` together with ``cluster_class`` or ``cluster_kwargs`` is a ValueError.
    Tasks tagged ``"dask-resource:KEY=NUM"`` need ``{KEY: NUM}`` of a worker's resources.
    """

    def __init__(
        self,
        address: str | None = None,
        cluster_class: str | Callable[..., Any] | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
        debug: bool | None = None,
        performance_report_path: str | None = None,
        disable_cancellation_event: bool = False,
        watch_worker_status: bool | None = None,
    ) -> None:
        super().__init__()
        config = configuration.config
        if address is None:
            address = config.engine.executor.dask.address or None
        if address is not None:
            if cluster_class is not None or cluster_kwargs is not None:
                raise ValueError("Cannot specify `address` and `cluster_class`/`cluster_kwargs`")
        else:
            if cluster_class is None:
                cluster_class = config.engine.executor.dask.cluster_class
            if isinstance(cluster_class, str):
                cluster_class = _import_object(cluster_class)
            cluster_kwargs = dict(cluster_kwargs or {})
            from distributed import LocalCluster

            if cluster_class is LocalCluster:
                if debug is None:
                    debug = bool(config.debug)
                cluster_kwargs.setdefault(
                    "silence_logs", logging.WARNING if debug else logging.CRITICAL
                )
            adapt_kwargs = dict(adapt_kwargs or {})
        client_kwargs = dict(client_kwargs or {})
        client_kwargs.setdefault("set_as_default", False)
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = cluster_kwargs
        self.adapt_kwargs = adapt_kwargs
        self.client_kwargs = client_kwargs
        self.performance_report_path = performance_report_path
        self.disable_cancellation_event = disable_cancellation_event
        self.watch_worker_status = watch_worker_status
        self.client: Any = None
        self._buffer: list[_Call] = []
        self._names: set[str] = set()
        self._resource_names: set[str] = set()
        self._unsent: DaskTaskError | None = None
        self._outcomes: Any = None
        self._untracked: list[Any] = []
        self._crash_policy = False
        self._should_run: Any = None
        self._sent: weakref.WeakSet[Any] = weakref.WeakSet()
        self._progress: dict[Any, list[bytes]] = {}
        self._order: dict[str, int] = {}  # the session's call keys, in submission order

    def __repr__(self) -> str:
        where = self.address or getattr(self.cluster_class, "__name__", str(self.cluster_class))
        return f"<Executor: DaskExecutor ({where})>"

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(
            client=None,
            _buffer=[],
            _names=set(),
            _resource_names=set(),
            _unsent=None,
            _outcomes=None,
            _untracked=[],
            _crash_policy=False,
            _should_run=None,
            _progress={},
            _order={},
        )
        state.pop("_sent", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sent = weakref.WeakSet()

    @property
    def performance_report(self) -> str:
        """The HTML of the performance report written at ``performance_report_path`` ("" if
        none was asked for or it cannot be read, which is logged)."""
        if self.performance_report_path is None:
            self.logger.warning("Executor was not configured to generate performance report")
            return ""
        try:
            with open(self.performance_report_path, encoding="utf-8") as report:
                return report.read()
        except OSError as exc:
            self.logger.error("Failed to get dask performance report with exception %s", exc)
            return ""

    def on_worker_status_changed(self, op: str, message: Any) -> None:
        """Called (on the client's event loop) when a worker joins (``op`` "add",
        ``message`` ``{"workers": {address: info}}``) or leaves (``op`` "remove",
        ``message`` its address), if ``watch_worker_status``; logs it at DEBUG, as Prefect
        1 does. Subclasses may override it."""
        if op == "add":
            for worker in message.get("workers", ()):
                self.logger.debug("Worker %s added", worker)
        elif op == "remove":
            self.logger.debug("Worker %s removed", message)

    @property
    def logger(self) -> logging.Logger:
        return get_logger("DaskExecutor")

    @contextmanager
    def _session(self) -> Iterator[None]:
        from distributed import Client, performance_report

        if self.performance_report_path:
            _require_bokeh()
        with ExitStack() as stack:
            if self.address is not None:
                self.logger.info("Connecting to an existing Dask cluster at %s", self.address)
                target: Any = self.address
            else:
                target = stack.enter_context(self._temporary_cluster())
            try:
                client = stack.enter_context(Client(target, **self.client_kwargs))  # type: ignore[no-untyped-call]
            except OSError as exc:
                raise DaskTaskError(
                    f"DaskExecutor could not connect to the Dask scheduler at "
                    f"{self.address or target}: {exc}"
                ) from exc
            if self.performance_report_path:
                stack.enter_context(client.as_current())
                report = performance_report(filename=self.performance_report_path)  # type: ignore[no-untyped-call]
                stack.enter_context(report)
            if self.watch_worker_status or (
                self.watch_worker_status is None and not self.adapt_kwargs
            ):
                from flowcore.executors._dask_outcomes import watching_workers

                stack.enter_context(
                    watching_workers(client, self.on_worker_status_changed, self.logger)
                )
            from flowcore.executors._dask_outcomes import Outcomes, subscribed
            from flowcore.executors.progress import TOPIC

            stack.enter_context(subscribed(client, TOPIC, self._on_progress))
            self._crash_policy = self.address is None and self._install_crash_policy(client)
            self.client = client
            self._outcomes = Outcomes(client)
            self._should_run = self._cancellation_event(client)
            try:
                yield
            finally:
                self._stop()
                self.client = None
                self._buffer = []
                self._names = set()
                self._resource_names = set()
                self._unsent = None
                if self._outcomes is not None:
                    self._outcomes.close()
                self._outcomes = None
                self._untracked = []
                self._crash_policy = False
                self._should_run = None
                self._sent = weakref.WeakSet()
                self._order = {}
                self._progress = {}

    def _cancellation_event(self, client: Any) -> Any:
        """A set ``distributed.Event`` the calls check before they start, on a cluster at an
        ``address`` or an in-process one (None otherwise, or if disabled)."""
        inproc = str(client.scheduler.address).startswith("inproc")
        if self.disable_cancellation_event or (self.address is None and not inproc):
            return None
        from distributed import Event

        event = Event(f"flowcore-{uuid.uuid4().hex}", client=client)  # type: ignore[no-untyped-call]
        event.set()  # type: ignore[no-untyped-call]
        return event

    def _stop(self) -> None:
        """The end of a session with a cancellation event (as Prefect 1): calls not started
        do nothing, and the session waits for those a worker has. Calls still in the buffer
        were never sent and are dropped. While calls are left, the workers are also told
        at once (``cancel_locally``), so that they need not ask the scheduler per call."""
        self._buffer = []
        if self._should_run is None:
            return
        try:
            self._should_run.clear()
        except Exception:  # noqa: BLE001 - a lost scheduler: nothing left to stop
            pass
        try:
            unfinished = [f for f in list(self._sent) if not f.done()]
            if unfinished:
                self.client.run(cancel_locally, self._should_run.name, on_error="ignore")
            active = self._cancel_unassigned(unfinished)
            if active:
                from distributed import wait

                self.logger.info(
                    "Stopping executor, waiting for %d active tasks to complete", len(active)
                )
                with self.client.as_current():
                    wait(active)  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001 - a lost scheduler: nothing left to wait for
            pass

    def _cancel_unassigned(self, futures: list[Any]) -> list[Any]:
        """Cancel the calls no worker has been given (waiting for inputs, queued on the
        scheduler, or for a worker with the resources they need, which might never come):
        they have not started, and with the event cleared would only return None. The calls
        being processed by a worker are returned (all of them if the scheduler cannot say)."""
        if not futures:
            return futures

        def states(dask_scheduler: Any, keys: list[str]) -> dict[str, str]:
            return {
                key: dask_scheduler.tasks[key].state for key in keys if key in dask_scheduler.tasks
            }

        try:
            found = self.client.run_on_scheduler(states, keys=[f.key for f in futures])
        except Exception:  # noqa: BLE001 - e.g. a scheduler that refuses functions
            return futures
        self.client.cancel([f for f in futures if found.get(f.key) != "processing"])
        return [f for f in futures if found.get(f.key) == "processing"]

    def _install_crash_policy(self, client: Any) -> bool:
        """On a temporary cluster, flowcore's ``max_retries`` governs the calls that
        crashed a worker (``_dask_outcomes.CrashPolicy``); True once installed."""
        from flowcore.executors._dask_outcomes import install_crash_policy

        try:
            install_crash_policy(client)
        except Exception as exc:  # noqa: BLE001 - e.g. a scheduler that refuses plugins
            self.logger.warning(
                "Could not install flowcore's crash policy on the Dask scheduler (%s); Dask "
                "reruns tasks whose workers died (distributed.scheduler.allowed-failures)",
                exc,
            )
            return False
        return True

    @contextmanager
    def _temporary_cluster(self) -> Iterator[Any]:
        cls = self.cluster_class
        assert callable(cls)
        self.logger.info(
            "Creating a new Dask cluster with `%s.%s`...",
            getattr(cls, "__module__", "?"),
            getattr(cls, "__qualname__", repr(cls)),
        )
        with cls(**(self.cluster_kwargs or {})) as cluster:
            link = getattr(cluster, "dashboard_link", None)
            if link:
                self.logger.info("The Dask dashboard is available at %s", link)
            if self.adapt_kwargs:
                cluster.adapt(**self.adapt_kwargs)
            yield cluster

    def ships_to_processes(self) -> bool:
        return True

    def worker_count(self) -> int | None:
        """The threads of the cluster's workers now (at least 1)."""
        workers = self._client().scheduler_info(n_workers=-1).get("workers", {}).values()
        return max(1, sum(int(worker.get("nthreads") or 1) for worker in workers))

    def cancellation_event(self) -> str | None:
        """The name of the session's cancellation event (see ``end`` in the module docs)."""
        return None if self._should_run is None else str(self._should_run.name)

    def partial_results(self, future: Any) -> tuple[list[Any], Any]:
        """What a call reported of its progress before it was lost (``executors.progress``)."""
        from flowcore.executors.progress import decode

        return decode(self._progress.pop(future.key, []))

    def _on_progress(self, event: tuple[float, Any]) -> None:
        """(The client's event loop.) Keep a running call's progress until it finishes."""
        message = event[1] if isinstance(event[1], dict) else {}
        key, data = message.get("key"), message.get("data")
        if key is not None and isinstance(data, bytes):
            self._progress.setdefault(key, []).append(data)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        extra_context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A ``distributed.Future`` of ``fn(*args, **kwargs)``; the call is sent in a batch."""
        from distributed import Future as DaskFuture

        client = self._client()
        name = (extra_context or {}).get("task_name") or fn_name(fn)
        self._names.add(str(name))
        resources = _resources(extra_context)
        label = task_label(extra_context, name)
        if resources:
            self._check_resources(resources, label)
        call = _Call(task_key(extra_context, name), fn, args, kwargs, label, resources)
        future: Any = DaskFuture(call.key, client)
        self._order[call.key] = len(self._order)
        self._buffer.append(call)
        self._untracked.append(future)
        if len(self._buffer) >= _BATCH:
            self._flush()
        return future

    def wait(self, futures: Any) -> Any:
        """``futures`` with every Future (also inside lists, tuples, sets, dicts) resolved;
        the first failed call (earliest submitted) raises its error."""
        found, settled = self._settle(futures)
        if not found:
            return futures
        erred = self._erred_futures(found)
        if erred:
            exc = settled[erred[0].key][1]
            if getattr(exc, IN_TASK, None) is not None or isinstance(exc, DaskTaskError):
                raise exc
            raise self._translate(exc, erred[0]) from exc
        from distributed import Future as DaskFuture

        return map_futures(futures, DaskFuture, lambda future: settled[future.key][1])

    def collect(self, futures: Any) -> Any:
        """Like :meth:`wait`, but a call the Dask machinery could not carry out is returned
        as an exception in place of its result: ``WorkerCrashed`` (its worker died while it
        ran, or before its result was collected), ``UpstreamCrashed`` (it never started: a
        call it needs failed so) or ``DaskTaskError`` (unpicklable result, code the workers
        cannot import). An exception of the task's own code (``raise_on_exception``) and a
        lost scheduler are raised, as :meth:`wait` raises them."""
        from distributed import Future as DaskFuture

        from flowcore.executors._dask_outcomes import describe_failure, failure_causes

        found, settled = self._settle(futures)
        failed = [f.key for f in found if settled[f.key][0] != "finished"]
        causes = failure_causes(self.client, failed) if failed else {}

        def outcome(future: Any) -> Any:
            status, value = settled[future.key]
            if status == "finished":
                return value
            if getattr(value, IN_TASK, None) is not None:
                raise value
            if status == "cancelled":
                raise self._translate(value, future) from value
            culprit, crashed_on = causes.get(future.key, (future.key, None))
            return describe_failure(
                value,
                self._label(future.key),
                None if culprit == future.key else self._label(culprit),
                crashed_on,
                lambda exc: self._translate(exc, future),
            )

        return map_futures(futures, DaskFuture, outcome)

    def _settle(self, futures: Any) -> tuple[list[Any], dict[Any, tuple[str, Any]]]:
        """The futures inside ``futures``, and their outcomes once all have finished."""
        from distributed import Future as DaskFuture

        self._client()
        self._flush()
        found = find_futures(futures, DaskFuture)
        settled = self._outcomes.settle(found) if found else {}
        if self._progress:
            for future in found:
                if settled[future.key][0] == "finished":
                    self._progress.pop(future.key, None)
        return found, settled

    def _client(self) -> Any:
        if self.client is None:
            raise ValueError("This executor has not been started; use `with executor.start():`")
        if self._unsent is not None:  # futures of that batch would never finish
            raise DaskTaskError(f"An earlier batch of this session was not sent: {self._unsent}")
        return self.client

    def _flush(self) -> None:
        """Send the buffered calls: their shared blobs, then one ``client.map`` per run of
        calls with equal resources."""
        if not self._buffer:
            return
        from distributed import Future as DaskFuture

        from flowcore.executors._dask_packing import BatchPacker

        buffer, self._buffer = self._buffer, []
        untracked, self._untracked = self._untracked, []
        packer = BatchPacker(DaskFuture)
        packed = []
        for call in buffer:
            try:
                packed.append(packer.pack(call.fn, call.args, call.kwargs))
            except Exception as exc:
                self._unsent = DaskTaskError(
                    f"Task {call.label!r}: its inputs cannot be sent to the Dask cluster "
                    f"({type(exc).__name__}: {exc})"
                )
                raise self._unsent from exc
        client = self.client
        should_run = self._should_run.name if self._should_run is not None else None
        shared = (
            dict(
                zip(
                    packer.blobs,
                    client.map(
                        blob,
                        list(packer.blobs.values()),
                        key=list(packer.blobs),
                        pure=False,
                    ),
                )
            )
            if packer.blobs
            else {}
        )
        start = 0
        for resources, run in itertools.groupby(buffer, key=lambda call: call.resources):
            calls = list(run)
            parts = packed[start : start + len(calls)]
            start += len(calls)
            client.map(
                run_call,
                [p[0] for p in parts],
                [p[1] for p in parts],
                [p[2] for p in parts],
                [[shared[t] for t in p[2]] for p in parts],
                [c.label for c in calls],
                key=[c.key for c in calls],
                pure=False,
                resources=dict(resources) or None,
                report_start=self._crash_policy,
                should_run=should_run,
            )
        self._outcomes.track(untracked)
        self._sent.update(untracked)

    def _check_resources(self, resources: tuple[tuple[str, float], ...], label: str) -> None:
        missing = [name for name, _ in resources if name not in self._resource_names]
        if not missing:
            return
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {}).values()
        offered = {name for worker in workers for name in (worker.get("resources") or {})}
        self._resource_names |= offered
        absent = sorted(set(missing) - offered)
        if absent:
            self.logger.warning(
                "Task %r needs Dask worker resources %s that no worker of the cluster offers "
                "now; it waits until such a worker joins (start workers with "
                "`--resources %s=N`)",
                label,
                absent,
                absent[0],
            )
            self._resource_names |= set(absent)

    def _erred_futures(self, futures: Any) -> list[Any]:
        """The futures in ``futures`` that erred or were cancelled, earliest submitted
        first (a downstream call errs with its upstream's error: the upstream is named)."""
        from distributed import Future as DaskFuture

        order = self._order
        found = [f for f in find_futures(futures, DaskFuture) if f.status in ("error", "cancelled")]
        found.sort(key=lambda future: order.get(future.key, len(order)))
        return found

    def _translate(self, exc: BaseException, futures: Any) -> Exception:
        """One readable error for a failure of the Dask machinery while waiting."""
        erred = self._erred_futures(futures)
        label = self._label(erred[0].key) if erred else None
        cause = f"{type(exc).__name__}: {exc}"
        from distributed import CancelledError, KilledWorker

        if label is None:
            return DaskTaskError(f"Waiting for results from the Dask cluster failed ({cause})")
        if isinstance(exc, KilledWorker):
            return DaskTaskError(
                f"Task {label!r}: the Dask workers running it died too many times ({cause}); "
                "the task may crash its worker or need more memory than a worker has"
            )
        if isinstance(exc, CancelledError):
            if "scheduler-connection-lost" in str(exc):
                return DaskTaskError(
                    f"The connection to the Dask scheduler was lost while waiting for task "
                    f"{label!r}; the run cannot go on ({cause})"
                )
            return DaskTaskError(f"Task {label!r} was cancelled by the Dask cluster ({cause})")
        if isinstance(exc, (ImportError, AttributeError, pickle.UnpicklingError)):
            return DaskTaskError(
                f"Task {label!r}: a Dask worker cannot load the task ({cause}); the task's "
                "code must be importable on the workers (install its module there or add "
                "its directory to the workers' PYTHONPATH)"
            )
        return DaskTaskError(f"Task {label!r} failed on the Dask cluster ({cause})")

    def _label(self, key: str) -> str:
        """``"name[index]"`` from a key ``"<name>-<index>-<uuid>"`` or ``"<name>-<uuid>"``."""
        key = str(key)
        stem = key[:-33] if len(key) > 33 and key[-33] == "-" else key
        for name in sorted(self._names, key=len, reverse=True):
            if stem == name:
                return name
            if stem.startswith(name + "-") and stem[len(name) + 1 :].isdigit():
                return f"{name}[{stem[len(name) + 1 :]}]"
        return stem


def _require_bokeh() -> None:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        raise ImportError(
            "DaskExecutor(performance_report_path=...) needs bokeh to write the report: "
            "pip install bokeh"
        ) from None


def _import_object(path: str) -> Any:
    import importlib

    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ImportError(f"DaskExecutor: cannot import cluster_class {path!r} ({exc})") from exc
