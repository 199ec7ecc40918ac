"""What runs on a Dask worker for a ``DaskExecutor`` (kept apart: a worker imports only this).

:func:`run_call` unpacks one call (``_dask_packing``), runs it and:

* returns None without running it once the session's cancellation event is cleared (the
  event's name is passed on a cluster at an ``address`` or an in-process cluster). The
  session's end reaches the worker processes two ways: the driver tells each of them
  (``cancel_locally``, run on every worker as the session ends), and a process that was
  not told asks the scheduler, trusting a "set" answer for ``_EVENT_RECHECK`` seconds, so
  neither a map of many short calls nor a map of batches asks once per call;
* reports its start to the crash policy (``report_start``, temporary clusters);
* sends what the call reports as it goes (``executors.progress``: the children a batch
  finished) to the driver, so that they outlive the worker; a call that reports nothing
  (a single task run) costs no progress channel;
* raises :class:`DaskTaskError` naming the task when the call cannot be loaded, and marks
  an exception of the task's own code with the task's label (attribute ``IN_TASK``);
* on a worker in its own process, checks that the result pickles (distributed would
  otherwise hang moving an unpicklable result) and loads again (else the driver's gather
  fails, naming no task).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flowcore.exceptions import DaskTaskError
from flowcore.executors._pools import check_picklable
from flowcore.executors.progress import reporting

__all__ = ["IN_TASK", "blob", "cancel_locally", "event_is_set", "run_call", "worker_is_inproc"]

IN_TASK = "_flowcore_task"
_EVENT_RECHECK = 1.0  # seconds a worker process trusts a "set" cancellation event
_event_checks: dict[str, float] = {}
_cancelled: set[str] = set()  # events this process was told are cleared (cancel_locally)


def run_call(
    payload: bytes,
    deps: list[Any],
    tokens: list[str],
    blobs: list[bytes],
    label: str,
    report_start: bool = False,
    should_run: str | None = None,
) -> Any:
    """Unpack and run one call (see the module docstring); None without
    running it once the session's cancellation event ``should_run`` is cleared."""
    from flowcore.executors._dask_packing import unpack

    if should_run is not None and not event_is_set(should_run):
        return None

    if report_start:
        from flowcore.executors._dask_outcomes import report_start as report

        report()

    try:
        fn, args, kwargs = unpack(payload, deps, tokens, blobs)
    except Exception as exc:
        raise DaskTaskError(
            f"Task {label!r}: a Dask worker cannot load the task ({type(exc).__name__}: "
            f"{exc}); the task's code must be importable on the workers (install its module "
            "there or add its directory to the workers' PYTHONPATH)"
        ) from None
    try:
        with reporting(_channel_to_driver):
            result = fn(*args, **kwargs)
    except BaseException as exc:
        try:
            setattr(exc, IN_TASK, label)
        except Exception:  # noqa: BLE001 - exceptions without a __dict__
            pass
        raise
    if not worker_is_inproc():
        check_picklable(result, label)
    return result


def _channel_to_driver() -> Callable[[bytes, bool], None]:
    """(In the call's thread, when it first reports progress.) Send the running call's
    progress to the driver as Dask events: through the worker's stream to the scheduler,
    or with ``wait`` (from the call's thread) as a request the scheduler answers once it
    has the event."""
    from distributed import get_client, get_worker

    from flowcore.executors.progress import TOPIC

    worker = get_worker()
    key = worker.get_current_task()

    def send(data: bytes, wait: bool) -> None:
        if wait:
            get_client().log_event(TOPIC, {"key": key, "data": data})
        else:
            worker.log_event(TOPIC, {"key": key, "data": data})

    return send


def event_is_set(name: str) -> bool:
    """Whether the cancellation event ``name`` is set (as Prefect 1's ``_maybe_run``: when
    the scheduler cannot be asked, run): not once this process was told it is cleared;
    else a "set" answer is trusted for ``_EVENT_RECHECK`` seconds in this process, so a
    map does not ask once per call."""
    if name in _cancelled:
        return False
    now = time.monotonic()
    if now - _event_checks.get(name, -_EVENT_RECHECK) < _EVENT_RECHECK:
        return True
    import dask
    from distributed import Event, get_client

    try:
        client = get_client(timeout=dask.config.get("distributed.comm.timeouts.connect"))
        is_set = bool(Event(name, client=client).is_set())  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - a busy or closing scheduler: better run than lose it
        is_set = True
    if is_set:
        if len(_event_checks) > 64:
            _event_checks.clear()
        _event_checks[name] = now
    return is_set


def cancel_locally(name: str) -> None:
    """(Run on every worker by the driver as its session ends.) The cancellation event
    ``name`` is cleared: calls of the session that start here from now on do nothing."""
    if len(_cancelled) > 64:  # (event names are unique per session: old ones are done)
        _cancelled.clear()
    _cancelled.add(name)
    _event_checks.pop(name, None)


def blob(data: bytes) -> bytes:
    """A shared blob of a batch, as its own Dask key."""
    return data


def worker_is_inproc() -> bool:
    """Whether this worker shares the client's process (no pickling of results)."""
    from distributed import get_worker

    try:
        return str(get_worker().address).startswith("inproc://")
    except ValueError:
        return True
