"""What runs on a Dask worker for a ``DaskExecutor`` (kept apart: a worker imports only this).

:func:`run_call` unpacks one call (``_dask_packing``), runs it and:

* returns None without running it once the session's cancellation event is cleared (the
  event's name is passed on a cluster at an ``address`` or an in-process cluster; a "set"
  answer is trusted for ``_EVENT_RECHECK`` seconds per process, so a map does not ask the
  scheduler once per call);
* reports its start to the crash policy (``report_start``, temporary clusters);
* sends what the call reports as it goes (``executors.progress``: the children a batch finished)
  to the driver, so that they outlive the worker;
* raises :class:`DaskTaskError` naming the task when the call cannot be loaded, and marks
  an exception of the task's own code with the task's label (attribute ``IN_TASK``);
* on a worker in its own process, checks that the result pickles (distributed would
  otherwise hang moving an unpicklable result).
"""

from __future__ import annotations

import time
from typing import Any

from flowcore.exceptions import DaskTaskError
from flowcore.executors._pools import check_picklable

__all__ = ["IN_TASK", "blob", "event_is_set", "run_call", "worker_is_inproc"]

IN_TASK = "_flowcore_task"
_EVENT_RECHECK = 0.1  # seconds a worker process trusts a "set" cancellation event
_event_checks: dict[str, float] = {}


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
        with _progress_to_driver():
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


def _progress_to_driver() -> Any:
    """A ``progress.reporting`` block that sends to the driver as Dask events."""
    from distributed import get_worker

    from flowcore.executors.progress import TOPIC, reporting

    worker = get_worker()
    key = worker.get_current_task()

    def send(data: bytes) -> None:
        worker.log_event(TOPIC, {"key": key, "data": data})

    return reporting(send)


def event_is_set(name: str) -> bool:
    """Whether the cancellation event ``name`` is set (as Prefect 1's ``_maybe_run``: when
    the scheduler cannot be asked, run). A "set" answer is trusted for
    ``_EVENT_RECHECK`` seconds in this process, so a map does not ask once per call."""
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
