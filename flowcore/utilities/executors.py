"""Running a task body with a timeout (and Prefect 1's ``run_with_heartbeat``).

* No timeout: a plain call.
* Main thread (POSIX): ``SIGALRM`` raises :class:`TaskTimeoutSignal` in the task at the
  deadline, a hard stop that also interrupts blocking system calls such as ``sleep``.
* Any other thread: the body runs in a helper thread (with the caller's context) while the
  caller waits until the deadline. At the deadline the caller returns ``TimedOut`` at once
  and :class:`TaskTimeoutSignal` is raised asynchronously inside the helper thread, which
  stops Python code at its next instruction; a call blocked in C (a socket read, a long
  ``sleep``) stops when that call returns. Unlike Prefect 1, no process is spawned per task
  run, and Dask worker processes get the same hard-where-possible behaviour.
"""

from __future__ import annotations

import contextvars
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flowcore.exceptions import TaskTimeoutSignal

__all__ = ["run_with_heartbeat", "run_with_timeout"]

_F = TypeVar("_F", bound=Callable[..., Any])


def run_with_heartbeat(runner_method: _F) -> _F:
    """Prefect 1's decorator for a runner's ``run`` that sent heartbeats to Server or Cloud.
    There is no Server here: it returns ``runner_method`` unchanged. (flowcore's run store
    keeps its own heartbeat for every run, from the process that drives it.)"""
    return runner_method


def run_with_timeout(
    fn: Callable[..., Any], kwargs: dict[str, Any], timeout: int | None, name: str
) -> Any:
    """``fn(**kwargs)``, raising :class:`TaskTimeoutSignal` after ``timeout`` seconds."""
    if not timeout:
        return fn(**kwargs)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM"):
        return _run_with_alarm(fn, kwargs, timeout, name)
    return _run_in_watched_thread(fn, kwargs, timeout, name)


def _run_with_alarm(fn: Callable[..., Any], kwargs: dict[str, Any], timeout: int, name: str) -> Any:
    def on_alarm(signum: int, frame: Any) -> None:
        raise TaskTimeoutSignal(f"Task '{name}' timed out after {timeout} seconds")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn(**kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_in_watched_thread(
    fn: Callable[..., Any], kwargs: dict[str, Any], timeout: int, name: str
) -> Any:
    outcome: dict[str, Any] = {}
    done = threading.Event()
    lock = threading.Lock()

    def body() -> None:
        try:
            outcome["value"] = fn(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc
        finally:
            with lock:
                done.set()

    worker = threading.Thread(
        target=contextvars.copy_context().run,
        args=(body,),
        name=f"flowcore-timeout-{name}",
        daemon=True,
    )
    worker.start()
    if not done.wait(timeout):
        with lock:
            if not done.is_set():
                _raise_in_thread(worker, TaskTimeoutSignal)
                raise TaskTimeoutSignal(f"Task '{name}' timed out after {timeout} seconds")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    import ctypes  # (here: only a task that times out on a thread needs it)

    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type)
        )
