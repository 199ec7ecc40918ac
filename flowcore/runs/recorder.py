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
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from flowcore.engine.state import Mapped, State
from flowcore.runs.events import FlowRunStarted, FlowRunState, LogLine, TaskRunState
from flowcore.utilities import context as _context
from flowcore.utilities.logging import add_line_sink, remove_line_sink

if TYPE_CHECKING:
    from flowcore.runs.progress import RunProgress
    from flowcore.runs.store import RunStore

__all__ = ["RunRecorder"]

_PARAMETER_REPR_LIMIT = 200


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
            self.flow_state(state)

    # -- task runs ------------------------------------------------------------------------

    def task_state(self, context: Mapping[str, Any], state: State) -> None:
        """A TaskRunner in this process moved its task run to ``state``."""
        if os.getpid() != self._pid:  # a forked worker: the driver reports its states
            return
        index = context.get("map_index")
        key = (context["task_slug"], -1 if index is None or isinstance(state, Mapped) else index)
        self._last[key] = state
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
        result = state._result
        self.store.submit(TaskRunState(
            self.run_id, key[0], key[1], type(state).__name__, _message(state), _now(),
            run_count=run_count,
            result_location=result.location if state.is_successful() else None,
            n_map_states=state.n_map_states if isinstance(state, Mapped) else None,
        ))

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
