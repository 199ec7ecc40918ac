"""The one small interface through which the runners report a flow run to the run store.

``run_flow`` makes one :class:`RunRecorder` per flow run and puts it in the run's context
(``context.run_recorder``). Three kinds of callers report through it:

* ``run_flow`` (the driver): :meth:`RunRecorder.started`, :meth:`RunRecorder.flow_state`
  and :meth:`RunRecorder.finished`;
* a TaskRunner running in the driver's process (LocalExecutor, threads): every state
  change of its task run, as it happens (:meth:`RunRecorder.task_state`);
* the driver again, for the states it collects from workers in other processes
  (:meth:`RunRecorder.collected`): a recorder sent to a Dask worker or a process pool
  arrives there detached and reports nothing, so workers never open connections of their
  own; what they did reaches the store through the driver, when it collects their states
  (final states only: how long a task ran in another process is not known).

A state is reported once: the recorder remembers the last state object it reported for
each task run (``(slug, map_index)``) and skips a collected state it has already seen.

``Running`` costs nothing for a quick task run: the recorder notes the time and sends it
with the run's next state (``TaskRunState.started``), so a task run is one event, not two.
A task run still ``Running`` a quarter of a second later is announced on its own by the
store's writer thread (:meth:`RunRecorder.overdue`, a ticker of the store), so a long task
shows as running within a batch interval, and a crash leaves it recorded as started.

Log lines: while a run is recorded, lines that flowcore's own log handler writes in the
driver's process for this run (``context.flow_run_id``) are sent to the store as well
(:func:`flowcore.utilities.logging.add_line_sink`).

A recorder may also feed a live progress display (:mod:`flowcore.runs.progress`), with or
without a store. Everything here is cheap: an event is built and queued; the store writes
on its own thread.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from flowcore.engine.state import Mapped, Running, State
from flowcore.runs.events import FlowRunStarted, FlowRunState, LogLine, TaskRunState
from flowcore.utilities import context as _context
from flowcore.utilities.logging import add_line_sink, remove_line_sink

if TYPE_CHECKING:
    from flowcore.runs.progress import RunProgress
    from flowcore.runs.store import RunStore

__all__ = ["RunRecorder"]

_PARAMETER_REPR_LIMIT = 200
_ANNOUNCE_RUNNING_AFTER = timedelta(seconds=0.25)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RunRecorder:
    """Reports flow run ``run_id`` to ``store`` and ``progress`` (either may be None; see
    the module docstring)."""

    def __init__(self, store: RunStore | None, run_id: str, progress: RunProgress | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.progress = progress
        self._pid = os.getpid()
        self._last: dict[tuple[str, int], State] = {}
        # task runs that entered Running (when, run count), and those of them announced
        self._running: dict[tuple[str, int], tuple[datetime, int]] = {}
        self._announced: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_detached, ())

    # -- the flow run ---------------------------------------------------------------------

    def started(
        self,
        flow_name: str,
        parameters: Mapping[str, Any],
        structure: dict[str, Any],
        source: str | None,
        resumed_from: str | None,
    ) -> None:
        """The run began: record it, and start copying its log lines to the store."""
        if self.progress is not None:
            self.progress.start()
        if self.store is None:
            return
        self.store.add_ticker(self.overdue)
        self.store.submit(FlowRunStarted(
            run_id=self.run_id, flow_name=flow_name, time=_now(),
            parameters={k: _short_repr(v) for k, v in parameters.items()},
            structure=structure, source=source, host=socket.gethostname(), pid=self._pid,
            resumed_from=resumed_from,
        ))
        add_line_sink(self._log_line)

    def flow_state(self, state: State) -> None:
        if self.store is not None:
            self.store.submit(FlowRunState(self.run_id, type(state).__name__, _message(state), _now()))

    def finished(self, state: State) -> None:
        """The run ended in ``state``."""
        if self.progress is not None:
            self.progress.stop()
        if self.store is not None:
            remove_line_sink(self._log_line)
            self.store.remove_ticker(self.overdue)
            self.flow_state(state)

    # -- task runs ------------------------------------------------------------------------

    def task_state(self, context: Mapping[str, Any], state: State) -> None:
        """A TaskRunner in this process moved its task run to ``state``."""
        if os.getpid() != self._pid:  # a forked worker: the driver reports its states
            return
        index = context.get("map_index")
        key = (context["task_slug"], -1 if index is None or isinstance(state, Mapped) else index)
        self._last[key] = state
        if type(state) is Running:
            self._running[key] = (_now(), context.get("task_run_count", 1))
            if self.progress is not None:
                self.progress.update(key[0], key[1], state)
            return
        self._submit(key, state, context.get("task_run_count", 1))

    def collected(self, slug: str, map_index: int, state: State) -> None:
        """The driver holds ``state`` for a task run (``map_index`` -1 for a task that is
        not mapped, or a mapped parent); recorded unless already reported."""
        key = (slug, map_index)
        if self._last.get(key) is state:
            return
        self._last[key] = state
        self._submit(key, state, getattr(state, "run_count", None) or 1)

    def _submit(self, key: tuple[str, int], state: State, run_count: int) -> None:
        if self.progress is not None:
            self.progress.update(key[0], key[1], state)
        if self.store is None:
            return
        started = None
        if self._running:
            with self._lock:
                entered = self._running.pop(key, None)
                if entered is not None and key not in self._announced:
                    started = entered[0]
                self._announced.discard(key)
        result = state._result
        self.store.submit(TaskRunState(
            self.run_id, key[0], key[1], type(state).__name__, _message(state), _now(),
            run_count=run_count,
            result_location=result.location if state.is_successful() else None,
            n_map_states=state.n_map_states if isinstance(state, Mapped) else None,
            started=started,
        ))

    def overdue(self) -> list[TaskRunState]:
        """(The store's writer thread.) ``Running`` events for the task runs that entered
        Running more than a quarter of a second ago and have not finished."""
        if not self._running:
            return []
        cutoff = _now() - _ANNOUNCE_RUNNING_AFTER
        events = []
        with self._lock:
            for key, (entered, run_count) in list(self._running.items()):
                if entered <= cutoff and key not in self._announced:
                    self._announced.add(key)
                    events.append(TaskRunState(
                        self.run_id, key[0], key[1], "Running", None, entered, run_count=run_count,
                    ))
        return events

    # -- log lines ------------------------------------------------------------------------

    def _log_line(self, logger: str, level: int, message: str, created: float) -> None:
        scope = _context._scope.get()
        if scope is None or scope.get("flow_run_id") != self.run_id:
            return
        index = scope.get("map_index")
        assert self.store is not None
        self.store.submit(LogLine(
            self.run_id, scope.get("task_slug"), -1 if index is None else index,
            datetime.fromtimestamp(created, timezone.utc), level, logger, message,
        ))


def _detached() -> None:
    """What a recorder becomes in another process: nothing (see the module docstring)."""
    return None


def _message(state: State) -> str | None:
    message = state.message
    return message if message is None or isinstance(message, str) else str(message)


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a user's __repr__ that fails must not fail the run
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    return text if len(text) <= _PARAMETER_REPR_LIMIT else text[: _PARAMETER_REPR_LIMIT - 3] + "..."
